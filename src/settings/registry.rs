//! The `[registry]` section: where the référents and routes are, and the
//! hourly number of alerts to one référent past which a flood is reported.
//!
//! It requires the file; the file itself is read, and checked, where the
//! registry is loaded.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// The référents and routes (see `config/referents.toml`); required.
    pub path: PathBuf,
    /// More alerts than this to one référent in an hour are still
    /// delivered, but logged (once an hour) and counted as a flood; 0: no
    /// limit.
    pub max_alerts_per_referent_per_hour: u32,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            max_alerts_per_referent_per_hour: 50,
        }
    }
}

impl RegistrySettings {
    pub(super) fn check(&self, errors: &mut Vec<String>) {
        if self.path.as_os_str().is_empty() {
            errors.push("registry.path is required: the file of référents and routes".into());
        }
    }
}

//! The `[log]` section: the format of relais's log lines and what they
//! include.
//!
//! It refuses an empty filter; the filter itself is parsed where the
//! logging starts.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing filter: `info`, or `relais=debug,lapin=warn`.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info,lapin=off".into(),
        }
    }
}

impl LogSettings {
    pub(super) fn check(&self, errors: &mut Vec<String>) {
        if self.level.trim().is_empty() {
            errors.push("log.level must not be empty".into());
        }
    }
}

//! The `[territories]` section: where France's official geography is read
//! from.
//!
//! It refuses nothing itself: the file is read, and checked, where the
//! geography is loaded.

use std::path::PathBuf;

use serde::Deserialize;

/// Where France's official geography is read from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TerritoriesSettings {
    /// The territories file (`data/territories.tsv` of the source tree,
    /// installed by the package as `/usr/share/relais/territories.tsv`);
    /// another millésime's file from `scripts/territories` to update it.
    pub path: PathBuf,
}

impl Default for TerritoriesSettings {
    fn default() -> Self {
        Self {
            path: PathBuf::from(TERRITORIES),
        }
    }
}

/// Where the package installs the territories file.
pub const TERRITORIES: &str = "/usr/share/relais/territories.tsv";

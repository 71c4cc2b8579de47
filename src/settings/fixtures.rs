//! What the settings' tests share: the smallest settings file that loads,
//! written into a folder of the test's own, and an environment given as
//! pairs.
//!
//! Test code only. It never reads the process's environment, so that no
//! test depends on the shell that runs it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("relais.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub const MINIMAL: &str = r#"
    [smtp]
    host = "127.0.0.1"
    tls = "none"
    from = "relais <relais@example.org>"
    [registry]
    path = "referents.toml"
    [store]
    path = "state/relais.db"
"#;

pub fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

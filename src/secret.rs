//! Secrets as relais holds them between the settings and the one line that
//! uses them: a password given inline or as a file (a systemd credential),
//! and the reading of such a file.
//!
//! It stands below both the settings and the mail side, which each need
//! it. It never logs or formats a secret: the values stay `SecretString`,
//! whose `Debug` is redacted, until the transport exposes them.

use std::path::{Path, PathBuf};

use secrecy::SecretString;

/// Where the SMTP password is: read only when the transport is built.
#[derive(Debug, Clone)]
pub enum Password {
    Inline(SecretString),
    File(PathBuf),
}

/// Reads a secret from a file, without its trailing line break.
///
/// # Errors
/// When the file cannot be read.
pub fn read_secret(path: &Path) -> std::io::Result<SecretString> {
    let text = std::fs::read_to_string(path)?;
    Ok(SecretString::from(
        text.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

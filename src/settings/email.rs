//! The `[email]` section: what the emails say, with or without the
//! patient's details.
//!
//! It refuses nothing; its default keeps the emails as they always were.

use serde::Deserialize;

/// What the emails say.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailSettings {
    /// `false`: no patient detail leaves by email (no summary, name,
    /// address or phone); the email says whom to call back and gives the
    /// dossier reference, and the référent gets the rest by phone.
    pub include_patient: bool,
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            include_patient: true,
        }
    }
}

//! The `[events]` section: where each change of an alert's fate is
//! published for the dispatch software.
//!
//! It holds no secret and refuses nothing: an empty exchange turns the
//! events off.

use serde::Deserialize;

/// Where alerts' status events go, for the dispatch software.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSettings {
    /// The topic exchange relais publishes each change of an alert's fate
    /// to (declared by relais), the status as routing key: `relais.events`
    /// by default; empty: no events.
    pub exchange: String,
}

impl Default for EventsSettings {
    fn default() -> Self {
        Self {
            exchange: "relais.events".to_owned(),
        }
    }
}

impl EventsSettings {
    pub fn enabled(&self) -> bool {
        !self.exchange.is_empty()
    }
}

//! relais relays social-care alerts from SOS Médecins doctors to the
//! référents of the social-action offices of the patient's territory.
//!
//! The path of one alert, module by module:
//!
//! 1. [`settings`]: what relais is configured with (file, then environment);
//! 2. [`registry`]: who the référents are and which of them an alert goes to;
//! 3. [`amqp`]: the broker side: connection, topology, the consume loop;
//! 4. [`relay`]: one delivery → [`alert`] parsed → référents resolved →
//!    [`mail`] rendered and sent → one [`outcome::Outcome`];
//! 5. [`amqp::settle`]: the outcome becomes broker actions: retries and
//!    dead letters published with confirms, then the ack.
//!
//! [`daemon`] starts it all; [`commands`] are the operators' subcommands;
//! [`ack`] serves the référents' pages (acknowledgement, absences), and
//! [`absences`] hands the absences they declare to the relay.
//! Two failures matter above all: an alert lost, and an alert sent to the
//! wrong person or in clear. Every module's documentation says how it
//! guards against them.

pub mod absences;
pub mod ack;
pub mod amqp;
pub mod backoff;
pub mod cli;
pub mod commands;
pub mod daemon;
pub mod fence;
pub mod flood;
pub mod follow_up;
pub mod health;
pub mod http;
pub mod live_registry;
pub mod mail;
pub mod memory;
pub mod outcome;
pub mod relay;
pub mod secret;
pub mod settings;
pub mod standby;
pub mod store;
pub mod telemetry;
pub mod tls;

pub use relais_core::{
    alert, availability, bounce, calendar, geography, publisher, registry, territory,
};

/// What the unit tests share.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::{Arc, OnceLock};

    use crate::geography::Geography;

    /// The official geography shipped with relais (`data/territories.tsv`).
    pub fn france() -> &'static Arc<Geography> {
        static FRANCE: OnceLock<Arc<Geography>> = OnceLock::new();
        FRANCE.get_or_init(|| {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/territories.tsv");
            Arc::new(Geography::load(std::path::Path::new(path)).expect("the geography"))
        })
    }
}

//! The part of relais that reads untrusted text and decides, without I/O
//! beyond reading a registry file: the message contract ([`alert`]), the
//! territories it names ([`territory`]), and the registry of référents that
//! an alert resolves to ([`registry`]).
//!
//! It is a crate of its own so that it can be fuzzed (`fuzz/`) and reasoned
//! about apart from the daemon's broker, mail and store; `relais` re-exports
//! its modules under the same names.

pub mod alert;
pub mod availability;
pub mod calendar;
pub mod geography;
pub mod publisher;
pub mod registry;
pub mod territory;

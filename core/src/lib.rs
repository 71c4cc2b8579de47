//! The part of relais that reads untrusted text and decides, without I/O
//! beyond reading a registry file: the message contract ([`alert`]), the
//! territories it names ([`territory`]), the registry of référents that an
//! alert resolves to ([`registry`]), and the bounces that mail servers
//! return ([`bounce`]).
//!
//! It is a crate of its own so that it can be fuzzed (`fuzz/`) and reasoned
//! about apart from the daemon's broker, mail and store; `relais` re-exports
//! its modules under the same names.

pub mod alert;
pub mod availability;
pub mod bounce;
pub mod calendar;
pub mod geography;
pub mod publisher;
pub mod registry;
pub mod territory;

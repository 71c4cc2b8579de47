//! Bounces, read without acting on them: what a returned message says
//! ([`dsn`], with its enhanced status codes, [`status`]), and which email it
//! returns ([`tag`], the return path that names one email without any
//! readable data).
//!
//! Both read text that strangers write (any mail server on the way may
//! send a bounce to relais's return path): they refuse what they cannot
//! read with a typed error and never panic. They do no I/O and decide
//! nothing: marking an address as failing, retrying or telling an operator
//! is the caller's choice.

pub mod dsn;
pub mod status;
pub mod tag;

pub use dsn::{Action, Bounce, DsnError, MAX_SIZE, Problem, Recipient, RecipientReport, Report};
pub use status::{Class, Status};
pub use tag::{BounceAddress, TagError};

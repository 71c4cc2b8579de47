//! The mail side: everything relais does to put an email in a référent's
//! mailbox.
//!
//! - [`render`]: the French email of an alert for one référent, rendered
//!   once into an [`Email`] (Message-ID, envelope, bytes);
//! - [`outbound`]: where the emails go (an SMTP server as configured, or a
//!   folder), the mail transport's settings once checked;
//! - [`mailer`]: the way out, an SMTP server or a folder of `.eml` files,
//!   each send bounded in time;
//! - [`pool`]: the SMTP connections, reused;
//! - [`return_path`]: each email's own envelope sender, that its bounce
//!   comes back to;
//! - [`smtp`]: relais's own SMTP client (TLS, AUTH, pipelining, CHUNKING);
//! - [`classify`](mod@classify): what a failed send means, decided in one place.
//!
//! It never decides what happens to an alert: `relay` does.

pub mod classify;
pub mod mailer;
pub mod outbound;
pub mod pool;
pub mod render;
pub mod return_path;
pub mod smtp;

pub use classify::{SendError, classify};
pub use mailer::{Accepted, Mailer, MailerError};
pub use render::{Addressed, Email, PageLinks, Published, RenderError, Renderer, Wording};
pub use return_path::ReturnPaths;

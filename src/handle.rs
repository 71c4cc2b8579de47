//! What happens to one alert: parse it, find its référents, email each of
//! them, and say how it ended, as one [`Outcome`].
//!
//! This is the one function that decides an alert's fate. It touches no
//! broker: turning the outcome into acks and publishes is `outcome`'s job,
//! so tests can call [`Relay::handle`] directly with any body.

use std::sync::Arc;

use arc_swap::ArcSwap;
use futures_util::future::join_all;

use crate::alert::Alert;
use crate::email::Renderer;
use crate::mailer::{Mailer, SendError};
use crate::registry::{Referent, Registry};
use crate::telemetry::events;

/// Why an alert was dead-lettered; the value of its `x-relais-reason` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The message breaks the contract: fix the dispatch software.
    Invalid,
    /// Nobody in the registry for its kind and territory: fix the registry.
    Unroutable,
    /// The mail server refused it for good (5xx): fix the référent's address.
    Rejected,
    /// Every retry failed.
    Exhausted,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Unroutable => "unroutable",
            Self::Rejected => "rejected",
            Self::Exhausted => "exhausted",
        }
    }
}

/// How the handling of one alert ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every référent's mail server accepted its email.
    Delivered { emails: usize },
    /// A transient failure (SMTP 4xx, server unreachable): try again later.
    Retry { error: String },
    /// The alert cannot be delivered as it is; an operator must look at it.
    /// Référents that could be reached were emailed first.
    DeadLetter { reason: Reason, error: String },
}

/// The registry in force. Swapped whole on reload; an alert keeps the
/// registry it started with until it is done.
pub type SharedRegistry = Arc<ArcSwap<Registry>>;

/// Everything needed to relay alerts; one per daemon, shared by every task.
pub struct Relay {
    registry: SharedRegistry,
    renderer: Renderer,
    mailer: Mailer,
    max_message_bytes: usize,
}

impl Relay {
    pub fn new(
        registry: SharedRegistry,
        renderer: Renderer,
        mailer: Mailer,
        max_message_bytes: usize,
    ) -> Self {
        Self {
            registry,
            renderer,
            mailer,
            max_message_bytes,
        }
    }

    /// Relays one message body. Never panics and never fails: every way it
    /// can end is an [`Outcome`].
    pub async fn handle(&self, body: &[u8]) -> Outcome {
        match Alert::parse(body, self.max_message_bytes) {
            Ok(alert) => {
                let outcome = self.relay(&alert).await;
                events::alert_handled(Some(&alert), &outcome);
                outcome
            }
            Err(error) => {
                let outcome = Outcome::DeadLetter {
                    reason: Reason::Invalid,
                    error: error.to_string(),
                };
                events::alert_handled(None, &outcome);
                outcome
            }
        }
    }

    async fn relay(&self, alert: &Alert) -> Outcome {
        let registry = self.registry.load_full();
        let resolution = match registry.resolve(alert.kind(), alert.territory()) {
            Ok(resolution) => resolution,
            Err(unroutable) => {
                return Outcome::DeadLetter {
                    reason: Reason::Unroutable,
                    error: unroutable.to_string(),
                };
            }
        };
        let label = registry.kind_label(alert.kind());

        let sends = resolution
            .referents()
            .map(|referent| self.send(alert, referent, &label));
        let failures: Vec<SendError> = join_all(sends).await.into_iter().flatten().collect();

        if let Some(transient) = failures.iter().find(|f| f.is_transient()) {
            return Outcome::Retry {
                error: transient.to_string(),
            };
        }
        if !failures.is_empty() {
            let errors: Vec<String> = failures.iter().map(ToString::to_string).collect();
            return Outcome::DeadLetter {
                reason: Reason::Rejected,
                error: errors.join("; "),
            };
        }
        if let Some(unroutable) = resolution.unmatched_error(alert.territory()) {
            return Outcome::DeadLetter {
                reason: Reason::Unroutable,
                error: unroutable.to_string(),
            };
        }
        Outcome::Delivered {
            emails: resolution.referents().count(),
        }
    }

    /// Emails one référent; `Some` is the failure.
    async fn send(&self, alert: &Alert, referent: &Referent, label: &str) -> Option<SendError> {
        let message = match self.renderer.render(alert, referent, label) {
            Ok(message) => message,
            Err(error) => return Some(SendError::Permanent(error.to_string())),
        };
        let (envelope, email) = Mailer::prepare(&message);
        match self.mailer.send(&envelope, &email).await {
            Ok(accepted) => {
                events::email_sent(alert, referent, &accepted);
                None
            }
            Err(error) => {
                events::email_failed(alert, referent, &error);
                Some(error)
            }
        }
    }
}

//! What happens to one alert: parse it, find its référents, email each of
//! them that has not had it yet, and say how it ended, as one [`Outcome`].
//!
//! This is the one function that decides an alert's fate. It touches no
//! broker: turning the outcome into acks and publishes is `outcome`'s job,
//! so tests can call [`Relay::handle`] directly with any body.
//!
//! At most once per référent: the store is read before sending and written
//! as soon as a server accepted an email; two copies of one alert in flight
//! at once are handled one after the other (a per-alert lock), so the second
//! finds the first's records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use backon::{ExponentialBuilder, Retryable};
use futures_util::future::join_all;
use time::OffsetDateTime;
use tokio::sync::OwnedMutexGuard;

use crate::alert::{Alert, AlertId};
use crate::email::Renderer;
use crate::mailer::{Mailer, SendError};
use crate::registry::{Referent, Registry};
use crate::settings::RetrySettings;
use crate::store::{Delivery, Store};
use crate::telemetry::events::Events;

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
    /// Every référent's mail server accepted its email: `emails` now,
    /// `duplicates` earlier (a redelivery or a duplicate publish).
    Delivered { emails: usize, duplicates: usize },
    /// A transient failure (SMTP 4xx, server unreachable): try again later.
    Retry { error: String },
    /// The alert cannot be delivered as it is; an operator must look at it.
    /// Référents that could be reached were emailed first.
    DeadLetter { reason: Reason, error: String },
}

/// The registry in force. Swapped whole on reload; an alert keeps the
/// registry it started with until it is done.
pub type SharedRegistry = Arc<ArcSwap<Registry>>;

/// How each email is retried in process before the alert goes back to the
/// broker.
#[derive(Debug, Clone, Copy)]
pub struct ImmediateRetry {
    pub attempts: u32,
    pub base: Duration,
}

impl From<&RetrySettings> for ImmediateRetry {
    fn from(retry: &RetrySettings) -> Self {
        Self {
            attempts: retry.immediate,
            base: retry.immediate_base,
        }
    }
}

/// Everything needed to relay alerts; one per daemon, shared by every task.
pub struct Relay {
    registry: SharedRegistry,
    renderer: Renderer,
    mailer: Mailer,
    store: Store,
    retry: ImmediateRetry,
    max_message_bytes: usize,
    in_flight: AlertLocks,
    events: Events,
}

impl Relay {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        registry: SharedRegistry,
        renderer: Renderer,
        mailer: Mailer,
        store: Store,
        retry: ImmediateRetry,
        max_message_bytes: usize,
        events: Events,
    ) -> Self {
        Self {
            registry,
            renderer,
            mailer,
            store,
            retry,
            max_message_bytes,
            in_flight: AlertLocks::default(),
            events,
        }
    }

    /// The registry in force (for reloads and the metrics).
    pub fn registry(&self) -> &SharedRegistry {
        &self.registry
    }

    /// Relays one message body. Never panics and never fails: every way it
    /// can end is an [`Outcome`].
    pub async fn handle(&self, body: &[u8]) -> Outcome {
        let started = Instant::now();
        self.events.alert_received();
        match Alert::parse(body, self.max_message_bytes) {
            Ok(alert) => {
                let outcome = self.relay(&alert, started).await;
                self.events.alert_handled(Some(&alert), &outcome);
                outcome
            }
            Err(error) => {
                let outcome = Outcome::DeadLetter {
                    reason: Reason::Invalid,
                    error: error.to_string(),
                };
                self.events.alert_handled(None, &outcome);
                outcome
            }
        }
    }

    async fn relay(&self, alert: &Alert, started: Instant) -> Outcome {
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

        let _one_at_a_time = self.in_flight.lock(alert.id()).await;
        let served = match self.store.served(alert.id()) {
            Ok(served) => served,
            Err(error) => {
                return Outcome::Retry {
                    error: format!("cannot check who already received the alert: {error}"),
                };
            }
        };
        let (done, to_send): (Vec<&Referent>, Vec<&Referent>) = resolution
            .referents()
            .partition(|referent| served.iter().any(|id| id == referent.id().as_str()));
        for referent in &done {
            self.events.duplicate_skipped(alert, referent);
        }

        let sends = to_send
            .iter()
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
        // A copy whose référents all had it already is a duplicate (counted
        // as such), not another delivery.
        if !to_send.is_empty() {
            let mut networks: Vec<&str> = to_send.iter().map(|r| r.network()).collect();
            networks.sort_unstable();
            networks.dedup();
            self.events.alert_delivered(alert, &networks, started);
        }
        Outcome::Delivered {
            emails: to_send.len(),
            duplicates: done.len(),
        }
    }

    /// Emails one référent, retrying transient failures in process, and
    /// records the delivery; `Some` is the failure that remains.
    async fn send(&self, alert: &Alert, referent: &Referent, label: &str) -> Option<SendError> {
        let message = match self.renderer.render(alert, referent, label) {
            Ok(message) => message,
            Err(error) => return Some(SendError::Permanent(error.to_string())),
        };
        let (envelope, email) = Mailer::prepare(&message);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.base)
            .with_max_times(self.retry.attempts.saturating_sub(1) as usize)
            .with_jitter();
        let sent = (|| self.mailer.send(&envelope, &email))
            .retry(backoff)
            .when(SendError::is_transient)
            .notify(|error, wait| self.events.email_retrying(alert, referent, error, wait))
            .await;
        match sent {
            Ok(accepted) => {
                self.events
                    .email_sent(alert, referent, &accepted, accepted.took);
                let delivery = Delivery {
                    alert_id: alert.id().to_string(),
                    referent_id: referent.id().to_string(),
                    email: referent.email().to_string(),
                    message_id: self.renderer.message_id(alert, referent),
                    smtp_reply: accepted.reply,
                    delivered_at: OffsetDateTime::now_utc(),
                };
                // The email is delivered whatever happens to the record; a
                // failed record only costs the dedup of a later redelivery.
                if let Err(error) = self.store.record(delivery).await {
                    self.events.record_failed(alert, referent, &error);
                }
                None
            }
            Err(error) => {
                self.events.email_failed(alert, referent, &error);
                Some(error)
            }
        }
    }
}

/// One lock per alert id in flight, so that two copies of an alert are
/// handled one after the other. Entries live only while someone holds or
/// waits for them.
#[derive(Default)]
struct AlertLocks {
    held: Mutex<HashMap<AlertId, Arc<tokio::sync::Mutex<()>>>>,
}

struct AlertGuard<'a> {
    locks: &'a AlertLocks,
    id: AlertId,
    mutex: Arc<tokio::sync::Mutex<()>>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl AlertLocks {
    async fn lock(&self, id: &AlertId) -> AlertGuard<'_> {
        let mutex = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id.clone())
            .or_default()
            .clone();
        let guard = mutex.clone().lock_owned().await;
        AlertGuard {
            locks: self,
            id: id.clone(),
            mutex,
            guard: Some(guard),
        }
    }
}

impl Drop for AlertGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut held = self
            .locks
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The map's reference and ours: nobody else waits for this alert.
        if Arc::strong_count(&self.mutex) == 2 {
            held.remove(&self.id);
        }
    }
}

//! What happens to one alert: parse it, find its référents, email each of
//! them that has not had it yet, and say how it ended, as one [`Outcome`].
//!
//! This is the one function that decides an alert's fate. It touches no
//! broker: turning the outcome into acks and publishes is `amqp::settle`'s
//! job, so the unit tests (`tests.rs`) call [`Relay::handle`] directly with
//! any body (emails written as `.eml` files, a temporary store).
//!
//! At most once per référent: the store is read before sending and written
//! as soon as a server accepted an email; two copies of one alert in flight
//! at once are handled one after the other (a per-alert lock, `locks`),
//! so the second finds the first's records.
//!
//! An alert comes in one of two ways, each a file of its own that decides a
//! `Decision`: `deliver` (a new alert, to its référents) and `escalate` (the
//! timer of an escalation step, to the next people of a network that has not
//! acknowledged it); both email through `send`.

mod bounce;
mod deliver;
mod escalate;
mod hand_back;
mod locks;
mod send;
#[cfg(test)]
mod tests;

pub use deliver::CONSENT_REQUIRED;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::absences::DeclaredAbsences;
use crate::ack::Links;
use crate::alert::{Alert, AlertId};
use crate::flood::FloodGuard;
use crate::live_registry::SharedRegistry;
use crate::mail::{Mailer, Published, Renderer, ReturnPaths};
use crate::outcome::{NextStep, Outcome, Reason, Verdict};
use crate::settings::RetrySettings;
use crate::store::{AlertFacts, AlertKey, Fact, Store};
use crate::telemetry::events::Events;
use locks::AlertLocks;

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

/// What a [`Relay`] is made of, built by the daemon from the settings (or
/// by a test from whatever it needs).
pub struct RelayParts {
    /// The registry in force: who receives which alert. A reload swaps it;
    /// an alert keeps the one it started with.
    pub registry: SharedRegistry,
    /// Turns an alert into each référent's email.
    pub renderer: Renderer,
    /// The way out: the SMTP relay, or `.eml` files.
    pub mailer: Mailer,
    /// Who already has which alert (at most once per référent), and where
    /// each escalation stands.
    pub store: Store,
    /// How each email is retried in process (`retry.immediate`).
    pub retry: ImmediateRetry,
    /// The largest body read as an alert (`amqp.max_message_bytes`).
    pub max_message_bytes: usize,
    /// Whether an alert without `consent` is refused (`consent.required`).
    pub consent_required: bool,
    /// Counts the alerts each référent receives, to tell of a flood.
    pub flood: FloodGuard,
    /// Logs and counts each event of an alert's life.
    pub events: Events,
    /// The key of the content digests kept with each delivery (the
    /// store's `digest` key, shared by every relais on the store).
    pub digest_key: ring::hmac::Key,
}

/// Everything needed to relay alerts; one per daemon, shared by every task.
pub struct Relay {
    registry: SharedRegistry,
    renderer: Renderer,
    mailer: Mailer,
    store: Store,
    retry: ImmediateRetry,
    max_message_bytes: usize,
    consent_required: bool,
    /// One lock per alert in flight: copies of an alert, one at a time.
    in_flight: AlertLocks,
    flood: FloodGuard,
    events: Events,
    digest_key: ring::hmac::Key,
    /// The emails' acknowledgement links, when `ack.listen` is set.
    ack: Option<Arc<Links>>,
    /// Each email's own return path, when `smtp.bounce_address` is set.
    return_paths: Option<Arc<ReturnPaths>>,
    /// The absences référents declared on their page, read from the store
    /// and counted beside the registry's.
    absences: DeclaredAbsences,
}

/// `alert` with its publisher, as `message` came: the two make its identity
/// (two publishers may use one id).
fn published<'a>(alert: &'a Alert, message: &Incoming<'a>) -> Published<'a> {
    Published {
        alert,
        publisher: message.publisher.unwrap_or(""),
    }
}

/// The store's key of a published alert.
fn key<'a>(published: Published<'a>) -> AlertKey<'a> {
    AlertKey {
        publisher: published.publisher,
        id: published.alert.id().as_str(),
    }
}

/// What [`Relay::deliver`] or [`Relay::escalate`] decided for one alert:
/// its [`Outcome`], but for the alert's id.
#[derive(Debug)]
struct Decision {
    /// What happens to the alert next.
    verdict: Verdict,
    /// Every référent that has the alert now (by registry id), so that no
    /// retry or replay emails them again.
    served: Vec<String>,
    /// The step of escalation to schedule in the broker before the ack.
    next_step: Option<NextStep>,
}

impl Decision {
    /// A transient failure: the alert goes back to the broker, carrying
    /// the référents `served` so far.
    fn retry(error: String, served: Vec<String>) -> Self {
        Self {
            verdict: Verdict::Retry { error },
            served,
            next_step: None,
        }
    }

    /// The alert cannot be delivered as it is; the référents `served` so
    /// far go with it to the dead-letter queue.
    fn dead_letter(reason: Reason, error: String, served: Vec<String>) -> Self {
        Self {
            verdict: Verdict::DeadLetter { reason, error },
            served,
            next_step: None,
        }
    }
}

impl Relay {
    pub fn new(parts: RelayParts) -> Self {
        let RelayParts {
            registry,
            renderer,
            mailer,
            store,
            retry,
            max_message_bytes,
            consent_required,
            flood,
            events,
            digest_key,
        } = parts;
        Self {
            absences: DeclaredAbsences::new(store.clone(), events.clone()),
            registry,
            renderer,
            mailer,
            store,
            retry,
            max_message_bytes,
            consent_required,
            in_flight: AlertLocks::default(),
            flood,
            events,
            digest_key,
            ack: None,
            return_paths: None,
        }
    }

    /// This relay, with an acknowledgement link in each email.
    #[must_use]
    pub fn with_ack(mut self, links: Arc<Links>) -> Self {
        self.ack = Some(links);
        self
    }

    /// This relay, with each email's envelope sender its own return path,
    /// whose bounce `relais bounce` reads.
    #[must_use]
    pub fn with_return_paths(mut self, return_paths: Arc<ReturnPaths>) -> Self {
        self.return_paths = Some(return_paths);
        self
    }

    /// The registry in force (for reloads and the metrics).
    pub fn registry(&self) -> &SharedRegistry {
        &self.registry
    }

    /// The absences référents declare, as this relay reads them (for the
    /// pages, that tell it when one changed).
    pub fn absences(&self) -> &DeclaredAbsences {
        &self.absences
    }

    /// The way out (to close its connections).
    pub fn mailer(&self) -> &Mailer {
        &self.mailer
    }

    /// Relays one message. Never panics and never fails: every way it can
    /// end is an [`Outcome`].
    pub async fn handle(&self, message: Incoming<'_>) -> Outcome {
        let started = Instant::now();
        if message.escalation.is_none() {
            self.events.alert_received();
        }
        // The registry in force, and the geography it was checked against:
        // an alert keeps them until it is done.
        let registry = self.registry.load_full();
        match Alert::parse(message.body, self.max_message_bytes, registry.geography()) {
            Ok(alert) => {
                let decision = match message.escalation {
                    None => self.deliver(&registry, &alert, &message, started).await,
                    Some(step) => self.escalate(&registry, &alert, step, &message).await,
                };
                let outcome = Outcome {
                    verdict: decision.verdict,
                    alert_id: Some(alert.id().clone()),
                    served: decision.served,
                    next: decision.next_step,
                };
                self.events.alert_handled(Some(&alert), &outcome);
                outcome
            }
            Err(error) => {
                let outcome = Outcome {
                    alert_id: None,
                    verdict: Verdict::DeadLetter {
                        reason: Reason::Invalid,
                        error: error.to_string(),
                    },
                    served: Vec::new(),
                    next: None,
                };
                self.events.alert_handled(None, &outcome);
                outcome
            }
        }
    }

    /// Records that the next step of `outcome`'s escalation waits in the
    /// broker (called once the broker confirmed it): what `relais pending`
    /// shows, and what keeps a redelivered copy from scheduling it again.
    pub async fn escalation_scheduled(&self, publisher: Option<&str>, outcome: &Outcome) {
        let (Some(alert), Some(next)) = (&outcome.alert_id, outcome.next) else {
            return;
        };
        let due = next.due;
        let key = AlertKey {
            publisher: publisher.unwrap_or(""),
            id: alert.as_str(),
        };
        if let Err(error) = self.store.escalation_scheduled(key, next.step, due).await {
            tracing::warn!(alert_id = %alert, step = next.step, %error,
                "cannot record the escalation step scheduled; it will still happen");
        }
    }

    /// Writes the yearly report's fact of a message the broker confirmed in
    /// the dead-letter queue for `reason` (in the background: best
    /// effort): its publisher, and what could be read of it. A message
    /// that is not a valid alert is named by `named` (its `message_id`)
    /// when that is a valid id, else counted as an alert of its own.
    pub fn dead_lettered(
        &self,
        message: Incoming<'_>,
        outcome: &Outcome,
        named: Option<&str>,
        reason: Reason,
    ) {
        let now = time::OffsetDateTime::now_utc();
        let registry = self.registry.load();
        let alert = Alert::parse(message.body, self.max_message_bytes, registry.geography()).ok();
        let departement = alert.as_ref().map(|alert| alert.territory().departement());
        let about = alert
            .as_ref()
            .zip(departement.as_ref())
            .map(|(alert, departement)| AlertFacts {
                departement: departement.as_str(),
                kind: alert.kind().as_str(),
                received_at: now,
            });
        let id = match (&outcome.alert_id, named.map(AlertId::parse)) {
            (Some(id), _) => id.as_str().to_owned(),
            (None, Some(Ok(id))) => id.as_str().to_owned(),
            _ => unnamed(),
        };
        let key = AlertKey {
            publisher: message.publisher.unwrap_or(""),
            id: &id,
        };
        self.store
            .note(Fact::dead_lettered(key, reason.as_str(), about, now));
    }

    /// What `read` reads from the store, however long the store takes to
    /// answer again: an alert is held (unacked, in the broker's hands)
    /// while the store cannot be read, never retried down the ladder nor
    /// dead-lettered for it. relais is unready meanwhile (the store tells
    /// `health`), and a stop request leaves the alert to the broker.
    async fn hold_until_read<T, F, Fut>(&self, alert: &Alert, read: F) -> T
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, crate::store::StoreError>>,
    {
        let mut waits = crate::backoff::waits(Duration::from_millis(100));
        let mut failures: u32 = 0;
        loop {
            match read().await {
                Ok(value) => {
                    if failures > 0 {
                        self.events.store_back(alert, failures);
                    }
                    return value;
                }
                Err(error) => {
                    failures += 1;
                    let wait = waits
                        .next()
                        .unwrap_or(Duration::from_secs(5))
                        .min(Duration::from_secs(5));
                    self.events.store_unreadable(alert, &error, failures);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// A name for a dead letter that names no alert, so that it counts as an
/// alert of its own in the yearly report: random, and never a valid id.
fn unnamed() -> String {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0_u8; 16];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("unnamed {hex}")
}

/// A message as the broker delivered it, with what the broker vouches for.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub body: &'a [u8],
    /// The RabbitMQ user that published it (see `amqp::headers::publisher`).
    pub publisher: Option<&'a str>,
    /// Référents that relais already emailed about it, carried by the
    /// message itself (a retry or a replayed dead letter).
    pub served: &'a [String],
    /// The step of escalation this message is the timer of (see
    /// `amqp::headers::escalation`); `None` for an alert to deliver.
    pub escalation: Option<u8>,
}

impl<'a> Incoming<'a> {
    /// A message with no publisher and no history.
    pub fn body(body: &'a [u8]) -> Self {
        Self {
            body,
            publisher: None,
            served: &[],
            escalation: None,
        }
    }
}

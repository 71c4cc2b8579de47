//! What happens to one alert: parse it, find its référents, email each of
//! them that has not had it yet, and say how it ended, as one [`Outcome`].
//!
//! This is the one function that decides an alert's fate. It touches no
//! broker: turning the outcome into acks and publishes is `amqp::settle`'s
//! job, so the unit tests below call [`Relay::handle`] directly with any
//! body (emails written as `.eml` files, a temporary store).
//!
//! At most once per référent: the store is read before sending and written
//! as soon as a server accepted an email; two copies of one alert in flight
//! at once are handled one after the other (a per-alert lock), so the second
//! finds the first's records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use futures_util::future::join_all;
use time::OffsetDateTime;
use tokio::sync::OwnedMutexGuard;

use crate::ack::Links;
use crate::alert::{Alert, AlertId};
use crate::flood::{Flood, FloodGuard};
use crate::geography::Description;
use crate::live_registry::SharedRegistry;
use crate::mail::{Addressed, Mailer, Renderer, SendError};
use crate::outcome::{NextStep, Outcome, Reason, Verdict};
use crate::registry::{Referent, Registry};
use crate::settings::RetrySettings;
use crate::store::{Digest, SentEmail, Store, UNACKNOWLEDGED_STEP};
use crate::telemetry::events::Events;

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
    flood: FloodGuard,
    events: Events,
    /// The emails' acknowledgement links, when `ack.listen` is set.
    ack: Option<Arc<Links>>,
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
        flood: FloodGuard,
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
            flood,
            events,
            ack: None,
        }
    }

    /// This relay, with an acknowledgement link in each email.
    #[must_use]
    pub fn with_ack(mut self, links: Arc<Links>) -> Self {
        self.ack = Some(links);
        self
    }

    /// The registry in force (for reloads and the metrics).
    pub fn registry(&self) -> &SharedRegistry {
        &self.registry
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
                let (verdict, served, next) = match message.escalation {
                    None => self.deliver(&registry, &alert, &message, started).await,
                    Some(step) => self.escalate(&registry, &alert, step, &message).await,
                };
                let outcome = Outcome {
                    verdict,
                    alert_id: Some(alert.id().clone()),
                    served,
                    next,
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
    pub async fn escalation_scheduled(&self, outcome: &Outcome) {
        let (Some(alert), Some(next)) = (&outcome.alert_id, outcome.next) else {
            return;
        };
        let due = OffsetDateTime::now_utc() + next.after;
        if let Err(error) = self.store.escalation_scheduled(alert, next.step, due).await {
            tracing::warn!(alert_id = %alert, step = next.step, %error,
                "cannot record the escalation step scheduled; it will still happen");
        }
    }

    /// Emails each référent of `alert` that has not had it yet; returns
    /// the verdict and every référent that now has it.
    async fn deliver(
        &self,
        registry: &Registry,
        alert: &Alert,
        message: &Incoming<'_>,
        started: Instant,
    ) -> (Verdict, Vec<String>, Option<NextStep>) {
        let dead_letter =
            |reason, error: String| (Verdict::DeadLetter { reason, error }, Vec::new(), None);
        let geography = registry.geography();
        let location = geography.location(alert.territory());
        if let Err(forbidden) = registry
            .publishers()
            .authorize(message.publisher, alert, &location)
        {
            return dead_letter(Reason::Forbidden, forbidden.to_string());
        }
        let resolution = match registry.resolve(alert.kind(), alert.territory()) {
            Ok(resolution) => resolution,
            Err(unroutable) => return dead_letter(Reason::Unroutable, unroutable.to_string()),
        };
        if alert.territory().mapped().is_some() {
            self.events.territory_mapped(alert);
        }
        let digest = alert.digest();

        let _one_at_a_time = self.in_flight.lock(alert.id()).await;
        let recorded = self
            .hold_until_read(alert, || self.store.served(alert.id()))
            .await;
        if recorded
            .iter()
            .any(|r| r.digest.is_some_and(|d| d != digest))
        {
            return dead_letter(
                Reason::Conflict,
                format!(
                    "the id was already used by an alert of different content, delivered to \
                     {} référent(s); nobody was emailed: publish this alert with a new id",
                    recorded.len()
                ),
            );
        }
        let mut served: Vec<String> = message.served.to_vec();
        served.extend(recorded.into_iter().map(|r| r.referent_id));
        let (done, to_send): (Vec<&Referent>, Vec<&Referent>) = resolution
            .referents()
            .partition(|referent| served.iter().any(|id| id == referent.id().as_str()));
        for referent in &done {
            self.events.duplicate_skipped(alert, referent);
        }

        // Named in words only for the emails that go out.
        let label = registry.kind_label(alert.kind());
        let place = geography.describe(alert.territory());
        let sends = to_send.iter().map(|referent| {
            let addressed = resolution
                .on_behalf_of(referent)
                .map_or(Addressed::Directly, Addressed::OnBehalfOf);
            self.send(alert, referent, &label, &place, addressed, digest)
        });
        let results = join_all(sends).await;
        let mut failures = Vec::new();
        for (referent, result) in to_send.iter().zip(results) {
            match result {
                Some(failure) => failures.push(failure),
                None => {
                    served.push(referent.id().to_string());
                    let flood = self.flood.count(registry, referent, Instant::now());
                    if let Flood::Over { count, first } = flood {
                        self.events.referent_flooded(
                            alert,
                            referent,
                            count,
                            first,
                            self.flood.limit(),
                        );
                    }
                }
            }
        }
        served.sort_unstable();
        served.dedup();

        if let Some(transient) = failures.iter().find(|f| f.is_transient()) {
            let error = transient.to_string();
            return (Verdict::Retry { error }, served, None);
        }
        if !failures.is_empty() {
            let errors: Vec<String> = failures.iter().map(ToString::to_string).collect();
            let verdict = Verdict::DeadLetter {
                reason: Reason::Rejected,
                error: errors.join("; "),
            };
            return (verdict, served, None);
        }
        if let Some(unroutable) = resolution.unmatched_error(alert.territory()) {
            let verdict = Verdict::DeadLetter {
                reason: Reason::Unroutable,
                error: unroutable.to_string(),
            };
            return (verdict, served, None);
        }
        // A copy whose référents all had it already is a duplicate (counted
        // as such), not another delivery.
        if !to_send.is_empty() {
            let mut networks: Vec<&str> = to_send.iter().map(|r| r.network()).collect();
            networks.sort_unstable();
            networks.dedup();
            self.events.alert_delivered(alert, &networks, started);
        }
        let verdict = Verdict::Delivered {
            emails: to_send.len(),
            duplicates: done.len(),
        };
        (verdict, served, self.first_step(registry, alert).await)
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

    /// The first step of `alert`'s escalation, if its route escalates,
    /// acknowledgement links go out, and no copy of it scheduled it yet.
    async fn first_step(&self, registry: &Registry, alert: &Alert) -> Option<NextStep> {
        self.ack.as_ref()?;
        let after = registry.escalate_after(alert.kind(), alert.priority())?;
        match self.store.escalation(alert.id()).await {
            Ok(steps) if steps.is_empty() => Some(NextStep { step: 1, after }),
            Ok(_) => None,
            Err(error) => {
                // Scheduled again rather than never: a step carried out
                // twice emails nobody twice.
                tracing::warn!(alert_id = %alert.id(), %error,
                    "cannot read the escalation chain; scheduling its first step");
                Some(NextStep { step: 1, after })
            }
        }
    }

    /// Carries out step `step` of `alert`'s escalation: if a network it
    /// went to has not acknowledged it, email the next people of that
    /// network (step 1: the deputies of its référents, or its fallback
    /// référents if it has no deputy to add; step 2: its fallback
    /// référents), or, at the last step, declare it unacknowledged.
    /// Whoever already had the alert is not emailed again; a step already
    /// carried out (a copy of its message) is not carried out again.
    async fn escalate(
        &self,
        registry: &Registry,
        alert: &Alert,
        step: u8,
        message: &Incoming<'_>,
    ) -> (Verdict, Vec<String>, Option<NextStep>) {
        let nothing = Verdict::Delivered {
            emails: 0,
            duplicates: 0,
        };
        let _one_at_a_time = self.in_flight.lock(alert.id()).await;
        let steps = self
            .hold_until_read(alert, || self.store.escalation(alert.id()))
            .await;
        let after = registry.escalate_after(alert.kind(), alert.priority());
        let next = after
            .filter(|_| step < UNACKNOWLEDGED_STEP)
            .map(|after| NextStep {
                step: step + 1,
                after,
            });
        if steps.iter().any(|s| s.step == step && s.done_at.is_some()) {
            // A copy: carried out already. Its next step is scheduled
            // again only if relais stopped before recording it.
            let next = next.filter(|n| steps.iter().all(|s| s.step != n.step));
            return (nothing, message.served.to_vec(), next);
        }
        let recorded = self
            .hold_until_read(alert, || self.store.served(alert.id()))
            .await;
        let acknowledged = self
            .hold_until_read(alert, || self.store.acknowledged_networks(alert.id()))
            .await;
        let mut served: Vec<String> = message.served.to_vec();
        served.extend(recorded.into_iter().map(|r| r.referent_id));
        let now = OffsetDateTime::now_utc();
        let tiers = registry
            .escalation_tiers(alert.kind(), alert.territory(), now)
            .unwrap_or_default();
        let waiting: Vec<_> = tiers
            .iter()
            .filter(|tier| !acknowledged.iter().any(|n| n == tier.network))
            .collect();

        if step >= UNACKNOWLEDGED_STEP || waiting.is_empty() {
            let first = self.store.escalation_done(alert.id(), step, now).await;
            if step >= UNACKNOWLEDGED_STEP && matches!(first, Ok(true)) {
                for tier in &waiting {
                    self.events.alert_unacknowledged(alert, tier.network);
                }
            }
            return (nothing, served, None);
        }

        let had = |referent: &&Referent| served.iter().any(|id| id == referent.id().as_str());
        let mut to_send: Vec<&Referent> = Vec::new();
        for tier in &waiting {
            let deputies: Vec<&Referent> =
                tier.deputies.iter().copied().filter(|r| !had(r)).collect();
            let climb = if step == 1 && !deputies.is_empty() {
                deputies
            } else {
                tier.fallback.iter().copied().filter(|r| !had(r)).collect()
            };
            for referent in climb {
                if !to_send.iter().any(|r| r.id() == referent.id()) {
                    to_send.push(referent);
                }
            }
        }
        let waited = after.unwrap_or_default() * u32::from(step);
        let label = registry.kind_label(alert.kind());
        let place = registry.geography().describe(alert.territory());
        let addressed = Addressed::Escalated {
            unacknowledged_for: waited,
        };
        let digest = alert.digest();
        let sends = to_send
            .iter()
            .map(|referent| self.send(alert, referent, &label, &place, addressed, digest));
        let results = join_all(sends).await;
        let mut transient = None;
        let mut emails = 0;
        for (referent, result) in to_send.iter().zip(results) {
            match result {
                None => {
                    emails += 1;
                    served.push(referent.id().to_string());
                    let name = if step == 1 && tier_has_deputy(&waiting, referent) {
                        "deputies"
                    } else {
                        "fallback"
                    };
                    self.events.alert_escalated(alert, referent, name);
                }
                // A refused address is the registry's to fix (logged and
                // counted); the chain goes on without it.
                Some(failure) if failure.is_transient() => transient = Some(failure),
                Some(_) => {}
            }
        }
        served.sort_unstable();
        served.dedup();
        if let Some(failure) = transient {
            let error = failure.to_string();
            return (Verdict::Retry { error }, served, None);
        }
        if let Err(error) = self.store.escalation_done(alert.id(), step, now).await {
            tracing::warn!(alert_id = %alert.id(), step, %error,
                "cannot record the escalation step carried out");
        }
        let verdict = Verdict::Delivered {
            emails,
            duplicates: 0,
        };
        (verdict, served, next)
    }

    /// Emails one référent, retrying transient failures in process, and
    /// records the delivery; `Some` is the failure that remains.
    async fn send(
        &self,
        alert: &Alert,
        referent: &Referent,
        label: &str,
        place: &Description,
        addressed: Addressed<'_>,
        digest: Digest,
    ) -> Option<SendError> {
        // A failure to build the email is relais's (or its registry's), not
        // a mail server's refusal: it is never `rejected`. It is retried, so
        // that a registry fixed and reloaded meanwhile delivers the alert.
        let ack_link = self.ack.as_ref().map(|links| links.link(alert, referent));
        let email = match self.renderer.render(
            alert,
            referent,
            label,
            place,
            addressed,
            ack_link.as_deref(),
        ) {
            Ok(email) => email,
            Err(error) => {
                let error = SendError::Transient(format!(
                    "cannot build the email for référent {}: {error}",
                    referent.id()
                ));
                self.events.email_failed(alert, referent, &error);
                return Some(error);
            }
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.base)
            .with_max_times(self.retry.attempts.saturating_sub(1) as usize)
            .with_jitter();
        let sent = (|| self.mailer.send(&email))
            .retry(backoff)
            .when(SendError::is_transient)
            .notify(|error, wait| self.events.email_retrying(alert, referent, error, wait))
            .await;
        match sent {
            Ok(accepted) => {
                let delivered = !matches!(addressed, Addressed::Escalated { .. });
                self.events
                    .email_sent(alert, referent, &accepted, delivered);
                let sent = SentEmail {
                    alert_id: alert.id().to_string(),
                    referent_id: referent.id().to_string(),
                    network: Some(referent.network().to_owned()),
                    email: referent.email().to_string(),
                    message_id: email.message_id().to_owned(),
                    smtp_reply: accepted.reply,
                    delivered_at: OffsetDateTime::now_utc(),
                };
                // The email is delivered whatever happens to the record; a
                // failed record only costs the dedup of a later redelivery.
                if let Err(error) = self.store.record(sent, digest).await {
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

/// Whether `referent` is among the deputies of a waiting network.
fn tier_has_deputy(tiers: &[&crate::registry::EscalationTiers<'_>], referent: &Referent) -> bool {
    tiers
        .iter()
        .any(|tier| tier.deputies.iter().any(|d| d.id() == referent.id()))
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

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::health::Health;
    use crate::settings::Outbound;
    use crate::telemetry::metrics::Metrics;

    const REGISTRY: &str = r#"
        [[route]]
        kind = "orientation_sociale"
        networks = ["ccas"]
        label = "Orientation sociale"

        [[referent]]
        id = "ccas-paris-13"
        network = "ccas"
        email = "camille.martin@ccas-paris13.example.org"
        communes = ["75113"]

        [[referent]]
        id = "ccas-paris"
        network = "ccas"
        email = "social@paris.example.org"
        departements = ["75"]
    "#;

    /// A relay writing its emails as `.eml` files in `mail/`, with its
    /// store in `relais.db`, both in `dir`.
    fn relay(dir: &Path) -> Relay {
        relay_with(dir, REGISTRY)
    }

    fn relay_with(dir: &Path, registry: &str) -> Relay {
        let registry = Registry::from_toml(registry, crate::testing::france()).unwrap();
        let events = Events::new(Arc::new(Metrics::new()));
        Relay::new(
            crate::live_registry::shared(registry),
            Renderer::new("relais <relais@sos75.example.org>".parse().unwrap(), true).unwrap(),
            Mailer::new(
                &Outbound::Files(dir.join("mail")),
                Arc::new(Health::default()),
            )
            .unwrap(),
            Store::sqlite(&dir.join("relais.db")).unwrap(),
            ImmediateRetry {
                attempts: 1,
                base: Duration::from_millis(1),
            },
            65536,
            FloodGuard::new(50),
            events,
        )
    }

    fn alert(id: &str, commune: &str) -> Vec<u8> {
        serde_json::json!({
            "id": id,
            "kind": "orientation_sociale",
            "priority": "urgent",
            "emitted_at": "2026-11-22T08:15:00+01:00",
            "association": "SOS Médecins Paris",
            "territory": { "commune": commune },
            "summary": "Personne âgée isolée.",
        })
        .to_string()
        .into_bytes()
    }

    /// The `.eml` files written so far.
    fn emails(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir.join("mail"))
            .map(|entries| entries.map(|entry| entry.unwrap().path()).collect())
            .unwrap_or_default()
    }

    fn recipients(dir: &Path) -> Vec<String> {
        let mut to: Vec<String> = emails(dir)
            .iter()
            .filter(|path| path.extension().is_some_and(|e| e == "eml"))
            .map(|path| {
                let raw = std::fs::read_to_string(path).unwrap();
                let line = raw.lines().find(|l| l.starts_with("To: ")).unwrap();
                line.trim_start_matches("To: ").to_owned()
            })
            .collect();
        to.sort();
        to
    }

    #[tokio::test]
    async fn an_alert_is_emailed_to_the_most_specific_referents_of_its_territory() {
        let dir = tempfile::tempdir().unwrap();
        let relay = relay(dir.path());

        let outcome = relay
            .handle(Incoming::body(&alert("SOS75-1", "75113")))
            .await;

        assert_eq!(outcome.alert_id, Some(AlertId::parse("SOS75-1").unwrap()));
        assert_eq!(
            outcome.verdict,
            Verdict::Delivered {
                emails: 1,
                duplicates: 0
            }
        );
        assert_eq!(
            recipients(dir.path()),
            ["camille.martin@ccas-paris13.example.org"]
        );
    }

    #[tokio::test]
    async fn the_same_alert_again_emails_nobody_and_counts_as_a_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let relay = relay(dir.path());
        relay
            .handle(Incoming::body(&alert("SOS75-2", "75112")))
            .await;

        let again = relay
            .handle(Incoming::body(&alert("SOS75-2", "75112")))
            .await;

        assert_eq!(
            again.verdict,
            Verdict::Delivered {
                emails: 0,
                duplicates: 1
            }
        );
        assert_eq!(recipients(dir.path()), ["social@paris.example.org"]);
    }

    #[tokio::test]
    async fn a_message_that_is_not_an_alert_is_dead_lettered_as_invalid_and_emails_nobody() {
        let dir = tempfile::tempdir().unwrap();
        let relay = relay(dir.path());

        let outcome = relay.handle(Incoming::body(b"{\"id\": \"SOS75-3\"}")).await;

        assert_eq!(outcome.alert_id, None);
        let Verdict::DeadLetter { reason, error } = outcome.verdict else {
            panic!("not dead-lettered: {outcome:?}");
        };
        assert_eq!(reason, Reason::Invalid);
        assert!(error.contains("kind"), "{error}");
        assert!(emails(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn an_alert_nobody_serves_is_dead_lettered_as_unroutable() {
        let dir = tempfile::tempdir().unwrap();
        let relay = relay(dir.path());

        let outcome = relay
            .handle(Incoming::body(&alert("SOS13-1", "13055")))
            .await;

        assert_eq!(outcome.alert_id, Some(AlertId::parse("SOS13-1").unwrap()));
        assert!(
            matches!(
                outcome.verdict,
                Verdict::DeadLetter {
                    reason: Reason::Unroutable,
                    ..
                }
            ),
            "{outcome:?}"
        );
        assert!(emails(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn an_email_that_cannot_be_handed_over_is_retried_later_and_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let relay = relay(dir.path());
        // The folder of emails is replaced by a file: every write fails.
        std::fs::remove_dir(dir.path().join("mail")).unwrap();
        std::fs::write(dir.path().join("mail"), "not a folder").unwrap();

        let outcome = relay
            .handle(Incoming::body(&alert("SOS75-4", "75113")))
            .await;

        let Verdict::Retry { error } = outcome.verdict else {
            panic!("not retried: {outcome:?}");
        };
        assert!(error.starts_with("cannot write the email file"), "{error}");
        let served = relay
            .store
            .served(&AlertId::parse("SOS75-4").unwrap())
            .await
            .unwrap();
        assert!(served.is_empty(), "{served:?}");
    }

    #[tokio::test]
    async fn another_alert_with_a_used_id_is_a_conflict_and_emails_nobody() {
        let dir = tempfile::tempdir().unwrap();
        let relay = relay(dir.path());
        relay
            .handle(Incoming::body(&alert("SOS75-5", "75113")))
            .await;

        let other = relay
            .handle(Incoming::body(&alert("SOS75-5", "75112")))
            .await;

        let Verdict::DeadLetter { reason, error } = other.verdict else {
            panic!("not dead-lettered: {other:?}");
        };
        assert_eq!(reason, Reason::Conflict);
        assert_eq!(
            error,
            "the id was already used by an alert of different content, delivered to 1 \
             référent(s); nobody was emailed: publish this alert with a new id"
        );
        assert!(other.served.is_empty(), "{:?}", other.served);
        assert_eq!(
            recipients(dir.path()),
            ["camille.martin@ccas-paris13.example.org"]
        );
    }

    #[tokio::test]
    async fn the_same_alert_laid_out_differently_is_a_duplicate_not_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let relay = relay(dir.path());
        relay
            .handle(Incoming::body(&alert("SOS75-6", "75113")))
            .await;
        let relaid = "{ \"summary\": \"Personne âgée isolée.\", \"territory\": {\"commune\": \"75113\"},\n\
              \"association\": \"SOS Médecins Paris\", \"emitted_at\": \"2026-11-22T08:15:00+01:00\",\n\
              \"priority\": \"urgent\", \"kind\": \"orientation_sociale\", \"id\": \"SOS75-6\" }";

        let again = relay.handle(Incoming::body(relaid.as_bytes())).await;

        assert_eq!(
            again.verdict,
            Verdict::Delivered {
                emails: 0,
                duplicates: 1
            }
        );
        assert_eq!(again.served, ["ccas-paris-13"]);
    }

    #[tokio::test]
    async fn a_referent_the_message_says_was_served_is_not_emailed_again() {
        let dir = tempfile::tempdir().unwrap();
        let relay = relay(dir.path());
        let body = alert("SOS75-7", "75113");
        let served = ["ccas-paris-13".to_owned()];

        let outcome = relay
            .handle(Incoming {
                body: &body,
                publisher: None,
                served: &served,
                escalation: None,
            })
            .await;

        assert_eq!(
            outcome.verdict,
            Verdict::Delivered {
                emails: 0,
                duplicates: 1
            }
        );
        assert!(emails(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn with_publishers_declared_an_alert_from_another_user_is_forbidden() {
        let dir = tempfile::tempdir().unwrap();
        let registry = format!(
            "{REGISTRY}
            [[publisher]]
            user = \"sos75\"
            association = \"SOS Médecins Paris\"
            departements = [\"75\"]
            "
        );
        let relay = relay_with(dir.path(), &registry);
        let body = alert("SOS75-8", "75113");
        let from = |publisher| Incoming {
            body: &body,
            publisher,
            served: &[],
            escalation: None,
        };

        let anonymous = relay.handle(from(None)).await;
        let stranger = relay.handle(from(Some("sos13"))).await;
        let allowed = relay.handle(from(Some("sos75"))).await;

        for (outcome, error) in [
            (
                anonymous,
                "the message has no `user_id`: the registry declares its publishers, so every \
                 alert must carry its publisher's RabbitMQ user in `user_id`",
            ),
            (
                stranger,
                "broker user `sos13` is not a [[publisher]] of the registry",
            ),
        ] {
            assert_eq!(
                outcome.verdict,
                Verdict::DeadLetter {
                    reason: Reason::Forbidden,
                    error: error.into()
                }
            );
        }
        assert_eq!(
            allowed.verdict,
            Verdict::Delivered {
                emails: 1,
                duplicates: 0
            }
        );
        assert_eq!(
            recipients(dir.path()),
            ["camille.martin@ccas-paris13.example.org"]
        );
    }
}

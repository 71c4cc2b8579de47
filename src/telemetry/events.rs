//! The events of an alert's life, and of the daemon's. Each logs (with the
//! alert's id, kind and territory, the référent's id, never patient data)
//! and counts: one function per event, so that a log line and its metric
//! never drift apart. Nothing else in relais logs an event and counts it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use time::{Date, OffsetDateTime};
use tracing::{debug, error, info, warn};

use crate::alert::Alert;
use crate::follow_up::FollowUp;
use crate::mail::{Accepted, SendError};
use crate::outcome::{Outcome, Reason, Verdict};
use crate::registry::{Referent, Registry, short_digest as short};
use crate::store::{Acknowledged, StoreError};
use crate::telemetry::metrics::{
    self, ActionLabel, ClassLabel, DelayLabel, FollowUpLabel, Metrics, NetworkLabel, QueueLabel,
    ReasonLabel, ReferentLabel, StepLabel,
};
use crate::telemetry::status::{ReferentRef, Status, StatusEvent, StatusSink};

/// What relais says of a registry without `[[publisher]]`, at each load
/// and in `relais check`.
pub const NO_PUBLISHER: &str = "the registry declares no [[publisher]]: any broker user may \
     publish alerts for any territory, as any association; declare each dispatch software's \
     RabbitMQ user (docs/operations.md, \"Publishers\")";

/// Logs and counts, and tells the dispatch software what became of each
/// alert; cheap to clone, every clone shares the metrics.
#[derive(Clone)]
pub struct Events {
    metrics: Arc<Metrics>,
    /// Where alerts' status events go (published by `amqp::status`); none
    /// in the unit tests.
    status: Option<StatusSink>,
}

impl Events {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            status: None,
        }
    }

    /// These events, also published to the dispatch software through `sink`.
    pub fn with_status(mut self, sink: StatusSink) -> Self {
        self.status = Some(sink);
        self
    }

    /// Hands an alert's status event over; one that must be dropped (the
    /// buffer is full) is counted and logged.
    fn status(&self, event: StatusEvent<'_>) {
        let Some(sink) = &self.status else {
            return;
        };
        if !sink.send(&event) {
            let status = event.status.as_str();
            let alert_id = event.alert_id.unwrap_or("-");
            // One line for the first drop and each thousandth after it.
            let before = self.metrics.events_dropped.inc();
            if before.is_multiple_of(1000) {
                warn!(
                    %alert_id,
                    status,
                    dropped = before + 1,
                    "alerts' events dropped: they wait for the broker and their buffer is full"
                );
            }
        }
    }

    /// A registry was loaded, at start-up or on reload.
    pub fn registry_loaded(&self, registry: &Registry, origin: &str, reload: bool) {
        let referents = registry.referents().len();
        let publishers = registry.publishers().len();
        self.metrics
            .registry_referents
            .set(i64::try_from(referents).unwrap_or(i64::MAX));
        self.metrics
            .registry_reload_success
            .set(metrics::now_seconds());
        self.metrics.registry_info.clear();
        self.metrics
            .registry_info
            .get_or_create(&metrics::RegistryLabel {
                digest: short(registry.digest()).to_owned(),
                version: registry.version().unwrap_or_default().to_owned(),
            })
            .set(1);
        let digest = short(registry.digest());
        let version = registry.version().unwrap_or("-");
        if reload {
            info!(registry = %origin, digest, version, referents, "registry reloaded");
        } else {
            info!(registry = %origin, digest, version, referents, "registry loaded");
        }
        self.publishers_declared(publishers);
    }

    /// A relais started on a shared store where no registry was published
    /// yet: its file is now the fleet's.
    pub fn registry_published_first(&self, registry: &Registry) {
        info!(
            digest = short(registry.digest()),
            version = registry.version().unwrap_or("-"),
            "no registry was published on this store yet: this relais's registry.path is now \
             the one every relais of the store routes with"
        );
    }

    /// This relais's `registry.path` is not the registry its fleet routes
    /// with; the fleet's is in force.
    pub fn registry_file_differs(&self, file: &Registry, fleet: &Registry) {
        warn!(
            file = short(file.digest()),
            fleet = short(fleet.digest()),
            fleet_version = fleet.version().unwrap_or("-"),
            "registry.path differs from the registry published on the store: relais routes \
             with the published one, as every relais of the store does; run `relais registry \
             publish FILE` to make a file the fleet's (docs/operations.md, \"Maintaining the \
             registry\")"
        );
    }

    /// An office confirmed receipt of a probe of its address.
    pub fn probe_confirmed(&self, referent: &str) {
        info!(referent, "an office confirmed receipt of a test email");
    }

    /// The store could not say which registry the fleet routes with; the
    /// registry in force stays.
    pub fn registry_unfollowed(&self, error: &dyn std::fmt::Display) {
        let error = crate::telemetry::one_line(error);
        warn!(%error, "cannot read the fleet's registry from the store; the registry in force stays");
    }

    /// How many publishers the registry in force declares; with none, a
    /// warning at each load, since any broker user may then alert any
    /// office as any association.
    fn publishers_declared(&self, publishers: usize) {
        self.metrics
            .publishers_declared
            .set(i64::try_from(publishers).unwrap_or(i64::MAX));
        if publishers == 0 {
            warn!("{NO_PUBLISHER}");
        }
    }

    /// A reload was refused; the registry in force stays.
    pub fn registry_refused(&self, error: &dyn std::fmt::Display) {
        self.metrics.registry_reload_failures.inc();
        self.metrics
            .registry_reload_failure
            .set(metrics::now_seconds());
        let error = crate::telemetry::one_line(error);
        error!(%error, "registry reload refused; the registry in force stays");
    }

    /// Consuming from the broker (again).
    pub fn broker_connected(&self) {
        self.metrics.amqp_connected.set(1);
    }

    /// Another consumer is on the main queue while this relais keeps its
    /// store in a SQLite file of its own: the two do not know what the
    /// other sent, so an alert redelivered from one to the other may be
    /// emailed twice.
    pub fn queue_shared_on_sqlite(&self, queue: &str, consumers: u32) {
        warn!(
            queue,
            consumers,
            "another consumer is on this queue, and this relais's store is SQLite: two relais \
             on one queue must share a PostgreSQL store (store.url), or a référent may be \
             emailed twice"
        );
    }

    /// The session with the broker ended.
    pub fn broker_disconnected(&self) {
        self.metrics.amqp_connected.set(0);
    }

    /// A queue's depth and consumers, as the broker gave them (`None`:
    /// the queue does not exist).
    pub fn queue_read(&self, queue: &str, messages: Option<u32>, consumers: Option<u32>) {
        let label = QueueLabel {
            queue: queue.to_owned(),
        };
        self.metrics
            .queue_messages
            .get_or_create(&label)
            .set(messages.map_or(0, i64::from));
        self.metrics
            .queue_consumers
            .get_or_create(&label)
            .set(consumers.map_or(0, i64::from));
    }

    /// The alert named its commune by a former code or a commune
    /// déléguée's; relais read it as the current commune.
    pub fn territory_mapped(&self, alert: &Alert) {
        if let Some(mapped) = alert.territory().mapped() {
            info!(
                alert_id = %alert.id(),
                given = %mapped.from,
                territory = %alert.territory(),
                "the alert's commune code is a former code or a commune déléguée's; read as the current commune"
            );
        }
    }

    pub fn alert_received(&self) {
        self.metrics.alerts_received.inc();
    }

    /// A mail server accepted an email; `delivered`: it is the alert's
    /// delivery to this référent (an escalation's email is told as
    /// `escalated` instead, by [`Events::alert_escalated`]).
    pub fn email_sent(
        &self,
        publisher: &str,
        alert: &Alert,
        referent: &Referent,
        accepted: &Accepted,
        delivered: bool,
    ) {
        self.metrics.emails_sent.inc();
        if delivered {
            self.status(
                StatusEvent::new(publisher, Some(alert.id().as_str()), Status::Delivered)
                    .for_referent(referent),
            );
        }
        self.metrics
            .smtp_send_duration
            .observe(accepted.took.as_secs_f64());
        // One info line per alert ("alert delivered"); each email's
        // reply is also in the audit store (`relais audit`).
        debug!(
            alert_id = %alert.id(),
            kind = %alert.kind(),
            territory = %alert.territory(),
            referent = %referent.id(),
            network = referent.network(),
            smtp_reply = %accepted.reply,
            "email accepted by the mail server"
        );
    }

    pub fn email_retrying(
        &self,
        alert: &Alert,
        referent: &Referent,
        failure: &SendError,
        wait: Duration,
    ) {
        self.count_failure(failure);
        warn!(
            alert_id = %alert.id(),
            referent = %referent.id(),
            class = failure.class(),
            error = %failure,
            retry_in = ?wait,
            "email not accepted, retrying"
        );
    }

    pub fn email_failed(&self, alert: &Alert, referent: &Referent, failure: &SendError) {
        self.count_failure(failure);
        warn!(
            alert_id = %alert.id(),
            kind = %alert.kind(),
            territory = %alert.territory(),
            referent = %referent.id(),
            class = failure.class(),
            error = %failure,
            "email not accepted"
        );
    }

    fn count_failure(&self, failure: &SendError) {
        let class = ClassLabel {
            class: failure.class().to_owned(),
        };
        self.metrics.emails_failed.get_or_create(&class).inc();
    }

    pub fn duplicate_skipped(&self, alert: &Alert, referent: &Referent) {
        self.metrics.duplicates_skipped.inc();
        info!(
            alert_id = %alert.id(),
            kind = %alert.kind(),
            referent = %referent.id(),
            "référent already emailed about this alert; not sent again"
        );
    }

    /// One more alert to a référent past `registry.max_alerts_per_referent_per_hour`
    /// (`count`-th in the hour); logged only for the `first` past the limit.
    pub fn referent_flooded(
        &self,
        alert: &Alert,
        referent: &Referent,
        count: u32,
        first: bool,
        limit: u32,
    ) {
        let label = NetworkLabel {
            network: referent.network().to_owned(),
        };
        self.metrics.referent_floods.get_or_create(&label).inc();
        if first {
            warn!(
                alert_id = %alert.id(),
                referent = %referent.id(),
                network = referent.network(),
                count,
                limit,
                "more alerts to this référent in an hour than registry.max_alerts_per_referent_per_hour: \
                 still delivered; check who publishes them (relais audit --since 1h)"
            );
        }
    }

    /// The store cannot be read; the alert waits for it (logged at the
    /// first failure and every tenth after it).
    pub fn store_unreadable(&self, alert: &Alert, error: &StoreError, failures: u32) {
        if failures == 1 || failures.is_multiple_of(10) {
            warn!(
                alert_id = %alert.id(),
                %error,
                failures,
                "cannot read the store; the alert waits for it"
            );
        }
    }

    /// The store answers again after `failures` failed reads.
    pub fn store_back(&self, alert: &Alert, failures: u32) {
        info!(alert_id = %alert.id(), failures, "the store answers again");
    }

    pub fn record_failed(&self, alert: &Alert, referent: &Referent, failure: &StoreError) {
        error!(
            alert_id = %alert.id(),
            referent = %referent.id(),
            error = %failure,
            "email sent but not recorded in the store: a redelivery could email this référent again"
        );
    }

    /// The declared absences cannot be read: alerts are resolved with the
    /// registry's absences alone meanwhile (logged at the first failure and
    /// every sixtieth after it).
    pub fn absences_unreadable(&self, error: &StoreError, failures: u32) {
        if failures == 1 || failures.is_multiple_of(60) {
            warn!(
                %error,
                failures,
                "cannot read the declared absences: alerts go by the registry's absences alone"
            );
        }
    }

    /// The declared absences are read again after `failures` failures.
    pub fn absences_read_again(&self, failures: u32) {
        info!(failures, "the declared absences are read again");
    }

    /// A référent declared an absence on its page (`deputy`: the one it
    /// chose to stand in).
    pub fn absence_declared(
        &self,
        referent: &Referent,
        from: Date,
        to: Date,
        deputy: Option<&str>,
    ) {
        info!(
            referent = %referent.id(),
            network = referent.network(),
            %from,
            %to,
            deputy = deputy.unwrap_or("-"),
            "absence declared by the référent"
        );
    }

    /// A référent cancelled an absence it had declared.
    pub fn absence_cancelled(&self, referent: &Referent, from: Date, to: Date) {
        info!(
            referent = %referent.id(),
            network = referent.network(),
            %from,
            %to,
            "absence cancelled by the référent"
        );
    }

    /// A référent acknowledged an alert from its email's link (the first
    /// time; `referent` is `None` if it has left the registry since).
    pub fn alert_acknowledged(
        &self,
        publisher: &str,
        alert_id: &str,
        referent_id: &str,
        referent: Option<&Referent>,
        acknowledged: &Acknowledged,
    ) {
        self.metrics.acknowledgements.inc();
        if let (Some(network), Some(waited)) = (&acknowledged.network, acknowledged.waited) {
            let label = NetworkLabel {
                network: network.clone(),
            };
            self.metrics
                .acknowledgement_time
                .get_or_create(&label)
                .observe(waited.as_secs_f64());
        }
        info!(alert_id, referent = referent_id, "alert acknowledged");
        let event = StatusEvent::new(publisher, Some(alert_id), Status::Acknowledged);
        self.status(about(
            event,
            referent_id,
            referent,
            acknowledged.network.as_deref(),
        ));
    }

    /// A référent said what they did about an alert (`referent` is `None`
    /// if it has left the registry since; `network` as recorded with its
    /// email).
    pub fn alert_followed_up(
        &self,
        publisher: &str,
        alert_id: &str,
        referent_id: &str,
        referent: Option<&Referent>,
        network: Option<&str>,
        follow_up: FollowUp,
    ) {
        let label = FollowUpLabel {
            outcome: follow_up.code(),
            network: network.unwrap_or_default().to_owned(),
        };
        self.metrics.follow_ups.get_or_create(&label).inc();
        info!(
            alert_id,
            referent = referent_id,
            outcome = follow_up.code(),
            "alert followed up"
        );
        let mut event = StatusEvent::new(publisher, Some(alert_id), Status::FollowedUp);
        event.outcome = Some(follow_up.code());
        self.status(about(event, referent_id, referent, network));
    }

    /// A référent was emailed that a colleague of their network
    /// acknowledged an alert they also received (`ack.notify_colleagues`),
    /// or the mail server did not take that email (it is not tried again:
    /// their page says the same).
    pub fn colleague_notified(
        &self,
        alert_id: &str,
        referent_id: &str,
        sent: Result<&Accepted, &SendError>,
    ) {
        match sent {
            Ok(accepted) => {
                self.metrics.emails_sent.inc();
                info!(
                    alert_id,
                    referent = referent_id,
                    smtp_reply = %accepted.reply,
                    "référent emailed that a colleague acknowledged the alert"
                );
            }
            Err(failure) => {
                self.count_failure(failure);
                warn!(
                    alert_id,
                    referent = referent_id,
                    class = failure.class(),
                    error = %failure,
                    "cannot email a référent that a colleague acknowledged the alert; their page says so"
                );
            }
        }
    }

    /// Nobody in `referent`'s network acknowledged the alert in time, and
    /// step `step` of escalation emailed it.
    pub fn alert_escalated(
        &self,
        publisher: &str,
        alert: &Alert,
        referent: &Referent,
        step: &'static str,
    ) {
        self.metrics
            .escalations
            .get_or_create(&StepLabel { step })
            .inc();
        warn!(
            alert_id = %alert.id(),
            referent = %referent.id(),
            network = referent.network(),
            step,
            "alert escalated: nobody acknowledged it in time"
        );
        self.status(
            StatusEvent::new(publisher, Some(alert.id().as_str()), Status::Escalated)
                .for_referent(referent),
        );
    }

    /// `referent`'s mailbox refused its email about `alert_id` for good
    /// (a bounce of status `status`), and the alert was sent on to
    /// `sent_to` people (its deputies, else the network's fallback).
    pub fn referent_bounced(
        &self,
        publisher: &str,
        alert_id: &str,
        referent: &Referent,
        status: &str,
        sent_to: usize,
    ) {
        self.metrics
            .referent_bounces
            .get_or_create(&ReferentLabel {
                referent: referent.id().to_string(),
                network: referent.network().to_owned(),
            })
            .inc();
        warn!(
            alert_id,
            referent = %referent.id(),
            network = referent.network(),
            status,
            sent_to,
            "a référent's mailbox refused an alert for good: it was sent on; fix the address \
             in the registry"
        );
        let mut event =
            StatusEvent::new(publisher, Some(alert_id), Status::Bounced).for_referent(referent);
        event.smtp_status = Some(status);
        self.status(event);
    }

    /// The escalation chain ended with nobody in `network` acknowledging.
    pub fn alert_unacknowledged(&self, publisher: &str, alert: &Alert, network: &str) {
        let label = NetworkLabel {
            network: network.to_owned(),
        };
        self.metrics
            .alerts_unacknowledged
            .get_or_create(&label)
            .inc();
        error!(
            alert_id = %alert.id(),
            kind = %alert.kind(),
            network,
            "alert unacknowledged: its escalation chain ended and nobody in the network acknowledged it"
        );
        let mut event =
            StatusEvent::new(publisher, Some(alert.id().as_str()), Status::Unacknowledged);
        event.network = Some(network);
        self.status(event);
    }

    /// How many alerts wait for an acknowledgement (from the store).
    pub fn alerts_pending(&self, count: usize) {
        self.metrics
            .alerts_pending
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// An alert all of whose référents have it; `networks` are those of
    /// its référents.
    pub fn alert_delivered(&self, alert: &Alert, networks: &[&str], started: Instant) {
        for network in networks {
            let label = NetworkLabel {
                network: (*network).to_owned(),
            };
            self.metrics.alerts_delivered.get_or_create(&label).inc();
        }
        let age = OffsetDateTime::now_utc() - alert.emitted_at();
        self.metrics
            .alert_latency
            .observe(age.as_seconds_f64().max(0.0));
        self.metrics
            .relay_latency
            .observe(started.elapsed().as_secs_f64());
    }

    /// How the handling of an alert ended (`alert` is `None` for a
    /// message that is not a valid alert).
    pub fn alert_handled(&self, alert: Option<&Alert>, outcome: &Outcome) {
        let outcome = &outcome.verdict;
        let alert_id = alert.map(|alert| alert.id().as_str()).unwrap_or("-");
        let kind = alert.map(|alert| alert.kind().as_str()).unwrap_or("-");
        let territory = alert.map(|alert| alert.territory().to_string());
        let territory = territory.as_deref().unwrap_or("-");
        match outcome {
            Verdict::Delivered { emails, duplicates } => {
                info!(%alert_id, %kind, %territory, emails, duplicates, "alert delivered");
            }
            Verdict::Retry { error } => {
                warn!(%alert_id, %kind, %territory, %error, "alert to retry");
            }
            Verdict::DeadLetter { reason, error } => {
                warn!(%alert_id, %kind, %territory, reason = reason.as_str(), %error, "alert to dead-letter");
            }
        }
    }

    pub fn retry_scheduled(&self, alert_id: &str, attempts: i32, delay: Duration) {
        let delay = humantime::format_duration(delay).to_string();
        self.metrics
            .alerts_retried
            .get_or_create(&DelayLabel {
                delay: delay.clone(),
            })
            .inc();
        warn!(alert_id, attempts, retry_in = %delay, "alert sent to the retry queue");
    }

    pub fn dead_lettered(&self, publisher: &str, alert_id: &str, reason: Reason) {
        let label = ReasonLabel {
            reason: reason.as_str().to_owned(),
        };
        self.metrics
            .alerts_dead_lettered
            .get_or_create(&label)
            .inc();
        warn!(alert_id, reason = reason.as_str(), "alert dead-lettered");
        let known = (alert_id != "-").then_some(alert_id);
        self.status(
            StatusEvent::new(publisher, known, Status::DeadLettered).because(reason.as_str()),
        );
    }

    pub fn settle_failed(&self, alert_id: &str, action: &str, error: &dyn std::fmt::Display) {
        let label = ActionLabel {
            action: action.to_owned(),
        };
        self.metrics.settle_failures.get_or_create(&label).inc();
        error!(
            alert_id,
            action,
            %error,
            "the broker did not take the outcome; the alert stays with the broker and will be delivered again"
        );
    }

    pub fn ack_lost(&self, alert_id: &str) {
        self.metrics.acks_lost.inc();
        warn!(
            alert_id,
            "the delivery could no longer be acked (channel lost); the broker will deliver it again"
        );
    }
}

/// `event`, about the référent `referent_id`: as the registry names them,
/// or by id and the network recorded with their email if they have left it.
fn about<'a>(
    event: StatusEvent<'a>,
    referent_id: &'a str,
    referent: Option<&'a Referent>,
    network: Option<&'a str>,
) -> StatusEvent<'a> {
    match referent {
        Some(referent) => event.for_referent(referent),
        None => StatusEvent {
            referent: Some(ReferentRef {
                id: referent_id,
                organisation: None,
                network: network.unwrap_or_default(),
            }),
            ..event
        },
    }
}

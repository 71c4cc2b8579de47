//! What relais counts, for Prometheus (`GET /metrics`).
//!
//! Every metric is registered here, under the `relais_` prefix, in base
//! units. Labels carry only bounded, non-personal values: a network, a
//! failure class, a dead-letter reason, a retry delay, a queue name. No
//! alert id, territory or address ever becomes a label.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NetworkLabel {
    pub network: String,
}

/// Which registry is in force: its digest (12 hexadecimal digits of its
/// SHA-256) and its `version` label (empty when it gives none).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegistryLabel {
    pub digest: String,
    pub version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FollowUpLabel {
    /// A code of `follow_up::FollowUp`.
    pub outcome: &'static str,
    pub network: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReferentLabel {
    pub referent: String,
    pub network: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabel {
    pub step: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    pub class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DelayLabel {
    pub delay: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    pub queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    commit: String,
}

type TimestampGauge = Gauge<f64, AtomicU64>;

/// Every metric of relais, and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    pub alerts_received: Counter,
    pub alerts_delivered: Family<NetworkLabel, Counter>,
    pub duplicates_skipped: Counter,
    pub alerts_retried: Family<DelayLabel, Counter>,
    pub alerts_dead_lettered: Family<ReasonLabel, Counter>,
    pub emails_sent: Counter,
    pub emails_failed: Family<ClassLabel, Counter>,
    pub smtp_send_duration: Histogram,
    /// From the doctor's `emitted_at` to the last email accepted.
    pub alert_latency: Histogram,
    /// From the broker's delivery to the last email accepted.
    pub relay_latency: Histogram,
    pub queue_messages: Family<QueueLabel, Gauge>,
    pub queue_consumers: Family<QueueLabel, Gauge>,
    pub amqp_connected: Gauge,
    pub settle_failures: Family<ActionLabel, Counter>,
    pub acks_lost: Counter,
    /// Alerts acknowledged from an email's link (first time per référent).
    pub acknowledgements: Counter,
    /// From an alert's first email to a network to the first
    /// acknowledgement in it, per network.
    pub acknowledgement_time: Family<NetworkLabel, Histogram, fn() -> Histogram>,
    /// Follow-ups recorded by référents, per outcome and network.
    pub follow_ups: Family<FollowUpLabel, Counter>,
    /// Alerts emailed within the links' life that a network has not
    /// acknowledged (refreshed every minute from the store).
    pub alerts_pending: Gauge,
    /// Escalation steps that emailed someone, per step.
    pub escalations: Family<StepLabel, Counter>,
    /// Alerts whose escalation chain ended with nobody in a network
    /// acknowledging, per network.
    pub alerts_unacknowledged: Family<NetworkLabel, Counter>,
    /// Alerts' status events the broker confirmed.
    pub events_published: Counter,
    /// Attempts to publish an event that failed (it is tried again).
    pub events_failed: Counter,
    /// Events dropped: the buffer was full, or relais stopped first.
    pub events_dropped: Counter,
    /// Emails to a référent whose mailbox refused them for good (a bounce
    /// read by `relais bounce`), per référent and network: the address to
    /// fix in the registry.
    pub referent_bounces: Family<ReferentLabel, Counter>,
    /// Alerts to a référent past the hourly limit, per network.
    pub referent_floods: Family<NetworkLabel, Counter>,
    pub registry_referents: Gauge,
    /// 1 for the registry in force, by digest and version.
    pub registry_info: Family<RegistryLabel, Gauge>,
    /// `[[publisher]]` entries in the registry in force; 0: any broker
    /// user may alert any office.
    pub publishers_declared: Gauge,
    pub registry_reload_success: TimestampGauge,
    pub registry_reload_failure: TimestampGauge,
    pub registry_reload_failures: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("relais");
        let latency = || Histogram::new(exponential_buckets(0.001, 2.0, 20));
        let metrics = Self {
            alerts_received: Counter::default(),
            alerts_delivered: Family::default(),
            duplicates_skipped: Counter::default(),
            alerts_retried: Family::default(),
            alerts_dead_lettered: Family::default(),
            emails_sent: Counter::default(),
            emails_failed: Family::default(),
            smtp_send_duration: latency(),
            alert_latency: Histogram::new(exponential_buckets(0.01, 2.0, 20)),
            relay_latency: latency(),
            queue_messages: Family::default(),
            queue_consumers: Family::default(),
            amqp_connected: Gauge::default(),
            settle_failures: Family::default(),
            acks_lost: Counter::default(),
            acknowledgements: Counter::default(),
            acknowledgement_time: Family::new_with_constructor(acknowledgement_buckets),
            follow_ups: Family::default(),
            alerts_pending: Gauge::default(),
            escalations: Family::default(),
            referent_bounces: Family::default(),
            alerts_unacknowledged: Family::default(),
            events_published: Counter::default(),
            events_failed: Counter::default(),
            events_dropped: Counter::default(),
            referent_floods: Family::default(),
            registry_referents: Gauge::default(),
            registry_info: Family::default(),
            publishers_declared: Gauge::default(),
            registry_reload_success: TimestampGauge::default(),
            registry_reload_failure: TimestampGauge::default(),
            registry_reload_failures: Counter::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "alerts_received",
            "Alerts taken from the broker",
            metrics.alerts_received.clone(),
        );
        r.register(
            "alerts_delivered",
            "Alerts delivered, per network of the référents emailed",
            metrics.alerts_delivered.clone(),
        );
        r.register(
            "duplicates_skipped",
            "Emails not sent because the référent already had the alert",
            metrics.duplicates_skipped.clone(),
        );
        r.register(
            "alerts_retried",
            "Alerts sent to a retry queue, per delay",
            metrics.alerts_retried.clone(),
        );
        r.register(
            "alerts_dead_lettered",
            "Alerts dead-lettered by relais, per reason",
            metrics.alerts_dead_lettered.clone(),
        );
        r.register(
            "emails_sent",
            "Emails accepted by the mail server",
            metrics.emails_sent.clone(),
        );
        r.register(
            "emails_failed",
            "Email attempts that failed, per failure class (transient, rejected)",
            metrics.emails_failed.clone(),
        );
        r.register_with_unit(
            "smtp_send_duration",
            "Time to hand one email to the mail server",
            Unit::Seconds,
            metrics.smtp_send_duration.clone(),
        );
        r.register_with_unit(
            "alert_latency",
            "From the alert's emitted_at to its last email accepted",
            Unit::Seconds,
            metrics.alert_latency.clone(),
        );
        r.register_with_unit(
            "relay_latency",
            "From the broker's delivery to the alert's last email accepted",
            Unit::Seconds,
            metrics.relay_latency.clone(),
        );
        r.register(
            "queue_messages",
            "Messages ready in each queue of relais (polled from the broker)",
            metrics.queue_messages.clone(),
        );
        r.register(
            "queue_consumers",
            "Consumers of each queue of relais (polled from the broker)",
            metrics.queue_consumers.clone(),
        );
        r.register(
            "amqp_connected",
            "1 while relais consumes from the broker",
            metrics.amqp_connected.clone(),
        );
        r.register(
            "settle_failures",
            "Outcomes the broker did not take (the alert stays with the broker), per action",
            metrics.settle_failures.clone(),
        );
        r.register(
            "acks_lost",
            "Deliveries that could no longer be acked (the broker delivers them again)",
            metrics.acks_lost.clone(),
        );
        r.register(
            "acknowledgements",
            "Alerts acknowledged by a référent from the link of its email",
            metrics.acknowledgements.clone(),
        );
        r.register_with_unit(
            "acknowledgement_time",
            "From an alert's first email to a network to the first acknowledgement in it, per network",
            Unit::Seconds,
            metrics.acknowledgement_time.clone(),
        );
        r.register(
            "follow_ups",
            "What référents did about alerts (a choice of the acknowledgement page), per outcome and network",
            metrics.follow_ups.clone(),
        );
        r.register(
            "alerts_pending",
            "Alerts emailed within ack.link_ttl that a network they went to has not acknowledged",
            metrics.alerts_pending.clone(),
        );
        r.register(
            "escalations",
            "Escalation steps that emailed someone, per step (deputies, fallback)",
            metrics.escalations.clone(),
        );
        r.register(
            "referent_bounces",
            "Emails whose référent's mailbox refused them for good (a bounce), per référent: \
             the address to fix",
            metrics.referent_bounces.clone(),
        );
        r.register(
            "alerts_unacknowledged",
            "Alerts whose escalation chain ended with nobody in the network acknowledging, per network",
            metrics.alerts_unacknowledged.clone(),
        );
        r.register(
            "events_published",
            "Alerts' status events published to events.exchange and confirmed",
            metrics.events_published.clone(),
        );
        r.register(
            "events_failed",
            "Attempts to publish an alert's status event that failed (tried again)",
            metrics.events_failed.clone(),
        );
        r.register(
            "events_dropped",
            "Alerts' status events dropped: their buffer was full, or relais stopped first",
            metrics.events_dropped.clone(),
        );
        r.register(
            "referent_floods",
            "Alerts emailed to a référent past registry.max_alerts_per_referent_per_hour, per network",
            metrics.referent_floods.clone(),
        );
        r.register(
            "registry_referents",
            "Référents in the registry in force",
            metrics.registry_referents.clone(),
        );
        r.register(
            "registry_info",
            "1 for the registry in force, by the first 12 digits of its SHA-256 and its version label",
            metrics.registry_info.clone(),
        );
        r.register(
            "publishers_declared",
            "[[publisher]] entries in the registry in force; 0: any broker user may alert any office",
            metrics.publishers_declared.clone(),
        );
        r.register_with_unit(
            "registry_last_reload_success_timestamp",
            "When the registry was last loaded successfully (Unix time)",
            Unit::Seconds,
            metrics.registry_reload_success.clone(),
        );
        r.register_with_unit(
            "registry_last_reload_failure_timestamp",
            "When a registry reload was last refused (Unix time; 0 if never)",
            Unit::Seconds,
            metrics.registry_reload_failure.clone(),
        );
        r.register(
            "registry_reload_failures",
            "Registry reloads refused because the file was invalid or unfit for the settings",
            metrics.registry_reload_failures.clone(),
        );
        r.register(
            "build",
            "The version of relais running",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                commit: env!("RELAIS_GIT_COMMIT").to_owned(),
            }),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The current time as Unix seconds, for timestamp gauges.
/// From a minute to about three weeks.
fn acknowledgement_buckets() -> Histogram {
    Histogram::new(exponential_buckets(60.0, 2.0, 15))
}

pub fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_secs_f64())
        .unwrap_or_default()
}

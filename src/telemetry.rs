//! Logs: their set-up, and one function per event of an alert's life.
//!
//! Every event goes through [`events`], which names the alert by its id,
//! kind and territory and the référent by its registry id, and nothing
//! more: patient data never reaches a log line. Under journald (or any
//! non-terminal) text logs carry no colour codes.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LogSettings};

/// An error that lists several problems on several lines, as one log line:
/// a log event must stay one line for journald and log collectors.
pub fn one_line(error: &dyn std::fmt::Display) -> String {
    error
        .to_string()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An error and its causes, `: `-separated (for a log line, pass it through
/// [`one_line`]). A cause is left out when the message before it already
/// ends with it: the AMQP library, for one, repeats its source in its own
/// message.
pub fn causes(error: &anyhow::Error) -> String {
    let mut line = String::new();
    let mut last = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !last.is_empty() && last.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
        last = text;
    }
    line
}

/// Installs the global subscriber. Call once, at start-up.
///
/// # Errors
/// When `log.level` is not a valid filter.
pub fn init(settings: &LogSettings) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&settings.level).map_err(|error| {
        anyhow::anyhow!(
            "log.level {:?} is not a valid filter: {error}",
            settings.level
        )
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => {
            let colours =
                std::io::stderr().is_terminal() && std::env::var_os("JOURNAL_STREAM").is_none();
            builder.with_ansi(colours).try_init()
        }
    };
    installed.map_err(|error| anyhow::anyhow!("cannot install the logger: {error}"))
}

/// The events of an alert's life. Each logs (with the alert's id, kind and
/// territory, the référent's id, never patient data) and counts.
pub mod events {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use time::OffsetDateTime;
    use tracing::{debug, error, info, warn};

    use crate::alert::Alert;
    use crate::handle::{Outcome, Reason};
    use crate::mailer::{Accepted, SendError};
    use crate::metrics::{ActionLabel, ClassLabel, DelayLabel, Metrics, NetworkLabel, ReasonLabel};
    use crate::registry::Referent;
    use crate::store::StoreError;

    /// Logs and counts; cheap to clone, every clone shares the metrics.
    #[derive(Clone)]
    pub struct Events {
        metrics: Arc<Metrics>,
    }

    impl Events {
        pub fn new(metrics: Arc<Metrics>) -> Self {
            Self { metrics }
        }

        pub fn metrics(&self) -> &Metrics {
            &self.metrics
        }

        pub fn alert_received(&self) {
            self.metrics.alerts_received.inc();
        }

        pub fn email_sent(
            &self,
            alert: &Alert,
            referent: &Referent,
            accepted: &Accepted,
            took: Duration,
        ) {
            self.metrics.emails_sent.inc();
            self.metrics.smtp_send_duration.observe(took.as_secs_f64());
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

        pub fn record_failed(&self, alert: &Alert, referent: &Referent, failure: &StoreError) {
            error!(
                alert_id = %alert.id(),
                referent = %referent.id(),
                error = %failure,
                "email sent but not recorded in the store: a redelivery could email this référent again"
            );
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
            let alert_id = alert.map(|alert| alert.id().as_str()).unwrap_or("-");
            let kind = alert.map(|alert| alert.kind().as_str()).unwrap_or("-");
            let territory = alert.map(|alert| alert.territory().to_string());
            let territory = territory.as_deref().unwrap_or("-");
            match outcome {
                Outcome::Delivered { emails, duplicates } => {
                    info!(%alert_id, %kind, %territory, emails, duplicates, "alert delivered");
                }
                Outcome::Retry { error } => {
                    warn!(%alert_id, %kind, %territory, %error, "alert to retry");
                }
                Outcome::DeadLetter { reason, error } => {
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

        pub fn dead_lettered(&self, alert_id: &str, reason: Reason) {
            let label = ReasonLabel {
                reason: reason.as_str().to_owned(),
            };
            self.metrics
                .alerts_dead_lettered
                .get_or_create(&label)
                .inc();
            warn!(alert_id, reason = reason.as_str(), "alert dead-lettered");
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("protocol error: {0}")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("ACCESS_REFUSED - Login was refused")]
    struct Inner;

    #[test]
    fn causes_follow_each_other_without_repeating_themselves() {
        let error = anyhow::Error::new(Outer(Inner)).context("cannot connect to the broker");
        assert_eq!(
            causes(&error),
            "cannot connect to the broker: protocol error: ACCESS_REFUSED - Login was refused"
        );
        let listed = anyhow::anyhow!("the registry has 2 error(s):\n  - a\n  - b")
            .context("cannot load the registry");
        assert_eq!(
            causes(&listed),
            "cannot load the registry: the registry has 2 error(s):\n  - a\n  - b"
        );
    }
}

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

/// The events of an alert's life. Each takes the domain values and chooses
/// itself what of them may be logged.
pub mod events {
    use tracing::{error, info, warn};

    use crate::alert::Alert;
    use crate::handle::Outcome;
    use crate::mailer::{Accepted, SendError};
    use crate::registry::Referent;
    use crate::store::StoreError;

    pub fn email_sent(alert: &Alert, referent: &Referent, accepted: &Accepted) {
        info!(
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
        alert: &Alert,
        referent: &Referent,
        failure: &SendError,
        wait: std::time::Duration,
    ) {
        warn!(
            alert_id = %alert.id(),
            referent = %referent.id(),
            error = %failure,
            retry_in = ?wait,
            "email not accepted, retrying"
        );
    }

    pub fn duplicate_skipped(alert: &Alert, referent: &Referent) {
        info!(
            alert_id = %alert.id(),
            kind = %alert.kind(),
            referent = %referent.id(),
            "référent already emailed about this alert; not sent again"
        );
    }

    pub fn record_failed(alert: &Alert, referent: &Referent, failure: &StoreError) {
        error!(
            alert_id = %alert.id(),
            referent = %referent.id(),
            error = %failure,
            "email sent but not recorded in the store: a redelivery could email this référent again"
        );
    }

    pub fn email_failed(alert: &Alert, referent: &Referent, failure: &SendError) {
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

    /// How the handling of an alert ended (`alert` is `None` for a message
    /// that is not a valid alert).
    pub fn alert_handled(alert: Option<&Alert>, outcome: &Outcome) {
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

    pub fn settle_failed(alert_id: &str, action: &str, error: &dyn std::fmt::Display) {
        error!(
            alert_id,
            action,
            %error,
            "the broker did not take the outcome; the alert stays unacked and will be delivered again"
        );
    }

    pub fn retry_scheduled(alert_id: &str, attempts: i32, delay: std::time::Duration) {
        warn!(
            alert_id,
            attempts,
            retry_in = %humantime::format_duration(delay),
            "alert sent to the retry queue"
        );
    }

    pub fn ack_lost(alert_id: &str) {
        warn!(
            alert_id,
            "the delivery could no longer be acked (channel lost); the broker will deliver it again"
        );
    }
}

//! Logs: their set-up, and one function per event of an alert's life.
//!
//! Every event goes through [`events`], which names the alert by its id,
//! kind and territory and the référent by its registry id, and nothing
//! more: patient data never reaches a log line. Under journald (or any
//! non-terminal) text logs carry no colour codes.

pub mod events;
pub mod metrics;

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

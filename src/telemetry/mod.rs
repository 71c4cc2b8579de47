//! Logs: their set-up, and one function per event of an alert's life.
//!
//! Every event goes through [`events`], which names the alert by its id,
//! kind and territory and the référent by its registry id, and nothing
//! more: patient data never reaches a log line. Under journald (or any
//! non-terminal) text logs carry no colour codes.
//!
//! [`status`] is what the dispatch software is told of each alert's fate,
//! handed over to the broker side, which publishes it.

pub mod events;
pub mod metrics;
pub mod status;

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

/// The libraries that log the messages they carry (frame bodies, patient
/// data included) at `info` and below.
const CARRIERS: [&str; 2] = ["lapin", "amq_protocol"];

/// `level` with the carriers held at `warn` at most, whatever it asks: a
/// directive for one of them that is more verbose becomes `warn`, and when
/// none names them, `warn` is added for each (so that `trace` for everything
/// does not reach them). `off`, `error` and `warn` stay as asked.
fn capped(level: &str) -> String {
    let mut named = [false; CARRIERS.len()];
    let mut directives: Vec<String> = level
        .split(',')
        .map(str::trim)
        .filter(|directive| !directive.is_empty())
        .map(|directive| {
            let (target, verbosity) = directive.split_once('=').unwrap_or((directive, "trace"));
            let carrier = CARRIERS.iter().position(|carrier| {
                target == *carrier || target.starts_with(&format!("{carrier}::"))
            });
            match carrier {
                Some(index) => {
                    named[index] = true;
                    let quiet = ["off", "error", "warn"]
                        .iter()
                        .any(|quiet| verbosity.eq_ignore_ascii_case(quiet));
                    if quiet {
                        directive.to_owned()
                    } else {
                        format!("{target}=warn")
                    }
                }
                None => directive.to_owned(),
            }
        })
        .collect();
    for (carrier, named) in CARRIERS.iter().zip(named) {
        if !named {
            directives.push(format!("{carrier}=warn"));
        }
    }
    directives.join(",")
}

/// Installs the global subscriber. Call once, at start-up.
///
/// # Errors
/// When `log.level` is not a valid filter.
pub fn init(settings: &LogSettings) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(capped(&settings.level)).map_err(|error| {
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
    fn the_amqp_library_is_held_at_warn_whatever_the_level_asks() {
        assert_eq!(capped("trace"), "trace,lapin=warn,amq_protocol=warn");
        assert_eq!(capped("info,lapin=off"), "info,lapin=off,amq_protocol=warn");
        assert_eq!(
            capped("relais=debug, lapin=trace,amq_protocol::frame=debug"),
            "relais=debug,lapin=warn,amq_protocol::frame=warn"
        );
        assert_eq!(capped("lapin"), "lapin=warn,amq_protocol=warn");
        assert_eq!(
            capped("lapin=error,amq_protocol=WARN"),
            "lapin=error,amq_protocol=WARN"
        );
        assert_eq!(
            capped("lapinou=trace"),
            "lapinou=trace,lapin=warn,amq_protocol=warn"
        );
    }

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

//! `relais check`: the settings and the registry (the settings', or a
//! candidate file given with `--registry`) validated and summarised on one
//! screen, the registry named by its digest and version label, with a
//! warning for each choice that weakens relais (no declared publisher,
//! escalations that cannot happen or outlive their links), and refusing a
//! registry that the daemon would refuse with these settings (a publisher
//! logged in as relais, escalation chains longer than the store
//! remembers). It reads files only: never the broker, the store or a mail
//! server.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use clap::Args;

use super::output::provenance;
use super::registry::RegistryFile;
use crate::mail::outbound::Outbound;
use crate::registry::Registry;
use crate::settings::{AckSettings, Settings};

/// What `relais check` says of a registry without `[[publisher]]`, as the
/// daemon does at each load.
pub use crate::telemetry::events::NO_PUBLISHER;

/// Which registry `relais check` reads.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub registry: RegistryFile,
}

/// `relais check`: validates settings and registry, prints a summary.
pub(super) fn check(config: Option<&Path>, args: &CheckArgs) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let geography = super::load_geography(&settings)?;
    let registry_path = args.registry.path(&settings);
    let registry = Registry::load(registry_path, &geography)?;
    crate::live_registry::admit(&registry, &(&settings).into())?;
    print!("{}", check_report(&settings, registry_path, &registry));
    println!(
        "territories: {} ({})",
        geography.origin(),
        geography.source()
    );
    Ok(())
}

fn check_report(settings: &Settings, registry_path: &Path, registry: &Registry) -> String {
    let mut out = String::new();
    let amqp = &settings.amqp;
    let smtp = &settings.smtp;
    let _ = writeln!(out, "settings: valid");
    for warning in &settings.warnings {
        let _ = writeln!(out, "warning:  {warning}");
    }
    let _ = writeln!(
        out,
        "broker:   {} (exchange {}, queue {}, prefetch {})",
        amqp.redacted_url(),
        amqp.exchange,
        amqp.queue,
        amqp.prefetch
    );
    let from = smtp.from.as_deref().unwrap_or_default();
    match smtp.outbound() {
        Ok(Outbound::Smtp(server)) => {
            let _ = writeln!(
                out,
                "mail:     SMTP {}:{} (tls {:?}), from {from}",
                server.host, server.port, server.tls
            );
            let hello = crate::mail::mailer::hello(server.helo_name.as_deref());
            let origin = if server.helo_name.is_some() {
                "smtp.helo_name"
            } else {
                "the machine's; set smtp.helo_name to choose"
            };
            let _ = writeln!(out, "          EHLO {hello} ({origin})");
            let _ = writeln!(
                out,
                "          timeouts: {} per step, {} for the reply to the end of a message",
                humantime::format_duration(server.timeouts.step),
                humantime::format_duration(server.timeouts.final_reply)
            );
        }
        Ok(Outbound::Files(dir)) => {
            let _ = writeln!(
                out,
                "mail:     .eml files in {} (no SMTP), from {from}",
                dir.display()
            );
        }
        // Refused by the settings check before this report is made.
        Err(_) => {}
    }
    let summary = registry.summary();
    let _ = writeln!(
        out,
        "registry: {} — {} référent(s) in {} network(s), {} publisher(s)",
        registry_path.display(),
        summary.referents,
        summary.networks.len(),
        registry.publishers().len()
    );
    let _ = writeln!(out, "          {}", provenance(registry));
    if !registry.publishers().declared() {
        let _ = writeln!(out, "warning:  {NO_PUBLISHER}");
    }
    for (name, network) in &summary.networks {
        let _ = writeln!(
            out,
            "  network {name:<14} {:>5} référent(s), {:>5} commune(s), {:>3} EPCI, {:>3} département(s), {:>2} région(s), {} fallback(s)",
            network.referents,
            network.communes,
            network.epcis,
            network.departements,
            network.regions,
            network.fallbacks
        );
    }
    let _ = writeln!(out, "routes:");
    let mut longest = Duration::ZERO;
    for (kind, networks) in &summary.routes {
        let escalation = registry.route_escalation(kind).map(|escalate| {
            let wait = |wait: Option<Duration>| {
                wait.map_or_else(
                    || "never".to_owned(),
                    |wait| humantime::format_duration(wait).to_string(),
                )
            };
            longest = longest.max(escalate.urgent.unwrap_or_default());
            longest = longest.max(escalate.normal.unwrap_or_default());
            format!(
                " (escalates after urgent {}, normal {})",
                wait(escalate.urgent),
                wait(escalate.normal)
            )
        });
        let _ = writeln!(
            out,
            "  {kind:<24} → {}{}",
            networks.join(", "),
            escalation.unwrap_or_default()
        );
    }
    if longest > Duration::ZERO && !settings.ack.enabled() {
        let _ = writeln!(
            out,
            "warning:  routes set escalate_after, but ack.listen is empty: without acknowledgement \
             links, alerts do not escalate"
        );
    } else if settings.ack.enabled()
        && let Some(warning) = link_ttl_warning(longest, settings.ack.link_ttl)
    {
        let _ = writeln!(out, "warning:  {warning}");
    }
    out
}

/// What `relais check` says of `ack.link_ttl` against the longest wait of
/// an escalation chain (three steps of it): links that die before the chain
/// ends cannot stop it; links that live far past it are a credential left
/// lying in proxies' logs and mail scanners for nothing. Far past: beyond
/// both the default and the chain plus a day.
fn link_ttl_warning(longest_wait: Duration, link_ttl: Duration) -> Option<String> {
    const DAY: Duration = Duration::from_secs(24 * 3600);
    let chain = longest_wait * 3;
    let format = humantime::format_duration;
    if chain > link_ttl {
        return Some(format!(
            "an escalation chain lasts up to {} (three waits of {}), longer than \
             ack.link_ttl ({}): its links expire before it ends",
            format(chain),
            format(longest_wait),
            format(link_ttl)
        ));
    }
    let enough = (chain + DAY).max(AckSettings::DEFAULT_LINK_TTL);
    (link_ttl > enough).then(|| {
        let chain = if chain.is_zero() {
            "no route escalates".to_owned()
        } else {
            format!("the longest escalation chain ends after {}", format(chain))
        };
        format!(
            "ack.link_ttl ({}) keeps links working far longer than needed ({chain}): whoever \
             sees one (a proxy's log, a mail scanner) can acknowledge its alert all that time; \
             {} is enough",
            format(link_ttl),
            format(enough)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_shows_each_route_s_waits_and_warns_when_escalation_cannot_happen_or_outlives_links() {
        let registry = Registry::from_toml(
            r#"
            [[route]]
            kind = "orientation_sociale"
            networks = ["ccas"]
            escalate_after = { urgent = "12h" }

            [[referent]]
            id = "ccas-paris"
            network = "ccas"
            email = "social@paris.test"
            departements = ["75"]
            "#,
            crate::testing::france(),
        )
        .unwrap();
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/relais.toml");
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("ack-key");
        std::fs::write(&key, [7u8; 32]).unwrap();
        let with = |env: &[(&str, &str)]| {
            let env = env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let settings = Settings::load_with_env(Some(&config), Some(env)).unwrap();
            check_report(&settings, Path::new("referents.toml"), &registry)
        };

        let off = with(&[]);
        let short_links = with(&[
            ("RELAIS__ACK__LISTEN", "127.0.0.1:8443"),
            ("RELAIS__ACK__PUBLIC_URL", "http://127.0.0.1:8443"),
            ("RELAIS__ACK__KEY_FILE", key.to_str().unwrap()),
            ("RELAIS__ACK__LINK_TTL", "1day"),
        ]);

        assert!(
            off.contains(
                "  orientation_sociale      → ccas (escalates after urgent 12h, normal never)\n"
            ),
            "{off}"
        );
        assert!(
            off.contains(
                "warning:  routes set escalate_after, but ack.listen is empty: without \
                 acknowledgement links, alerts do not escalate"
            ),
            "{off}"
        );
        assert!(
            short_links.contains(
                "warning:  an escalation chain lasts up to 1day 12h (three waits of 12h), longer \
                 than ack.link_ttl (1day): its links expire before it ends"
            ),
            "{short_links}"
        );
    }

    #[test]
    fn check_warns_when_links_outlive_by_far_what_the_longest_chain_needs() {
        let hours = |h: u64| Duration::from_secs(h * 3600);
        let days = |d: u64| hours(24 * d);

        let default_no_escalation = link_ttl_warning(Duration::ZERO, days(14));
        let default_short_chain = link_ttl_warning(hours(12), days(14));
        let long_chain_fits = link_ttl_warning(days(10), days(31));
        let old_default = link_ttl_warning(days(2), days(30));
        let nothing_escalates = link_ttl_warning(Duration::ZERO, days(15));
        let too_short = link_ttl_warning(days(10), days(14));

        assert_eq!(default_no_escalation, None);
        assert_eq!(default_short_chain, None);
        assert_eq!(long_chain_fits, None);
        assert_eq!(
            old_default.as_deref(),
            Some(
                "ack.link_ttl (30days) keeps links working far longer than needed (the longest \
                 escalation chain ends after 6days): whoever sees one (a proxy's log, a mail \
                 scanner) can acknowledge its alert all that time; 14days is enough"
            )
        );
        assert!(
            nothing_escalates
                .as_deref()
                .is_some_and(|w| w.contains("(no route escalates)")),
            "{nothing_escalates:?}"
        );
        assert_eq!(
            too_short.as_deref(),
            Some(
                "an escalation chain lasts up to 30days (three waits of 10days), longer than \
                 ack.link_ttl (14days): its links expire before it ends"
            )
        );
    }
}

//! `relais check`: the settings and the registry validated and summarised
//! on one screen, with a warning for each choice that weakens relais (no
//! declared publisher, escalations that cannot happen or outlive their
//! links), and refusing a registry that the daemon would refuse with
//! these settings (a publisher logged in as relais, escalation chains
//! longer than the store remembers). It reads files only: never the
//! broker, the store or a mail server.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::mail::outbound::Outbound;
use crate::registry::Registry;
use crate::settings::Settings;

/// What `relais check` says of a registry without `[[publisher]]`, as the
/// daemon does at each load.
pub use crate::telemetry::events::NO_PUBLISHER;

/// `relais check`: validates settings and registry, prints a summary.
pub(super) fn check(config: Option<&Path>) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let geography = super::load_geography(&settings)?;
    let registry_path = &settings.registry.path;
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
    } else if longest * 3 > settings.ack.link_ttl && settings.ack.enabled() {
        let _ = writeln!(
            out,
            "warning:  an escalation chain lasts up to {} (three waits of {}), longer than \
             ack.link_ttl ({}): its links expire before it ends",
            humantime::format_duration(longest * 3),
            humantime::format_duration(longest),
            humantime::format_duration(settings.ack.link_ttl)
        );
    }
    out
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
}

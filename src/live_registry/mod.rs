//! The registry in force: one value that every alert, the acknowledgement
//! pages and the metrics read, and that a reload (SIGHUP) swaps whole.
//!
//! An alert keeps the registry it started with until it is done, and a
//! reload replaces the registry only with a file that is valid: a registry
//! half read, or one that failed its checks, is never in force. Beyond the
//! registry's own checks, a registry must fit the settings it will run
//! with ([`Fences`]): no publisher may be relais's own broker user, and no
//! escalation chain may outlast what the store remembers. This module
//! never decides anything about an alert; it only says which registry is
//! the one to decide with.

pub mod fleet;

pub use fleet::FOLLOW_EVERY;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::memory;
use crate::registry::Registry;
use crate::settings::Settings;
use crate::telemetry::events::Events;

/// The registry in force. Swapped whole on reload; an alert keeps the
/// registry it started with until it is done.
pub type SharedRegistry = Arc<ArcSwap<Registry>>;

/// The steps of an escalation chain: deputies, fallback référents, then
/// `unacknowledged`, each one wait after the last.
const CHAIN_STEPS: u32 = 3;

/// What an escalation chain needs the store to remember beyond its end:
/// the last step reads the acknowledgements of the first.
const CHAIN_MARGIN: Duration = Duration::from_secs(24 * 3600);

/// What the settings ask of any registry relais runs with.
#[derive(Debug, Clone)]
pub struct Fences {
    /// relais's own broker user: it republishes under it, and trusts its
    /// own `x-relais-*` headers on what that user published. `None` when
    /// it logs in by certificate.
    pub login: Option<String>,
    /// How long the store remembers deliveries and acknowledgements
    /// (`store.retention`).
    pub retention: Duration,
}

impl From<&Settings> for Fences {
    fn from(settings: &Settings) -> Self {
        Self {
            login: settings.amqp.login(),
            retention: settings.store.retention,
        }
    }
}

/// Why a valid registry may not run with these settings.
#[derive(Debug, thiserror::Error)]
pub enum Unfit {
    /// A publisher logged in as relais could write every `x-relais-*`
    /// header relais trusts on its own messages.
    #[error(
        "publisher `{0}` is relais's own broker login: a publisher logged in as relais could \
         forge the headers relais trusts on its own messages (which référents were served, the \
         step of escalation); give the dispatch software a RabbitMQ user of its own, and relais \
         a user no one else has"
    )]
    OwnLogin(String),
    /// Once the store forgets an acknowledgement, the later steps of its
    /// chain would email the deputies and the fallback anyway.
    #[error(
        "route `{route}` escalates after {wait}: its chain lasts up to {chain} (three waits), \
         which with a day's margin is longer than store.retention ({retention}): the store \
         would forget the acknowledgements before the chain ends; raise store.retention or \
         shorten escalate_after"
    )]
    ChainOutlivesStore {
        route: String,
        wait: String,
        chain: String,
        retention: String,
    },
}

/// Whether `registry` may run with the settings behind `fences`.
///
/// # Errors
/// [`Unfit`] naming the first reason it may not.
pub fn admit(registry: &Registry, fences: &Fences) -> Result<(), Unfit> {
    if let Some(login) = &fences.login
        && registry.publishers().declares(login)
    {
        return Err(Unfit::OwnLogin(login.clone()));
    }
    if let Some((route, wait)) = longest_escalation(registry) {
        let chain = wait * CHAIN_STEPS;
        if chain + CHAIN_MARGIN > fences.retention {
            let shown = |duration: Duration| humantime::format_duration(duration).to_string();
            return Err(Unfit::ChainOutlivesStore {
                route,
                wait: shown(wait),
                chain: shown(chain),
                retention: shown(fences.retention),
            });
        }
    }
    Ok(())
}

/// The route with the longest wait before a step of escalation (either
/// priority), and that wait; `None` when no route escalates.
pub fn longest_escalation(registry: &Registry) -> Option<(String, Duration)> {
    registry
        .summary()
        .routes
        .into_iter()
        .filter_map(|(kind, _)| {
            let escalate = registry.route_escalation(&kind)?;
            let wait = escalate.urgent.max(escalate.normal)?;
            Some((kind, wait))
        })
        .max_by_key(|(_, wait)| *wait)
}

/// `registry`, in force until the first reload.
pub fn shared(registry: Registry) -> SharedRegistry {
    Arc::new(ArcSwap::from_pointee(registry))
}

/// Replaces the registry with the file's current content if, and only if,
/// it is valid and fit for the settings behind `fences` (and keeps it in
/// the store); alerts in flight finish with the registry they started
/// with. With a shared store, the file does not decide: the registry
/// published on the store does, and a file that differs is only said.
pub async fn reload(
    registry: &SharedRegistry,
    path: &Path,
    fences: &Fences,
    events: &Events,
    fleet: &fleet::Fleet,
) {
    let geography = registry.load().geography().clone();
    let file = match fleet::read_file(path, &geography, fences) {
        Ok(file) => file,
        Err(error) => {
            events.registry_refused(&format!("{error:#}"));
            if fleet.shared {
                let _ = fleet::catch_up(registry, &fleet.store, fences, events).await;
            }
            return;
        }
    };
    if fleet.shared {
        let _ = fleet::catch_up(registry, &fleet.store, fences, events).await;
        let fleet_registry = registry.load();
        if fleet_registry.digest() != file.registry.digest() {
            events.registry_file_differs(&file.registry, &fleet_registry);
        }
        return;
    }
    if let Err(error) = fleet.store.keep_registry(&file.kept).await {
        events.registry_refused(&format!("cannot keep the registry in the store: {error}"));
        return;
    }
    events.registry_loaded(&file.registry, &path.display().to_string(), true);
    registry.store(Arc::new(file.registry));
    // What alerts in flight still hold of the old registry is given back
    // at a later reload.
    memory::return_freed();
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn registry(extra: &str) -> Registry {
        Registry::from_toml(
            &format!(
                r#"
                [[route]]
                kind = "orientation_sociale"
                networks = ["ccas"]
                escalate_after = {{ urgent = "12h", normal = "2days" }}

                [[route]]
                kind = "*"
                networks = ["ccas"]
                escalate_after = {{ urgent = "1h" }}

                [[referent]]
                id = "ccas-paris"
                network = "ccas"
                email = "social@paris.test"
                departements = ["75"]
                {extra}
                "#
            ),
            crate::testing::france(),
        )
        .unwrap()
    }

    fn fences(login: &str, retention: Duration) -> Fences {
        Fences {
            login: Some(login.to_owned()),
            retention,
        }
    }

    #[test]
    fn the_longest_chain_is_three_of_the_longest_wait_of_any_route_and_priority() {
        assert_eq!(
            longest_escalation(&registry("")),
            Some(("orientation_sociale".to_owned(), 2 * DAY))
        );
    }

    #[test]
    fn a_chain_and_a_day_within_the_retention_is_admitted_and_one_past_it_refused() {
        let registry = registry("");

        let fits = admit(&registry, &fences("relais", 7 * DAY));
        let short = admit(
            &registry,
            &fences("relais", 7 * DAY - Duration::from_secs(1)),
        );

        assert!(fits.is_ok(), "{fits:?}");
        assert_eq!(
            short.unwrap_err().to_string(),
            "route `orientation_sociale` escalates after 2days: its chain lasts up to 6days \
             (three waits), which with a day's margin is longer than store.retention (6days \
             23h 59m 59s): the store would forget the acknowledgements before the chain ends; \
             raise store.retention or shorten escalate_after"
        );
    }

    #[test]
    fn a_publisher_logged_in_as_relais_is_refused_and_another_admitted() {
        let registry = registry(
            r#"
            [[publisher]]
            user = "sos75-dispatch"
            association = "SOS Médecins Paris"
            departements = ["75"]
            "#,
        );

        let other = admit(&registry, &fences("relais", 30 * DAY));
        let own = admit(&registry, &fences("sos75-dispatch", 30 * DAY));

        assert!(other.is_ok(), "{other:?}");
        assert!(
            matches!(&own, Err(Unfit::OwnLogin(user)) if user == "sos75-dispatch"),
            "{own:?}"
        );
        let certificate = Fences {
            login: None,
            retention: 30 * DAY,
        };
        assert!(admit(&registry, &certificate).is_ok());
    }
}

//! The flood guard: a référent who receives far more alerts than an office
//! can read is a sign of a runaway publisher, or of someone using relais to
//! flood an office. Those alerts are still delivered (an alert is never
//! dropped for this), but operators hear of it: one `warn` line per
//! référent per hour, and a counter (`relais_referent_floods_total`) that
//! `monitoring/` turns into a Prometheus alert.
//!
//! Alerts are counted per référent of the registry in force (a reload
//! starts the counts afresh) and per hour of the guard's clock (the first
//! hour starts with the guard; a new hour forgets the last): two bytes per
//! référent, 50 KB for a national registry.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::registry::{Referent, Registry};

const WINDOW: Duration = Duration::from_secs(3600);

/// What one more alert to a référent means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flood {
    /// Within the limit.
    Within,
    /// Past the limit: the `count`-th alert of the hour. `first` for the
    /// first alert past it in this hour (the one that is logged).
    Over { count: u32, first: bool },
}

/// Alerts per référent in the current hour; shared by every task.
pub struct FloodGuard {
    /// Most alerts to one référent in an hour before it counts as a flood;
    /// 0: no limit.
    limit: u32,
    /// When the guard's first hour began.
    started: Instant,
    hour: Mutex<Hour>,
}

/// The counts of one hour, for one registry.
#[derive(Default)]
struct Hour {
    /// Hours since `started`.
    number: u64,
    /// Which registry the counts are for (the address of its référents).
    registry: usize,
    /// Per référent, by its place in the registry: alerts this hour.
    counts: Vec<u16>,
}

impl FloodGuard {
    pub fn new(limit: u32) -> Self {
        Self::starting(limit, Instant::now())
    }

    fn starting(limit: u32, started: Instant) -> Self {
        Self {
            limit,
            started,
            hour: Mutex::default(),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Counts one alert emailed to `referent` of `registry` at `now`.
    pub fn count(&self, registry: &Registry, referent: &Referent, now: Instant) -> Flood {
        let Some(position) = registry.position(referent).filter(|_| self.limit > 0) else {
            return Flood::Within;
        };
        let number = now.saturating_duration_since(self.started).as_secs() / WINDOW.as_secs();
        let identity = registry.referents().as_ptr() as usize;
        let mut hour = self.hour.lock().unwrap_or_else(PoisonError::into_inner);
        if hour.number != number || hour.registry != identity {
            hour.number = number;
            hour.registry = identity;
            hour.counts.clear();
            hour.counts.resize(registry.referents().len(), 0);
        }
        let Some(count) = hour.counts.get_mut(position) else {
            return Flood::Within;
        };
        *count = count.saturating_add(1);
        let count = u32::from(*count);
        if count > self.limit {
            Flood::Over {
                count,
                first: count == self.limit + 1,
            }
        } else {
            Flood::Within
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTRY: &str = r#"
        [[route]]
        kind = "orientation_sociale"
        networks = ["ccas"]
        [[referent]]
        id = "ccas-paris-13"
        network = "ccas"
        email = "ccas13@example.org"
        communes = ["75113"]
        [[referent]]
        id = "ccas-paris"
        network = "ccas"
        email = "ccas@example.org"
        departements = ["75"]
    "#;

    fn registry() -> Registry {
        Registry::from_toml(REGISTRY, crate::testing::france()).unwrap()
    }

    #[test]
    fn past_the_limit_in_an_hour_is_a_flood_said_once_and_the_next_hour_starts_afresh() {
        let start = Instant::now();
        let guard = FloodGuard::starting(2, start);
        let registry = registry();
        let (referent, other) = (&registry.referents()[0], &registry.referents()[1]);
        let at = |seconds| start + Duration::from_secs(seconds);

        let counted: Vec<Flood> = (0..4)
            .map(|n| guard.count(&registry, referent, at(n)))
            .collect();

        assert_eq!(
            counted,
            [
                Flood::Within,
                Flood::Within,
                Flood::Over {
                    count: 3,
                    first: true
                },
                Flood::Over {
                    count: 4,
                    first: false
                },
            ]
        );
        assert_eq!(guard.count(&registry, other, at(5)), Flood::Within);
        assert_eq!(guard.count(&registry, referent, at(3600)), Flood::Within);
        // A reloaded registry starts afresh.
        let reloaded = self::registry();
        assert_eq!(
            guard.count(&reloaded, &reloaded.referents()[0], at(3601)),
            Flood::Within
        );
    }

    #[test]
    fn a_limit_of_zero_counts_nothing() {
        let guard = FloodGuard::new(0);
        let registry = registry();
        let now = Instant::now();
        assert!(
            (0..100)
                .all(|_| guard.count(&registry, &registry.referents()[0], now) == Flood::Within)
        );
    }
}

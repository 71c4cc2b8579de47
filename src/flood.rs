//! The flood guard: a référent who receives far more alerts than an office
//! can read is a sign of a runaway publisher, or of someone using relais to
//! flood an office. Those alerts are still delivered (an alert is never
//! dropped for this), but operators hear of it: one `warn` line per
//! référent per hour, and a counter (`relais_referent_floods_total`) that
//! `monitoring/` turns into a Prometheus alert.
//!
//! Alerts are counted per référent and per hour of the guard's clock (the
//! first hour starts with the guard); a new hour forgets the last. The guard
//! holds a count and a 64-bit hash of the référent's id per référent
//! alerted this hour, 12 bytes each, so that a national registry's worth of
//! référents costs a fraction of a megabyte.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::registry::ReferentId;

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
    hasher: RandomState,
    hour: Mutex<Hour>,
}

/// The counts of one hour.
#[derive(Default)]
struct Hour {
    /// Hours since `started`.
    number: u64,
    /// Référent (by the hash of its id) → alerts this hour.
    counts: HashMap<u64, u32>,
}

impl FloodGuard {
    pub fn new(limit: u32) -> Self {
        Self::starting(limit, Instant::now())
    }

    fn starting(limit: u32, started: Instant) -> Self {
        Self {
            limit,
            started,
            hasher: RandomState::new(),
            hour: Mutex::default(),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Counts one alert emailed to `referent` at `now`.
    pub fn count(&self, referent: &ReferentId, now: Instant) -> Flood {
        if self.limit == 0 {
            return Flood::Within;
        }
        let number = (now.saturating_duration_since(self.started).as_secs()) / WINDOW.as_secs();
        let key = self.hasher.hash_one(referent.as_str());
        let mut hour = self.hour.lock().unwrap_or_else(PoisonError::into_inner);
        if hour.number != number {
            hour.number = number;
            hour.counts.clear();
            hour.counts.shrink_to(1024);
        }
        let count = hour.counts.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        if *count > self.limit {
            Flood::Over {
                count: *count,
                first: *count == self.limit + 1,
            }
        } else {
            Flood::Within
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_limit_in_an_hour_is_a_flood_said_once_and_the_next_hour_starts_afresh() {
        let start = Instant::now();
        let guard = FloodGuard::starting(2, start);
        let referent = ReferentId::parse("ccas-paris-13").unwrap();
        let other = ReferentId::parse("ccas-paris").unwrap();
        let at = |seconds| start + Duration::from_secs(seconds);

        let counted: Vec<Flood> = (0..4).map(|n| guard.count(&referent, at(n))).collect();

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
        assert_eq!(guard.count(&other, at(5)), Flood::Within);
        assert_eq!(guard.count(&referent, at(3600)), Flood::Within);
    }

    #[test]
    fn a_limit_of_zero_counts_nothing() {
        let guard = FloodGuard::new(0);
        let referent = ReferentId::parse("ccas-paris-13").unwrap();
        let now = Instant::now();
        assert!((0..100).all(|_| guard.count(&referent, now) == Flood::Within));
    }
}

//! The flood guard: a référent who receives far more alerts than an office
//! can read is a sign of a runaway publisher, or of someone using relais to
//! flood an office. Those alerts are still delivered (an alert is never
//! dropped for this), but operators hear of it: one `warn` line per
//! référent per hour, and a counter (`relais_referent_floods_total`) that
//! `monitoring/` turns into a Prometheus alert.
//!
//! Each référent has an hour-long window, opened by its first alert; the
//! guard remembers only the référents alerted in the last hour.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::registry::ReferentId;

const WINDOW: Duration = Duration::from_secs(3600);
/// Forget the référents of past windows once the map holds this many.
const SWEEP_AT: usize = 4096;

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
    windows: Mutex<HashMap<ReferentId, Window>>,
}

struct Window {
    opened: Instant,
    count: u32,
}

impl FloodGuard {
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            windows: Mutex::default(),
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
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, window| now.duration_since(window.opened) < WINDOW);
        }
        let window = windows.entry(referent.clone()).or_insert(Window {
            opened: now,
            count: 0,
        });
        if now.duration_since(window.opened) >= WINDOW {
            *window = Window {
                opened: now,
                count: 0,
            };
        }
        window.count = window.count.saturating_add(1);
        if window.count > self.limit {
            Flood::Over {
                count: window.count,
                first: window.count == self.limit + 1,
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
        let guard = FloodGuard::new(2);
        let referent = ReferentId::parse("ccas-paris-13").unwrap();
        let other = ReferentId::parse("ccas-paris").unwrap();
        let start = Instant::now();
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

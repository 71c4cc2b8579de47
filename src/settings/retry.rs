//! The `[retry]` section: what relais does when a mail server fails
//! transiently: attempts in process first, then the broker's retry queues,
//! one per delay, after which the alert is dead-lettered as `exhausted`.
//!
//! It refuses a ladder that would loop or wait for nothing (two equal
//! delays, a delay of 0) and a first attempt that is never made.

use std::time::Duration;

use serde::Deserialize;

/// What relais does when a mail server fails transiently.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Attempts in process for each email, before the alert goes to the
    /// broker's retry queues.
    pub immediate: u32,
    /// The first wait between immediate attempts; it doubles, with jitter.
    #[serde(with = "humantime_serde")]
    pub immediate_base: Duration,
    /// The broker-side retry ladder: one queue `<queue>.retry.<delay>` per
    /// delay. After the last one the alert is dead-lettered as `exhausted`.
    #[serde(deserialize_with = "durations")]
    pub delays: Vec<Duration>,
}

impl Default for RetrySettings {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        Self {
            immediate: 3,
            immediate_base: Duration::from_millis(500),
            delays: vec![
                Duration::from_secs(30),
                minutes(2),
                minutes(10),
                minutes(60),
                minutes(360),
            ],
        }
    }
}

impl RetrySettings {
    /// How long the broker-side ladder takes from the first retry to the
    /// last: what the store must remember an alert's deliveries for, at
    /// least.
    pub fn ladder(&self) -> Duration {
        self.delays.iter().sum()
    }

    pub(super) fn check(&self, errors: &mut Vec<String>) {
        if self.immediate == 0 {
            errors.push("retry.immediate must be at least 1 (the first attempt)".into());
        }
        let mut delays = self.delays.clone();
        delays.sort();
        delays.dedup();
        if delays.len() != self.delays.len() || delays.iter().any(|d| d.as_millis() == 0) {
            errors.push("retry.delays must be distinct and each at least 1ms".into());
        }
    }
}

fn durations<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<Duration>, D::Error> {
    let durations = Vec::<humantime_serde::Serde<Duration>>::deserialize(deserializer)?;
    Ok(durations
        .into_iter()
        .map(humantime_serde::Serde::into_inner)
        .collect())
}

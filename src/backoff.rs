//! How long to wait before trying again a service that does not answer:
//! the broker (the consumer, the events' publisher, the queues' poll) and
//! the store (opening it at start, reading it while an alert is held).
//!
//! One schedule for every side, so that relais backs off from a service in
//! one way: from a first wait, doubling with jitter (so that many relais
//! reconnecting after one outage do not knock at the same instant), at most
//! [`LONGEST_WAIT`], for as long as it takes. It never gives up and never
//! sleeps itself: the caller waits, and decides what a stop request means.

use std::time::Duration;

use backon::BackoffBuilder as _;

/// The longest wait between two attempts.
pub const LONGEST_WAIT: Duration = Duration::from_secs(30);

/// The waits between two attempts to reach a service: from `first`,
/// doubling with jitter, at most [`LONGEST_WAIT`], for as long as it takes.
pub fn waits(first: Duration) -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::default()
        .with_min_delay(first)
        .with_max_delay(LONGEST_WAIT)
        .with_jitter()
        .without_max_times()
        .build()
}

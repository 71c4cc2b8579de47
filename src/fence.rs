//! Whether this relais may still send: the standby lease as this process
//! last knew it, read in the same breath as each email is handed over.
//!
//! With a PostgreSQL store, the active relais holds a lease that it renews
//! every second (`standby`); a relais that cannot renew it (frozen, cut off
//! from PostgreSQL) must stop sending before the lease can pass to another
//! relais, or both would email the same alerts. The lease's renewer moves
//! the fence's deadline forward after each renewal; the mailer and the
//! consumer read it, with no I/O, right before the points of no return
//! (handing a message to the mail server, settling an alert with the
//! broker). A process resumed after a freeze finds its deadline passed at
//! once, before any task had a chance to run a renewal.
//!
//! Both clocks are checked: the monotonic one (which goes on while a
//! process is stopped) and the wall clock (which a paused virtual machine's
//! guest catches up on resuming, when its monotonic clock may not).
//!
//! With the SQLite store there is one relais and no lease: the fence is
//! [`Fence::open`], always passable.

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Whether this relais may send now; cheap to clone, every clone shares
/// one deadline.
#[derive(Clone, Debug, Default)]
pub struct Fence {
    /// `None`: always passable (no lease).
    until: Option<Arc<Deadline>>,
}

/// The instant until which the lease is held, on both clocks (0: closed).
#[derive(Debug, Default)]
struct Deadline {
    /// Nanoseconds since [`ORIGIN`] on the monotonic clock.
    monotonic: AtomicU64,
    /// Nanoseconds since the Unix epoch on the wall clock.
    wall: AtomicU64,
}

/// The origin of this process's monotonic readings.
static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);

impl Fence {
    /// A fence that always lets through: a relais alone on its store.
    pub fn open() -> Self {
        Self::default()
    }

    /// A fence closed until [`Fence::hold_for`] opens it: a relais that
    /// sends only while it holds a lease.
    pub fn closed() -> Self {
        Self {
            until: Some(Arc::default()),
        }
    }

    /// Whether this relais may send now.
    pub fn holds(&self) -> bool {
        let Some(until) = &self.until else {
            return true;
        };
        monotonic_now() < until.monotonic.load(Ordering::Acquire)
            && wall_now() < until.wall.load(Ordering::Acquire)
    }

    /// Lets through for `period` counted from `since` (the instant a
    /// renewal was sent, not when its answer came: the lease runs from
    /// when the store granted it, which is no earlier).
    pub fn hold_for(&self, since: (Instant, SystemTime), period: Duration) {
        let Some(until) = &self.until else {
            return;
        };
        let (instant, wall) = since;
        let monotonic = nanos((instant + period).saturating_duration_since(*ORIGIN));
        let wall = nanos(wall.duration_since(UNIX_EPOCH).unwrap_or_default() + period);
        until.monotonic.store(monotonic, Ordering::Release);
        until.wall.store(wall, Ordering::Release);
    }

    /// Stops letting through at once (the lease is lost or given up).
    pub fn close(&self) {
        if let Some(until) = &self.until {
            until.monotonic.store(0, Ordering::Release);
            until.wall.store(0, Ordering::Release);
        }
    }
}

/// Now, on both clocks, as [`Fence::hold_for`] takes it.
pub fn now() -> (Instant, SystemTime) {
    LazyLock::force(&ORIGIN);
    (Instant::now(), SystemTime::now())
}

fn monotonic_now() -> u64 {
    nanos(ORIGIN.elapsed())
}

fn wall_now() -> u64 {
    nanos(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_fence_always_lets_through() {
        let fence = Fence::open();
        fence.close();
        assert!(fence.holds());
    }

    #[test]
    fn a_closed_fence_lets_through_only_while_its_lease_runs() {
        let fence = Fence::closed();
        let shared = fence.clone();
        assert!(!fence.holds());

        fence.hold_for(now(), Duration::from_secs(60));
        assert!(shared.holds());

        let (instant, wall) = now();
        let long_ago = (
            instant - Duration::from_secs(61),
            wall - Duration::from_secs(61),
        );
        fence.hold_for(long_ago, Duration::from_secs(60));
        assert!(!shared.holds());

        fence.hold_for(now(), Duration::from_secs(60));
        fence.close();
        assert!(!shared.holds());
    }

    #[test]
    fn a_lease_counted_from_a_wall_clock_long_past_does_not_hold() {
        // A virtual machine paused then resumed: its monotonic clock may
        // not have moved, its wall clock did.
        let fence = Fence::closed();
        let (instant, wall) = now();
        fence.hold_for(
            (instant, wall - Duration::from_secs(3600)),
            Duration::from_secs(10),
        );
        assert!(!fence.holds());
    }
}

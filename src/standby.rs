//! Two relais, one sender: with a PostgreSQL store shared by relais on two
//! hosts, the one that holds a PostgreSQL advisory lock (named after the
//! main queue) is **active** and consumes; the other is **standby**: it
//! does not consume, tries the lock every second, and takes over within a
//! second or two once the active one stops or dies (PostgreSQL releases a
//! session's lock when its connection ends, and the kernel ends a killed
//! process's connections at once).
//!
//! The broker's single active consumer already makes a second consumer
//! wait; the lock adds what relais can know and say (`/readyz`, `relais
//! status`): which instance is active. An active relais that loses its
//! lock's connection (PostgreSQL restarting, a network cut) stops consuming
//! at once, lets the alerts in flight finish, and competes for the lock
//! again: two instances never consume together.
//!
//! With the SQLite store (one host), there is no lock: relais is active.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::settings::StoreSettings;
use crate::store::{StoreError, postgres};

/// How often a standby tries the lock, and an active relais checks that
/// its lock's connection is alive.
const EVERY: Duration = Duration::from_secs(1);

/// Whether this relais is the active one.
pub type Active = watch::Receiver<bool>;

/// Starts competing for the lock of queue `queue` when the store is
/// PostgreSQL; returns whether this relais is active, now and from now on.
pub fn start(store: &StoreSettings, queue: &str, stop: CancellationToken) -> Active {
    if store.url.is_none() {
        let (_, active) = watch::channel(true);
        return active;
    }
    let (sender, active) = watch::channel(false);
    tokio::spawn(hold_the_lock(store.clone(), lock_key(queue), sender, stop));
    active
}

/// The lock's key: a 64-bit hash of the queue's name, stable across
/// versions (FNV-1a), so that relais of other queues do not compete.
pub fn lock_key(queue: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"relais:".iter().chain(queue.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Who holds the lock `key`: the `application_name` of its session
/// (`relais on <host>`) and since when it is connected (for `relais
/// status`).
///
/// # Errors
/// [`StoreError::Postgres`] when PostgreSQL cannot be reached.
pub async fn lock_holder(
    store: &StoreSettings,
    key: i64,
) -> Result<Option<(String, OffsetDateTime)>, StoreError> {
    let client = postgres::connect(store).await?;
    // An advisory lock on one 64-bit key shows as two 32-bit halves.
    let bits = u64::from_ne_bytes(key.to_ne_bytes());
    let high = i64::from(u32::try_from(bits >> 32).unwrap_or(0));
    let low = i64::from(u32::try_from(bits & 0xffff_ffff).unwrap_or(0));
    let row = client
        .query_opt(
            "SELECT a.application_name, extract(epoch FROM a.backend_start)::BIGINT
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
               AND l.classid::BIGINT = $1 AND l.objid::BIGINT = $2",
            &[&high, &low],
        )
        .await
        .map_err(|error| postgres::failed(store, error))?;
    Ok(row.map(|row| {
        let since =
            OffsetDateTime::from_unix_timestamp(row.get(1)).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        (row.get(0), since)
    }))
}

async fn hold_the_lock(
    store: StoreSettings,
    key: i64,
    active: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let mut said_standby = false;
    loop {
        let held = async {
            let client = postgres::connect(&store).await.map_err(|e| e.to_string())?;
            loop {
                let row = client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                    .await
                    .map_err(|e| e.to_string())?;
                if row.get::<_, bool>(0) {
                    break;
                }
                if !said_standby {
                    info!("standby: another relais holds the lock of this queue");
                    said_standby = true;
                }
                tokio::time::sleep(EVERY).await;
            }
            info!("active: this relais holds the lock of its queue and consumes");
            said_standby = false;
            active.send_replace(true);
            loop {
                tokio::time::sleep(EVERY).await;
                client
                    .query_one("SELECT 1", &[])
                    .await
                    .map_err(|e| e.to_string())?;
            }
            #[allow(unreachable_code)]
            Ok::<(), String>(())
        };
        let ended = tokio::select! {
            () = stop.cancelled() => return,
            ended = held => ended,
        };
        if let Err(error) = ended {
            if *active.borrow() {
                warn!(%error, "lost the connection that holds the standby lock: stopping consuming");
            } else {
                warn!(%error, "cannot try the standby lock; trying again");
            }
        }
        active.send_replace(false);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_is_named_after_the_queue() {
        assert_eq!(lock_key("relais.alerts"), lock_key("relais.alerts"));
        assert_ne!(lock_key("relais.alerts"), lock_key("other.alerts"));
    }
}

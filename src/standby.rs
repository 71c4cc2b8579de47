//! Two relais, one sender: with a PostgreSQL store shared by relais on two
//! hosts, the one that holds the queue's **lease** (a row of the store's
//! `leases` table, named after the main queue) is **active** and consumes;
//! the other is **standby**: it does not consume, and tries the lease
//! every second.
//!
//! The active relais renews its lease every second for [`LEASE`]; the
//! database's clock says when it expires, so the two hosts' clocks do not
//! matter. A lease given up (a relais stopping) passes at the standby's
//! next try; a lease no longer renewed (a relais killed, frozen, or cut off
//! from PostgreSQL) passes once it expires. Each taking bumps the lease's
//! epoch, and a renewal names the epoch it renews: a relais that comes
//! back after a freeze finds out at its first renewal that the lease is
//! someone else's, and ends standby.
//!
//! **Fencing.** Until that first renewal, a relais resumed after a freeze
//! must not send: its [`Fence`] runs out [`MARGIN`] before the lease
//! itself, counted from when each renewal was sent, and the mailer checks
//! it right before it hands a message over. The broker's side is the AMQP
//! heartbeat (`amqp.heartbeat`): it closes a frozen relais's connection
//! within seconds, and hands the alerts that relais had received, unacked,
//! to the new active one. What no fence can stop is a message whose
//! handing-over had begun when the process froze; the mail server's reply
//! to it was not recorded, so that alert may reach its référent twice.
//!
//! `/readyz` and `relais status` say which instance is active. With the
//! SQLite store (one host), there is no lease: relais is active.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::fence::{self, Fence};
use crate::settings::StoreSettings;
use crate::store::{StoreError, postgres};

/// How often the active relais renews its lease, and a standby tries it.
const EVERY: Duration = Duration::from_secs(1);

/// How long a lease lasts unless renewed: how long a standby waits, at
/// most, once the active relais stopped renewing it (frozen, cut off).
pub const LEASE: Duration = Duration::from_secs(10);

/// How much sooner than the lease the active relais's fence runs out: room
/// for the time between reading the fence and the bytes leaving.
const MARGIN: Duration = Duration::from_secs(1);

/// How long one query on the lease may take before it counts as failed.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// The database's clock, in milliseconds since the Unix epoch.
const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT";

/// Whether this relais is the active one.
pub type Active = watch::Receiver<bool>;

/// This relais's standing among the relais of its queue.
pub struct Standby {
    /// Whether it is active, now and from now on.
    pub active: Active,
    /// The task that holds, renews and gives up the lease (none on SQLite).
    holder: Option<(JoinHandle<()>, CancellationToken)>,
}

impl Standby {
    /// Gives the lease up, once this relais sends nothing more (its
    /// consumer ended), so that a standby takes over at its next try.
    pub async fn release(self) {
        if let Some((task, give_up)) = self.holder {
            give_up.cancel();
            let _ = tokio::time::timeout(QUERY_TIMEOUT * 2, task).await;
        }
    }
}

/// Starts competing for the lease of queue `queue` when the store is
/// PostgreSQL, opening `fence` while this relais holds it.
pub fn start(store: &StoreSettings, queue: &str, fence: Fence) -> Standby {
    if store.url.is_none() {
        let (_, active) = watch::channel(true);
        return Standby {
            active,
            holder: None,
        };
    }
    let (sender, active) = watch::channel(false);
    let give_up = CancellationToken::new();
    let lease = Lease {
        name: lease_name(queue),
        holder: holder_name(),
        store: store.clone(),
        fence,
        active: sender,
    };
    let task = tokio::spawn(lease.hold(give_up.clone()));
    Standby {
        active,
        holder: Some((task, give_up)),
    }
}

/// The lease's name: the queue's, so that relais of other queues do not
/// compete.
pub fn lease_name(queue: &str) -> String {
    format!("queue {queue}")
}

/// This process among every relais: its host and its process id.
fn holder_name() -> String {
    format!("{} (pid {})", postgres::session_name(), std::process::id())
}

/// Who holds the lease of queue `queue`, and since when (for `relais
/// status`); `None` when nobody does.
///
/// # Errors
/// [`StoreError::Postgres`] when PostgreSQL cannot be reached.
pub async fn lease_holder(
    store: &StoreSettings,
    queue: &str,
) -> Result<Option<(String, OffsetDateTime)>, StoreError> {
    let client = postgres::connect(store).await?;
    let row = client
        .query_opt(
            &format!(
                "SELECT holder, acquired_at FROM leases WHERE name = $1 AND expires_at > {NOW_MS}"
            ),
            &[&lease_name(queue)],
        )
        .await
        .map_err(|error| postgres::failed(store, error))?;
    Ok(row.map(|row| {
        let since =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(row.get::<_, i64>(1)) * 1_000_000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        (row.get(0), since)
    }))
}

/// The lease of one queue, as this relais holds or wants it.
struct Lease {
    name: String,
    holder: String,
    store: StoreSettings,
    fence: Fence,
    active: watch::Sender<bool>,
}

impl Lease {
    /// Takes, renews and, once `give_up` is cancelled, gives up the lease.
    async fn hold(self, give_up: CancellationToken) {
        let mut epoch: Option<i64> = None;
        let mut said_standby = false;
        let mut client: Option<tokio_postgres::Client> = None;
        loop {
            // A PostgreSQL restart closes the connection between two tries.
            if client
                .as_ref()
                .is_some_and(tokio_postgres::Client::is_closed)
            {
                self.failed("the connection to PostgreSQL closed", epoch.is_some());
                client = None;
            }
            if client.is_none() {
                client = match tokio::time::timeout(QUERY_TIMEOUT, postgres::connect(&self.store))
                    .await
                {
                    Ok(Ok(client)) => Some(client),
                    Ok(Err(error)) => {
                        self.failed(&error.to_string(), epoch.is_some());
                        None
                    }
                    Err(_) => {
                        self.failed("PostgreSQL did not answer", epoch.is_some());
                        None
                    }
                };
            }
            if let Some(open) = &client {
                let sent = fence::now();
                let answer = match epoch {
                    Some(held) => self
                        .renew(open, held)
                        .await
                        .map(|kept| kept.then_some(held)),
                    None => self.take(open).await,
                };
                match answer {
                    Ok(Some(held)) => {
                        self.fence.hold_for(sent, LEASE - MARGIN);
                        if epoch.is_none() {
                            info!(lease = %self.name, epoch = held,
                                "active: this relais holds the lease of its queue and consumes");
                            said_standby = false;
                            self.active.send_replace(true);
                        }
                        epoch = Some(held);
                    }
                    Ok(None) => {
                        if epoch.take().is_some() {
                            warn!(lease = %self.name,
                                "another relais took the lease of this queue: stopping consuming");
                            self.stand_by();
                        }
                        if !said_standby {
                            info!("standby: another relais holds the lease of this queue");
                            said_standby = true;
                        }
                    }
                    Err(error) => {
                        self.failed(&error, epoch.is_some());
                        client = None;
                    }
                }
            }
            // A lease that could not be renewed in time is lost.
            if epoch.is_some() && !self.fence.holds() {
                warn!(lease = %self.name,
                    "could not renew the lease of this queue in time: stopping consuming");
                epoch = None;
                self.stand_by();
            }
            tokio::select! {
                () = give_up.cancelled() => break,
                () = tokio::time::sleep(EVERY) => {}
            }
        }
        self.stand_by();
        if let (Some(held), Some(open)) = (epoch, &client) {
            match self.release(open, held).await {
                Ok(()) => info!(lease = %self.name, "gave up the lease of this queue"),
                Err(error) => {
                    warn!(%error, "cannot give up the lease; it passes once it expires");
                }
            }
        }
    }

    /// Takes the lease if nobody holds it (or its holder let it expire);
    /// its new epoch when taken.
    async fn take(&self, client: &tokio_postgres::Client) -> Result<Option<i64>, String> {
        let sql = format!(
            "INSERT INTO leases (name, holder, epoch, acquired_at, expires_at)
             VALUES ($1, $2, 1, {NOW_MS}, {NOW_MS} + $3)
             ON CONFLICT (name) DO UPDATE
                 SET holder = EXCLUDED.holder, epoch = leases.epoch + 1,
                     acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at
                 WHERE leases.expires_at <= EXCLUDED.acquired_at
             RETURNING epoch"
        );
        let row =
            query(client.query_opt(&sql, &[&self.name, &self.holder, &millis(LEASE)])).await?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Renews the lease of epoch `epoch`; `false` when it is no longer
    /// this relais's.
    async fn renew(&self, client: &tokio_postgres::Client, epoch: i64) -> Result<bool, String> {
        let sql = format!(
            "UPDATE leases SET expires_at = {NOW_MS} + $3
             WHERE name = $1 AND holder = $2 AND epoch = $4"
        );
        let renewed =
            query(client.execute(&sql, &[&self.name, &self.holder, &millis(LEASE), &epoch]))
                .await?;
        Ok(renewed == 1)
    }

    /// Ends the lease of epoch `epoch` now.
    async fn release(&self, client: &tokio_postgres::Client, epoch: i64) -> Result<(), String> {
        let sql = format!(
            "UPDATE leases SET expires_at = {NOW_MS}
             WHERE name = $1 AND holder = $2 AND epoch = $3"
        );
        query(client.execute(&sql, &[&self.name, &self.holder, &epoch])).await?;
        Ok(())
    }

    /// This relais sends and consumes nothing more.
    fn stand_by(&self) {
        self.fence.close();
        self.active.send_replace(false);
    }

    fn failed(&self, error: &str, holding: bool) {
        if holding {
            warn!(%error, "cannot renew the lease of this queue; trying again until it runs out");
        } else {
            warn!(%error, "cannot try the lease of this queue; trying again");
        }
    }
}

/// One query on the lease, within [`QUERY_TIMEOUT`].
async fn query<T>(
    running: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(QUERY_TIMEOUT, running).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(error)) => Err(crate::telemetry::one_line(&crate::telemetry::causes(
            &anyhow::Error::new(error),
        ))),
        Err(_) => Err(format!(
            "PostgreSQL did not answer within {}",
            humantime::format_duration(QUERY_TIMEOUT)
        )),
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_named_after_the_queue() {
        assert_eq!(lease_name("relais.alerts"), lease_name("relais.alerts"));
        assert_ne!(lease_name("relais.alerts"), lease_name("other.alerts"));
    }

    #[test]
    fn the_fence_runs_out_before_the_lease_and_a_renewal_comes_well_before_both() {
        assert!(MARGIN < LEASE && EVERY + QUERY_TIMEOUT < LEASE - MARGIN);
    }
}

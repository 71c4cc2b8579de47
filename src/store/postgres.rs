//! The PostgreSQL store (`store.url`): one database that several relais on
//! several hosts share, so that a standby taking over knows who the active
//! one emailed, who acknowledged and where each escalation stands.
//!
//! `tokio-postgres` with a `deadpool-postgres` pool (a broken connection is
//! replaced at the next use; PostgreSQL restarting is an error for the
//! requests of that moment, not for relais). Deliveries are written as the
//! SQLite store writes them: those that arrive together go in one
//! transaction, one multi-row insert (group commit), by one task. The
//! schema is relais's own table of versions and the same steps as SQLite's,
//! applied at start-up under a transaction-level advisory lock, so that two
//! relais starting together never migrate twice.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use secrecy::ExposeSecret;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Row;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::alert::AlertId;
use crate::settings::StoreSettings;

use super::{
    Acknowledged, Digest, EscalationStep, Operation, Pending, SentEmail, Served, StoreError,
    instant, referent_list,
};

/// Deliveries waiting for the writer; bounded, as for SQLite.
const QUEUE: usize = 1024;
/// Most deliveries written in one transaction.
const BATCH: usize = 256;
/// Connections of one relais: the writer's, the dedup checks', the
/// acknowledgement pages', the operators'.
const POOL_SIZE: usize = 8;
/// Longest wait for a connection of the pool (PostgreSQL unreachable: the
/// caller gets an error, and relais holds the alert).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema, one step per release that changed it (the SQLite steps'
/// content, in PostgreSQL's words; there was no PostgreSQL store before
/// step 1). Steps are only ever added, never edited, and none destroys data.
const MIGRATIONS: &[&str] = &["CREATE TABLE deliveries (
         alert_id     TEXT NOT NULL,
         referent_id  TEXT NOT NULL,
         email        TEXT NOT NULL,
         message_id   TEXT NOT NULL,
         smtp_reply   TEXT NOT NULL,
         delivered_at BIGINT NOT NULL,
         digest       BYTEA,
         network      TEXT,
         PRIMARY KEY (alert_id, referent_id)
     );
     CREATE INDEX deliveries_by_time ON deliveries (delivered_at);
     CREATE TABLE operations (
         recorded_at BIGINT NOT NULL,
         unix_user   TEXT NOT NULL,
         command     TEXT NOT NULL,
         count       BIGINT NOT NULL
     );
     CREATE INDEX operations_by_time ON operations (recorded_at);
     CREATE TABLE acknowledgements (
         alert_id        TEXT NOT NULL,
         referent_id     TEXT NOT NULL,
         acknowledged_at BIGINT NOT NULL,
         PRIMARY KEY (alert_id, referent_id)
     );
     CREATE INDEX acknowledgements_by_time ON acknowledgements (acknowledged_at);
     CREATE TABLE escalations (
         alert_id TEXT NOT NULL,
         step     SMALLINT NOT NULL,
         due_at   BIGINT NOT NULL,
         done_at  BIGINT,
         PRIMARY KEY (alert_id, step)
     );
     CREATE INDEX escalations_by_time ON escalations (due_at);"];

/// The advisory lock key under which the schema is migrated ("relais" in
/// ASCII).
const MIGRATION_LOCK: i64 = 0x7265_6c61_6973;

/// A handle on the PostgreSQL store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// To the writer task.
    writes: mpsc::Sender<Write>,
    /// The URL without its password, for error messages.
    url: Arc<str>,
    /// Told whether PostgreSQL answers (readiness).
    health: Option<Arc<crate::health::Health>>,
}

struct Write {
    delivery: SentEmail,
    digest: Digest,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// How to reach the database `settings` name: the parsed URL (sessions
/// named `relais on <host>`, for `relais status`), and TLS when
/// `store.ca_file` is given.
fn reach(
    settings: &StoreSettings,
) -> Result<(tokio_postgres::Config, Option<MakeRustlsConnect>), StoreError> {
    let failed = |message: String| StoreError::Postgres {
        url: settings.describe(),
        message,
    };
    let secret = settings
        .url
        .as_ref()
        .ok_or_else(|| failed("no store.url".into()))?;
    let mut config: tokio_postgres::Config = secret
        .expose_secret()
        .parse()
        .map_err(|_| failed("is not a PostgreSQL URL relais can use".into()))?;
    config.connect_timeout(CONNECT_TIMEOUT);
    config.application_name(format!("relais on {}", host_name()));
    let tls = match &settings.ca_file {
        Some(ca_file) => Some(MakeRustlsConnect::new(
            crate::tls::trusting("store.ca_file", ca_file)
                .map_err(|error| failed(error.to_string()))?,
        )),
        None => None,
    };
    Ok((config, tls))
}

/// A connection of its own to the database `settings` name, outside the
/// pool (for the standby lock, which lives as long as its session).
///
/// # Errors
/// [`StoreError::Postgres`] when PostgreSQL cannot be reached.
pub async fn connect(settings: &StoreSettings) -> Result<tokio_postgres::Client, StoreError> {
    let (config, tls) = reach(settings)?;
    let failed = |error: tokio_postgres::Error| StoreError::Postgres {
        url: settings.describe(),
        message: error.to_string(),
    };
    let client = match tls {
        Some(tls) => {
            let (client, connection) = config.connect(tls).await.map_err(failed)?;
            tokio::spawn(connection);
            client
        }
        None => {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(failed)?;
            tokio::spawn(connection);
            client
        }
    };
    Ok(client)
}

impl Store {
    /// Connects, brings the schema up to date and starts the writer.
    ///
    /// # Errors
    /// [`StoreError::Postgres`] when PostgreSQL cannot be reached or the
    /// schema cannot be brought up to date.
    pub async fn open(settings: &StoreSettings) -> Result<Self, StoreError> {
        let url: Arc<str> = settings.describe().into();
        let failed = |message: String| StoreError::Postgres {
            url: url.to_string(),
            message,
        };
        let (config, tls) = reach(settings)?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls {
            Some(tls) => Manager::from_config(config, tls, manager_config),
            None => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|error| failed(error.to_string()))?;
        let (writes, receiver) = mpsc::channel(QUEUE);
        let store = Self {
            pool,
            writes,
            url,
            health: None,
        };
        store.migrate().await?;
        tokio::spawn(write_deliveries(store.clone(), receiver));
        Ok(store)
    }

    fn error(&self, error: impl std::fmt::Display) -> StoreError {
        StoreError::Postgres {
            url: self.url.to_string(),
            message: error.to_string(),
        }
    }

    /// This store, telling `health` whether PostgreSQL answers.
    #[must_use]
    pub fn watched_by(mut self, health: Arc<crate::health::Health>) -> Self {
        self.health = Some(health);
        self
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        let got = self.pool.get().await.map_err(|error| self.error(error));
        if let Some(health) = &self.health {
            match &got {
                Ok(_) => health.store_usable(),
                Err(error) => health.store_unusable(error.to_string()),
            }
        }
        got
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(|e| self.error(e))?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| self.error(e))?;
        transaction
            .batch_execute("CREATE TABLE IF NOT EXISTS relais_schema (version INTEGER NOT NULL)")
            .await
            .map_err(|e| self.error(e))?;
        let version: Option<i32> = transaction
            .query_opt("SELECT max(version) FROM relais_schema", &[])
            .await
            .map_err(|e| self.error(e))?
            .and_then(|row| row.get(0));
        let version = usize::try_from(version.unwrap_or(0)).unwrap_or(0);
        if version > MIGRATIONS.len() {
            return Err(StoreError::Newer {
                path: self.url.to_string().into(),
                version,
                known: MIGRATIONS.len(),
            });
        }
        for (step, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            transaction
                .batch_execute(sql)
                .await
                .map_err(|e| self.error(e))?;
            let reached = i32::try_from(step + 1).unwrap_or(i32::MAX);
            transaction
                .execute(
                    "INSERT INTO relais_schema (version) VALUES ($1)",
                    &[&reached],
                )
                .await
                .map_err(|e| self.error(e))?;
        }
        transaction.commit().await.map_err(|e| self.error(e))
    }

    pub async fn served(&self, alert: &AlertId) -> Result<Vec<Served>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT referent_id, digest FROM deliveries WHERE alert_id = $1",
                &[&alert.as_str()],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows
            .iter()
            .map(|row| Served {
                referent_id: row.get(0),
                digest: row
                    .get::<_, Option<Vec<u8>>>(1)
                    .and_then(|bytes| Digest::try_from(bytes).ok()),
            })
            .collect())
    }

    pub async fn record(&self, delivery: SentEmail, digest: Digest) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(Write {
                delivery,
                digest,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    pub async fn acknowledge(
        &self,
        alert_id: &str,
        referent_id: &str,
        at: OffsetDateTime,
    ) -> Result<Acknowledged, StoreError> {
        let client = self.client().await?;
        let first = client
            .execute(
                "INSERT INTO acknowledgements (alert_id, referent_id, acknowledged_at)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&alert_id, &referent_id, &at.unix_timestamp()],
            )
            .await
            .map_err(|e| self.error(e))?
            == 1;
        let network: Option<String> = client
            .query_opt(
                "SELECT network FROM deliveries WHERE alert_id = $1 AND referent_id = $2",
                &[&alert_id, &referent_id],
            )
            .await
            .map_err(|e| self.error(e))?
            .and_then(|row| row.get(0));
        let since: Option<i64> = client
            .query_one(
                "SELECT min(delivered_at) FROM deliveries
                 WHERE alert_id = $1 AND network IS NOT DISTINCT FROM $2",
                &[&alert_id, &network],
            )
            .await
            .map_err(|e| self.error(e))?
            .get(0);
        let waited = since.map(|since| {
            Duration::from_secs(u64::try_from(at.unix_timestamp() - since).unwrap_or(0))
        });
        Ok(Acknowledged {
            first,
            network,
            waited,
        })
    }

    pub async fn escalation_scheduled(
        &self,
        alert: &AlertId,
        step: u8,
        due_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO escalations (alert_id, step, due_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&alert.as_str(), &i16::from(step), &due_at.unix_timestamp()],
            )
            .await
            .map(drop)
            .map_err(|e| self.error(e))
    }

    pub async fn escalation_done(
        &self,
        alert: &AlertId,
        step: u8,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO escalations (alert_id, step, due_at, done_at) VALUES ($1, $2, $3, $3)
                 ON CONFLICT (alert_id, step) DO UPDATE SET done_at = excluded.done_at
                 WHERE escalations.done_at IS NULL",
                &[&alert.as_str(), &i16::from(step), &at.unix_timestamp()],
            )
            .await
            .map(|rows| rows == 1)
            .map_err(|e| self.error(e))
    }

    pub async fn escalation(&self, alert: &str) -> Result<Vec<EscalationStep>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT step, due_at, done_at FROM escalations WHERE alert_id = $1 ORDER BY step",
                &[&alert],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows.iter().map(escalation_step).collect())
    }

    pub async fn acknowledged_networks(&self, alert: &AlertId) -> Result<Vec<String>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT DISTINCT d.network FROM acknowledgements a
                 JOIN deliveries d ON d.alert_id = a.alert_id AND d.referent_id = a.referent_id
                 WHERE a.alert_id = $1 AND d.network IS NOT NULL",
                &[&alert.as_str()],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    pub async fn prune(&self, before: OffsetDateTime) -> Result<usize, StoreError> {
        let before = before.unix_timestamp();
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(|e| self.error(e))?;
        let deleted = transaction
            .execute("DELETE FROM deliveries WHERE delivered_at < $1", &[&before])
            .await
            .map_err(|e| self.error(e))?;
        for sql in [
            "DELETE FROM acknowledgements WHERE acknowledged_at < $1",
            "DELETE FROM escalations WHERE due_at < $1",
        ] {
            transaction
                .execute(sql, &[&before])
                .await
                .map_err(|e| self.error(e))?;
        }
        transaction.commit().await.map_err(|e| self.error(e))?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }

    /// Deliveries of `alert`, or since `since`, oldest first.
    pub async fn deliveries(
        &self,
        alert: Option<&str>,
        since: Option<OffsetDateTime>,
    ) -> Result<Vec<SentEmail>, StoreError> {
        let since = since.map_or(i64::MIN, OffsetDateTime::unix_timestamp);
        let rows = self
            .client()
            .await?
            .query(
                "SELECT alert_id, referent_id, email, message_id, smtp_reply, delivered_at, network
                 FROM deliveries
                 WHERE ($1::TEXT IS NULL OR alert_id = $1) AND delivered_at >= $2
                 ORDER BY delivered_at, alert_id, referent_id",
                &[&alert, &since],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows
            .iter()
            .map(|row| SentEmail {
                alert_id: row.get(0),
                referent_id: row.get(1),
                email: row.get(2),
                message_id: row.get(3),
                smtp_reply: row.get(4),
                delivered_at: instant(row.get(5)),
                network: row.get(6),
            })
            .collect())
    }

    pub async fn acknowledgements(
        &self,
        alert: &str,
    ) -> Result<Vec<(String, OffsetDateTime)>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT referent_id, acknowledged_at FROM acknowledgements
                 WHERE alert_id = $1 ORDER BY acknowledged_at, referent_id",
                &[&alert],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), instant(row.get(1))))
            .collect())
    }

    pub async fn pending(&self, since: OffsetDateTime) -> Result<Vec<Pending>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT d.alert_id, d.network, min(d.delivered_at),
                        string_agg(d.referent_id, ',' ORDER BY d.referent_id)
                 FROM deliveries d
                 WHERE d.delivered_at >= $1 AND d.network IS NOT NULL
                   AND NOT EXISTS (
                       SELECT 1 FROM acknowledgements a
                       JOIN deliveries o ON o.alert_id = a.alert_id AND o.referent_id = a.referent_id
                       WHERE a.alert_id = d.alert_id AND o.network = d.network)
                 GROUP BY d.alert_id, d.network
                 ORDER BY min(d.delivered_at), d.alert_id, d.network",
                &[&since.unix_timestamp()],
            )
            .await
            .map_err(|e| self.error(e))?;
        let mut pending = Vec::with_capacity(rows.len());
        for row in &rows {
            let alert_id: String = row.get(0);
            let steps = self.escalation(&alert_id).await?;
            let mut alert = Pending {
                network: row.get(1),
                since: instant(row.get(2)),
                referents: referent_list(row.get(3)),
                next: None,
                unacknowledged_at: None,
                alert_id,
            };
            alert.chain(&steps);
            pending.push(alert);
        }
        Ok(pending)
    }

    pub async fn operations(
        &self,
        since: Option<OffsetDateTime>,
    ) -> Result<Vec<Operation>, StoreError> {
        let since = since.map_or(i64::MIN, OffsetDateTime::unix_timestamp);
        let rows = self
            .client()
            .await?
            .query(
                "SELECT recorded_at, unix_user, command, count FROM operations
                 WHERE recorded_at >= $1 ORDER BY recorded_at",
                &[&since],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows
            .iter()
            .map(|row| Operation {
                recorded_at: instant(row.get(0)),
                unix_user: row.get(1),
                command: row.get(2),
                count: usize::try_from(row.get::<_, i64>(3)).unwrap_or(0),
            })
            .collect())
    }

    pub async fn record_operation(&self, operation: &Operation) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO operations (recorded_at, unix_user, command, count)
                 VALUES ($1, $2, $3, $4)",
                &[
                    &operation.recorded_at.unix_timestamp(),
                    &operation.unix_user,
                    &operation.command,
                    &i64::try_from(operation.count).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// Writes `batch` in one transaction, one statement.
    async fn write_batch(&self, batch: &[Write]) -> Result<(), StoreError> {
        let column = |get: fn(&Write) -> String| batch.iter().map(get).collect::<Vec<String>>();
        let alerts = column(|w| w.delivery.alert_id.clone());
        let referents = column(|w| w.delivery.referent_id.clone());
        let emails = column(|w| w.delivery.email.clone());
        let message_ids = column(|w| w.delivery.message_id.clone());
        let replies = column(|w| w.delivery.smtp_reply.clone());
        let times: Vec<i64> = batch
            .iter()
            .map(|w| w.delivery.delivered_at.unix_timestamp())
            .collect();
        let digests: Vec<Vec<u8>> = batch.iter().map(|w| w.digest.to_vec()).collect();
        let networks: Vec<Option<String>> =
            batch.iter().map(|w| w.delivery.network.clone()).collect();
        self.client()
            .await?
            .execute(
                "INSERT INTO deliveries
                     (alert_id, referent_id, email, message_id, smtp_reply, delivered_at, digest,
                      network)
                 SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[],
                                      $6::BIGINT[], $7::BYTEA[], $8::TEXT[])
                 ON CONFLICT (alert_id, referent_id) DO NOTHING",
                &[
                    &alerts,
                    &referents,
                    &emails,
                    &message_ids,
                    &replies,
                    &times,
                    &digests,
                    &networks,
                ],
            )
            .await
            .map(drop)
            .map_err(|e| self.error(e))
    }
}

/// This machine's name, as `relais status` shows the active instance.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "an unknown host".into())
}

/// Who holds the advisory lock `key`: the `application_name` of its
/// session (`relais on <host>`) and since when it is connected.
///
/// # Errors
/// [`StoreError::Postgres`] when PostgreSQL cannot be reached.
pub async fn lock_holder(
    settings: &StoreSettings,
    key: i64,
) -> Result<Option<(String, OffsetDateTime)>, StoreError> {
    let client = connect(settings).await?;
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
        .map_err(|error| StoreError::Postgres {
            url: settings.describe(),
            message: error.to_string(),
        })?;
    Ok(row.map(|row| (row.get(0), instant(row.get(1)))))
}

fn escalation_step(row: &Row) -> EscalationStep {
    EscalationStep {
        step: u8::try_from(row.get::<_, i16>(0)).unwrap_or(0),
        due_at: instant(row.get(1)),
        done_at: row.get::<_, Option<i64>>(2).map(instant),
    }
}

/// The writer: takes what has arrived (up to [`BATCH`]), writes it in one
/// statement, and answers each writer once it is committed.
async fn write_deliveries(store: Store, mut writes: mpsc::Receiver<Write>) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = writes.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match writes.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let written = store.write_batch(&batch).await;
        for write in batch.drain(..) {
            let _ = write.reply.send(match &written {
                Ok(()) => Ok(()),
                Err(error) => Err(StoreError::Write(error.to_string())),
            });
        }
    }
}

//! The SQLite store: one file on this machine, the default (nothing to
//! install). See the module above for what the store holds.
//!
//! WAL, `synchronous = FULL`. Writes go to one dedicated thread: every
//! write is on disk before the alert is acked, and writes arriving together
//! share one transaction (group commit), so durability does not cost one
//! disk flush per email under load. The dedup check, a read of a few
//! microseconds, runs on the caller's thread on a connection of its own
//! (WAL lets readers in beside the writer, and a reader sees every write
//! committed before it starts).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::alert::AlertId;

use super::{
    Acknowledged, Digest, EscalationStep, Operation, Pending, SentEmail, Served, StoreError,
    create_folder, instant, referent_list,
};

/// Requests waiting for the store thread; bounded so that a stuck disk
/// slows the consumers instead of growing memory.
const QUEUE: usize = 1024;
/// Most requests served in one transaction.
const BATCH: usize = 256;

enum Request {
    /// Written with the others that arrive together (group commit).
    Record {
        delivery: SentEmail,
        digest: Digest,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Anything else: run on the store's thread, alone; it answers itself.
    Job(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// A handle on the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// Its file, for the readers of their own (`pending_count`).
    path: PathBuf,
    /// To the writer thread.
    requests: mpsc::Sender<Request>,
    /// For the dedup check.
    reader: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (creating if needed) the store at `path` and starts its thread.
    ///
    /// # Errors
    /// [`StoreError`] when the file cannot be opened or initialised.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        create_folder(path)?;
        let connection = open_connection(path, OpenFlags::default())?;
        // Opened after the writer, which created the file and its WAL.
        let reader = open_connection(path, read_only())?;
        let (requests, receiver) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("relais-store".into())
            .spawn(move || serve(connection, receiver))
            .map_err(StoreError::Thread)?;
        Ok(Self {
            path: path.to_owned(),
            requests,
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The référents already emailed about `alert`, with the digest of
    /// what they received. A point query on the primary key, on the
    /// caller's thread.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    pub fn served(&self, alert: &AlertId) -> Result<Vec<Served>, StoreError> {
        let reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(served(&reader, alert.as_str())?)
    }

    /// Records an email the server accepted, about an alert of content
    /// `digest`; on disk when this returns.
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn record(&self, delivery: SentEmail, digest: Digest) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Record {
            delivery,
            digest,
            reply,
        })
        .await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Records that `referent_id` acknowledged `alert_id` at `at` (the
    /// first time stays).
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn acknowledge(
        &self,
        alert_id: &str,
        referent_id: &str,
        at: OffsetDateTime,
    ) -> Result<Acknowledged, StoreError> {
        let (alert_id, referent_id) = (alert_id.to_owned(), referent_id.to_owned());
        self.job(move |connection| acknowledge(connection, &alert_id, &referent_id, at))
            .await
    }

    /// Records that step `step` of `alert`'s escalation will be due at
    /// `due_at` (once its message waits in the broker).
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn escalation_scheduled(
        &self,
        alert: &AlertId,
        step: u8,
        due_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let alert = alert.to_string();
        self.job(move |connection| {
            connection
                .execute(
                    "INSERT INTO escalations (alert_id, step, due_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO NOTHING",
                    params![alert, step, due_at.unix_timestamp()],
                )
                .map(drop)
                .map_err(StoreError::from)
        })
        .await
    }

    /// Records that step `step` of `alert`'s escalation was carried out at
    /// `at`; `false` if it already had been (the first time stays).
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn escalation_done(
        &self,
        alert: &AlertId,
        step: u8,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let alert = alert.to_string();
        self.job(move |connection| {
            let at = at.unix_timestamp();
            connection
                .execute(
                    "INSERT INTO escalations (alert_id, step, due_at, done_at)
                     VALUES (?1, ?2, ?3, ?3)
                     ON CONFLICT (alert_id, step) DO UPDATE SET done_at = excluded.done_at
                     WHERE escalations.done_at IS NULL",
                    params![alert, step, at],
                )
                .map(|rows| rows == 1)
                .map_err(StoreError::from)
        })
        .await
    }

    /// The steps of `alert`'s escalation chain scheduled or carried out,
    /// first step first.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    pub fn escalation(&self, alert: &AlertId) -> Result<Vec<EscalationStep>, StoreError> {
        let reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(escalation(&reader, alert.as_str())?)
    }

    /// The networks in which someone acknowledged `alert`.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    pub fn acknowledged_networks(&self, alert: &AlertId) -> Result<Vec<String>, StoreError> {
        let reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let mut statement = reader.prepare_cached(
            "SELECT DISTINCT d.network FROM acknowledgements a
             JOIN deliveries d ON d.alert_id = a.alert_id AND d.referent_id = a.referent_id
             WHERE a.alert_id = ?1 AND d.network IS NOT NULL",
        )?;
        let rows = statement.query_map(params![alert.as_str()], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets deliveries, acknowledgements and escalations older than
    /// `before`; returns how many deliveries.
    ///
    /// # Errors
    /// [`StoreError`] if the delete failed.
    pub async fn prune(&self, before: OffsetDateTime) -> Result<usize, StoreError> {
        self.job(move |connection| {
            let before = before.unix_timestamp();
            let transaction = connection.transaction()?;
            let deleted = transaction.execute(
                "DELETE FROM deliveries WHERE delivered_at < ?1",
                params![before],
            )?;
            transaction.execute(
                "DELETE FROM acknowledgements WHERE acknowledged_at < ?1",
                params![before],
            )?;
            transaction.execute("DELETE FROM escalations WHERE due_at < ?1", params![before])?;
            transaction.commit()?;
            Ok(deleted)
        })
        .await
    }

    /// Runs `job` on the store's thread and returns its answer.
    async fn job<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Job(Box::new(move |connection| {
            let _ = reply.send(job(connection));
        })))
        .await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn send(&self, request: Request) -> Result<(), StoreError> {
        self.requests
            .send(request)
            .await
            .map_err(|_| StoreError::Closed)
    }
}

fn read_only() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
}

/// The store's schema, one step per release that changed it: a store is
/// brought up to date at start-up, in one transaction, and its version is
/// SQLite's `user_version`. Steps are only ever added, never edited, and
/// none destroys data.
const MIGRATIONS: &[&str] = &[
    // 1. Who was emailed about which alert (written by every relais so far,
    //    hence `IF NOT EXISTS`).
    "CREATE TABLE IF NOT EXISTS deliveries (
         alert_id     TEXT NOT NULL,
         referent_id  TEXT NOT NULL,
         email        TEXT NOT NULL,
         message_id   TEXT NOT NULL,
         smtp_reply   TEXT NOT NULL,
         delivered_at INTEGER NOT NULL,
         PRIMARY KEY (alert_id, referent_id)
     ) WITHOUT ROWID;
     CREATE INDEX IF NOT EXISTS deliveries_by_time ON deliveries (delivered_at);",
    // 2. The digest of the alert's content each email was about, so that
    //    another alert reusing the id is caught (NULL: recorded before).
    "ALTER TABLE deliveries ADD COLUMN digest BLOB;",
    // 3. What operators did with the dead letters and the audit trail.
    "CREATE TABLE operations (
         recorded_at INTEGER NOT NULL,
         unix_user   TEXT NOT NULL,
         command     TEXT NOT NULL,
         count       INTEGER NOT NULL
     );
     CREATE INDEX operations_by_time ON operations (recorded_at);",
    // 4. Who acknowledged which alert, from the link of its email.
    "CREATE TABLE acknowledgements (
         alert_id        TEXT NOT NULL,
         referent_id     TEXT NOT NULL,
         acknowledged_at INTEGER NOT NULL,
         PRIMARY KEY (alert_id, referent_id)
     ) WITHOUT ROWID;
     CREATE INDEX acknowledgements_by_time ON acknowledgements (acknowledged_at);",
    // 5. The network of each email (an acknowledgement counts for its
    //    network), and the escalation chains: each step's due time and
    //    when it was carried out. The alert itself waits in the broker.
    "ALTER TABLE deliveries ADD COLUMN network TEXT;
     CREATE TABLE escalations (
         alert_id TEXT NOT NULL,
         step     INTEGER NOT NULL,
         due_at   INTEGER NOT NULL,
         done_at  INTEGER,
         PRIMARY KEY (alert_id, step)
     ) WITHOUT ROWID;
     CREATE INDEX escalations_by_time ON escalations (due_at);",
];

/// Brings the store's schema up to date; returns the version it had (a
/// version past [`MIGRATIONS`] is left alone: a newer relais wrote it).
fn migrate(connection: &Connection) -> Result<usize, rusqlite::Error> {
    let version: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version >= MIGRATIONS.len() {
        return Ok(version);
    }
    connection.execute_batch("BEGIN IMMEDIATE")?;
    let applied = MIGRATIONS[version..]
        .iter()
        .try_for_each(|step| connection.execute_batch(step))
        .and_then(|()| connection.pragma_update(None, "user_version", MIGRATIONS.len() as i64));
    match applied {
        Ok(()) => connection.execute_batch("COMMIT").map(|()| version),
        Err(error) => {
            let _ = connection.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let open = || -> Result<Connection, rusqlite::Error> {
        let connection = Connection::open_with_flags(path, flags)?;
        connection.busy_timeout(Duration::from_secs(5))?;
        // Each alert touches a few pages of the primary key; the system's
        // page cache is behind this one. (Default: 2 MiB.) The dedup check
        // reads one leaf per alert: the upper levels of the tree are all
        // its cache needs to hold.
        let cache_kib = if flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY) {
            -128
        } else {
            -512
        };
        connection.pragma_update(None, "cache_size", cache_kib)?;
        if !flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY) {
            connection.pragma_update(None, "journal_mode", "WAL")?;
            connection.pragma_update(None, "synchronous", "FULL")?;
        }
        Ok(connection)
    };
    let at = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    let connection = open().map_err(at)?;
    if !flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY) {
        let version = migrate(&connection).map_err(at)?;
        if version > MIGRATIONS.len() {
            return Err(StoreError::Newer {
                path: path.to_owned(),
                version,
                known: MIGRATIONS.len(),
            });
        }
    }
    Ok(connection)
}

/// The store thread: takes what has arrived (up to [`BATCH`]), answers
/// reads at once, and commits all writes of the batch in one transaction
/// before answering them.
fn serve(mut connection: Connection, mut requests: mpsc::Receiver<Request>) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = requests.blocking_recv() {
        batch.push(first);
        while batch.len() < BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let mut writes = Vec::new();
        for request in batch.drain(..) {
            match request {
                Request::Record {
                    delivery,
                    digest,
                    reply,
                } => writes.push(((delivery, digest), reply)),
                Request::Job(job) => job(&mut connection),
            }
        }
        if writes.is_empty() {
            continue;
        }
        let committed = record_all(&mut connection, writes.iter().map(|(write, _)| write));
        for (_, reply) in writes {
            let _ = reply.send(match &committed {
                Ok(()) => Ok(()),
                // Every writer of a failed batch gets the same failure.
                Err(error) => Err(StoreError::Write(error.to_string())),
            });
        }
    }
}

fn served(connection: &Connection, alert: &str) -> Result<Vec<Served>, rusqlite::Error> {
    let mut statement = connection
        .prepare_cached("SELECT referent_id, digest FROM deliveries WHERE alert_id = ?1")?;
    let rows = statement.query_map(params![alert], |row| {
        let digest: Option<Vec<u8>> = row.get(1)?;
        Ok(Served {
            referent_id: row.get(0)?,
            digest: digest.and_then(|bytes| Digest::try_from(bytes).ok()),
        })
    })?;
    rows.collect()
}

fn acknowledge(
    connection: &mut Connection,
    alert_id: &str,
    referent_id: &str,
    at: OffsetDateTime,
) -> Result<Acknowledged, StoreError> {
    let first = connection.execute(
        "INSERT INTO acknowledgements (alert_id, referent_id, acknowledged_at)
         VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        params![alert_id, referent_id, at.unix_timestamp()],
    )? == 1;
    let network: Option<String> = connection
        .query_row(
            "SELECT network FROM deliveries WHERE alert_id = ?1 AND referent_id = ?2",
            params![alert_id, referent_id],
            |row| row.get(0),
        )
        .optional()?
        .flatten();
    let since: Option<i64> = connection.query_row(
        "SELECT MIN(delivered_at) FROM deliveries WHERE alert_id = ?1 AND network IS ?2",
        params![alert_id, network],
        |row| row.get(0),
    )?;
    let waited = since
        .map(|since| Duration::from_secs(u64::try_from(at.unix_timestamp() - since).unwrap_or(0)));
    Ok(Acknowledged {
        first,
        network,
        waited,
    })
}

fn escalation(
    connection: &Connection,
    alert: &str,
) -> Result<Vec<EscalationStep>, rusqlite::Error> {
    let mut statement = connection.prepare_cached(
        "SELECT step, due_at, done_at FROM escalations WHERE alert_id = ?1 ORDER BY step",
    )?;
    let rows = statement.query_map(params![alert], |row| {
        Ok(EscalationStep {
            step: row.get(0)?,
            due_at: instant(row.get(1)?),
            done_at: row.get::<_, Option<i64>>(2)?.map(instant),
        })
    })?;
    rows.collect()
}

fn record_all<'a>(
    connection: &mut Connection,
    deliveries: impl Iterator<Item = &'a (SentEmail, Digest)>,
) -> Result<(), rusqlite::Error> {
    let transaction = connection.transaction()?;
    {
        let mut insert = transaction.prepare_cached(
            "INSERT INTO deliveries
                 (alert_id, referent_id, email, message_id, smtp_reply, delivered_at, digest,
                  network)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (alert_id, referent_id) DO NOTHING",
        )?;
        for (delivery, digest) in deliveries {
            insert.execute(params![
                delivery.alert_id,
                delivery.referent_id,
                delivery.email,
                delivery.message_id,
                delivery.smtp_reply,
                delivery.delivered_at.unix_timestamp(),
                digest.as_slice(),
                delivery.network,
            ])?;
        }
    }
    transaction.commit()
}

/// Where operators' commands are recorded: opened before the command does
/// anything (so that a command that could not be recorded is not done),
/// written once it is done.
pub struct OperationLog {
    connection: Connection,
    path: PathBuf,
}

impl OperationLog {
    /// # Errors
    /// [`StoreError`] when the store cannot be opened for writing.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        create_folder(path)?;
        Ok(Self {
            connection: open_connection(path, OpenFlags::default())?,
            path: path.to_owned(),
        })
    }

    /// Records `operation`; on disk when this returns.
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub fn record(self, operation: &Operation) -> Result<(), StoreError> {
        self.connection.execute(
            "INSERT INTO operations (recorded_at, unix_user, command, count)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                operation.recorded_at.unix_timestamp(),
                operation.unix_user,
                operation.command,
                i64::try_from(operation.count).unwrap_or(i64::MAX),
            ],
        )?;
        drop(self.connection);
        give_to_folder_owner(&self.path);
        Ok(())
    }
}

/// When root records an operation in a store it had to create, the files
/// go to the owner of the store's folder (the service's user), so that the
/// daemon can still open them.
fn give_to_folder_owner(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Some(folder) = path.parent().and_then(|f| std::fs::metadata(f).ok()) else {
        return;
    };
    if folder.uid() == 0 {
        return;
    }
    let mut files = vec![path.to_owned()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        files.push(PathBuf::from(name));
    }
    for file in files {
        let owned_by_root = std::fs::metadata(&file).is_ok_and(|m| m.uid() == 0);
        if owned_by_root {
            let _ = std::os::unix::fs::chown(&file, Some(folder.uid()), Some(folder.gid()));
        }
    }
}

/// Read-only access for `relais audit`, safe while the daemon writes.
pub struct AuditReader {
    connection: Connection,
}

impl AuditReader {
    /// # Errors
    /// [`StoreError`] when the store does not exist or cannot be read.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            connection: open_connection(path, read_only())?,
        })
    }

    /// Who was emailed about `alert`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub fn alert(&self, alert: &AlertId) -> Result<Vec<SentEmail>, StoreError> {
        self.query("WHERE alert_id = ?1", params![alert.as_str()])
    }

    /// Every delivery since `since`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub fn since(&self, since: OffsetDateTime) -> Result<Vec<SentEmail>, StoreError> {
        self.query("WHERE delivered_at >= ?1", params![since.unix_timestamp()])
    }

    /// Who acknowledged `alert`, and when, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub fn acknowledgements(
        &self,
        alert: &AlertId,
    ) -> Result<Vec<(String, OffsetDateTime)>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT referent_id, acknowledged_at FROM acknowledgements
             WHERE alert_id = ?1 ORDER BY acknowledged_at, referent_id",
        )?;
        let rows = statement.query_map(params![alert.as_str()], |row| {
            let at: i64 = row.get(1)?;
            Ok((
                row.get(0)?,
                OffsetDateTime::from_unix_timestamp(at).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The steps of `alert`'s escalation chain, first step first.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub fn escalation(&self, alert: &AlertId) -> Result<Vec<EscalationStep>, StoreError> {
        Ok(escalation(&self.connection, alert.as_str())?)
    }

    /// The alerts emailed since `since` that a network they went to has
    /// not acknowledged, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub fn pending(&self, since: OffsetDateTime) -> Result<Vec<Pending>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT d.alert_id, d.network, MIN(d.delivered_at), group_concat(d.referent_id, ',')
             FROM deliveries d
             WHERE d.delivered_at >= ?1 AND d.network IS NOT NULL
               AND NOT EXISTS (
                   SELECT 1 FROM acknowledgements a
                   JOIN deliveries o ON o.alert_id = a.alert_id AND o.referent_id = a.referent_id
                   WHERE a.alert_id = d.alert_id AND o.network = d.network)
             GROUP BY d.alert_id, d.network
             ORDER BY MIN(d.delivered_at), d.alert_id, d.network",
        )?;
        let rows = statement.query_map(params![since.unix_timestamp()], |row| {
            let referents: String = row.get(3)?;
            let referents = referent_list(&referents);
            Ok(Pending {
                alert_id: row.get(0)?,
                network: row.get(1)?,
                referents,
                since: instant(row.get(2)?),
                next: None,
                unacknowledged_at: None,
            })
        })?;
        let mut pending: Vec<Pending> = rows.collect::<Result<_, _>>()?;
        for alert in &mut pending {
            alert.chain(&escalation(&self.connection, &alert.alert_id)?);
        }
        Ok(pending)
    }

    /// The operators' commands recorded since `since` (all of them when
    /// `None`), oldest first.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub fn operations(&self, since: Option<OffsetDateTime>) -> Result<Vec<Operation>, StoreError> {
        let since = since.map_or(i64::MIN, OffsetDateTime::unix_timestamp);
        let mut statement = self.connection.prepare(
            "SELECT recorded_at, unix_user, command, count FROM operations
             WHERE recorded_at >= ?1 ORDER BY recorded_at, rowid",
        )?;
        let rows = statement.query_map(params![since], |row| {
            Ok(Operation {
                recorded_at: OffsetDateTime::from_unix_timestamp(row.get(0)?)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                unix_user: row.get(1)?,
                command: row.get(2)?,
                count: usize::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn query(
        &self,
        filter: &str,
        values: impl rusqlite::Params,
    ) -> Result<Vec<SentEmail>, StoreError> {
        let sql = format!(
            "SELECT alert_id, referent_id, email, message_id, smtp_reply, delivered_at, network
             FROM deliveries {filter} ORDER BY delivered_at, alert_id, referent_id"
        );
        let mut statement = self.connection.prepare(&sql)?;
        let rows = statement.query_map(values, |row| {
            Ok(SentEmail {
                alert_id: row.get(0)?,
                referent_id: row.get(1)?,
                email: row.get(2)?,
                message_id: row.get(3)?,
                smtp_reply: row.get(4)?,
                delivered_at: OffsetDateTime::from_unix_timestamp(row.get(5)?)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                network: row.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: Digest = [7; 32];

    fn delivery(alert: &str, referent: &str, at: OffsetDateTime) -> SentEmail {
        SentEmail {
            alert_id: alert.into(),
            referent_id: referent.into(),
            network: Some("ccas".into()),
            email: format!("{referent}@example.org"),
            message_id: format!("<relais.{alert}.{referent}@example.org>"),
            smtp_reply: "2.0.0 Ok: queued as X".into(),
            delivered_at: at,
        }
    }

    #[tokio::test]
    async fn a_recorded_delivery_is_served_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/relais.db");
        let store = Store::open(&path).unwrap();
        let alert = AlertId::parse("A-1").unwrap();
        assert!(store.served(&alert).unwrap().is_empty());

        let now = OffsetDateTime::now_utc();
        store
            .record(delivery("A-1", "ccas-13", now), DIGEST)
            .await
            .unwrap();
        store
            .record(delivery("A-1", "ccas-13", now), DIGEST)
            .await
            .unwrap(); // a duplicate is a no-op
        store
            .record(delivery("A-1", "caf-75", now), DIGEST)
            .await
            .unwrap();
        drop(store);

        let reopened = Store::open(&path).unwrap();
        let mut served = reopened.served(&alert).unwrap();
        served.sort_by(|a, b| a.referent_id.cmp(&b.referent_id));
        let expected = |referent: &str| Served {
            referent_id: referent.into(),
            digest: Some(DIGEST),
        };
        assert_eq!(served, [expected("caf-75"), expected("ccas-13")]);
        let audit = AuditReader::open(&path).unwrap();
        let rows = audit.alert(&alert).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].message_id, "<relais.A-1.caf-75@example.org>");
        assert_eq!(rows[1].referent_id, "ccas-13");
    }

    #[tokio::test]
    async fn concurrent_writes_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("relais.db")).unwrap();
        let now = OffsetDateTime::now_utc();
        let writes = (0..500).map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .record(delivery(&format!("A-{n}"), "r", now), DIGEST)
                    .await
            })
        });
        for write in writes {
            write.await.unwrap().unwrap();
        }
        let since = AuditReader::open(&dir.path().join("relais.db"))
            .unwrap()
            .since(now - time::Duration::seconds(1))
            .unwrap();
        assert_eq!(since.len(), 500);
    }

    #[tokio::test]
    async fn pruning_forgets_only_what_is_older_than_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("relais.db")).unwrap();
        let now = OffsetDateTime::now_utc();
        store
            .record(delivery("OLD", "r", now - time::Duration::days(31)), DIGEST)
            .await
            .unwrap();
        store
            .record(delivery("NEW", "r", now - time::Duration::days(29)), DIGEST)
            .await
            .unwrap();

        let pruned = store.prune(now - time::Duration::days(30)).await.unwrap();

        assert_eq!(pruned, 1);
        assert!(
            store
                .served(&AlertId::parse("OLD").unwrap())
                .unwrap()
                .is_empty()
        );
        let served = store.served(&AlertId::parse("NEW").unwrap()).unwrap();
        assert_eq!(served.len(), 1);
        assert_eq!(served[0].referent_id, "r");
    }

    #[tokio::test]
    async fn a_store_of_an_earlier_relais_is_migrated_and_keeps_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relais.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(MIGRATIONS[0]).unwrap();
        old.execute(
            "INSERT INTO deliveries VALUES ('A-1', 'r', 'r@example.org', '<m>', '250 ok', 0)",
            [],
        )
        .unwrap();
        drop(old);

        let store = Store::open(&path).unwrap();
        let served = store.served(&AlertId::parse("A-1").unwrap()).unwrap();
        let version: i64 = Connection::open(&path)
            .unwrap()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();

        assert_eq!(
            served,
            [Served {
                referent_id: "r".into(),
                digest: None
            }]
        );
        assert_eq!(version, MIGRATIONS.len() as i64);
        let operation = Operation {
            recorded_at: OffsetDateTime::now_utc(),
            unix_user: "root (sudo: alice)".into(),
            command: "dead-letters list".into(),
            count: 2,
        };
        OperationLog::open(&path)
            .unwrap()
            .record(&operation)
            .unwrap();
        let recorded = AuditReader::open(&path).unwrap().operations(None).unwrap();
        assert_eq!(recorded[0].unix_user, operation.unix_user);
        assert_eq!(recorded[0].count, 2);
    }

    #[tokio::test]
    async fn an_acknowledgement_counts_for_its_network_and_the_chain_state_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relais.db");
        let store = Store::open(&path).unwrap();
        let alert = AlertId::parse("A-1").unwrap();
        let now = OffsetDateTime::now_utc();
        let mut caf = delivery("A-1", "caf-75", now - time::Duration::minutes(10));
        caf.network = Some("caf".into());
        store
            .record(
                delivery("A-1", "ccas-13", now - time::Duration::minutes(10)),
                DIGEST,
            )
            .await
            .unwrap();
        store.record(caf, DIGEST).await.unwrap();
        store
            .escalation_scheduled(&alert, 1, now + time::Duration::hours(2))
            .await
            .unwrap();

        let acknowledged = store.acknowledge("A-1", "ccas-13", now).await.unwrap();
        let again = store.acknowledge("A-1", "ccas-13", now).await.unwrap();

        assert_eq!(
            acknowledged,
            Acknowledged {
                first: true,
                network: Some("ccas".into()),
                waited: Some(Duration::from_secs(600)),
            }
        );
        assert!(!again.first);
        assert_eq!(store.acknowledged_networks(&alert).unwrap(), ["ccas"]);
        let pending = AuditReader::open(&path)
            .unwrap()
            .pending(now - time::Duration::days(1))
            .unwrap();
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert_eq!(pending[0].network, "caf");
        assert_eq!(pending[0].referents, ["caf-75"]);
        assert_eq!(pending[0].next.map(|n| n.step), Some(1));
        assert_eq!(pending[0].unacknowledged_at, None);

        assert!(store.escalation_done(&alert, 1, now).await.unwrap());
        assert!(
            !store.escalation_done(&alert, 1, now).await.unwrap(),
            "once"
        );
        let steps = store.escalation(&alert).unwrap();
        assert_eq!(steps.len(), 1);
        assert_eq!(
            steps[0].done_at.map(|at| at.unix_timestamp()),
            Some(now.unix_timestamp())
        );
    }

    #[test]
    fn a_store_of_a_newer_relais_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relais.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();

        let Err(error) = Store::open(&path) else {
            panic!("a newer store was opened");
        };

        assert!(
            error
                .to_string()
                .ends_with("has schema version 99, and this relais knows up to 5: it was written by a newer relais; run that version, or restore the store's backup"),
            "{error}"
        );
    }
}

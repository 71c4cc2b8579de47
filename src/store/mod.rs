//! The store: which référent was emailed about which alert, and when; who
//! acknowledged it; the steps of its escalation; what operators did.
//!
//! It is both the dedup record (a référent receives a given alert at most
//! once, across redeliveries, restarts and duplicate publishes) and the audit
//! trail operators query with `relais audit`. It holds ids, the référent's
//! address, the Message-ID and the server's reply: never the alert's content.
//!
//! Two engines behind one interface: SQLite (`store.path`, the default, a
//! file on this machine) and PostgreSQL (`store.url`, a database several
//! relais can share). Both have the same schema, brought up to date by
//! relais at start-up, one versioned step at a time.

pub mod postgres;
mod sqlite;

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;
use time::OffsetDateTime;

use crate::alert::AlertId;
use crate::settings::StoreSettings;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot open the store {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create the store's folder {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the store {path} has schema version {version}, and this relais knows up to {known}: \
         it was written by a newer relais; run that version, or restore the store's backup"
    )]
    Newer {
        path: PathBuf,
        version: usize,
        known: usize,
    },
    #[error("cannot start the store's thread: {0}")]
    Thread(std::io::Error),
    #[error("the store failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the store could not write: {0}")]
    Write(String),
    #[error("the store is closed")]
    Closed,
    #[error("the PostgreSQL store {url}: {message}")]
    Postgres { url: String, message: String },
}

/// The SHA-256 of an alert's content in its canonical form: what tells two
/// alerts with one id apart.
pub type Digest = [u8; 32];

/// A référent already emailed about an alert, and the content it received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub referent_id: String,
    /// `None` for a record older than digests.
    pub digest: Option<Digest>,
}

/// One email accepted by a mail server: a line of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentEmail {
    pub alert_id: String,
    pub referent_id: String,
    /// The référent's network (`None` for a record older than networks).
    pub network: Option<String>,
    pub email: String,
    pub message_id: String,
    pub smtp_reply: String,
    pub delivered_at: OffsetDateTime,
}

/// What an acknowledgement changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    /// The first time this référent acknowledged this alert (a second
    /// click changes nothing).
    pub first: bool,
    /// The référent's network, as recorded with its email.
    pub network: Option<String>,
    /// From the alert's first email to its network to this acknowledgement.
    pub waited: Option<Duration>,
}

/// The last step of an escalation chain: nobody acknowledged.
pub const UNACKNOWLEDGED_STEP: u8 = 3;

/// One step of an alert's escalation chain: 1, the deputies; 2, the
/// fallback référents; 3, declared unacknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscalationStep {
    pub step: u8,
    /// When its wait ends.
    pub due_at: OffsetDateTime,
    /// When relais carried it out, if it did.
    pub done_at: Option<OffsetDateTime>,
}

/// An alert that a network has not acknowledged yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub alert_id: String,
    pub network: String,
    /// Its référents that were emailed, by id.
    pub referents: Vec<String>,
    /// Its first email to the network.
    pub since: OffsetDateTime,
    /// The next step of escalation not yet carried out, if the chain runs.
    pub next: Option<EscalationStep>,
    /// When the chain ended with nobody acknowledging, if it did.
    pub unacknowledged_at: Option<OffsetDateTime>,
}

/// One operator command that read or changed the dead letters or the
/// audit trail: who, what, how many, when. Never the messages' content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub recorded_at: OffsetDateTime,
    /// The Unix user, with the one who ran `sudo`, e.g. `root (sudo: alice)`.
    pub unix_user: String,
    /// The command, e.g. `dead-letters replay --reason rejected`.
    pub command: String,
    /// How many messages or deliveries it read or changed.
    pub count: usize,
}

/// A handle on the store; cheap to clone.
#[derive(Clone)]
pub enum Store {
    Sqlite(sqlite::Store),
    Postgres(postgres::Store),
}

impl Store {
    /// Opens the store the settings name (creating its file or its tables
    /// if needed, bringing its schema up to date).
    ///
    /// # Errors
    /// [`StoreError`] when it cannot be reached, opened or migrated.
    pub async fn open(settings: &StoreSettings) -> Result<Self, StoreError> {
        match &settings.url {
            Some(_) => Ok(Self::Postgres(postgres::Store::open(settings).await?)),
            None => Self::sqlite(&settings.path),
        }
    }

    /// The SQLite store in file `path`.
    ///
    /// # Errors
    /// [`StoreError`] when it cannot be opened.
    pub fn sqlite(path: &std::path::Path) -> Result<Self, StoreError> {
        Ok(Self::Sqlite(sqlite::Store::open(path)?))
    }

    /// This store, telling `health` whether it can be reached (a
    /// PostgreSQL store; a SQLite file is on this machine).
    #[must_use]
    pub fn watched_by(self, health: std::sync::Arc<crate::health::Health>) -> Self {
        match self {
            Self::Postgres(store) => Self::Postgres(store.watched_by(health)),
            sqlite => sqlite,
        }
    }

    /// The référents already emailed about `alert`, with the digest of
    /// what they received.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    pub async fn served(&self, alert: &AlertId) -> Result<Vec<Served>, StoreError> {
        match self {
            Self::Sqlite(store) => store.served(alert),
            Self::Postgres(store) => store.served(alert).await,
        }
    }

    /// Records an email the server accepted, about an alert of content
    /// `digest`; stored for good when this returns.
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn record(&self, delivery: SentEmail, digest: Digest) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(store) => store.record(delivery, digest).await,
            Self::Postgres(store) => store.record(delivery, digest).await,
        }
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
        match self {
            Self::Sqlite(store) => store.acknowledge(alert_id, referent_id, at).await,
            Self::Postgres(store) => store.acknowledge(alert_id, referent_id, at).await,
        }
    }

    /// Records that step `step` of `alert`'s escalation is due at `due_at`.
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn escalation_scheduled(
        &self,
        alert: &AlertId,
        step: u8,
        due_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(store) => store.escalation_scheduled(alert, step, due_at).await,
            Self::Postgres(store) => store.escalation_scheduled(alert, step, due_at).await,
        }
    }

    /// Records that step `step` of `alert`'s escalation was carried out at
    /// `at`; `false` if it already had been.
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn escalation_done(
        &self,
        alert: &AlertId,
        step: u8,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(store) => store.escalation_done(alert, step, at).await,
            Self::Postgres(store) => store.escalation_done(alert, step, at).await,
        }
    }

    /// The steps of `alert`'s escalation chain, first step first.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    pub async fn escalation(&self, alert: &AlertId) -> Result<Vec<EscalationStep>, StoreError> {
        match self {
            Self::Sqlite(store) => store.escalation(alert),
            Self::Postgres(store) => store.escalation(alert.as_str()).await,
        }
    }

    /// The networks in which someone acknowledged `alert`.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    pub async fn acknowledged_networks(&self, alert: &AlertId) -> Result<Vec<String>, StoreError> {
        match self {
            Self::Sqlite(store) => store.acknowledged_networks(alert),
            Self::Postgres(store) => store.acknowledged_networks(alert).await,
        }
    }

    /// How many alerts emailed since `since` a network has not
    /// acknowledged (for `/metrics`).
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    pub async fn pending_count(&self, since: OffsetDateTime) -> Result<usize, StoreError> {
        let pending = match self {
            // A long read: on a connection and a thread of its own, so
            // that it never holds up the dedup check.
            Self::Sqlite(store) => {
                let path = store.path().to_owned();
                tokio::task::spawn_blocking(move || {
                    sqlite::AuditReader::open(&path)?.pending(since)
                })
                .await
                .map_err(|_| StoreError::Closed)??
            }
            Self::Postgres(store) => store.pending(since).await?,
        };
        let mut alerts: Vec<String> = pending.into_iter().map(|p| p.alert_id).collect();
        alerts.sort_unstable();
        alerts.dedup();
        Ok(alerts.len())
    }

    /// Forgets deliveries, acknowledgements and escalations older than
    /// `before`; returns how many deliveries.
    ///
    /// # Errors
    /// [`StoreError`] if the delete failed.
    pub async fn prune(&self, before: OffsetDateTime) -> Result<usize, StoreError> {
        match self {
            Self::Sqlite(store) => store.prune(before).await,
            Self::Postgres(store) => store.prune(before).await,
        }
    }
}

/// Read access for `relais audit` and `relais pending`, safe while the
/// daemon writes.
pub enum AuditReader {
    Sqlite(sqlite::AuditReader),
    Postgres(postgres::Store),
}

impl AuditReader {
    /// # Errors
    /// [`StoreError`] when the store does not exist or cannot be read.
    pub async fn open(settings: &StoreSettings) -> Result<Self, StoreError> {
        match &settings.url {
            Some(_) => Ok(Self::Postgres(postgres::Store::open(settings).await?)),
            None => Ok(Self::Sqlite(sqlite::AuditReader::open(&settings.path)?)),
        }
    }

    /// Who was emailed about `alert`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn alert(&self, alert: &AlertId) -> Result<Vec<SentEmail>, StoreError> {
        match self {
            Self::Sqlite(reader) => reader.alert(alert),
            Self::Postgres(store) => store.deliveries(Some(alert.as_str()), None).await,
        }
    }

    /// Every delivery since `since`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn since(&self, since: OffsetDateTime) -> Result<Vec<SentEmail>, StoreError> {
        match self {
            Self::Sqlite(reader) => reader.since(since),
            Self::Postgres(store) => store.deliveries(None, Some(since)).await,
        }
    }

    /// Who acknowledged `alert`, and when, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn acknowledgements(
        &self,
        alert: &AlertId,
    ) -> Result<Vec<(String, OffsetDateTime)>, StoreError> {
        match self {
            Self::Sqlite(reader) => reader.acknowledgements(alert),
            Self::Postgres(store) => store.acknowledgements(alert.as_str()).await,
        }
    }

    /// The steps of `alert`'s escalation chain, first step first.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn escalation(&self, alert: &AlertId) -> Result<Vec<EscalationStep>, StoreError> {
        match self {
            Self::Sqlite(reader) => reader.escalation(alert),
            Self::Postgres(store) => store.escalation(alert.as_str()).await,
        }
    }

    /// The alerts emailed since `since` that a network they went to has
    /// not acknowledged, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn pending(&self, since: OffsetDateTime) -> Result<Vec<Pending>, StoreError> {
        match self {
            Self::Sqlite(reader) => reader.pending(since),
            Self::Postgres(store) => store.pending(since).await,
        }
    }

    /// The operators' commands recorded since `since` (all of them when
    /// `None`), oldest first.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn operations(
        &self,
        since: Option<OffsetDateTime>,
    ) -> Result<Vec<Operation>, StoreError> {
        match self {
            Self::Sqlite(reader) => reader.operations(since),
            Self::Postgres(store) => store.operations(since).await,
        }
    }
}

/// Where operators' commands are recorded: opened before the command does
/// anything (so that a command that could not be recorded is not done),
/// written once it is done.
pub enum OperationLog {
    Sqlite(sqlite::OperationLog),
    Postgres(postgres::Store),
}

impl OperationLog {
    /// # Errors
    /// [`StoreError`] when the store cannot be opened for writing.
    pub async fn open(settings: &StoreSettings) -> Result<Self, StoreError> {
        match &settings.url {
            Some(_) => Ok(Self::Postgres(postgres::Store::open(settings).await?)),
            None => Ok(Self::Sqlite(sqlite::OperationLog::open(&settings.path)?)),
        }
    }

    /// Records `operation`; stored for good when this returns.
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn record(self, operation: &Operation) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(log) => log.record(operation),
            Self::Postgres(store) => store.record_operation(operation).await,
        }
    }
}

impl Pending {
    /// Where its escalation chain stands, from the chain's `steps`: the
    /// next step not carried out, and when the last one declared it
    /// unacknowledged.
    fn chain(&mut self, steps: &[EscalationStep]) {
        self.next = steps.iter().find(|s| s.done_at.is_none()).copied();
        self.unacknowledged_at = steps
            .iter()
            .find(|s| s.step == UNACKNOWLEDGED_STEP)
            .and_then(|s| s.done_at);
    }
}

/// Creates the folder of the SQLite file `path`, if it has one.
fn create_folder(path: &std::path::Path) -> Result<(), StoreError> {
    match path.parent().filter(|f| !f.as_os_str().is_empty()) {
        Some(folder) => std::fs::create_dir_all(folder).map_err(|source| StoreError::Folder {
            path: folder.to_owned(),
            source,
        }),
        None => Ok(()),
    }
}

/// Seconds since the Unix epoch, as both engines store times.
fn instant(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Sorts and splits the `referents` of a pending row.
fn referent_list(joined: &str) -> Vec<String> {
    let mut referents: Vec<String> = joined.split(',').map(str::to_owned).collect();
    referents.sort_unstable();
    referents
}

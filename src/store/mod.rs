//! The store: which référent was emailed about which alert, and when; who
//! acknowledged it, and what they did about it; the steps of its
//! escalation; what operators did; the absences référents declared
//! themselves; and, kept longer, the yearly report's facts, which name
//! nobody ([`report`]).
//!
//! It is both the dedup record (a référent receives a given alert at most
//! once, across redeliveries, restarts and duplicate publishes) and the audit
//! trail operators query with `relais audit`. It holds ids, the référent's
//! address, the Message-ID, the server's reply and what the alert said of
//! the person's consent, in short: never the alert's content.
//!
//! Two engines behind one interface: SQLite (`store.path`, the default, a
//! file on this machine, `sqlite.rs`) and PostgreSQL (`store.url`, a
//! database several relais can share, `postgres.rs`). The engines only run
//! statements and return rows ([`value`]); every operation is written once,
//! here, in the SQL both understand, and what is derived from the rows (how
//! long an acknowledgement waited, the pending alerts) is computed here
//! once. Both engines have the same schema ([`schema`]: each step written
//! for both under one version number), brought up to date by relais at
//! start-up. Writes of deliveries that arrive together share one
//! transaction (group commit), so that durability does not cost one disk
//! flush per email under load.

mod bounces;
mod error;
mod group_commit;
mod handback;
pub mod postgres;
mod probes;
mod records;
mod registries;
mod report;
mod schema;
mod sqlite;
mod value;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use time::{Date, OffsetDateTime};
use tokio::sync::{mpsc, oneshot};

use crate::alert::AlertId;
use crate::follow_up::FollowUp;
use crate::health::Health;
use crate::settings::StoreSettings;
use group_commit::Write;
use value::{Row, Value};

pub use bounces::{BounceAction, BounceRecord, ReturnedEmail};
pub use error::{PostgresCause, StoreError};
pub use handback::HandBack;
pub use records::{
    AbsenceDeclaration, Acknowledged, AlertKey, DeclaredAbsence, Digest, EscalationStep,
    FollowUpRecord, FollowedUp, Handling, KeptRegistry, Operation, Pending, Probe, RegistryVersion,
    SentEmail, Served, UNACKNOWLEDGED_STEP, consent_record,
};
pub use report::{AlertFacts, Fact, ReportFact};

/// One statement of a write, with its parameters.
type Statement = (&'static str, Vec<Value>);

/// The engine that holds the store.
#[derive(Clone)]
enum Engine {
    Sqlite(sqlite::Engine),
    Postgres(postgres::Engine),
}

impl Engine {
    /// A point read: one key's rows (SQLite: on the caller's thread).
    async fn read(
        &self,
        sql: &'static str,
        parameters: Vec<Value>,
    ) -> Result<Vec<Row>, StoreError> {
        match self {
            Self::Sqlite(engine) => engine.read(sql, &parameters),
            Self::Postgres(engine) => engine.read(sql, &parameters).await,
        }
    }

    /// A long read, that must hold up no point read.
    async fn scan(
        &self,
        sql: &'static str,
        parameters: Vec<Value>,
    ) -> Result<Vec<Row>, StoreError> {
        match self {
            Self::Sqlite(engine) => engine.scan(sql, parameters).await,
            Self::Postgres(engine) => engine.read(sql, &parameters).await,
        }
    }

    /// `statements` in one transaction; how many rows each changed.
    async fn write(&self, statements: Vec<Statement>) -> Result<Vec<u64>, StoreError> {
        match self {
            Self::Sqlite(engine) => engine.write(statements).await,
            Self::Postgres(engine) => engine.write(statements).await,
        }
    }

    /// One statement, alone; how many rows it changed.
    async fn execute(&self, sql: &'static str, parameters: Vec<Value>) -> Result<u64, StoreError> {
        let changed = self.write(vec![(sql, parameters)]).await?;
        Ok(changed.first().copied().unwrap_or(0))
    }
}

/// A handle on the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    engine: Engine,
    /// To the group commit, when this handle records deliveries.
    writes: Option<mpsc::Sender<Write>>,
    /// The key of the report's pseudonyms (the store's `report` key), read
    /// at the first fact written (see `report`).
    report_key: Arc<OnceLock<ring::hmac::Key>>,
    /// To the task that writes the report's facts, when this handle
    /// records deliveries (see `report::write_facts`).
    facts: Option<mpsc::Sender<Fact>>,
}

impl Store {
    /// Opens the store the settings name (creating its file or its tables
    /// if needed, bringing its schema up to date), for the daemon.
    ///
    /// # Errors
    /// [`StoreError`] when it cannot be reached, opened or migrated.
    pub async fn open(settings: &StoreSettings) -> Result<Self, StoreError> {
        let engine = match &settings.url {
            Some(_) => Engine::Postgres(postgres::Engine::open(settings).await?),
            None => Engine::Sqlite(sqlite::Engine::open(&settings.path)?),
        };
        Ok(Self::writing(engine))
    }

    /// The SQLite store in file `path`, for the daemon.
    ///
    /// # Errors
    /// [`StoreError`] when it cannot be opened.
    pub fn sqlite(path: &std::path::Path) -> Result<Self, StoreError> {
        Ok(Self::writing(Engine::Sqlite(sqlite::Engine::open(path)?)))
    }

    /// A store for reading the audit trail (`relais audit`, `relais
    /// pending`), safe while the daemon writes; a SQLite store must exist.
    ///
    /// # Errors
    /// [`StoreError`] when the store does not exist or cannot be read.
    pub async fn open_reader(settings: &StoreSettings) -> Result<Self, StoreError> {
        let engine = match &settings.url {
            Some(_) => Engine::Postgres(postgres::Engine::open(settings).await?),
            None => Engine::Sqlite(sqlite::Engine::open_reader(&settings.path)?),
        };
        Ok(Self {
            engine,
            writes: None,
            report_key: Arc::default(),
            facts: None,
        })
    }

    /// Where an operator's command is recorded: opened before the command
    /// does anything (so that a command that could not be recorded is not
    /// done), written once it is done.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be opened for writing.
    pub async fn open_log(settings: &StoreSettings) -> Result<OperationLog, StoreError> {
        let (engine, file) = match &settings.url {
            Some(_) => (
                Engine::Postgres(postgres::Engine::open(settings).await?),
                None,
            ),
            None => (
                Engine::Sqlite(sqlite::Engine::open_direct(&settings.path)?),
                Some(settings.path.clone()),
            ),
        };
        Ok(OperationLog {
            store: Self {
                engine,
                writes: None,
                report_key: Arc::default(),
                facts: None,
            },
            file,
        })
    }

    /// A store on `engine` whose deliveries go through the group commit.
    fn writing(engine: Engine) -> Self {
        let (writes, receiver) = mpsc::channel(group_commit::QUEUE);
        tokio::spawn(group_commit::run(engine.clone(), receiver));
        let (facts, noted) = mpsc::channel(report::FACTS_QUEUE);
        let store = Self {
            engine,
            writes: Some(writes),
            report_key: Arc::default(),
            facts: None,
        };
        tokio::spawn(report::write_facts(store.clone(), noted));
        Self {
            facts: Some(facts),
            ..store
        }
    }

    /// This store, telling `health` whether it can be reached (a
    /// PostgreSQL store; a SQLite file is on this machine).
    #[must_use]
    pub fn watched_by(mut self, health: Arc<Health>) -> Self {
        if let Engine::Postgres(engine) = self.engine {
            self.engine = Engine::Postgres(engine.watched_by(health));
        }
        self
    }

    /// The référents already emailed about `alert`, with the digest of
    /// what they received. A point query on the primary key.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    pub async fn served(&self, alert: AlertKey<'_>) -> Result<Vec<Served>, StoreError> {
        let rows = self
            .engine
            .read(
                "SELECT referent_id, digest FROM deliveries
                 WHERE alert_id = $1 AND publisher IN ($2, '')",
                vec![alert.id.into(), alert.publisher.into()],
            )
            .await?;
        rows.into_iter()
            .map(|mut row| {
                Ok(Served {
                    referent_id: row.text(0)?,
                    digest: row
                        .blob_or_null(1)?
                        .and_then(|bytes| Digest::try_from(bytes).ok()),
                })
            })
            .collect()
    }

    /// The secret named `name`, shared by every relais on this store: made
    /// at random by the first relais that asks for it, then kept for good
    /// (the content digest's key, so that the digests kept with each
    /// delivery cannot be checked against a guess without it).
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read or written.
    pub async fn key(&self, name: &'static str) -> Result<[u8; 32], StoreError> {
        use ring::rand::SecureRandom as _;
        let mut fresh = [0_u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut fresh)
            .map_err(|_| StoreError::Shape("no randomness to make a key".into()))?;
        self.engine
            .execute(
                "INSERT INTO keys (name, secret, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO NOTHING",
                vec![
                    name.into(),
                    fresh.as_slice().into(),
                    OffsetDateTime::now_utc().into(),
                ],
            )
            .await?;
        let mut rows = self
            .engine
            .read("SELECT secret FROM keys WHERE name = $1", vec![name.into()])
            .await?;
        let secret = match rows.first_mut() {
            Some(row) => row.blob_or_null(0)?,
            None => None,
        };
        secret
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| StoreError::Shape(format!("the key {name} is not 32 bytes")))
    }

    /// Records an email the server accepted, about an alert of content
    /// `digest`; stored for good when this returns.
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn record(&self, delivery: SentEmail, digest: Digest) -> Result<(), StoreError> {
        // The delivery's fields move into the statement.
        let SentEmail {
            publisher,
            alert_id,
            referent_id,
            network,
            email,
            message_id,
            smtp_reply,
            delivered_at,
            consent,
            registry,
            return_path,
        } = delivery;
        self.commit((
            "INSERT INTO deliveries
                 (publisher, alert_id, referent_id, email, message_id, smtp_reply,
                  delivered_at, digest, network, consent, registry, return_path)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (alert_id, publisher, referent_id) DO NOTHING",
            vec![
                publisher.into(),
                alert_id.into(),
                referent_id.into(),
                email.into(),
                message_id.into(),
                smtp_reply.into(),
                delivered_at.into(),
                digest.as_slice().into(),
                network.into(),
                consent.into(),
                registry.into(),
                return_path.map(bounces::stored).into(),
            ],
        ))
        .await
    }

    /// Runs `statement` in the group commit's next transaction; stored for
    /// good when this returns.
    async fn commit(&self, statement: Statement) -> Result<(), StoreError> {
        let writes = self.writes.as_ref().ok_or(StoreError::ReadOnly)?;
        let (reply, answer) = oneshot::channel();
        writes
            .send(Write { statement, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Records that `referent_id`, of `network` as the registry says now,
    /// acknowledged `alert` at `at` (the first time stays).
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn acknowledge(
        &self,
        alert: AlertKey<'_>,
        referent_id: &str,
        network: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<Acknowledged, StoreError> {
        let first = self
            .engine
            .execute(
                ACKNOWLEDGE,
                acknowledgement(alert, referent_id, network, at),
            )
            .await?
            == 1;
        self.acknowledged(alert, referent_id, network, at, first)
            .await
    }

    /// Records that `referent_id` did `follow_up` about `alert` at `at`,
    /// which also acknowledges it if they had not: each choice is kept
    /// with its time, and the last one stands. A choice that is already
    /// their last one records nothing new.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read or written.
    pub async fn follow_up(
        &self,
        alert: AlertKey<'_>,
        referent_id: &str,
        network: Option<&str>,
        follow_up: FollowUp,
        at: OffsetDateTime,
    ) -> Result<FollowedUp, StoreError> {
        let rows = self
            .engine
            .read(
                "SELECT outcome FROM follow_ups
                 WHERE alert_id = $1 AND publisher = $2 AND referent_id = $3
                 ORDER BY recorded_at DESC, id DESC LIMIT 1",
                vec![alert.id.into(), alert.publisher.into(), referent_id.into()],
            )
            .await?;
        let mut last = None;
        for mut row in rows {
            last = Some(follow_up_code(&row.text(0)?)?);
        }
        let recorded = last != Some(follow_up);
        let mut statements = vec![(
            ACKNOWLEDGE,
            acknowledgement(alert, referent_id, network, at),
        )];
        if recorded {
            statements.push((
                "INSERT INTO follow_ups (publisher, alert_id, referent_id, outcome, recorded_at)
                 VALUES ($1, $2, $3, $4, $5)",
                vec![
                    alert.publisher.into(),
                    alert.id.into(),
                    referent_id.into(),
                    follow_up.code().into(),
                    at.into(),
                ],
            ));
        }
        let changed = self.engine.write(statements).await?;
        let first = changed.first() == Some(&1);
        Ok(FollowedUp {
            acknowledged: self
                .acknowledged(alert, referent_id, network, at, first)
                .await?,
            recorded,
        })
    }

    /// What an acknowledgement of `alert` by `referent_id` at `at`
    /// changed: its network, as recorded with its email (else `network`,
    /// the registry's), and how long the network waited for it.
    async fn acknowledged(
        &self,
        alert: AlertKey<'_>,
        referent_id: &str,
        network: Option<&str>,
        at: OffsetDateTime,
        first: bool,
    ) -> Result<Acknowledged, StoreError> {
        let rows = self
            .engine
            .read(
                "SELECT referent_id, network, delivered_at FROM deliveries
                 WHERE alert_id = $1 AND publisher IN ($2, '')",
                vec![alert.id.into(), alert.publisher.into()],
            )
            .await?;
        let mut emails = Vec::with_capacity(rows.len());
        for mut row in rows {
            emails.push((row.text(0)?, row.text_or_null(1)?, row.int(2)?));
        }
        let network = emails
            .iter()
            .find(|(referent, _, _)| referent == referent_id)
            .and_then(|(_, network, _)| network.clone())
            .or_else(|| network.map(str::to_owned));
        let since = emails
            .iter()
            .filter(|(_, other, _)| *other == network)
            .map(|(_, _, at)| *at)
            .min();
        let waited = since.map(|since| {
            Duration::from_secs(u64::try_from(at.unix_timestamp() - since).unwrap_or(0))
        });
        Ok(Acknowledged {
            first,
            network,
            waited,
        })
    }

    /// Where `alert` stands for `referent_id`: when they acknowledged it,
    /// who of their network (the référents emailed about it with the same
    /// network) acknowledged it first if it was another, the last
    /// follow-up recorded in the network, and the others of the network.
    /// A référent whose email recorded no network sees only their own.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    pub async fn handling(
        &self,
        alert: AlertKey<'_>,
        referent_id: &str,
    ) -> Result<Handling, StoreError> {
        let key = || vec![alert.id.into(), alert.publisher.into()];
        let mut emails = Vec::new();
        for mut row in self
            .engine
            .read(
                "SELECT referent_id, network FROM deliveries
                 WHERE alert_id = $1 AND publisher IN ($2, '')",
                key(),
            )
            .await?
        {
            emails.push((row.text(0)?, row.text_or_null(1)?));
        }
        let network = emails
            .iter()
            .find(|(referent, _)| referent == referent_id)
            .and_then(|(_, network)| network.clone());
        let of_network = |other: &str| {
            other == referent_id
                || network.is_some()
                    && emails
                        .iter()
                        .any(|(referent, theirs)| referent == other && *theirs == network)
        };
        let mut acknowledgements = Vec::new();
        for mut row in self
            .engine
            .read(
                "SELECT referent_id, acknowledged_at FROM acknowledgements
                 WHERE alert_id = $1 AND publisher IN ($2, '')",
                key(),
            )
            .await?
        {
            let (referent, at) = (row.text(0)?, row.time(1)?);
            if of_network(&referent) {
                acknowledgements.push((at, referent));
            }
        }
        acknowledgements.sort();
        let mut follow_up = None;
        for row in self
            .engine
            .read(
                "SELECT publisher, alert_id, referent_id, outcome, recorded_at FROM follow_ups
                 WHERE alert_id = $1 AND publisher = $2 ORDER BY recorded_at, id",
                key(),
            )
            .await?
        {
            let record = follow_up_record(row)?;
            if of_network(&record.referent_id) {
                follow_up = Some(record);
            }
        }
        let mut colleagues: Vec<String> = emails
            .iter()
            .filter(|(referent, _)| referent != referent_id && of_network(referent))
            .map(|(referent, _)| referent.clone())
            .collect();
        colleagues.sort_unstable();
        colleagues.dedup();
        Ok(Handling {
            acknowledged_at: acknowledgements
                .iter()
                .find(|(_, referent)| referent == referent_id)
                .map(|(at, _)| *at),
            first_colleague: acknowledgements
                .into_iter()
                .next()
                .filter(|(_, referent)| referent != referent_id)
                .map(|(at, referent)| (referent, at)),
            follow_up,
            colleagues,
        })
    }

    /// Records that step `step` of `alert`'s escalation will be due at
    /// `due_at` (once its message waits in the broker).
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn escalation_scheduled(
        &self,
        alert: AlertKey<'_>,
        step: u8,
        due_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.engine
            .execute(
                "INSERT INTO escalations (publisher, alert_id, step, due_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                vec![alert.publisher.into(), alert.id.into(), step.into(), due_at.into()],
            )
            .await
            .map(drop)
    }

    /// Records that step `step` of `alert`'s escalation was carried out at
    /// `at`; `false` if it already had been (the first time stays).
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn escalation_done(
        &self,
        alert: AlertKey<'_>,
        step: u8,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // Carried out before relais kept publishers (a row of no publisher).
        let steps = self.escalation(alert).await?;
        if steps.iter().any(|s| s.step == step && s.done_at.is_some()) {
            return Ok(false);
        }
        let changed = self
            .engine
            .execute(
                "INSERT INTO escalations (publisher, alert_id, step, due_at, done_at)
                 VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (alert_id, publisher, step) DO UPDATE SET done_at = excluded.done_at
                 WHERE escalations.done_at IS NULL",
                vec![
                    alert.publisher.into(),
                    alert.id.into(),
                    step.into(),
                    at.into(),
                ],
            )
            .await?;
        Ok(changed == 1)
    }

    /// The steps of `alert`'s escalation chain scheduled or carried out,
    /// first step first.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    pub async fn escalation(&self, alert: AlertKey<'_>) -> Result<Vec<EscalationStep>, StoreError> {
        let rows = self
            .engine
            .read(
                "SELECT step, due_at, done_at FROM escalations
                 WHERE alert_id = $1 AND publisher IN ($2, '') ORDER BY step",
                vec![alert.id.into(), alert.publisher.into()],
            )
            .await?;
        let mut steps: Vec<EscalationStep> = Vec::with_capacity(rows.len());
        for row in rows {
            let step = escalation_step(row)?;
            // A step recorded both before relais kept publishers and since:
            // carried out if either says so.
            match steps.last_mut() {
                Some(last) if last.step == step.step => {
                    if last.done_at.is_none() {
                        *last = step;
                    }
                }
                _ => steps.push(step),
            }
        }
        Ok(steps)
    }

    /// Every publisher's escalation steps of alert id `alert`, by publisher
    /// then step (for `relais audit`).
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    pub async fn escalations(
        &self,
        alert: &AlertId,
    ) -> Result<Vec<(String, EscalationStep)>, StoreError> {
        let rows = self
            .engine
            .scan(
                "SELECT publisher, step, due_at, done_at FROM escalations
                 WHERE alert_id = $1 ORDER BY publisher, step",
                vec![alert.as_str().into()],
            )
            .await?;
        rows.into_iter()
            .map(|mut row| {
                let publisher = row.text(0)?;
                let Row(mut rest) = row;
                rest.remove(0);
                Ok((publisher, escalation_step(Row(rest))?))
            })
            .collect()
    }

    /// The networks in which someone acknowledged `alert`.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    pub async fn acknowledged_networks(
        &self,
        alert: AlertKey<'_>,
    ) -> Result<Vec<String>, StoreError> {
        let rows = self
            .engine
            .read(
                "SELECT DISTINCT COALESCE(d.network, a.network) FROM acknowledgements a
                 LEFT JOIN deliveries d ON d.alert_id = a.alert_id AND d.referent_id = a.referent_id
                                       AND d.publisher = a.publisher
                 WHERE a.alert_id = $1 AND a.publisher IN ($2, '')
                   AND COALESCE(d.network, a.network) IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM handbacks h
                                   WHERE h.alert_id = a.alert_id AND h.publisher = a.publisher
                                     AND h.referent_id = a.referent_id)",
                vec![alert.id.into(), alert.publisher.into()],
            )
            .await?;
        rows.into_iter().map(|mut row| row.text(0)).collect()
    }

    /// How many alerts emailed since `since` a network has not
    /// acknowledged (for `/metrics`).
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    pub async fn pending_count(&self, since: OffsetDateTime) -> Result<usize, StoreError> {
        let mut alerts: Vec<String> = self
            .unacknowledged(since)
            .await?
            .into_iter()
            .map(|p| p.alert_id)
            .collect();
        alerts.sort_unstable();
        alerts.dedup();
        Ok(alerts.len())
    }

    /// Forgets deliveries, acknowledgements, follow-ups and escalations
    /// older than `before`, and the declared absences that ended (in Paris)
    /// or were cancelled before it; returns how many deliveries.
    ///
    /// # Errors
    /// [`StoreError`] if the delete failed.
    pub async fn prune(&self, before: OffsetDateTime) -> Result<usize, StoreError> {
        let ended = crate::availability::paris_date(before);
        let mut statements = vec![
            (
                "DELETE FROM deliveries WHERE delivered_at < $1",
                vec![before.into()],
            ),
            (
                "DELETE FROM acknowledgements WHERE acknowledged_at < $1",
                vec![before.into()],
            ),
            (
                "DELETE FROM follow_ups WHERE recorded_at < $1",
                vec![before.into()],
            ),
            (
                "DELETE FROM escalations WHERE due_at < $1",
                vec![before.into()],
            ),
            (
                "DELETE FROM declared_absences WHERE to_date < $1 OR cancelled_at < $2",
                vec![ended.into(), before.into()],
            ),
        ];
        statements.extend(Self::prune_hand_backs(before));
        statements.push(Self::prune_bounces(before));
        let deleted = self.engine.write(statements).await?;
        Ok(deleted
            .first()
            .map_or(0, |n| usize::try_from(*n).unwrap_or(usize::MAX)))
    }

    /// Forgets the operators' commands recorded before `before` (the
    /// operator trace has a retention of its own, `store.operations_retention`);
    /// returns how many.
    ///
    /// # Errors
    /// [`StoreError`] if the delete failed.
    pub async fn prune_operations(&self, before: OffsetDateTime) -> Result<usize, StoreError> {
        let deleted = self
            .engine
            .write(vec![(
                "DELETE FROM operations WHERE recorded_at < $1",
                vec![before.into()],
            )])
            .await?;
        Ok(deleted
            .first()
            .map_or(0, |n| usize::try_from(*n).unwrap_or(usize::MAX)))
    }

    /// Who was emailed about `alert`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn alert(&self, alert: &AlertId) -> Result<Vec<SentEmail>, StoreError> {
        let rows = self
            .engine
            .scan(
                "SELECT alert_id, referent_id, email, message_id, smtp_reply, delivered_at, network,
                        publisher, consent, registry, return_path
                 FROM deliveries WHERE alert_id = $1
                 ORDER BY delivered_at, alert_id, publisher, referent_id",
                vec![alert.as_str().into()],
            )
            .await?;
        rows.into_iter().map(sent_email).collect()
    }

    /// Every delivery since `since`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn since(&self, since: OffsetDateTime) -> Result<Vec<SentEmail>, StoreError> {
        let rows = self
            .engine
            .scan(
                "SELECT alert_id, referent_id, email, message_id, smtp_reply, delivered_at, network,
                        publisher, consent, registry, return_path
                 FROM deliveries WHERE delivered_at >= $1
                 ORDER BY delivered_at, alert_id, publisher, referent_id",
                vec![since.into()],
            )
            .await?;
        rows.into_iter().map(sent_email).collect()
    }

    /// Who acknowledged `alert`, and when, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn acknowledgements(
        &self,
        alert: &AlertId,
    ) -> Result<Vec<(String, OffsetDateTime)>, StoreError> {
        let rows = self
            .engine
            .read(
                "SELECT referent_id, acknowledged_at FROM acknowledgements
                 WHERE alert_id = $1 ORDER BY acknowledged_at, referent_id",
                vec![alert.as_str().into()],
            )
            .await?;
        rows.into_iter()
            .map(|mut row| Ok((row.text(0)?, row.time(1)?)))
            .collect()
    }

    /// What the référents did about `alert` (every publisher's), each
    /// choice with its time, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn follow_ups(&self, alert: &AlertId) -> Result<Vec<FollowUpRecord>, StoreError> {
        let rows = self
            .engine
            .read(
                "SELECT publisher, alert_id, referent_id, outcome, recorded_at FROM follow_ups
                 WHERE alert_id = $1 ORDER BY recorded_at, id",
                vec![alert.as_str().into()],
            )
            .await?;
        rows.into_iter().map(follow_up_record).collect()
    }

    /// The alerts emailed since `since` that a network they went to has
    /// not acknowledged, oldest first, each with where its escalation
    /// chain stands.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn pending(&self, since: OffsetDateTime) -> Result<Vec<Pending>, StoreError> {
        let mut pending = self.unacknowledged(since).await?;
        for alert in &mut pending {
            let key = AlertKey {
                publisher: &alert.publisher,
                id: &alert.alert_id,
            };
            let steps = self.escalation(key).await?;
            alert.chain(&steps);
        }
        Ok(pending)
    }

    /// The (alert, network) pairs emailed since `since` with nobody of the
    /// network acknowledging, oldest first; their chains not read.
    async fn unacknowledged(&self, since: OffsetDateTime) -> Result<Vec<Pending>, StoreError> {
        let rows = self
            .engine
            .scan(
                "SELECT d.alert_id, d.network, d.referent_id, d.delivered_at, d.publisher
                 FROM deliveries d
                 WHERE d.delivered_at >= $1 AND d.network IS NOT NULL
                   AND NOT EXISTS (
                       SELECT 1 FROM acknowledgements a
                       LEFT JOIN deliveries o ON o.alert_id = a.alert_id
                                             AND o.referent_id = a.referent_id
                                             AND o.publisher = a.publisher
                       WHERE a.alert_id = d.alert_id AND a.publisher IN (d.publisher, '')
                         AND COALESCE(o.network, a.network) = d.network
                         AND NOT EXISTS (SELECT 1 FROM handbacks h
                                         WHERE h.alert_id = a.alert_id
                                           AND h.publisher = a.publisher
                                           AND h.referent_id = a.referent_id))",
                vec![since.into()],
            )
            .await?;
        let mut by_network: BTreeMap<(String, String, String), Pending> = BTreeMap::new();
        for mut row in rows {
            let (alert_id, network) = (row.text(0)?, row.text(1)?);
            let (referent, at, publisher) = (row.text(2)?, row.time(3)?, row.text(4)?);
            let entry = by_network
                .entry((alert_id.clone(), publisher.clone(), network.clone()))
                .or_insert_with(|| Pending {
                    publisher,
                    alert_id,
                    network,
                    referents: Vec::new(),
                    since: at,
                    next: None,
                    unacknowledged_at: None,
                });
            entry.referents.push(referent);
            entry.since = entry.since.min(at);
        }
        let mut pending: Vec<Pending> = by_network.into_values().collect();
        for alert in &mut pending {
            alert.referents.sort_unstable();
        }
        // Oldest first; the map gave (alert, network) order within a time.
        pending.sort_by_key(|p| p.since);
        Ok(pending)
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
        let since = since.map_or(i64::MIN, OffsetDateTime::unix_timestamp);
        let rows = self
            .engine
            .scan(
                "SELECT recorded_at, unix_user, command, count FROM operations
                 WHERE recorded_at >= $1 ORDER BY recorded_at",
                vec![since.into()],
            )
            .await?;
        rows.into_iter()
            .map(|mut row| {
                Ok(Operation {
                    recorded_at: row.time(0)?,
                    unix_user: row.text(1)?,
                    command: row.text(2)?,
                    count: usize::try_from(row.int(3)?).unwrap_or(0),
                })
            })
            .collect()
    }
}

/// An acknowledgement, recorded once (the first time stays).
const ACKNOWLEDGE: &str =
    "INSERT INTO acknowledgements (publisher, alert_id, referent_id, acknowledged_at, network)
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";

fn acknowledgement(
    alert: AlertKey<'_>,
    referent_id: &str,
    network: Option<&str>,
    at: OffsetDateTime,
) -> Vec<Value> {
    vec![
        alert.publisher.into(),
        alert.id.into(),
        referent_id.into(),
        at.into(),
        network.into(),
    ]
}

/// The follow-up of a stored code; one this relais does not know (written
/// by a newer one) is an error of the store's shape.
fn follow_up_code(code: &str) -> Result<FollowUp, StoreError> {
    FollowUp::parse(code)
        .ok_or_else(|| StoreError::Shape(format!("the follow-up {code:?} is not one relais knows")))
}

fn follow_up_record(mut row: Row) -> Result<FollowUpRecord, StoreError> {
    Ok(FollowUpRecord {
        publisher: row.text(0)?,
        alert_id: row.text(1)?,
        referent_id: row.text(2)?,
        follow_up: follow_up_code(&row.text(3)?)?,
        recorded_at: row.time(4)?,
    })
}

impl Store {
    /// Records an absence a référent declared on its page; stored for good
    /// when this returns.
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn declare_absence(&self, absence: AbsenceDeclaration<'_>) -> Result<(), StoreError> {
        self.engine
            .execute(
                "INSERT INTO declared_absences
                     (referent_id, from_date, to_date, deputy_id, declared_by, declared_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                vec![
                    absence.referent_id.into(),
                    absence.from.into(),
                    absence.to.into(),
                    absence.deputy_id.into(),
                    absence.declared_by.into(),
                    absence.declared_at.into(),
                ],
            )
            .await
            .map(drop)
    }

    /// Cancels absence `id` of `referent_id` at `at`; `false` when that
    /// référent has no such absence, or it was cancelled already (the
    /// first time stays).
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn cancel_absence(
        &self,
        referent_id: &str,
        id: i64,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let changed = self
            .engine
            .execute(
                "UPDATE declared_absences SET cancelled_at = $1
                 WHERE id = $2 AND referent_id = $3 AND cancelled_at IS NULL",
                vec![at.into(), id.into(), referent_id.into()],
            )
            .await?;
        Ok(changed == 1)
    }

    /// The declared absences in force at the instant `at` (declared by
    /// then, not cancelled by then) that end on `from` or later, first day
    /// first: with `from` today and `at` now, those that count now or will.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    pub async fn declared_absences(
        &self,
        from: Date,
        at: OffsetDateTime,
    ) -> Result<Vec<DeclaredAbsence>, StoreError> {
        let rows = self
            .engine
            .read(
                "SELECT id, referent_id, from_date, to_date, deputy_id, declared_by, declared_at,
                        cancelled_at
                 FROM declared_absences
                 WHERE to_date >= $1 AND declared_at <= $2
                   AND (cancelled_at IS NULL OR cancelled_at > $2)
                 ORDER BY from_date, to_date, referent_id, id",
                vec![from.into(), at.into()],
            )
            .await?;
        rows.into_iter().map(declared_absence).collect()
    }
}

fn declared_absence(mut row: Row) -> Result<DeclaredAbsence, StoreError> {
    Ok(DeclaredAbsence {
        id: row.int(0)?,
        referent_id: row.text(1)?,
        from: row.date(2)?,
        to: row.date(3)?,
        deputy_id: row.text_or_null(4)?,
        declared_by: row.text(5)?,
        declared_at: row.time(6)?,
        cancelled_at: row.time_or_null(7)?,
    })
}

fn escalation_step(mut row: Row) -> Result<EscalationStep, StoreError> {
    Ok(EscalationStep {
        step: u8::try_from(row.int(0)?).unwrap_or(0),
        due_at: row.time(1)?,
        done_at: row.time_or_null(2)?,
    })
}

fn sent_email(mut row: Row) -> Result<SentEmail, StoreError> {
    Ok(SentEmail {
        alert_id: row.text(0)?,
        referent_id: row.text(1)?,
        email: row.text(2)?,
        message_id: row.text(3)?,
        smtp_reply: row.text(4)?,
        delivered_at: row.time(5)?,
        network: row.text_or_null(6)?,
        publisher: row.text(7)?,
        consent: row.text_or_null(8)?,
        registry: row.text_or_null(9)?,
        return_path: row.int_or_null(10)?.map(bounces::number),
    })
}

/// Read access for `relais audit` and `relais pending`, safe while the
/// daemon writes: a [`Store`] opened to be read.
pub struct AuditReader(Store);

impl AuditReader {
    /// # Errors
    /// [`StoreError`] when the store does not exist or cannot be read.
    pub async fn open(settings: &StoreSettings) -> Result<Self, StoreError> {
        Store::open_reader(settings).await.map(Self)
    }
}

impl std::ops::Deref for AuditReader {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.0
    }
}

/// Where an operator's command is recorded (`Store::open_log`).
pub struct OperationLog {
    store: Store,
    /// The SQLite file, given back to its folder's owner once written.
    file: Option<PathBuf>,
}

impl OperationLog {
    /// # Errors
    /// [`StoreError`] when the store cannot be opened for writing.
    pub async fn open(settings: &StoreSettings) -> Result<Self, StoreError> {
        Store::open_log(settings).await
    }

    /// Records that step `step` of `alert`'s escalation is over, its copy
    /// removed by an operator (`relais escalations purge`) because every
    /// network acknowledged the alert: as its timer would have found it.
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn escalation_purged(&self, alert: AlertKey<'_>, step: u8) -> Result<(), StoreError> {
        self.store
            .escalation_done(alert, step, OffsetDateTime::now_utc())
            .await
            .map(|_| ())
    }

    /// Makes `registry` the one every relais of the store routes with
    /// (`relais registry publish`).
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn publish_registry(&self, registry: &KeptRegistry) -> Result<(), StoreError> {
        self.store.publish_registry(registry).await
    }

    /// The digest of the registry published last, if any was.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn published_digest(&self) -> Result<Option<String>, StoreError> {
        self.store.published_digest().await
    }

    /// The store, to record and read the probes (`relais registry probe`).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Records `operation`; stored for good when this returns.
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn record(self, operation: &Operation) -> Result<(), StoreError> {
        self.store
            .engine
            .execute(
                "INSERT INTO operations (recorded_at, unix_user, command, count)
                 VALUES ($1, $2, $3, $4)",
                vec![
                    operation.recorded_at.into(),
                    operation.unix_user.as_str().into(),
                    operation.command.as_str().into(),
                    operation.count.into(),
                ],
            )
            .await?;
        drop(self.store);
        if let Some(file) = &self.file {
            sqlite::give_to_folder_owner(file);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

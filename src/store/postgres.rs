//! The PostgreSQL engine (`store.url`): one database that several relais on
//! several hosts share, so that a standby taking over knows who the active
//! one emailed, who acknowledged and where each escalation stands. It runs
//! the store's statements and returns rows; what the rows mean is decided
//! above it (`store/mod.rs`).
//!
//! `tokio-postgres` with a `deadpool-postgres` pool (a broken connection is
//! replaced at the next use; PostgreSQL restarting is an error for the
//! requests of that moment, not for relais). The statements of one write
//! go in one transaction, sent together without waiting for each answer
//! (pipelined), so that the store's group commit costs one round trip. The
//! schema is applied at start-up under a transaction-level advisory lock,
//! so that two relais starting together never migrate twice.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::future::try_join_all;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::schema::{POSTGRES_FIRST_RELEASE, STEPS, VERSION};
use super::value::{Row, Value};
use super::{PostgresCause, Statement, StoreError};
use crate::health::Health;
use crate::settings::StoreSettings;

/// Connections of one relais: the writer's, the dedup checks', the
/// acknowledgement pages', the operators'.
const POOL_SIZE: usize = 8;
/// Longest wait for a connection of the pool (PostgreSQL unreachable: the
/// caller gets an error, and relais holds the alert).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long what relais sent to PostgreSQL may stay unacknowledged by the
/// server's TCP before the connection is closed (`TCP_USER_TIMEOUT`, RFC
/// 5482). A link that went silent (a partition, a dead switch) otherwise
/// holds a statement for the kernel's retransmissions, some 15 minutes;
/// with it, the statement fails within seconds: a delivery's record is
/// said failed and the alert acknowledged to the broker while this relais
/// still holds the lease (half of it), instead of the alert going back to
/// the queue and its référents being emailed again by the standby.
const SILENT_LINK: Duration = Duration::from_secs(5);

/// The advisory lock key under which the schema is migrated ("relais" in
/// ASCII).
const MIGRATION_LOCK: i64 = 0x7265_6c61_6973;

/// The PostgreSQL engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pool: Pool,
    /// The URL without its password, for error messages.
    url: Arc<str>,
    /// Told whether PostgreSQL answers (readiness).
    health: Option<Arc<Health>>,
}

/// How to reach the database `settings` name: the URL as the settings
/// read it, with the TLS they decide (required with `store.ca_file` or
/// towards another machine: a server that answers "no TLS", or a machine
/// in the middle answering for it, is refused, never talked to in clear),
/// sessions named `relais on <host>` (for `relais status`), and the
/// connector that checks the server's certificate against `store.ca_file`
/// and the host's name. Without `store.ca_file` there is no connector: a
/// connection that requires TLS then fails rather than going on in clear.
fn reach(
    settings: &StoreSettings,
) -> Result<(tokio_postgres::Config, Option<MakeRustlsConnect>), StoreError> {
    let failed =
        |message: String| postgres_error(&settings.describe(), PostgresCause::Settings(message));
    let mut config = settings.postgres_config().map_err(failed)?;
    config.connect_timeout(CONNECT_TIMEOUT);
    config.tcp_user_timeout(SILENT_LINK);
    config.application_name(session_name());
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
/// pool (for the standby lease, renewed every second whatever the pool's
/// load).
///
/// # Errors
/// [`StoreError::Postgres`] when PostgreSQL cannot be reached.
pub async fn connect(settings: &StoreSettings) -> Result<tokio_postgres::Client, StoreError> {
    let (config, tls) = reach(settings)?;
    let failed = |error| failed(settings, error);
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

impl Engine {
    /// Connects and brings the schema up to date.
    ///
    /// # Errors
    /// [`StoreError::Postgres`] when PostgreSQL cannot be reached or the
    /// schema cannot be brought up to date; [`StoreError::Newer`] when a
    /// newer relais wrote it.
    pub async fn open(settings: &StoreSettings) -> Result<Self, StoreError> {
        let url: Arc<str> = settings.describe().into();
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
            .map_err(|error| postgres_error(&url, PostgresCause::Settings(error.to_string())))?;
        let engine = Self {
            pool,
            url,
            health: None,
        };
        engine.migrate().await?;
        Ok(engine)
    }

    /// This engine, telling `health` whether PostgreSQL answers.
    #[must_use]
    pub fn watched_by(mut self, health: Arc<Health>) -> Self {
        self.health = Some(health);
        self
    }

    fn error(&self, error: tokio_postgres::Error) -> StoreError {
        postgres_error(&self.url, PostgresCause::Query(error))
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        let got = self.pool.get().await;
        if let Some(health) = &self.health {
            match &got {
                Ok(_) => health.store_usable(),
                Err(error) => {
                    health.store_unusable(format!("the PostgreSQL store {}: {error}", self.url))
                }
            }
        }
        got.map_err(|error| postgres_error(&self.url, PostgresCause::Pool(error)))
    }

    /// Runs the query `sql`.
    pub async fn read(&self, sql: &str, parameters: &[Value]) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|e| self.error(e))?;
        let rows = client
            .query(&statement, &parameters_of(parameters))
            .await
            .map_err(|e| self.error(e))?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|index| row.try_get::<_, Value>(index))
                    .collect::<Result<Vec<Value>, _>>()
                    .map(Row)
                    .map_err(|e| self.error(e))
            })
            .collect()
    }

    /// Runs `statements` in one transaction, sent together; returns how
    /// many rows each changed.
    pub async fn write(&self, statements: Vec<Statement>) -> Result<Vec<u64>, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(|e| self.error(e))?;
        let mut prepared = Vec::with_capacity(statements.len());
        for (sql, _) in &statements {
            prepared.push(
                transaction
                    .prepare_cached(sql)
                    .await
                    .map_err(|e| self.error(e))?,
            );
        }
        let changed = try_join_all(prepared.iter().zip(&statements).map(
            |(statement, (_, parameters))| async {
                transaction
                    .execute(statement, &parameters_of(parameters))
                    .await
            },
        ))
        .await
        .map_err(|e| self.error(e))?;
        transaction.commit().await.map_err(|e| self.error(e))?;
        Ok(changed)
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
        let recorded: Option<i32> = transaction
            .query_one("SELECT max(version) FROM relais_schema", &[])
            .await
            .map_err(|e| self.error(e))?
            .get(0);
        let recorded = usize::try_from(recorded.unwrap_or(0)).unwrap_or(0);
        let mut version = recorded;
        if version == 1 {
            let escalations: Option<String> = transaction
                .query_one("SELECT to_regclass('escalations')::TEXT", &[])
                .await
                .map_err(|e| self.error(e))?
                .get(0);
            if escalations.is_some() {
                version = POSTGRES_FIRST_RELEASE;
            }
        }
        if version > VERSION {
            return Err(StoreError::Newer {
                store: self.url.to_string(),
                version,
                known: VERSION,
            });
        }
        for step in &STEPS[version..] {
            transaction
                .batch_execute(step.postgres)
                .await
                .map_err(|e| self.error(e))?;
        }
        // Recorded in the numbering of `schema.rs` from now on.
        if recorded != VERSION {
            let reached = i32::try_from(VERSION).unwrap_or(i32::MAX);
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
}

fn parameters_of(parameters: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    parameters
        .iter()
        .map(|value| value as &(dyn ToSql + Sync))
        .collect()
}

/// A statement's `error` on a connection of [`connect`].
pub fn failed(settings: &StoreSettings, error: tokio_postgres::Error) -> StoreError {
    postgres_error(&settings.describe(), PostgresCause::Query(error))
}

fn postgres_error(url: &str, cause: PostgresCause) -> StoreError {
    StoreError::Postgres {
        url: url.to_owned(),
        cause,
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Self::Null => Ok(IsNull::Yes),
            // The column's own width: steps are SMALLINT, times BIGINT.
            Self::Int(value) => match *ty {
                Type::INT2 => i16::try_from(*value)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*value)?.to_sql(ty, out),
                _ => value.to_sql(ty, out),
            },
            Self::Text(value) => value.to_sql(ty, out),
            Self::Blob(value) => value.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        [
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::TEXT,
            Type::VARCHAR,
            Type::BYTEA,
        ]
        .contains(ty)
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(match *ty {
            Type::INT2 => Self::Int(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => Self::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => Self::Int(i64::from_sql(ty, raw)?),
            Type::BYTEA => Self::Blob(Vec::<u8>::from_sql(ty, raw)?),
            _ => Self::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self::Null)
    }

    fn accepts(ty: &Type) -> bool {
        [
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::TEXT,
            Type::VARCHAR,
            Type::NAME,
            Type::BYTEA,
        ]
        .contains(ty)
    }
}

/// This machine's name, as `relais status` shows the active instance.
/// How relais names itself to PostgreSQL: `relais on <host>`.
pub fn session_name() -> String {
    format!("relais on {}", host_name())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "an unknown host".into())
}

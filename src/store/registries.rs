//! The registries relais routed with, in the store: each file's bytes
//! under their SHA-256, kept the first time a relais routes with it, so
//! that the audit can say which registry chose each référent (every
//! delivery names its registry's digest); and, with a store that several
//! relais share, the one published last, which every relais of the fleet
//! routes with (`live_registry`).
//!
//! The store never checks a registry: the relais that keeps or publishes
//! one has checked it, and the relais that reads one back checks it again.

use time::OffsetDateTime;

use super::value::Row;
use super::{KeptRegistry, RegistryVersion, Statement, Store, StoreError};

impl Store {
    /// Keeps `registry` if the store does not have it yet (the first use
    /// stands).
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn keep_registry(&self, registry: &KeptRegistry) -> Result<(), StoreError> {
        // Most starts route with a registry already kept: its text (a few
        // megabytes) is then not copied for the statement.
        let known = self
            .engine
            .read(
                "SELECT 1 FROM registries WHERE digest = $1",
                vec![registry.digest.as_str().into()],
            )
            .await?;
        if !known.is_empty() {
            return Ok(());
        }
        self.engine
            .write(vec![kept(registry, OffsetDateTime::now_utc())])
            .await?;
        Ok(())
    }

    /// Makes `registry` the one every relais of this store routes with.
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn publish_registry(&self, registry: &KeptRegistry) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc();
        // Later than every publication before it, even within a second.
        let mut rows = self
            .engine
            .read("SELECT MAX(published_at) FROM registries", vec![])
            .await?;
        let last = match rows.first_mut() {
            Some(row) => row.int_or_null(0)?,
            None => None,
        };
        let at = last.map_or(now.unix_timestamp(), |last| {
            now.unix_timestamp().max(last + 1)
        });
        self.engine
            .write(vec![
                kept(registry, now),
                (
                    "UPDATE registries SET published_at = $2 WHERE digest = $1",
                    vec![registry.digest.as_str().into(), at.into()],
                ),
            ])
            .await?;
        Ok(())
    }

    /// The digest of the registry published last, if any was.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn published_digest(&self) -> Result<Option<String>, StoreError> {
        let mut rows = self
            .engine
            .read(
                "SELECT digest FROM registries WHERE published_at IS NOT NULL
                 ORDER BY published_at DESC LIMIT 1",
                vec![],
            )
            .await?;
        match rows.first_mut() {
            Some(row) => Ok(Some(row.text(0)?)),
            None => Ok(None),
        }
    }

    /// The registry kept under `digest`, body included.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn kept_registry(&self, digest: &str) -> Result<Option<KeptRegistry>, StoreError> {
        let mut rows = self
            .engine
            .scan(
                "SELECT digest, version, format, body FROM registries WHERE digest = $1",
                vec![digest.into()],
            )
            .await?;
        let Some(row) = rows.first_mut() else {
            return Ok(None);
        };
        Ok(Some(KeptRegistry {
            digest: row.text(0)?,
            version: row.text_or_null(1)?,
            format: row.text(2)?,
            body: row.blob_or_null(3)?.unwrap_or_default(),
        }))
    }

    /// Every registry kept, the last used first.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn registry_versions(&self) -> Result<Vec<RegistryVersion>, StoreError> {
        let rows = self
            .engine
            .scan(
                "SELECT digest, version, first_used, published_at FROM registries
                 ORDER BY COALESCE(published_at, first_used) DESC, digest",
                vec![],
            )
            .await?;
        rows.into_iter().map(registry_version).collect()
    }
}

/// The statement that keeps `registry`, first used `now`, unless the
/// store has it already.
fn kept(registry: &KeptRegistry, now: OffsetDateTime) -> Statement {
    (
        "INSERT INTO registries (digest, version, format, body, first_used)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (digest) DO NOTHING",
        vec![
            registry.digest.as_str().into(),
            registry.version.as_deref().into(),
            registry.format.as_str().into(),
            registry.body.as_slice().into(),
            now.into(),
        ],
    )
}

fn registry_version(mut row: Row) -> Result<RegistryVersion, StoreError> {
    Ok(RegistryVersion {
        digest: row.text(0)?,
        version: row.text_or_null(1)?,
        first_used: row.time(2)?,
        published_at: row.time_or_null(3)?,
    })
}

//! Which registry a relais routes with, and the copy of it the store keeps.
//!
//! Every registry relais routes with is kept in the store under its
//! SHA-256 (`store::registries`), and every delivery names it: the audit
//! can then say which registry sent an alert to whom.
//!
//! With a store several relais share (PostgreSQL: an active relais and its
//! standby), the fleet routes with one registry: the one published last on
//! the store (`relais registry publish FILE`). Each relais follows it, at
//! start-up and every [`FOLLOW_EVERY`], whatever its own `registry.path`
//! says; a relais whose file differs says so at each start and reload. A
//! store on which nothing was published yet takes the registry of the
//! first relais that starts on it. So a takeover never changes who
//! receives what, and a registry goes live on every host at once, without
//! a restart. With a SQLite store (one relais), `registry.path` and SIGHUP
//! decide, as they always did.
//!
//! A registry read back from the store is checked again, as a file is: one
//! this relais cannot use (written for another geography, or unfit for
//! its settings) is refused, and the one in force stays.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::{Fences, SharedRegistry, admit};
use crate::geography::Geography;
use crate::health::Health;
use crate::memory;
use crate::registry::{Registry, short_digest as short};
use crate::store::{KeptRegistry, Store};
use crate::telemetry::events::Events;

/// How often a relais on a shared store looks for a newly published
/// registry.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(5);

/// The store that keeps the registries, and whether a fleet shares it.
#[derive(Clone)]
pub struct Fleet {
    pub store: Store,
    /// A store several relais share (PostgreSQL): the registry published
    /// on it is the one in force.
    pub shared: bool,
}

/// A registry with the bytes it was read from.
pub struct Read {
    pub registry: Registry,
    pub kept: KeptRegistry,
}

/// Reads and checks the registry file at `path`.
///
/// # Errors
/// The registry's own errors, or [`super::Unfit`].
pub fn read_file(path: &Path, geography: &Arc<Geography>, fences: &Fences) -> anyhow::Result<Read> {
    let (registry, text) = Registry::load_with_text(path, geography)?;
    admit(&registry, fences)?;
    let body = text.into_bytes();
    let json = path
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("json"));
    let kept = keep(&registry, body, json);
    Ok(Read { registry, kept })
}

/// What the store keeps of `registry`, read from `body`.
fn keep(registry: &Registry, body: Vec<u8>, json: bool) -> KeptRegistry {
    KeptRegistry {
        digest: registry.digest().to_owned(),
        version: registry.version().map(str::to_owned),
        format: if json { "json" } else { "toml" }.to_owned(),
        body,
    }
}

/// Checks a registry the store kept, as a file would be.
///
/// # Errors
/// The registry's own errors, or [`super::Unfit`].
pub fn from_store(
    kept: &KeptRegistry,
    geography: &Arc<Geography>,
    fences: &Fences,
) -> anyhow::Result<Registry> {
    let text = std::str::from_utf8(&kept.body).context("the registry is not UTF-8 text")?;
    let registry = if kept.format == "json" {
        Registry::from_json(text, geography)?
    } else {
        Registry::from_toml(text, geography)?
    };
    admit(&registry, fences)?;
    Ok(registry)
}

/// The registry to start with: the file's with a store of its own (kept
/// in it); with a shared store, the fleet's (the file's, published, when
/// the store has none yet).
///
/// # Errors
/// A store that cannot be read or written, or a published registry this
/// relais cannot use.
pub async fn start(
    file: Read,
    path: &Path,
    fleet: &Fleet,
    fences: &Fences,
    events: &Events,
) -> anyhow::Result<Registry> {
    let store = &fleet.store;
    let origin = path.display().to_string();
    if !fleet.shared {
        store
            .keep_registry(&file.kept)
            .await
            .context("cannot keep the registry in the store")?;
        events.registry_loaded(&file.registry, &origin, false);
        return Ok(file.registry);
    }
    let published = store
        .published_digest()
        .await
        .context("cannot read which registry the fleet routes with")?;
    match published {
        None => {
            store
                .publish_registry(&file.kept)
                .await
                .context("cannot publish the registry in the store")?;
            events.registry_loaded(&file.registry, &origin, false);
            events.registry_published_first(&file.registry);
            Ok(file.registry)
        }
        Some(digest) if digest == file.kept.digest => {
            events.registry_loaded(&file.registry, &origin, false);
            Ok(file.registry)
        }
        Some(digest) => {
            let kept = store
                .kept_registry(&digest)
                .await
                .context("cannot read the fleet's registry")?
                .context("the fleet's registry is missing from the store")?;
            let registry =
                from_store(&kept, file.registry.geography(), fences).with_context(|| {
                    format!(
                        "the registry published on the store (sha256:{}) cannot be used by this \
                     relais; publish one it can use (relais registry publish FILE)",
                        short(&digest)
                    )
                })?;
            events.registry_loaded(&registry, PUBLISHED, false);
            events.registry_file_differs(&file.registry, &registry);
            Ok(registry)
        }
    }
}

/// Where a registry read back from the store came from, in the logs.
const PUBLISHED: &str = "published on the store";

/// With a shared store, swaps in the registry published last whenever it
/// is not the one in force, until `stop`. A check that fails is logged and
/// tried again at the next turn; the registry in force stays.
pub async fn follow(
    registry: SharedRegistry,
    store: Store,
    fences: Fences,
    (events, health): (Events, Arc<Health>),
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(FOLLOW_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        if catch_up(&registry, &store, &fences, &events).await {
            health.registry_loaded(registry.load().provenance());
        }
    }
}

/// Swaps in the registry published last, if it is not the one in force;
/// whether it did.
pub(super) async fn catch_up(
    registry: &SharedRegistry,
    store: &Store,
    fences: &Fences,
    events: &Events,
) -> bool {
    let digest = match store.published_digest().await {
        Ok(Some(digest)) => digest,
        Ok(None) => return false,
        Err(error) => {
            events.registry_unfollowed(&error);
            return false;
        }
    };
    let current = registry.load();
    if current.digest() == digest {
        return false;
    }
    let kept = match store.kept_registry(&digest).await {
        Ok(Some(kept)) => kept,
        Ok(None) => return false,
        Err(error) => {
            events.registry_unfollowed(&error);
            return false;
        }
    };
    match from_store(&kept, current.geography(), fences) {
        Ok(new) => {
            events.registry_loaded(&new, PUBLISHED, true);
            drop(current);
            registry.store(Arc::new(new));
            memory::return_freed();
            true
        }
        Err(error) => {
            events.registry_refused(&format!("{error:#}"));
            false
        }
    }
}

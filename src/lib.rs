//! relais relays social-care alerts from SOS Médecins doctors to the
//! référents of the social-action offices of the patient's territory.
//!
//! The path of one alert, module by module:
//!
//! 1. [`settings`]: what relais is configured with (file, then environment);
//! 2. [`registry`]: who the référents are and which of them an alert goes to;
//! 3. [`consumer`]: the broker connection, the [`topology`], the consume loop;
//! 4. [`handle`]: one delivery → [`alert`] parsed → référents resolved →
//!    [`email`] rendered → [`mailer`] sends → one [`handle::Outcome`];
//! 5. [`outcome`]: the outcome becomes broker actions: dead letters published
//!    with confirms, then the ack.
//!
//! Two failures matter above all: an alert lost, and an alert sent to the
//! wrong person or in clear. Every module's documentation says how it
//! guards against them.

pub mod alert;
pub mod cli;
pub mod commands;
pub mod consumer;
pub mod email;
pub mod handle;
pub mod mailer;
pub mod outcome;
pub mod registry;
pub mod settings;
pub mod store;
pub mod telemetry;
pub mod territory;
pub mod topology;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::email::Renderer;
use crate::handle::{Relay, SharedRegistry};
use crate::mailer::Mailer;
use crate::registry::Registry;
use crate::settings::Settings;
use crate::store::Store;

/// Longest wait between two prunings of the store.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Runs the daemon until `shutdown` completes, then stops consuming, lets
/// the alerts in flight finish (within `shutdown_timeout`) and returns. Each
/// message on `reloads` (SIGHUP) reloads the registry.
///
/// # Errors
/// Only for what an operator must fix before relais can start: an invalid
/// registry, an unusable store or mail settings. A broker or mail server
/// that is down is waited for, never an error.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
    mut reloads: mpsc::Receiver<()>,
) -> anyhow::Result<()> {
    let registry_path = settings.registry.path.clone();
    let registry = Registry::load(&registry_path)?;
    tracing::info!(
        registry = %registry_path.display(),
        referents = registry.referents().len(),
        "registry loaded"
    );
    let store = Store::open(&settings.store.path)?;
    let sender = settings.smtp.sender().map_err(anyhow::Error::msg)?;
    let relay = Arc::new(Relay::new(
        Arc::new(ArcSwap::from_pointee(registry)),
        Renderer::new(sender)?,
        Mailer::new(&settings.smtp)?,
        store.clone(),
        (&settings.retry).into(),
        settings.amqp.max_message_bytes,
    ));

    let stop = CancellationToken::new();
    tokio::spawn(prune(store, settings.store.retention, stop.clone()));
    let consumer = consumer::consume(&settings, relay.clone(), stop.clone());
    tokio::pin!(consumer);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut consumer => break,
            () = &mut shutdown => {
                tracing::info!("stopping: finishing the alerts in flight");
                stop.cancel();
                consumer.await;
                break;
            }
            Some(()) = reloads.recv() => reload(relay.registry(), &registry_path),
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Replaces the registry with the file's current content if, and only if,
/// it is valid; alerts in flight finish with the registry they started with.
fn reload(registry: &SharedRegistry, path: &Path) {
    match Registry::load(path) {
        Ok(new) => {
            let referents = new.referents().len();
            registry.store(Arc::new(new));
            tracing::info!(registry = %path.display(), referents, "registry reloaded");
        }
        Err(error) => {
            let error = telemetry::one_line(&error);
            tracing::error!(%error, "registry reload refused; the registry in force stays");
        }
    }
}

/// Forgets deliveries older than `retention`, now and then.
async fn prune(store: Store, retention: Duration, stop: CancellationToken) {
    let every = PRUNE_EVERY.min(retention / 10).max(Duration::from_secs(1));
    loop {
        let before = OffsetDateTime::now_utc() - retention;
        match store.prune(before).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "store pruned"),
            Err(error) => tracing::warn!(%error, "cannot prune the store"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

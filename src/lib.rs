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
pub mod telemetry;
pub mod territory;
pub mod topology;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::email::Renderer;
use crate::handle::Relay;
use crate::mailer::Mailer;
use crate::registry::Registry;
use crate::settings::Settings;

/// Runs the daemon until `shutdown` completes, then stops consuming, lets
/// the alerts in flight finish (within `shutdown_timeout`) and returns.
///
/// # Errors
/// Only for what an operator must fix before relais can start: an invalid
/// registry, unusable mail settings. A broker or mail server that is down is
/// waited for, never an error.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let registry_path = settings
        .registry
        .path
        .clone()
        .context("registry.path is required")?;
    let registry = Registry::load(&registry_path)?;
    tracing::info!(
        registry = %registry_path.display(),
        referents = registry.referents().len(),
        "registry loaded"
    );
    let sender = settings.smtp.sender().map_err(anyhow::Error::msg)?;
    let relay = Arc::new(Relay::new(
        Arc::new(ArcSwap::from_pointee(registry)),
        Renderer::new(sender)?,
        Mailer::new(&settings.smtp)?,
        settings.amqp.max_message_bytes,
    ));

    let stop = CancellationToken::new();
    let consumer = consumer::consume(
        &settings.amqp,
        relay,
        stop.clone(),
        settings.shutdown_timeout,
    );
    tokio::pin!(consumer);
    tokio::select! {
        () = &mut consumer => {}
        () = shutdown => {
            tracing::info!("stopping: finishing the alerts in flight");
            stop.cancel();
            consumer.await;
        }
    }
    tracing::info!("stopped");
    Ok(())
}

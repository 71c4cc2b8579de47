//! `relais run`: the daemon, started with the settings and stopped by a
//! signal. It owns the signals (SIGTERM and SIGINT stop, SIGHUP reloads)
//! and nothing else: what runs is [`crate::daemon`]'s.

use std::path::Path;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use crate::settings::Settings;

/// `relais run`: the daemon, until SIGTERM or SIGINT.
pub(super) async fn run(config: Option<&Path>) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    crate::telemetry::init(&settings.log)?;
    for warning in &settings.warnings {
        tracing::warn!(%warning, "the settings need attention");
    }
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    };
    let (reload, reloads) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            // A reload already pending covers this one too.
            let _ = reload.try_send(());
        }
    });
    crate::daemon::run(settings, shutdown, reloads).await
}

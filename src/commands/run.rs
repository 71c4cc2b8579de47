//! `relais run`: the daemon, started with the settings and stopped by a
//! signal. It owns the signals (SIGTERM and SIGINT stop, SIGHUP reloads)
//! and nothing else: what runs is [`crate::daemon`]'s. After a stop signal
//! the process ends within `shutdown_timeout` and a few seconds, in every
//! state (starting, waiting for a dependency, draining, standby).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use crate::settings::Settings;

/// How long past `shutdown_timeout` relais may take to close what it holds
/// (the lease, the SMTP connections, the last events) once the alerts in
/// flight are done or given up.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Ends the process `deadline` from now if the daemon has not stopped by
/// then, whatever it is waiting for (a store or a broker that does not
/// answer, a dependency frozen mid-call). On a thread of its own, so that
/// nothing the runtime waits for can hold it up. Exiting then loses
/// nothing: an alert the broker was not told is done is delivered again,
/// and the store keeps its référents from being emailed twice.
fn stop_by(deadline: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(deadline);
        tracing::error!(
            ?deadline,
            "relais did not stop in time after the signal; exiting now: \
            the alerts it had not finished are delivered again, to nobody twice"
        );
        std::process::exit(1);
    });
}

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
    let deadline = settings.shutdown_timeout + STOP_GRACE;
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        stop_by(deadline);
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

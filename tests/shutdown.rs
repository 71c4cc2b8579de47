//! Stopping relais: the real binary, SIGTERM while alerts are in flight.

mod support;

use std::collections::BTreeSet;
use std::io::Read;
use std::process::Command;
use std::time::Duration;

use support::{REGISTRY, World, alert};

#[tokio::test]
async fn sigterm_with_alerts_in_flight_loses_nothing_and_exits_cleanly() {
    // Arrange: a slow mail server, so that alerts are in flight when the stop comes.
    let world = World::new(REGISTRY).await;
    world.smtp.set_latency(Duration::from_millis(150));
    let total = 60;
    for n in 0..total {
        let id = format!("SOS75-STOP-{n:04}");
        world
            .publish(
                "orientation_sociale",
                &alert(&id, "orientation_sociale", "75115"),
            )
            .await;
    }
    let mut relais = world.spawn_binary();
    world.smtp.wait_for(5, Duration::from_secs(20)).await;

    // Act
    let status = Command::new("kill")
        .args(["-TERM", &relais.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || {
        let exit = relais.wait().unwrap();
        let mut logs = String::new();
        relais
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut logs)
            .unwrap();
        (exit, logs)
    });
    let (exit, logs) = tokio::time::timeout(Duration::from_secs(30), exit)
        .await
        .unwrap()
        .unwrap();

    // Assert: a clean exit, in-flight alerts finished, the rest still queued.
    assert!(exit.success(), "exit status {exit:?}; logs:\n{logs}");
    assert!(
        logs.contains("stopping: finishing the alerts in flight"),
        "{logs}"
    );
    assert!(
        !logs.contains("Jeanne Durand"),
        "patient data must never be logged"
    );
    let delivered = world.smtp.mails();
    let ids: BTreeSet<String> = delivered.iter().map(|m| m.alert_id()).collect();
    assert_eq!(ids.len(), delivered.len(), "no alert emailed twice");
    assert!(
        delivered.len() < total,
        "the stop came before the end ({} delivered)",
        delivered.len()
    );
    let queued = world.broker.depth(&world.queue).await as usize;
    assert_eq!(
        delivered.len() + queued,
        total,
        "every alert is either delivered or still queued"
    );

    // And a new relais delivers the rest, each exactly once.
    let app = world.spawn();
    let all = world.smtp.wait_for(total, Duration::from_secs(30)).await;
    assert_eq!(
        world
            .wait_for_depth(&world.queue, 0, Duration::from_secs(10))
            .await,
        0
    );
    app.stop().await;
    let ids: BTreeSet<String> = all.iter().map(|m| m.alert_id()).collect();
    assert_eq!((all.len(), ids.len()), (total, total));
    assert_eq!(world.broker.depth(&world.queue).await, 0);
    world.cleanup().await;
}

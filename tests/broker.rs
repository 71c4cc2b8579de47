//! The broker going away under relais: every connection force-closed, and
//! the broker application restarted, in the middle of a stream of alerts.
//!
//! These tests disturb every client of the broker, so they live in their own
//! test binary (cargo runs test binaries one after the other) and take a
//! lock so that they never overlap each other.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use support::{Broker, REGISTRY, World};

static BROKER_FAULTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TOTAL: usize = 500;

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl")
        .args(args)
        .status()
        .expect("rabbitmqctl is installed (see scripts/rabbitmq)");
    assert!(status.success(), "rabbitmqctl {args:?}");
}

/// Publishes `TOTAL` alerts, lets relais start on them, applies `fault` once
/// about a fifth are emailed, and checks that every alert is emailed exactly
/// once in the end.
async fn stream_survives(fault: impl FnOnce() + Send + 'static) {
    let mut world = World::new(REGISTRY).await;
    world.smtp.set_latency(Duration::from_millis(5));
    world.publish_stream("SOS75-BRK", TOTAL).await;
    let app = world.spawn();
    let before = world
        .smtp
        .wait_for(TOTAL / 5, Duration::from_secs(30))
        .await
        .len();
    assert!(
        before < TOTAL,
        "the fault comes in the middle of the stream"
    );

    // On a thread of its own: relais and the mail server keep running
    // meanwhile, as they would in production.
    tokio::task::spawn_blocking(fault).await.unwrap();

    // Our own connection went too.
    world.broker = Broker::connect().await;
    let mails = world.smtp.wait_for(TOTAL, Duration::from_secs(90)).await;
    assert_eq!(
        world
            .wait_for_depth(&world.queue, 0, Duration::from_secs(30))
            .await,
        0
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.stop().await;
    let mut per_alert: BTreeMap<String, usize> = BTreeMap::new();
    for mail in world.smtp.mails() {
        *per_alert.entry(mail.alert_id()).or_default() += 1;
    }
    let twice: Vec<_> = per_alert.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "emailed more than once: {twice:?}");
    assert_eq!(per_alert.len(), TOTAL, "every alert emailed");
    assert_eq!(mails.len(), TOTAL);
    assert_eq!(world.broker.depth(&world.queue).await, 0);
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    world.cleanup().await;
}

#[tokio::test]
async fn every_connection_force_closed_in_the_middle_of_500_alerts_loses_none_and_doubles_none() {
    let _alone = BROKER_FAULTS.lock().await;
    stream_survives(|| rabbitmqctl(&["close_all_connections", "relais test: connection cut"]))
        .await;
}

#[tokio::test]
async fn the_broker_restarted_in_the_middle_of_500_alerts_loses_none_and_doubles_none() {
    let _alone = BROKER_FAULTS.lock().await;
    stream_survives(|| {
        rabbitmqctl(&["stop_app"]);
        rabbitmqctl(&["start_app"]);
        rabbitmqctl(&["await_startup"]);
    })
    .await;
}

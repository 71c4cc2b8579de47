//! The broker going away under relais: every connection force-closed, and
//! the broker application restarted, in the middle of a stream of alerts.
//!
//! These tests disturb every client of the broker, so they live in their own
//! test binary (cargo runs test binaries one after the other) and take a
//! lock so that they never overlap each other.

use relais_testkit as support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{Broker, REGISTRY, StoppedBroker, World, rabbitmqctl};

static BROKER_FAULTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TOTAL: usize = 500;

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

    // The alerts' events flow again, on a connection of their own that
    // went with the fault: the dispatch software hears of the next alert.
    // (Events of the stream that waited for the broker may come first.)
    let events = world.bind_events("=.delivered").await;
    world.publish_one("SOS75-BRK-AFTER").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut heard = Vec::new();
    while !heard.iter().any(|id| id == "SOS75-BRK-AFTER") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no event for an alert relayed after the fault; heard of {heard:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        for message in world.broker.take_all(&events).await {
            let event: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
            heard.push(event["alert_id"].as_str().unwrap_or_default().to_owned());
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.stop().await;
    let mut per_alert: BTreeMap<String, usize> = BTreeMap::new();
    for mail in world.smtp.mails() {
        *per_alert.entry(mail.alert_id()).or_default() += 1;
    }
    let twice: Vec<_> = per_alert.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "emailed more than once: {twice:?}");
    assert_eq!(per_alert.len(), TOTAL + 1, "every alert emailed");
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
    stream_survives(|| StoppedBroker::stop().start()).await;
}

/// Polls `/readyz` until it answers `status`, at most `within`.
async fn readyz_becomes(port: u16, status: u16, within: Duration) -> String {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (now, body) = support::http_get(port, "/readyz").await;
        if now == status {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz stayed {now}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn readiness_turns_503_while_the_broker_is_down_and_200_when_it_is_back() {
    let _alone = BROKER_FAULTS.lock().await;
    let port = support::smtp::SmtpServer::free_port().await;
    let listen = format!("127.0.0.1:{port}");
    let mut world = World::with_env(REGISTRY, &[("RELAIS__HTTP__LISTEN", listen.as_str())]).await;
    let app = world.spawn();
    readyz_becomes(port, 200, Duration::from_secs(20)).await;

    let stopped = tokio::task::spawn_blocking(StoppedBroker::stop)
        .await
        .unwrap();
    let down = readyz_becomes(port, 503, Duration::from_secs(20)).await;
    let down: serde_json::Value = serde_json::from_str(&down).unwrap();
    assert_eq!(down["ready"], false);
    assert_eq!(
        down["registry"],
        format!("loaded: sha256:{}", support::registry_digest(REGISTRY))
    );
    let consumer = down["consumer"].as_str().unwrap();
    assert!(consumer.contains("broker"), "{consumer}");
    assert!(
        !consumer.contains("guest:guest"),
        "no secret in /readyz: {consumer}"
    );
    let (_, metrics) = support::http_get(port, "/metrics").await;
    assert_eq!(
        support::sample(&metrics, "relais_amqp_connected"),
        Some(0.0)
    );
    assert_eq!(
        support::http_get(port, "/healthz").await.0,
        200,
        "alive all the same"
    );

    tokio::task::spawn_blocking(|| stopped.start())
        .await
        .unwrap();
    readyz_becomes(port, 200, Duration::from_secs(60)).await;
    let (_, metrics) = support::http_get(port, "/metrics").await;
    assert_eq!(
        support::sample(&metrics, "relais_amqp_connected"),
        Some(1.0)
    );
    app.stop().await;
    world.broker = Broker::connect().await;
    world.cleanup().await;
}

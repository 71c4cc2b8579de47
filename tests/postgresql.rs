//! PostgreSQL restarted under relais: in the middle of 1,000 alerts the
//! machine's PostgreSQL (`pg_ctlcluster … restart`) drops relais's
//! sessions, the standby lease's among them; relais holds its alerts while
//! the store does not answer, renews its lease, then carries on: every
//! alert emailed once, none dead-lettered, `/readyz` back to `store: ok`.
//!
//! A test binary of its own: it stops the server that the behaviour tests
//! use on PostgreSQL (cargo runs test binaries one after the other), and
//! its only test.

use relais_testkit as support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{REGISTRY, STREAM_WAIT, World, http_get, signal, wait_exit};

const ALERTS: usize = 1000;

#[tokio::test]
async fn a_postgresql_restart_in_the_middle_of_a_stream_holds_the_alerts_and_loses_nothing() {
    // Arrange
    let world = World::on_postgres(REGISTRY).await;
    world.smtp.set_latency(Duration::from_millis(2));
    world.publish_stream("SOS75-PG", ALERTS).await;
    let port = support::smtp::SmtpServer::free_port().await;
    let mut relais =
        world.spawn_binary_with(&[("RELAIS__HTTP__LISTEN", &format!("127.0.0.1:{port}"))]);
    let logs = support::Logs::collect(&mut relais);

    // Act: PostgreSQL restarts in the middle.
    world.smtp.wait_for(300, STREAM_WAIT).await;
    tokio::task::spawn_blocking(support::postgres::restart)
        .await
        .unwrap();
    let all = world.smtp.wait_for(ALERTS, STREAM_WAIT).await;
    let left = world.wait_for_depth(&world.queue, 0, STREAM_WAIT).await;
    let after = world
        .smtp
        .wait_for(ALERTS + 1, Duration::from_secs(2))
        .await;
    let (_, readiness) = http_get(port, "/readyz").await;
    signal(&relais, "TERM");
    wait_exit(&mut relais, STREAM_WAIT).await;

    // Assert: every alert once; nothing retried to exhaustion or dead.
    let mut per_alert: BTreeMap<String, usize> = BTreeMap::new();
    for mail in &after {
        *per_alert.entry(mail.alert_id()).or_default() += 1;
    }
    let twice: Vec<_> = per_alert.iter().filter(|(_, n)| **n > 1).collect();
    assert_eq!(left, 0, "{}", logs.all());
    assert_eq!(all.len(), ALERTS);
    assert!(twice.is_empty(), "emailed twice: {twice:?}");
    assert_eq!((after.len(), per_alert.len()), (ALERTS, ALERTS));
    assert_eq!(world.broker.depth(&world.dead()).await, 0, "{}", logs.all());
    // The restart was felt: the lease could not be renewed while
    // PostgreSQL was down, and relais renewed it (the lease is a row of
    // the store, which the restart keeps) once PostgreSQL answered again.
    assert!(
        logs.count("cannot renew the lease of this queue") >= 1,
        "{}",
        logs.all()
    );
    let readiness: serde_json::Value = serde_json::from_str(&readiness).unwrap();
    assert_eq!(readiness["store"], "ok", "{readiness}");
    assert_eq!(readiness["role"], "active", "{readiness}");
    world.cleanup().await;
}

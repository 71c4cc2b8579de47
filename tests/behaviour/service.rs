//! relais as a service: the real `relais run` binary under the signals a
//! service manager sends. SIGTERM in the middle of a stream finishes what
//! is in flight and exits cleanly; SIGKILL then a restart loses nothing and
//! emails nobody twice; its logs are one JSON object per line, or text
//! without colour codes.

use relais_testkit as support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::{Logs, REGISTRY, WAIT, World, alert, signal, wait_exit};

#[tokio::test]
async fn sigterm_with_alerts_in_flight_loses_nothing_and_exits_cleanly() {
    // Arrange: a slow mail server, so that alerts are in flight when the stop comes.
    let world = World::new(REGISTRY).await;
    world.smtp.set_latency(Duration::from_millis(150));
    let total = 60;
    world.publish_stream("SOS75-STOP", total).await;
    let mut relais = world.spawn_binary();
    let logs = Logs::collect(&mut relais);
    world.smtp.wait_for(5, WAIT).await;

    // Act
    signal(&relais, "TERM");
    let exit = wait_exit(&mut relais, WAIT).await;

    // Assert: a clean exit, in-flight alerts finished, the rest still queued.
    assert!(logs.wait_for("stopped", 1, WAIT).await);
    let logs = logs.all();
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
    let all = world.smtp.wait_for(total, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    app.stop().await;
    let ids: BTreeSet<String> = all.iter().map(|m| m.alert_id()).collect();
    assert_eq!((all.len(), ids.len()), (total, total));
    assert_eq!(world.broker.depth(&world.queue).await, 0);
    world.cleanup().await;
}

#[tokio::test]
async fn sigkill_in_the_middle_of_a_stream_then_a_restart_loses_nothing_and_emails_nobody_twice() {
    // Arrange
    let world = World::new(REGISTRY).await;
    world.smtp.set_latency(Duration::from_millis(50));
    let total = 300;
    world.publish_stream("SOS75-KILL", total).await;
    let mut relais = world.spawn_binary();
    world.smtp.wait_for(10, WAIT).await;
    // The mail server stops answering, so the kill lands while every email
    // in flight is unanswered (not accepted); emails accepted just before
    // are given time to be recorded.
    let held = world.smtp.hold_in_flight().await;
    assert!(held > 0, "emails are in flight at the kill");

    // Act: a crash, then the server drops what it never answered.
    signal(&relais, "KILL");
    wait_exit(&mut relais, WAIT).await;
    world.smtp.drop_held();
    let before_restart = world.smtp.mails().len();
    assert!(before_restart < total);
    let app = world.spawn();

    // Assert: every alert emailed, exactly once.
    let all = world.smtp.wait_for(total, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.stop().await;
    let all_now = world.smtp.mails();
    let ids: BTreeSet<String> = all_now.iter().map(|m| m.alert_id()).collect();
    assert_eq!(all.len(), total);
    assert_eq!(
        (all_now.len(), ids.len()),
        (total, total),
        "nothing lost, nothing twice"
    );
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    world.cleanup().await;
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_and_text_logs_carry_no_colour_codes() {
    let mut world = World::new(REGISTRY).await;

    world
        .env
        .push(("RELAIS__LOG__FORMAT".into(), "json".into()));
    let mut relais = world.spawn_binary();
    let logs = Logs::collect(&mut relais);
    logs.expect("consuming alerts").await;
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-JSON", "orientation_sociale", "75115"),
        )
        .await;
    logs.expect("alert delivered").await;
    signal(&relais, "TERM");
    assert!(wait_exit(&mut relais, WAIT).await.success());
    let all = logs.all();
    let events: Vec<serde_json::Value> = all
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let delivered = events
        .iter()
        .find(|e| e["message"] == "alert delivered")
        .unwrap();
    assert_eq!(delivered["alert_id"], "SOS75-JSON");
    assert_eq!(delivered["territory"], "commune 75115");
    assert_eq!(delivered["level"], "INFO");
    assert!(!all.contains("Jeanne"), "no patient data in the logs");

    // Text, to a pipe (as under journald): no ANSI escape sequences.
    world.env.pop();
    let mut relais = world.spawn_binary();
    let logs = Logs::collect(&mut relais);
    logs.expect("consuming alerts").await;
    signal(&relais, "TERM");
    assert!(wait_exit(&mut relais, WAIT).await.success());
    assert!(!logs.all().contains('\u{1b}'), "{}", logs.all());
    world.cleanup().await;
}

#[tokio::test]
async fn a_second_relais_on_the_same_queue_with_a_sqlite_store_is_warned_of_at_start() {
    // Arrange: one relais consuming, on the store of this world.
    let world = World::new(REGISTRY).await;
    let on_postgres = support::test_store().is_some();
    let mut first = world.spawn_binary();
    let first_logs = Logs::collect(&mut first);
    first_logs.expect("consuming alerts").await;

    // Act: another on the same queue, as on a second host.
    let mut second = world.spawn_binary();
    let second_logs = Logs::collect(&mut second);
    second_logs
        .expect(if on_postgres {
            "standby: another relais holds the lease of this queue"
        } else {
            "consuming alerts"
        })
        .await;

    // Assert: on SQLite the second says what it risks and what to do; the
    // first, alone when it started, said nothing of it. On a shared
    // PostgreSQL store the second is a standby, and nothing is at risk.
    for relais in [&first, &second] {
        signal(relais, "TERM");
    }
    assert!(wait_exit(&mut first, WAIT).await.success());
    assert!(wait_exit(&mut second, WAIT).await.success());
    let warned = "two relais on one queue must share a PostgreSQL store";
    assert_eq!(
        second_logs.all().contains(warned),
        !on_postgres,
        "{}",
        second_logs.all()
    );
    assert!(!first_logs.all().contains(warned), "{}", first_logs.all());
    world.cleanup().await;
}

/// Starts the real binary with `env`, waits until its log says `waiting`,
/// sends SIGTERM and returns how long it took to end, its exit status and
/// its logs.
async fn stopped_while(
    world: &World,
    env: &[(&str, &str)],
    waiting: &str,
) -> (Duration, std::process::ExitStatus, String) {
    let mut relais = world.spawn_binary_with(env);
    let logs = Logs::collect(&mut relais);
    assert!(
        logs.wait_for(waiting, 1, WAIT).await,
        "never {waiting:?}:\n{}",
        logs.all()
    );
    let asked = std::time::Instant::now();
    signal(&relais, "TERM");
    let exit = wait_exit(&mut relais, WAIT).await;
    (asked.elapsed(), exit, logs.all())
}

#[tokio::test]
async fn sigterm_ends_relais_waiting_for_a_store_that_cannot_be_reached() {
    // A PostgreSQL store, moved where nothing answers.
    let world = World::on_postgres(REGISTRY).await;

    let (took, exit, logs) = stopped_while(
        &world,
        &[("RELAIS__STORE__URL", "postgres://relais@127.0.0.1:1/relais")],
        "cannot open the store; trying again",
    )
    .await;

    assert!(exit.success(), "{exit:?}\n{logs}");
    assert!(took < Duration::from_secs(10), "{took:?}\n{logs}");
    assert!(
        logs.contains("stopped while waiting for the store"),
        "{logs}"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn sigterm_ends_relais_waiting_for_a_broker_that_cannot_be_reached() {
    let world = World::new(REGISTRY).await;

    let (took, exit, logs) = stopped_while(
        &world,
        &[("RELAIS__AMQP__URL", "amqp://guest:guest@127.0.0.1:1/%2f")],
        "cannot consume from the broker",
    )
    .await;

    assert!(exit.success(), "{exit:?}\n{logs}");
    assert!(took < Duration::from_secs(10), "{took:?}\n{logs}");
    world.cleanup().await;
}

#[tokio::test]
async fn sigterm_ends_relais_draining_an_email_the_server_never_answers_within_its_timeout() {
    // Arrange: a mail server that takes the message and never answers its
    // end; 2 s to finish the alerts in flight.
    let world = World::new(REGISTRY).await;
    world.smtp.hold();
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-HELD", "orientation_sociale", "75113"),
        )
        .await;

    // Act: SIGTERM while the email is held.
    let mut relais = world.spawn_binary_with(&[("RELAIS__SHUTDOWN_TIMEOUT", "2s")]);
    let logs = Logs::collect(&mut relais);
    while world.smtp.hold_in_flight().await == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let asked = std::time::Instant::now();
    signal(&relais, "TERM");
    let exit = wait_exit(&mut relais, WAIT).await;
    let took = asked.elapsed();
    world.smtp.drop_held();

    // Assert: ended within its 2 s and the 5 s of grace (with room for a
    // loaded machine), not after the 10 min an email's end may take; the
    // alert is still queued for the next relais.
    let logs = logs.all();
    assert!(took < Duration::from_secs(2 + 5 + 5), "{took:?}\n{logs}");
    assert!(exit.code().is_some(), "{exit:?}\n{logs}");
    assert_eq!(world.wait_for_depth(&world.queue, 1, WAIT).await, 1);
    world.cleanup().await;
}

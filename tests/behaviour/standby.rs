//! Two relais, one sender: two real binaries on one queue and one
//! PostgreSQL store, as on two hosts. One is active (it holds the standby
//! lock and consumes), the other standby, each saying so on `/readyz`.
//! In the middle of 1,000 alerts the active one is killed (SIGKILL), or
//! frozen (SIGSTOP, as a paused virtual machine), the mail server holding
//! its answers so that no email is half sent: the standby takes over, and
//! every alert is emailed once, none missing, none twice; a frozen one
//! that resumes (SIGCONT) finds its lease gone and ends standby; `relais
//! status` names the active instance. (PostgreSQL itself
//! restarted under relais is `tests/postgresql.rs`: it stops a server
//! the tests here use.)

use relais_testkit as support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{REGISTRY, STREAM_WAIT, World, signal, wait_exit, wait_for_role};

const ALERTS: usize = 1000;

/// How soon the standby must have emailed every alert the frozen active
/// one left: the lease runs out, and the broker's heartbeat closes the
/// frozen relais's connection, well within it.
const TAKEOVER: Duration = Duration::from_secs(30);

/// Each alert's number of emails among `mails`, and those emailed twice.
fn twice(mails: &[support::smtp::Mail]) -> (BTreeMap<String, usize>, Vec<String>) {
    let mut per_alert: BTreeMap<String, usize> = BTreeMap::new();
    for mail in mails {
        *per_alert.entry(mail.alert_id()).or_default() += 1;
    }
    let twice = per_alert
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id.clone())
        .collect();
    (per_alert, twice)
}

/// Waits until the store has recorded every email the mail server accepted,
/// and returns their number.
///
/// Between the server's "250" to an email and relais's record of it lies
/// RFC 1047's window: a relais killed or frozen inside it cannot know that
/// the email left, and the standby sends it again (the one duplicate once
/// seen here: the kill fell on a record still in the group commit). That
/// window cannot be closed from the client's side, only kept short (one
/// commit); these tests wait it out before the fault, so that any
/// duplicate they see is one relais could have avoided.
async fn every_accepted_email_recorded(world: &World) -> usize {
    let audit = world.audit().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let accepted = world.smtp.mails().len();
        let recorded = audit
            .since(time::OffsetDateTime::UNIX_EPOCH)
            .await
            .expect("the store answers")
            .len();
        if recorded >= accepted {
            return accepted;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{accepted} emails accepted, {recorded} recorded after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two relais on `world`'s queue and store: the first active, the second
/// standby; with their `/readyz` ports.
async fn active_and_standby(world: &World) -> [(std::process::Child, u16); 2] {
    let (port_a, port_b) = (
        support::smtp::SmtpServer::free_port().await,
        support::smtp::SmtpServer::free_port().await,
    );
    let listen = |port: u16| format!("127.0.0.1:{port}");
    let a = world.spawn_binary_with(&[("RELAIS__HTTP__LISTEN", &listen(port_a))]);
    assert_eq!(wait_for_role(port_a, "active").await, "active");
    let b = world.spawn_binary_with(&[("RELAIS__HTTP__LISTEN", &listen(port_b))]);
    assert_eq!(wait_for_role(port_b, "standby").await, "standby");
    [(a, port_a), (b, port_b)]
}

#[tokio::test]
async fn the_standby_takes_over_when_the_active_relais_is_killed_and_nothing_is_sent_twice() {
    // Arrange: 1,000 alerts, relais A active, relais B standby.
    let world = World::on_postgres(REGISTRY).await;
    world.smtp.set_latency(Duration::from_millis(5));
    world.publish_stream("SOS75-HA", ALERTS).await;
    let [(mut a, _), (mut b, port_b)] = active_and_standby(&world).await;
    let logs_b = support::Logs::collect(&mut b);
    let status = world.cli(&["status"]);
    let status = String::from_utf8_lossy(&status.stdout).into_owned();

    // Act: A dies in the middle, its emails in flight unanswered.
    world.smtp.wait_for(300, STREAM_WAIT).await;
    let held = world.smtp.hold_in_flight().await;
    assert!(held > 0, "emails are in flight at the kill");
    every_accepted_email_recorded(&world).await;
    signal(&a, "KILL");
    wait_exit(&mut a, STREAM_WAIT).await;
    world.smtp.drop_held();
    let before = world.smtp.mails().len();
    let took_over = wait_for_role(port_b, "active").await;

    // Assert: B took over and finished the stream; each alert once.
    let all = world.smtp.wait_for(ALERTS, STREAM_WAIT).await;
    let left = world.wait_for_depth(&world.queue, 0, STREAM_WAIT).await;
    assert_eq!(left, 0, "B's logs:\n{}", logs_b.all());
    let after = world
        .smtp
        .wait_for(ALERTS + 1, Duration::from_secs(2))
        .await;
    signal(&b, "TERM");
    wait_exit(&mut b, STREAM_WAIT).await;
    assert!(
        status.contains("active: relais on ")
            && status.contains("any other relais of this queue is standby"),
        "{status}"
    );
    assert_eq!(took_over, "active");
    assert!(
        before < ALERTS,
        "B had alerts left to send ({before} sent by A)"
    );
    let (per_alert, twice) = twice(&after);
    assert_eq!(all.len(), ALERTS);
    assert!(twice.is_empty(), "emailed twice: {twice:?}");
    assert_eq!((after.len(), per_alert.len()), (ALERTS, ALERTS));
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    world.cleanup().await;
}

#[tokio::test]
async fn the_standby_takes_over_from_a_frozen_active_relais_which_resumes_as_standby() {
    // Arrange: 1,000 alerts, relais A active, relais B standby.
    let world = World::on_postgres(REGISTRY).await;
    world.smtp.set_latency(Duration::from_millis(5));
    world.publish_stream("SOS75-FZ", ALERTS).await;
    let [(mut a, port_a), (mut b, port_b)] = active_and_standby(&world).await;
    let logs_a = support::Logs::collect(&mut a);
    let logs_b = support::Logs::collect(&mut b);

    // Act: A freezes in the middle, its emails in flight unanswered (the
    // mail server then drops them, as it does a client gone silent); once
    // B is done, A resumes.
    world.smtp.wait_for(300, STREAM_WAIT).await;
    let held = world.smtp.hold_in_flight().await;
    assert!(held > 0, "emails are in flight at the freeze");
    every_accepted_email_recorded(&world).await;
    signal(&a, "STOP");
    world.smtp.drop_held();
    let before = world.smtp.mails().len();
    let all = world.smtp.wait_for(ALERTS, TAKEOVER).await;
    let took_over = wait_for_role(port_b, "active").await;
    signal(&a, "CONT");
    let resumed = wait_for_role(port_a, "standby").await;
    let left = world.wait_for_depth(&world.queue, 0, STREAM_WAIT).await;
    let after = world
        .smtp
        .wait_for(ALERTS + 1, Duration::from_secs(2))
        .await;
    for relais in [&a, &b] {
        signal(relais, "TERM");
    }
    wait_exit(&mut a, STREAM_WAIT).await;
    wait_exit(&mut b, STREAM_WAIT).await;

    // Assert: B finished the stream in time; A resumed as standby and sent
    // nothing more; each alert once.
    assert!(
        before < ALERTS,
        "B had alerts left to send ({before} sent by A)"
    );
    assert_eq!(all.len(), ALERTS, "B's logs:\n{}", logs_b.all());
    assert_eq!(
        (took_over.as_str(), resumed.as_str()),
        ("active", "standby")
    );
    assert_eq!(left, 0);
    assert_eq!(
        logs_a.count("another relais took the lease of this queue: stopping consuming"),
        1,
        "A's logs:\n{}",
        logs_a.all()
    );
    let (per_alert, twice) = twice(&after);
    assert!(twice.is_empty(), "emailed twice: {twice:?}");
    assert_eq!((after.len(), per_alert.len()), (ALERTS, ALERTS));
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    world.cleanup().await;
}

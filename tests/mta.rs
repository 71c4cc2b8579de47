//! relais against real mail servers: a private Postfix 3.7 and a private
//! Exim 4.96 from Debian's packages, on loopback ports (see
//! `relais_testkit::mta`; they need root). What the in-process server of
//! `tests/smtp.rs` shows by fault injection, these show for the truth: one
//! copy through a slow content filter, a strict relay's EHLO rule, an
//! access table, STARTTLS, a restart, QUIT at the end of every session.
//!
//! The tests of this binary run one at a time: some stop a server, and each
//! reads the server's log from where it was when the test began.

use relais_testkit as support;

use std::time::Duration;

use relais::alert::AlertId;
use support::mta::{self, Mta};
use support::{WAIT, World, alert, registry_of, unique};
use tokio::sync::{Mutex, MutexGuard};

/// One test at a time.
async fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::const_new(());
    SERIAL.lock().await
}

/// `count` référents of network ccas for commune 75113, each with its own
/// address at a domain of this test, as (id, address).
fn referents(count: usize) -> Vec<(String, String)> {
    let domain = format!("{}.test", unique("mta"));
    (1..=count)
        .map(|n| (format!("ccas-{n:02}"), format!("agent{n:02}@{domain}")))
        .collect()
}

/// A world whose relais sends to `port` of the server, with the time limits
/// of a deployment (a step of 10 s, the end of a message 10 min) and `env`.
async fn world(registry: &str, port: u16, env: &[(&str, &str)]) -> World {
    let port = port.to_string();
    let mut all = vec![
        ("RELAIS__SMTP__PORT", port.as_str()),
        ("RELAIS__SMTP__TIMEOUT", "10s"),
        ("RELAIS__SMTP__FINAL_REPLY_TIMEOUT", "10m"),
    ];
    all.extend_from_slice(env);
    World::with_env(registry, &all).await
}

async fn publish(world: &World, id: &str) {
    world
        .publish(
            "orientation_sociale",
            &alert(id, "orientation_sociale", "75113"),
        )
        .await;
}

/// A header's value in a raw message.
fn header(mail: &[u8], name: &str) -> Option<String> {
    let parsed = mail_parser::MessageParser::default().parse(mail)?;
    parsed.header_raw(name).map(|value| value.trim().to_owned())
}

/// Postfix's log lines since `mark` for one service (`postfix/<service>`):
/// every session relais opened ended with QUIT, none was lost.
async fn assert_every_postfix_session_quit(postfix: &Mta, mark: u64, service: &str) {
    let tag = format!(" postfix/{service}/smtpd[");
    let mut log = String::new();
    for _ in 0..40 {
        log = postfix.log_since(mark);
        let lines: Vec<&str> = log.lines().filter(|line| line.contains(&tag)).collect();
        let connects = lines
            .iter()
            .filter(|l| l.contains(" connect from "))
            .count();
        let quits = lines
            .iter()
            .filter(|l| l.contains(" disconnect from ") && l.contains(" quit=1 "))
            .count();
        if connects > 0 && connects == quits {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines: Vec<&str> = log.lines().filter(|line| line.contains(&tag)).collect();
    let connects = lines
        .iter()
        .filter(|l| l.contains(" connect from "))
        .count();
    let disconnects: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains(" disconnect from "))
        .collect();
    assert!(connects > 0, "no session in the log:\n{log}");
    assert_eq!(disconnects.len(), connects, "sessions not ended:\n{log}");
    assert!(
        disconnects.iter().all(|line| line.contains(" quit=1 ")),
        "a session ended without QUIT:\n{log}"
    );
    assert!(
        !lines.iter().any(|line| line.contains("lost connection")),
        "a lost connection:\n{log}"
    );
}

#[tokio::test]
async fn postfix_receives_each_email_once_pipelined_and_chunked_and_every_session_ends_with_quit() {
    let _one_at_a_time = serial().await;
    let postfix = mta::postfix();
    let mark = postfix.log_mark();
    let referents = referents(2);
    let world = world(&registry_of(&referents), postfix.port("PORT_PLAIN"), &[]).await;
    let app = world.spawn();

    // Act: three alerts, two référents each.
    for n in 1..=3 {
        publish(&world, &format!("SOS75-PF{n}")).await;
    }

    // Assert: each référent has each alert once, with relais's headers.
    for (id, address) in &referents {
        let mails = postfix.wait_for(address, 3, WAIT).await;
        assert_eq!(mails.len(), 3, "{address}");
        let mut alerts: Vec<String> = mails
            .iter()
            .map(|mail| header(mail, "X-Relais-Alert-Id").unwrap())
            .collect();
        alerts.sort();
        assert_eq!(alerts, ["SOS75-PF1", "SOS75-PF2", "SOS75-PF3"]);
        assert!(
            mails
                .iter()
                .all(|mail| header(mail, "X-Relais-Referent").as_deref() == Some(id)),
        );
    }
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    app.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (_, address) in &referents {
        assert_eq!(postfix.mails(address).len(), 3, "{address}: no more");
    }
    assert_every_postfix_session_quit(postfix, mark, "plain").await;
    world.cleanup().await;
}

#[tokio::test]
async fn postfix_requiring_starttls_receives_over_tls_from_the_authority_in_ca_file() {
    let _one_at_a_time = serial().await;
    let postfix = mta::postfix();
    let mark = postfix.log_mark();
    let referents = referents(1);
    let ca_file = postfix.ca_file();
    let world = world(
        &registry_of(&referents),
        postfix.port("PORT_TLS_REQUIRED"),
        &[
            ("RELAIS__SMTP__HOST", "localhost"),
            ("RELAIS__SMTP__TLS", "required"),
            ("RELAIS__SMTP__CA_FILE", ca_file.to_str().unwrap()),
        ],
    )
    .await;
    let app = world.spawn();

    publish(&world, "SOS75-TLS").await;

    let mails = postfix.wait_for(&referents[0].1, 1, WAIT).await;
    assert_eq!(mails.len(), 1);
    app.stop().await;
    let log = postfix.log_since(mark);
    assert!(
        log.lines().any(
            |l| l.contains("postfix/tlsreq/smtpd[") && l.contains("TLS connection established")
        ),
        "{log}"
    );
    assert_every_postfix_session_quit(postfix, mark, "tlsreq").await;
    world.cleanup().await;
}

#[tokio::test]
async fn a_relay_that_rejects_non_fqdn_helo_names_accepts_relais_with_or_without_smtp_helo_name() {
    let _one_at_a_time = serial().await;
    let postfix = mta::postfix();
    for (helo, id) in [
        (Some("relais.sos-medecins.test"), "SOS75-HELO1"),
        (None, "SOS75-HELO2"),
    ] {
        let mark = postfix.log_mark();
        let referents = referents(1);
        let env: Vec<(&str, &str)> = helo
            .map(|name| ("RELAIS__SMTP__HELO_NAME", name))
            .into_iter()
            .collect();
        let world = world(
            &registry_of(&referents),
            postfix.port("PORT_HELO_STRICT"),
            &env,
        )
        .await;
        let app = world.spawn();

        publish(&world, id).await;

        let mails = postfix.wait_for(&referents[0].1, 1, WAIT).await;
        assert_eq!(mails.len(), 1, "EHLO {helo:?}");
        assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
        app.stop().await;
        assert_eq!(world.broker.depth(&world.dead()).await, 0);
        let log = postfix.log_since(mark);
        assert!(!log.contains("need fully-qualified hostname"), "{log}");
        world.cleanup().await;
    }
}

#[tokio::test]
async fn a_recipient_refused_by_an_access_table_is_rejected_and_the_others_emailed_once() {
    let _one_at_a_time = serial().await;
    let postfix = mta::postfix();
    let mark = postfix.log_mark();
    let mut referents = referents(2);
    referents[0].1 = "refused@example.org".to_owned();
    let world = world(&registry_of(&referents), postfix.port("PORT_ACCESS"), &[]).await;
    let app = world.spawn();

    publish(&world, "SOS75-ACCESS").await;

    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    app.stop().await;
    assert_eq!(postfix.mails(&referents[1].1).len(), 1);
    assert_eq!(postfix.mails("refused@example.org").len(), 0);
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(
        dead[0].header("x-relais-reason").as_deref(),
        Some("rejected")
    );
    let error = dead[0].header("x-relais-error").unwrap();
    assert!(
        error.contains("RCPT TO") && error.contains("554 5.7.1"),
        "{error}"
    );
    assert_every_postfix_session_quit(postfix, mark, "access").await;
    world.cleanup().await;
}

#[tokio::test]
async fn a_content_filter_that_answers_after_12_s_gets_exactly_one_copy() {
    let _one_at_a_time = serial().await;
    let postfix = mta::postfix();
    let mark = postfix.log_mark();
    let referents = referents(1);
    // A step limit of 10 s, the old whole-exchange budget: the 12 s reply
    // to the end of the message is within smtp.final_reply_timeout.
    let world = world(
        &registry_of(&referents),
        postfix.port("PORT_DELAY_LONG"),
        &[],
    )
    .await;
    let app = world.spawn();

    publish(&world, "SOS75-FILTER").await;

    let mails = postfix.wait_for(&referents[0].1, 1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    app.stop().await;
    assert_eq!(postfix.mails(&referents[0].1).len(), 1, "exactly one copy");
    let audit = world
        .audit()
        .await
        .alert(&AlertId::parse("SOS75-FILTER").unwrap())
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    assert_every_postfix_session_quit(postfix, mark, "delaylong").await;
    world.cleanup().await;
}

#[tokio::test]
async fn fifteen_referents_behind_two_connections_and_a_slow_filter_get_exactly_fifteen_emails() {
    let _one_at_a_time = serial().await;
    let postfix = mta::postfix();
    let mark = postfix.log_mark();
    let referents = referents(15);
    let world = world(
        &registry_of(&referents),
        postfix.port("PORT_DELAY_SHORT"),
        &[("RELAIS__SMTP__POOL_SIZE", "2")],
    )
    .await;
    let app = world.spawn();

    publish(&world, "SOS75-FIFTEEN").await;

    assert_eq!(
        world
            .wait_for_depth(&world.queue, 0, Duration::from_secs(60))
            .await,
        0
    );
    for (_, address) in &referents {
        postfix.wait_for(address, 1, WAIT).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    app.stop().await;
    let counts: Vec<usize> = referents
        .iter()
        .map(|(_, address)| postfix.mails(address).len())
        .collect();
    assert_eq!(counts, vec![1; 15], "each référent exactly once");
    assert_every_postfix_session_quit(postfix, mark, "delayshort").await;
    world.cleanup().await;
}

#[tokio::test]
/// `postfix stop` ends its smtpd processes where they are: a message
/// Postfix had queued whose `250` never left (RFC 1047) is sent again by
/// relais, the same email with the same Message-ID, which is the one
/// repeat relais allows itself (docs/operations.md, "At most once"). So:
/// every alert arrives, and any second copy is that same email.
async fn postfix_stopped_and_started_in_the_middle_of_100_alerts_receives_each_and_repeats_only_unanswered_emails()
 {
    let _one_at_a_time = serial().await;
    let postfix = mta::postfix();
    let referents = referents(1);
    let address = &referents[0].1;
    let world = world(&registry_of(&referents), postfix.port("PORT_PLAIN"), &[]).await;
    // Longer than Postfix's restart, so that no alert walks the whole ladder.
    world.set_retry_delays(&["1s", "2s", "4s", "8s"]);
    let app = world.spawn();

    // Act: 100 alerts; Postfix stops once a third are in, and starts again.
    for n in 1..=100 {
        publish(&world, &format!("SOS75-R{n:03}")).await;
    }
    postfix.wait_for(address, 30, WAIT).await;
    postfix.ctl("stop");
    tokio::time::sleep(Duration::from_secs(2)).await;
    postfix.ctl("start");

    // Assert: every alert once, nothing left in any queue.
    let mails = postfix
        .wait_for(address, 100, Duration::from_secs(90))
        .await;
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    app.stop().await;
    let mut copies: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for mail in postfix.mails(address) {
        copies
            .entry(header(&mail, "X-Relais-Alert-Id").unwrap())
            .or_default()
            .push(header(&mail, "Message-ID").unwrap());
    }
    let expected: Vec<String> = (1..=100).map(|n| format!("SOS75-R{n:03}")).collect();
    assert!(mails.len() >= 100);
    assert_eq!(
        copies.keys().cloned().collect::<Vec<_>>(),
        expected,
        "every alert arrived"
    );
    for (alert, ids) in &copies {
        assert!(
            ids.iter().all(|id| *id == ids[0]),
            "{alert}: a second copy is the same email resent, never another: {ids:?}"
        );
    }
    for queue in [&world.dead()] {
        assert_eq!(world.broker.depth(queue).await, 0, "{queue}");
    }
    world.cleanup().await;
}

/// The Exim log's lines since `mark`: every session ended by relais's QUIT.
fn assert_every_exim_session_quit(exim: &Mta, mark: u64) {
    let log = exim.log_since(mark);
    let sessions = log
        .lines()
        .filter(|l| l.contains("SMTP connection from") && l.contains("connection count"))
        .count();
    let quits = log.lines().filter(|l| l.contains("closed by QUIT")).count();
    assert!(sessions > 0, "no session in the log:\n{log}");
    assert_eq!(quits, sessions, "a session ended without QUIT:\n{log}");
    assert!(!log.contains(" lost"), "{log}");
    assert!(!log.contains("non-properly terminated"), "{log}");
}

#[tokio::test]
async fn exim_with_chunking_pipelining_and_smtputf8_receives_each_email_once() {
    let _one_at_a_time = serial().await;
    let exim = mta::exim();
    let mark = exim.log_mark();
    let mut referents = referents(2);
    let domain = referents[1].1.split_once('@').unwrap().1.to_owned();
    referents[1].1 = format!("éloïse@{domain}");
    let world = world(&registry_of(&referents), exim.port("PORT_PLAIN"), &[]).await;
    let app = world.spawn();

    for n in 1..=2 {
        publish(&world, &format!("SOS75-EX{n}")).await;
    }

    for (_, address) in &referents {
        assert_eq!(exim.wait_for(address, 2, WAIT).await.len(), 2, "{address}");
    }
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    app.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (_, address) in &referents {
        assert_eq!(exim.mails(address).len(), 2, "{address}: no more");
    }
    // Exim's "<=" lines: `L` pipelined, `K` CHUNKING (BDAT), and the
    // protocol `utf8esmtp` for the SMTPUTF8 mailbox.
    let log = exim.log_since(mark);
    let received: Vec<&str> = log.lines().filter(|l| l.contains(" <= ")).collect();
    assert_eq!(received.len(), 4, "{log}");
    assert!(
        received
            .iter()
            .all(|l| l.contains(" L") && l.contains(" K ")),
        "{log}"
    );
    let utf8: Vec<&&str> = received
        .iter()
        .filter(|l| l.contains(" P=utf8esmtp "))
        .collect();
    assert_eq!(utf8.len(), 2, "{log}");
    assert!(utf8.iter().all(|l| l.contains(" for éloïse@")), "{log}");
    assert_every_exim_session_quit(exim, mark);
    world.cleanup().await;
}

#[tokio::test]
async fn exim_requiring_starttls_sees_every_tls_session_closed_properly() {
    let _one_at_a_time = serial().await;
    let exim = mta::exim();
    let mark = exim.log_mark();
    let referents = referents(1);
    let ca_file = exim.ca_file();
    let world = world(
        &registry_of(&referents),
        exim.port("PORT_TLS_REQUIRED"),
        &[
            ("RELAIS__SMTP__HOST", "localhost"),
            ("RELAIS__SMTP__TLS", "required"),
            ("RELAIS__SMTP__CA_FILE", ca_file.to_str().unwrap()),
        ],
    )
    .await;
    let app = world.spawn();

    publish(&world, "SOS75-EXTLS").await;

    assert_eq!(exim.wait_for(&referents[0].1, 1, WAIT).await.len(), 1);
    app.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_every_exim_session_quit(exim, mark);
    world.cleanup().await;
}

#[tokio::test]
async fn a_connection_exim_closed_for_idleness_is_replaced_and_nothing_is_lost() {
    let _one_at_a_time = serial().await;
    let exim = mta::exim();
    let referents = referents(1);
    let address = &referents[0].1;
    let world = world(&registry_of(&referents), exim.port("PORT_IDLE"), &[]).await;
    let app = world.spawn();

    // Act: one alert; the pooled connection then idles past Exim's 3 s
    // limit, and Exim closes it; then a second alert.
    publish(&world, "SOS75-IDLE1").await;
    assert_eq!(exim.wait_for(address, 1, WAIT).await.len(), 1);
    tokio::time::sleep(Duration::from_secs(5)).await;
    publish(&world, "SOS75-IDLE2").await;

    // Assert: both delivered once, nothing retried or dead-lettered.
    let mails = exim.wait_for(address, 2, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    app.stop().await;
    assert_eq!(mails.len(), 2);
    let mut alerts: Vec<String> = mails
        .iter()
        .map(|mail| header(mail, "X-Relais-Alert-Id").unwrap())
        .collect();
    alerts.sort();
    assert_eq!(alerts, ["SOS75-IDLE1", "SOS75-IDLE2"]);
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    world.cleanup().await;
}

/// Two offices whose mailboxes are gone, each with a deputy: one behind
/// this Postfix (its local delivery says "no such user"), one behind a
/// relay that accepts, then meets a next hop that refuses.
fn bouncing_registry(domain: &str) -> String {
    format!(
        r#"
[[route]]
kind = "orientation_sociale"
networks = ["ccas"]
label = "Orientation sociale"

[[referent]]
id = "ccas-gone"
network = "ccas"
organisation = "CCAS de Paris 13e"
email = "closed@{domain}"
communes = ["75113"]
deputies = ["ccas-gone-deputy"]

[[referent]]
id = "ccas-gone-deputy"
network = "ccas"
email = "deputy@{domain}"
communes = ["75116"]

[[referent]]
id = "ccas-relayed"
network = "ccas"
organisation = "CCAS de Paris 14e"
email = "closed@relayed.test"
communes = ["75114"]
deputies = ["ccas-relayed-deputy"]

[[referent]]
id = "ccas-relayed-deputy"
network = "ccas"
email = "deputy-relayed@{domain}"
communes = ["75116"]
"#
    )
}

#[tokio::test]
async fn postfix_bounces_a_closed_mailbox_and_a_failure_after_its_250_back_to_relais_and_the_deputies_have_the_alerts()
 {
    let _one_at_a_time = serial().await;
    let postfix = mta::postfix();
    let mark = postfix.log_mark();
    let domain = format!("{}.test", unique("bounce"));
    let port = postfix.port("PORT_PLAIN").to_string();
    let (world, _) = World::with_ack(
        &bouncing_registry(&domain),
        support::ACK_SECRET,
        &[
            ("RELAIS__SMTP__PORT", port.as_str()),
            ("RELAIS__SMTP__TIMEOUT", "10s"),
            ("RELAIS__SMTP__BOUNCE_ADDRESS", "bounces@relais.test"),
        ],
    )
    .await;
    let app = world.spawn();
    // The pipe runs relais as another user: the store's files must exist
    // (relais opened them) before they are opened to every user.
    let db = world.dir.path().join("state/relais.db");
    let opened = tokio::time::Instant::now() + WAIT;
    while !(db.with_extension("db-wal").exists() && db.with_extension("db-shm").exists())
        && tokio::time::Instant::now() < opened
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    world.share_with_every_user();
    postfix.pipe_bounces_to(&world);

    // Act: an alert for each office; Postfix accepts both (250), then
    // bounces each back to its return path, which it pipes to relais.
    for (id, commune) in [("SOS75-GONE", "75113"), ("SOS75-RELAYED", "75114")] {
        world
            .publish(
                "orientation_sociale",
                &alert(id, "orientation_sociale", commune),
            )
            .await;
    }
    // Each bounce may wait for Postfix's next run of its queue when relais
    // answers "try again later" (its email not recorded yet).
    let deputy = postfix
        .wait_for(&format!("deputy@{domain}"), 1, Duration::from_secs(120))
        .await;
    let relayed_deputy = postfix
        .wait_for(
            &format!("deputy-relayed@{domain}"),
            1,
            Duration::from_secs(120),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    app.stop().await;

    // Assert: each deputy has its alert once, told whose mailbox refused
    // it; the closed mailboxes have nothing; the audit names each bounce
    // and its status.
    let log = postfix.log_since(mark);
    assert_eq!(deputy.len(), 1, "Postfix's log:\n{log}");
    assert_eq!(relayed_deputy.len(), 1, "Postfix's log:\n{log}");
    assert_eq!(
        header(&deputy[0], "X-Relais-Alert-Id").as_deref(),
        Some("SOS75-GONE")
    );
    assert_eq!(
        header(&relayed_deputy[0], "X-Relais-Alert-Id").as_deref(),
        Some("SOS75-RELAYED")
    );
    let told = String::from_utf8_lossy(&deputy[0]).replace("=\r\n", "");
    assert!(told.contains("Adresse refus"), "{told}");
    assert!(postfix.mails(&format!("closed@{domain}")).is_empty());
    assert_eq!(postfix.mails(&format!("deputy@{domain}")).len(), 1, "once");
    for (id, referent, status) in [
        ("SOS75-GONE", "ccas-gone", "5.1.1"),
        ("SOS75-RELAYED", "ccas-relayed", "5.1.1"),
    ] {
        let audit = world.cli(&["audit", "--alert", id]);
        let lines: Vec<String> = support::text(&audit.stdout)
            .lines()
            .filter(|line| line.contains("\tbounced "))
            .map(|line| line.split('\t').skip(1).collect::<Vec<_>>().join("\t"))
            .collect();
        assert_eq!(lines.len(), 1, "{id}: {lines:?}");
        assert!(
            lines[0].starts_with(&format!(
                "{id}\t{referent}\tbounced failed {status}, sent on "
            )),
            "{lines:?}"
        );
    }
    world.cleanup().await;
}

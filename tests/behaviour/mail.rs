//! SMTP as real mail servers expect it, against the in-process test server
//! (which can be slow, refuse, or go quiet on demand): a time limit per
//! step and never for a queue, QUIT and RSET, the EHLO name, and
//! internationalised addresses. `tests/mta.rs` runs the same against
//! Postfix and Exim.
//!
//! And how each email goes on the wire: one write to a server offering
//! PIPELINING and CHUNKING, the envelope pipelined then `DATA` without
//! CHUNKING, one command at a time without PIPELINING; SMTP AUTH over
//! STARTTLS to a server that requires it, and a wrong password that keeps
//! the alert and is never shown.

use relais_testkit as support;

use std::time::Duration;

use relais::alert::AlertId;
use support::smtp::{SmtpServer, TlsMode};
use support::{REGISTRY, TestCa, WAIT, World, alert, registry_of};

/// A registry where commune 75113 has `count` référents.
fn registry_of_size(count: usize) -> String {
    let referents: Vec<(String, String)> = (1..=count)
        .map(|n| {
            (
                format!("ccas-13-{n:02}"),
                format!("agent{n:02}@ccas-paris13.test"),
            )
        })
        .collect();
    registry_of(&referents)
}

#[tokio::test]
async fn a_slow_reply_to_the_end_of_the_message_is_waited_for_and_the_email_sent_once() {
    // Arrange: a server that takes 1.5 s to answer the end of each message
    // (a content filter), longer than the step time limit of 1 s.
    let smtp = SmtpServer::start().await;
    smtp.set_latency(Duration::from_millis(1500));
    let world = World::with_server(
        REGISTRY,
        smtp,
        &[
            ("RELAIS__SMTP__TIMEOUT", "1s"),
            ("RELAIS__SMTP__FINAL_REPLY_TIMEOUT", "10s"),
        ],
    )
    .await;
    let app = world.spawn();

    // Act
    world.publish_one("SOS75-SLOW").await;

    // Assert: one email, one transaction, recorded once.
    let mails = world.smtp.wait_for(1, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    app.stop().await;
    assert_eq!(mails.len(), 1);
    assert_eq!(world.smtp.mails().len(), 1, "sent once");
    assert_eq!(world.smtp.attempts(), 1, "one transaction");
    let audit = world
        .audit()
        .await
        .alert(&AlertId::parse("SOS75-SLOW").unwrap())
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    world.cleanup().await;
}

#[tokio::test]
async fn waiting_for_a_connection_of_the_pool_never_counts_against_a_time_limit() {
    // Arrange: 15 référents, 2 connections, 1.5 s per email: the last
    // emails wait about 10 s for a connection, far past the 2 s step limit.
    let smtp = SmtpServer::start().await;
    smtp.set_latency(Duration::from_millis(1500));
    let world = World::with_server(
        &registry_of_size(15),
        smtp,
        &[
            ("RELAIS__SMTP__POOL_SIZE", "2"),
            ("RELAIS__SMTP__FINAL_REPLY_TIMEOUT", "10s"),
        ],
    )
    .await;
    let app = world.spawn();

    // Act
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-POOL", "orientation_sociale", "75113"),
        )
        .await;

    // Assert: each référent exactly once.
    let mails = world.smtp.wait_for(15, Duration::from_secs(60)).await;
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    app.stop().await;
    assert_eq!(mails.len(), 15);
    let mut referents: Vec<String> = world.smtp.mails().iter().map(|m| m.referent()).collect();
    referents.sort();
    let expected: Vec<String> = (1..=15).map(|n| format!("ccas-13-{n:02}")).collect();
    assert_eq!(referents, expected, "each référent exactly once");
    assert_eq!(world.smtp.attempts(), 15);
    world.cleanup().await;
}

#[tokio::test]
async fn every_connection_relais_opened_ends_with_quit_when_it_stops() {
    let world = World::new(REGISTRY).await;
    let app = world.spawn();

    // Act: three alerts, then a stop.
    for n in 1..=3 {
        world.publish_one(&format!("SOS75-Q{n}")).await;
    }
    world.smtp.wait_for(3, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    app.stop().await;

    // Assert: as many QUITs as sessions.
    let (sessions, quits) = world.smtp.sessions();
    assert!(sessions >= 1);
    assert_eq!(quits, sessions, "every session ended with QUIT");
    world.cleanup().await;
}

#[tokio::test]
async fn a_refused_recipient_ends_the_transaction_with_rset_and_keeps_the_connection() {
    // Arrange: one connection; one of the two référents of 75113 refused.
    let smtp = SmtpServer::start().await;
    smtp.refuse_recipient("accueil@ccas-paris13.test", 550, "5.1.1 mailbox unknown");
    let world = World::with_server(REGISTRY, smtp, &[("RELAIS__SMTP__POOL_SIZE", "1")]).await;
    let app = world.spawn();

    // Act
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-RSET", "orientation_sociale", "75113"),
        )
        .await;

    // Assert: dead-lettered as rejected, the other référent emailed, all on
    // the one connection, the refused transaction reset.
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    app.stop().await;
    let mails = world.smtp.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].referent(), "ccas-paris-13");
    assert_eq!(world.smtp.resets(), 1);
    assert_eq!(
        world.smtp.sessions(),
        (1, 1),
        "one session, ended with QUIT"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn a_refusal_followed_by_a_closed_connection_is_still_a_refusal() {
    // Arrange: a server that closes the connection after refusing.
    let smtp = SmtpServer::start().await;
    smtp.refuse_recipient("social@paris.test", 550, "5.7.1 relay denied");
    smtp.close_after_refusal();
    let world = World::with_server(REGISTRY, smtp, &[]).await;
    let app = world.spawn();

    // Act
    world.publish_one("SOS75-CLOSED").await;

    // Assert: rejected at once (not retried as a network error).
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    app.stop().await;
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(
        dead[0].header("x-relais-reason").as_deref(),
        Some("rejected")
    );
    let error = dead[0].header("x-relais-error").unwrap();
    assert!(error.contains("550 5.7.1 relay denied"), "{error}");
    assert_eq!(dead[0].header("x-relais-attempts").as_deref(), Some("1"));
    world.cleanup().await;
}

#[tokio::test]
async fn relais_gives_the_ehlo_name_of_its_settings() {
    let world = World::with_env(
        REGISTRY,
        &[("RELAIS__SMTP__HELO_NAME", "relais.sos-medecins.test")],
    )
    .await;
    let app = world.spawn();

    world.publish_one("SOS75-HELO").await;

    world.smtp.wait_for(1, WAIT).await;
    app.stop().await;
    let hellos = world.smtp.hellos();
    assert!(!hellos.is_empty());
    assert!(
        hellos.iter().all(|name| name == "relais.sos-medecins.test"),
        "{hellos:?}"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn without_a_setting_the_ehlo_name_is_qualified_or_an_address_literal() {
    let world = World::new(REGISTRY).await;
    let app = world.spawn();

    world.publish_one("SOS75-HELO2").await;

    world.smtp.wait_for(1, WAIT).await;
    app.stop().await;
    let hellos = world.smtp.hellos();
    assert!(!hellos.is_empty());
    for name in &hellos {
        assert!(
            name == "[127.0.0.1]" || (name.contains('.') && !name.starts_with('[')),
            "EHLO {name}: neither a qualified name nor this end's address literal"
        );
    }
    world.cleanup().await;
}

/// A registry with an internationalised domain and an internationalised
/// local part for commune 75113.
const IDN_REGISTRY: &str = r#"
[[route]]
kind = "orientation_sociale"
networks = ["ccas"]
label = "Orientation sociale"

[[referent]]
id = "ccas-evry"
network = "ccas"
email = "agent@mairie-évry.test"
communes = ["75113"]

[[referent]]
id = "ccas-accents"
network = "ccas"
email = "éloïse@mairie-évry.test"
communes = ["75113"]
"#;

#[tokio::test]
async fn without_smtputf8_a_domain_goes_in_ascii_and_a_non_ascii_mailbox_is_rejected_at_once() {
    // Arrange: a server without SMTPUTF8.
    let smtp = SmtpServer::start().await;
    smtp.without_smtputf8();
    let world = World::with_server(IDN_REGISTRY, smtp, &[]).await;
    let app = world.spawn();

    // Act
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-IDN", "orientation_sociale", "75113"),
        )
        .await;

    // Assert: the ASCII-local-part référent emailed at the ASCII form of
    // its domain; the other rejected at once, naming SMTPUTF8.
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    app.stop().await;
    let mails = world.smtp.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["agent@xn--mairie-vry-h7a.test"]);
    assert!(
        world
            .smtp
            .envelopes()
            .iter()
            .all(|command| command.is_ascii() && !command.contains("SMTPUTF8")),
        "{:?}",
        world.smtp.envelopes()
    );
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(
        dead[0].header("x-relais-reason").as_deref(),
        Some("rejected")
    );
    assert_eq!(dead[0].header("x-relais-attempts").as_deref(), Some("1"));
    let error = dead[0].header("x-relais-error").unwrap();
    assert!(error.contains("SMTPUTF8"), "{error}");
    world.cleanup().await;
}

#[tokio::test]
async fn with_smtputf8_a_non_ascii_mailbox_is_sent_with_the_smtputf8_parameter() {
    let world = World::new(IDN_REGISTRY).await;
    let app = world.spawn();

    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-UTF8", "orientation_sociale", "75113"),
        )
        .await;

    let mails = world.smtp.wait_for(2, WAIT).await;
    app.stop().await;
    let mut to: Vec<String> = mails.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        ["agent@xn--mairie-vry-h7a.test", "éloïse@mairie-évry.test"]
    );
    let utf8_mail: Vec<String> = world
        .smtp
        .envelopes()
        .into_iter()
        .filter(|command| command.starts_with("MAIL") && command.ends_with(" SMTPUTF8"))
        .collect();
    assert_eq!(utf8_mail.len(), 1, "{:?}", world.smtp.envelopes());
    world.cleanup().await;
}

/// Publishes `count` alerts for Paris 15e (one référent, `ccas-paris`),
/// with ids `<prefix>0`, `<prefix>1`, …
async fn publish_paris_15(world: &World, prefix: &str, count: usize) {
    for n in 0..count {
        let id = format!("{prefix}{n}");
        world
            .publish(
                "orientation_sociale",
                &alert(&id, "orientation_sociale", "75115"),
            )
            .await;
    }
}

#[tokio::test]
async fn each_email_is_one_write_to_a_server_offering_pipelining_and_chunking() {
    // Arrange: a server offering PIPELINING and CHUNKING (the test
    // server's default, as Postfix).
    let world = World::new(REGISTRY).await;
    let app = world.spawn();

    // Act: three alerts, one référent each.
    publish_paris_15(&world, "SOS75-P", 3).await;
    let mails = world.smtp.wait_for(3, WAIT).await;
    app.stop().await;

    // Assert: in each transaction, RCPT TO and BDAT arrived together with
    // MAIL FROM (two pipelined commands per email), the message by BDAT,
    // and every email is whole.
    assert_eq!(mails.len(), 3);
    assert_eq!(world.smtp.pipelined(), 6);
    assert_eq!(world.smtp.chunked(), 3);
    for mail in &mails {
        assert_eq!(mail.to, vec!["social@paris.test".to_owned()]);
        assert_eq!(mail.referent(), "ccas-paris");
        assert!(mail.text().contains("Référence de l'alerte : SOS75-P"));
    }
    world.cleanup().await;
}

#[tokio::test]
async fn a_server_without_pipelining_gets_one_command_at_a_time() {
    let world = World::new(REGISTRY).await;
    world.smtp.without_pipelining();
    let app = world.spawn();

    publish_paris_15(&world, "SOS75-NP", 2).await;
    let mails = world.smtp.wait_for(2, WAIT).await;
    app.stop().await;

    assert_eq!(mails.len(), 2);
    assert_eq!(world.smtp.pipelined(), 0);
    assert_eq!(world.smtp.chunked(), 0);
    let mut ids: Vec<String> = mails.iter().map(|m| m.alert_id()).collect();
    ids.sort();
    assert_eq!(ids, ["SOS75-NP0", "SOS75-NP1"]);
    world.cleanup().await;
}

#[tokio::test]
async fn a_server_without_chunking_gets_the_envelope_pipelined_then_the_message_by_data() {
    let world = World::new(REGISTRY).await;
    world.smtp.without_chunking();
    let app = world.spawn();

    publish_paris_15(&world, "SOS75-NC", 2).await;
    let mails = world.smtp.wait_for(2, WAIT).await;
    app.stop().await;

    // RCPT TO and DATA pipelined with MAIL FROM, the message after 354.
    assert_eq!(mails.len(), 2);
    assert_eq!(world.smtp.pipelined(), 4);
    assert_eq!(world.smtp.chunked(), 0);
    assert!(mails.iter().all(|m| m.text().contains("SITUATION")));
    world.cleanup().await;
}

/// A world whose relais logs in to a server speaking STARTTLS (relais
/// never sends a password in clear) as `relais-sos75` with `password`.
async fn world_with_login(password: &str) -> (World, tempfile::TempDir) {
    let ca = TestCa::new(&["localhost"]);
    let files = tempfile::tempdir().unwrap();
    let ca_file = files.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let smtp = SmtpServer::start_tls(TlsMode::StartTls(ca.acceptor.clone())).await;
    let world = World::with_server(
        REGISTRY,
        smtp,
        &[
            ("RELAIS__SMTP__USERNAME", "relais-sos75"),
            ("RELAIS__SMTP__PASSWORD", password),
            ("RELAIS__SMTP__HOST", "localhost"),
            ("RELAIS__SMTP__TLS", "required"),
            ("RELAIS__SMTP__CA_FILE", ca_file.to_str().unwrap()),
        ],
    )
    .await;
    (world, files)
}

#[tokio::test]
async fn relais_authenticates_to_a_server_that_requires_it() {
    let (world, _files) = world_with_login("correct horse").await;
    world.smtp.require_auth("relais-sos75", "correct horse");
    let app = world.spawn();

    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-AUTH", "orientation_sociale", "75115"),
        )
        .await;
    let mails = world.smtp.wait_for(1, WAIT).await;
    app.stop().await;

    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].alert_id(), "SOS75-AUTH");
    assert_eq!(world.smtp.authenticated(), ["relais-sos75"]);
    assert_eq!(world.smtp.auth_refusals(), 0);
    world.cleanup().await;
}

#[tokio::test]
async fn a_wrong_smtp_password_keeps_the_alert_and_never_shows_the_password() {
    // Arrange: the server wants another password than relais has.
    let secret = "PASSWORD-SENTINEL-7f3a";
    let (world, _files) = world_with_login(secret).await;
    world.smtp.require_auth("relais-sos75", "the right one");
    let app = world.spawn();

    // Act
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-PW", "orientation_sociale", "75115"),
        )
        .await;

    // Assert: a settings problem, not the alert's: it walks the retry
    // ladder (never `rejected`), then waits in the dead-letter queue with
    // an error that names the step and the server's reply, not the secret.
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    app.stop().await;
    assert!(world.smtp.mails().is_empty());
    assert_eq!(world.smtp.auth_refusals(), 6, "3 rounds of 2 attempts");
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(
        dead[0].header("x-relais-reason").as_deref(),
        Some("exhausted")
    );
    let error = dead[0].header("x-relais-error").unwrap();
    assert!(
        error.contains("AUTH") && error.contains("535 5.7.8"),
        "{error}"
    );
    assert!(!error.contains(secret), "{error}");
    world.cleanup().await;
}

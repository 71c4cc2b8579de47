//! SMTP under TLS, for real: a test server speaking STARTTLS or implicit
//! TLS with certificates made at test time, relais trusting their
//! authority through `smtp.ca_file`. An alert must never leave in clear
//! when TLS is required, nor to a server whose certificate does not prove
//! its name; and it is never lost for it: it waits, retried, then in the
//! dead-letter queue; meanwhile `/readyz` says why relais is not ready.
//! (Retry delays are short here: 200 ms, 400 ms.)

use relais_testkit as support;

use support::smtp::{SmtpServer, TlsMode};
use support::{REGISTRY, TestCa, WAIT, World, http_get};
use tempfile::TempDir;
use tokio_rustls::TlsAcceptor;

/// A world whose relais sends to `smtp` on `localhost` with `tls`,
/// trusting `ca` if given; it serves `/readyz` on the port returned.
async fn world(smtp: SmtpServer, tls: &str, ca: Option<&TestCa>) -> (World, TempDir, u16) {
    let files = tempfile::tempdir().unwrap();
    let ca_file = files.path().join("ca.pem");
    let port = SmtpServer::free_port().await;
    let listen = format!("127.0.0.1:{port}");
    let mut env = vec![
        ("RELAIS__SMTP__HOST", "localhost"),
        ("RELAIS__SMTP__TLS", tls),
        ("RELAIS__HTTP__LISTEN", listen.as_str()),
    ];
    if let Some(ca) = ca {
        std::fs::write(&ca_file, &ca.ca_pem).unwrap();
        env.push(("RELAIS__SMTP__CA_FILE", ca_file.to_str().unwrap()));
    }
    (World::with_server(REGISTRY, smtp, &env).await, files, port)
}

/// `/readyz`'s status and its `smtp` line.
async fn smtp_readiness(port: u16) -> (u16, String) {
    let (status, body) = http_get(port, "/readyz").await;
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    (status, body["smtp"].as_str().unwrap().to_owned())
}

/// The alert ended in the dead-letter queue as `exhausted`; its error.
async fn exhausted_error(world: &World) -> String {
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(
        dead[0].header("x-relais-reason").as_deref(),
        Some("exhausted")
    );
    dead[0].header("x-relais-error").unwrap()
}

/// One alert, sent with `smtp.tls = tls` to a server speaking TLS as
/// `mode` says with a certificate for `localhost` that `smtp.ca_file`
/// vouches for: it arrives once, over TLS, and relais stays ready.
async fn delivered_over_tls(mode: fn(TlsAcceptor) -> TlsMode, tls: &str, id: &str) {
    let ca = TestCa::new(&["localhost"]);
    let smtp = SmtpServer::start_tls(mode(ca.acceptor.clone())).await;
    let (world, _files, port) = world(smtp, tls, Some(&ca)).await;
    let app = world.spawn();

    world.publish_one(id).await;
    let mails = world.smtp.wait_for(1, WAIT).await;
    assert_eq!(smtp_readiness(port).await, (200, "ok".to_owned()));
    app.stop().await;

    assert_eq!(mails.len(), 1);
    assert!(mails[0].tls, "the message came over TLS");
    assert_eq!(mails[0].alert_id(), id);
    assert_eq!(mails[0].to, ["social@paris.test"]);
    world.cleanup().await;
}

#[tokio::test]
async fn starttls_required_delivers_over_tls_to_a_server_the_ca_file_vouches_for() {
    delivered_over_tls(TlsMode::StartTls, "required", "SOS75-TLS1").await;
}

#[tokio::test]
async fn implicit_tls_delivers_over_tls() {
    delivered_over_tls(TlsMode::Wrapper, "wrapper", "SOS75-TLS2").await;
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused_and_nothing_is_sent() {
    // The authority is trusted, but the certificate names another host.
    let ca = TestCa::new(&["mail.other.example"]);
    let smtp = SmtpServer::start_tls(TlsMode::StartTls(ca.acceptor.clone())).await;
    let (world, _files, port) = world(smtp, "required", Some(&ca)).await;
    let app = world.spawn();

    world.publish_one("SOS75-TLS3").await;
    let error = exhausted_error(&world).await;
    let (status, smtp) = smtp_readiness(port).await;
    app.stop().await;
    assert_eq!(status, 503, "{smtp}");
    assert!(smtp.contains("cannot be used as configured"), "{smtp}");

    assert!(
        error.contains("TLS handshake with localhost failed"),
        "{error}"
    );
    assert!(world.smtp.mails().is_empty());
    assert_eq!(world.smtp.attempts(), 0, "no message reached the server");
    world.cleanup().await;
}

#[tokio::test]
async fn a_private_authority_is_not_trusted_without_ca_file() {
    let ca = TestCa::new(&["localhost"]);
    let smtp = SmtpServer::start_tls(TlsMode::StartTls(ca.acceptor.clone())).await;
    let (world, _files, port) = world(smtp, "required", None).await;
    let app = world.spawn();

    world.publish_one("SOS75-TLS4").await;
    let error = exhausted_error(&world).await;
    let (status, smtp) = smtp_readiness(port).await;
    app.stop().await;
    assert_eq!(status, 503, "{smtp}");
    assert!(smtp.contains("cannot be used as configured"), "{smtp}");

    assert!(error.contains("TLS handshake"), "{error}");
    assert_eq!(world.smtp.attempts(), 0);
    world.cleanup().await;
}

#[tokio::test]
async fn tls_required_against_a_server_without_starttls_sends_nothing_in_clear() {
    let smtp = SmtpServer::start().await;
    let (world, _files, port) = world(smtp, "required", None).await;
    let app = world.spawn();

    world.publish_one("SOS75-TLS5").await;
    let error = exhausted_error(&world).await;
    let (status, smtp) = smtp_readiness(port).await;
    app.stop().await;
    assert_eq!(status, 503, "{smtp}");
    assert!(smtp.contains("cannot be used as configured"), "{smtp}");

    assert!(error.contains("does not offer STARTTLS"), "{error}");
    assert!(smtp.contains("does not offer STARTTLS"), "{smtp}");
    assert_eq!(world.smtp.attempts(), 0);
    world.cleanup().await;
}

#[tokio::test]
async fn opportunistic_tls_without_starttls_never_sends_the_password_in_clear() {
    // Arrange: a server that offers AUTH but not STARTTLS (or whose
    // STARTTLS was stripped on the way); relais has a login.
    let smtp = SmtpServer::start().await;
    smtp.require_auth("relais-sos75", "PASSWORD-SENTINEL-42c");
    let port = SmtpServer::free_port().await;
    let listen = format!("127.0.0.1:{port}");
    let world = World::with_server(
        REGISTRY,
        smtp,
        &[
            ("RELAIS__SMTP__TLS", "opportunistic"),
            ("RELAIS__SMTP__USERNAME", "relais-sos75"),
            ("RELAIS__SMTP__PASSWORD", "PASSWORD-SENTINEL-42c"),
            ("RELAIS__HTTP__LISTEN", listen.as_str()),
        ],
    )
    .await;
    let app = world.spawn();

    // Act
    world.publish_one("SOS75-CLEAR").await;

    // Assert: no AUTH at all, nothing sent, relais unready with the reason.
    let error = exhausted_error(&world).await;
    let (status, smtp) = smtp_readiness(port).await;
    app.stop().await;
    assert_eq!(status, 503, "{smtp}");
    assert!(
        smtp.contains("does not send its SMTP password in clear"),
        "{smtp}"
    );
    assert!(error.contains("not encrypted"), "{error}");
    assert!(world.smtp.authenticated().is_empty());
    assert_eq!(world.smtp.auth_refusals(), 0, "no AUTH was sent");
    assert!(world.smtp.mails().is_empty());
    world.cleanup().await;
}

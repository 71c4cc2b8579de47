//! What relais records, and where: `relais audit` lists who was emailed
//! about an alert and the day's deliveries, from the store relais wrote.
//!
//! The PostgreSQL store over TLS (`store.ca_file`), against a PostgreSQL
//! server of the test's own that accepts TLS connections only, with a
//! certificate of an authority made at test time: relais connects, creates
//! its schema and records a delivery, over TLS (PostgreSQL's `pg_stat_ssl`
//! says so); with another authority, it refuses the server's certificate.
//! Against a server that offers no TLS (what a machine in the middle would
//! answer), relais with `store.ca_file` never goes on in clear: the store
//! does not open, and the daemon stays unready, writing nothing there.

use relais_testkit as support;

use std::time::Duration;

use relais::alert::AlertId;
use relais::settings::StoreSettings;
use relais::store::{SentEmail, Store};
use secrecy::SecretString;
use support::postgres::Server;
use support::smtp::SmtpServer;
use support::{Logs, REGISTRY, TestCa, World, alert, http_get, text};

#[tokio::test]
async fn audit_lists_who_was_emailed_about_an_alert_and_the_days_deliveries() {
    let world = World::new(REGISTRY).await;
    let app = world.spawn();
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-AUD", "orientation_sociale", "75113"),
        )
        .await;
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-AUD2", "orientation_sociale", "75115"),
        )
        .await;
    world.smtp.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(
        world
            .wait_for_depth(&world.queue, 0, Duration::from_secs(20))
            .await,
        0
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.stop().await;

    let one = world.cli(&["audit", "--alert", "SOS75-AUD"]);
    assert!(one.status.success(), "{}", text(&one.stderr));
    let lines: Vec<Vec<String>> = text(&one.stdout)
        .lines()
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect();
    assert_eq!(lines.len(), 2);
    let mut who: Vec<(&str, &str, &str)> = lines
        .iter()
        .map(|l| (l[1].as_str(), l[2].as_str(), l[3].as_str()))
        .collect();
    who.sort();
    assert_eq!(
        who,
        [
            (
                "SOS75-AUD",
                "ccas-paris-13",
                "camille.martin@ccas-paris13.test"
            ),
            (
                "SOS75-AUD",
                "ccas-paris-13-accueil",
                "accueil@ccas-paris13.test"
            ),
        ]
    );
    assert!(
        lines
            .iter()
            .all(|l| l[0].starts_with("20") && l[4].starts_with("<relais.SOS75-AUD."))
    );

    let day = world.cli(&["audit", "--since", "24h"]);
    assert_eq!(text(&day.stdout).lines().count(), 3);
    let output = format!("{}{}", text(&one.stdout), text(&day.stdout));
    assert!(
        !output.contains("Jeanne Durand"),
        "no patient data in the audit"
    );

    let none = world.cli(&["audit", "--alert", "NEVER-SEEN"]);
    assert!(none.status.success());
    assert!(none.stdout.is_empty());
    assert!(text(&none.stderr).contains("no delivery recorded"));
    world.cleanup().await;
}

fn settings(port: u16, ca_file: &std::path::Path) -> StoreSettings {
    StoreSettings {
        url: Some(SecretString::from(format!(
            "postgres://postgres@localhost:{port}/postgres"
        ))),
        ca_file: Some(ca_file.to_owned()),
        ..StoreSettings::default()
    }
}

#[tokio::test]
async fn the_postgresql_store_speaks_tls_with_the_authority_of_store_ca_file_and_no_other() {
    // Arrange: a TLS-only server, the authority of its certificate, and
    // another authority.
    let ca = TestCa::new(&["localhost"]);
    let (cert, key) = ca.issue(&["localhost"], "localhost");
    let server = tokio::task::spawn_blocking(move || Server::with_tls(&cert, &key))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let trusted = dir.path().join("ca.pem");
    std::fs::write(&trusted, &ca.ca_pem).unwrap();
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, TestCa::new(&["localhost"]).ca_pem).unwrap();

    // Act
    let store = Store::open(&settings(server.port, &trusted)).await.unwrap();
    let alert = AlertId::parse("SOS75-TLS").unwrap();
    store
        .record(
            SentEmail {
                publisher: String::new(),
                alert_id: "SOS75-TLS".into(),
                referent_id: "ccas-paris".into(),
                network: Some("ccas".into()),
                email: "social@paris.test".into(),
                message_id: "<relais.SOS75-TLS.ccas-paris@sos-medecins.test>".into(),
                smtp_reply: "250 2.0.0 Ok".into(),
                delivered_at: time::OffsetDateTime::now_utc(),
                consent: Some("given:person:2026-11-22T07:10:00Z".into()),
                registry: Some("0123456789abcdef".into()),
                return_path: None,
            },
            [1; 32],
        )
        .await
        .unwrap();
    let served = store
        .served(relais::store::AlertKey {
            publisher: "",
            id: alert.as_str(),
        })
        .await
        .unwrap();
    let session = relais::store::postgres::connect(&settings(server.port, &trusted))
        .await
        .unwrap();
    let tls: bool = session
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let refused = Store::open(&settings(server.port, &other)).await;

    // Assert
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].referent_id, "ccas-paris");
    assert!(tls, "the session is TLS");
    let Err(error) = refused else {
        panic!("a server certificate of another authority was accepted");
    };
    assert!(
        error
            .to_string()
            .contains("the PostgreSQL store postgres://postgres@localhost"),
        "{error}"
    );
}

/// Whether relais created its schema on the server on `port` (read in
/// clear, by the test).
async fn schema_created(port: u16) -> bool {
    let (client, connection) = tokio_postgres::connect(
        &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    client
        .query_one("SELECT to_regclass('relais_schema') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn with_store_ca_file_the_postgresql_store_refuses_a_server_that_offers_no_tls() {
    // Arrange: a server that answers "no TLS", and an authority relais
    // would check its certificate against.
    let server = tokio::task::spawn_blocking(Server::in_clear).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, TestCa::new(&["localhost"]).ca_pem).unwrap();

    // Act
    let opened = Store::open(&settings(server.port, &ca_file)).await;
    let session = relais::store::postgres::connect(&settings(server.port, &ca_file)).await;

    // Assert
    let Err(error) = opened else {
        panic!("the store opened in clear");
    };
    assert!(error.to_string().contains("TLS"), "{error}");
    let Err(error) = session else {
        panic!("a session was opened in clear");
    };
    assert!(error.to_string().contains("TLS"), "{error}");
    assert!(!schema_created(server.port).await, "relais wrote in clear");
}

#[tokio::test]
async fn the_daemon_with_store_ca_file_stays_unready_against_a_postgresql_that_offers_no_tls() {
    // Arrange: the world's store replaced by the server without TLS.
    let server = tokio::task::spawn_blocking(Server::in_clear).await.unwrap();
    let port = SmtpServer::free_port().await;
    let listen = format!("127.0.0.1:{port}");
    let world = World::with_env(REGISTRY, &[("RELAIS__HTTP__LISTEN", listen.as_str())]).await;
    let ca_file = world.dir.path().join("db-ca.pem");
    std::fs::write(&ca_file, TestCa::new(&["localhost"]).ca_pem).unwrap();
    let text = std::fs::read_to_string(&world.config).unwrap();
    let (head, tail) = text.split_once("[store]\n").unwrap();
    let (_, rest) = tail.split_once('\n').unwrap();
    std::fs::write(
        &world.config,
        format!(
            "{head}[store]\nurl = \"postgres://postgres@localhost:{}/postgres\"\nca_file = {:?}\n{rest}",
            server.port,
            ca_file.display().to_string()
        ),
    )
    .unwrap();

    // Act
    let mut relais = world.spawn_binary();
    let logs = Logs::collect(&mut relais);
    let refused = logs
        .wait_for("cannot open the store", 2, Duration::from_secs(20))
        .await;
    let (ready, _) = http_get(port, "/readyz").await;
    let _ = relais.kill();
    let _ = relais.wait();

    // Assert
    assert!(refused, "{}", logs.all());
    assert!(logs.all().contains("TLS handshake"), "{}", logs.all());
    assert!(
        logs.all().contains("server does not support TLS"),
        "the log says why: {}",
        logs.all()
    );
    assert_ne!(ready, 200, "ready against a store in clear");
    assert!(!schema_created(server.port).await, "relais wrote in clear");
    world.cleanup().await;
}

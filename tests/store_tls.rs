//! The PostgreSQL store over TLS (`store.ca_file`), against a PostgreSQL
//! server of the test's own that accepts TLS connections only, with a
//! certificate of an authority made at test time: relais connects, creates
//! its schema and records a delivery, over TLS (PostgreSQL's `pg_stat_ssl`
//! says so); with another authority, it refuses the server's certificate.

use relais_testkit as support;

use relais::alert::AlertId;
use relais::settings::StoreSettings;
use relais::store::{SentEmail, Store};
use secrecy::SecretString;
use support::TestCa;
use support::postgres::TlsServer;

fn settings(port: u16, ca_file: &std::path::Path) -> StoreSettings {
    StoreSettings {
        url: Some(SecretString::from(format!(
            "postgres://postgres@localhost:{port}/postgres?sslmode=require"
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
    let server = tokio::task::spawn_blocking(move || TlsServer::start(&cert, &key))
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
                alert_id: "SOS75-TLS".into(),
                referent_id: "ccas-paris".into(),
                network: Some("ccas".into()),
                email: "social@paris.test".into(),
                message_id: "<relais.SOS75-TLS.ccas-paris@sos-medecins.test>".into(),
                smtp_reply: "250 2.0.0 Ok".into(),
                delivered_at: time::OffsetDateTime::now_utc(),
            },
            [1; 32],
        )
        .await
        .unwrap();
    let served = store.served(&alert).await.unwrap();
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

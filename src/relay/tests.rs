//! The relay's decision, without a broker: each test builds a relay that
//! writes its emails as `.eml` files and keeps its store in a temporary
//! folder, hands it a message body, and reads the [`Outcome`] back.

use std::path::{Path, PathBuf};

use super::*;
use crate::alert::AlertId;
use crate::health::Health;
use crate::mail::outbound::Outbound;
use crate::registry::Registry;
use crate::telemetry::metrics::Metrics;

const REGISTRY: &str = r#"
    [[route]]
    kind = "orientation_sociale"
    networks = ["ccas"]
    label = "Orientation sociale"

    [[referent]]
    id = "ccas-paris-13"
    network = "ccas"
    email = "camille.martin@ccas-paris13.example.org"
    communes = ["75113"]

    [[referent]]
    id = "ccas-paris"
    network = "ccas"
    email = "social@paris.example.org"
    departements = ["75"]
"#;

/// A relay writing its emails as `.eml` files in `mail/`, with its
/// store in `relais.db`, both in `dir`, requiring consent.
fn relay(dir: &Path) -> Relay {
    relay_with(dir, REGISTRY, true)
}

fn relay_with(dir: &Path, registry: &str, consent_required: bool) -> Relay {
    let registry = Registry::from_toml(registry, crate::testing::france()).unwrap();
    let events = Events::new(Arc::new(Metrics::new()));
    Relay::new(RelayParts {
        registry: crate::live_registry::shared(registry),
        renderer: Renderer::new("relais <relais@sos75.example.org>".parse().unwrap(), true)
            .unwrap(),
        mailer: Mailer::new(
            &Outbound::Files(dir.join("mail")),
            Arc::new(Health::default()),
            crate::fence::Fence::open(),
        )
        .unwrap(),
        store: Store::sqlite(&dir.join("relais.db")).unwrap(),
        retry: ImmediateRetry {
            attempts: 1,
            base: Duration::from_millis(1),
        },
        max_message_bytes: 65536,
        consent_required,
        flood: FloodGuard::new(50),
        events,
        digest_key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[7; 32]),
    })
}

fn alert(id: &str, commune: &str) -> Vec<u8> {
    alert_json(id, commune).to_string().into_bytes()
}

fn alert_json(id: &str, commune: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "kind": "orientation_sociale",
        "priority": "urgent",
        "emitted_at": "2026-11-22T08:15:00+01:00",
        "association": "SOS Médecins Paris",
        "territory": { "commune": commune },
        "summary": "Personne âgée isolée.",
        "consent": { "status": "given", "given_by": "person", "at": "2026-11-22T08:10:00+01:00" },
    })
}

/// An alert as [`alert`] makes it, without its `consent`.
fn alert_without_consent(id: &str, commune: &str) -> Vec<u8> {
    let mut alert = alert_json(id, commune);
    alert.as_object_mut().unwrap().remove("consent");
    alert.to_string().into_bytes()
}

/// The `.eml` files written so far.
fn emails(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("mail"))
        .map(|entries| entries.map(|entry| entry.unwrap().path()).collect())
        .unwrap_or_default()
}

fn recipients(dir: &Path) -> Vec<String> {
    let mut to: Vec<String> = emails(dir)
        .iter()
        .filter(|path| path.extension().is_some_and(|e| e == "eml"))
        .map(|path| {
            let raw = std::fs::read_to_string(path).unwrap();
            let line = raw.lines().find(|l| l.starts_with("To: ")).unwrap();
            line.trim_start_matches("To: ").to_owned()
        })
        .collect();
    to.sort();
    to
}

#[tokio::test]
async fn an_alert_is_emailed_to_the_most_specific_referents_of_its_territory() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay(dir.path());

    let outcome = relay
        .handle(Incoming::body(&alert("SOS75-1", "75113")))
        .await;

    assert_eq!(outcome.alert_id, Some(AlertId::parse("SOS75-1").unwrap()));
    assert_eq!(
        outcome.verdict,
        Verdict::Delivered {
            emails: 1,
            duplicates: 0
        }
    );
    assert_eq!(
        recipients(dir.path()),
        ["camille.martin@ccas-paris13.example.org"]
    );
}

#[tokio::test]
async fn the_same_alert_again_emails_nobody_and_counts_as_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay(dir.path());
    relay
        .handle(Incoming::body(&alert("SOS75-2", "75112")))
        .await;

    let again = relay
        .handle(Incoming::body(&alert("SOS75-2", "75112")))
        .await;

    assert_eq!(
        again.verdict,
        Verdict::Delivered {
            emails: 0,
            duplicates: 1
        }
    );
    assert_eq!(recipients(dir.path()), ["social@paris.example.org"]);
}

#[tokio::test]
async fn a_message_that_is_not_an_alert_is_dead_lettered_as_invalid_and_emails_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay(dir.path());

    let outcome = relay.handle(Incoming::body(b"{\"id\": \"SOS75-3\"}")).await;

    assert_eq!(outcome.alert_id, None);
    let Verdict::DeadLetter { reason, error } = outcome.verdict else {
        panic!("not dead-lettered: {outcome:?}");
    };
    assert_eq!(reason, Reason::Invalid);
    assert!(error.contains("kind"), "{error}");
    assert!(emails(dir.path()).is_empty());
}

#[tokio::test]
async fn an_alert_nobody_serves_is_dead_lettered_as_unroutable() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay(dir.path());

    let outcome = relay
        .handle(Incoming::body(&alert("SOS13-1", "13055")))
        .await;

    assert_eq!(outcome.alert_id, Some(AlertId::parse("SOS13-1").unwrap()));
    assert!(
        matches!(
            outcome.verdict,
            Verdict::DeadLetter {
                reason: Reason::Unroutable,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert!(emails(dir.path()).is_empty());
}

#[tokio::test]
async fn an_email_that_cannot_be_handed_over_is_retried_later_and_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay(dir.path());
    // The folder of emails is replaced by a file: every write fails.
    std::fs::remove_dir(dir.path().join("mail")).unwrap();
    std::fs::write(dir.path().join("mail"), "not a folder").unwrap();

    let outcome = relay
        .handle(Incoming::body(&alert("SOS75-4", "75113")))
        .await;

    let Verdict::Retry { error } = outcome.verdict else {
        panic!("not retried: {outcome:?}");
    };
    assert!(error.starts_with("cannot write the email file"), "{error}");
    let served = relay
        .store
        .served(crate::store::AlertKey {
            publisher: "",
            id: "SOS75-4",
        })
        .await
        .unwrap();
    assert!(served.is_empty(), "{served:?}");
}

#[tokio::test]
async fn another_alert_with_a_used_id_is_a_conflict_and_emails_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay(dir.path());
    relay
        .handle(Incoming::body(&alert("SOS75-5", "75113")))
        .await;

    let other = relay
        .handle(Incoming::body(&alert("SOS75-5", "75112")))
        .await;

    let Verdict::DeadLetter { reason, error } = other.verdict else {
        panic!("not dead-lettered: {other:?}");
    };
    assert_eq!(reason, Reason::Conflict);
    assert_eq!(
        error,
        "the id was already used by an alert of different content, delivered to 1 \
         référent(s); nobody was emailed: publish this alert with a new id"
    );
    assert!(other.served.is_empty(), "{:?}", other.served);
    assert_eq!(
        recipients(dir.path()),
        ["camille.martin@ccas-paris13.example.org"]
    );
}

#[tokio::test]
async fn the_same_alert_laid_out_differently_is_a_duplicate_not_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay(dir.path());
    relay
        .handle(Incoming::body(&alert("SOS75-6", "75113")))
        .await;
    let relaid = "{ \"summary\": \"Personne âgée isolée.\", \"territory\": {\"commune\": \"75113\"},\n\
          \"consent\": {\"at\": \"2026-11-22T08:10:00+01:00\", \"given_by\": \"person\", \"status\": \"given\"},\n\
          \"association\": \"SOS Médecins Paris\", \"emitted_at\": \"2026-11-22T08:15:00+01:00\",\n\
          \"priority\": \"urgent\", \"kind\": \"orientation_sociale\", \"id\": \"SOS75-6\" }";

    let again = relay.handle(Incoming::body(relaid.as_bytes())).await;

    assert_eq!(
        again.verdict,
        Verdict::Delivered {
            emails: 0,
            duplicates: 1
        }
    );
    assert_eq!(again.served, ["ccas-paris-13"]);
}

#[tokio::test]
async fn a_referent_the_message_says_was_served_is_not_emailed_again() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay(dir.path());
    let body = alert("SOS75-7", "75113");
    let served = ["ccas-paris-13".to_owned()];

    let outcome = relay
        .handle(Incoming {
            body: &body,
            publisher: None,
            served: &served,
            escalation: None,
        })
        .await;

    assert_eq!(
        outcome.verdict,
        Verdict::Delivered {
            emails: 0,
            duplicates: 1
        }
    );
    assert!(emails(dir.path()).is_empty());
}

#[tokio::test]
async fn with_publishers_declared_an_alert_from_another_user_is_forbidden() {
    let dir = tempfile::tempdir().unwrap();
    let registry = format!(
        "{REGISTRY}
        [[publisher]]
        user = \"sos75\"
        association = \"SOS Médecins Paris\"
        departements = [\"75\"]
        "
    );
    let relay = relay_with(dir.path(), &registry, true);
    let body = alert("SOS75-8", "75113");
    let from = |publisher| Incoming {
        body: &body,
        publisher,
        served: &[],
        escalation: None,
    };

    let anonymous = relay.handle(from(None)).await;
    let stranger = relay.handle(from(Some("sos13"))).await;
    let allowed = relay.handle(from(Some("sos75"))).await;

    for (outcome, error) in [
        (
            anonymous,
            "the message has no `user_id`: the registry declares its publishers, so every \
             alert must carry its publisher's RabbitMQ user in `user_id`",
        ),
        (
            stranger,
            "broker user `sos13` is not a [[publisher]] of the registry",
        ),
    ] {
        assert_eq!(
            outcome.verdict,
            Verdict::DeadLetter {
                reason: Reason::Forbidden,
                error: error.into()
            }
        );
    }
    assert_eq!(
        allowed.verdict,
        Verdict::Delivered {
            emails: 1,
            duplicates: 0
        }
    );
    assert_eq!(
        recipients(dir.path()),
        ["camille.martin@ccas-paris13.example.org"]
    );
}

#[tokio::test]
async fn a_delivery_recorded_before_the_digests_were_keyed_still_tells_a_copy_from_a_conflict() {
    // Arrange: SOS75-7 was emailed by a relais that kept unkeyed digests.
    let dir = tempfile::tempdir().unwrap();
    let body = alert("SOS75-7", "75113");
    let parsed = crate::alert::Alert::parse(&body, 65536, crate::testing::france()).unwrap();
    let earlier = Store::sqlite(&dir.path().join("relais.db")).unwrap();
    let sent = crate::store::SentEmail {
        publisher: String::new(),
        alert_id: "SOS75-7".into(),
        referent_id: "ccas-paris-13".into(),
        network: Some("ccas".into()),
        email: "camille.martin@ccas-paris13.example.org".into(),
        message_id: "<relais.SOS75-7.ccas-paris-13@sos75.example.org>".into(),
        smtp_reply: "250 2.0.0 Ok".into(),
        delivered_at: time::OffsetDateTime::now_utc(),
        consent: None,
        registry: Some("0123456789abcdef".into()),
        return_path: None,
    };
    earlier.record(sent, parsed.unkeyed_digest()).await.unwrap();
    drop(earlier);
    let relay = relay(dir.path());

    // Act
    let copy = relay.handle(Incoming::body(&body)).await;
    let other = relay
        .handle(Incoming::body(&alert("SOS75-7", "75112")))
        .await;

    // Assert
    assert_eq!(
        copy.verdict,
        Verdict::Delivered {
            emails: 0,
            duplicates: 1
        }
    );
    assert!(
        matches!(
            other.verdict,
            Verdict::DeadLetter {
                reason: Reason::Conflict,
                ..
            }
        ),
        "{other:?}"
    );
    assert!(emails(dir.path()).is_empty());
}

#[tokio::test]
async fn an_alert_without_consent_is_dead_lettered_as_invalid_and_emails_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay(dir.path());

    let outcome = relay
        .handle(Incoming::body(&alert_without_consent("SOS75-9", "75113")))
        .await;

    assert_eq!(outcome.alert_id, Some(AlertId::parse("SOS75-9").unwrap()));
    assert_eq!(
        outcome.verdict,
        Verdict::DeadLetter {
            reason: Reason::Invalid,
            error: CONSENT_REQUIRED.into()
        }
    );
    assert!(outcome.served.is_empty(), "{:?}", outcome.served);
    assert!(emails(dir.path()).is_empty());
}

#[tokio::test]
async fn an_alert_shared_without_consent_on_a_legal_basis_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay(dir.path());
    let mut body = alert_json("SOS75-10", "75113");
    body["consent"] = serde_json::json!({ "status": "not_required", "basis": "vital_interest" });

    let outcome = relay
        .handle(Incoming::body(body.to_string().as_bytes()))
        .await;

    assert_eq!(
        outcome.verdict,
        Verdict::Delivered {
            emails: 1,
            duplicates: 0
        }
    );
}

#[tokio::test]
async fn with_consent_not_required_an_alert_without_it_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_with(dir.path(), REGISTRY, false);

    let outcome = relay
        .handle(Incoming::body(&alert_without_consent("SOS75-11", "75113")))
        .await;

    assert_eq!(
        outcome.verdict,
        Verdict::Delivered {
            emails: 1,
            duplicates: 0
        }
    );
    assert_eq!(
        recipients(dir.path()),
        ["camille.martin@ccas-paris13.example.org"]
    );
}

#[tokio::test]
async fn an_escalation_step_never_refuses_its_alert_for_consent() {
    // Arrange: the timer of an alert accepted before consent was required.
    let dir = tempfile::tempdir().unwrap();
    let relay = relay(dir.path());
    let body = alert_without_consent("SOS75-12", "75113");

    // Act
    let outcome = relay
        .handle(Incoming {
            body: &body,
            publisher: None,
            served: &[],
            escalation: Some(1),
        })
        .await;

    // Assert: carried out (nobody waits in this registry), not refused.
    assert_eq!(
        outcome.verdict,
        Verdict::Delivered {
            emails: 0,
            duplicates: 0
        }
    );
}

#[tokio::test]
async fn an_absence_declared_in_the_store_sends_the_next_alert_to_the_chosen_deputy() {
    // Arrange: Paris 13e's référent has two deputies; she declares herself
    // away today, Paris 14e's standing in.
    let registry = r#"
        [[route]]
        kind = "orientation_sociale"
        networks = ["ccas"]

        [[referent]]
        id = "ccas-paris-13"
        network = "ccas"
        email = "camille.martin@ccas-paris13.example.org"
        communes = ["75113"]
        deputies = ["ccas-paris", "ccas-paris-14"]

        [[referent]]
        id = "ccas-paris"
        network = "ccas"
        email = "social@paris.example.org"
        departements = ["75"]

        [[referent]]
        id = "ccas-paris-14"
        network = "ccas"
        email = "ccas14@paris.example.org"
        communes = ["75114"]
    "#;
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_with(dir.path(), registry, true);
    let now = time::OffsetDateTime::now_utc();
    let today = crate::availability::paris_date(now);
    relay
        .store
        .declare_absence(crate::store::AbsenceDeclaration {
            referent_id: "ccas-paris-13",
            from: today,
            to: today,
            deputy_id: Some("ccas-paris-14"),
            declared_by: "ccas-paris-13",
            declared_at: now,
        })
        .await
        .unwrap();
    relay.absences().changed();

    // Act
    relay
        .handle(Incoming::body(&alert("SOS75-AWAY", "75113")))
        .await;

    // Assert
    assert_eq!(recipients(dir.path()), ["ccas14@paris.example.org"]);
}

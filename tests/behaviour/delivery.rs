//! The path of an alert end to end: the real RabbitMQ on 127.0.0.1:5672, a
//! real SMTP server on a loopback port, relais running in process. Many
//! alerts reach exactly their référents, once; an invalid alert is
//! dead-lettered with its reason while relais runs on; a recipient refused
//! for good dead-letters the alert with the SMTP reply; a second alert
//! under a used id is a conflict, a true copy is not; and with
//! `email.include_patient = false` no patient detail leaves by email.

use relais_testkit as support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{REGISTRY, WAIT, World, alert};

#[tokio::test]
async fn many_alerts_reach_exactly_their_referents_once_and_the_queue_is_emptied() {
    // Arrange: 30 alerts over three territories and two kinds.
    let world = World::new(REGISTRY).await;
    let mut expected: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for n in 0..30 {
        let (kind, commune, referents): (&str, &str, Vec<&str>) = match n % 3 {
            0 => (
                "orientation_sociale",
                "75113",
                vec!["ccas-paris-13", "ccas-paris-13-accueil"],
            ),
            1 => ("orientation_sociale", "75115", vec!["ccas-paris"]),
            _ => ("acces_aux_droits", "75120", vec!["cpam-75", "caf-75"]),
        };
        let id = format!("SOS75-2026-{n:06}");
        world.publish(kind, &alert(&id, kind, commune)).await;
        expected.insert(id, referents);
    }
    let total: usize = expected.values().map(Vec::len).sum();

    // Act
    let app = world.spawn();
    let mails = world.smtp.wait_for(total, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.stop().await;

    // Assert: every référent got its alert once, nobody else got anything.
    assert_eq!(
        mails.len(),
        total,
        "exactly one email per référent per alert"
    );
    let mut received: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for mail in &mails {
        received
            .entry(mail.alert_id())
            .or_default()
            .push(mail.referent());
    }
    for (id, referents) in &expected {
        let mut got = received.remove(id).unwrap_or_default();
        got.sort();
        let mut want: Vec<String> = referents.iter().map(|r| r.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "référents of {id}");
    }
    assert!(received.is_empty(), "unexpected alerts: {received:?}");
    // Each email went to the référent's own address, from relais.
    let to_camille: Vec<_> = mails
        .iter()
        .filter(|m| m.referent() == "ccas-paris-13")
        .collect();
    assert_eq!(to_camille.len(), 10);
    for mail in to_camille {
        assert_eq!(mail.to, ["camille.martin@ccas-paris13.test"]);
        assert_eq!(mail.from, "relais@sos-medecins.test");
        let message_id = mail.header("Message-ID").unwrap();
        assert_eq!(
            message_id,
            format!(
                "<relais.{}.ccas-paris-13@sos-medecins.test>",
                mail.alert_id()
            )
        );
        assert!(mail.text().contains("Référence de l'alerte : SOS75-2026-"));
    }
    // Nothing left behind: no message in the queue, none dead-lettered.
    assert_eq!(world.broker.depth(&world.queue).await, 0);
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    world.cleanup().await;
}

#[tokio::test]
async fn invalid_alerts_are_dead_lettered_with_their_reason_and_relais_keeps_running() {
    // Arrange
    let world = World::new(REGISTRY).await;
    let app = world.spawn();
    let mut oversized = alert("SOS75-BIG", "orientation_sociale", "75113");
    oversized.extend(std::iter::repeat_n(b' ', 70_000));
    let invalid: [(&str, Vec<u8>, &str); 5] = [
        (
            "orientation_sociale",
            b"not json at all".to_vec(),
            "the message is not a JSON alert: expected ident at line 1 column 2",
        ),
        (
            "orientation_sociale",
            vec![0xff, 0xfe, 0x00],
            "the message is not UTF-8 text",
        ),
        (
            "orientation_sociale",
            alert("SOS75-1", "orientation_sociale", "7511"),
            "field `territory.commune` is not an INSEE commune code",
        ),
        (
            "orientation_sociale",
            alert("bad id!", "orientation_sociale", "75113"),
            "field `id` may only contain the characters A-Z a-z 0-9 . _ : -",
        ),
        ("orientation_sociale", oversized, "the message is 70"),
    ];

    // Act
    for (routing_key, body, _) in &invalid {
        world.publish(routing_key, body).await;
    }
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-OK", "orientation_sociale", "75115"),
        )
        .await;

    // Assert: each invalid message is in .dead, untouched, with its reason.
    assert_eq!(world.wait_for_depth(&world.dead(), 5, WAIT).await, 5);
    let mut dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(dead.len(), 5);
    for (_, body, error) in &invalid {
        let position = dead
            .iter()
            .position(|d| &d.body == body)
            .expect("the original body is kept");
        let letter = dead.remove(position);
        assert_eq!(letter.routing_key, "orientation_sociale");
        assert_eq!(letter.header("x-relais-reason").as_deref(), Some("invalid"));
        let got = letter.header("x-relais-error").unwrap();
        assert!(
            got.starts_with(error),
            "{got:?} should start with {error:?}"
        );
        assert_eq!(letter.header("x-relais-attempts").as_deref(), Some("1"));
        assert!(
            letter
                .header("x-relais-failed-at")
                .unwrap()
                .starts_with("20")
        );
        assert_eq!(
            letter
                .properties
                .content_type()
                .as_ref()
                .map(|c| c.to_string())
                .as_deref(),
            Some("application/json"),
            "the original properties are kept"
        );
    }
    // The valid alert after them was delivered: relais is still running.
    let mails = world.smtp.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(
        (mails[0].alert_id(), mails[0].referent()),
        ("SOS75-OK".into(), "ccas-paris".into())
    );
    assert!(app.is_running());
    app.stop().await;
    assert_eq!(world.broker.depth(&world.queue).await, 0);
    world.cleanup().await;
}

#[tokio::test]
async fn a_recipient_refused_for_good_dead_letters_the_alert_with_the_smtp_reply() {
    let world = World::new(REGISTRY).await;
    world
        .smtp
        .refuse_recipient("accueil@ccas-paris13.test", 550, "5.1.1 mailbox unknown");
    let app = world.spawn();

    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-R1", "orientation_sociale", "75113"),
        )
        .await;

    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    app.stop().await;
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(
        dead[0].header("x-relais-reason").as_deref(),
        Some("rejected")
    );
    let error = dead[0].header("x-relais-error").unwrap();
    // The refusal reported is the recipient's, not the DATA refusal that
    // follows it in the same pipelined batch.
    assert!(
        error.contains("RCPT TO") && error.contains("550 5.1.1 mailbox unknown"),
        "{error}"
    );
    assert!(!error.contains("554"), "{error}");
    // The other référent of the commune still got the alert, once.
    let mails = world.smtp.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].referent(), "ccas-paris-13");
    world.cleanup().await;
}

#[tokio::test]
async fn with_include_patient_false_no_patient_detail_leaves_by_email() {
    let world = World::with_env(REGISTRY, &[("RELAIS__EMAIL__INCLUDE_PATIENT", "false")]).await;
    let app = world.spawn();

    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-NOPAT", "orientation_sociale", "75115"),
        )
        .await;
    let mails = world.smtp.wait_for(1, WAIT).await;
    app.stop().await;

    assert_eq!(mails.len(), 1);
    let raw = String::from_utf8_lossy(&mails[0].data).into_owned();
    let text = mails[0].text();
    assert!(text.contains("SOS75-NOPAT"), "{text}");
    assert!(text.contains("rappelez le contact ci-dessous"), "{text}");
    for detail in ["Jeanne", "Durand", "Personne"] {
        assert!(!raw.contains(detail), "{detail} left by email: {raw}");
    }
    world.cleanup().await;
}

#[tokio::test]
async fn a_second_alert_with_a_used_id_is_dead_lettered_as_a_conflict_and_a_true_copy_is_not() {
    // Arrange: an alert for Paris 15e is delivered.
    let world = World::new(REGISTRY).await;
    let app = world.spawn();
    let first = alert("SOS75-ONE-ID", "orientation_sociale", "75115");
    world.publish("orientation_sociale", &first).await;
    assert_eq!(world.smtp.wait_for(1, WAIT).await.len(), 1);

    // Act: the same alert again (a publisher's retry), then another alert
    // (Paris 13e) under the same id.
    world.publish("orientation_sociale", &first).await;
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-ONE-ID", "orientation_sociale", "75113"),
        )
        .await;
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.stop().await;

    // Assert: one email, to Paris 15e's référent; the other alert waits in
    // `.dead` as a conflict, its référents not emailed.
    let to: Vec<String> = world.smtp.mails().iter().map(|m| m.to.join(",")).collect();
    assert_eq!(to, ["social@paris.test"]);
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].header("x-relais-reason").as_deref(),
        Some("conflict")
    );
    assert_eq!(
        dead[0].header("x-relais-error").as_deref(),
        Some(
            "the id was already used by an alert of different content, delivered to 1 \
             référent(s); nobody was emailed: publish this alert with a new id"
        )
    );
    assert_eq!(dead[0].header("x-relais-served"), None);
    let body: serde_json::Value = serde_json::from_slice(&dead[0].body).unwrap();
    assert_eq!(body["territory"]["commune"], "75113");
    world.cleanup().await;
}

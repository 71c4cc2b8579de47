//! The path of an alert end to end: the real RabbitMQ on 127.0.0.1:5672, a
//! real SMTP server on a loopback port, relais running in process.

use relais_testkit as support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{REGISTRY, World, alert};

const WAIT: Duration = Duration::from_secs(20);

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
async fn an_alert_of_a_kind_without_route_is_dead_lettered_as_unroutable() {
    let world = World::new(REGISTRY).await;
    let app = world.spawn();

    world
        .publish(
            "demande_visite",
            &alert("SOS75-V1", "demande_visite", "75113"),
        )
        .await;

    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(dead[0].routing_key, "demande_visite");
    assert_eq!(
        dead[0].header("x-relais-reason").as_deref(),
        Some("unroutable")
    );
    assert_eq!(
        dead[0].header("x-relais-error").as_deref(),
        Some("no route for kind `demande_visite` in the registry")
    );
    app.stop().await;
    assert!(world.smtp.mails().is_empty());
    world.cleanup().await;
}

#[tokio::test]
async fn a_network_with_nobody_for_the_territory_is_dead_lettered_after_the_others_are_emailed() {
    // cpam covers Corsica-du-Sud, caf does not.
    let registry = format!(
        "{REGISTRY}\n[[referent]]\nid = \"cpam-2a\"\nnetwork = \"cpam\"\nemail = \"referent@cpam-2a.test\"\ndepartements = [\"2A\"]\n"
    );
    let world = World::new(&registry).await;
    let app = world.spawn();

    world
        .publish(
            "acces_aux_droits",
            &alert("SOS2A-1", "acces_aux_droits", "2A004"),
        )
        .await;

    let mails = world.smtp.wait_for(1, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    app.stop().await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].referent(), "cpam-2a");
    assert_eq!(mails[0].to, ["referent@cpam-2a.test"]);
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(
        dead[0].header("x-relais-reason").as_deref(),
        Some("unroutable")
    );
    assert_eq!(
        dead[0].header("x-relais-error").as_deref(),
        Some("no référent of network(s) caf for commune 2A004 (département 2A), and no fallback")
    );
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

#[tokio::test]
async fn commune_codes_are_read_against_the_official_geography() {
    // Arrange: Paris 13e's CCAS, Ajaccio's CIAS by its EPCI, Île-de-France's
    // Carsat by its région, the département's service for the rest of Paris.
    let registry = r#"
[[route]]
kind = "orientation_sociale"
networks = ["ccas"]
label = "Orientation sociale"

[[route]]
kind = "acces_aux_droits"
networks = ["carsat"]

[[referent]]
id = "ccas-paris-13"
network = "ccas"
email = "ccas13@paris.test"
communes = ["75113"]

[[referent]]
id = "casvp"
network = "ccas"
email = "casvp@paris.test"
departements = ["75"]

[[referent]]
id = "cias-pays-ajaccien"
network = "ccas"
email = "cias@ajaccio.test"
epcis = ["242010056"]

[[referent]]
id = "carsat-idf"
network = "carsat"
email = "carsat@idf.test"
regions = ["11"]
"#;
    let world = World::new(registry).await;
    let app = world.spawn();

    // Act: Paris 13e's postal code; Paris 13e; Ajaccio by its former
    // Corsican code; a commune of the Pays Ajaccien; Melun for the Carsat.
    world
        .publish(
            "orientation_sociale",
            &alert("GEO-POSTAL", "orientation_sociale", "75013"),
        )
        .await;
    world
        .publish(
            "orientation_sociale",
            &alert("GEO-13E", "orientation_sociale", "75113"),
        )
        .await;
    world
        .publish(
            "orientation_sociale",
            &alert("GEO-FORMER", "orientation_sociale", "20004"),
        )
        .await;
    world
        .publish(
            "orientation_sociale",
            &alert("GEO-EPCI", "orientation_sociale", "2A017"),
        )
        .await;
    world
        .publish(
            "acces_aux_droits",
            &alert("GEO-REGION", "acces_aux_droits", "77288"),
        )
        .await;
    let mails = world.smtp.wait_for(4, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.stop().await;

    // Assert: each alert to its office, said in words; the postal code in
    // `.dead`, said as such, not quoted.
    let mut got: Vec<(String, String, String)> = mails
        .iter()
        .map(|m| {
            (
                m.alert_id(),
                m.to.join(","),
                m.parsed().subject().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "GEO-13E".into(),
                "ccas13@paris.test".into(),
                "URGENT – Alerte Orientation sociale – Paris 13e Arrondissement (75113) – réf. GEO-13E".into()
            ),
            (
                "GEO-EPCI".into(),
                "cias@ajaccio.test".into(),
                "URGENT – Alerte Orientation sociale – Appietto (2A017) – réf. GEO-EPCI".into()
            ),
            (
                "GEO-FORMER".into(),
                "cias@ajaccio.test".into(),
                "URGENT – Alerte Orientation sociale – Ajaccio (2A004) – réf. GEO-FORMER".into()
            ),
            (
                "GEO-REGION".into(),
                "carsat@idf.test".into(),
                "URGENT – Alerte acces aux droits – Melun (77288) – réf. GEO-REGION".into()
            ),
        ]
    );
    let former = mails.iter().find(|m| m.alert_id() == "GEO-FORMER").unwrap();
    let text = former.text();
    assert!(
        text.contains("Territoire : Ajaccio (2A004), Corse-du-Sud (2A)\r\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "Code de commune : l'alerte donnait l'ancien code 20004, désormais Ajaccio\r\n"
        ),
        "{text}"
    );
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(
        dead[0].header("x-relais-reason").as_deref(),
        Some("invalid")
    );
    assert_eq!(
        dead[0].header("x-relais-error").as_deref(),
        Some(
            "field `territory.commune` is a postal code, not an INSEE commune code: give the \
             commune's code from the Code officiel géographique (Paris 13e is 75113, its postal \
             code 75013)"
        )
    );
    world.cleanup().await;
}

#[tokio::test]
async fn an_alert_for_an_absent_referent_goes_to_its_deputy_and_says_on_whose_behalf() {
    // Arrange: Paris 13e's référent is away from yesterday to tomorrow
    // (Paris dates); her deputy stands in.
    let today = relais::availability::paris_date(time::OffsetDateTime::now_utc());
    let (from, to) = (today.previous_day().unwrap(), today.next_day().unwrap());
    let registry = format!(
        r#"
[[route]]
kind = "orientation_sociale"
networks = ["ccas"]
label = "Orientation sociale"

[[referent]]
id = "ccas-paris-13"
network = "ccas"
name = "Camille Martin"
email = "camille.martin@ccas-paris13.test"
communes = ["75113"]
deputies = ["ccas-paris-13-adjoint"]
absences = [{{ from = "{from}", to = "{to}" }}]

[[referent]]
id = "ccas-paris-13-adjoint"
network = "ccas"
name = "Dominique Petit"
email = "dominique.petit@ccas-paris13.test"
communes = ["75114"]
"#
    );
    let world = World::new(&registry).await;
    let app = world.spawn();

    // Act
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-ABS", "orientation_sociale", "75113"),
        )
        .await;
    let mails = world.smtp.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.stop().await;

    // Assert: the deputy only, told why.
    assert_eq!(world.smtp.mails().len(), 1);
    assert_eq!(mails[0].to, ["dominique.petit@ccas-paris13.test"]);
    assert_eq!(mails[0].referent(), "ccas-paris-13-adjoint");
    assert!(
        mails[0]
            .text()
            .contains("Vous recevez cette alerte en l'absence de Camille Martin."),
        "{}",
        mails[0].text()
    );
    world.cleanup().await;
}

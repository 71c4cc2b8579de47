//! What référents did about an alert, from the link of their email, in
//! headless Chromium at a phone's width: the follow-ups offered once the
//! alert is acknowledged, each choice recorded (the last one standing),
//! told to the association as a `followed_up` event, counted, and listed
//! by `relais audit`; a co-recipient's page saying who of their network
//! acknowledged first and what was done, and, with
//! `ack.notify_colleagues`, an email saying it. No page shows patient data.

use relais_testkit as support;

use serde_json::{Value, json};
use support::browser::Browser;
use support::smtp::Mail;
use support::{ACK_SECRET, DispatchUser, REGISTRY, WAIT, World, alert, http_get, sample};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What the tests' alert says of the person, which no page may show.
const PATIENT: [&str; 5] = ["Jeanne", "Durand", "D-2026-4411", "chute", "01 47 07 77 77"];

/// The width of a small phone, in CSS pixels.
const PHONE: u32 = 360;

/// The acknowledgement link of the email `referent` received.
fn link_for(mails: &[Mail], referent: &str, port: u16) -> String {
    let mail = mails
        .iter()
        .find(|mail| mail.referent() == referent)
        .unwrap_or_else(|| panic!("no email to {referent}"));
    let text = mail.text();
    text.lines()
        .find(|line| line.starts_with(&format!("http://127.0.0.1:{port}/ack/")))
        .unwrap_or_else(|| panic!("no link in:\n{text}"))
        .trim()
        .to_owned()
}

/// The page's text once it shows `expected` (a deadline, not a pause).
async fn shown(browser: &Browser, expected: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = browser.text().await;
        if text.contains(expected) || tokio::time::Instant::now() >= deadline {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `at`, Paris time, as the pages write it (November: UTC+1).
fn paris(at: OffsetDateTime) -> String {
    let paris = at.to_offset(relais::availability::paris_offset(at));
    format!(
        "{:02}/{:02}/{} à {:02}:{:02}",
        paris.day(),
        u8::from(paris.month()),
        paris.year(),
        paris.hour(),
        paris.minute()
    )
}

/// The page fits a phone's width (nothing to scroll sideways); its
/// screenshot saved under the tests' temporary folder, and its path
/// printed.
async fn fits_a_phone(browser: &Browser, name: &str) {
    let widths = browser
        .evaluate("return [window.innerWidth, document.documentElement.scrollWidth]")
        .await;
    let (window, page) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
    assert!(window <= u64::from(PHONE), "a window {window} px wide");
    assert!(
        page <= window,
        "a page {page} px wide in a {window} px window"
    );
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.png"));
    browser.screenshot(&path).await;
    println!("screenshot at {PHONE} px: {}", path.display());
}

#[tokio::test]
async fn a_referent_acknowledges_then_says_what_was_done_and_the_association_is_told() {
    // Arrange: relais with acknowledgement pages and /metrics, the
    // dispatch software's queue bound to all its alerts' events.
    let dispatch = DispatchUser::create("follow-up");
    let metrics_port = support::smtp::SmtpServer::free_port().await;
    let listen = format!("127.0.0.1:{metrics_port}");
    let (world, port) = World::with_ack(
        REGISTRY,
        ACK_SECRET,
        &[("RELAIS__HTTP__LISTEN", listen.as_str())],
    )
    .await;
    let events = world.bind_events("#").await;
    let app = world.spawn();
    let started = OffsetDateTime::now_utc();
    dispatch
        .publish(
            &world,
            &alert("SOS75-SUITE", "orientation_sociale", "75113"),
        )
        .await;
    let mails = world.smtp.wait_for(2, WAIT).await;
    let link = link_for(&mails, "ccas-paris-13", port);
    let browser = Browser::start().await;
    browser.resize(PHONE, 800).await;

    // Act: the référent opens the link, acknowledges, says a contact was
    // made, then changes it: the alert is not their service's.
    browser.open(&link).await;
    let mut sources = vec![browser.source().await];
    let before = browser.text().await;
    browser.click("form:not(.suite) button").await;
    let thanks = shown(&browser, "Quelle suite avez-vous donnée ?").await;
    sources.push(browser.source().await);
    browser.click("button[value=\"contact_etabli\"]").await;
    let contacted = shown(&browser, "est notée : Contact établi avec la personne.").await;
    sources.push(browser.source().await);
    browser.click("button[value=\"hors_perimetre\"]").await;
    let handed_back = shown(
        &browser,
        "Merci : l'association est informée que cette alerte ne relève pas de votre service.",
    )
    .await;
    sources.push(browser.source().await);
    fits_a_phone(&browser, "follow-up-handed-back").await;
    browser.open(&link).await;
    let reopened = browser.text().await;
    sources.push(browser.source().await);
    assert_eq!(world.wait_for_depth(&events, 5, WAIT).await, 5);
    let (_, metrics) = http_get(metrics_port, "/metrics").await;
    drop(browser);
    app.stop().await;
    let finished = OffsetDateTime::now_utc();

    // Assert: the pages, and no patient detail in any.
    assert!(!before.contains("Quelle suite"), "{before}");
    for choice in [
        "Contact établi avec la personne",
        "Orientée vers un autre service",
        "Personne injoignable",
        "La personne refuse l'accompagnement",
        "Ne relève pas de notre service",
    ] {
        assert!(thanks.contains(choice), "{choice} in {thanks}");
    }
    assert!(contacted.starts_with("Merci\n"), "{contacted}");
    assert!(
        handed_back.starts_with("Alerte SOS75-SUITE\n"),
        "{handed_back}"
    );
    assert!(
        reopened.contains("Suite donnée : Ne relève pas de notre service"),
        "{reopened}"
    );
    assert!(
        reopened.contains("Vous avez pris en compte cette alerte le "),
        "{reopened}"
    );
    for source in &sources {
        for patient in PATIENT {
            assert!(!source.contains(patient), "{patient} in {source}");
        }
    }

    // The association is told: one acknowledgement, each choice, as the
    // events' schema says.
    let schema: Value = serde_json::from_str(include_str!("../../schema/event.v2.json")).unwrap();
    let schema = jsonschema::validator_for(&schema).unwrap();
    let user = dispatch.name.as_str();
    let mut got: Vec<(String, Value)> = world
        .broker
        .take_all(&events)
        .await
        .into_iter()
        .map(|message| {
            let mut event: Value = serde_json::from_slice(&message.body).unwrap();
            assert!(schema.is_valid(&event), "{event}");
            event.as_object_mut().unwrap().remove("at");
            (message.routing_key, event)
        })
        .collect();
    got.retain(|(key, _)| !key.ends_with(".delivered"));
    let camille = json!({ "id": "ccas-paris-13", "organisation": "CCAS de Paris 13e",
                          "network": "ccas" });
    assert_eq!(
        got,
        [
            (
                format!("{user}.acknowledged"),
                json!({ "publisher": user, "alert_id": "SOS75-SUITE", "status": "acknowledged",
                        "referent": camille })
            ),
            (
                format!("{user}.followed_up"),
                json!({ "publisher": user, "alert_id": "SOS75-SUITE", "status": "followed_up",
                        "referent": camille, "outcome": "contact_etabli" })
            ),
            (
                format!("{user}.followed_up"),
                json!({ "publisher": user, "alert_id": "SOS75-SUITE", "status": "followed_up",
                        "referent": camille, "outcome": "hors_perimetre" })
            ),
        ]
    );
    for outcome in ["contact_etabli", "hors_perimetre"] {
        let name = format!("relais_follow_ups_total{{outcome=\"{outcome}\",network=\"ccas\"}}");
        assert_eq!(sample(&metrics, &name), Some(1.0), "{name} in {metrics}");
    }

    // relais audit: the acknowledgement, then each choice, in order.
    let id = relais::alert::AlertId::parse("SOS75-SUITE").unwrap();
    let reader = world.audit().await;
    let acknowledged = reader.acknowledgements(&id).await.unwrap();
    let follow_ups = reader.follow_ups(&id).await.unwrap();
    assert_eq!(acknowledged.len(), 1);
    assert_eq!(follow_ups.len(), 2);
    let times = [
        acknowledged[0].1,
        follow_ups[0].recorded_at,
        follow_ups[1].recorded_at,
    ];
    for at in times {
        assert!(
            at >= started.replace_nanosecond(0).unwrap() && at <= finished,
            "{at}"
        );
    }
    let [ack, contact, hand_back] = times.map(|at| at.format(&Rfc3339).unwrap());
    let audit = world.cli(&["audit", "--alert", "SOS75-SUITE"]);
    let audit = String::from_utf8_lossy(&audit.stdout).into_owned();
    let lines: Vec<&str> = audit
        .lines()
        .filter(|line| line.contains("\tacknowledged") || line.contains("\tfollowed_up "))
        .collect();
    assert_eq!(
        lines,
        [
            format!("{ack}\tSOS75-SUITE\tccas-paris-13\tacknowledged"),
            format!(
                "{contact}\tSOS75-SUITE\tccas-paris-13\tfollowed_up contact_etabli\tpublisher {user}"
            ),
            format!(
                "{hand_back}\tSOS75-SUITE\tccas-paris-13\tfollowed_up hors_perimetre\tpublisher {user}"
            ),
        ],
        "{audit}"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn a_co_recipient_sees_who_of_their_network_acknowledged_first_and_what_was_done() {
    // Arrange: an alert for the two référents of the CCAS of Paris 13e;
    // Camille Martin acknowledges it and directs the person elsewhere.
    let dispatch = DispatchUser::create("co-recipient");
    let (world, port) = World::with_ack(REGISTRY, ACK_SECRET, &[]).await;
    let events = world.bind_events("*.acknowledged").await;
    let app = world.spawn();
    dispatch
        .publish(
            &world,
            &alert("SOS75-COLLEGUES", "orientation_sociale", "75113"),
        )
        .await;
    let mails = world.smtp.wait_for(2, WAIT).await;
    assert_eq!(world.wait_for_recorded("SOS75-COLLEGUES", 2, WAIT).await, 2);
    let browser = Browser::start().await;
    browser.resize(PHONE, 800).await;
    browser.open(&link_for(&mails, "ccas-paris-13", port)).await;
    browser.click("form:not(.suite) button").await;
    shown(&browser, "Quelle suite avez-vous donnée ?").await;
    browser.click("button[value=\"oriente\"]").await;
    shown(&browser, "est notée : Orientée vers un autre service.").await;
    let id = relais::alert::AlertId::parse("SOS75-COLLEGUES").unwrap();
    let first = world.audit().await.acknowledgements(&id).await.unwrap()[0].1;

    // Act: the other référent opens their own link, then acknowledges too.
    let link = link_for(&mails, "ccas-paris-13-accueil", port);
    browser.open(&link).await;
    let page = browser.text().await;
    let source = browser.source().await;
    fits_a_phone(&browser, "follow-up-co-recipient").await;
    browser.click("form:not(.suite) button").await;
    let thanks = shown(&browser, "est notée comme prise en compte.").await;
    browser.open(&link).await;
    let again = browser.text().await;
    assert_eq!(world.wait_for_depth(&events, 2, WAIT).await, 2);
    drop(browser);
    app.stop().await;

    // Assert: who acknowledged first and what was done, in words; the
    // co-recipient's own acknowledgement recorded and told too.
    let colleague = format!(
        "Déjà prise en compte par CCAS de Paris 13e — Camille Martin le {}",
        paris(first)
    );
    assert!(
        page.lines().any(|line| line == colleague),
        "{colleague:?} in:\n{page}"
    );
    assert!(
        page.lines()
            .any(|line| line == "Suite donnée : Orientée vers un autre service"),
        "{page}"
    );
    assert!(
        page.contains("J'ai pris connaissance de cette alerte"),
        "{page}"
    );
    assert!(
        !source.contains("name=\"suite\""),
        "no follow-up before acknowledging"
    );
    for patient in PATIENT {
        assert!(!source.contains(patient), "{patient} in {source}");
    }
    assert!(
        thanks.contains("Suite donnée : Orientée vers un autre service"),
        "{thanks}"
    );
    assert!(again.lines().any(|line| line == colleague), "{again}");
    let acknowledged = world.audit().await.acknowledgements(&id).await.unwrap();
    let who: Vec<&str> = acknowledged
        .iter()
        .map(|(referent, _)| referent.as_str())
        .collect();
    assert_eq!(who, ["ccas-paris-13", "ccas-paris-13-accueil"]);
    let told: Vec<String> = world
        .broker
        .take_all(&events)
        .await
        .into_iter()
        .map(|message| {
            let event: Value = serde_json::from_slice(&message.body).unwrap();
            event["referent"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(told, ["ccas-paris-13", "ccas-paris-13-accueil"]);
    assert_eq!(
        world.smtp.count(),
        2,
        "no email of the acknowledgement unless ack.notify_colleagues"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn with_notify_colleagues_the_first_acknowledgement_in_a_network_is_emailed_to_the_others() {
    // Arrange: colleagues emailed of acknowledgements (ack.notify_colleagues).
    let dispatch = DispatchUser::create("notify-colleagues");
    let (world, port) = World::with_ack(
        REGISTRY,
        ACK_SECRET,
        &[("RELAIS__ACK__NOTIFY_COLLEAGUES", "true")],
    )
    .await;
    let app = world.spawn();
    dispatch
        .publish(&world, &alert("SOS75-AVIS", "orientation_sociale", "75113"))
        .await;
    let mails = world.smtp.wait_for(2, WAIT).await;
    assert_eq!(world.wait_for_recorded("SOS75-AVIS", 2, WAIT).await, 2);
    let link = link_for(&mails, "ccas-paris-13", port);
    let path = link.trim_start_matches(&format!("http://127.0.0.1:{port}"));

    // Act: Camille Martin acknowledges.
    let (status, _) = support::http_request(port, "POST", path).await;
    let mails = world.smtp.wait_for(3, WAIT).await;
    app.stop().await;

    // Assert: one short email to the other référent of the CCAS, saying
    // who and when, nothing of the person.
    assert_eq!(status, 200);
    let id = relais::alert::AlertId::parse("SOS75-AVIS").unwrap();
    let at = world.audit().await.acknowledgements(&id).await.unwrap()[0].1;
    let notice = &mails[2];
    assert_eq!(notice.to, ["accueil@ccas-paris13.test"]);
    assert_eq!(
        notice.parsed().subject(),
        Some("Alerte SOS75-AVIS : déjà prise en compte")
    );
    assert_eq!(
        notice.text(),
        format!(
            "Bonjour,\r\n\r\nCCAS de Paris 13e — Camille Martin a pris en compte l'alerte \
             SOS75-AVIS le {}.\r\n\r\nVous avez reçu cette alerte vous aussi : le lien de votre \
             courriel d'alerte indique qui l'a prise en compte et la suite donnée.\r\n\r\nCe \
             message ne contient aucune donnée sur la personne.\r\n",
            paris(at)
        )
    );
    let raw = String::from_utf8_lossy(&notice.data);
    for patient in PATIENT {
        assert!(!raw.contains(patient), "{patient} in {raw}");
    }
    world.cleanup().await;
}

#[tokio::test]
async fn an_alert_handed_back_goes_to_the_network_s_fallback_and_its_escalation_goes_on() {
    // Arrange: Camille's CCAS, its permanence as fallback, alerts that
    // escalate after an hour; relais serves the pages.
    let (world, port) =
        World::with_ack(&support::escalating("urgent = \"1h\""), ACK_SECRET, &[]).await;
    let app = world.spawn();
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-RENDU", "orientation_sociale", "75113"),
        )
        .await;
    let first = world.smtp.wait_for(1, WAIT).await;
    let link = first[0]
        .text()
        .lines()
        .find(|line| line.starts_with(&format!("http://127.0.0.1:{port}/ack/")))
        .unwrap()
        .trim()
        .to_owned();
    let browser = Browser::start().await;
    browser.resize(PHONE, 800).await;

    // Act: Camille acknowledges, then says it is not her service's.
    browser.open(&link).await;
    browser.click("form:not(.suite) button").await;
    shown(&browser, "Quelle suite avez-vous donnée ?").await;
    browser.click("button[value=\"hors_perimetre\"]").await;
    let page = shown(
        &browser,
        "Elle est transmise au référent de repli de votre réseau.",
    )
    .await;
    let both = world.smtp.wait_for(2, WAIT).await;
    let pending = world.cli(&["pending", "--json"]);
    drop(browser);
    app.stop().await;

    // Assert: the permanence has the whole alert, told who handed it back
    // and why; nobody else was emailed; the network still waits for an
    // acknowledgement (its escalation goes on); the page shows no patient
    // data.
    assert_eq!(
        both.iter()
            .map(|mail| mail.to.join(","))
            .collect::<Vec<_>>(),
        ["camille@ccas-paris13.test", "permanence@paris.test"]
    );
    let handed = both[1].text();
    assert!(
        handed.contains(
            "Restitution : CCAS de Paris 13e — Camille Martin indique que cette alerte ne relève \
             pas de son service. Elle vous est transmise comme référent·e de repli du réseau ccas."
        ),
        "{handed}"
    );
    assert!(handed.contains("Nom : Mme Jeanne Durand"), "{handed}");
    assert_eq!(
        world
            .smtp
            .wait_for(3, std::time::Duration::from_secs(3))
            .await
            .len(),
        2
    );
    let pending: Value = serde_json::from_slice(&pending.stdout).unwrap();
    assert_eq!(
        pending["pending"][0]["alert_id"], "SOS75-RENDU",
        "{pending}"
    );
    for patient in PATIENT {
        assert!(!page.contains(patient), "{patient} in {page}");
    }
    world.cleanup().await;
}

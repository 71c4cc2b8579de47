//! A référent's absences, declared by the référent: the link of its email
//! opened in headless Chromium at a phone's width (360 px, a screenshot
//! kept), an absence for today declared with one of its deputies, the next
//! alert going to that deputy alone, the absence cancelled from the
//! keyboard and the next alert going to the référent again; `relais
//! absences --json`, `relais resolve` and `relais coverage` counting it
//! meanwhile. A forged link, an acknowledgement link and an expired one
//! get a 4xx page and change nothing; the page never shows the alert or
//! the patient.

use relais_testkit as support;

use std::time::Duration;

use relais::ack::token::{AbsenceLink, Sealer};
use relais::availability::paris_date;
use support::browser::Browser;
use support::{ACK_SECRET, WAIT, World, alert, http_request, link_in, text};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const CAMILLE: &str = "camille.martin@ccas-paris13.test";
const DOMINIQUE: &str = "dominique.petit@ccas-paris13.test";

/// Paris 13e's référent, with two deputies, a fallback for the network,
/// and a leave the registry knows of, in a month.
fn registry(today: time::Date) -> (String, String, String) {
    let from = (today + time::Duration::days(30)).to_string();
    let to = (today + time::Duration::days(40)).to_string();
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
organisation = "CCAS de Paris 13e"
email = "{CAMILLE}"
communes = ["75113"]
deputies = ["ccas-paris-13-adjoint", "ccas-paris-14"]
absences = [{{ from = "{from}", to = "{to}" }}]

[[referent]]
id = "ccas-paris-13-adjoint"
network = "ccas"
name = "Dominique Petit"
email = "{DOMINIQUE}"
communes = ["75114"]

[[referent]]
id = "ccas-paris-14"
network = "ccas"
name = "Sacha Roux"
email = "sacha.roux@ccas-paris14.test"
communes = ["75114"]

[[referent]]
id = "ccas-permanence"
network = "ccas"
email = "permanence@ccas-paris.test"
fallback = true
"#
    );
    (registry, from, to)
}

/// The page's text once it contains `expected` (a form was sent).
async fn text_once(browser: &Browser, expected: &str) -> String {
    let mut shown = String::new();
    for _ in 0..100 {
        shown = browser.text().await;
        if shown.contains(expected) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shown
}

/// The recipients of the emails about `alert_id`, sorted.
fn recipients(world: &World, alert_id: &str) -> Vec<String> {
    let mut to: Vec<String> = world
        .smtp
        .mails()
        .iter()
        .filter(|mail| mail.alert_id() == alert_id)
        .flat_map(|mail| mail.to.clone())
        .collect();
    to.sort();
    to
}

#[tokio::test]
async fn a_referent_declares_an_absence_from_the_email_and_the_next_alert_goes_to_the_deputy() {
    // Arrange: relais with its pages; a first alert brings Camille her
    // links.
    let today = paris_date(OffsetDateTime::now_utc());
    let (registry, registry_from, registry_to) = registry(today);
    let (world, port) = World::with_ack(&registry, ACK_SECRET, &[]).await;
    let public = format!("http://127.0.0.1:{port}");
    let app = world.spawn();
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-ABS-1", "orientation_sociale", "75113"),
        )
        .await;
    let mails = world.smtp.wait_for(1, WAIT).await;
    let email = mails[0].text();
    let absence_link = link_in(&email, "Absent·e ? Indiquez vos dates d'absence : ");
    let ack_link = link_in(&email, "/ack/");
    assert!(absence_link.starts_with(&format!("{public}/absence/")));
    let absence_path = absence_link.trim_start_matches(&public).to_owned();
    let ack_token = ack_link.rsplit('/').next().unwrap().to_owned();
    let absence_token = absence_path.trim_start_matches("/absence/").to_owned();

    // Forged, altered, expired, or of the other page: 4xx, nothing changes.
    let forged = Sealer::<AbsenceLink>::new(b"another key, not relais's, 32 bytes!")
        .seal(&AbsenceLink {
            referent_id: "ccas-paris-13".into(),
            expires_at: 4_000_000_000,
        })
        .unwrap();
    let expired = Sealer::<AbsenceLink>::new(ACK_SECRET)
        .seal(&AbsenceLink {
            referent_id: "ccas-paris-13".into(),
            expires_at: 1_795_000_000,
        })
        .unwrap();
    let mut altered = absence_path.clone();
    altered.pop();
    altered.push(if absence_path.ends_with('A') {
        'B'
    } else {
        'A'
    });
    for (bad, status) in [
        (format!("/absence/{forged}"), 404),
        (altered, 404),
        (format!("/absence/{ack_token}"), 404),
        (format!("/ack/{absence_token}"), 404),
        (format!("/absence/{expired}"), 410),
    ] {
        let (got, page) = http_request(port, "GET", &bad).await;
        assert_eq!(got, status, "{bad}: {page}");
        assert_eq!(http_request(port, "POST", &bad).await.0, status, "{bad}");
    }
    let (opened, ack_page) = http_request(port, "GET", &format!("/ack/{ack_token}")).await;
    assert_eq!(opened, 200);
    assert!(
        ack_page.contains(&format!("<a href=\"{public}/absence/")),
        "the acknowledgement page leads to the absence page: {ack_page}"
    );
    let (scanned, head) = http_request(port, "GET", &absence_path).await;
    assert_eq!(scanned, 200, "{head}");
    for header in [
        "cache-control: no-store",
        "referrer-policy: no-referrer",
        "x-content-type-options: nosniff",
        "content-security-policy: default-src 'none'",
    ] {
        assert!(head.to_ascii_lowercase().contains(header), "{header}");
    }

    // Act 1: on a phone-wide window, Camille declares herself away today,
    // Dominique standing in, and sends the form with the Enter key.
    let browser = Browser::start().await;
    browser.resize(360, 800).await;
    browser.open(&absence_link).await;
    let first = browser.text().await;
    let width = browser
        .evaluate("return [window.innerWidth, document.documentElement.scrollWidth]")
        .await;
    let screenshot =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("absence-page-360px.png");
    browser.screenshot(&screenshot).await;
    println!("the absence page at 360 px: {}", screenshot.display());
    browser
        .evaluate(&format!(
            "document.getElementById('from').value = '{today}'; \
             document.getElementById('to').value = '{today}'; return true"
        ))
        .await;
    browser
        .click("#deputy option[value=\"ccas-paris-13-adjoint\"]")
        .await;
    browser.type_keys("#to", "\u{E007}").await;
    let declared = text_once(&browser, "Absence enregistrée").await;
    let source = browser.source().await;
    let listed = world.cli(&["absences", "--json"]);
    let resolved = world.cli(&[
        "resolve",
        "--kind",
        "orientation_sociale",
        "--commune",
        "75113",
    ]);
    let coverage = world.cli(&["coverage", "--network", "ccas", "--json"]);
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-ABS-2", "orientation_sociale", "75113"),
        )
        .await;
    let during = world.smtp.wait_for(2, WAIT).await;

    // Act 2: she cancels it, from the keyboard too; the next alert is hers.
    browser.type_keys("button.cancel", "\u{E007}").await;
    let cancelled = text_once(&browser, "annulée").await;
    let after_cancel = world.cli(&["absences", "--json"]);
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-ABS-3", "orientation_sociale", "75113"),
        )
        .await;
    world.smtp.wait_for(3, WAIT).await;
    drop(browser);
    app.stop().await;

    // Assert: the page, at 360 px, with nothing of the alert or patient.
    assert!(first.contains("Vos absences"), "{first}");
    assert!(first.contains("Camille Martin, réseau ccas."), "{first}");
    assert!(
        first.contains("Inscrite au registre par l'association"),
        "{first}"
    );
    assert_eq!(width[0].as_u64(), Some(360), "{width}");
    assert!(
        width[1].as_u64().unwrap() <= 360,
        "nothing wider than the screen: {width}"
    );
    let day = format!(
        "{:02}/{:02}/{}",
        today.day(),
        u8::from(today.month()),
        today.year()
    );
    assert!(
        declared.contains(&format!(
            "Absence enregistrée le {day} : elle compte dès maintenant pour les alertes."
        )),
        "{declared}"
    );
    assert!(
        declared.contains(&format!("Le {day} · vous remplace : Dominique Petit")),
        "{declared}"
    );
    for shown in [&first, &declared, &source] {
        for patient in [
            "SOS75-ABS",
            "Jeanne",
            "Durand",
            "D-2026-4411",
            "chute",
            "01 47 07 77 77",
        ] {
            assert!(!shown.contains(patient), "{patient} on the page");
        }
    }
    // The CLI lists both kinds, with when the référent declared its own.
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let declared_at = listed["absences"][0]["declared_at"].as_str().unwrap_or("");
    let at = OffsetDateTime::parse(declared_at, &Rfc3339).unwrap();
    assert!(
        (OffsetDateTime::now_utc() - at) < time::Duration::minutes(5),
        "{declared_at}"
    );
    let registry_absence = serde_json::json!({
        "referent": "ccas-paris-13",
        "network": "ccas",
        "from": registry_from,
        "to": registry_to,
        "deputy": null,
        "source": "registry",
        "declared_at": null,
    });
    assert_eq!(
        listed,
        serde_json::json!({ "absences": [
            {
                "referent": "ccas-paris-13",
                "network": "ccas",
                "from": today.to_string(),
                "to": today.to_string(),
                "deputy": "ccas-paris-13-adjoint",
                "source": "self",
                "declared_at": declared_at,
            },
            registry_absence.clone(),
        ]})
    );
    let after_cancel: serde_json::Value = serde_json::from_slice(&after_cancel.stdout).unwrap();
    assert_eq!(
        after_cancel,
        serde_json::json!({ "absences": [registry_absence] })
    );
    assert_eq!(
        text(&resolved.stdout),
        format!("ccas-paris-13-adjoint {DOMINIQUE}\n")
    );
    let coverage: serde_json::Value = serde_json::from_slice(&coverage.stdout).unwrap();
    assert_eq!(coverage["date"], today.to_string());
    assert_eq!(coverage["absent"], 1);
    // The alerts: Camille's, then Dominique's alone, then Camille's again.
    assert_eq!(during.len(), 2);
    assert_eq!(recipients(&world, "SOS75-ABS-1"), [CAMILLE]);
    assert_eq!(recipients(&world, "SOS75-ABS-2"), [DOMINIQUE]);
    assert_eq!(recipients(&world, "SOS75-ABS-3"), [CAMILLE]);
    let standing_in = world
        .smtp
        .mails()
        .into_iter()
        .find(|mail| mail.alert_id() == "SOS75-ABS-2")
        .unwrap();
    assert!(
        standing_in
            .text()
            .contains("Vous recevez cette alerte en l'absence de Camille Martin."),
        "{}",
        standing_in.text()
    );
    assert!(
        cancelled.contains(&format!("Absence le {day} annulée.")),
        "{cancelled}"
    );
    assert!(
        !cancelled.contains("vous remplace : Dominique"),
        "{cancelled}"
    );
    assert_eq!(world.smtp.mails().len(), 3);
    world.cleanup().await;
}

#[tokio::test]
async fn an_absence_with_no_deputy_present_says_the_fallback_stands_in_and_a_bad_one_is_refused() {
    // Arrange: both of Camille's deputies are away today in the registry.
    let today = paris_date(OffsetDateTime::now_utc());
    let (registry, _, _) = registry(today);
    let registry = registry
        .replace(
            "communes = [\"75114\"]\n\n[[referent]]\nid = \"ccas-paris-14\"",
            &format!(
                "communes = [\"75114\"]\nabsences = [{{ from = \"{today}\", to = \"{today}\" }}]\n\n[[referent]]\nid = \"ccas-paris-14\""
            ),
        )
        .replace(
            "email = \"sacha.roux@ccas-paris14.test\"",
            &format!(
                "email = \"sacha.roux@ccas-paris14.test\"\nabsences = [{{ from = \"{today}\", to = \"{today}\" }}]"
            ),
        );
    let (world, port) = World::with_ack(&registry, ACK_SECRET, &[]).await;
    let app = world.spawn();
    let token = Sealer::<AbsenceLink>::new(ACK_SECRET)
        .seal(&AbsenceLink {
            referent_id: "ccas-paris-13".into(),
            expires_at: 4_000_000_000,
        })
        .unwrap();
    let browser = Browser::start().await;
    browser
        .open(&format!("http://127.0.0.1:{port}/absence/{token}"))
        .await;
    let tomorrow = today.next_day().unwrap();
    let fill = |from: String, to: String| {
        format!(
            "document.getElementById('from').value = '{from}'; \
             document.getElementById('to').value = '{to}'; return true"
        )
    };

    // Act: reversed dates first, then today and tomorrow.
    browser
        .evaluate(&fill(tomorrow.to_string(), today.to_string()))
        .await;
    browser.click("input[value=declare] ~ button").await;
    let reversed = text_once(&browser, "Le dernier jour est avant le premier").await;
    browser
        .evaluate(&fill(today.to_string(), tomorrow.to_string()))
        .await;
    browser.click("input[value=declare] ~ button").await;
    let declared = text_once(&browser, "Absence enregistrée").await;
    drop(browser);
    app.stop().await;

    // Assert
    assert!(
        reversed.contains("Le dernier jour est avant le premier : vérifiez les dates."),
        "{reversed}"
    );
    let day = |date: time::Date| {
        format!(
            "{:02}/{:02}/{}",
            date.day(),
            u8::from(date.month()),
            date.year()
        )
    };
    assert!(
        declared.contains(&format!(
            "Le {} : aucun·e de vos suppléant·es n'est présent·e ; ces jours-là, les alertes \
             iront au référent de repli du réseau.",
            day(today)
        )),
        "{declared}"
    );
    let kept = world
        .audit()
        .await
        .declared_absences(today, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].from, kept[0].to, kept[0].deputy_id.as_deref()),
        (today, tomorrow, None)
    );
    assert_eq!(kept[0].declared_by, "ccas-paris-13");
    world.cleanup().await;
}

//! Acknowledgement from the email, for real: the link taken from the email
//! the test SMTP server received, opened in headless Chromium (Debian's,
//! through chromedriver), the page checked for patient data, its button
//! clicked; the acknowledgement then in the store (`relais audit`) and on
//! the events exchange. A plain GET (a link scanner) acknowledges nothing;
//! a forged, altered or expired link gets a 4xx page and changes nothing.
//! The link's token shows nothing of the alert, and during a key rotation
//! a link sealed with the previous key still opens.

use relais_testkit as support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use relais::ack::token::{Link, Sealer};
use support::browser::Browser;
use support::{ACK_SECRET, REGISTRY, WAIT, World, alert, http_request};

/// The key `ack.key_file` held before [`ACK_SECRET`].
const PREVIOUS_SECRET: &[u8] = b"the key before this one, 32 bytes or more";

#[tokio::test]
async fn a_referent_acknowledges_from_the_email_in_a_real_browser_and_a_scanner_changes_nothing() {
    // Arrange: relais with acknowledgement pages, a queue for the events.
    // The key before ACK_SECRET is still kept: a rotation is under way.
    let rotation = tempfile::tempdir().unwrap();
    let previous = rotation.path().join("ack-key.previous");
    std::fs::write(&previous, PREVIOUS_SECRET).unwrap();
    let (world, port) = World::with_ack(
        REGISTRY,
        ACK_SECRET,
        &[("RELAIS__ACK__PREVIOUS_KEY_FILE", previous.to_str().unwrap())],
    )
    .await;
    let public = format!("http://127.0.0.1:{port}");
    let events = world.bind_events("*.acknowledged").await;
    let app = world.spawn();
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-ACK", "orientation_sociale", "75115"),
        )
        .await;
    let mails = world.smtp.wait_for(1, WAIT).await;
    let text = mails[0].text();
    let link = text
        .lines()
        .find(|line| line.starts_with(&format!("{public}/ack/")))
        .unwrap_or_else(|| panic!("no link in:\n{text}"))
        .trim()
        .to_owned();
    let path = link.trim_start_matches(&public).to_owned();

    // Whoever sees the URL (a proxy's log, a mail scanner, a browser's
    // history) reads nothing of the alert in it.
    let token = path.trim_start_matches("/ack/");
    let sealed = URL_SAFE_NO_PAD.decode(token).unwrap();
    for clear in ["SOS75-ACK", "ccas-paris", "orientation_sociale", "75115"] {
        assert!(
            !sealed.windows(clear.len()).any(|w| w == clear.as_bytes()),
            "{clear} readable in {link}"
        );
    }

    // A link scanner opens it: the page shows, nothing is acknowledged.
    let (scanned, page) = http_request(port, "GET", &path).await;
    assert_eq!(scanned, 200, "{page}");
    for header in [
        "cache-control: no-store",
        "referrer-policy: no-referrer",
        "x-content-type-options: nosniff",
        "content-security-policy: default-src 'none'",
    ] {
        assert!(
            page.to_ascii_lowercase().contains(header),
            "{header} in {page}"
        );
    }
    let id = relais::alert::AlertId::parse("SOS75-ACK").unwrap();
    assert!(
        world
            .audit()
            .await
            .acknowledgements(&id)
            .await
            .unwrap()
            .is_empty()
    );

    // Forged, altered and expired links: 4xx, nothing changes.
    let mut altered = path.clone();
    altered.pop();
    altered.push(if path.ends_with('A') { 'B' } else { 'A' });
    let expired = Sealer::new(ACK_SECRET)
        .seal(&Link {
            alert_id: "SOS75-ACK".into(),
            publisher: String::new(),
            referent_id: "ccas-paris".into(),
            kind: "orientation_sociale".into(),
            commune: Some("75115".into()),
            departement: "75".into(),
            emitted_at: 1_795_000_000,
            expires_at: 1_795_000_001,
        })
        .unwrap();
    let forged_link = Link {
        alert_id: "SOS75-ACK".into(),
        publisher: String::new(),
        referent_id: "ccas-paris".into(),
        kind: "orientation_sociale".into(),
        commune: None,
        departement: "75".into(),
        emitted_at: 1_795_000_000,
        expires_at: 4_000_000_000,
    };
    let forged = Sealer::new(b"another key, not relais's, 32 bytes!")
        .seal(&forged_link)
        .unwrap();
    for (bad, status) in [
        (altered, 404),
        (format!("/ack/{forged}"), 404),
        (format!("/ack/{expired}"), 410),
    ] {
        assert_eq!(http_request(port, "GET", &bad).await.0, status, "{bad}");
        assert_eq!(http_request(port, "POST", &bad).await.0, status, "{bad}");
    }
    assert!(
        world
            .audit()
            .await
            .acknowledgements(&id)
            .await
            .unwrap()
            .is_empty()
    );

    // A link sealed with the previous key, sent before the rotation, still
    // opens.
    let before_rotation = Sealer::new(PREVIOUS_SECRET).seal(&forged_link).unwrap();
    let (opened, page) = http_request(port, "GET", &format!("/ack/{before_rotation}")).await;
    assert_eq!(opened, 200, "{page}");
    assert!(page.contains("Alerte SOS75-ACK"), "{page}");

    // Act: the référent opens the link in a browser and clicks.
    let browser = Browser::start().await;
    browser.open(&link).await;
    let shown = browser.text().await;
    let source = browser.source().await;
    browser.click("button").await;
    let mut after = String::new();
    for _ in 0..100 {
        after = browser.text().await;
        if after.contains("Merci") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(world.wait_for_depth(&events, 1, WAIT).await, 1);
    // Once more: harmless.
    let (again, again_page) = http_request(port, "POST", &path).await;
    drop(browser);
    app.stop().await;

    // Assert: the page named the alert and no patient detail; the click
    // acknowledged it, once, for this référent.
    assert!(shown.contains("Alerte SOS75-ACK"), "{shown}");
    assert!(
        shown.contains("Paris 15e Arrondissement (75115)"),
        "{shown}"
    );
    assert!(shown.contains("Orientation sociale"), "{shown}");
    for patient in ["Jeanne", "Durand", "D-2026-4411", "chute", "01 47 07 77 77"] {
        assert!(!source.contains(patient), "{patient} in {source}");
    }
    assert!(after.contains("Merci"), "{after}");
    assert_eq!(again, 200);
    assert!(again_page.contains("elle l'était déjà"), "{again_page}");
    let acknowledgements = world.audit().await.acknowledgements(&id).await.unwrap();
    assert_eq!(acknowledgements.len(), 1);
    assert_eq!(acknowledgements[0].0, "ccas-paris");
    let event = world.broker.take_all(&events).await;
    assert_eq!(event.len(), 1, "one acknowledged event");
    let event: serde_json::Value = serde_json::from_slice(&event[0].body).unwrap();
    assert_eq!(event["alert_id"], "SOS75-ACK");
    assert_eq!(event["status"], "acknowledged");
    assert_eq!(event["referent"]["id"], "ccas-paris");
    let audit = world.cli(&["audit", "--alert", "SOS75-ACK"]);
    let audit = String::from_utf8_lossy(&audit.stdout).into_owned();
    assert!(
        audit
            .lines()
            .any(|line| line.ends_with("\tSOS75-ACK\tccas-paris\tacknowledged")),
        "{audit}"
    );
    world.cleanup().await;
}

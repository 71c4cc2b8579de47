//! Bounces read and acted on: each email leaves with its own return path
//! (`smtp.bounce_address` and a signed tag); `relais bounce`, fed a
//! bounce as a mail server's pipe would, records it, and the running relais
//! sends the alert on at once to the bounced référent's deputy, else to its
//! network's fallback, without escalation settings. A delay is recorded
//! and shown, nothing more. Hostile bounces (a forged tag, another relais's
//! tag, another address, a replay, 10 MB, a malformed report) are refused
//! with the mail server's exit status and change nothing.

use relais_testkit as support;

use std::time::Duration;

use relais::bounce::BounceAddress;
use relais::mail::ReturnPaths;
use serde_json::{Value, json};
use support::smtp::{Mail, SmtpServer};
use support::{ACK_SECRET, WAIT, World, alert, http_get, text};

const BOUNCE_ADDRESS: &str = "bounces@relais.test";

/// Camille (deputy Dominique) and Dominique of the CCAS of Paris 13e, the
/// permanence as the network's fallback; no escalation at all.
fn registry() -> String {
    support::escalating("urgent = \"1h\"").replace("escalate_after = { urgent = \"1h\" }\n", "")
}

/// A delivery status notification as Postfix writes it, sent back to
/// `return_path` about `mail`: `action` and `status` for its recipient.
fn dsn(return_path: &str, mail: &Mail, action: &str, status: &str) -> Vec<u8> {
    let recipient = &mail.to[0];
    let returned = String::from_utf8_lossy(&mail.data);
    let headers = returned.split("\r\n\r\n").next().unwrap_or_default();
    format!(
        "Return-Path: <>\r\n\
         Date: Sun,  6 Dec 2026 09:12:03 +0100 (CET)\r\n\
         From: MAILER-DAEMON@mx.ccas-paris13.test (Mail Delivery System)\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         To: {return_path}\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"B0UND\"\r\n\
         \r\n\
         --B0UND\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Your message could not be delivered to <{recipient}>.\r\n\
         \r\n\
         --B0UND\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.ccas-paris13.test\r\n\
         \r\n\
         Final-Recipient: rfc822; {recipient}\r\n\
         Original-Recipient: rfc822;{recipient}\r\n\
         Action: {action}\r\n\
         Status: {status}\r\n\
         Diagnostic-Code: smtp; 550 {status} <{recipient}>: mailbox unknown\r\n\
         \r\n\
         --B0UND\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         {headers}\r\n\
         --B0UND--\r\n"
    )
    .into_bytes()
}

/// A bounce without a report, as qmail writes it: its one status code in
/// its text.
fn plain_bounce(return_path: &str, recipient: &str) -> Vec<u8> {
    format!(
        "From: MAILER-DAEMON@mx.paris.test\r\n\
         To: {return_path}\r\n\
         Subject: failure notice\r\n\
         \r\n\
         Hi. This is the qmail-send program at mx.paris.test.\r\n\
         I'm afraid I wasn't able to deliver your message to the following addresses.\r\n\
         \r\n\
         <{recipient}>:\r\n\
         Sorry, no mailbox here by that name. (#5.1.1)\r\n"
    )
    .into_bytes()
}

/// Runs `relais bounce` as the mail server's pipe does: the bounce on
/// standard input, the envelope recipient it came to; tried again while
/// it answers 75 (try later), as the mail server does.
async fn bounce(world: &World, recipient: &str, message: &[u8]) -> (i32, String) {
    const EX_TEMPFAIL: i32 = 75;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let out = world.cli_with_input(&["bounce", "--recipient", recipient], message);
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        let status = out.status.code().unwrap_or(-1);
        if status != EX_TEMPFAIL || tokio::time::Instant::now() >= deadline {
            return (status, said);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The lines of `relais audit --alert ID` that are bounces.
fn bounces_in_audit(world: &World, id: &str) -> Vec<String> {
    let audit = world.cli(&["audit", "--alert", id]);
    text(&audit.stdout)
        .lines()
        .filter(|line| line.contains("\tbounced "))
        .map(|line| {
            line.split_once('\t')
                .map_or("", |(_, rest)| rest)
                .to_owned()
        })
        .collect()
}

/// As [`bounces_in_audit`], once the failure is recorded as sent on (a
/// moment after the email that sends it on: its record follows).
async fn bounces_sent_on(world: &World, id: &str) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let lines = bounces_in_audit(world, id);
        let sent_on = lines.iter().any(|line| line.contains(", sent on "));
        if sent_on || tokio::time::Instant::now() >= deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn world_reading_bounces() -> (World, u16) {
    let metrics = SmtpServer::free_port().await;
    let listen = format!("127.0.0.1:{metrics}");
    let (world, _) = World::with_ack(
        &registry(),
        ACK_SECRET,
        &[
            ("RELAIS__SMTP__BOUNCE_ADDRESS", BOUNCE_ADDRESS),
            ("RELAIS__HTTP__LISTEN", listen.as_str()),
        ],
    )
    .await;
    (world, metrics)
}

#[tokio::test]
async fn a_closed_mailbox_s_bounce_sends_the_alert_to_the_deputy_at_once_and_once() {
    // Arrange: relais reading bounces; an alert for Camille's commune; a
    // queue of the dispatch software's, bound to the bounces.
    let (world, metrics) = world_reading_bounces().await;
    let events = world.bind_events("#.bounced").await;
    let app = world.spawn();
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-BOUNCE", "orientation_sociale", "75113"),
        )
        .await;
    let first = world.smtp.wait_for(1, WAIT).await;
    let return_path = first[0].from.clone();

    // Act: Camille's mail server bounces it for good, and the bounce comes
    // twice.
    let (status, said) = bounce(
        &world,
        &return_path,
        &dsn(&return_path, &first[0], "failed", "5.1.1"),
    )
    .await;
    let both = world.smtp.wait_for(2, WAIT).await;
    let (again, said_again) = bounce(
        &world,
        &return_path,
        &dsn(&return_path, &first[0], "failed", "5.1.1"),
    )
    .await;
    let after = world.smtp.wait_for(3, Duration::from_secs(4)).await;
    let (_, exposed) = http_get(metrics, "/metrics").await;
    world.wait_for_depth(&events, 1, WAIT).await;
    app.stop().await;
    let told: Vec<(String, Value)> = world
        .broker
        .take_all(&events)
        .await
        .into_iter()
        .map(|message| {
            let mut event: Value = serde_json::from_slice(&message.body).unwrap();
            event.as_object_mut().unwrap().remove("at");
            (message.routing_key, event)
        })
        .collect();

    // Assert: a return path of its own; Dominique, Camille's deputy, has
    // the whole alert at once, told why; the second bounce changed
    // nothing; the audit and the metric name Camille.
    let (local, domain) = return_path.split_once('@').unwrap();
    let tag = local.strip_prefix("bounces+").unwrap_or_default();
    assert_eq!(domain, "relais.test");
    assert_eq!(tag.len(), 26, "{return_path}");
    assert!(
        tag.chars().all(|c| matches!(c, 'a'..='z' | '2'..='7')),
        "{return_path}"
    );
    assert_eq!(first[0].to, ["camille@ccas-paris13.test"]);
    assert_eq!(status, 0, "{said}");
    assert_eq!(
        said.trim(),
        "relais: failed 5.1.1 for alert SOS75-BOUNCE to référent camille recorded: the alert \
         is sent on to the deputies or the fallback"
    );
    assert_eq!(
        after.iter().map(|m| m.to.join(",")).collect::<Vec<_>>(),
        ["camille@ccas-paris13.test", "dominique@ccas-paris13.test"]
    );
    let sent_on = both[1].text();
    assert!(
        sent_on.contains(
            "Adresse refusée : la messagerie de CCAS de Paris 13e — Camille Martin a refusé cette \
             alerte (boîte fermée ou inconnue). Elle vous est transmise à sa place, sans attendre."
        ),
        "{sent_on}"
    );
    assert!(sent_on.contains("SOS75-BOUNCE"), "{sent_on}");
    assert_ne!(
        both[1].from, return_path,
        "each email has its own return path"
    );
    assert_eq!(again, 0, "{said_again}");
    assert_eq!(
        said_again.trim(),
        "relais: failed 5.1.1 for alert SOS75-BOUNCE to référent camille was recorded already; \
         nothing changed"
    );
    let schema: Value = serde_json::from_str(include_str!("../../schema/event.v2.json")).unwrap();
    let schema = jsonschema::validator_for(&schema).unwrap();
    assert_eq!(
        told,
        [(
            "=.bounced".to_owned(),
            json!({ "publisher": "", "alert_id": "SOS75-BOUNCE", "status": "bounced",
                    "referent": { "id": "camille", "organisation": "CCAS de Paris 13e",
                                  "network": "ccas" },
                    "smtp_status": "5.1.1" })
        )]
    );
    let mut with_time = told[0].1.clone();
    with_time["at"] = json!("2026-12-06T08:12:03Z");
    assert!(schema.is_valid(&with_time), "{with_time}");
    let audit = bounces_sent_on(&world, "SOS75-BOUNCE").await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(
        audit[0].starts_with("SOS75-BOUNCE\tcamille\tbounced failed 5.1.1, sent on "),
        "{audit:?}"
    );
    assert!(
        exposed
            .contains("relais_referent_bounces_total{referent=\"camille\",network=\"ccas\"} 1\n"),
        "{exposed}"
    );
    let total = reported_total(&world).await;
    assert_eq!(
        (&total["received"], &total["delivered"], &total["bounced"]),
        (&json!(1), &json!(1), &json!(1)),
        "{total}"
    );
}

/// The yearly report's total line around today, once it counts the bounce
/// (its facts are written beside the work, a moment later).
async fn reported_total(world: &World) -> Value {
    let today = time::OffsetDateTime::now_utc().date();
    let (from, to) = (
        today.previous_day().unwrap().to_string(),
        today.next_day().unwrap().to_string(),
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let out = world.cli(&["report", "--from", &from, "--to", &to, "--json"]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let total = report["total"].clone();
        if total["bounced"] == json!(1) || tokio::time::Instant::now() >= deadline {
            return total;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn without_a_deputy_the_fallback_has_it_and_a_delay_only_shows() {
    // Arrange: an alert for Dominique's commune (Dominique has no deputy).
    let (world, _) = world_reading_bounces().await;
    let app = world.spawn();
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-BOUNCE-2", "orientation_sociale", "75114"),
        )
        .await;
    let first = world.smtp.wait_for(1, WAIT).await;
    let return_path = first[0].from.clone();

    // Act: the server first says it keeps trying, then a bounce without
    // a report says the mailbox does not exist.
    let (delayed, said_delayed) = bounce(
        &world,
        &return_path,
        &dsn(&return_path, &first[0], "delayed", "4.4.1"),
    )
    .await;
    let meanwhile = world.smtp.wait_for(2, Duration::from_secs(4)).await;
    let (failed, said_failed) = bounce(
        &world,
        &return_path,
        &plain_bounce(&return_path, "dominique@ccas-paris13.test"),
    )
    .await;
    let both = world.smtp.wait_for(2, WAIT).await;
    app.stop().await;

    // Assert: the delay is shown and sent nothing; the failure sent the
    // alert to the permanence.
    assert_eq!(delayed, 0, "{said_delayed}");
    assert_eq!(meanwhile.len(), 1);
    assert_eq!(failed, 0, "{said_failed}");
    assert_eq!(
        both.iter().map(|m| m.to.join(",")).collect::<Vec<_>>(),
        ["dominique@ccas-paris13.test", "permanence@paris.test"]
    );
    assert!(
        both[1]
            .text()
            .contains("Adresse refusée : la messagerie de Dominique Petit a refusé"),
        "{}",
        both[1].text()
    );
    let audit = bounces_sent_on(&world, "SOS75-BOUNCE-2").await;
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(
        audit[0].starts_with("SOS75-BOUNCE-2\tdominique\tbounced delayed 4.4.1\t")
            || audit[0] == "SOS75-BOUNCE-2\tdominique\tbounced delayed 4.4.1",
        "{audit:?}"
    );
    assert!(
        audit[1].starts_with("SOS75-BOUNCE-2\tdominique\tbounced failed 5.1.1, sent on "),
        "{audit:?}"
    );
}

#[tokio::test]
async fn hostile_bounces_are_refused_with_the_mail_server_s_status_and_change_nothing() {
    // Arrange: one email delivered, with its return path.
    let (world, _) = world_reading_bounces().await;
    let app = world.spawn();
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-BOUNCE-3", "orientation_sociale", "75113"),
        )
        .await;
    let first = world.smtp.wait_for(1, WAIT).await;
    let ours = first[0].from.clone();
    let report = |to: &str| dsn(to, &first[0], "failed", "5.1.1");

    // Act: a tag with one character changed; a tag signed by another
    // relais (another key); another address; 10 MB; a report without its
    // delivery-status part; a message that is no mail at all.
    let (local, domain) = ours.split_once('@').unwrap();
    let last = local.chars().last().unwrap();
    let forged = format!(
        "{}{}@{domain}",
        &local[..local.len() - 1],
        if last == 'a' { 'b' } else { 'a' }
    );
    let (other, _) = ReturnPaths::new(BounceAddress::parse(BOUNCE_ADDRESS).unwrap(), &[9; 32])
        .fresh()
        .unwrap();
    let other = other.to_string();
    let mut huge = report(&ours);
    huge.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    let truncated = {
        let whole = String::from_utf8(report(&ours)).unwrap();
        let cut = whole
            .find("--B0UND\r\nContent-Type: message/delivery-status")
            .unwrap();
        format!("{}--B0UND--\r\n", &whole[..cut]).into_bytes()
    };
    let tried = [
        ("forged", bounce(&world, &forged, &report(&forged)).await),
        (
            "another relais",
            bounce(&world, &other, &report(&other)).await,
        ),
        (
            "another address",
            bounce(
                &world,
                "postmaster@relais.test",
                &report("postmaster@relais.test"),
            )
            .await,
        ),
        ("10 MB", bounce(&world, &ours, &huge).await),
        (
            "no delivery-status",
            bounce(&world, &ours, &truncated).await,
        ),
        (
            "no mail",
            bounce(&world, &ours, b"\x00\x01 not a message").await,
        ),
    ];
    let after = world.smtp.wait_for(2, Duration::from_secs(4)).await;
    app.stop().await;

    // Assert: each refused with its status and reason; nobody else was
    // emailed; no bounce recorded.
    let statuses: Vec<_> = tried
        .iter()
        .map(|(what, (status, _))| (*what, *status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("forged", 67),
            ("another relais", 67),
            ("another address", 67),
            ("10 MB", 65),
            ("no delivery-status", 65),
            ("no mail", 65),
        ],
        "{tried:?}"
    );
    for (what, (_, said)) in &tried {
        assert!(said.contains("nothing changed"), "{what}: {said}");
        assert!(
            !said.contains("camille@"),
            "{what} quotes an address: {said}"
        );
    }
    assert_eq!(after.len(), 1);
    assert!(bounces_in_audit(&world, "SOS75-BOUNCE-3").is_empty());
}

//! Patient data never reaches what operators see. Alerts whose every
//! patient field carries a sentinel go through every path (delivered, a
//! duplicate, retried through the ladder, refused for good, invalid) in the
//! real binary, logging everything relais logs (`relais=debug`), as JSON
//! and as text; the sentinel must appear in none of the logs, `/metrics`,
//! `relais status`, `relais dead-letters list` or `relais report`, in any
//! format.

use relais_testkit as support;

use support::smtp::SmtpServer;
use support::{Logs, REGISTRY, WAIT, World, http_get, signal, wait_exit};

const SENTINEL: &str = "PATIENT-SENTINEL";

/// An alert whose summary, patient, contact and association all carry the
/// sentinel (its id, kind and territory are no patient data: relais logs
/// them by design).
fn sentinel_alert(id: &str, commune: &str) -> Vec<u8> {
    let mark = |what: &str| format!("{SENTINEL} {what}");
    serde_json::json!({
        "id": id,
        "kind": "orientation_sociale",
        "emitted_at": "2026-11-22T08:15:00+01:00",
        "association": mark("association"),
        "territory": { "commune": commune },
        "summary": mark("summary\nsecond line"),
        "patient": {
            "reference": mark("reference"),
            "name": mark("name"),
            "address": mark("address"),
            "phone": mark("phone"),
        },
        "contact": { "name": mark("contact"), "phone": mark("contact phone") },
        "consent": { "status": "given", "given_by": "person", "at": "2026-11-22T08:10:00+01:00" }
    })
    .to_string()
    .into_bytes()
}

/// Runs the scenario with logs in `format`; returns everything an operator
/// could read afterwards.
async fn everything_operators_see(format: &str, level: &str) -> Vec<(String, String)> {
    let port = SmtpServer::free_port().await;
    let listen = format!("127.0.0.1:{port}");
    let world = World::with_env(
        REGISTRY,
        &[
            ("RELAIS__HTTP__LISTEN", listen.as_str()),
            ("RELAIS__LOG__FORMAT", format),
            ("RELAIS__LOG__LEVEL", level),
        ],
    )
    .await;
    // Paris 15e is busy for two rounds of attempts (a trip through the
    // retry ladder); Ajaccio's mailbox refuses for good.
    world
        .smtp
        .refuse_recipient_next("social@paris.test", 2, 451, "4.2.0 mailbox busy");
    world
        .smtp
        .refuse_recipient("ccas@ajaccio.test", 550, "5.1.1 mailbox unknown");
    let mut relais = world.spawn_binary();
    let logs = Logs::collect(&mut relais);
    logs.expect("consuming alerts").await;

    let retried = sentinel_alert("SOS75-S1", "75115");
    let delivered = sentinel_alert("SOS75-S2", "75113");
    world.publish("orientation_sociale", &retried).await;
    world.publish("orientation_sociale", &delivered).await;
    world.publish("orientation_sociale", &delivered).await; // a duplicate
    world
        .publish("orientation_sociale", &sentinel_alert("SOS2A-S3", "2A004"))
        .await;
    world
        .publish("orientation_sociale", &sentinel_alert("SOS75-S4", "7511X"))
        .await;

    // 75113 has two référents; 75115 one, after the ladder.
    assert_eq!(world.smtp.wait_for(3, WAIT).await.len(), 3);
    assert_eq!(world.wait_for_depth(&world.dead(), 2, WAIT).await, 2);
    let mut seen = vec![
        ("/metrics".to_owned(), http_get(port, "/metrics").await.1),
        ("/readyz".to_owned(), http_get(port, "/readyz").await.1),
    ];
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["dead-letters", "list"],
        &["dead-letters", "list", "--json"],
    ] {
        let output = world.cli(args);
        let shown = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        if args[0] == "dead-letters" {
            assert!(
                shown.contains("SOS2A-S3"),
                "{args:?} lists the dead letters: {shown}"
            );
        } else {
            assert!(
                shown.contains(".dead"),
                "{args:?} shows the queues: {shown}"
            );
        }
        seen.push((format!("relais {}", args.join(" ")), shown));
    }
    signal(&relais, "TERM");
    assert!(wait_exit(&mut relais, WAIT).await.success());
    // The yearly report, in every format, over the days around now.
    let today = relais::availability::paris_date(time::OffsetDateTime::now_utc());
    let (from, to) = (
        today.previous_day().unwrap().to_string(),
        today.next_day().unwrap().to_string(),
    );
    let page = world.dir.path().join("report.html");
    for format in [
        &[][..],
        &["--csv"],
        &["--json"],
        &["--by", "association,network,departement,kind,month"],
        &["--html", page.to_str().unwrap()],
    ] {
        let args = [&["report", "--from", &from, "--to", &to][..], format].concat();
        let output = world.cli(&args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut shown = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        if format.first() == Some(&"--html") {
            shown = std::fs::read_to_string(&page).unwrap();
        }
        // It counted the scenario's four alerts (two delivered, one
        // refused for good, one invalid).
        let counted = match format.first() {
            Some(&"--csv") => shown.contains("\r\ntotal;4;"),
            Some(&"--json") => {
                shown.contains("\"total\":{\"acknowledged\"") && shown.contains("\"received\":4")
            }
            Some(&"--html") => shown.contains("<td>total</td><td class=\"n\">4</td>"),
            _ => shown
                .lines()
                .last()
                .is_some_and(|line| line.split_whitespace().take(2).eq(["total", "4"])),
        };
        assert!(counted, "{args:?} reports the four alerts: {shown}");
        seen.push((format!("relais {}", args.join(" ")), shown));
    }
    let all = logs.all();
    // The scenario went where it should: each path was logged.
    for event in [
        "alert delivered",
        "alert to retry",
        "alert to dead-letter",
        "not sent again",
    ] {
        assert!(all.contains(event), "{event} in the {format} logs");
    }
    seen.push((format!("{format} logs"), all));
    // The sentinel did travel: to the référents, where it belongs.
    let mails = world.smtp.mails();
    assert!(
        mails
            .iter()
            .all(|mail| mail.text().contains("PATIENT-SENTINEL name")),
        "the emails carry the patient's details"
    );
    world.cleanup().await;
    seen
}

#[tokio::test]
async fn no_patient_detail_reaches_logs_metrics_or_the_operators_tools() {
    for format in ["json", "text"] {
        for (place, content) in everything_operators_see(format, "relais=debug").await {
            assert!(
                !content.contains(SENTINEL),
                "patient data in {place}:\n{content}"
            );
        }
    }
}

#[tokio::test]
async fn no_patient_detail_reaches_the_logs_at_trace_level_for_every_library() {
    // `trace` for everything, and `lapin=trace` asked outright: the AMQP
    // library, which logs frame bodies at those levels (as lists of bytes),
    // is held at `warn`.
    let as_bytes = SENTINEL
        .bytes()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    for level in ["trace", "trace,lapin=trace,amq_protocol=trace"] {
        for (place, content) in everything_operators_see("text", level).await {
            assert!(
                !content.contains(SENTINEL) && !content.contains(&as_bytes),
                "patient data in {place} at {level:?}:\n{content}"
            );
        }
    }
}

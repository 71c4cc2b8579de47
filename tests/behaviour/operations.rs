//! What operators see: `/metrics`, `/readyz`, `/healthz`, `relais status`,
//! the dead-letter tools and the escalation queues' tools, after known
//! scenarios on the real broker. A replay by a reason relais does not know
//! is refused with the list; an escalation copy is purged only once its
//! alert is acknowledged, and the purge emails nobody.

use relais_testkit as support;

use std::time::Duration;

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use support::smtp::SmtpServer;
use support::{ACK_SECRET, REGISTRY, WAIT, World, alert, http_get, http_request, sample, text};
use time::format_description::well_known::Rfc3339;

async fn world_with_http() -> (World, u16) {
    let port = SmtpServer::free_port().await;
    let listen = format!("127.0.0.1:{port}");
    let world = World::with_env(REGISTRY, &[("RELAIS__HTTP__LISTEN", listen.as_str())]).await;
    (world, port)
}

#[tokio::test]
async fn metrics_count_a_known_scenario_exactly_and_carry_no_patient_data() {
    // Arrange
    let (world, port) = world_with_http().await;
    // Ajaccio's référent is busy for a whole round: one trip through the ladder.
    world
        .smtp
        .refuse_recipient_next("ccas@ajaccio.test", 2, 451, "4.2.1 mailbox busy");
    let app = world.spawn();

    // Act: two copies of one alert, a two-network alert, a retried one, an
    // invalid message and an unroutable alert.
    let first = alert("SOS75-M1", "orientation_sociale", "75115");
    world.publish("orientation_sociale", &first).await;
    world.publish("orientation_sociale", &first).await;
    world
        .publish(
            "acces_aux_droits",
            &alert("SOS75-M2", "acces_aux_droits", "75120"),
        )
        .await;
    world
        .publish(
            "orientation_sociale",
            &alert("SOS2A-M3", "orientation_sociale", "2A004"),
        )
        .await;
    world.publish("orientation_sociale", b"not json").await;
    world
        .publish(
            "demande_visite",
            &alert("SOS75-M4", "demande_visite", "75113"),
        )
        .await;
    world.smtp.wait_for(4, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.dead(), 2, WAIT).await, 2);
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    tokio::time::sleep(Duration::from_millis(400)).await;

    // Assert
    let (status, metrics) = http_get(port, "/metrics").await;
    assert_eq!(status, 200);
    let expected = [
        // 6 published, and the retried one came back once.
        ("relais_alerts_received_total", 7.0),
        ("relais_alerts_delivered_total{network=\"ccas\"}", 2.0),
        ("relais_alerts_delivered_total{network=\"cpam\"}", 1.0),
        ("relais_alerts_delivered_total{network=\"caf\"}", 1.0),
        ("relais_duplicates_skipped_total", 1.0),
        ("relais_emails_sent_total", 4.0),
        ("relais_emails_failed_total{class=\"transient\"}", 2.0),
        ("relais_alerts_retried_total{delay=\"200ms\"}", 1.0),
        ("relais_alerts_dead_lettered_total{reason=\"invalid\"}", 1.0),
        (
            "relais_alerts_dead_lettered_total{reason=\"unroutable\"}",
            1.0,
        ),
        ("relais_smtp_send_duration_seconds_count", 4.0),
        ("relais_relay_latency_seconds_count", 3.0),
        ("relais_alert_latency_seconds_count", 3.0),
        ("relais_amqp_connected", 1.0),
        ("relais_registry_referents", 6.0),
        (
            &format!(
                "relais_registry_info{{digest=\"{}\",version=\"\"}}",
                support::registry_digest(REGISTRY)
            ),
            1.0,
        ),
        (
            &format!("relais_queue_messages{{queue=\"{}\"}}", world.dead()),
            2.0,
        ),
        (
            &format!("relais_queue_messages{{queue=\"{}\"}}", world.queue),
            0.0,
        ),
        (
            &format!("relais_queue_consumers{{queue=\"{}\"}}", world.queue),
            1.0,
        ),
    ];
    for (name, value) in expected {
        assert_eq!(sample(&metrics, name), Some(value), "{name} in:\n{metrics}");
    }
    assert!(
        metrics.contains("relais_build_info{version=\""),
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            "relais_registry_last_reload_success_timestamp_seconds"
        )
        .unwrap()
            > 1.7e9
    );
    for private in ["Jeanne", "Durand", "SOS75-M1", "75115", "camille"] {
        assert!(
            !metrics.contains(private),
            "{private} must not appear in /metrics"
        );
    }
    let (status, body) = http_get(port, "/readyz").await;
    assert_eq!(
        (status, body),
        (
            200,
            format!(
                r#"{{"ready":true,"consumer":"consuming","registry":"loaded: sha256:{}","smtp":"ok","store":"ok","role":"active"}}"#,
                support::registry_digest(REGISTRY)
            )
        )
    );
    assert_eq!(http_get(port, "/healthz").await.0, 200);
    app.stop().await;
    world.cleanup().await;
}

#[tokio::test]
async fn status_and_the_dead_letter_tools_round_trip_real_dead_letters() {
    // Arrange: Paris 15e's mailbox refuses everything, for good.
    let world = World::new(REGISTRY).await;
    world
        .smtp
        .refuse_recipient("social@paris.test", 550, "5.1.1 mailbox unknown");
    let app = world.spawn();
    for n in 1..=3 {
        let id = format!("SOS75-DL{n}");
        world
            .publish(
                "orientation_sociale",
                &alert(&id, "orientation_sociale", "75115"),
            )
            .await;
    }
    world
        .publish("orientation_sociale", b"{\"broken\": true}")
        .await;
    assert_eq!(world.wait_for_depth(&world.dead(), 4, WAIT).await, 4);

    // status: exit 2 while dead letters wait.
    let status = world.cli(&["status", "--json"]);
    assert_eq!(status.status.code(), Some(2), "{}", text(&status.stderr));
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["dead_letters"], 4);
    assert_eq!(report["broker"]["reachable"], true);
    assert_eq!(
        report["broker"]["url"],
        "amqp://guest:***@127.0.0.1:5672/%2f"
    );
    let main = report["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == world.queue.as_str())
        .unwrap();
    assert_eq!(
        (main["messages"].clone(), main["consumers"].clone()),
        (0.into(), 1.into())
    );
    assert!(report["oldest_dead_letter_age_seconds"].as_i64().unwrap() >= 0);
    let screen = world.cli(&["status"]);
    assert!(
        text(&screen.stdout).contains(&world.dead()),
        "{}",
        text(&screen.stdout)
    );

    // list: what and why, without consuming, without patient data.
    let list = world.cli(&["dead-letters", "list", "--json"]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    let letters: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let letters = letters.as_array().unwrap();
    assert_eq!(letters.len(), 4);
    let rejected: Vec<_> = letters
        .iter()
        .filter(|l| l["reason"] == "rejected")
        .collect();
    assert_eq!(rejected.len(), 3);
    for letter in &rejected {
        assert_eq!(letter["kind"], "orientation_sociale");
        assert_eq!(letter["territory"], "commune 75115");
        assert_eq!(letter["attempts"], 1);
        assert!(
            letter["error"].as_str().unwrap().contains("550"),
            "{letter}"
        );
    }
    let invalid = letters.iter().find(|l| l["reason"] == "invalid").unwrap();
    assert_eq!(
        (invalid["alert_id"].clone(), invalid["kind"].clone()),
        ("-".into(), "orientation_sociale".into())
    );
    let plain = world.cli(&["dead-letters", "list"]);
    assert!(!text(&plain.stdout).contains("Jeanne") && !text(&list.stdout).contains("Jeanne"));
    assert_eq!(
        world.broker.depth(&world.dead()).await,
        4,
        "listing consumes nothing"
    );

    // purge needs its confirmation.
    let unconfirmed = world.cli(&["dead-letters", "purge", "--id", "-"]);
    assert_eq!(unconfirmed.status.code(), Some(1));
    assert!(text(&unconfirmed.stderr).contains("run again with --yes"));
    assert_eq!(world.broker.depth(&world.dead()).await, 4);
    let purged = world.cli(&["dead-letters", "purge", "--id", "-", "--yes"]);
    assert!(
        text(&purged.stdout).contains("purged 1 dead letter(s)"),
        "{}",
        text(&purged.stdout)
    );

    // replay after the mailbox is fixed: delivered, once each.
    world.smtp.heal();
    let replay = world.cli(&["dead-letters", "replay", "--reason", "rejected"]);
    assert!(replay.status.success(), "{}", text(&replay.stderr));
    assert!(
        text(&replay.stdout).contains("replayed 3 dead letter(s)"),
        "{}",
        text(&replay.stdout)
    );
    let mails = world.smtp.wait_for(3, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.stop().await;
    let mut ids: Vec<String> = mails.iter().map(|m| m.alert_id()).collect();
    ids.sort();
    assert_eq!(ids, ["SOS75-DL1", "SOS75-DL2", "SOS75-DL3"]);
    assert_eq!(world.smtp.mails().len(), 3);
    assert!(mails.iter().all(|m| m.to == ["social@paris.test"]));
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    assert_eq!(world.cli(&["status"]).status.code(), Some(0));

    // Every command that read or changed the dead letters left its trace:
    // who, what, how many (status, which reads only counts, does not; this
    // listing is recorded once it is shown).
    let audit = world.cli(&["audit", "--since", "1h"]);
    assert!(audit.status.success(), "{}", text(&audit.stderr));
    let trace = world.cli(&["audit", "--operations"]);
    assert!(trace.status.success(), "{}", text(&trace.stderr));
    let operator = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let lines: Vec<(String, String, String)> = text(&trace.stdout)
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 4, "{line}");
            assert!(
                time::OffsetDateTime::parse(fields[0], &Rfc3339).is_ok(),
                "{line}"
            );
            (fields[1].into(), fields[2].into(), fields[3].into())
        })
        .collect();
    let by = |command: &str, count: usize| {
        (
            operator.trim().to_owned(),
            command.to_owned(),
            count.to_string(),
        )
    };
    assert_eq!(
        lines,
        [
            by("dead-letters list", 4),
            by("dead-letters list", 4),
            by("dead-letters purge --id -", 1),
            by("dead-letters purge --id - --yes", 1),
            by("dead-letters replay --reason rejected", 3),
            by("audit --since 1h", 3),
        ]
    );
    world.cleanup().await;
}

#[tokio::test]
async fn dead_letters_older_than_a_duration_are_purged_and_the_others_kept() {
    // Arrange: two dead letters, one of 40 days ago and one of today, as
    // relais writes them: under its login (relais ignores its headers on
    // any other message).
    let world = World::new(REGISTRY).await;
    let relais = world.settings().amqp.login().unwrap();
    for (id, days) in [("SOS75-OLD", 40), ("SOS75-NEW", 0)] {
        let at = time::OffsetDateTime::now_utc() - time::Duration::days(days);
        let mut headers = FieldTable::default();
        headers.insert(
            "x-relais-reason".into(),
            AMQPValue::LongString("rejected".into()),
        );
        headers.insert(
            "x-relais-failed-at".into(),
            AMQPValue::LongString(at.format(&Rfc3339).unwrap().as_str().into()),
        );
        world
            .broker
            .publish_with(
                &world.dead(),
                "orientation_sociale",
                &alert(id, "orientation_sociale", "75115"),
                BasicProperties::default()
                    .with_user_id(relais.as_str().into())
                    .with_headers(headers),
            )
            .await;
    }

    // Act and assert: a preview deletes nothing; --yes takes the old one.
    let preview = world.cli(&["dead-letters", "purge", "--older-than", "30d"]);
    assert_eq!(preview.status.code(), Some(1));
    assert!(
        text(&preview.stderr).contains(
            "1 dead letter(s) older than 30days would be deleted for good; run again with --yes"
        ),
        "{}",
        text(&preview.stderr)
    );
    assert_eq!(world.broker.depth(&world.dead()).await, 2);
    let purged = world.cli(&["dead-letters", "purge", "--older-than", "30d", "--yes"]);
    assert!(purged.status.success(), "{}", text(&purged.stderr));
    let out = text(&purged.stdout);
    assert!(out.starts_with("SOS75-OLD\t"), "{out}");
    assert!(
        out.ends_with("purged 1 dead letter(s) older than 30days\n"),
        "{out}"
    );
    let left = world.broker.take_all(&world.dead()).await;
    assert_eq!(left.len(), 1);
    assert!(String::from_utf8_lossy(&left[0].body).contains("SOS75-NEW"));
    world.cleanup().await;
}

/// Reads from `stream` until the server closes it; `None` if it is still
/// open after `within`.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut received))
        .await
        .ok()
        .map(|_| received)
}

#[tokio::test]
async fn the_http_endpoint_closes_slow_and_idle_clients_and_caps_its_connections() {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;
    // Arrange: headers within 2s, at most two connections.
    let port = SmtpServer::free_port().await;
    let listen = format!("127.0.0.1:{port}");
    let world = World::with_env(
        REGISTRY,
        &[
            ("RELAIS__HTTP__LISTEN", listen.as_str()),
            ("RELAIS__HTTP__HEADER_TIMEOUT", "2s"),
            ("RELAIS__HTTP__MAX_CONNECTIONS", "2"),
        ],
    )
    .await;
    let app = world.spawn();
    while http_get(port, "/healthz").await.0 != 200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A client that sends half a request, then nothing: closed, unanswered.
    let mut slow = TcpStream::connect(&listen).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let answer = closed_within(&mut slow, WAIT).await;
    let answer = String::from_utf8_lossy(answer.as_deref().expect("closed")).into_owned();
    assert!(!answer.contains("alive"), "{answer}");

    // A kept-alive connection, answered once, then idle: closed.
    let mut idle = TcpStream::connect(&listen).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_within(&mut idle, WAIT).await.expect("closed");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("alive\n"), "{answer}");

    // Two silent connections hold both slots: a third client takes the
    // place of the oldest, which is closed, and is answered.
    let mut first = TcpStream::connect(&listen).await.unwrap();
    let _second = TcpStream::connect(&listen).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(&listen).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_within(&mut third, WAIT).await.expect("answered");
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200 OK\r\n"),
        "{answer:?}"
    );
    let evicted = closed_within(&mut first, Duration::from_millis(500)).await;
    assert_eq!(
        evicted.as_deref(),
        Some(&b""[..]),
        "the oldest silent client closed"
    );
    app.stop().await;
    world.cleanup().await;
}

#[tokio::test]
async fn a_replay_by_a_reason_relais_does_not_know_is_refused_with_the_list_of_reasons() {
    let world = World::new(REGISTRY).await;

    let output = world.cli(&["dead-letters", "replay", "--reason", "rejeted"]);

    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(
            "invalid value 'rejeted' for '--reason <REASON>': is not a dead-letter reason; the \
             reasons are invalid, unroutable, forbidden, conflict, rejected, exhausted, \
             delivery_limit"
        ),
        "{stderr}"
    );
    world.cleanup().await;
}

/// A route whose alerts wait an hour for an acknowledgement: their copies
/// stay in `<queue>.escalation.1h` for the whole test.
fn escalating_hourly() -> String {
    support::escalating("urgent = \"1h\"")
}

#[tokio::test]
async fn the_escalation_copy_of_an_acknowledged_alert_is_purged_and_the_others_kept() {
    // Arrange: two alerts reach Camille, each with its copy waiting an hour
    // for the deputies; she acknowledges one through her link.
    let (world, port) = World::with_ack(&escalating_hourly(), ACK_SECRET, &[]).await;
    let escalation = format!("{}.escalation.1h", world.queue);
    let app = world.spawn();
    for id in ["SOS75-ACKED", "SOS75-WAITING"] {
        world
            .publish(
                "orientation_sociale",
                &alert(id, "orientation_sociale", "75113"),
            )
            .await;
    }
    let mails = world.smtp.wait_for(2, WAIT).await;
    assert_eq!(world.wait_for_depth(&escalation, 2, WAIT).await, 2);
    let acked = mails
        .iter()
        .find(|mail| mail.alert_id() == "SOS75-ACKED")
        .unwrap()
        .text();
    let link = acked.lines().find(|line| line.contains("/ack/")).unwrap();
    let (status, page) = http_request(port, "POST", &link[link.find("/ack/").unwrap()..]).await;
    assert_eq!(status, 200, "{page}");

    // Act and Assert: the list counts the copies, never shows them.
    let list = world.cli(&["escalations", "list", "--json"]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let queue = &listed["queues"][0];
    assert_eq!(queue["queue"], escalation.as_str(), "{listed}");
    assert_eq!(
        (queue["wait"].clone(), queue["messages"].clone()),
        ("1h".into(), 2.into())
    );
    assert!(queue["oldest_seconds"].as_u64().unwrap() < 60, "{listed}");
    let plain = world.cli(&["escalations", "list"]);
    assert!(text(&plain.stdout).contains(&format!("{escalation}\t2 waiting\toldest=")));
    for output in [&list.stdout, &plain.stdout] {
        assert!(!text(output).contains("Jeanne") && !text(output).contains("SOS75"));
    }

    // Without --yes, only what would go.
    let preview = world.cli(&["escalations", "purge", "--acknowledged"]);
    assert_eq!(preview.status.code(), Some(1));
    assert!(
        text(&preview.stderr).contains(
            "1 escalation cop(ies) of acknowledged alerts would be removed for good (1 kept); \
             run again with --yes"
        ),
        "{}",
        text(&preview.stderr)
    );
    assert_eq!(world.broker.depth(&escalation).await, 2);

    let purged = world.cli(&["escalations", "purge", "--acknowledged", "--yes"]);
    assert!(purged.status.success(), "{}", text(&purged.stderr));
    assert_eq!(
        text(&purged.stdout),
        format!(
            "{escalation}\tSOS75-ACKED\tdeputies\n\
             purged 1 escalation cop(ies) of acknowledged alerts; 1 kept\n"
        )
    );

    // The unacknowledged alert's copy waits on, as it was; nothing was
    // emailed, nothing went back to the main queue.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(world.broker.depth(&world.queue).await, 0);
    app.stop().await;
    assert_eq!(world.smtp.mails().len(), 2);
    let left = world.broker.take_all(&escalation).await;
    assert_eq!(left.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&left[0].body).unwrap();
    assert_eq!(body["id"], "SOS75-WAITING");
    assert_eq!(left[0].header("x-relais-escalation").as_deref(), Some("1"));

    // Each command left its trace.
    let trace = world.cli(&["audit", "--operations"]);
    let commands: Vec<(String, String)> = text(&trace.stdout)
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            (fields[2].to_owned(), fields[3].to_owned())
        })
        .collect();
    let done = |command: &str, count: &str| (command.to_owned(), count.to_owned());
    assert_eq!(
        commands,
        [
            done("escalations list", "2"),
            done("escalations list", "2"),
            done("escalations purge --acknowledged", "1"),
            done("escalations purge --acknowledged --yes", "1"),
        ]
    );

    // The purged copy's step is over in the audit trail, as if its timer
    // had found the alert acknowledged; the kept one's is still due.
    let steps = |id: &str| -> Vec<String> {
        let audit = world.cli(&["audit", "--alert", id]);
        text(&audit.stdout)
            .lines()
            .filter(|line| line.contains("escalation"))
            .map(|line| line.split('\t').skip(2).collect::<Vec<_>>().join("\t"))
            .collect()
    };
    assert_eq!(steps("SOS75-ACKED"), ["deputies\tescalation"]);
    assert_eq!(steps("SOS75-WAITING"), ["deputies\tescalation due"]);
    let _ = world
        .broker
        .channel
        .queue_delete(escalation.as_str().into(), Default::default())
        .await;
    world.cleanup().await;
}

#[tokio::test]
async fn a_copy_the_purge_keeps_falls_due_when_it_was_due_not_a_wait_later() {
    // Arrange: an alert nobody acknowledges, its copy due 8 s after the
    // email; most of the wait goes by (with seconds left for the purge to
    // start on a loaded machine).
    let registry = support::escalating("urgent = \"8s\"");
    let (world, _port) = World::with_ack(&registry, ACK_SECRET, &[]).await;
    let escalation = format!("{}.escalation.8s", world.queue);
    let app = world.spawn();
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-KEPT", "orientation_sociale", "75113"),
        )
        .await;
    let first = world.smtp.wait_for(1, WAIT).await;
    assert_eq!(world.wait_for_depth(&escalation, 1, WAIT).await, 1);
    tokio::time::sleep(Duration::from_millis(5000)).await;

    // Act: the purge takes the copy and gives it back.
    let purged = world.cli(&["escalations", "purge", "--acknowledged", "--yes"]);
    assert!(purged.status.success(), "{}", text(&purged.stderr));
    assert!(
        text(&purged.stdout)
            .contains("purged 0 escalation cop(ies) of acknowledged alerts; 1 kept")
    );

    // Assert: the deputy is emailed when the step was due, not a whole
    // wait after the purge (as a republished copy would be).
    let both = world.smtp.wait_for(2, WAIT).await;
    app.stop().await;
    assert_eq!(both[1].to, ["dominique@ccas-paris13.test"]);
    let waited = both[1].at.duration_since(first[0].at);
    assert!(waited < Duration::from_millis(12_000), "{waited:?}");
    let _ = world
        .broker
        .channel
        .queue_delete(escalation.as_str().into(), Default::default())
        .await;
    world.cleanup().await;
}

#[tokio::test]
async fn a_dead_letter_listed_again_and_again_stays_until_replayed_or_purged() {
    // Arrange: one alert dead-lettered (a commune that does not exist).
    // Each listing takes it and gives it back, which counts as a delivery
    // on a quorum queue; RabbitMQ 4.0 drops a message past 20 by default.
    let world = World::new(REGISTRY).await;
    let app = world.spawn();
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-KEPT", "orientation_sociale", "7511X"),
        )
        .await;
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    app.stop().await;

    // Act: an operator lists the dead letters 25 times.
    let mut listed = Vec::new();
    for _ in 0..25 {
        let list = world.cli(&["dead-letters", "list", "--json"]);
        assert!(list.status.success(), "{}", text(&list.stderr));
        let letters: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
        listed.push(letters.as_array().map_or(0, Vec::len));
    }

    // Assert: it was there each time, and still is.
    assert_eq!(listed, [1; 25]);
    assert_eq!(world.broker.depth(&world.dead()).await, 1);
    world.cleanup().await;
}

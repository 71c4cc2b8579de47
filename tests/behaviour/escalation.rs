//! Escalation, for real: waits of seconds, the real broker keeping the
//! timers, the real binary killed (SIGKILL) while one waits and started
//! again after it fell due. An alert nobody acknowledges climbs to the
//! deputy, then to the fallback référent, then is declared unacknowledged;
//! an acknowledgement stops the chain. Each step is checked at the SMTP
//! server (who got which email, how many), on the events exchange, and in
//! `relais pending` and `relais audit`.

use relais_testkit as support;

use std::time::Duration;

use serde_json::Value;
use support::smtp::Mail;
use support::{ACK_SECRET, WAIT, World, alert, escalating, http_request, signal, wait_exit};

/// The escalation tests' registry, its urgent alerts waiting [`STEP`] at
/// each step.
fn registry() -> String {
    escalating("urgent = \"3s\", normal = \"1h\"")
}

/// How long an urgent alert waits for an acknowledgement at each step.
const STEP: Duration = Duration::from_secs(3);

/// A world whose relais sends acknowledgement links and serves /metrics;
/// returns it with the port of the acknowledgement pages.
async fn world() -> (World, u16) {
    let metrics = support::smtp::SmtpServer::free_port().await;
    let metrics = format!("127.0.0.1:{metrics}");
    World::with_ack(
        &registry(),
        ACK_SECRET,
        &[("RELAIS__HTTP__LISTEN", metrics.as_str())],
    )
    .await
}

fn recipients(mails: &[Mail]) -> Vec<String> {
    mails.iter().map(|mail| mail.to.join(",")).collect()
}

/// The events of the queue, as `(routing key, référent or network)`,
/// each checked against the schema.
async fn events(world: &World, queue: &str) -> Vec<(String, String)> {
    let schema: Value = serde_json::from_str(include_str!("../../schema/event.v2.json")).unwrap();
    let schema = jsonschema::validator_for(&schema).unwrap();
    world
        .broker
        .take_all(queue)
        .await
        .into_iter()
        .map(|message| {
            let event: Value = serde_json::from_slice(&message.body).unwrap();
            assert!(schema.is_valid(&event), "{event}");
            assert_eq!(event["alert_id"], "SOS75-ESC");
            // The alert's publisher (none: `=`), then the status.
            let (publisher, status) = message.routing_key.split_once('.').unwrap();
            assert_eq!(publisher, "=");
            assert_eq!(event["status"], status);
            let who = event["referent"]["id"]
                .as_str()
                .or(event["network"].as_str())
                .unwrap_or_default()
                .to_owned();
            (status.to_owned(), who)
        })
        .collect()
}

fn pending(world: &World) -> Value {
    let output = world.cli(&["pending", "--json"]);
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn an_alert_nobody_acknowledges_climbs_to_the_deputy_then_the_fallback_then_is_unacknowledged_across_a_sigkill()
 {
    // Arrange
    let (world, _port) = world().await;
    let queue = world.bind_events("#").await;
    let escalation = format!("{}.escalation.3s", world.queue);
    let mut relais = world.spawn_binary();

    // Act: the alert reaches Camille; nobody acknowledges.
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-ESC", "orientation_sociale", "75113"),
        )
        .await;
    let first = world.smtp.wait_for(1, WAIT).await;
    // Step 1: after the wait, her deputy.
    let second = world.smtp.wait_for(2, WAIT).await;
    assert!(second[1].at.duration_since(first[0].at) >= STEP);
    // The next step waits in the broker; relais is killed meanwhile, and
    // started again only after it fell due.
    assert_eq!(world.wait_for_depth(&escalation, 1, WAIT).await, 1);
    let during = pending(&world);
    signal(&relais, "KILL");
    wait_exit(&mut relais, WAIT).await;
    tokio::time::sleep(STEP + Duration::from_secs(1)).await;
    let mut relais = world.spawn_binary();
    // Step 2: the fallback référent; step 3: declared unacknowledged.
    world.smtp.wait_for(3, WAIT).await;
    assert_eq!(world.wait_for_depth(&queue, 4, WAIT).await, 4);
    // Nothing more comes after the chain's end.
    let all = world.smtp.wait_for(4, STEP + Duration::from_secs(1)).await;
    signal(&relais, "TERM");
    wait_exit(&mut relais, WAIT).await;

    // Assert: each référent once, in the order of the chain.
    assert_eq!(
        recipients(&all),
        [
            "camille@ccas-paris13.test",
            "dominique@ccas-paris13.test",
            "permanence@paris.test"
        ]
    );
    assert!(!all[0].text().contains("Relance"), "{}", all[0].text());
    for escalated in &all[1..] {
        let text = escalated.text();
        assert!(
            text.contains(
                "Relance : personne n'a confirmé la prise en compte de cette alerte depuis"
            ),
            "{text}"
        );
    }
    assert!(all[1].text().contains("depuis 3 s."), "{}", all[1].text());
    assert!(all[2].text().contains("depuis 6 s."), "{}", all[2].text());
    assert_eq!(
        events(&world, &queue).await,
        [
            ("delivered".to_owned(), "camille".to_owned()),
            ("escalated".to_owned(), "dominique".to_owned()),
            ("escalated".to_owned(), "permanence".to_owned()),
            ("unacknowledged".to_owned(), "ccas".to_owned()),
        ]
    );
    assert_eq!(world.broker.depth(&escalation).await, 0);
    assert_eq!(world.broker.depth(&world.queue).await, 0);

    // While it waited for the fallback, `relais pending` said so; now it
    // says the chain ended.
    let during = &during["pending"][0];
    assert_eq!(during["alert_id"], "SOS75-ESC");
    assert_eq!(during["network"], "ccas");
    assert_eq!(
        during["referents"],
        serde_json::json!(["camille", "dominique"])
    );
    assert_eq!(during["next_escalation"]["step"], "fallback");
    let after = pending(&world);
    assert_eq!(after["pending"].as_array().unwrap().len(), 1, "{after}");
    assert!(
        after["pending"][0]["unacknowledged_at"].is_string(),
        "{after}"
    );
    assert!(after["pending"][0]["next_escalation"].is_null(), "{after}");
    let audit = world.cli(&["audit", "--alert", "SOS75-ESC"]);
    let audit = String::from_utf8_lossy(&audit.stdout).into_owned();
    let steps: Vec<&str> = audit
        .lines()
        .filter(|line| line.ends_with("\tescalation"))
        .map(|line| line.split('\t').nth(2).unwrap())
        .collect();
    assert_eq!(steps, ["deputies", "fallback", "unacknowledged"], "{audit}");

    let _ = world
        .broker
        .channel
        .queue_delete(escalation.as_str().into(), Default::default())
        .await;
    world.cleanup().await;
}

#[tokio::test]
async fn an_acknowledgement_stops_the_chain() {
    // Arrange
    let (world, port) = world().await;
    let queue = world.bind_events("#").await;
    let escalation = format!("{}.escalation.3s", world.queue);
    let app = world.spawn();
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-ESC", "orientation_sociale", "75113"),
        )
        .await;
    let mails = world.smtp.wait_for(1, WAIT).await;
    let text = mails[0].text();
    let link = text
        .lines()
        .find(|line| line.contains("/ack/"))
        .unwrap_or_else(|| panic!("no link in:\n{text}"))
        .trim()
        .to_owned();
    let path = &link[link.find("/ack/").unwrap()..];

    // Act: Camille acknowledges before the wait ends (once her email is
    // in the store, as it is long before a person clicks).
    assert_eq!(world.wait_for_recorded("SOS75-ESC", 1, WAIT).await, 1);
    let (status, page) = http_request(port, "POST", path).await;
    assert_eq!(status, 200, "{page}");
    // The step falls due and is carried out: nobody to email.
    assert_eq!(world.wait_for_depth(&escalation, 1, WAIT).await, 1);
    assert_eq!(world.wait_for_depth(&escalation, 0, WAIT).await, 0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = world.smtp.wait_for(2, STEP).await;
    let metrics_port = world
        .settings()
        .http
        .listen
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (_, metrics) = support::http_get(metrics_port, "/metrics").await;
    app.stop().await;

    // Assert: only Camille's email; delivered and acknowledged, nothing
    // escalated; nothing pending.
    assert_eq!(recipients(&later), ["camille@ccas-paris13.test"]);
    assert_eq!(
        events(&world, &queue).await,
        [
            ("delivered".to_owned(), "camille".to_owned()),
            ("acknowledged".to_owned(), "camille".to_owned()),
        ]
    );
    assert_eq!(pending(&world), serde_json::json!({ "pending": [] }));
    assert_eq!(world.broker.depth(&world.queue).await, 0);
    let sample = |name| support::sample(&metrics, name);
    assert_eq!(
        sample("relais_acknowledgement_time_seconds_count{network=\"ccas\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(sample("relais_acknowledgements_total"), Some(1.0));
    assert_eq!(sample("relais_escalations_total{step=\"deputies\"}"), None);
    let _ = world
        .broker
        .channel
        .queue_delete(escalation.as_str().into(), Default::default())
        .await;
    world.cleanup().await;
}

/// A zone where the next whole minute (or the one after, when this one is
/// nearly over) is daytime on a day that is no public holiday in Paris:
/// the zone, that minute as `HH:MM` in it, and the instant it begins.
fn next_opening() -> (relais::calendar::Zone, String, std::time::SystemTime) {
    use relais::calendar::{Zone, is_holiday};
    let paris = relais::territory::Departement::parse("75").unwrap();
    let now = jiff::Timestamp::now();
    Zone::ALL
        .into_iter()
        .find_map(|zone| {
            let local = zone.local(now);
            let ahead = if local.second() < 45 { 1 } else { 2 };
            let minutes = i32::from(local.hour()) * 60 + i32::from(local.minute()) + ahead;
            let daytime = (60..22 * 60).contains(&minutes);
            (daytime && !is_holiday(local.date(), paris)).then(|| {
                let wait = (minutes * 60)
                    - (i32::from(local.hour()) * 3600
                        + i32::from(local.minute()) * 60
                        + i32::from(local.second()));
                // Whole seconds: `now`'s fraction is below its local second.
                let begins = now.as_second() + i64::from(wait);
                let begins =
                    std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(begins).unwrap());
                (
                    zone,
                    format!("{:02}:{:02}", minutes / 60, minutes % 60),
                    begins,
                )
            })
        })
        .expect("a zone where the next minute is daytime on a working day")
}

#[tokio::test]
async fn a_step_counts_only_the_office_s_open_time_and_falls_after_it_opens() {
    // Arrange: the CCAS opens at the next whole minute, in its own zone,
    // every day; its steps wait 3 s of open time.
    let (zone, opens, opens_at) = next_opening();
    let registry = format!(
        "{}\n[[network]]\nname = \"ccas\"\ntime_zone = \"{}\"\nhours = {{ mon-sun = \"{opens}-23:59\" }}\n",
        registry(),
        zone.iana()
    );
    let (world, _port) = World::with_ack(&registry, ACK_SECRET, &[]).await;
    let opened = std::time::Instant::now()
        + opens_at
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
    let mut relais = world.spawn_binary();

    // Act: the alert comes while the office is closed.
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-HOURS", "orientation_sociale", "75113"),
        )
        .await;
    let first = world.smtp.wait_for(1, WAIT).await;
    let due_line = |world: &World| {
        let audit = world.cli(&["audit", "--alert", "SOS75-HOURS"]);
        String::from_utf8_lossy(&audit.stdout)
            .lines()
            .find(|line| line.contains("escalation due"))
            .map(str::to_owned)
    };
    let scheduled = {
        let deadline = std::time::Instant::now() + WAIT;
        let mut line = due_line(&world);
        while line.is_none() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            line = due_line(&world);
        }
        line.unwrap()
    };
    let both = world.smtp.wait_for(2, Duration::from_secs(150)).await;
    signal(&relais, "TERM");
    wait_exit(&mut relais, WAIT).await;

    // Assert: Camille at once, day or night; the step falls 3 s after the
    // opening, not 3 s after the email; Dominique then.
    let due = time::OffsetDateTime::from(opens_at + STEP)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(
        recipients(&both),
        ["camille@ccas-paris13.test", "dominique@ccas-paris13.test"]
    );
    assert!(
        first[0].at < opened,
        "the first email waited for the opening"
    );
    assert!(
        scheduled.starts_with(&format!("{due}\tSOS75-HOURS\tdeputies\tescalation due")),
        "{scheduled} (due {due})"
    );
    assert!(
        both[1].at >= opened + STEP,
        "the step fell before the office had 3 s open"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn resolve_says_when_the_first_step_would_fall_in_the_office_s_open_time() {
    // Arrange: the CCAS opens weekdays 09:00-17:00.
    let registry = format!(
        "{}\n[[network]]\nname = \"ccas\"\nhours = {{ mon-fri = \"09:00-17:00\" }}\n",
        registry()
    );
    let world = World::new(&registry).await;

    // Act: an alert on a Friday evening.
    let resolved = world.cli(&[
        "resolve",
        "--kind",
        "orientation_sociale",
        "--commune",
        "75113",
        "--at",
        "2026-12-04T18:00:00+01:00",
    ]);

    // Assert: its steps wait 3 s of open time, from Monday 09:00.
    assert!(resolved.status.success(), "{resolved:?}");
    let said = String::from_utf8_lossy(&resolved.stderr);
    assert!(
        said.ends_with(
            "# escalation (urgent): its first step would fall on 07/12/2026 à 09:00 (heure de Paris)\n\
             # escalation (normal): its first step would fall on 07/12/2026 à 10:00 (heure de Paris)\n"
        ),
        "{said}"
    );
    world.cleanup().await;
}

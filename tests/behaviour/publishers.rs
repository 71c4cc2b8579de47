//! Who published an alert, and what relais trusts of it: a publisher that
//! sets `user_id` (RabbitMQ checks it against its login) is retried,
//! dead-lettered and replayed like any other, under relais's login, its
//! identity kept in `x-relais-publisher`; the registry's `[[publisher]]`
//! entries decide who may alert which territory as which association; and
//! the référents already served travel with a dead letter, so that a replay
//! never emails them twice. Runs against the real broker, with a RabbitMQ
//! user of the test's own for the dispatch software.
//!
//! And `relais publish`, as an operator or a script sends an alert: a valid
//! one persistently, an invalid one refused, an exchange where nothing
//! would receive it reported, a full main queue refusing the next alert
//! and the publisher told.

use relais_testkit as support;

use std::process::Output;
use std::time::Duration;

use lapin::options::ExchangeDeclareOptions;
use lapin::types::FieldTable;
use support::smtp::Fault;
use support::{DispatchUser, REGISTRY, WAIT, World, alert, text, unique};

#[tokio::test]
async fn an_alert_whose_publisher_set_user_id_is_retried_under_relais_s_login_and_delivered_once() {
    // Arrange: the first two transactions fail (451), the in-process
    // attempts: the alert goes to the retry queue.
    let dispatch = DispatchUser::create("retried");
    let world = World::new(REGISTRY).await;
    world.set_retry_delays(&["2s"]);
    world
        .smtp
        .fail_next(2, Fault::Reply(451, "4.3.0 try again later"));
    let app = world.spawn();

    // Act
    dispatch
        .publish(&world, &alert("SOS75-UID", "orientation_sociale", "75115"))
        .await;

    // Assert: the broker took the retry (the alert waits in the retry
    // queue), then the alert is delivered once; nothing dead-lettered.
    let retry = format!("{}.retry.2s", world.queue);
    assert_eq!(world.wait_for_depth(&retry, 1, WAIT).await, 1);
    let mails = world.smtp.wait_for(1, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.stop().await;
    assert_eq!(mails.len(), 1);
    assert_eq!(world.smtp.mails().len(), 1);
    assert_eq!(world.smtp.attempts(), 3);
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    world.cleanup().await;
}

#[tokio::test]
async fn a_dead_letter_names_its_publisher_and_keeps_it_through_a_replay() {
    // Arrange: an alert nobody serves (Marseille): dead-lettered at once.
    let dispatch = DispatchUser::create("replayed");
    let world = World::new(REGISTRY).await;
    let app = world.spawn();
    dispatch
        .publish(&world, &alert("SOS13-UID", "orientation_sociale", "13055"))
        .await;
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);

    // Act: the operator replays it; it is dead-lettered again.
    let replay = world.cli(&["dead-letters", "replay", "--all"]);
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    app.stop().await;

    // Assert: published under relais's login, naming the publisher.
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].properties.user_id().as_ref().map(|u| u.as_str()),
        Some("guest")
    );
    assert_eq!(
        dead[0].header("x-relais-publisher").as_deref(),
        Some(dispatch.name.as_str())
    );
    assert_eq!(
        dead[0].header("x-relais-reason").as_deref(),
        Some("unroutable")
    );
    world.cleanup().await;
}

#[tokio::test]
async fn with_publishers_declared_only_a_declared_user_may_alert_its_territory_as_its_association()
{
    // Arrange: the dispatch user may alert about Paris, as SOS Médecins
    // Paris, for orientation only.
    let dispatch = DispatchUser::create("forbidden");
    let registry = format!(
        "{REGISTRY}
[[publisher]]
user = \"{}\"
association = \"SOS Médecins Paris\"
departements = [\"75\"]
kinds = [\"orientation_sociale\"]
",
        dispatch.name
    );
    let world = World::new(&registry).await;
    let app = world.spawn();
    let as_other_association = {
        let mut body: serde_json::Value =
            serde_json::from_slice(&alert("SOS-ASSOC", "orientation_sociale", "75113")).unwrap();
        body["association"] = "SOS Médecins Bordeaux".into();
        body.to_string().into_bytes()
    };

    // Act
    dispatch
        .publish(&world, &alert("SOS-OK", "orientation_sociale", "75113"))
        .await;
    dispatch.publish(&world, &as_other_association).await;
    dispatch
        .publish(
            &world,
            &alert("SOS-AJACCIO", "orientation_sociale", "2A004"),
        )
        .await;
    dispatch
        .publish(&world, &alert("SOS-KIND", "acces_aux_droits", "75113"))
        .await;
    world
        .publish(
            "orientation_sociale",
            &alert("SOS-ANON", "orientation_sociale", "75113"),
        )
        .await;
    assert_eq!(world.wait_for_depth(&world.dead(), 4, WAIT).await, 4);
    app.stop().await;

    // Assert: the allowed alert reached its two référents; nobody else
    // was emailed; each other alert is dead-lettered naming its rule.
    let mut to: Vec<String> = world.smtp.mails().iter().map(|m| m.to.join(",")).collect();
    to.sort();
    assert_eq!(
        to,
        [
            "accueil@ccas-paris13.test",
            "camille.martin@ccas-paris13.test"
        ]
    );
    let user = &dispatch.name;
    let mut dead: Vec<(String, String, String)> = world
        .broker
        .take_all(&world.dead())
        .await
        .iter()
        .map(|d| {
            let body: serde_json::Value = serde_json::from_slice(&d.body).unwrap();
            (
                body["id"].as_str().unwrap().to_owned(),
                d.header("x-relais-reason").unwrap(),
                d.header("x-relais-error").unwrap(),
            )
        })
        .collect();
    dead.sort();
    let forbidden = |id: &str, error: String| (id.to_owned(), "forbidden".to_owned(), error);
    assert_eq!(
        dead,
        [
            forbidden(
                "SOS-AJACCIO",
                format!(
                    "the alert's territory is outside publisher `{user}`'s `communes` and \
                     `departements`"
                )
            ),
            forbidden(
                "SOS-ANON",
                "the message has no `user_id`: the registry declares its publishers, so every \
                 alert must carry its publisher's RabbitMQ user in `user_id`"
                    .into()
            ),
            forbidden(
                "SOS-ASSOC",
                format!("the alert's `association` is not the one of publisher `{user}`")
            ),
            forbidden(
                "SOS-KIND",
                format!(
                    "publisher `{user}` may not send alerts of kind `acces_aux_droits` (see its \
                     `kinds`)"
                )
            ),
        ]
    );
    world.cleanup().await;
}

#[tokio::test]
async fn a_replay_never_emails_again_a_referent_served_before_even_once_the_store_forgot() {
    // Arrange: the CAF's server refuses its référent for good, the CPAM's
    // accepts: the alert is dead-lettered as rejected, the CPAM served.
    let world = World::new(REGISTRY).await;
    world
        .smtp
        .refuse_recipient("referent@caf-paris.test", 550, "5.1.1 no such user");
    let app = world.spawn();
    world
        .publish(
            "acces_aux_droits",
            &alert("SOS75-SERVED", "acces_aux_droits", "75113"),
        )
        .await;
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    app.stop().await;
    let first: Vec<String> = world.smtp.mails().iter().map(|m| m.to.join(",")).collect();
    assert_eq!(first, ["referent@cpam-paris.test"]);

    // The address is fixed, and the store has forgotten the delivery (its
    // retention passed while the dead letter waited).
    world.smtp.heal();
    world.smtp.clear();
    for file in ["relais.db", "relais.db-wal", "relais.db-shm"] {
        let _ = std::fs::remove_file(world.dir.path().join("state").join(file));
    }

    // Act
    let app = world.spawn();
    let replay = world.cli(&["dead-letters", "replay", "--all"]);
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert_eq!(world.smtp.wait_for(1, WAIT).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.stop().await;

    // Assert: only the référent who had not received it.
    let replayed: Vec<String> = world.smtp.mails().iter().map(|m| m.to.join(",")).collect();
    assert_eq!(replayed, ["referent@caf-paris.test"]);
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    assert_eq!(world.broker.depth(&world.settings().amqp.queue).await, 0);
    world.cleanup().await;
}

#[tokio::test]
async fn publish_sends_a_valid_alert_persistently_and_refuses_an_invalid_one() {
    let world = World::new(REGISTRY).await;
    let body = alert("SOS75-PUB", "orientation_sociale", "75113");

    let refused = world.cli_with_input(
        &["publish"],
        br#"{"id": "x", "kind": "orientation_sociale"}"#,
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr)
            .contains("not published: the alert is invalid: field `emitted_at` is required")
    );
    assert_eq!(
        world.broker.depth(&world.queue).await,
        0,
        "nothing published"
    );

    let file = world.dir.path().join("alert.json");
    std::fs::write(&file, &body).unwrap();
    let sent = world.cli(&["publish", "--file", file.to_str().unwrap()]);
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    assert!(
        text(&sent.stdout)
            .contains("published alert SOS75-PUB (kind orientation_sociale, commune 75113)")
    );
    assert!(text(&sent.stdout).contains("confirmed by the broker"));

    // The main queue has a single active consumer, which excludes basic.get.
    let delivery = world.broker.consume_one(&world.queue).await;
    assert_eq!(delivery.data, body);
    assert_eq!(delivery.routing_key.as_str(), "orientation_sociale");
    let properties = &delivery.properties;
    assert_eq!(properties.delivery_mode(), &Some(2));
    assert_eq!(
        properties.content_type().as_ref().map(|c| c.as_str()),
        Some("application/json")
    );
    assert_eq!(
        properties.message_id().as_ref().map(|m| m.as_str()),
        Some("SOS75-PUB")
    );
    assert_eq!(
        properties.user_id().as_ref().map(|u| u.as_str()),
        Some("guest"),
        "the login of the URL, which the broker vouches for"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn publish_reports_an_exchange_where_nothing_would_receive_the_alert() {
    let mut world = World::new(REGISTRY).await;
    let body = alert("SOS75-LOST", "orientation_sociale", "75113");

    // An exchange that does not exist.
    world
        .env
        .push(("RELAIS__AMQP__EXCHANGE".into(), unique("missing")));
    let missing = world.cli_with_input(&["publish"], &body);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("does not exist on the broker"),
        "{}",
        text(&missing.stderr)
    );

    // An exchange with no queue bound: the broker would drop the alert.
    let unbound = unique("unbound");
    world
        .broker
        .channel
        .exchange_declare(
            unbound.as_str().into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    world
        .env
        .push(("RELAIS__AMQP__EXCHANGE".into(), unbound.clone()));
    let dropped = world.cli_with_input(&["publish"], &body);
    assert_eq!(dropped.status.code(), Some(1));
    assert!(
        text(&dropped.stderr).contains("no queue is bound to exchange"),
        "{}",
        text(&dropped.stderr)
    );
    let _ = world
        .broker
        .channel
        .exchange_delete(
            unbound.as_str().into(),
            lapin::options::ExchangeDeleteOptions::default(),
        )
        .await;
    world.env.clear();
    world.cleanup().await;
}

#[tokio::test]
async fn a_full_main_queue_refuses_the_next_alert_and_the_publisher_is_told() {
    // Arrange: a main queue of two alerts, and no relais consuming it.
    let world = World::with_env(REGISTRY, &[("RELAIS__AMQP__MAX_QUEUE_LENGTH", "2")]).await;

    // Act
    let outputs: Vec<Output> = (1..=4)
        .map(|n| {
            let body = alert(&format!("SOS75-FULL{n}"), "orientation_sociale", "75115");
            world.cli_with_input(&["publish"], &body)
        })
        .collect();

    // Assert: the queue full, the next alert refused, and said so.
    // A quorum queue applies its limit once it is passed: it takes one
    // alert past it, and refuses the next.
    for output in &outputs[..3] {
        assert!(output.status.success(), "{}", text(&output.stderr));
    }
    assert_eq!(outputs[3].status.code(), Some(1));
    let refused = text(&outputs[3].stderr);
    assert!(
        refused.contains("not published: the broker refused the alert (nack): the queue is full"),
        "{refused}"
    );
    assert_eq!(world.broker.depth(&world.queue).await, 3);
    world.cleanup().await;
}

#[tokio::test]
async fn two_publishers_may_use_one_id_and_neither_blocks_the_other() {
    // Arrange: two dispatch programs that both number their alerts the
    // same way, each declared for Paris.
    let (first, second) = (
        DispatchUser::create("first"),
        DispatchUser::create("second"),
    );
    let declare = |user: &str| {
        format!(
            "[[publisher]]\nuser = \"{user}\"\nassociation = \"SOS Médecins Paris\"\n\
             departements = [\"75\"]\n"
        )
    };
    let registry = format!(
        "{REGISTRY}\n{}\n{}",
        declare(&first.name),
        declare(&second.name)
    );
    let world = World::new(&registry).await;
    let app = world.spawn();

    // Act: one id, two alerts of different content, one from each.
    first
        .publish(
            &world,
            &alert("2026-000001", "orientation_sociale", "75113"),
        )
        .await;
    let mails = world.smtp.wait_for(2, WAIT).await;
    second
        .publish(
            &world,
            &alert("2026-000001", "orientation_sociale", "75115"),
        )
        .await;
    let mails = world.smtp.wait_for(mails.len() + 1, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.stop().await;

    // Assert: each alert reached its own référents, nothing was refused as
    // a conflict, and each email has a Message-ID of its own publisher's.
    let mut sent: Vec<(String, String)> = mails
        .iter()
        .map(|mail| {
            (
                mail.to.join(","),
                mail.header("Message-ID").unwrap_or_default(),
            )
        })
        .collect();
    sent.sort();
    let encoded = |user: &str| user.replace('.', "=2E");
    assert_eq!(
        sent,
        [
            (
                "accueil@ccas-paris13.test".to_owned(),
                format!(
                    "<relais.2026-000001.ccas-paris-13-accueil.{}@sos-medecins.test>",
                    encoded(&first.name)
                )
            ),
            (
                "camille.martin@ccas-paris13.test".to_owned(),
                format!(
                    "<relais.2026-000001.ccas-paris-13.{}@sos-medecins.test>",
                    encoded(&first.name)
                )
            ),
            (
                "social@paris.test".to_owned(),
                format!(
                    "<relais.2026-000001.ccas-paris.{}@sos-medecins.test>",
                    encoded(&second.name)
                )
            ),
        ]
    );
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    let audit = world.cli(&["audit", "--alert", "2026-000001"]);
    let audit = text(&audit.stdout);
    assert_eq!(audit.lines().count(), 3, "{audit}");
    assert_eq!(
        audit
            .matches(&format!("\tpublisher {}", first.name))
            .count(),
        2,
        "{audit}"
    );
    assert_eq!(
        audit
            .matches(&format!("\tpublisher {}", second.name))
            .count(),
        1,
        "{audit}"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn each_dispatch_software_reads_only_its_own_alerts_events_which_relais_signs() {
    // Arrange: two associations' dispatch programs, each bound as the
    // contract tells it to, to `<its user>.#`.
    let (first, second) = (
        DispatchUser::create("ev-first"),
        DispatchUser::create("ev-second"),
    );
    let world = World::new(REGISTRY).await;
    let first_queue = world
        .bind_events_to("first-events", &format!("{}.#", first.name))
        .await;
    let second_queue = world
        .bind_events_to("second-events", &format!("{}.#", second.name))
        .await;
    let app = world.spawn();

    // Act: each publishes one alert under the same id.
    first
        .publish(
            &world,
            &alert("2026-000042", "orientation_sociale", "75115"),
        )
        .await;
    second
        .publish(
            &world,
            &alert("2026-000042", "orientation_sociale", "75113"),
        )
        .await;
    assert_eq!(world.wait_for_depth(&first_queue, 1, WAIT).await, 1);
    assert_eq!(world.wait_for_depth(&second_queue, 2, WAIT).await, 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.stop().await;

    // Assert: each saw its own deliveries, and nothing of the other's.
    let read = |messages: Vec<support::DeadLetter>| {
        let mut seen: Vec<(String, String, String, Option<String>)> = messages
            .iter()
            .map(|message| {
                let event: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
                (
                    message.routing_key.clone(),
                    event["publisher"].as_str().unwrap().to_owned(),
                    event["referent"]["id"].as_str().unwrap().to_owned(),
                    message.properties.user_id().as_ref().map(|u| u.to_string()),
                )
            })
            .collect();
        seen.sort();
        seen
    };
    let guest = Some("guest".to_owned());
    let delivered = |user: &str, referent: &str| {
        (
            format!("{user}.delivered"),
            user.to_owned(),
            referent.to_owned(),
            guest.clone(),
        )
    };
    assert_eq!(
        read(world.broker.take_all(&first_queue).await),
        [delivered(&first.name, "ccas-paris")]
    );
    assert_eq!(
        read(world.broker.take_all(&second_queue).await),
        [
            delivered(&second.name, "ccas-paris-13"),
            delivered(&second.name, "ccas-paris-13-accueil")
        ]
    );
    for queue in [&first_queue, &second_queue] {
        world
            .broker
            .channel
            .queue_delete(queue.as_str().into(), Default::default())
            .await
            .unwrap();
    }
    world.cleanup().await;
}

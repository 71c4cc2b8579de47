//! The promise under faults: a real broker, a real SMTP server that fails
//! on demand, relais in process. Retry delays are short here (200 ms, 400 ms;
//! 2 immediate attempts), see `support::World`.

use relais_testkit as support;

use std::time::Duration;

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use relais::alert::AlertId;
use support::smtp::{Fault, SmtpServer};
use support::{REGISTRY, WAIT, World, alert, text};

fn retry_queue(world: &World, delay: &str) -> String {
    format!("{}.retry.{delay}", world.queue)
}

/// Runs one alert for commune 75115 (one référent) through relais while the
/// SMTP server has `fault` for the next `count` transactions.
async fn delivered_once_despite(fault: Fault, count: usize) {
    let world = World::new(REGISTRY).await;
    world.smtp.fail_next(count, fault.clone());
    let app = world.spawn();

    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-T1", "orientation_sociale", "75115"),
        )
        .await;

    let mails = world.smtp.wait_for(1, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.stop().await;
    assert_eq!(mails.len(), 1, "{fault:?}: delivered once");
    assert_eq!(world.smtp.mails().len(), 1, "{fault:?}: and only once");
    assert_eq!(mails[0].referent(), "ccas-paris");
    assert_eq!(
        world.smtp.attempts(),
        count + 1,
        "{fault:?}: each failure was retried"
    );
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    let audit = world
        .audit()
        .await
        .alert(&AlertId::parse("SOS75-T1").unwrap())
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].referent_id, "ccas-paris");
    assert_eq!(audit[0].email, "social@paris.test");
    assert_eq!(
        audit[0].message_id,
        "<relais.SOS75-T1.ccas-paris@sos-medecins.test>"
    );
    assert!(
        audit[0].smtp_reply.contains("queued as TEST1"),
        "{}",
        audit[0].smtp_reply
    );
    world.cleanup().await;
}

#[tokio::test]
async fn a_451_reply_is_transient_and_retried_through_the_ladder_until_delivered_once() {
    // 2 immediate failures send the alert to the 200 ms queue; the third
    // failure is the first attempt of round two; the fourth attempt succeeds.
    delivered_once_despite(Fault::Reply(451, "4.3.0 try again later"), 3).await;
}

#[tokio::test]
async fn a_dropped_connection_is_transient_and_retried_until_delivered_once() {
    delivered_once_despite(Fault::Drop, 3).await;
}

#[tokio::test]
async fn a_server_that_stalls_past_the_timeout_is_transient_and_retried_until_delivered_once() {
    // smtp.timeout is 2 s in the tests.
    delivered_once_despite(Fault::Stall(Duration::from_secs(3)), 1).await;
}

#[tokio::test]
async fn a_server_that_accepts_after_relais_gave_up_yields_a_copy_with_the_same_message_id() {
    // No client can prevent this (RFC 1047): the server kept a message whose
    // acceptance never reached relais. Both copies carry one Message-ID, so
    // the référent's mail system can recognise the second.
    let world = World::new(REGISTRY).await;
    world
        .smtp
        .fail_next(1, Fault::LateAccept(Duration::from_secs(3)));
    let app = world.spawn();

    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-LATE", "orientation_sociale", "75115"),
        )
        .await;

    let mails = world.smtp.wait_for(2, WAIT).await;
    app.stop().await;
    assert_eq!(mails.len(), 2);
    let ids: Vec<String> = mails
        .iter()
        .map(|m| m.header("Message-ID").unwrap())
        .collect();
    assert_eq!(ids[0], "<relais.SOS75-LATE.ccas-paris@sos-medecins.test>");
    assert_eq!(ids[0], ids[1]);
    world.cleanup().await;
}

#[tokio::test]
async fn a_421_service_unavailable_is_transient_and_retried_until_delivered_once() {
    delivered_once_despite(Fault::Reply(421, "4.4.2 closing, too busy"), 2).await;
}

#[tokio::test]
async fn a_mail_server_that_is_down_is_waited_for_and_the_alert_delivered_once() {
    // Arrange: relais points at a port where nothing listens yet.
    let port = SmtpServer::free_port().await;
    let port_text = port.to_string();
    let world = World::with_env(REGISTRY, &[("RELAIS__SMTP__PORT", &port_text)]).await;
    let app = world.spawn();

    // Act: the alert fails (connection refused) and waits in the retry queue…
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-DOWN", "orientation_sociale", "75115"),
        )
        .await;
    let waiting = world
        .wait_for_depth(&retry_queue(&world, "200ms"), 1, WAIT)
        .await;
    assert_eq!(waiting, 1, "the alert waits in the first retry queue");
    // …then the server comes up.
    let smtp = SmtpServer::start_on(port).await;

    // Assert
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    app.stop().await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].alert_id(), "SOS75-DOWN");
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    world.cleanup().await;
}

#[tokio::test]
async fn an_alert_that_always_fails_walks_the_whole_ladder_then_is_dead_lettered_as_exhausted() {
    let world = World::new(REGISTRY).await;
    world
        .smtp
        .fail_next(1000, Fault::Reply(451, "4.7.1 greylisted"));
    let app = world.spawn();

    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-EX", "orientation_sociale", "75115"),
        )
        .await;

    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    app.stop().await;
    // Three rounds (first delivery, after 200 ms, after 400 ms) of two
    // immediate attempts each.
    assert_eq!(world.smtp.attempts(), 6);
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].routing_key,
        "orientation_sociale",
        "the original routing key is kept: {:?}",
        dead[0].properties.headers()
    );
    assert_eq!(
        dead[0].body,
        alert("SOS75-EX", "orientation_sociale", "75115")
    );
    assert_eq!(
        dead[0].header("x-relais-reason").as_deref(),
        Some("exhausted")
    );
    assert_eq!(dead[0].header("x-relais-attempts").as_deref(), Some("3"));
    let error = dead[0].header("x-relais-error").unwrap();
    assert!(
        error.contains("451") && error.contains("4.7.1 greylisted"),
        "{error}"
    );
    assert!(world.smtp.mails().is_empty());
    for queue in [
        world.queue.clone(),
        retry_queue(&world, "200ms"),
        retry_queue(&world, "400ms"),
    ] {
        assert_eq!(world.broker.depth(&queue).await, 0, "{queue} is empty");
    }
    world.cleanup().await;
}

#[tokio::test]
async fn a_retry_emails_only_the_referents_not_yet_served() {
    // Commune 75113 has two référents; one of them fails for a whole round.
    let world = World::new(REGISTRY).await;
    world
        .smtp
        .refuse_recipient_next("accueil@ccas-paris13.test", 2, 451, "4.2.1 mailbox busy");
    let app = world.spawn();

    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-M1", "orientation_sociale", "75113"),
        )
        .await;

    let mails = world.smtp.wait_for(2, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.stop().await;
    let mut referents: Vec<String> = mails.iter().map(|m| m.referent()).collect();
    referents.sort();
    assert_eq!(referents, ["ccas-paris-13", "ccas-paris-13-accueil"]);
    assert_eq!(
        world.smtp.refusals(),
        2,
        "accueil was refused for a whole round"
    );
    assert_eq!(
        world.smtp.mails().len(),
        2,
        "the référent served in round one is not emailed again"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn the_same_alert_published_several_times_is_emailed_once_per_referent() {
    // Arrange: two copies queued together (handled concurrently), a third later.
    let world = World::new(REGISTRY).await;
    let body = alert("SOS75-DUP", "orientation_sociale", "75113");
    world.publish("orientation_sociale", &body).await;
    world.publish("orientation_sociale", &body).await;
    let app = world.spawn();
    world.smtp.wait_for(2, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);

    // Act
    world.publish("orientation_sociale", &body).await;
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.stop().await;

    // Assert: one email per référent, all three copies acked, none dead.
    let mut referents: Vec<String> = world.smtp.mails().iter().map(|m| m.referent()).collect();
    referents.sort();
    assert_eq!(referents, ["ccas-paris-13", "ccas-paris-13-accueil"]);
    assert_eq!(world.broker.depth(&world.queue).await, 0);
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    world.cleanup().await;
}

#[tokio::test]
async fn a_message_redelivered_beyond_the_delivery_limit_ends_in_the_dead_letter_queue() {
    // A consumer that dies with the message each time (as a crash would)
    // makes the broker redeliver it; past the limit the broker itself
    // dead-letters it, through the arguments relais declared.
    let world = World::with_env(REGISTRY, &[("RELAIS__AMQP__DELIVERY_LIMIT", "2")]).await;
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-POISON", "orientation_sociale", "75115"),
        )
        .await;

    world.crash_with_the_next_alert(3).await;

    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    assert_eq!(world.broker.depth(&world.queue).await, 0);
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].body,
        alert("SOS75-POISON", "orientation_sociale", "75115")
    );
    assert_eq!(dead[0].routing_key, "orientation_sociale");
    assert_eq!(
        dead[0].header("x-first-death-reason").as_deref(),
        Some("delivery_limit")
    );
    world.cleanup().await;
}

#[tokio::test]
async fn a_retried_alert_the_broker_dead_letters_past_the_delivery_limit_is_listed_and_replayed_as_such()
 {
    // Arrange: an alert whose email the server defers, so that it waits in
    // the retry queue and comes back to the main queue (the broker's first
    // death of it: "expired"); relais is stopped meanwhile, and consumers
    // that crash with it make the broker dead-letter it past the limit
    // (its last death: "delivery_limit").
    let world = World::with_env(REGISTRY, &[("RELAIS__AMQP__DELIVERY_LIMIT", "2")]).await;
    world.set_retry_delays(&["5s"]);
    world
        .smtp
        .fail_next(10, Fault::Reply(451, "4.3.0 try again later"));
    let app = world.spawn();
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-RETRIED-POISON", "orientation_sociale", "75115"),
        )
        .await;
    assert_eq!(
        world
            .wait_for_depth(&retry_queue(&world, "5s"), 1, WAIT)
            .await,
        1
    );
    app.stop().await;
    assert_eq!(world.wait_for_depth(&world.queue, 1, WAIT).await, 1);
    world.crash_with_the_next_alert(3).await;
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);

    // Act: the operator lists the dead letters, then replays those the
    // delivery limit put there.
    let listed = world.cli(&["dead-letters", "list", "--json"]);
    let replay = world.cli(&["dead-letters", "replay", "--reason", "delivery_limit"]);

    // Assert: listed with the reason it is in `.dead` for, and replayed.
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["alert_id"], "SOS75-RETRIED-POISON", "{listed}");
    assert_eq!(listed[0]["reason"], "delivery_limit", "{listed}");
    assert!(replay.status.success(), "{}", text(&replay.stderr));
    assert!(
        text(&replay.stdout).contains("replayed 1 dead letter(s)"),
        "{}",
        text(&replay.stdout)
    );
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    assert_eq!(world.broker.depth(&world.queue).await, 1);
    let replayed = world.broker.consume_one(&world.queue).await;
    assert_eq!(
        replayed.data,
        alert("SOS75-RETRIED-POISON", "orientation_sociale", "75115")
    );
    assert!(world.smtp.mails().is_empty());
    world.cleanup().await;
}

#[tokio::test]
async fn a_forged_attempt_count_neither_crashes_relais_nor_skips_the_ladder() {
    // Arrange: a publisher that claims the alert was tried 2^31 - 1 times;
    // the first two transactions fail.
    let world = World::new(REGISTRY).await;
    world.set_retry_delays(&["2s", "4s"]);
    world
        .smtp
        .fail_next(2, Fault::Reply(451, "4.3.0 try again later"));
    let app = world.spawn();
    let mut headers = FieldTable::default();
    headers.insert("x-relais-attempts".into(), AMQPValue::LongInt(i32::MAX));

    // Act
    world
        .broker
        .publish_with(
            &world.exchange,
            "orientation_sociale",
            &alert("SOS75-FORGED", "orientation_sociale", "75115"),
            BasicProperties::default().with_headers(headers),
        )
        .await;

    // Assert: the first step of the ladder, then delivered once.
    assert_eq!(
        world
            .wait_for_depth(&retry_queue(&world, "2s"), 1, WAIT)
            .await,
        1
    );
    let mails = world.smtp.wait_for(1, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    app.stop().await;
    assert_eq!(mails.len(), 1);
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    world.cleanup().await;
}

//! relais's headers are relais's: every `x-relais-*` header a publisher
//! writes on an alert is dropped as the alert comes in, so a forged value
//! changes nothing. Not who is emailed (`x-relais-escalation`), not the
//! retry ladder (`x-relais-attempts`), not the dead letter's label
//! (`x-relais-routing-key`, `x-relais-reason`), and no header of relais's
//! vocabulary is carried along (`x-relais-whatever`): through a retry, a
//! dead letter, and a replay of a message the broker itself dead-lettered
//! with the publisher's headers still on it.
//!
//! Runs on the real broker, with a RabbitMQ user of the test's own for the
//! dispatch software (its `user_id` vouched for by the broker), relais in
//! process and the test's SMTP server failing on demand. No test here
//! publishes under relais's own login: what comes under it is relais's, by
//! the broker's word.

use relais_testkit as support;

use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable, LongString};
use serde_json::Value;
use support::smtp::Fault;
use support::{ACK_SECRET, DeadLetter, DispatchUser, REGISTRY, WAIT, World, alert, text};

/// Camille serves commune 75113, Dominique is her deputy, the permanence
/// is the fallback; the chain waits an hour at each step, so that within a
/// test only a forged step could make the alert climb.
fn escalating_hourly() -> String {
    support::escalating("urgent = \"1h\", normal = \"1h\"")
}

/// Headers as a publisher writes them.
fn headers(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (name, value) in pairs {
        table.insert((*name).into(), value.clone());
    }
    table
}

fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// Every forgery at once, beside a header of the publisher's own.
fn every_forgery() -> FieldTable {
    headers(&[
        ("x-relais-escalation", AMQPValue::LongInt(3)),
        ("x-relais-served", long_string("camille")),
        ("x-relais-attempts", AMQPValue::LongInt(2)),
        ("x-relais-routing-key", long_string("acces_aux_droits")),
        ("x-relais-reason", long_string("invalid")),
        ("x-relais-whatever", long_string("forged")),
        ("x-dispatch-trace", long_string("kept")),
    ])
}

fn recipients(world: &World) -> Vec<String> {
    world
        .smtp
        .mails()
        .iter()
        .map(|mail| mail.to.join(","))
        .collect()
}

/// The events published, as `(status, référent or network)`.
async fn statuses(world: &World, queue: &str) -> Vec<(String, String)> {
    world
        .broker
        .take_all(queue)
        .await
        .into_iter()
        .map(|message| {
            let event: Value = serde_json::from_slice(&message.body).unwrap();
            let who = event["referent"]["id"]
                .as_str()
                .or(event["network"].as_str())
                .unwrap_or_default()
                .to_owned();
            (event["status"].as_str().unwrap_or_default().to_owned(), who)
        })
        .collect()
}

/// The `x-relais-*` headers of a dead letter, by name.
fn relais_headers(letter: &DeadLetter) -> Vec<String> {
    let mut names: Vec<String> = letter
        .properties
        .headers()
        .as_ref()
        .map(|headers| {
            headers
                .inner()
                .keys()
                .map(|name| name.as_str().to_owned())
                .filter(|name| name.starts_with("x-relais-"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// What relais writes on a dead letter that went through a retry: nothing
/// else may be there.
const DEAD_LETTER_AFTER_A_RETRY: [&str; 6] = [
    "x-relais-attempts",
    "x-relais-error",
    "x-relais-failed-at",
    "x-relais-publisher",
    "x-relais-reason",
    "x-relais-routing-key",
];

/// Takes the alert waiting in the main queue and dies with it, as a
/// consumer that crashes would, until the broker dead-letters it itself
/// (`amqp.delivery_limit` 2): the dead letter keeps the publisher's
/// `user_id` and headers.
async fn poison(world: &World) {
    world.crash_with_the_next_alert(3).await;
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
}

async fn delete_escalation_queue(world: &World) {
    let escalation = format!("{}.escalation.1h", world.queue);
    let _ = world
        .broker
        .channel
        .queue_delete(escalation.as_str().into(), Default::default())
        .await;
}

/// A publisher's alert for Camille forges `x-relais-escalation: step`; the
/// first round fails (451), the retry succeeds.
async fn a_forged_escalation_step_changes_nothing(step: i32) {
    // Arrange
    let dispatch = DispatchUser::create(&format!("escalation{step}"));
    let (world, _port) = World::with_ack(&escalating_hourly(), ACK_SECRET, &[]).await;
    let events = world.bind_events("#").await;
    world
        .smtp
        .fail_next(2, Fault::Reply(451, "4.3.0 try again later"));
    let app = world.spawn();

    // Act
    dispatch
        .publish_with_headers(
            &world,
            &alert("SOS75-FORGED-ESC", "orientation_sociale", "75113"),
            headers(&[("x-relais-escalation", AMQPValue::LongInt(step))]),
        )
        .await;

    // Assert: Camille, once, after the retry; nobody else; the chain not
    // ended, nothing dead-lettered.
    world.smtp.wait_for(1, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.stop().await;
    assert_eq!(
        recipients(&world),
        ["camille@ccas-paris13.test"],
        "step {step}"
    );
    assert_eq!(world.smtp.attempts(), 3, "step {step}: 451 twice, then 250");
    assert_eq!(
        statuses(&world, &events).await,
        [("delivered".to_owned(), "camille".to_owned())],
        "step {step}"
    );
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    delete_escalation_queue(&world).await;
    world.cleanup().await;
}

#[tokio::test]
async fn a_forged_escalation_step_1_does_not_send_a_publishers_alert_to_the_deputy() {
    a_forged_escalation_step_changes_nothing(1).await;
}

#[tokio::test]
async fn a_forged_escalation_step_2_does_not_send_a_publishers_alert_to_the_fallback() {
    a_forged_escalation_step_changes_nothing(2).await;
}

#[tokio::test]
async fn a_forged_escalation_step_3_does_not_declare_a_publishers_alert_unacknowledged() {
    a_forged_escalation_step_changes_nothing(3).await;
}

#[tokio::test]
async fn a_forged_attempt_count_does_not_shorten_a_publishers_retry_ladder() {
    // Arrange: the publisher claims the whole ladder (two retry queues) is
    // behind the alert; its first round fails.
    let dispatch = DispatchUser::create("attempts");
    let world = World::new(REGISTRY).await;
    world
        .smtp
        .fail_next(2, Fault::Reply(451, "4.3.0 try again later"));
    let app = world.spawn();

    // Act
    dispatch
        .publish_with_headers(
            &world,
            &alert("SOS75-FORGED-ATT", "orientation_sociale", "75115"),
            headers(&[("x-relais-attempts", AMQPValue::LongInt(2))]),
        )
        .await;

    // Assert: retried, not exhausted: delivered once, nothing dead.
    world.smtp.wait_for(1, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.stop().await;
    assert_eq!(recipients(&world), ["social@paris.test"]);
    assert_eq!(world.smtp.attempts(), 3);
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    world.cleanup().await;
}

#[tokio::test]
async fn a_forged_routing_key_does_not_relabel_a_publishers_dead_letter() {
    // Arrange and Act: a retry, then a dead letter.
    let (world, _dispatch, app) = dead_after_a_retry(
        "routing-key",
        "SOS75-FORGED-RK",
        headers(&[("x-relais-routing-key", long_string("acces_aux_droits"))]),
    )
    .await;

    // Assert: the dead letter carries the routing key the alert came with.
    let listed = world.cli(&["dead-letters", "list", "--json"]);
    app.stop().await;
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["kind"], "orientation_sociale", "{listed}");
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].routing_key, "orientation_sociale");
    assert_eq!(
        dead[0].header("x-relais-routing-key").as_deref(),
        Some("orientation_sociale")
    );
    assert_eq!(
        dead[0].header("x-relais-reason").as_deref(),
        Some("rejected")
    );
    world.cleanup().await;
}

#[tokio::test]
async fn an_unknown_relais_header_is_carried_neither_onto_the_retry_nor_onto_the_dead_letter() {
    // Arrange and Act: a retry, then a dead letter.
    let (world, dispatch, app) = dead_after_a_retry(
        "unknown",
        "SOS75-FORGED-X",
        headers(&[
            ("x-relais-whatever", long_string("forged")),
            ("x-dispatch-trace", long_string("kept")),
        ]),
    )
    .await;

    // Assert: relais's headers only, and the publisher's own kept.
    app.stop().await;
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(relais_headers(&dead[0]), DEAD_LETTER_AFTER_A_RETRY);
    assert_eq!(dead[0].header("x-dispatch-trace").as_deref(), Some("kept"));
    assert_eq!(
        dead[0].header("x-relais-publisher").as_deref(),
        Some(dispatch.name.as_str())
    );
    world.cleanup().await;
}

#[tokio::test]
async fn a_replay_does_not_make_a_publishers_forged_escalation_or_served_list_trusted() {
    // Arrange: a publisher's alert for Camille with every forgery, which
    // the broker dead-letters itself (headers and all) after crashes.
    let dispatch = DispatchUser::create("replay-escalation");
    let (world, _port) = World::with_ack(
        &escalating_hourly(),
        ACK_SECRET,
        &[("RELAIS__AMQP__DELIVERY_LIMIT", "2")],
    )
    .await;
    let events = world.bind_events("#").await;
    dispatch
        .publish_with_headers(
            &world,
            &alert("SOS75-FORGED-REPLAY", "orientation_sociale", "75113"),
            every_forgery(),
        )
        .await;
    poison(&world).await;
    world
        .smtp
        .fail_next(2, Fault::Reply(451, "4.3.0 try again later"));
    let app = world.spawn();

    // Act: the operator replays it (under relais's login).
    let replay = world.cli(&["dead-letters", "replay", "--all"]);
    assert!(replay.status.success(), "{}", text(&replay.stderr));

    // Assert: Camille, once, after a retry; nobody else; not unacknowledged.
    world.smtp.wait_for(1, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.queue, 0, WAIT).await, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.stop().await;
    assert_eq!(recipients(&world), ["camille@ccas-paris13.test"]);
    assert_eq!(world.smtp.attempts(), 3);
    assert_eq!(
        statuses(&world, &events).await,
        [("delivered".to_owned(), "camille".to_owned())]
    );
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    delete_escalation_queue(&world).await;
    world.cleanup().await;
}

#[tokio::test]
async fn a_publishers_forged_reason_and_routing_key_survive_neither_dead_letters_list_nor_a_replay()
{
    // Arrange: a publisher's alert with every forgery, which the broker
    // dead-letters itself (headers and all) after crashes.
    let dispatch = DispatchUser::create("replay-label");
    let world = World::with_env(REGISTRY, &[("RELAIS__AMQP__DELIVERY_LIMIT", "2")]).await;
    dispatch
        .publish_with_headers(
            &world,
            &alert("SOS75-FORGED-LABEL", "orientation_sociale", "75115"),
            every_forgery(),
        )
        .await;
    poison(&world).await;

    // Act: the operator looks, then replays; the retry is refused for
    // good, and relais dead-letters it.
    let listed = world.cli(&["dead-letters", "list", "--json"]);
    world
        .smtp
        .fail_next(2, Fault::Reply(451, "4.3.0 try again later"));
    world.smtp.fail_next(1, Fault::Reply(550, "5.7.1 refused"));
    let app = world.spawn();
    let replay = world.cli(&["dead-letters", "replay", "--reason", "delivery_limit"]);
    assert!(replay.status.success(), "{}", text(&replay.stderr));
    assert!(
        text(&replay.stdout).contains("replayed 1 dead letter(s)"),
        "{}",
        text(&replay.stdout)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    app.stop().await;

    // Assert: the operator saw the broker's reason and the real kind, and
    // the new dead letter carries relais's headers only.
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["reason"], "delivery_limit", "{listed}");
    assert_eq!(listed[0]["kind"], "orientation_sociale", "{listed}");
    assert_eq!(listed[0]["attempts"], Value::Null, "{listed}");
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].routing_key, "orientation_sociale");
    assert_eq!(relais_headers(&dead[0]), DEAD_LETTER_AFTER_A_RETRY);
    assert_eq!(
        dead[0].header("x-relais-routing-key").as_deref(),
        Some("orientation_sociale")
    );
    assert_eq!(
        dead[0].header("x-relais-reason").as_deref(),
        Some("rejected")
    );
    assert_eq!(dead[0].header("x-relais-attempts").as_deref(), Some("2"));
    assert_eq!(dead[0].header("x-dispatch-trace").as_deref(), Some("kept"));
    assert_eq!(
        dead[0].header("x-relais-publisher").as_deref(),
        Some(dispatch.name.as_str())
    );
    assert_eq!(recipients(&world), Vec::<String>::new());
    world.cleanup().await;
}

/// Publisher `user`'s alert `id` for 75115, carrying `forged` headers: its
/// first round is refused for now (451) and its retry for good (550), so
/// that it goes through a retry to a dead letter. Returns once the dead
/// letter is there, relais still running.
async fn dead_after_a_retry(
    user: &str,
    id: &str,
    forged: FieldTable,
) -> (World, DispatchUser, support::RunningApp) {
    let dispatch = DispatchUser::create(user);
    let world = World::new(REGISTRY).await;
    world
        .smtp
        .fail_next(2, Fault::Reply(451, "4.3.0 try again later"));
    world.smtp.fail_next(1, Fault::Reply(550, "5.7.1 refused"));
    let app = world.spawn();
    dispatch
        .publish_with_headers(&world, &alert(id, "orientation_sociale", "75115"), forged)
        .await;
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    (world, dispatch, app)
}

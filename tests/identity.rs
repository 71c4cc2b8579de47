//! Who published an alert, and what relais trusts of it: a publisher that
//! sets `user_id` (RabbitMQ checks it against its login) is retried,
//! dead-lettered and replayed like any other, under relais's login, its
//! identity kept in `x-relais-publisher`; the registry's `[[publisher]]`
//! entries decide who may alert which territory as which association; and
//! the référents already served travel with a dead letter, so that a replay
//! never emails them twice. Runs against the real broker, with a RabbitMQ
//! user of the test's own for the dispatch software.

use relais_testkit as support;

use std::process::Command;
use std::time::Duration;

use lapin::BasicProperties;
use support::smtp::Fault;
use support::{Broker, REGISTRY, World, alert};

const WAIT: Duration = Duration::from_secs(30);

fn rabbitmqctl(args: &[&str]) {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl is installed (see scripts/rabbitmq)");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A RabbitMQ user of this test, deleted when dropped.
struct DispatchUser {
    name: String,
}

impl DispatchUser {
    fn create(test: &str) -> Self {
        let name = format!("relais-test-{test}-{}", std::process::id());
        rabbitmqctl(&["add_user", &name, "dispatch-secret"]);
        rabbitmqctl(&["set_permissions", "-p", "/", &name, ".*", ".*", ".*"]);
        Self { name }
    }

    async fn broker(&self) -> Broker {
        Broker::connect_url(&format!(
            "amqp://{}:dispatch-secret@127.0.0.1:5672/%2f",
            self.name
        ))
        .await
    }

    /// Publishes as the dispatch software does, its login in `user_id`.
    async fn publish(&self, world: &World, body: &[u8]) {
        let broker = self.broker().await;
        let properties = BasicProperties::default().with_user_id(self.name.as_str().into());
        broker
            .publish_with(&world.exchange, "orientation_sociale", body, properties)
            .await;
        let _ = broker.connection.close(200, "published".into()).await;
    }
}

impl Drop for DispatchUser {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_user", &self.name])
            .output();
    }
}

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

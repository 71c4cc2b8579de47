//! Who published an alert, across relais's own publishes: a publisher that
//! sets `user_id` (RabbitMQ checks it against its login) is retried,
//! dead-lettered and replayed like any other, under relais's login, its
//! identity kept in `x-relais-publisher`. Runs against the real broker, with
//! a RabbitMQ user of the test's own for the dispatch software.

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

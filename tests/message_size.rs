//! How big an alert can be, bounded before relais holds it: lapin reads a
//! message's whole body before handing it over, so the bound that protects
//! relais's memory is the broker's `max_message_size` (the setting
//! docs/operations.md asks operators to make). A RabbitMQ node of this
//! test's own carries it (`rabbitmq::Node`, beside the machine's broker):
//! an alert past it is refused to its publisher and never reaches relais;
//! one within it but past relais's `amqp.max_message_bytes` is
//! dead-lettered as `invalid`, with its size; relais carries on.

use relais_testkit as support;

use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use support::rabbitmq::Node;
use support::smtp::SmtpServer;
use support::{Broker, REGISTRY, World};

const WAIT: Duration = Duration::from_secs(20);
/// The node's `max_message_size`, twice relais's default body limit.
const BROKER_LIMIT: usize = 131_072;

#[tokio::test]
async fn the_broker_refuses_an_alert_past_its_limit_and_relais_dead_letters_one_past_its_own() {
    // Arrange
    let node = Node::start(
        "relais-size",
        |_, port| {
            format!("listeners.tcp.default = 127.0.0.1:{port}\nmax_message_size = {BROKER_LIMIT}\n")
        },
        "[].\n",
    );
    let url = node.url();
    let world = World::with_broker(
        REGISTRY,
        SmtpServer::start().await,
        Broker::connect_url(&url).await,
        &[("RELAIS__AMQP__URL", url.as_str())],
    )
    .await;
    let app = world.spawn();

    // Act: one byte past the broker's limit, then exactly at it, then an
    // ordinary alert.
    let channel = world.broker.connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let oversize = vec![b'x'; BROKER_LIMIT + 1];
    let refused = match channel
        .basic_publish(
            world.exchange.as_str().into(),
            "orientation_sociale".into(),
            BasicPublishOptions::default(),
            &oversize,
            BasicProperties::default(),
        )
        .await
    {
        Ok(confirm) => confirm.await.map(|_| ()),
        Err(error) => Err(error),
    };
    let at_limit = vec![b'x'; BROKER_LIMIT];
    world.publish("orientation_sociale", &at_limit).await;
    world.publish_one("SOS75-AFTER").await;
    let mails = world.smtp.wait_for(1, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    app.stop().await;

    // Assert
    let error = refused.expect_err("the broker refuses a message past max_message_size");
    assert!(error.to_string().contains("PRECONDITION_FAILED"), "{error}");
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].alert_id(), "SOS75-AFTER");
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body.len(), BROKER_LIMIT);
    assert_eq!(
        dead[0].header("x-relais-reason").as_deref(),
        Some("invalid")
    );
    assert_eq!(
        dead[0].header("x-relais-error").as_deref(),
        Some("the message is 131072 bytes, over the limit of 65536 bytes (amqp.max_message_bytes)")
    );
    assert_eq!(world.broker.depth(&world.queue).await, 0);
}

//! The test's own client of the machine's broker (127.0.0.1:5672): it
//! publishes as the dispatch software does (persistent, confirmed), reads
//! queue depths, and takes messages out of queues to look at them. It
//! never declares relais's topology by hand (the [`crate::World`] does, as
//! relais would) and never stops the broker; `rabbitmqctl` is here for the
//! few tests that manage its users or connections.

use std::process::Command;
use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use relais::amqp::Publisher;

/// The machine's broker, as every test reaches it unless
/// `RELAIS_TEST_BROKER` names another (the pass on RabbitMQ 4.0,
/// `scripts/rabbitmq4`).
pub const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The broker the tests use: `RELAIS_TEST_BROKER`, else [`BROKER`].
pub fn broker_url() -> String {
    std::env::var("RELAIS_TEST_BROKER")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| BROKER.to_owned())
}

/// The host and port of [`broker_url`], e.g. `127.0.0.1:5672`.
pub fn broker_address() -> String {
    let url = broker_url();
    let after_login = url.rsplit_once('@').map_or(url.as_str(), |(_, rest)| rest);
    after_login.split('/').next().unwrap_or_default().to_owned()
}

/// `rabbitmqctl` of the tests' broker: the machine's, or the command that
/// `RELAIS_TEST_RABBITMQCTL` gives (e.g. `scripts/rabbitmq4 ctl`).
pub fn rabbitmqctl_command() -> Command {
    let given = std::env::var("RELAIS_TEST_RABBITMQCTL").unwrap_or_default();
    let mut words = given.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(words);
            command
        }
        None => Command::new("rabbitmqctl"),
    }
}

/// Runs `rabbitmqctl` on the tests' broker (as root, like `.ci/run`);
/// fails the test with the tool's error when it fails.
pub fn rabbitmqctl(args: &[&str]) {
    let output = rabbitmqctl_command()
        .args(args)
        .output()
        .expect("rabbitmqctl is installed (see scripts/rabbitmq)");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The tests' broker with its application stopped (`rabbitmqctl stop_app`).
/// Dropped unstarted, as by a failing test, it starts the application again,
/// so that no test leaves the machine's broker stopped behind it.
/// (`scripts/rabbitmq` heals what a killed test run leaves.)
pub struct StoppedBroker {
    started: bool,
}

impl StoppedBroker {
    pub fn stop() -> Self {
        rabbitmqctl(&["stop_app"]);
        Self { started: false }
    }

    /// Starts the application and waits until it has booted.
    pub fn start(mut self) {
        self.started = true;
        rabbitmqctl(&["start_app"]);
        rabbitmqctl(&["await_startup"]);
    }
}

impl Drop for StoppedBroker {
    fn drop(&mut self) {
        if !self.started {
            let _ = rabbitmqctl_command().arg("start_app").status();
        }
    }
}

/// A dead letter as found in `<queue>.dead`.
#[derive(Debug)]
pub struct DeadLetter {
    pub routing_key: String,
    pub body: Vec<u8>,
    pub properties: BasicProperties,
}

impl DeadLetter {
    pub fn header(&self, name: &str) -> Option<String> {
        let headers = self.properties.headers().as_ref()?;
        match headers.inner().get(name)? {
            AMQPValue::LongString(text) => Some(text.to_string()),
            AMQPValue::ShortString(text) => Some(text.to_string()),
            AMQPValue::LongInt(n) => Some(n.to_string()),
            AMQPValue::LongLongInt(n) => Some(n.to_string()),
            other => Some(format!("{other:?}")),
        }
    }
}

/// The test's own connection to the broker.
pub struct Broker {
    pub connection: Connection,
    pub channel: Channel,
    publisher: Publisher,
}

impl Broker {
    pub async fn connect() -> Self {
        Self::connect_url(&broker_url()).await
    }

    /// The test's connection to the machine's broker with another login,
    /// e.g. `amqp://user:password@127.0.0.1:5672/%2f`.
    pub async fn connect_url(url: &str) -> Self {
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .expect("RabbitMQ on 127.0.0.1:5672 (see docs/testing.md)");
        Self::on(connection).await
    }

    /// As [`Broker::connect_url`], `None` when the broker cannot be
    /// reached or refuses (a node stopped), instead of failing the test.
    pub async fn try_connect_url(url: &str) -> Option<Self> {
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .ok()?;
        let channel = connection.create_channel().await.ok()?;
        let publisher = Publisher::open(&connection, Duration::from_secs(10))
            .await
            .ok()?;
        Some(Self {
            connection,
            channel,
            publisher,
        })
    }

    /// The test's connection to a broker speaking TLS.
    pub async fn connect_tls(url: &str, tls: lapin::tcp::OwnedTLSConfig) -> Self {
        let runtime = lapin::runtime::default_runtime().unwrap();
        let connection =
            Connection::connect_with_config(url, ConnectionProperties::default(), tls, runtime)
                .await
                .expect("the test broker speaking TLS");
        Self::on(connection).await
    }

    async fn on(connection: Connection) -> Self {
        let channel = connection.create_channel().await.unwrap();
        let publisher = Publisher::open(&connection, Duration::from_secs(10))
            .await
            .unwrap();
        Self {
            connection,
            channel,
            publisher,
        }
    }

    /// Publishes as the dispatch software does: persistent JSON, confirmed.
    pub async fn publish(&self, exchange: &str, routing_key: &str, body: &[u8]) {
        self.publish_with(exchange, routing_key, body, BasicProperties::default())
            .await;
    }

    /// As [`Broker::publish`], with `properties` (e.g. a `user_id`) beside
    /// the content type and persistence.
    pub async fn publish_with(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) {
        let properties = properties
            .with_content_type(ShortString::from("application/json"))
            .with_delivery_mode(2);
        self.publisher
            .publish_confirmed(exchange, routing_key, body, properties)
            .await
            .expect("the broker confirms the test publish");
    }

    /// As [`Broker::publish`], saying when the broker did not confirm
    /// (a node stopped, the connection cut) instead of failing the test: for
    /// a publisher that carries on, as a dispatch software does.
    ///
    /// # Errors
    /// The publish's failure.
    pub async fn try_publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
    ) -> Result<(), relais::amqp::PublishError> {
        let properties = BasicProperties::default()
            .with_content_type(ShortString::from("application/json"))
            .with_delivery_mode(2);
        self.publisher
            .publish_confirmed(exchange, routing_key, body, properties)
            .await
    }

    /// Messages in a queue (ready and unacked).
    pub async fn depth(&self, queue: &str) -> u32 {
        self.declare_passive(queue).await.message_count()
    }

    /// The queue's depth, or `None` if it does not exist (yet), asked on a
    /// channel of its own (a missing queue closes the channel it is asked on).
    pub async fn depth_if_declared(&self, queue: &str) -> Option<u32> {
        let channel = self.connection.create_channel().await.ok()?;
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let depth = channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await
            .ok()
            .map(|declared| declared.message_count());
        if channel.status().connected() {
            let _ = channel.close(200, "depth read".into()).await;
        }
        depth
    }

    async fn declare_passive(&self, queue: &str) -> lapin::Queue {
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        self.channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await
            .expect("the queue exists")
    }

    /// Takes one message by consuming (acking it); for queues with a single
    /// active consumer, which refuse basic.get.
    pub async fn consume_one(&self, queue: &str) -> lapin::message::Delivery {
        use futures_util::StreamExt;
        let channel = self.connection.create_channel().await.unwrap();
        let mut consumer = channel
            .basic_consume(
                queue.into(),
                "".into(),
                lapin::options::BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("a message within 10 s")
            .expect("the consumer is open")
            .expect("a delivery");
        delivery.ack(BasicAckOptions::default()).await.unwrap();
        channel.close(200, "done".into()).await.unwrap();
        delivery
    }

    /// Takes every message of a queue (acking them).
    pub async fn take_all(&self, queue: &str) -> Vec<DeadLetter> {
        let mut taken = Vec::new();
        while let Some(message) = self
            .channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .expect("basic.get")
        {
            let delivery = message.delivery;
            delivery.ack(BasicAckOptions::default()).await.expect("ack");
            taken.push(DeadLetter {
                routing_key: delivery.routing_key.to_string(),
                body: delivery.data,
                properties: delivery.properties,
            });
        }
        taken
    }
}

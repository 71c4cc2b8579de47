//! The broker over TLS, for real: a RabbitMQ node of this test binary's
//! own, listening only for TLS on a loopback port, with an authority and
//! certificates made at test time (RabbitMQ's `listeners.ssl`). The
//! machine's broker on 5672 is not touched.
//!
//! relais consumes over `amqps://` trusting a private authority
//! (`amqp.ca_file`), and logs in by client certificate (`amqp.cert_file`,
//! `amqp.key_file`, `auth_mechanism=external`). A broker it cannot trust,
//! or cannot log in to, leaves the alert waiting in its queue (never lost)
//! and `/readyz` says why.
//!
//! And the broker's answers to relais on the machine's broker: a queue that
//! exists with other arguments is reported clearly while relais keeps
//! trying; a refused login and a mistyped URL are named without the
//! password.

use relais_testkit as support;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::tcp::OwnedTLSConfig;
use lapin::types::FieldTable;
use support::rabbitmq::Node;
use support::smtp::SmtpServer;
use support::{
    Broker, Logs, REGISTRY, TestCa, WAIT, World, http_get, signal, text, unique, wait_exit,
};

/// The test's RabbitMQ node, and its authority's certificate.
struct TlsNode {
    node: Node,
    ca_pem: String,
}

impl TlsNode {
    fn file(&self, name: &str) -> String {
        self.node.file(name)
    }

    /// `amqps://<login>localhost:<port>/%2f<query>`.
    fn url(&self, host: &str, login: &str, query: &str) -> String {
        format!(
            "amqps://{login}{host}:{port}/%2f{query}",
            port = self.node.port
        )
    }
}

/// Starts the node once for the whole binary.
fn node() -> &'static TlsNode {
    static NODE: OnceLock<TlsNode> = OnceLock::new();
    NODE.get_or_init(|| {
        let mut ca_pem = String::new();
        let node = Node::start(
            "relais-amqps",
            |dir, port| {
                ca_pem = write_certificates(dir);
                node_settings(dir, port)
            },
            "[rabbitmq_auth_mechanism_ssl].\n",
        );
        TlsNode { node, ca_pem }
    })
}

fn node_settings(dir: &Path, port: u16) -> String {
    let dir = dir.display();
    format!(
        "listeners.tcp = none
listeners.ssl.default = 127.0.0.1:{port}
ssl_options.cacertfile = {dir}/ca.pem
ssl_options.certfile = {dir}/server.pem
ssl_options.keyfile = {dir}/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = EXTERNAL
ssl_cert_login_from = common_name
"
    )
}

/// An authority; the broker's certificate for `localhost` only; relais's
/// client certificate for the user `guest`. Returns the authority's PEM.
fn write_certificates(dir: &Path) -> String {
    let ca = TestCa::new(&[]);
    for (stem, names, common_name) in [
        ("server", &["localhost"][..], "localhost"),
        ("client", &[][..], "guest"),
    ] {
        let (cert, key) = ca.issue(names, common_name);
        std::fs::write(dir.join(format!("{stem}.pem")), cert).unwrap();
        std::fs::write(dir.join(format!("{stem}.key")), key).unwrap();
    }
    std::fs::write(dir.join("ca.pem"), &ca.ca_pem).unwrap();
    ca.ca_pem
}

/// A world on the TLS node, relais configured by `env`, `/readyz` on the
/// port returned.
async fn world(env: &[(&str, &str)]) -> (World, u16) {
    let node = node();
    let tls = OwnedTLSConfig {
        identity: None,
        cert_chain: Some(node.ca_pem.clone()),
    };
    let broker = Broker::connect_tls(&node.url("localhost", "guest:guest@", ""), tls).await;
    let http = SmtpServer::free_port().await;
    let listen = format!("127.0.0.1:{http}");
    let mut env = env.to_vec();
    env.push(("RELAIS__HTTP__LISTEN", &listen));
    let world = World::with_broker(REGISTRY, SmtpServer::start().await, broker, &env).await;
    (world, http)
}

/// `/readyz`'s status and its `consumer` line, once relais listens and
/// has tried the broker at least once.
async fn consumer_readiness(port: u16) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = http_get(port, "/readyz").await;
        if status == 0 && tokio::time::Instant::now() < deadline {
            // Not listening yet: relais is still starting.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        let consumer = body["consumer"].as_str().unwrap().to_owned();
        if consumer != "not connected to the broker yet" || tokio::time::Instant::now() > deadline {
            return (status, consumer);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// relais, configured by `env`, consumes one alert from the TLS node and
/// emails it; it is ready meanwhile.
async fn delivered(env: &[(&str, &str)], id: &str) {
    let (world, http) = world(env).await;
    let app = world.spawn();

    world.publish_one(id).await;
    let mails = world.smtp.wait_for(1, WAIT).await;
    let readiness = consumer_readiness(http).await;
    app.stop().await;

    assert_eq!(readiness, (200, "consuming".to_owned()));
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].alert_id(), id);
    assert_eq!(mails[0].to, ["social@paris.test"]);
    assert_eq!(world.broker.depth(&world.queue).await, 0);
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
}

/// relais, configured by `env`, cannot consume from the TLS node: the
/// alert waits in its queue, nothing is sent, relais keeps running and is
/// not ready. Returns why, as `/readyz` says it.
async fn refused(env: &[(&str, &str)], id: &str) -> String {
    let (world, http) = world(env).await;
    let app = world.spawn();

    world.publish_one(id).await;
    let (status, why) = consumer_readiness(http).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let running = app.is_running();
    app.stop().await;

    assert_eq!(status, 503, "{why}");
    assert!(running, "relais keeps running and retrying");
    assert!(world.smtp.mails().is_empty());
    assert_eq!(world.broker.depth(&world.queue).await, 1, "the alert waits");
    let host = env[0].1.split('@').next_back().unwrap();
    assert!(
        why.contains("cannot connect to the broker amqps://"),
        "{why}"
    );
    assert!(why.contains(host), "{why}");
    assert!(!why.contains(":guest@"), "no password in: {why}");
    why
}

#[tokio::test]
async fn alerts_come_over_tls_from_a_broker_with_a_private_authority() {
    let node = node();
    let url = node.url("localhost", "guest:guest@", "");
    let ca = node.file("ca.pem");
    delivered(
        &[("RELAIS__AMQP__URL", &url), ("RELAIS__AMQP__CA_FILE", &ca)],
        "SOS75-AMQPS1",
    )
    .await;
}

#[tokio::test]
async fn a_client_certificate_logs_relais_in_without_a_password() {
    let node = node();
    let url = node.url("localhost", "", "?auth_mechanism=external");
    let (ca, cert, key) = (
        node.file("ca.pem"),
        node.file("client.pem"),
        node.file("client.key"),
    );
    delivered(
        &[
            ("RELAIS__AMQP__URL", &url),
            ("RELAIS__AMQP__USER", "guest"),
            ("RELAIS__AMQP__CA_FILE", &ca),
            ("RELAIS__AMQP__CERT_FILE", &cert),
            ("RELAIS__AMQP__KEY_FILE", &key),
        ],
        "SOS75-AMQPS2",
    )
    .await;
}

#[tokio::test]
async fn without_its_client_certificate_relais_cannot_log_in_and_the_alert_waits() {
    let node = node();
    let url = node.url("localhost", "", "?auth_mechanism=external");
    let ca = node.file("ca.pem");
    let why = refused(
        &[
            ("RELAIS__AMQP__URL", &url),
            ("RELAIS__AMQP__USER", "guest"),
            ("RELAIS__AMQP__CA_FILE", &ca),
        ],
        "SOS75-AMQPS3",
    )
    .await;
    assert!(why.contains("EXTERNAL"), "{why}");
}

#[tokio::test]
async fn a_private_authority_is_not_trusted_without_ca_file() {
    let node = node();
    let url = node.url("localhost", "guest:guest@", "");
    let why = refused(&[("RELAIS__AMQP__URL", &url)], "SOS75-AMQPS4").await;
    assert!(why.contains("UnknownIssuer"), "{why}");
}

#[tokio::test]
async fn a_broker_certificate_for_another_name_is_refused() {
    // The broker's certificate is for `localhost`, not 127.0.0.1.
    let node = node();
    let url = node.url("127.0.0.1", "guest:guest@", "");
    let ca = node.file("ca.pem");
    let why = refused(
        &[("RELAIS__AMQP__URL", &url), ("RELAIS__AMQP__CA_FILE", &ca)],
        "SOS75-AMQPS5",
    )
    .await;
    assert!(why.contains("certificate not valid for name"), "{why}");
}

#[tokio::test]
async fn a_queue_declared_with_other_arguments_is_reported_clearly_and_relais_keeps_trying() {
    // Arrange: a deployment whose queue was created by hand as a classic queue.
    let queue = unique("classic");
    let mut world = World::new(REGISTRY).await;
    world
        .env
        .push(("RELAIS__AMQP__QUEUE".into(), queue.clone()));
    world
        .broker
        .channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();

    // Act
    let mut relais = world.spawn_binary();
    let logs = Logs::collect(&mut relais);

    // Assert: the message names the queue, the argument, the fix; relais
    // does not exit, it tries again.
    assert!(
        logs.wait_for("exists with other arguments", 2, WAIT).await,
        "{}",
        logs.all()
    );
    let all = logs.all();
    let expected = [
        format!("refused to declare `{queue}`"),
        "inequivalent arg 'x-dead-letter-exchange'".to_owned(),
        "relais needs: x-dead-letter-exchange=".to_owned(),
        "x-queue-type=quorum".to_owned(),
        format!("rabbitmqctl delete_queue {queue}"),
    ];
    for expected in &expected {
        assert!(all.contains(expected), "logs lack {expected:?}:\n{all}");
    }
    assert!(relais.try_wait().unwrap().is_none(), "relais keeps running");
    signal(&relais, "TERM");
    assert!(wait_exit(&mut relais, WAIT).await.success());
    let _ = world
        .broker
        .channel
        .queue_delete(
            queue.as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await;
    world.cleanup().await;
}

#[tokio::test]
async fn a_wrong_broker_password_is_named_as_a_refused_login_without_the_password() {
    let secret = "WRONG-SECRET-4f1";
    let url = format!("amqp://guest:{secret}@127.0.0.1:5672/%2f");
    let world = World::with_env(REGISTRY, &[("RELAIS__AMQP__URL", url.as_str())]).await;

    let status = world.cli(&["status"]);

    assert_eq!(status.status.code(), Some(1));
    let shown = text(&status.stdout) + &text(&status.stderr);
    assert!(
        shown.contains("cannot connect to the broker amqp://guest:***@127.0.0.1:5672/%2f"),
        "{shown}"
    );
    assert!(shown.contains("ACCESS_REFUSED"), "{shown}");
    assert!(!shown.contains(secret), "{shown}");
    world.cleanup().await;
}

#[tokio::test]
async fn a_mistyped_broker_url_is_refused_without_printing_its_password() {
    let world = World::new(REGISTRY).await;
    let mut env = world.env.clone();
    env.push((
        "RELAIS__AMQP__URL".into(),
        "amqps:relais:S3CR3T@127.0.0.1/%2f".into(),
    ));

    for command in [&["check"][..], &["status"], &["dead-letters", "list"]] {
        let output = Command::new(env!("CARGO_BIN_EXE_relais"))
            .arg("--config")
            .arg(&world.config)
            .args(command)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
        assert_eq!(output.status.code(), Some(1), "{command:?}: {all}");
        assert!(all.contains("amqp.url has no host"), "{command:?}: {all}");
        assert!(!all.contains("S3CR3T"), "{command:?}: {all}");
    }
    world.cleanup().await;
}

#[tokio::test]
async fn a_dead_letter_queue_an_older_relais_declared_is_kept_and_what_to_set_is_said() {
    // Arrange: `.dead` as a relais before its delivery limit declared it.
    let queue = unique("older");
    let dead = format!("{queue}.dead");
    let mut world = World::new(REGISTRY).await;
    world
        .env
        .push(("RELAIS__AMQP__QUEUE".into(), queue.clone()));
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        lapin::types::AMQPValue::LongString("quorum".into()),
    );
    world
        .broker
        .channel
        .queue_declare(
            dead.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        )
        .await
        .unwrap();

    // Act: relais starts, and an invalid alert comes.
    let mut relais = world.spawn_binary();
    let logs = Logs::collect(&mut relais);
    assert!(
        logs.wait_for("consuming alerts", 1, WAIT).await,
        "{}",
        logs.all()
    );
    world
        .publish(
            "orientation_sociale",
            &support::alert("SOS75-OLDER", "orientation_sociale", "7511X"),
        )
        .await;
    let depth = world.wait_for_depth(&dead, 1, WAIT).await;
    signal(&relais, "TERM");
    let exit = wait_exit(&mut relais, WAIT).await;

    // Assert: relais consumed with the queue as it was, dead-lettered the
    // alert into it, and said what to set on RabbitMQ 4.x.
    let all = logs.all();
    assert_eq!(depth, 1, "{all}");
    assert!(exit.success(), "{all}");
    assert_eq!(
        all.matches("the dead-letter queue was declared by an older relais")
            .count(),
        1,
        "{all}"
    );
    for name in [queue.as_str(), dead.as_str()] {
        let _ = world
            .broker
            .channel
            .queue_delete(name.into(), lapin::options::QueueDeleteOptions::default())
            .await;
    }
    world.cleanup().await;
}

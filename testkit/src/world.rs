//! The World: everything one relais instance needs, isolated from every
//! other test (its own exchange and queue names on the broker, its own SMTP
//! server, its own settings and registry files, its own database when the
//! store is PostgreSQL), and relais run in it, in process or as the real
//! binary. A world never touches what another world or a deployment owns,
//! and removes what it made at [`World::cleanup`].

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lapin::options::{
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use relais::amqp::Topology;
use relais::settings::Settings;
use tempfile::TempDir;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::broker::{Broker, broker_url};
use crate::fixtures::{TERRITORIES, alert, unique};
use crate::postgres;
use crate::process::relais_binary;
use crate::smtp::SmtpServer;

/// The PostgreSQL server the behaviour tests run against when
/// `RELAIS_TEST_STORE=postgres` (e.g. `postgres://postgres@127.0.0.1:5432`),
/// or `None`: the SQLite store, the default.
pub fn test_store() -> Option<String> {
    match std::env::var("RELAIS_TEST_STORE").ok()?.as_str() {
        "postgres" => Some(postgres::server()),
        _ => None,
    }
}

/// Everything a relais instance needs, isolated from every other test.
pub struct World {
    pub dir: TempDir,
    pub config: PathBuf,
    pub smtp: SmtpServer,
    pub broker: Broker,
    pub exchange: String,
    pub queue: String,
    /// Settings overrides, as `RELAIS__…` environment variables.
    pub env: Vec<(String, String)>,
    /// The PostgreSQL database of this world's store, if it has one
    /// (`RELAIS_TEST_STORE=postgres`): server URL and database name.
    pub database: Option<(String, String)>,
    /// The folder of the secrets given to relais (the acknowledgement key),
    /// removed with the world.
    pub keys: Option<TempDir>,
}

impl World {
    /// Writes the settings and `registry`, starts the SMTP server, and
    /// declares the topology (as relais would) so alerts can be published
    /// before relais runs.
    pub async fn new(registry: &str) -> Self {
        Self::with_env(registry, &[]).await
    }

    /// As [`World::new`], with settings overridden the way an operator
    /// would, e.g. `("RELAIS__AMQP__DELIVERY_LIMIT", "2")`.
    pub async fn with_env(registry: &str, env: &[(&str, &str)]) -> Self {
        Self::with_server(registry, SmtpServer::start().await, env).await
    }

    /// As [`World::with_env`], with acknowledgement links on: the pages on
    /// `127.0.0.1:<port>` (returned), signed with `secret` (written in the
    /// world's folder).
    pub async fn with_ack(registry: &str, secret: &[u8], env: &[(&str, &str)]) -> (Self, u16) {
        let port = SmtpServer::free_port().await;
        let listen = format!("127.0.0.1:{port}");
        let public = format!("http://127.0.0.1:{port}");
        let keys = tempfile::tempdir().unwrap();
        let key = keys.path().join("ack-key");
        std::fs::write(&key, secret).unwrap();
        let mut all = vec![
            ("RELAIS__ACK__LISTEN", listen.as_str()),
            ("RELAIS__ACK__PUBLIC_URL", public.as_str()),
            ("RELAIS__ACK__KEY_FILE", key.to_str().unwrap()),
        ];
        all.extend_from_slice(env);
        let mut world = Self::with_env(registry, &all).await;
        world.keys = Some(keys);
        (world, port)
    }

    /// As [`World::with_env`], with a given SMTP server (e.g. one that
    /// speaks TLS).
    pub async fn with_server(registry: &str, smtp: SmtpServer, env: &[(&str, &str)]) -> Self {
        Self::with_broker(registry, smtp, Broker::connect().await, env).await
    }

    /// As [`World::with_server`], on another broker than the local one
    /// (`env` then gives relais its URL).
    pub async fn with_broker(
        registry: &str,
        smtp: SmtpServer,
        broker: Broker,
        env: &[(&str, &str)],
    ) -> Self {
        let amqp = format!("url = \"{}\"", broker_url());
        Self::build(registry, smtp, broker, env, &amqp, test_store()).await
    }

    /// As [`World::new`], on the PostgreSQL store whatever
    /// `RELAIS_TEST_STORE` says (for what only it does: the standby).
    pub async fn on_postgres(registry: &str) -> Self {
        let server = postgres::server();
        let amqp = format!("url = \"{}\"", broker_url());
        let smtp = SmtpServer::start().await;
        Self::build(
            registry,
            smtp,
            Broker::connect().await,
            &[],
            &amqp,
            Some(server),
        )
        .await
    }

    /// As [`World::new`], on the nodes of a cluster (`amqp.urls`), the
    /// test's own client connected to the first.
    pub async fn on_cluster(registry: &str, urls: &[String], env: &[(&str, &str)]) -> Self {
        Self::on_cluster_with_store(registry, urls, env, test_store()).await
    }

    /// As [`World::on_cluster`], on the PostgreSQL server `postgres` (or
    /// SQLite with `None`) whatever `RELAIS_TEST_STORE` says.
    pub async fn on_cluster_with_store(
        registry: &str,
        urls: &[String],
        env: &[(&str, &str)],
        postgres: Option<String>,
    ) -> Self {
        let broker = Broker::connect_url(&urls[0]).await;
        let listed: Vec<String> = urls.iter().map(|url| format!("{url:?}")).collect();
        let amqp = format!("urls = [{}]", listed.join(", "));
        let smtp = SmtpServer::start().await;
        Self::build(registry, smtp, broker, env, &amqp, postgres).await
    }

    /// As [`World::on_cluster_with_store`], with a given SMTP server, and a
    /// connection of the test's own to `inspect` (a URL of one of the
    /// brokers that the test reaches whatever the partitions).
    pub async fn on_brokers_with_server(
        registry: &str,
        urls: &[String],
        inspect: &str,
        smtp: SmtpServer,
        env: &[(&str, &str)],
        postgres: Option<String>,
    ) -> Self {
        let broker = Broker::connect_url(inspect).await;
        let listed: Vec<String> = urls.iter().map(|url| format!("{url:?}")).collect();
        let amqp = format!("urls = [{}]", listed.join(", "));
        Self::build(registry, smtp, broker, env, &amqp, postgres).await
    }

    async fn build(
        registry: &str,
        smtp: SmtpServer,
        broker: Broker,
        env: &[(&str, &str)],
        amqp: &str,
        postgres: Option<String>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let exchange = unique("alerts");
        let queue = unique("alerts");
        std::fs::write(dir.path().join("referents.toml"), registry).unwrap();
        let config = dir.path().join("relais.toml");
        let database = match postgres {
            Some(server) => Some((server.clone(), postgres::database(&server, &queue).await)),
            None => None,
        };
        let store = match &database {
            Some((server, name)) => format!("url = \"{server}/{name}\""),
            None => "path = \"state/relais.db\"".to_owned(),
        };
        std::fs::write(
            &config,
            format!(
                r#"
shutdown_timeout = "10s"

[amqp]
{amqp}
exchange = "{exchange}"
queue = "{queue}"
prefetch = 16

[smtp]
host = "127.0.0.1"
port = {port}
tls = "none"
from = "relais SOS Médecins <relais@sos-medecins.test>"
timeout = "2s"
final_reply_timeout = "2s"

[registry]
path = "referents.toml"

[territories]
path = "{TERRITORIES}"

[events]
exchange = "{exchange}.events"

[store]
{store}

[http]
listen = ""
queue_poll = "100ms"

[retry]
immediate = 2
immediate_base = "10ms"
delays = ["200ms", "400ms"]
"#,
                port = smtp.port()
            ),
        )
        .unwrap();
        let world = Self {
            dir,
            config,
            smtp,
            broker,
            exchange,
            queue,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            database,
            keys: None,
        };
        Topology::new(&world.settings())
            .declare(&world.broker.channel)
            .await
            .expect("declare the test topology");
        world
    }

    /// Replaces the retry ladder's delays (short by default: 200 ms,
    /// 400 ms), for a test whose fault lasts longer than that.
    pub fn set_retry_delays(&self, delays: &[&str]) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let ladder = delays
            .iter()
            .map(|delay| format!("{delay:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let text = text.replace(
            "delays = [\"200ms\", \"400ms\"]",
            &format!("delays = [{ladder}]"),
        );
        std::fs::write(&self.config, text).unwrap();
    }

    pub fn settings(&self) -> Settings {
        let env = self.env.iter().cloned().collect();
        Settings::load_with_env(Some(&self.config), Some(env)).expect("valid test settings")
    }

    pub fn dead(&self) -> String {
        format!("{}.dead", self.queue)
    }

    /// Runs relais in this process.
    pub fn spawn(&self) -> RunningApp {
        log_to_the_test_output();
        let (stop, stopped) = oneshot::channel::<()>();
        let (reload, reloads) = mpsc::channel(1);
        let settings = self.settings();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(relais::daemon::run(settings, shutdown, reloads));
        RunningApp { stop, reload, task }
    }

    /// The store relais writes in this world, read as `relais audit` does.
    pub async fn audit(&self) -> relais::store::AuditReader {
        relais::store::AuditReader::open(&self.settings().store)
            .await
            .expect("the store")
    }

    /// Runs a `relais` subcommand on this world's settings, its standard
    /// input empty.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(relais_binary())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run the relais binary")
    }

    /// As [`World::cli`], on a thread of its own: for a subcommand that
    /// talks to this world's SMTP server, which runs on the test's own
    /// runtime and must keep answering meanwhile.
    pub async fn cli_beside(&self, args: &[&str]) -> std::process::Output {
        let mut command = Command::new(relais_binary());
        command
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("the relais binary's thread")
            .expect("run the relais binary")
    }

    /// As [`World::cli`], with `input` on the subcommand's standard input
    /// (e.g. the alert that `relais publish` reads).
    pub fn cli_with_input(&self, args: &[&str], input: &[u8]) -> std::process::Output {
        use std::io::Write as _;
        let mut child = Command::new(relais_binary())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the relais binary");
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // A subcommand may stop reading early (e.g. past a size limit).
        match stdin.write_all(input) {
            Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                panic!("write the standard input: {error}")
            }
            _ => {}
        }
        drop(stdin);
        child.wait_with_output().expect("run the relais binary")
    }

    /// Opens this world's folders (settings, registry, store, keys) to
    /// every user, for a `relais` that a mail server runs as another user
    /// (see [`crate::mta::Mta::pipe_bounces_to`]).
    pub fn share_with_every_user(&self) {
        let folders = std::iter::once(self.dir.path()).chain(self.keys.as_ref().map(TempDir::path));
        for folder in folders {
            let status = Command::new("chmod")
                .args(["-R", "a+rwX"])
                .arg(folder)
                .status()
                .expect("run chmod");
            assert!(status.success(), "chmod -R a+rwX {}", folder.display());
        }
    }

    /// Runs the real `relais run` binary on this world's settings.
    pub fn spawn_binary(&self) -> Child {
        self.spawn_binary_with(&[])
    }

    /// As [`World::spawn_binary`], with more settings overridden (e.g. a
    /// second instance's `http.listen`).
    pub fn spawn_binary_with(&self, env: &[(&str, &str)]) -> Child {
        self.spawn_command(Command::new(relais_binary()), env)
    }

    /// As [`World::spawn_binary_with`], on a host of the test's own: relais
    /// reaches the machine only through that host's links.
    pub fn spawn_binary_on(&self, host: &crate::netns::Host, env: &[(&str, &str)]) -> Child {
        self.spawn_command(host.command(relais_binary()), env)
    }

    fn spawn_command(&self, mut command: Command, env: &[(&str, &str)]) -> Child {
        command
            .args(["run", "--config"])
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the relais binary")
    }

    pub async fn publish(&self, routing_key: &str, body: &[u8]) {
        self.broker.publish(&self.exchange, routing_key, body).await;
    }

    /// Publishes the alert `id` of kind orientation_sociale for commune
    /// 75115, whose one référent is social@paris.test.
    pub async fn publish_one(&self, id: &str) {
        self.publish(
            "orientation_sociale",
            &alert(id, "orientation_sociale", "75115"),
        )
        .await;
    }

    /// Publishes `count` alerts `<prefix>-0000`, `<prefix>-0001`, … as
    /// [`World::publish_one`] does.
    pub async fn publish_stream(&self, prefix: &str, count: usize) {
        for n in 0..count {
            self.publish_one(&format!("{prefix}-{n:04}")).await;
        }
    }

    /// Takes the alert waiting in the main queue and dies with it
    /// `crashes` times, as a consumer that crashes would: each time the
    /// broker gives it back and counts one more delivery (past
    /// `amqp.delivery_limit`, it dead-letters it itself).
    pub async fn crash_with_the_next_alert(&self, crashes: usize) {
        use futures_util::StreamExt;
        for _ in 0..crashes {
            let channel = self.broker.connection.create_channel().await.unwrap();
            let mut consumer = channel
                .basic_consume(
                    self.queue.as_str().into(),
                    "".into(),
                    lapin::options::BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
            tokio::time::timeout(crate::WAIT, consumer.next())
                .await
                .expect("an alert in the main queue")
                .unwrap()
                .unwrap();
            channel.close(200, "crash".into()).await.unwrap();
        }
    }

    /// Waits until relais has recorded `count` emails of the alert `id` as
    /// delivered, or `within` passed; returns the count. relais records an
    /// email once the mail server has answered its end of data, a moment
    /// after the test's server counted it: a référent's click comes later
    /// than that, and a test acting on a link as soon as the server has
    /// the email waits for this first.
    pub async fn wait_for_recorded(&self, id: &str, count: usize, within: Duration) -> usize {
        let id = relais::alert::AlertId::parse(id).expect("an alert id");
        let audit = self.audit().await;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let recorded = audit.alert(&id).await.map_or(0, |emails| emails.len());
            if recorded >= count || tokio::time::Instant::now() >= deadline {
                return recorded;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `queue` holds `count` ready messages (unacked ones are
    /// not counted by the broker), or `within` passed; returns the count.
    pub async fn wait_for_depth(&self, queue: &str, count: u32, within: Duration) -> u32 {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            // A queue relais has yet to declare counts as empty for now.
            let depth = self.broker.depth_if_declared(queue).await.unwrap_or(0);
            if depth == count || tokio::time::Instant::now() >= deadline {
                return depth;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A queue of the test's own bound to this world's events exchange
    /// with `routing_key` (`#` for every status), as a dispatch software
    /// would bind one; returns its name (deleted by [`World::cleanup`]).
    pub async fn bind_events(&self, routing_key: &str) -> String {
        self.bind_events_to("dispatch-events", routing_key).await
    }

    /// As [`World::bind_events`], with a queue of its own named
    /// `<queue>.<name>`: one per dispatch software of the test.
    pub async fn bind_events_to(&self, name: &str, routing_key: &str) -> String {
        let queue = format!("{}.{name}", self.queue);
        let channel = &self.broker.channel;
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("declare the events queue");
        channel
            .queue_bind(
                queue.as_str().into(),
                self.settings().events.exchange.as_str().into(),
                routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind the events queue");
        queue
    }

    /// Deletes this world's queues and exchanges (and its database).
    pub async fn cleanup(self) {
        if let Some((server, name)) = &self.database {
            postgres::drop_database(server, name).await;
        }
        let settings = self.settings();
        let topology = Topology::new(&settings);
        let events = format!("{}.dispatch-events", self.queue);
        for queue in topology.queues().chain([events.as_str()]) {
            let _ = self
                .broker
                .channel
                .queue_delete(queue.into(), QueueDeleteOptions::default())
                .await;
        }
        for exchange in [&self.exchange, &self.dead(), &topology.events] {
            let _ = self
                .broker
                .channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
    }
}

/// With `RELAIS_TEST_LOG` set (a filter, as `RUST_LOG`: `relais=debug`),
/// the logs of relais running inside the test process go to the test's
/// output, which cargo shows for a test that fails.
fn log_to_the_test_output() {
    if let Ok(filter) = std::env::var("RELAIS_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// relais running inside the test process.
pub struct RunningApp {
    stop: oneshot::Sender<()>,
    reload: mpsc::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningApp {
    /// Asks relais to reload its registry, as SIGHUP does.
    pub async fn reload(&self) {
        self.reload.send(()).await.expect("relais is running");
    }

    /// Asks relais to stop, as SIGTERM does, and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("relais stops within 30 s")
            .expect("the relais task does not panic")
            .expect("relais stops without error");
    }

    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

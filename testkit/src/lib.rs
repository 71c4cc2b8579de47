//! What every integration test and the benchmark build on: an isolated
//! world (its own exchange and queue names on the real broker, its own SMTP
//! server, its own settings and registry files), a way to run relais in it
//! (in process, or as the real binary), and a broker client to publish and
//! inspect queues.
//!
//! A crate of its own, compiled once for every test binary.

pub mod browser;
pub mod ca;
pub mod mta;
pub mod postgres;
pub mod rabbitmq;
pub mod smtp;

pub use ca::TestCa;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::{
    BasicAckOptions, BasicGetOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use relais::amqp::{Publisher, Topology};
use relais::settings::Settings;
use tempfile::TempDir;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use self::smtp::SmtpServer;

/// The `relais` binary cargo built beside the running test or benchmark
/// (`target/<profile>/relais`; the test itself is in `deps/` below it).
pub fn relais_binary() -> PathBuf {
    let test = std::env::current_exe().expect("the test's own path");
    let profile = test
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a test binary in target/<profile>/deps");
    profile.join("relais")
}

/// The official geography shipped with relais, as the tests use it.
pub const TERRITORIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/territories.tsv");

/// The shipped geography, loaded once per test binary.
pub fn france() -> std::sync::Arc<relais::geography::Geography> {
    static FRANCE: std::sync::OnceLock<std::sync::Arc<relais::geography::Geography>> =
        std::sync::OnceLock::new();
    FRANCE
        .get_or_init(|| {
            std::sync::Arc::new(
                relais::geography::Geography::load(std::path::Path::new(TERRITORIES))
                    .expect("data/territories.tsv"),
            )
        })
        .clone()
}

pub const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A registry with the three levels, two networks for one kind, and Corsica.
pub const REGISTRY: &str = r#"
[[route]]
kind = "orientation_sociale"
networks = ["ccas"]
label = "Orientation sociale"

[[route]]
kind = "acces_aux_droits"
networks = ["cpam", "caf"]
label = "Accès aux droits"

[[referent]]
id = "ccas-paris-13"
network = "ccas"
name = "Camille Martin"
organisation = "CCAS de Paris 13e"
email = "camille.martin@ccas-paris13.test"
communes = ["75113"]

[[referent]]
id = "ccas-paris-13-accueil"
network = "ccas"
email = "accueil@ccas-paris13.test"
communes = ["75113"]

[[referent]]
id = "ccas-paris"
network = "ccas"
email = "social@paris.test"
departements = ["75"]

[[referent]]
id = "ccas-ajaccio"
network = "ccas"
email = "ccas@ajaccio.test"
communes = ["2A004"]

[[referent]]
id = "cpam-75"
network = "cpam"
email = "referent@cpam-paris.test"
departements = ["75"]

[[referent]]
id = "caf-75"
network = "caf"
email = "referent@caf-paris.test"
departements = ["75"]
"#;

/// `GET path` on a loopback HTTP server: the status code and the body;
/// status 0 when nothing listens (yet).
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    let (status, response) = http_request(port, "GET", path).await;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// `method path`, without a body, on a loopback HTTP server: the status
/// code and the whole response, head included; status 0 when nothing
/// listens (yet).
pub async fn http_request(port: u16, method: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return (0, "nothing listens".into());
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, response)
}

/// The value of one sample in a metrics exposition, e.g.
/// `relais_emails_sent_total` or `relais_alerts_dead_lettered_total{reason="invalid"}`.
pub fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// A name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("test.{prefix}.{}.{n}.{nanos}", std::process::id())
}

/// A registry routing `orientation_sociale` to network `ccas`, whose
/// référents, given as (id, address), all serve commune 75113.
pub fn registry_of(referents: &[(String, String)]) -> String {
    let mut registry = String::from(
        "[[route]]\nkind = \"orientation_sociale\"\nnetworks = [\"ccas\"]\nlabel = \"Orientation sociale\"\n",
    );
    for (id, email) in referents {
        registry.push_str(&format!(
            "\n[[referent]]\nid = \"{id}\"\nnetwork = \"ccas\"\nemail = \"{email}\"\ncommunes = [\"75113\"]\n"
        ));
    }
    registry
}

/// An alert body of the contract, with a given id, kind and commune.
pub fn alert(id: &str, kind: &str, commune: &str) -> Vec<u8> {
    serde_json::json!({
        "id": id,
        "kind": kind,
        "priority": "urgent",
        "emitted_at": "2026-11-22T08:15:00+01:00",
        "association": "SOS Médecins Paris",
        "territory": { "commune": commune },
        "summary": "Personne âgée isolée, sans aide à domicile, chute récente.",
        "patient": { "reference": "D-2026-4411", "name": "Mme Jeanne Durand" },
        "contact": { "name": "Dr Martin", "phone": "01 47 07 77 77" }
    })
    .to_string()
    .into_bytes()
}

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
        let amqp = format!("url = \"{BROKER}\"");
        Self::build(registry, smtp, broker, env, &amqp, test_store()).await
    }

    /// As [`World::new`], on the PostgreSQL store whatever
    /// `RELAIS_TEST_STORE` says (for what only it does: the standby).
    pub async fn on_postgres(registry: &str) -> Self {
        let server = postgres::server();
        let amqp = format!("url = \"{BROKER}\"");
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

    /// Runs the real `relais run` binary on this world's settings.
    /// Runs a `relais` subcommand on this world's settings.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(relais_binary())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run the relais binary")
    }

    pub fn spawn_binary(&self) -> Child {
        self.spawn_binary_with(&[])
    }

    /// As [`World::spawn_binary`], with more settings overridden (e.g. a
    /// second instance's `http.listen`).
    pub fn spawn_binary_with(&self, env: &[(&str, &str)]) -> Child {
        Command::new(relais_binary())
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
        let queue = format!("{}.dispatch-events", self.queue);
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

/// The lines relais writes on stderr, collected as they come.
#[derive(Clone, Default)]
pub struct Logs {
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Logs {
    /// Starts collecting the child's stderr.
    pub fn collect(child: &mut Child) -> Self {
        use std::io::BufRead;
        let logs = Self::default();
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines = logs.lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                lines.lock().unwrap().push(line);
            }
        });
        logs
    }

    /// Waits until `count` lines contain `text`; false if `within` passed.
    pub async fn wait_for(&self, text: &str, count: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.count(text) >= count {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Waits (30 s at most) for a line containing `text`; fails showing
    /// every line otherwise.
    pub async fn expect(&self, text: &str) {
        let seen = self.wait_for(text, 1, Duration::from_secs(30)).await;
        assert!(seen, "no log line contains {text:?}:\n{}", self.all());
    }

    pub fn count(&self, text: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(text))
            .count()
    }

    pub fn all(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

/// The `role` that `/readyz` on `port` says (`active`, `standby`), once
/// it is `role`, or the last one seen after a minute.
pub async fn wait_for_role(port: u16, role: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    while tokio::time::Instant::now() < deadline {
        let (_, body) = http_get(port, "/readyz").await;
        if let Ok(readiness) = serde_json::from_str::<serde_json::Value>(&body) {
            seen = readiness["role"].as_str().unwrap_or_default().to_owned();
            if seen == role {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

/// Sends a signal (`TERM`, `KILL`, `HUP`) to a process.
pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name}");
}

/// Waits for a process to exit, at most `within`.
pub async fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "relais did not exit within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
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
        Self::connect_url(BROKER).await
    }

    /// The test's connection to the machine's broker with another login,
    /// e.g. `amqp://user:password@127.0.0.1:5672/%2f`.
    pub async fn connect_url(url: &str) -> Self {
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .expect("RabbitMQ on 127.0.0.1:5672 (see docs/testing.md)");
        Self::on(connection).await
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

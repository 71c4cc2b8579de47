//! RabbitMQ nodes of a test binary's own, beside the machine's broker
//! (which they never touch): each listens on loopback ports chosen at
//! start, keeps its data in a temporary folder, and is stopped (its folder
//! removed) by a shell beside it when the test process ends, however it
//! ends. No root, no change to the machine's RabbitMQ.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
/// A node takes a few seconds to start; a loaded machine, many more.
const START_WITHIN: Duration = Duration::from_secs(90);

/// A running node.
pub struct Node {
    /// The shell that stops the node when this process ends.
    _keeper: Child,
    /// Its AMQP port on 127.0.0.1.
    pub port: u16,
    /// Its folder: settings, data, logs (`node.log`).
    pub dir: PathBuf,
    /// Its Erlang node name, e.g. `cluster1-4242@localhost`.
    pub name: String,
}

impl Node {
    /// Starts a node named `<prefix>-<pid>@localhost` and waits until it
    /// listens. `settings` gives its `rabbitmq.conf` from its folder and
    /// its AMQP port; `plugins` its `enabled_plugins` (an Erlang list).
    pub fn start(prefix: &str, settings: impl FnOnce(&Path, u16) -> String, plugins: &str) -> Self {
        Self::start_with_cookie(prefix, settings, plugins, None)
    }

    /// As [`Node::start`], with the Erlang cookie `cookie` (the nodes of a
    /// cluster share one; `rabbitmqctl` reads it from the node's `HOME`).
    fn start_with_cookie(
        prefix: &str,
        settings: impl FnOnce(&Path, u16) -> String,
        plugins: &str,
        cookie: Option<&str>,
    ) -> Self {
        assert!(
            Path::new(SERVER).exists(),
            "RabbitMQ's server script (scripts/rabbitmq)"
        );
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir()
            .unwrap()
            .keep();
        let port = free_port();
        std::fs::write(dir.join("rabbitmq.conf"), settings(&dir, port)).unwrap();
        std::fs::write(dir.join("enabled_plugins"), plugins).unwrap();
        if let Some(cookie) = cookie {
            use std::os::unix::fs::PermissionsExt as _;
            let file = dir.join(".erlang.cookie");
            std::fs::write(&file, cookie).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
        }
        let name = node_name(prefix);
        let script = r#"
            "$0" >"$1/node.log" 2>&1 &
            trap '' TERM
            while kill -0 "$PPID" 2>/dev/null; do sleep 1; done
            kill -TERM -$$; wait; rm -rf "$1""#;
        let keeper = Command::new("sh")
            .args(["-c", script])
            .arg(SERVER)
            .arg(&dir)
            .process_group(0)
            .env("HOME", &dir)
            .env("RABBITMQ_NODENAME", &name)
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("RABBITMQ_CONF_ENV_FILE", "/dev/null")
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PID_FILE", dir.join("node.pid"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}",
            )
            .stdin(Stdio::null())
            .spawn()
            .expect("start a RabbitMQ node");
        let deadline = Instant::now() + START_WITHIN;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the node {prefix} did not listen within {START_WITHIN:?}: {}",
                std::fs::read_to_string(dir.join("node.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Self {
            _keeper: keeper,
            port,
            dir,
            name,
        }
    }

    /// Runs `rabbitmqctl` (or `rabbitmq-queues`, …) against this node, as
    /// its own user (its `HOME` holds the cookie); returns its output.
    pub fn ctl(&self, tool: &str, args: &[&str]) -> String {
        let output = Command::new(format!("/usr/lib/rabbitmq/bin/{tool}"))
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .env("HOME", &self.dir)
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .output()
            .expect("run rabbitmqctl");
        assert!(
            output.status.success(),
            "{tool} {args:?} on {}: {}{}",
            self.name,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Stops the RabbitMQ application of the node (the Erlang node stays,
    /// as `rabbitmqctl stop_app` does): its clients are disconnected.
    pub fn stop_app(&self) {
        self.ctl("rabbitmqctl", &["stop_app"]);
    }

    /// Starts it again, and waits until it runs.
    pub fn start_app(&self) {
        self.ctl("rabbitmqctl", &["start_app"]);
        self.ctl("rabbitmqctl", &["await_startup"]);
    }

    /// A file of the node's folder, by name.
    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_owned()
    }

    /// The URL of the node's default virtual host, as `guest`, in clear.
    pub fn url(&self) -> String {
        self.url_at(std::net::Ipv4Addr::LOCALHOST)
    }

    /// Its URL at another address of the machine's (a node listening on
    /// every address, with `loopback_users = none`: for a relais on a host
    /// of the test's own).
    pub fn url_at(&self, address: std::net::Ipv4Addr) -> String {
        format!("amqp://guest:guest@{address}:{}/%2f", self.port)
    }
}

/// The Erlang name of a node of this test process.
fn node_name(prefix: &str) -> String {
    format!("{prefix}-{}@localhost", std::process::id())
}

/// Three nodes of one RabbitMQ cluster, formed by peer discovery from a
/// fixed list (`classic_config`): the first starts alone, the others join
/// it as they boot.
pub struct Cluster {
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// Starts `size` nodes named `<prefix><n>-<pid>@localhost` and waits
    /// until each runs as a member of the cluster.
    pub fn start(prefix: &str, size: usize) -> Self {
        let cookie = format!("RELAISTESTCOOKIE{}", std::process::id());
        let names: Vec<String> = (1..=size)
            .map(|n| node_name(&format!("{prefix}{n}")))
            .collect();
        let discovery: String = names
            .iter()
            .enumerate()
            .map(|(n, name)| {
                format!(
                    "cluster_formation.classic_config.nodes.{} = {name}\n",
                    n + 1
                )
            })
            .collect();
        let nodes: Vec<Node> = (1..=size)
            .map(|n| {
                let discovery = discovery.clone();
                Node::start_with_cookie(
                    &format!("{prefix}{n}"),
                    move |_, port| {
                        format!(
                            "listeners.tcp.default = 127.0.0.1:{port}\n\
                             cluster_formation.peer_discovery_backend = classic_config\n\
                             {discovery}"
                        )
                    },
                    "[].",
                    Some(&cookie),
                )
            })
            .collect();
        let cluster = Self { nodes };
        let deadline = Instant::now() + START_WITHIN;
        loop {
            let status =
                cluster.nodes[0].ctl("rabbitmqctl", &["cluster_status", "--formatter", "json"]);
            let running = names.iter().all(|name| {
                status
                    .split("\"running_nodes\"")
                    .nth(1)
                    .is_some_and(|rest| {
                        rest.split(']').next().unwrap_or("").contains(name.as_str())
                    })
            });
            if running {
                return cluster;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not form: {status}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The URLs of its nodes, as `guest`, in clear (for `amqp.urls`).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// The node that leads quorum queue `queue`, by index in `nodes`.
    pub fn leader_of(&self, queue: &str) -> usize {
        let listed = self.nodes[0].ctl(
            "rabbitmqctl",
            &[
                "list_queues",
                "name",
                "leader",
                "--no-table-headers",
                "--quiet",
            ],
        );
        let leader = listed
            .lines()
            .find_map(|line| {
                let mut fields = line.split_whitespace();
                (fields.next() == Some(queue)).then(|| fields.next().unwrap_or("").to_owned())
            })
            .unwrap_or_else(|| panic!("no queue {queue} in {listed}"));
        self.nodes
            .iter()
            .position(|node| node.name == leader)
            .unwrap_or_else(|| panic!("leader {leader} is none of the nodes"))
    }
}

/// A port nobody listens on at the time of the call, below the kernel's
/// ephemeral range (32768-60999 by default): a port the kernel gave out
/// for `bind(0)` could be taken, before the test listens on it, by any of
/// the tests' outgoing connections, which draw from that range. Each call
/// in a process tries the next port of a sequence that starts at a place
/// of its own, so that tests running at once do not pick the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const PORTS: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % PORTS,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    loop {
        let port = FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % PORTS;
        let port = u16::try_from(port).expect("a port below 32000");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

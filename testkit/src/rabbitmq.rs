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
}

impl Node {
    /// Starts a node named `<prefix>-<pid>@localhost` and waits until it
    /// listens. `settings` gives its `rabbitmq.conf` from its folder and
    /// its AMQP port; `plugins` its `enabled_plugins` (an Erlang list).
    pub fn start(prefix: &str, settings: impl FnOnce(&Path, u16) -> String, plugins: &str) -> Self {
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
        let name = format!("{prefix}-{}@localhost", std::process::id());
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
            .env("RABBITMQ_NODENAME", name)
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
        }
    }

    /// A file of the node's folder, by name.
    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_owned()
    }

    /// The URL of the node's default virtual host, as `guest`, in clear.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }
}

/// A port nobody listens on at the time of the call.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

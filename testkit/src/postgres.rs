//! PostgreSQL for the tests: a database of each test's own on the
//! machine's server (`RELAIS_TEST_POSTGRES`, by default
//! `postgres://postgres@127.0.0.1:5432`), created empty, so that relais
//! creates its schema as at a first deployment, and dropped by
//! `World::cleanup`; and servers of a test's own, one that speaks TLS only
//! and one that never does, for the store's TLS.

use tokio_postgres::NoTls;

/// The tests' PostgreSQL server: `RELAIS_TEST_POSTGRES`, or the machine's.
pub fn server() -> String {
    std::env::var("RELAIS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// Creates the empty database for `name` (any name; made a valid
/// identifier) on `server`, and returns the database's name.
pub async fn database(server: &str, name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    // One statement each: neither may run in a transaction block.
    run(
        server,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
    .await;
    run(server, &format!("CREATE DATABASE {name}")).await;
    name
}

/// Drops database `name`, closing the connections relais left.
pub async fn drop_database(server: &str, name: &str) {
    run(
        server,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
    .await;
}

async fn run(server: &str, statement: &str) {
    let (client, connection) = tokio_postgres::connect(&format!("{server}/postgres"), NoTls)
        .await
        .expect("the tests' PostgreSQL (RELAIS_TEST_POSTGRES)");
    let driver = tokio::spawn(connection);
    client.batch_execute(statement).await.expect(statement);
    drop(client);
    let _ = driver.await;
}

/// Restarts the machine's PostgreSQL cluster on port 5432 (as root, with
/// Debian's `pg_ctlcluster`): every connection is cut, and the server
/// refuses new ones for the few seconds it takes.
pub fn restart() {
    let clusters = std::process::Command::new("pg_lsclusters")
        .arg("--no-header")
        .output()
        .expect("pg_lsclusters (Debian's postgresql-common)");
    let listed = String::from_utf8_lossy(&clusters.stdout).into_owned();
    let (version, name) = listed
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields.get(2) == Some(&"5432"))
        .map(|fields| (fields[0].to_owned(), fields[1].to_owned()))
        .unwrap_or_else(|| panic!("no PostgreSQL cluster on port 5432: {listed}"));
    let status = std::process::Command::new("pg_ctlcluster")
        .args([&version, &name, "restart"])
        .status()
        .expect("pg_ctlcluster");
    assert!(status.success(), "pg_ctlcluster {version} {name} restart");
}

/// A PostgreSQL server of a test's own, on a loopback port: made with
/// `initdb` in a temporary folder (as the `postgres` user: PostgreSQL
/// refuses to run as root), stopped and removed by a shell beside it when
/// the test process ends. It speaks TLS only ([`Server::with_tls`]), or
/// never ([`Server::in_clear`]: what a machine in the middle answers to
/// strip TLS). The machine's server is untouched.
pub struct Server {
    /// The shell that stops the server when this process ends.
    _keeper: std::process::Child,
    pub port: u16,
}

impl Server {
    /// Starts it with the certificate `cert_pem` (of a [`crate::TestCa`])
    /// and key `key_pem`, trust authentication for `postgres` from
    /// 127.0.0.1 over TLS only.
    pub fn with_tls(cert_pem: &str, key_pem: &str) -> Self {
        Self::start(Some((cert_pem, key_pem)), false)
    }

    /// Starts it without TLS (it answers "no" to a client asking for it),
    /// trust authentication for `postgres` from 127.0.0.1.
    pub fn in_clear() -> Self {
        Self::start(None, false)
    }

    /// As [`Server::with_tls`], listening on every address: `postgres`
    /// trusted over TLS from the test's own hosts (`10.0.0.0/8`:
    /// [`crate::netns::Host`]), and in clear from 127.0.0.1 (the test's own
    /// sessions, which make the databases).
    pub fn with_tls_for_hosts(cert_pem: &str, key_pem: &str) -> Self {
        Self::start(Some((cert_pem, key_pem)), true)
    }

    /// The URL of its `postgres` role at `address`, database `name`.
    pub fn url_at(&self, address: std::net::Ipv4Addr, name: &str) -> String {
        format!("postgres://postgres@{address}:{}/{name}", self.port)
    }

    fn start(tls: Option<(&str, &str)>, hosts: bool) -> Self {
        use std::os::unix::fs::PermissionsExt as _;
        use std::os::unix::process::CommandExt as _;
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server (scripts/postgresql)")
            .filter_map(Result::ok)
            .map(|version| version.path().join("bin"))
            .find(|bin| bin.join("initdb").exists())
            .expect("initdb under /usr/lib/postgresql/<version>/bin");
        let dir = tempfile::Builder::new()
            .prefix("relais-pg-")
            .tempdir()
            .unwrap()
            .keep();
        if let Some((cert_pem, key_pem)) = tls {
            std::fs::write(dir.join("server.crt"), cert_pem).unwrap();
            std::fs::write(dir.join("server.key"), key_pem).unwrap();
            std::fs::set_permissions(
                dir.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        }
        let owned = std::process::Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(
            owned.success(),
            "chown the test server's folder to postgres"
        );
        let data = dir.join("data");
        let init = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data)
            .output()
            .expect("initdb");
        assert!(
            init.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        // From 127.0.0.1 only: over TLS only, or in clear only.
        let (hba, ssl) = match tls {
            Some(_) => (
                "hostssl all postgres 127.0.0.1/32 trust\n",
                r#"-c ssl=on -c ssl_cert_file="$1/server.crt" -c ssl_key_file="$1/server.key""#,
            ),
            None => ("hostnossl all postgres 127.0.0.1/32 trust\n", "-c ssl=off"),
        };
        let (hba, listen) = if hosts {
            (
                "host all postgres 127.0.0.1/32 trust\nhostssl all postgres 10.0.0.0/8 trust\n"
                    .to_owned(),
                "'*'",
            )
        } else {
            (hba.to_owned(), "127.0.0.1")
        };
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        let port = crate::rabbitmq::free_port();
        let script = format!(
            r#"
            runuser -u postgres -- "$0" -D "$1/data" -p "$2" -k "$1" \
              -c listen_addresses={listen} {ssl} >"$1/server.log" 2>&1 &
            trap '' TERM
            while kill -0 "$PPID" 2>/dev/null; do sleep 1; done
            kill -TERM $!; wait; rm -rf "$1""#
        );
        let keeper = std::process::Command::new("sh")
            .args(["-c", &script])
            .arg(bin.join("postgres"))
            .arg(&dir)
            .arg(port.to_string())
            .process_group(0)
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("start a PostgreSQL server");
        // Until it accepts sessions: it listens before it has finished
        // starting up ("the database system is starting up").
        let accepting = || {
            std::process::Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p"])
                .arg(port.to_string())
                .status()
                .is_ok_and(|status| status.success())
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !accepting() {
            assert!(
                std::time::Instant::now() < deadline,
                "the test's PostgreSQL did not start: {}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Self {
            _keeper: keeper,
            port,
        }
    }
}

//! PostgreSQL for the tests: a database of each test's own on the
//! machine's server (`RELAIS_TEST_POSTGRES`, by default
//! `postgres://postgres@127.0.0.1:5432`), created empty, so that relais
//! creates its schema as at a first deployment, and dropped by
//! `World::cleanup`.

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

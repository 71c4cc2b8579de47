//! PostgreSQL for the tests: a database of each test's own on the
//! machine's server (`RELAIS_TEST_POSTGRES`, by default
//! `postgres://postgres@127.0.0.1:5432`), created empty, so that relais
//! creates its schema as at a first deployment.

use tokio_postgres::NoTls;

/// Creates the empty database `name` (any name; made a valid identifier)
/// on `server`, and returns its URL.
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
    let (client, connection) = tokio_postgres::connect(&format!("{server}/postgres"), NoTls)
        .await
        .expect("the tests' PostgreSQL (RELAIS_TEST_POSTGRES)");
    let driver = tokio::spawn(connection);
    // One statement each: neither may run in a transaction block.
    for statement in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        client
            .batch_execute(&statement)
            .await
            .expect("create the test's database");
    }
    drop(client);
    let _ = driver.await;
    format!("{server}/{name}")
}

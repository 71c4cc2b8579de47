//! The connection to the broker: `amqp://`, or `amqps://` with the
//! authorities and client certificate the settings name (read by `tls` at
//! each connection, so a renewed certificate is taken at the next
//! reconnection without a restart).

use anyhow::Context as _;
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};
use secrecy::ExposeSecret;

use crate::settings::AmqpSettings;

/// Opens a connection named `name` (shown in the broker's connection list).
///
/// # Errors
/// When a certificate file cannot be used, or the broker cannot be reached,
/// refuses the TLS handshake or the login; the message names the broker
/// with its password hidden.
pub async fn connect(amqp: &AmqpSettings, name: &str) -> anyhow::Result<Connection> {
    let tls = crate::tls::broker(amqp.tls_files())?;
    // Parsed here, so that the AMQP library's error (which quotes the URL,
    // password included) never reaches a log or the terminal.
    let uri: AMQPUri = amqp.url.expose_secret().parse().map_err(|_| {
        anyhow::anyhow!(
            "amqp.url {} is not an AMQP URL relais can use",
            amqp.redacted_url()
        )
    })?;
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let runtime = lapin::runtime::default_runtime()?;
    Connection::connect_uri_with_config(uri, properties, tls, runtime)
        .await
        .with_context(|| format!("cannot connect to the broker {}", amqp.redacted_url()))
}

/// The waits between two attempts to reach the broker: from `first`,
/// doubling with jitter, at most 30 s, for as long as it takes.
pub fn reconnect_backoff(first: std::time::Duration) -> impl Iterator<Item = std::time::Duration> {
    use backon::BackoffBuilder as _;
    backon::ExponentialBuilder::default()
        .with_min_delay(first)
        .with_max_delay(RECONNECT_MAX)
        .with_jitter()
        .without_max_times()
        .build()
}

/// The longest wait between two attempts to reach the broker.
pub const RECONNECT_MAX: std::time::Duration = std::time::Duration::from_secs(30);

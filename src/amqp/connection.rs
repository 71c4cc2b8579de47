//! The connection to the broker: `amqp://`, or `amqps://` with the
//! authorities and client certificate the settings name (read by `tls` at
//! each connection, so a renewed certificate is taken at the next
//! reconnection without a restart). With `amqp.urls`, the nodes of a
//! cluster are tried in turn, starting after the one connected to last.

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use lapin::tcp::OwnedTLSConfig;
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};
use secrecy::{ExposeSecret, SecretString};

use crate::settings::AmqpSettings;

/// Opens a connection named `name` (shown in the broker's connection list).
///
/// # Errors
/// When a certificate file cannot be used, or no node can be reached,
/// accepts the TLS handshake and the login; the message names each node
/// tried, with its password hidden.
pub async fn connect(amqp: &AmqpSettings, name: &str) -> anyhow::Result<Connection> {
    let tls = crate::tls::broker(amqp.tls_files())?;
    let heartbeat = u16::try_from(amqp.heartbeat.as_secs()).unwrap_or(u16::MAX);
    let nodes: Vec<&SecretString> = amqp.nodes().collect();
    // After a drop, the node that answered last is tried last.
    let first = LAST.load(Ordering::Relaxed).wrapping_add(1) % nodes.len().max(1);
    let mut failures = Vec::new();
    for offset in 0..nodes.len() {
        let index = (first + offset) % nodes.len();
        let node = nodes[index];
        match connect_node(node, name, tls.clone(), heartbeat).await {
            Ok(connection) => {
                LAST.store(index, Ordering::Relaxed);
                return Ok(connection);
            }
            Err(error) if nodes.len() == 1 => return Err(error),
            Err(error) => failures.push(format!("{error:#}")),
        }
    }
    anyhow::bail!("no node of the cluster answered: {}", failures.join("; "))
}

/// The node of `amqp.urls` connected to last (by any connection of this
/// process): a reconnection starts with the next one.
static LAST: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Longest wait for a node to accept the connection and open it: a node
/// that does not answer (a host down, a packet filter) must not hold up
/// the others of the cluster.
const NODE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn connect_node(
    url: &SecretString,
    name: &str,
    tls: OwnedTLSConfig,
    heartbeat: u16,
) -> anyhow::Result<Connection> {
    // Parsed here, so that the AMQP library's error (which quotes the URL,
    // password included) never reaches a log or the terminal.
    let mut uri: AMQPUri = url.expose_secret().parse().map_err(|_| {
        anyhow::anyhow!(
            "amqp.url {} is not an AMQP URL relais can use",
            crate::settings::redacted(url)
        )
    })?;
    uri.query.heartbeat.get_or_insert(heartbeat);
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let runtime = lapin::runtime::default_runtime()?;
    let connecting = Connection::connect_uri_with_config(uri, properties, tls, runtime);
    match tokio::time::timeout(NODE_TIMEOUT, connecting).await {
        Ok(connected) => connected.with_context(|| {
            format!(
                "cannot connect to the broker {}",
                crate::settings::redacted(url)
            )
        }),
        Err(_) => anyhow::bail!(
            "the broker {} did not answer within {NODE_TIMEOUT:?}",
            crate::settings::redacted(url)
        ),
    }
}

/// Closes `connection` cleanly if it is still open, and waits for the
/// broker's answer no longer than the protocol gives a silent peer: two
/// heartbeats (AMQP 0-9-1, 4.2.7). A connection the broker reset is left
/// as it is: closing it would wait for an answer that never comes.
///
/// # Errors
/// When the broker refused the close or did not answer in time.
pub async fn close(
    connection: &Connection,
    reason: &str,
    amqp: &AmqpSettings,
) -> anyhow::Result<()> {
    if !connection.status().connected() {
        return Ok(());
    }
    let silent_peer = silent_peer(amqp);
    match tokio::time::timeout(silent_peer, connection.close(200, reason.into())).await {
        Ok(closed) => closed.context("the broker refused to close the connection"),
        Err(_) => anyhow::bail!("the broker did not answer the close within {silent_peer:?}"),
    }
}

/// How long the protocol lets a peer stay silent before it counts as gone:
/// two heartbeats (AMQP 0-9-1, 4.2.7), or a node's connection timeout
/// without heartbeats. Each wait for the broker's answer to a method
/// relais sends on stopping is bounded by it.
pub fn silent_peer(amqp: &AmqpSettings) -> std::time::Duration {
    if amqp.heartbeat.is_zero() {
        NODE_TIMEOUT
    } else {
        amqp.heartbeat * 2
    }
}

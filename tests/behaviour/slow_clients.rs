//! The HTTP listeners under slow clients: three hundred connections that
//! send their headers one byte at a time must not keep `/healthz` from
//! answering, nor the acknowledgement page from opening, and each of them
//! is dropped once its time for the headers is up.
//!
//! They run the real binary, its listeners on ports of the test's own, and
//! a client that holds its connections open from this test.

use std::time::Duration;

use relais_testkit as support;
use support::smtp::SmtpServer;
use support::{ACK_SECRET, REGISTRY, WAIT, World, http_get, signal, wait_exit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// As many slow clients as took every connection before.
const SLOW_CLIENTS: usize = 300;
/// `http.header_timeout` in these tests.
const HEADER_TIMEOUT: &str = "4s";
/// How long a request may take to be answered: what a monitoring probe
/// allows.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// A client that sends a request's head one byte every 200 ms (longer in
/// all than the header timeout) and then waits; what the server sent when
/// it closed the connection, or `None` if it was still open after `WAIT`.
async fn slow_client(port: u16) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let head = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1234567890\r\n";
    let mut received = Vec::new();
    let (mut reader, mut writer) = stream.split();
    let reading = async {
        let _ = reader.read_to_end(&mut received).await;
    };
    let writing = async {
        for byte in head {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        std::future::pending::<()>().await;
    };
    let closed = tokio::time::timeout(WAIT, async {
        tokio::select! {
            () = reading => {}
            () = writing => {}
        }
    })
    .await;
    closed.ok().map(|()| received)
}

/// Opens `SLOW_CLIENTS` slow clients on `port`, all connected on return.
async fn slow_clients(port: u16) -> JoinSet<Option<Vec<u8>>> {
    let mut clients = JoinSet::new();
    for _ in 0..SLOW_CLIENTS {
        clients.spawn(slow_client(port));
    }
    // Let every client connect and send its first bytes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    clients
}

/// Waits for every slow client; each was closed, unanswered.
async fn dropped_unanswered(mut clients: JoinSet<Option<Vec<u8>>>) {
    let mut closed = 0;
    while let Some(client) = clients.join_next().await {
        let received = client.unwrap().expect("the slow client was dropped");
        assert!(
            !String::from_utf8_lossy(&received).contains("200 OK"),
            "a slow client was answered"
        );
        closed += 1;
    }
    assert_eq!(closed, SLOW_CLIENTS);
}

/// Waits until `port` answers `/healthz`.
async fn wait_alive(port: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while http_get(port, "/healthz").await.0 != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "relais never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn three_hundred_slow_clients_on_the_metrics_listener_leave_healthz_answering() {
    // Arrange
    let port = SmtpServer::free_port().await;
    let listen = format!("127.0.0.1:{port}");
    let world = World::with_env(
        REGISTRY,
        &[
            ("RELAIS__HTTP__LISTEN", listen.as_str()),
            ("RELAIS__HTTP__HEADER_TIMEOUT", HEADER_TIMEOUT),
        ],
    )
    .await;
    let mut relais = world.spawn_binary();
    wait_alive(port).await;
    let clients = slow_clients(port).await;

    // Act
    let probe = tokio::time::timeout(PROBE_TIMEOUT, http_get(port, "/healthz")).await;

    // Assert: answered, then every slow client dropped.
    assert_eq!(probe.ok(), Some((200, "alive\n".to_owned())));
    dropped_unanswered(clients).await;
    signal(&relais, "TERM");
    assert!(wait_exit(&mut relais, WAIT).await.success());
    world.cleanup().await;
}

#[tokio::test]
async fn three_hundred_slow_clients_on_the_ack_listener_leave_the_ack_page_reachable() {
    // Arrange
    let (world, ack_port) = World::with_ack(
        REGISTRY,
        ACK_SECRET,
        &[("RELAIS__HTTP__HEADER_TIMEOUT", HEADER_TIMEOUT)],
    )
    .await;
    let mut relais = world.spawn_binary();
    let deadline = tokio::time::Instant::now() + WAIT;
    while http_get(ack_port, "/ack/unknown").await.0 != 404 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "relais never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let clients = slow_clients(ack_port).await;

    // Act
    let page = tokio::time::timeout(PROBE_TIMEOUT, http_get(ack_port, "/ack/unknown")).await;

    // Assert: the page of a link relais does not know, then every slow
    // client dropped.
    let (status, body) = page.expect("the ack page answers");
    assert_eq!(status, 404);
    assert!(body.contains("Lien inconnu"), "{body}");
    dropped_unanswered(clients).await;
    signal(&relais, "TERM");
    assert!(wait_exit(&mut relais, WAIT).await.success());
    world.cleanup().await;
}

//! relais's HTTP endpoints seen from outside: a bare HTTP/1.1 client on
//! loopback (so a test sees exactly the status and head relais sends), a
//! reader of the metrics exposition, and the wait for a role on
//! `/readyz`. It never keeps a connection open between calls.

use std::time::Duration;

/// `GET path` on a loopback HTTP server: the status code and the body;
/// status 0 when nothing listens (yet).
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    http_get_at(std::net::Ipv4Addr::LOCALHOST, port, path).await
}

/// As [`http_get`], at another address (a relais on a host of the test's
/// own listens on its address there).
pub async fn http_get_at(address: std::net::Ipv4Addr, port: u16, path: &str) -> (u16, String) {
    let (status, response) = http_request_at(address, port, "GET", path).await;
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
    http_request_at(std::net::Ipv4Addr::LOCALHOST, port, method, path).await
}

async fn http_request_at(
    address: std::net::Ipv4Addr,
    port: u16,
    method: &str,
    path: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect((address, port)).await else {
        return (0, "nothing listens".into());
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    // A connection closed or reset (the server killed) answers nothing.
    if stream.write_all(request.as_bytes()).await.is_err() {
        return (0, "the connection closed".into());
    }
    let mut response = String::new();
    if stream.read_to_string(&mut response).await.is_err() {
        return (0, "the connection closed".into());
    }
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

/// The `role` that `/readyz` on `port` says (`active`, `standby`), once
/// it is `role`, or the last one seen after a minute.
pub async fn wait_for_role(port: u16, role: &str) -> String {
    wait_for_role_at(std::net::Ipv4Addr::LOCALHOST, port, role).await
}

/// As [`wait_for_role`], at another address.
pub async fn wait_for_role_at(address: std::net::Ipv4Addr, port: u16, role: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    while tokio::time::Instant::now() < deadline {
        let (_, body) = http_get_at(address, port, "/readyz").await;
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

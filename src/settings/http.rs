//! The `[http]` section: the operators' endpoint (`/metrics`, `/healthz`,
//! `/readyz`).
//!
//! It refuses an address that is not one and limits that serve nobody; an
//! endpoint that other machines can reach works, with a warning.

use std::time::Duration;

use serde::Deserialize;

/// The operators' HTTP endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// `host:port` for `/metrics`, `/healthz`, `/readyz`; empty disables it.
    pub listen: String,
    /// How often the queues' depths are read from the broker for `/metrics`.
    #[serde(with = "humantime_serde")]
    pub queue_poll: Duration,
    /// How long a client may take to send a request's headers, and how long
    /// a kept-alive connection may wait idle for the next request.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Most connections served at once; more wait in the kernel's backlog,
    /// so that slow clients cannot take the file descriptors that the
    /// broker and the mail servers need.
    pub max_connections: usize,
}

impl HttpSettings {
    /// A warning when `/metrics` and `/readyz` listen where other machines
    /// can reach them.
    pub(super) fn exposure(&self) -> Option<String> {
        let address = self.listen.parse::<std::net::SocketAddr>().ok()?;
        (!address.ip().is_loopback()).then(|| {
            format!(
                "http.listen {} can be reached from other machines: /metrics and /readyz are \
                 meant for this machine's monitoring (127.0.0.1:9464), or a firewall that \
                 admits only the monitoring server",
                self.listen
            )
        })
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
            queue_poll: Duration::from_secs(15),
            header_timeout: Duration::from_secs(10),
            max_connections: 64,
        }
    }
}

impl HttpSettings {
    pub(super) fn check(&self, errors: &mut Vec<String>) {
        if self.max_connections == 0 {
            errors.push("http.max_connections must be at least 1".into());
        }
        if self.header_timeout.is_zero() {
            errors.push("http.header_timeout must be more than 0s".into());
        }
        if !self.listen.is_empty() && self.listen.parse::<std::net::SocketAddr>().is_err() {
            errors.push(format!(
                "http.listen {:?} must be host:port with an IP address (e.g. 127.0.0.1:9464), or empty to disable",
                self.listen
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::settings::Settings;
    use crate::settings::fixtures::{MINIMAL, env, write};

    #[test]
    fn an_http_endpoint_other_machines_can_reach_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), MINIMAL);
        let open = Settings::load_with_env(
            Some(&file),
            env(&[("RELAIS__HTTP__LISTEN", "0.0.0.0:9464")]),
        )
        .unwrap();
        assert_eq!(open.warnings.len(), 1, "{:?}", open.warnings);
        assert!(
            open.warnings[0]
                .starts_with("http.listen 0.0.0.0:9464 can be reached from other machines"),
            "{:?}",
            open.warnings
        );
        let local = Settings::load_with_env(Some(&file), env(&[])).unwrap();
        assert!(local.warnings.is_empty(), "{:?}", local.warnings);
    }
}

//! `store.url` read the way the PostgreSQL client reads it: the one reading
//! relais both checks and connects with, so that the hosts the check sees
//! are the hosts the client dials (a second parser, the `url` crate's,
//! would read `postgres://127.0.0.1/db?x=a@db.example.org/db` as going to
//! this machine; the client goes to db.example.org).
//!
//! It owns the URL's split into parts as `tokio-postgres` splits it (user
//! info up to the first `@`, then hosts and database, then `?` and the
//! parameters), the `sslmode` parameters (taken out: relais alone decides
//! TLS), and the URL as shown, its password (user info or `?password=`)
//! replaced by `***`. It never shows, logs or returns a password as text.

use std::net::IpAddr;

use tokio_postgres::config::Host;

use crate::settings::{is_loopback, percent_decoded};

/// A `postgres://` URL split where the client splits it.
struct Parts<'a> {
    /// `postgres://` or `postgresql://`.
    scheme: &'static str,
    /// `user[:password]`, before the first `@`.
    user_info: Option<&'a str>,
    /// The hosts, ports and database, up to the first `?` after the user
    /// info.
    address: &'a str,
    /// The parameters, after that `?`.
    query: Option<&'a str>,
}

impl<'a> Parts<'a> {
    fn of(url: &'a str) -> Option<Self> {
        let (scheme, rest) = ["postgres://", "postgresql://"]
            .into_iter()
            .find_map(|scheme| Some((scheme, url.strip_prefix(scheme)?)))?;
        let (user_info, rest) = match rest.split_once('@') {
            Some((user_info, rest)) => (Some(user_info), rest),
            None => (None, rest),
        };
        let (address, query) = match rest.split_once('?') {
            Some((address, query)) => (address, Some(query)),
            None => (rest, None),
        };
        Some(Self {
            scheme,
            user_info,
            address,
            query,
        })
    }

    /// The URL again, each parameter as `parameter` makes it (`None`
    /// leaves it out).
    fn rebuilt(&self, mut parameter: impl FnMut(&str, &'a str) -> Option<String>) -> String {
        let mut url = self.scheme.to_owned();
        if let Some(user_info) = self.user_info {
            url.push_str(user_info);
            url.push('@');
        }
        url.push_str(self.address);
        if let Some(query) = self.query {
            let kept: Vec<String> = query
                .split('&')
                .filter_map(|pair| {
                    let key = pair.split_once('=').map_or(pair, |(key, _)| key);
                    parameter(&percent_decoded(key), pair)
                })
                .collect();
            if !kept.is_empty() {
                url.push('?');
                url.push_str(&kept.join("&"));
            }
        }
        url
    }
}

/// `store.url` as the client reads it, and the `sslmode`s it gave.
pub(super) struct PostgresUrl {
    /// What the client connects with, `sslmode` left out.
    pub config: tokio_postgres::Config,
    /// The values of the URL's `sslmode` parameters (decoded).
    pub sslmodes: Vec<String>,
}

impl PostgresUrl {
    /// Reads `url`.
    ///
    /// # Errors
    /// A message saying why the client cannot read it (never quoting it).
    pub fn parse(url: &str) -> Result<Self, String> {
        let parts = Parts::of(url)
            .ok_or("store.url must be postgres://user:password@host:port/database")?;
        let mut sslmodes = Vec::new();
        let without_sslmode = parts.rebuilt(|key, pair| {
            if key == "sslmode" {
                sslmodes.push(percent_decoded(
                    pair.split_once('=').map_or("", |(_, value)| value),
                ));
                return None;
            }
            Some(pair.to_owned())
        });
        let config = without_sslmode
            .parse()
            .map_err(|error: tokio_postgres::Error| {
                let why = std::error::Error::source(&error)
                    .map_or(String::new(), |why| format!(" ({why})"));
                format!(
                    "store.url cannot be read as a PostgreSQL URL{why}: write it \
                     postgres://user:password@host:port/database"
                )
            })?;
        Ok(Self { config, sslmodes })
    }

    /// Every host and host address the client may connect to that is not
    /// this machine (a Unix socket is), in the URL's order, each once.
    pub fn elsewhere(&self) -> Vec<String> {
        let hosts = self.config.get_hosts().iter().flat_map(|host| match host {
            // A `?host=a,b` reaches the client as one host: each part is
            // looked at, so that none hides behind another.
            Host::Tcp(names) => names
                .split(',')
                .filter(|name| !is_loopback(name))
                .map(str::to_owned)
                .collect(),
            Host::Unix(_) => Vec::new(),
        });
        let addresses = self
            .config
            .get_hostaddrs()
            .iter()
            .filter(|address| !address.is_loopback())
            .map(IpAddr::to_string);
        let mut elsewhere: Vec<String> = Vec::new();
        for place in hosts.chain(addresses) {
            if !elsewhere.contains(&place) {
                elsewhere.push(place);
            }
        }
        elsewhere
    }

    /// Whether the URL names no host and no host address at all.
    pub fn has_no_host(&self) -> bool {
        self.config.get_hosts().is_empty() && self.config.get_hostaddrs().is_empty()
    }
}

/// `url` as it may be shown: its password, in the user info or as
/// `?password=`, replaced by `***`. A password written with an `@` left
/// unescaped (`user:p@ss@host`) is hidden whole: the client reads `ss@host`
/// as the host, and shows nothing of it either.
pub(super) fn redacted(url: &str) -> String {
    let Some(parts) = Parts::of(url) else {
        return "(an invalid URL)".into();
    };
    let hosts_end = parts.address.find('/').unwrap_or(parts.address.len());
    let (spilled, address) = match parts.address[..hosts_end].rfind('@') {
        Some(at) => (true, &parts.address[at + 1..]),
        None => (false, parts.address),
    };
    let user_info = parts.user_info.map(|info| match info.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None if spilled => format!("{info}:***"),
        None => info.to_owned(),
    });
    let shown = Parts {
        user_info: user_info.as_deref(),
        address,
        ..parts
    };
    shown.rebuilt(|key, pair| {
        Some(match pair.split_once('=') {
            Some((name, _)) if key == "password" => format!("{name}=***"),
            _ => pair.to_owned(),
        })
    })
}

/// Whether `url` holds a password, in its user info or as `?password=`
/// (read even when the rest of the URL cannot be).
pub(in crate::settings) fn holds_password(url: &str) -> bool {
    let Some(parts) = Parts::of(url) else {
        return false;
    };
    let in_user_info = parts
        .user_info
        .and_then(|info| info.split_once(':'))
        .is_some_and(|(_, password)| !password.is_empty());
    let in_query = parts.query.is_some_and(|query| {
        query.split('&').any(|pair| {
            pair.split_once('=')
                .is_some_and(|(key, value)| percent_decoded(key) == "password" && !value.is_empty())
        })
    });
    in_user_info || in_query
}

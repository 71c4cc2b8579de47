//! Settings: built-in defaults, then the settings file, then environment
//! variables `RELAIS__SECTION__KEY`.
//!
//! This module owns reading and checking them, and turns them into the
//! values the rest of relais works with (the sender's mailbox, the SMTP
//! security mode, the broker address). It refuses, with every problem
//! listed, settings that would send health data in clear over a network by
//! accident. It never logs a secret: the broker URL is shown redacted and the
//! SMTP password is only read where the transport is built.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use lettre::message::Mailbox;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use thiserror::Error;

use crate::mail::smtp::Timeouts;

pub use crate::mail::outbound::{Credentials, MailServer, Outbound, SmtpTls};
pub use crate::secret::{Password, read_secret};

/// The environment variable naming the settings file, when `--config` is not given.
pub const CONFIG_ENV: &str = "RELAIS_CONFIG";

/// Where systemd puts the service's credentials (`LoadCredential=`).
pub const CREDENTIALS_ENV: &str = "CREDENTIALS_DIRECTORY";

/// The credentials relais takes from `$CREDENTIALS_DIRECTORY` when they are
/// there, in place of the setting's file: the service's private copies win
/// over the paths the settings file gives for `relais check` run as root.
pub const CREDENTIALS: [&str; 5] = [
    "amqp-url",
    "amqp-client-key",
    "smtp-password",
    "ack-key",
    "store-url",
];

/// Why the settings were refused.
#[derive(Debug, Error)]
pub enum SettingsError {
    #[error("cannot read the settings: {0}")]
    Read(String),
    #[error("the settings have {} error(s):\n  - {}", .0.len(), .0.join("\n  - "))]
    Invalid(Vec<String>),
}

/// Everything relais is configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub amqp: AmqpSettings,
    #[serde(default)]
    pub smtp: SmtpSettings,
    #[serde(default)]
    pub registry: RegistrySettings,
    #[serde(default)]
    pub territories: TerritoriesSettings,
    #[serde(default)]
    pub events: EventsSettings,
    #[serde(default)]
    pub ack: AckSettings,
    #[serde(default)]
    pub retry: RetrySettings,
    #[serde(default)]
    pub store: StoreSettings,
    #[serde(default)]
    pub http: HttpSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub email: EmailSettings,
    /// How long in-flight alerts may take to finish once a stop is asked
    /// (SIGTERM/SIGINT); what is left after that is not acked, so the broker
    /// delivers it again.
    #[serde(default = "defaults::shutdown_timeout", with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// What works but should be fixed (a secret file other users can read):
    /// logged at start, printed by `relais check`.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// The broker, and the names relais declares there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AmqpSettings {
    /// `amqp://user:password@host:port/vhost`, or `amqps://…` for TLS; it
    /// holds a secret, so it is only ever shown through
    /// [`AmqpSettings::redacted_url`].
    pub url: SecretString,
    /// The nodes of one RabbitMQ cluster, instead of `url`: relais connects
    /// to the first that answers, and to another when its connection
    /// drops. Giving both is an error.
    pub urls: Vec<SecretString>,
    /// A file holding the URL (e.g. in `$CREDENTIALS_DIRECTORY`), or the
    /// cluster's URLs, one per line; when given, it replaces `url`.
    pub url_file: Option<PathBuf>,
    /// How many nodes hold a replica of each queue relais declares
    /// (`x-quorum-initial-group-size`): by default, the number of `urls`,
    /// at most 3. With 1, the argument is not set, as on one node: the
    /// value for queues declared before the broker became a cluster, whose
    /// replicas the operator adds with `rabbitmq-queues grow`.
    pub quorum_group_size: Option<u8>,
    /// `amqp://` to a broker that is not this machine carries health data
    /// in clear: refused unless this is `true`.
    pub allow_plaintext: bool,
    /// PEM file of certificate authorities to trust for the broker's
    /// certificate, in addition to the system's (a private CA); `amqps://` only.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate (chain) relais presents to the broker, with `key_file`:
    /// for brokers that require client certificates, or log in by them
    /// (`?auth_mechanism=external` in the URL).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`; a secret, like the URL's password.
    pub key_file: Option<PathBuf>,
    /// The topic exchange the dispatch software publishes to.
    pub exchange: String,
    /// The quorum queue relais consumes; `<queue>.dead` holds dead letters.
    pub queue: String,
    /// How many alerts are processed at once (the broker's prefetch).
    pub prefetch: u16,
    /// Larger messages are dead-lettered as invalid without being parsed.
    pub max_message_bytes: usize,
    /// After this many deliveries of the same message (crashes, channel
    /// losses), the broker itself dead-letters it: a poison message cannot
    /// loop forever.
    pub delivery_limit: u32,
    /// Most alerts the main queue holds; past it the broker refuses new
    /// publishes (`reject-publish`: the publisher's confirm is a nack), so a
    /// relais that is stopped or far behind pushes back on the dispatch
    /// software instead of filling the broker's disk.
    pub max_queue_length: u32,
    /// How long to wait for the broker to confirm a publish (a broker under
    /// a memory or disk alarm stops confirming).
    #[serde(with = "humantime_serde")]
    pub confirm_timeout: Duration,
}

/// How mail leaves relais.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    /// `smtp` sends to `host`; `file` writes each email as a `.eml` file in
    /// `file_dir`, for a local trial without a mail server.
    pub transport: TransportKind,
    pub host: Option<String>,
    /// Defaults to 587 (`required`, `opportunistic`), 465 (`wrapper`) or 25 (`none`).
    pub port: Option<u16>,
    pub tls: SmtpTls,
    /// Sending health data in clear to another machine needs this, explicitly.
    pub allow_plaintext: bool,
    /// PEM file of the certificate authorities to trust for the server's
    /// certificate, instead of the system's (a private CA).
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// A file holding the password (e.g. in `$CREDENTIALS_DIRECTORY`).
    pub password_file: Option<PathBuf>,
    /// The sender, e.g. `relais SOS Médecins <relais@sos-medecins.example.org>`.
    pub from: Option<String>,
    /// Bound on each step of an SMTP exchange: connecting, the TLS
    /// handshake, each reply but the last (RFC 5321 §4.5.3.2).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Bound on the wait for the server's reply to the end of a message,
    /// which a server with a content filter gives only once the filter is
    /// done (RFC 5321 §4.5.3.2.6: 10 minutes).
    #[serde(with = "humantime_serde")]
    pub final_reply_timeout: Duration,
    /// The name relais gives in EHLO: a fully qualified domain name or an
    /// address literal. By default the machine's fully qualified name, or
    /// the address literal of each connection's own end when it has none.
    pub helo_name: Option<String>,
    /// Connections kept open to the server and reused.
    pub pool_size: u32,
    pub file_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Smtp,
    File,
}
/// What the emails say.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailSettings {
    /// `false`: no patient detail leaves by email (no summary, name,
    /// address or phone); the email says whom to call back and gives the
    /// dossier reference, and the référent gets the rest by phone.
    pub include_patient: bool,
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            include_patient: true,
        }
    }
}

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
    fn exposure(&self) -> Option<String> {
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

/// What relais does when a mail server fails transiently.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Attempts in process for each email, before the alert goes to the
    /// broker's retry queues.
    pub immediate: u32,
    /// The first wait between immediate attempts; it doubles, with jitter.
    #[serde(with = "humantime_serde")]
    pub immediate_base: Duration,
    /// The broker-side retry ladder: one queue `<queue>.retry.<delay>` per
    /// delay. After the last one the alert is dead-lettered as `exhausted`.
    #[serde(deserialize_with = "durations")]
    pub delays: Vec<Duration>,
}

/// The dedup record and audit trail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// The SQLite file (created if missing), e.g. `/var/lib/relais/relais.db`;
    /// required, unless `url` is given.
    pub path: PathBuf,
    /// `postgres://user:password@host:port/database`: a PostgreSQL store
    /// that several relais can share, instead of `path` (both is an
    /// error). It holds a secret, like the broker's URL.
    pub url: Option<SecretString>,
    /// A file holding `url` (systemd credential `store-url`).
    pub url_file: Option<PathBuf>,
    /// PEM file of the authorities to trust for PostgreSQL's certificate:
    /// the connection is then TLS (required towards another machine).
    pub ca_file: Option<PathBuf>,
    /// How long deliveries are remembered (dedup and audit).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

/// The référents' acknowledgement links: each email carries one, and the
/// page it opens (behind the operator's HTTPS reverse proxy) records that
/// someone has seen the alert.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AckSettings {
    /// `host:port` of the acknowledgement pages; empty: no links, no pages.
    pub listen: String,
    /// What the links start with, e.g. `https://relais.sos-medecins.fr`:
    /// `https://`, unless it names this machine.
    pub public_url: String,
    /// The secret that signs the links: the file's bytes, at least 32 of
    /// them (systemd credential `ack-key`).
    pub key_file: Option<PathBuf>,
    /// How long a link works.
    #[serde(with = "humantime_serde")]
    pub link_ttl: Duration,
}

impl Default for AckSettings {
    fn default() -> Self {
        Self {
            listen: String::new(),
            public_url: String::new(),
            key_file: None,
            link_ttl: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl AckSettings {
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty()
    }

    /// The signing key, read from `key_file`.
    ///
    /// # Errors
    /// The file is missing, unreadable, or shorter than 32 bytes.
    pub fn key(&self) -> Result<Vec<u8>, String> {
        let path = self
            .key_file
            .as_ref()
            .ok_or("ack.key_file is required when ack.listen is set")?;
        let key = std::fs::read(path)
            .map_err(|error| format!("cannot read ack.key_file {}: {error}", path.display()))?;
        if key.len() < 32 {
            return Err(format!(
                "ack.key_file {} holds {} bytes; at least 32 random bytes are needed \
                 (`head -c 32 /dev/urandom > {}`)",
                path.display(),
                key.len(),
                path.display()
            ));
        }
        Ok(key)
    }

    fn check(&self, errors: &mut Vec<String>) {
        if !self.enabled() {
            return;
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            errors.push(format!(
                "ack.listen {:?} must be host:port with an IP address (e.g. 127.0.0.1:8443)",
                self.listen
            ));
        }
        match url::Url::parse(&self.public_url) {
            Ok(url) => {
                let local = matches!(
                    url.host_str(),
                    Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
                );
                if url.scheme() != "https" && !(url.scheme() == "http" && local) {
                    errors.push(format!(
                        "ack.public_url {:?} must start with https:// (the links travel by email \
                         and open a page that acknowledges an alert); http:// only for this machine",
                        self.public_url
                    ));
                }
            }
            Err(_) => errors.push(format!(
                "ack.public_url {:?} must be the URL the links start with, e.g. \
                 https://relais.example.org",
                self.public_url
            )),
        }
        if let Err(error) = self.key() {
            errors.push(error);
        }
        if self.link_ttl.is_zero() {
            errors.push("ack.link_ttl must be more than 0s".into());
        }
    }
}

/// Where alerts' status events go, for the dispatch software.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSettings {
    /// The topic exchange relais publishes each change of an alert's fate
    /// to (declared by relais), the status as routing key: `relais.events`
    /// by default; empty: no events.
    pub exchange: String,
}

impl Default for EventsSettings {
    fn default() -> Self {
        Self {
            exchange: "relais.events".to_owned(),
        }
    }
}

impl EventsSettings {
    pub fn enabled(&self) -> bool {
        !self.exchange.is_empty()
    }
}

/// Where France's official geography is read from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TerritoriesSettings {
    /// The territories file (`data/territories.tsv` of the source tree,
    /// installed by the package as `/usr/share/relais/territories.tsv`);
    /// another millésime's file from `scripts/territories` to update it.
    pub path: PathBuf,
}

impl Default for TerritoriesSettings {
    fn default() -> Self {
        Self {
            path: PathBuf::from(TERRITORIES),
        }
    }
}

/// Where the package installs the territories file.
pub const TERRITORIES: &str = "/usr/share/relais/territories.tsv";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// The référents and routes (see `config/referents.toml`); required.
    pub path: PathBuf,
    /// More alerts than this to one référent in an hour are still
    /// delivered, but logged (once an hour) and counted as a flood; 0: no
    /// limit.
    pub max_alerts_per_referent_per_hour: u32,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            max_alerts_per_referent_per_hour: 50,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing filter: `info`, or `relais=debug,lapin=warn`.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

fn durations<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<Duration>, D::Error> {
    let durations = Vec::<humantime_serde::Serde<Duration>>::deserialize(deserializer)?;
    Ok(durations
        .into_iter()
        .map(humantime_serde::Serde::into_inner)
        .collect())
}

mod defaults {
    use std::time::Duration;

    pub fn shutdown_timeout() -> Duration {
        Duration::from_secs(30)
    }
}

/// The broker of the quick start: this machine's, as `guest`.
const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

impl Default for AmqpSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from(DEFAULT_AMQP_URL),
            urls: Vec::new(),
            url_file: None,
            quorum_group_size: None,
            allow_plaintext: false,
            ca_file: None,
            cert_file: None,
            key_file: None,
            exchange: "relais.alerts".into(),
            queue: "relais.alerts".into(),
            prefetch: 32,
            max_message_bytes: 65536,
            delivery_limit: 10,
            max_queue_length: 1_000_000,
            confirm_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            transport: TransportKind::Smtp,
            host: None,
            port: None,
            tls: SmtpTls::Required,
            allow_plaintext: false,
            username: None,
            password: None,
            password_file: None,
            ca_file: None,
            from: None,
            timeout: Duration::from_secs(60),
            final_reply_timeout: Duration::from_secs(600),
            helo_name: None,
            pool_size: 8,
            file_dir: None,
        }
    }
}

impl Default for RetrySettings {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        Self {
            immediate: 3,
            immediate_base: Duration::from_millis(500),
            delays: vec![
                Duration::from_secs(30),
                minutes(2),
                minutes(10),
                minutes(60),
                minutes(360),
            ],
        }
    }
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            url: None,
            url_file: None,
            ca_file: None,
            retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl StoreSettings {
    fn check_url(&self, url: &SecretString, errors: &mut Vec<String>) {
        if !self.path.as_os_str().is_empty() {
            errors.push(
                "store.path and store.url are both given: give store.path for a SQLite file, \
                 or store.url for a PostgreSQL database"
                    .into(),
            );
        }
        let parsed = match url::Url::parse(url.expose_secret()) {
            Ok(parsed) if matches!(parsed.scheme(), "postgres" | "postgresql") => parsed,
            _ => {
                errors.push("store.url must be postgres://user:password@host:port/database".into());
                return;
            }
        };
        let host = parsed.host_str().unwrap_or_default();
        if host.is_empty() {
            errors.push(
                "store.url has no host: write it postgres://user:password@host:port/database"
                    .into(),
            );
        } else if !is_loopback(host) && self.ca_file.is_none() {
            errors.push(format!(
                "store.url names {host}, which is not this machine: give store.ca_file, the \
                 authority of its certificate, so that the connection is TLS"
            ));
        }
        if parsed.path().trim_start_matches('/').is_empty() {
            errors.push(
                "store.url names no database: postgres://user:password@host:port/database".into(),
            );
        }
    }

    /// Where the store is, for logs and CLI output: the SQLite file, or
    /// the PostgreSQL URL without its password.
    pub fn describe(&self) -> String {
        match &self.url {
            Some(url) => {
                let Ok(mut parsed) = url::Url::parse(url.expose_secret()) else {
                    return "(an invalid URL)".into();
                };
                if parsed.password().is_some() {
                    let _ = parsed.set_password(Some("***"));
                }
                parsed.to_string()
            }
            None => self.path.display().to_string(),
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info,lapin=off".into(),
        }
    }
}

impl Settings {
    /// Reads the settings: defaults, then `file` (if any), then the process
    /// environment. Relative paths in the file are taken from its folder.
    ///
    /// # Errors
    /// [`SettingsError`] listing every problem found.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_with_env(file, None)
    }

    /// As [`Settings::load`], with the environment given as a map instead of
    /// read from the process (for tests).
    ///
    /// # Errors
    /// As [`Settings::load`].
    pub fn load_with_env(
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
    ) -> Result<Self, SettingsError> {
        let credentials = match &env {
            Some(env) => env.get(CREDENTIALS_ENV).map(PathBuf::from),
            None => std::env::var_os(CREDENTIALS_ENV).map(PathBuf::from),
        };
        let mut builder = Config::builder();
        let mut exposed_file = None;
        if let Some(file) = file {
            let text = std::fs::read_to_string(file)
                .map_err(|error| SettingsError::Read(format!("{}: {error}", file.display())))?;
            exposed_file = exposed_inline_secret(file, &text);
            builder = builder.add_source(File::from_str(&text, FileFormat::Toml));
        }
        let environment = Environment::with_prefix("RELAIS")
            .prefix_separator("__")
            .separator("__")
            .source(env);
        let mut settings: Settings = builder
            .add_source(environment)
            .build()
            .and_then(Config::try_deserialize)
            .map_err(|error| SettingsError::Read(error.to_string()))?;
        let base = file.and_then(Path::parent).unwrap_or(Path::new(""));
        settings.resolve_paths(base);
        settings.warnings = settings.take_secret_files(credentials.as_deref());
        settings.warnings.extend(exposed_file);
        settings.warnings.extend(settings.http.exposure());
        if let Some(path) = &settings.amqp.url_file {
            let text = read_secret(path).map_err(|error| {
                SettingsError::Read(format!("amqp.url_file {}: {error}", path.display()))
            })?;
            let lines: Vec<SecretString> = text
                .expose_secret()
                .split_whitespace()
                .map(SecretString::from)
                .collect();
            if lines.len() > 1 {
                settings.amqp.urls = lines;
                settings.amqp.url = SecretString::from(DEFAULT_AMQP_URL);
            } else {
                settings.amqp.url = text;
            }
        }
        if let Some(path) = &settings.store.url_file {
            settings.store.url = Some(read_secret(path).map_err(|error| {
                SettingsError::Read(format!("store.url_file {}: {error}", path.display()))
            })?);
        }
        settings.check().map_err(SettingsError::Invalid)?;
        Ok(settings)
    }

    /// The settings that name a secret file, in the order of
    /// [`CREDENTIALS`], the credentials that replace them under systemd.
    fn secret_files(&mut self) -> [(&'static str, &mut Option<PathBuf>); 5] {
        [
            ("amqp.url_file", &mut self.amqp.url_file),
            ("amqp.key_file", &mut self.amqp.key_file),
            ("smtp.password_file", &mut self.smtp.password_file),
            ("ack.key_file", &mut self.ack.key_file),
            ("store.url_file", &mut self.store.url_file),
        ]
    }

    /// Points each secret file setting at its credential in `directory`
    /// (systemd's, if any) when one is there; returns a warning for each
    /// secret file that users other than its owner can read.
    fn take_secret_files(&mut self, directory: Option<&Path>) -> Vec<String> {
        use std::os::unix::fs::PermissionsExt as _;
        let mut warnings = Vec::new();
        for (name, (key, slot)) in CREDENTIALS.into_iter().zip(self.secret_files()) {
            if let Some(credential) = directory.map(|dir| dir.join(name)).filter(|p| p.is_file()) {
                *slot = Some(credential);
            }
            let Some(path) = slot.as_ref() else { continue };
            let Ok(metadata) = std::fs::metadata(path) else {
                continue;
            };
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o044 != 0 {
                warnings.push(format!(
                    "{key} {} can be read by other users (mode {mode:04o}): \
                     `chmod 600` it, owned by the user relais runs as",
                    path.display()
                ));
            }
        }
        warnings
    }

    fn resolve_paths(&mut self, base: &Path) {
        let required = [
            &mut self.registry.path,
            &mut self.store.path,
            &mut self.territories.path,
        ];
        let optional = [
            &mut self.smtp.password_file,
            &mut self.smtp.ca_file,
            &mut self.smtp.file_dir,
            &mut self.amqp.url_file,
            &mut self.amqp.ca_file,
            &mut self.amqp.cert_file,
            &mut self.amqp.key_file,
            &mut self.ack.key_file,
            &mut self.store.url_file,
            &mut self.store.ca_file,
        ];
        for path in required.into_iter().chain(optional.into_iter().flatten()) {
            if path.is_relative() && !path.as_os_str().is_empty() {
                *path = base.join(&*path);
            }
        }
    }

    fn check(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if self.registry.path.as_os_str().is_empty() {
            errors.push("registry.path is required: the file of référents and routes".into());
        }
        if let Err(error) = self.smtp.sender() {
            errors.push(error);
        }
        if let Err(mail) = self.smtp.outbound() {
            errors.extend(mail);
        }
        self.amqp.check(&mut errors);
        for (key, value) in [
            ("amqp.exchange", &self.amqp.exchange),
            ("amqp.queue", &self.amqp.queue),
        ] {
            if value.is_empty() || value.len() > 200 || value.starts_with("amq.") {
                errors.push(format!(
                    "{key} must be 1 to 200 characters and not start with `amq.` (reserved by the broker)"
                ));
            }
        }
        if self.amqp.prefetch == 0 {
            errors.push("amqp.prefetch must be at least 1".into());
        }
        if self.amqp.delivery_limit == 0 {
            errors.push("amqp.delivery_limit must be at least 1".into());
        }
        if self.amqp.max_queue_length == 0 || self.amqp.max_queue_length > i32::MAX as u32 {
            errors.push("amqp.max_queue_length must be 1 to 2147483647".into());
        }
        let ladder: Duration = self.retry.delays.iter().sum();
        let needed = ladder + Duration::from_secs(86_400);
        if self.store.retention < needed {
            errors.push(format!(
                "store.retention ({}) must be at least the retry ladder ({}) plus a day: a \
                 shorter one forgets who was emailed while retries are pending, and a retried \
                 alert would email them again",
                humantime::format_duration(self.store.retention),
                humantime::format_duration(ladder)
            ));
        }
        if let Some(url) = &self.store.url {
            self.store.check_url(url, &mut errors);
        } else if self.store.path.as_os_str().is_empty() {
            errors.push(
                "store.path is required: the file of the dedup record and audit trail".into(),
            );
        }
        if self.retry.immediate == 0 {
            errors.push("retry.immediate must be at least 1 (the first attempt)".into());
        }
        let mut delays = self.retry.delays.clone();
        delays.sort();
        delays.dedup();
        if delays.len() != self.retry.delays.len() || delays.iter().any(|d| d.as_millis() == 0) {
            errors.push("retry.delays must be distinct and each at least 1ms".into());
        }
        self.ack.check(&mut errors);
        if self.http.max_connections == 0 {
            errors.push("http.max_connections must be at least 1".into());
        }
        if self.http.header_timeout.is_zero() {
            errors.push("http.header_timeout must be more than 0s".into());
        }
        if !self.http.listen.is_empty() && self.http.listen.parse::<std::net::SocketAddr>().is_err()
        {
            errors.push(format!(
                "http.listen {:?} must be host:port with an IP address (e.g. 127.0.0.1:9464), or empty to disable",
                self.http.listen
            ));
        }
        if self.log.level.trim().is_empty() {
            errors.push("log.level must not be empty".into());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl AmqpSettings {
    fn check(&self, errors: &mut Vec<String>) {
        if !self.urls.is_empty() && self.url.expose_secret() != DEFAULT_AMQP_URL {
            errors.push(
                "amqp.url and amqp.urls are both given: give amqp.url for one node, or \
                 amqp.urls for the nodes of a cluster"
                    .into(),
            );
        }
        if self.quorum_group_size == Some(0) {
            errors.push("amqp.quorum_group_size must be at least 1".into());
        }
        let logins: std::collections::BTreeSet<Option<String>> =
            self.nodes().map(login_of).collect();
        if logins.len() > 1 {
            errors.push(
                "amqp.urls log in as different users: give every node the same user, the one \
                 relais is known by on the cluster"
                    .into(),
            );
        }
        for (node, url) in self.nodes().enumerate() {
            let name = if self.urls.is_empty() {
                "amqp.url".to_owned()
            } else {
                format!("amqp.urls[{}]", node + 1)
            };
            self.check_url(&name, url, errors);
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            errors
                .push("amqp.cert_file and amqp.key_file go together: give both or neither".into());
        }
        if let Err(error) = crate::tls::broker(self.tls_files()) {
            errors.push(error.to_string());
        }
    }

    fn check_url(&self, name: &str, url: &SecretString, errors: &mut Vec<String>) {
        let url = match url::Url::parse(url.expose_secret()) {
            Ok(url) => url,
            Err(error) => {
                errors.push(format!("{name} is not a URL: {error}"));
                return;
            }
        };
        let Some(host) = url.host_str().filter(|host| !host.is_empty()) else {
            errors.push(format!(
                "{name} has no host: write it amqp://user:password@host:port/vhost (with `//` \
                 after the scheme)"
            ));
            return;
        };
        match url.scheme() {
            "amqps" => {}
            "amqp" => {
                if !is_loopback(host) && !self.allow_plaintext {
                    errors.push(format!(
                        "{name} is amqp:// towards {host}, which is not this machine: alerts \
                         would cross the network in clear; use amqps://, or set \
                         amqp.allow_plaintext = true if the network to it is trusted"
                    ));
                }
                if self.ca_file.is_some() || self.cert_file.is_some() {
                    errors.push(
                        "amqp.ca_file and amqp.cert_file need an amqps:// URL: with amqp:// \
                         the connection is in clear and they would be ignored"
                            .into(),
                    );
                }
            }
            other => errors.push(format!(
                "{name} has the scheme {other}://; relais speaks amqp:// and amqps://"
            )),
        }
    }

    /// The URLs of the broker's nodes: `urls`, or `url` alone.
    pub fn nodes(&self) -> impl Iterator<Item = &SecretString> {
        let one = self.urls.is_empty().then_some(&self.url);
        one.into_iter().chain(&self.urls)
    }

    /// How many replicas each queue gets; `None`: the argument is not set
    /// (see `quorum_group_size`).
    pub fn quorum_replicas(&self) -> Option<u8> {
        let size = self
            .quorum_group_size
            .unwrap_or_else(|| u8::try_from(self.nodes().count().min(3)).unwrap_or(3));
        (size > 1).then_some(size)
    }

    /// The user name relais logs in with, which the broker checks against
    /// the `user_id` of what relais publishes: the URL's (`guest` when it
    /// gives none, as for the AMQP client); `None` with a client certificate
    /// login (`auth_mechanism=external`), where the broker derives it. All
    /// the nodes of a cluster have the same (checked).
    pub fn login(&self) -> Option<String> {
        self.nodes().next().and_then(login_of)
    }

    /// The certificate files of an `amqps://` connection.
    pub fn tls_files(&self) -> crate::tls::BrokerFiles<'_> {
        crate::tls::BrokerFiles {
            ca_file: self.ca_file.as_deref(),
            cert_file: self.cert_file.as_deref(),
            key_file: self.key_file.as_deref(),
        }
    }

    /// The broker's URLs with their passwords replaced by `***`, for logs
    /// and CLI output (see [`redacted`]).
    pub fn redacted_url(&self) -> String {
        self.nodes().map(redacted).collect::<Vec<_>>().join(", ")
    }
}

/// The user name a broker URL logs in with (see [`AmqpSettings::login`]).
fn login_of(url: &SecretString) -> Option<String> {
    let url = url::Url::parse(url.expose_secret()).ok()?;
    let external = url
        .query_pairs()
        .any(|(key, value)| key == "auth_mechanism" && value.eq_ignore_ascii_case("external"));
    if external {
        return None;
    }
    let user = url.username();
    if user.is_empty() {
        return Some("guest".to_owned());
    }
    Some(percent_decoded(user))
}

/// One broker URL with its password replaced by `***`. Built from the
/// URL's parsed parts, never from the text as given: a URL the parser does
/// not read as having a password (a mistyped `amqps:user:secret@host`)
/// cannot leak one.
pub fn redacted(url: &SecretString) -> String {
    let Ok(url) = url::Url::parse(url.expose_secret()) else {
        return "(an invalid URL)".into();
    };
    let Some(host) = url.host_str().filter(|host| !host.is_empty()) else {
        return "(a URL without a host)".into();
    };
    let mut shown = format!("{}://", url.scheme());
    if !url.username().is_empty() {
        shown.push_str(url.username());
        if url.password().is_some() {
            shown.push_str(":***");
        }
        shown.push('@');
    }
    shown.push_str(host);
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    if let Some(query) = url.query() {
        shown.push('?');
        shown.push_str(query);
    }
    shown
}

impl SmtpSettings {
    /// The `From` of every email.
    ///
    /// # Errors
    /// A message when `smtp.from` is missing or not a mailbox.
    pub fn sender(&self) -> Result<Mailbox, String> {
        let from = self.from.as_deref().ok_or(
            "smtp.from is required: the sender of the emails, e.g. \"relais <relais@example.org>\"",
        )?;
        from.parse()
            .map_err(|error| format!("smtp.from {from:?} is not a mailbox: {error}"))
    }

    /// The port to connect to, by default the one of the TLS mode.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::Required | SmtpTls::Opportunistic => 587,
            SmtpTls::Wrapper => 465,
            SmtpTls::None => 25,
        })
    }

    /// Where the emails go, checked: an SMTP server always has its host,
    /// its port and, when it authenticates, its password; a trial always
    /// has its folder. The one place these settings are checked.
    ///
    /// # Errors
    /// Every problem found, one message each.
    pub fn outbound(&self) -> Result<Outbound, Vec<String>> {
        let mut errors = Vec::new();
        if self.transport == TransportKind::File {
            return match &self.file_dir {
                Some(dir) => Ok(Outbound::Files(dir.clone())),
                None => Err(vec![
                    "smtp.file_dir is required with smtp.transport = \"file\"".into(),
                ]),
            };
        }
        let Some(host) = self.host.as_deref().filter(|host| !host.is_empty()) else {
            return Err(vec![
                "smtp.host is required with smtp.transport = \"smtp\"".into(),
            ]);
        };
        let in_clear = matches!(self.tls, SmtpTls::None | SmtpTls::Opportunistic);
        if in_clear && !is_loopback(host) && !self.allow_plaintext {
            errors.push(format!(
                "smtp.tls = \"{}\" towards {host}, which is not this machine, could send health \
                 data in clear: use \"required\" or \"wrapper\", or set smtp.allow_plaintext = true \
                 if the network to it is trusted",
                if self.tls == SmtpTls::None { "none" } else { "opportunistic" }
            ));
        }
        if self.password.is_some() && self.password_file.is_some() {
            errors.push("give smtp.password or smtp.password_file, not both".into());
        }
        // A password file without a username is allowed (and not read), so
        // that a systemd unit can always hand relais the credential.
        let password = match (&self.password, &self.password_file) {
            (Some(password), _) => Some(Password::Inline(password.clone())),
            (None, Some(path)) => Some(Password::File(path.clone())),
            (None, None) => None,
        };
        let credentials = match (&self.username, password) {
            (Some(username), Some(password)) => Some(Credentials {
                username: username.clone(),
                password,
            }),
            (Some(_), None) => {
                errors.push("smtp.username needs smtp.password or smtp.password_file".into());
                None
            }
            (None, Some(Password::Inline(_))) => {
                errors.push("smtp.password is given without smtp.username".into());
                None
            }
            (None, _) => None,
        };
        if self.pool_size == 0 {
            errors.push("smtp.pool_size must be at least 1".into());
        }
        if self.username.is_some() && self.tls == SmtpTls::None {
            errors.push(
                "smtp.username with smtp.tls = \"none\" would send the SMTP password in clear: \
                 use \"required\" or \"wrapper\" (or \"opportunistic\", which then does not \
                 authenticate without STARTTLS)"
                    .into(),
            );
        }
        if self.timeout.is_zero() || self.final_reply_timeout.is_zero() {
            errors.push("smtp.timeout and smtp.final_reply_timeout must be more than 0".into());
        }
        if let Some(name) = &self.helo_name
            && !is_helo_name(name)
        {
            errors.push(format!(
                "smtp.helo_name {name:?} must be a fully qualified domain name (e.g. \
                 relais.example.org) or an address literal (e.g. [192.0.2.1])"
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Outbound::Smtp(MailServer {
            host: host.to_owned(),
            port: self.port(),
            tls: self.tls,
            ca_file: self.ca_file.clone(),
            credentials,
            pool_size: self.pool_size as usize,
            timeouts: Timeouts {
                step: self.timeout,
                final_reply: self.final_reply_timeout,
            },
            helo_name: self.helo_name.clone(),
        }))
    }
}
/// A warning when the settings file `path`, readable by other users than
/// its owner, holds a secret inline (a password in `amqp.url`, or
/// `smtp.password`).
fn exposed_inline_secret(path: &Path, text: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    if mode & 0o044 == 0 {
        return None;
    }
    let value: toml::Value = toml::from_str(text).ok()?;
    let url_password = value
        .get("amqp")
        .and_then(|amqp| amqp.get("url"))
        .and_then(toml::Value::as_str)
        .and_then(|url| url::Url::parse(url).ok())
        // RabbitMQ's built-in guest:guest, which it accepts only from the
        // broker's own machine, is no secret.
        .is_some_and(|url| {
            url.password()
                .is_some_and(|p| !(url.username() == "guest" && p == "guest"))
        });
    let smtp_password = value
        .get("smtp")
        .and_then(|smtp| smtp.get("password"))
        .is_some();
    (url_password || smtp_password).then(|| {
        format!(
            "{} holds a secret inline ({}) and can be read by other users (mode {mode:04o}): \
             `chmod 600` it, or move the secret to amqp.url_file / smtp.password_file (or a \
             systemd credential)",
            path.display(),
            if url_password {
                "the password of amqp.url"
            } else {
                "smtp.password"
            }
        )
    })
}

/// `text` with its `%XX` escapes decoded (a URL's user name).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A fully qualified domain name (at least two labels) or an address
/// literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`).
fn is_helo_name(name: &str) -> bool {
    if let Some(literal) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return match literal.strip_prefix("IPv6:") {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => literal.parse::<std::net::Ipv4Addr>().is_ok(),
        };
    }
    name.contains('.') && crate::mail::smtp::is_domain(name)
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("relais.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    const MINIMAL: &str = r#"
        [smtp]
        host = "127.0.0.1"
        tls = "none"
        from = "relais <relais@example.org>"
        [registry]
        path = "referents.toml"
        [store]
        path = "state/relais.db"
    "#;

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn a_cluster_is_given_by_its_nodes_urls_in_the_file_or_in_a_credential_one_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = format!(
            "{MINIMAL}\n[amqp]\nurls = [\"amqp://relais:s3cret@127.0.0.1:5701/%2f\", \
             \"amqp://relais:s3cret@127.0.0.1:5702/%2f\", \"amqp://relais:s3cret@localhost:5703/%2f\", \
             \"amqp://relais:s3cret@127.0.0.1:5704/%2f\"]\n"
        );
        let settings =
            Settings::load_with_env(Some(&write(dir.path(), &cluster)), env(&[])).unwrap();
        assert_eq!(settings.amqp.nodes().count(), 4);
        assert_eq!(
            settings.amqp.quorum_replicas(),
            Some(3),
            "at most 3 by default"
        );
        assert_eq!(settings.amqp.login().as_deref(), Some("relais"));
        assert_eq!(
            settings.amqp.redacted_url(),
            "amqp://relais:***@127.0.0.1:5701/%2f, amqp://relais:***@127.0.0.1:5702/%2f, \
             amqp://relais:***@localhost:5703/%2f, amqp://relais:***@127.0.0.1:5704/%2f"
        );
        let one_node = Settings::load_with_env(
            Some(&write(dir.path(), &cluster)),
            env(&[("RELAIS__AMQP__QUORUM_GROUP_SIZE", "1")]),
        )
        .unwrap();
        assert_eq!(
            one_node.amqp.quorum_replicas(),
            None,
            "1: the argument unset"
        );
        let single = Settings::load_with_env(Some(&write(dir.path(), MINIMAL)), env(&[])).unwrap();
        assert_eq!(single.amqp.quorum_replicas(), None);

        std::fs::write(
            dir.path().join("amqp-url"),
            "amqp://relais:s3cret@127.0.0.1:5701/%2f\namqp://relais:s3cret@127.0.0.1:5702/%2f\n",
        )
        .unwrap();
        let credential = Settings::load_with_env(
            Some(&write(
                dir.path(),
                &format!("{MINIMAL}\n[amqp]\nurl_file = \"amqp-url\"\n"),
            )),
            env(&[]),
        )
        .unwrap();
        assert_eq!(credential.amqp.nodes().count(), 2);
        assert_eq!(credential.amqp.quorum_replicas(), Some(2));
    }

    #[test]
    fn url_and_urls_together_or_nodes_with_different_users_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let both = format!(
            "{MINIMAL}\n[amqp]\nurl = \"amqp://relais:x@127.0.0.1:5672/%2f\"\n\
             urls = [\"amqp://relais:x@127.0.0.1:5701/%2f\", \"amqp://other:x@127.0.0.1:5702/%2f\", \
             \"amqp://relais:x@broker.example.org:5703/%2f\"]\nquorum_group_size = 0\n"
        );
        let Err(SettingsError::Invalid(errors)) =
            Settings::load_with_env(Some(&write(dir.path(), &both)), env(&[]))
        else {
            panic!("accepted");
        };
        assert_eq!(
            errors,
            [
                "amqp.url and amqp.urls are both given: give amqp.url for one node, or amqp.urls \
                 for the nodes of a cluster",
                "amqp.quorum_group_size must be at least 1",
                "amqp.urls log in as different users: give every node the same user, the one \
                 relais is known by on the cluster",
                "amqp.urls[3] is amqp:// towards broker.example.org, which is not this machine: \
                 alerts would cross the network in clear; use amqps://, or set \
                 amqp.allow_plaintext = true if the network to it is trusted",
            ]
        );
    }

    #[test]
    fn a_postgresql_store_is_one_url_with_a_database_tls_towards_another_machine_and_never_beside_a_path()
     {
        let dir = tempfile::tempdir().unwrap();
        let postgres = MINIMAL.replace(
            "path = \"state/relais.db\"",
            "url = \"postgres://relais:s3cret@127.0.0.1:5432/relais\"",
        );
        let settings =
            Settings::load_with_env(Some(&write(dir.path(), &postgres)), env(&[])).unwrap();
        assert_eq!(
            settings.store.describe(),
            "postgres://relais:***@127.0.0.1:5432/relais"
        );

        let both = format!("{MINIMAL}url = \"postgres://relais@db.example.org/\"\n");
        let Err(SettingsError::Invalid(errors)) =
            Settings::load_with_env(Some(&write(dir.path(), &both)), env(&[]))
        else {
            panic!("accepted");
        };
        assert_eq!(
            errors,
            [
                "store.path and store.url are both given: give store.path for a SQLite file, or \
                 store.url for a PostgreSQL database",
                "store.url names db.example.org, which is not this machine: give store.ca_file, \
                 the authority of its certificate, so that the connection is TLS",
                "store.url names no database: postgres://user:password@host:port/database",
            ]
        );

        std::fs::write(
            dir.path().join("store-url"),
            "postgres://relais:s3cret@localhost/relais\n",
        )
        .unwrap();
        let credentials = dir.path().join("credentials");
        std::fs::create_dir(&credentials).unwrap();
        std::fs::rename(dir.path().join("store-url"), credentials.join("store-url")).unwrap();
        let from_credential = Settings::load_with_env(
            Some(&write(
                dir.path(),
                &MINIMAL.replace("path = \"state/relais.db\"", ""),
            )),
            env(&[(CREDENTIALS_ENV, credentials.to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(
            from_credential.store.describe(),
            "postgres://relais:***@localhost/relais"
        );
    }

    #[test]
    fn defaults_fill_what_the_file_does_not_say() {
        let dir = tempfile::tempdir().unwrap();
        let settings =
            Settings::load_with_env(Some(&write(dir.path(), MINIMAL)), env(&[])).unwrap();
        assert_eq!(settings.amqp.exchange, "relais.alerts");
        assert_eq!(settings.amqp.queue, "relais.alerts");
        assert_eq!(settings.amqp.prefetch, 32);
        assert_eq!(settings.amqp.max_message_bytes, 65536);
        assert_eq!(settings.amqp.delivery_limit, 10);
        assert_eq!(settings.amqp.max_queue_length, 1_000_000);
        assert_eq!(settings.smtp.timeout, Duration::from_secs(60));
        assert_eq!(settings.smtp.final_reply_timeout, Duration::from_secs(600));
        assert_eq!(settings.smtp.helo_name, None);
        assert_eq!(settings.smtp.port(), 25);
        assert_eq!(settings.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(settings.log.format, LogFormat::Text);
        assert_eq!(settings.retry.immediate, 3);
        assert_eq!(settings.retry.immediate_base, Duration::from_millis(500));
        let delays: Vec<String> = settings
            .retry
            .delays
            .iter()
            .map(|d| humantime::format_duration(*d).to_string())
            .collect();
        assert_eq!(delays, ["30s", "2m", "10m", "1h", "6h"]);
        assert_eq!(settings.store.retention, Duration::from_secs(30 * 86400));
    }

    #[test]
    fn relais_s_login_is_the_url_s_user_or_none_with_a_client_certificate() {
        let login = |url: &str| {
            AmqpSettings {
                url: url.to_owned().into(),
                ..AmqpSettings::default()
            }
            .login()
        };
        assert_eq!(
            login("amqp://relais:secret@127.0.0.1/%2f").as_deref(),
            Some("relais")
        );
        assert_eq!(
            login("amqps://relais%40sos:secret@broker.example.org/").as_deref(),
            Some("relais@sos")
        );
        assert_eq!(login("amqp://127.0.0.1/%2f").as_deref(), Some("guest"));
        assert_eq!(
            login("amqps://broker.example.org/%2f?auth_mechanism=external"),
            None
        );
    }

    #[test]
    fn a_retention_shorter_than_the_retry_ladder_and_a_day_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), MINIMAL);
        let error =
            Settings::load_with_env(Some(&file), env(&[("RELAIS__STORE__RETENTION", "1day 7h")]))
                .unwrap_err()
                .to_string();
        assert!(
            error.contains(
                "store.retention (1day 7h) must be at least the retry ladder (7h 12m 30s) plus a day"
            ),
            "{error}"
        );
        assert!(
            Settings::load_with_env(Some(&file), env(&[("RELAIS__STORE__RETENTION", "2days")]))
                .is_ok()
        );
    }

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

    #[test]
    fn a_settings_file_others_can_read_with_an_inline_secret_is_a_warning() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let text =
            format!("{MINIMAL}\n[amqp]\nurl = \"amqp://relais:PASSWORD-77@127.0.0.1/%2f\"\n");
        let file = write(dir.path(), &text);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let exposed = Settings::load_with_env(Some(&file), env(&[])).unwrap();
        assert_eq!(exposed.warnings.len(), 1, "{:?}", exposed.warnings);
        assert!(
            exposed.warnings[0].contains(
                "holds a secret inline (the password of amqp.url) and can be read by other users (mode 0644)"
            ),
            "{:?}",
            exposed.warnings
        );
        assert!(!exposed.warnings[0].contains("PASSWORD-77"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let private = Settings::load_with_env(Some(&file), env(&[])).unwrap();
        assert!(private.warnings.is_empty(), "{:?}", private.warnings);
    }

    #[test]
    fn an_smtp_login_without_tls_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), MINIMAL);
        let login = [
            ("RELAIS__SMTP__USERNAME", "relais"),
            ("RELAIS__SMTP__PASSWORD", "PASSWORD-0b1"),
        ];
        let error = Settings::load_with_env(Some(&file), env(&login))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(
                "smtp.username with smtp.tls = \"none\" would send the SMTP password in clear"
            ),
            "{error}"
        );
        assert!(!error.contains("PASSWORD-0b1"), "{error}");
        let mut required = login.to_vec();
        required.push(("RELAIS__SMTP__TLS", "required"));
        assert!(Settings::load_with_env(Some(&file), env(&required)).is_ok());
    }

    #[test]
    fn the_ehlo_name_must_be_a_qualified_name_or_an_address_literal() {
        for good in ["relais.example.org", "[192.0.2.1]", "[IPv6:2001:db8::1]"] {
            assert!(is_helo_name(good), "{good}");
        }
        for bad in [
            "relais",
            "relais example.org",
            "relais.example.org\r\nRCPT TO:<x@y>",
            "[relais]",
            "[2001:db8::1]",
            "-relais.example.org",
            "",
        ] {
            assert!(!is_helo_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn relative_paths_are_taken_from_the_settings_folder() {
        let dir = tempfile::tempdir().unwrap();
        let settings =
            Settings::load_with_env(Some(&write(dir.path(), MINIMAL)), env(&[])).unwrap();
        assert_eq!(settings.registry.path, dir.path().join("referents.toml"));
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let overrides = env(&[
            ("RELAIS__SMTP__PORT", "2525"),
            ("RELAIS__AMQP__PREFETCH", "8"),
            ("RELAIS__SMTP__TIMEOUT", "2s"),
            ("RELAIS__LOG__FORMAT", "json"),
        ]);
        let settings =
            Settings::load_with_env(Some(&write(dir.path(), MINIMAL)), overrides).unwrap();
        assert_eq!(settings.smtp.port(), 2525);
        assert_eq!(settings.amqp.prefetch, 8);
        assert_eq!(settings.smtp.timeout, Duration::from_secs(2));
        assert_eq!(settings.log.format, LogFormat::Json);
    }

    #[test]
    fn plaintext_smtp_to_another_machine_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            &MINIMAL.replace("127.0.0.1", "mail.example.org"),
        );
        let error = Settings::load_with_env(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("could send health data in clear"), "{error}");
        let allowed = env(&[("RELAIS__SMTP__ALLOW_PLAINTEXT", "true")]);
        assert!(Settings::load_with_env(Some(&file), allowed).is_ok());
        let opportunistic = env(&[("RELAIS__SMTP__TLS", "opportunistic")]);
        assert!(Settings::load_with_env(Some(&file), opportunistic).is_err());
        let required = env(&[("RELAIS__SMTP__TLS", "required")]);
        assert!(Settings::load_with_env(Some(&file), required).is_ok());
    }

    #[test]
    fn systemd_credentials_replace_the_secret_files_of_the_settings() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("credentials");
        std::fs::create_dir(&credentials).unwrap();
        std::fs::write(credentials.join("smtp-password"), "s3cr3t\n").unwrap();
        let file = write(
            dir.path(),
            &format!("{MINIMAL}\n[amqp]\nurl_file = \"root-only/amqp-url\"\n"),
        );
        // No amqp-url credential: the settings' file stays (and is missing).
        let error = Settings::load_with_env(
            Some(&file),
            env(&[("CREDENTIALS_DIRECTORY", credentials.to_str().unwrap())]),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("root-only/amqp-url"), "{error}");

        std::fs::write(
            credentials.join("amqp-url"),
            "amqp://relais:pw@localhost/%2f\n",
        )
        .unwrap();
        let settings = Settings::load_with_env(
            Some(&file),
            env(&[("CREDENTIALS_DIRECTORY", credentials.to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(
            settings.amqp.url.expose_secret(),
            "amqp://relais:pw@localhost/%2f"
        );
        assert_eq!(
            settings.smtp.password_file,
            Some(credentials.join("smtp-password"))
        );
        assert_eq!(settings.amqp.key_file, None);
    }

    #[test]
    fn plaintext_amqp_to_another_machine_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), MINIMAL);
        let remote = (
            "RELAIS__AMQP__URL",
            "amqp://relais:s3cr3t@broker.example.org/%2f",
        );
        let error = Settings::load_with_env(Some(&file), env(&[remote]))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("amqp.url is amqp:// towards broker.example.org"),
            "{error}"
        );
        assert!(!error.contains("s3cr3t"), "{error}");
        let allowed = env(&[remote, ("RELAIS__AMQP__ALLOW_PLAINTEXT", "true")]);
        assert!(Settings::load_with_env(Some(&file), allowed).is_ok());
        let tls = (
            "RELAIS__AMQP__URL",
            "amqps://relais:s3cr3t@broker.example.org/%2f",
        );
        assert!(Settings::load_with_env(Some(&file), env(&[tls])).is_ok());
    }

    #[test]
    fn a_broker_url_without_a_host_is_refused_and_never_shown_with_its_password() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), MINIMAL);
        for mistyped in [
            "amqps:relais:S3CR3T@broker.example.org/%2f",
            "amqp:relais:S3CR3T@127.0.0.1:5672",
        ] {
            let error =
                Settings::load_with_env(Some(&file), env(&[("RELAIS__AMQP__URL", mistyped)]))
                    .unwrap_err()
                    .to_string();
            assert!(error.contains("amqp.url has no host"), "{error}");
            assert!(!error.contains("S3CR3T"), "{error}");
            let amqp = AmqpSettings {
                url: mistyped.to_owned().into(),
                ..AmqpSettings::default()
            };
            assert_eq!(amqp.redacted_url(), "(a URL without a host)");
        }
        let amqp = AmqpSettings {
            url: "amqps://relais:S3CR3T@[::1]:5671/prod?heartbeat=30"
                .to_owned()
                .into(),
            ..AmqpSettings::default()
        };
        assert_eq!(
            amqp.redacted_url(),
            "amqps://relais:***@[::1]:5671/prod?heartbeat=30"
        );
    }

    #[test]
    fn broker_certificates_need_amqps_and_come_in_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), MINIMAL);
        std::fs::write(dir.path().join("ca.pem"), "no certificate here\n").unwrap();
        let SettingsError::Invalid(errors) = Settings::load_with_env(
            Some(&file),
            env(&[
                ("RELAIS__AMQP__CA_FILE", "ca.pem"),
                ("RELAIS__AMQP__CERT_FILE", "relais.pem"),
            ]),
        )
        .unwrap_err() else {
            panic!("settings errors expected");
        };
        let ca = dir.path().join("ca.pem");
        assert_eq!(
            errors,
            [
                "amqp.ca_file and amqp.cert_file need an amqps:// URL: with amqp:// the \
                 connection is in clear and they would be ignored"
                    .to_owned(),
                "amqp.cert_file and amqp.key_file go together: give both or neither".to_owned(),
                format!(
                    "amqp.ca_file {}: no PEM certificate in the file",
                    ca.display()
                ),
            ]
        );
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "[smtp]\nfrom = \"not a mailbox\"\nusername = \"u\"\n[amqp]\nprefetch = 0\n",
        );
        let SettingsError::Invalid(errors) =
            Settings::load_with_env(Some(&file), env(&[])).unwrap_err()
        else {
            panic!("expected validation errors");
        };
        let starts = [
            "registry.path is required",
            "smtp.from \"not a mailbox\" is not a mailbox",
            "smtp.host is required",
            "amqp.prefetch must be at least 1",
            "store.path is required",
        ];
        assert_eq!(errors.len(), starts.len(), "{errors:#?}");
        for (error, start) in errors.iter().zip(starts) {
            assert!(
                error.starts_with(start),
                "{error:?} should start with {start:?}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), &format!("{MINIMAL}\n[amqp]\nprefech = 3\n"));
        let error = Settings::load_with_env(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `prefech`"), "{error}");
    }

    #[test]
    fn the_broker_url_can_come_from_a_credential_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("amqp-url"),
            "amqps://relais:s3cr3t@broker.example.org:5671/%2f\n",
        )
        .unwrap();
        let file = write(
            dir.path(),
            &format!("{MINIMAL}\n[amqp]\nurl_file = \"amqp-url\"\n"),
        );
        let settings = Settings::load_with_env(Some(&file), env(&[])).unwrap();
        assert_eq!(
            settings.amqp.url.expose_secret(),
            "amqps://relais:s3cr3t@broker.example.org:5671/%2f"
        );
        assert_eq!(
            settings.amqp.redacted_url(),
            "amqps://relais:***@broker.example.org:5671/%2f"
        );

        let missing = write(
            dir.path(),
            &format!("{MINIMAL}\n[amqp]\nurl_file = \"nope\"\n"),
        );
        let error = Settings::load_with_env(Some(&missing), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("amqp.url_file") && error.contains("nope"),
            "{error}"
        );
    }

    #[test]
    fn the_broker_password_is_redacted() {
        let amqp = AmqpSettings {
            url: SecretString::from("amqps://relais:s3cr3t@broker.example.org:5671/%2f"),
            ..AmqpSettings::default()
        };
        assert_eq!(
            amqp.redacted_url(),
            "amqps://relais:***@broker.example.org:5671/%2f"
        );
        assert!(!format!("{amqp:?}").contains("s3cr3t"));
    }
}

//! The `[amqp]` section: the broker (one node, or the nodes of a cluster),
//! the names relais declares there, and how much it takes at once.
//!
//! It owns the broker's URLs: their check (TLS towards another machine,
//! one login for every node), the user relais logs in as, and their
//! redacted form. A URL holds a password: it is only ever shown through
//! [`redacted`], built from the URL's parsed parts, never from its text.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{SettingsError, is_loopback, percent_decoded};
use crate::secret::read_secret;

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
    /// The AMQP heartbeat relais asks for (a `?heartbeat=` in the URL
    /// wins): the broker closes the connection of a relais that stopped
    /// answering (a frozen process, a host cut off) after about twice this,
    /// and gives the alerts it held to another relais. RabbitMQ's own
    /// default (60 s) would hold them for two minutes; below 5 s a busy
    /// host risks false alarms.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// With a client-certificate login (`?auth_mechanism=external`), the
    /// user name the broker gives relais's certificate (with RabbitMQ's
    /// `ssl_cert_login_from = common_name`, its CN). Required then: relais
    /// stamps what it publishes with it, and trusts its own `x-relais-*`
    /// headers on nothing else.
    pub user: Option<String>,
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
            heartbeat: Duration::from_secs(5),
            user: None,
        }
    }
}

impl AmqpSettings {
    pub(super) fn check(&self, errors: &mut Vec<String>) {
        if !self.urls.is_empty() && self.url.expose_secret() != DEFAULT_AMQP_URL {
            errors.push(
                "amqp.url and amqp.urls are both given: give amqp.url for one node, or \
                 amqp.urls for the nodes of a cluster"
                    .into(),
            );
        }
        let by_certificate = self.nodes().any(|url| login_of(url).is_none());
        match (&self.user, by_certificate) {
            (None, true) => errors.push(
                "amqp.url logs in by client certificate (auth_mechanism=external): set amqp.user \
                 to the user name the broker gives relais's certificate (its CN with RabbitMQ's \
                 ssl_cert_login_from = common_name), so that relais tells what it published \
                 from what others did"
                    .into(),
            ),
            (Some(_), false) => errors.push(
                "amqp.user is for a client-certificate login (auth_mechanism=external); with a \
                 password, the user is the URL's"
                    .into(),
            ),
            _ => {}
        }
        if !(1..=600).contains(&self.heartbeat.as_secs()) {
            errors.push("amqp.heartbeat must be from 1 s to 10 min (5 s by default)".into());
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
        for (key, value) in [
            ("amqp.exchange", &self.exchange),
            ("amqp.queue", &self.queue),
        ] {
            if value.is_empty() || value.len() > 200 || value.starts_with("amq.") {
                errors.push(format!(
                    "{key} must be 1 to 200 characters and not start with `amq.` (reserved by the broker)"
                ));
            }
        }
        if self.prefetch == 0 {
            errors.push("amqp.prefetch must be at least 1".into());
        }
        if self.delivery_limit == 0 {
            errors.push("amqp.delivery_limit must be at least 1".into());
        }
        if self.max_queue_length == 0 || self.max_queue_length > i32::MAX as u32 {
            errors.push("amqp.max_queue_length must be 1 to 2147483647".into());
        }
    }

    /// Replaces `url`, or `urls` when it holds several lines, with what
    /// `url_file` holds, when it is given.
    ///
    /// # Errors
    /// [`SettingsError::Read`] when the file cannot be read.
    pub(super) fn read_url_file(&mut self) -> Result<(), SettingsError> {
        let Some(path) = &self.url_file else {
            return Ok(());
        };
        let text = read_secret(path).map_err(|error| {
            SettingsError::Read(format!("amqp.url_file {}: {error}", path.display()))
        })?;
        let lines: Vec<SecretString> = text
            .expose_secret()
            .split_whitespace()
            .map(SecretString::from)
            .collect();
        if lines.len() > 1 {
            self.urls = lines;
            self.url = SecretString::from(DEFAULT_AMQP_URL);
        } else {
            self.url = text;
        }
        Ok(())
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
    /// gives none, as for the AMQP client); `amqp.user` with a client
    /// certificate login (`auth_mechanism=external`), where the broker
    /// derives it. All the nodes of a cluster have the same (checked).
    pub fn login(&self) -> Option<String> {
        self.nodes()
            .next()
            .and_then(login_of)
            .or_else(|| self.user.clone())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::fixtures::{MINIMAL, env, write};
    use crate::settings::{Settings, SettingsError};

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
    fn a_client_certificate_login_needs_the_user_name_the_broker_gives_it() {
        let external = "amqps://broker.example.org/%2f?auth_mechanism=external";
        let errors = |url: &str, user: Option<&str>| {
            let amqp = AmqpSettings {
                url: url.to_owned().into(),
                user: user.map(str::to_owned),
                ..AmqpSettings::default()
            };
            let mut errors = Vec::new();
            amqp.check(&mut errors);
            (errors, amqp.login())
        };

        let (without, none) = errors(external, None);
        let (with, named) = errors(external, Some("relais-sos"));
        let (both, _) = errors("amqps://relais:secret@broker.example.org/", Some("other"));

        assert_eq!(
            without,
            [
                "amqp.url logs in by client certificate (auth_mechanism=external): set amqp.user to \
              the user name the broker gives relais's certificate (its CN with RabbitMQ's \
              ssl_cert_login_from = common_name), so that relais tells what it published from \
              what others did"
            ]
        );
        assert_eq!(none, None);
        assert!(with.is_empty(), "{with:?}");
        assert_eq!(named.as_deref(), Some("relais-sos"));
        assert_eq!(
            both,
            [
                "amqp.user is for a client-certificate login (auth_mechanism=external); with a \
              password, the user is the URL's"
            ]
        );
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

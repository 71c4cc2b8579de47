//! The `[store]` section: where the dedup record and audit trail are kept,
//! a SQLite file or a PostgreSQL database that several relais share, and
//! for how long.
//!
//! It refuses a retention shorter than the retry ladder and a day (a
//! retried alert would email again whoever was already emailed), a file
//! and a database at once, and any way for the database's connection to go
//! in clear off this machine: a host or host address in the URL that is
//! not this machine without `store.ca_file`, and an `sslmode` that would
//! let TLS be stripped. It decides TLS for the store (`postgres_url.rs`
//! reads the URL as the client does). The database's URL holds a
//! password: it is only shown through [`StoreSettings::describe`], without
//! it.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio_postgres::config::SslMode;

use self::postgres_url::PostgresUrl;
pub(super) use self::postgres_url::holds_password;
use super::SettingsError;
use crate::secret::read_secret;

mod postgres_url;

/// The dedup record and audit trail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// The SQLite file (created if missing), e.g. `/var/lib/relais/relais.db`;
    /// required, unless `url` is given.
    pub path: PathBuf,
    /// `postgres://user:password@host:port/database`: a PostgreSQL store
    /// that several relais can share, instead of `path` (both is an
    /// error). It holds a secret, like the broker's URL. Its `sslmode`, if
    /// any, may only be `require` or `verify-full`: relais decides TLS
    /// from `ca_file`.
    pub url: Option<SecretString>,
    /// A file holding `url` (systemd credential `store-url`).
    pub url_file: Option<PathBuf>,
    /// PEM file of the authorities to trust for PostgreSQL's certificate:
    /// the connection is then TLS, always (a server that does not offer it
    /// is refused), the certificate checked against these authorities and
    /// the host's name. Required when any host of `url` is not this
    /// machine.
    pub ca_file: Option<PathBuf>,
    /// How long deliveries are remembered (dedup and audit).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How long the operator trace is kept: who listed, replayed or purged
    /// dead letters and escalation copies, and who read the audit trail,
    /// when. Default: a year, the record of who reached patient data's
    /// traces being kept as long as audit rules ask; never shorter than
    /// `retention` (the trace of a read must outlive what was read).
    #[serde(with = "humantime_serde")]
    pub operations_retention: Duration,
    /// How long the facts of the convention's yearly report are kept
    /// (`relais report`): what became of each alert in each network, with
    /// no référent, address or patient data. Default: 13 months (396
    /// days), so that a year's report can be made a month after it ends;
    /// never shorter than `retention`.
    #[serde(with = "humantime_serde")]
    pub report_retention: Duration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            url: None,
            url_file: None,
            ca_file: None,
            retention: Duration::from_secs(30 * 24 * 3600),
            operations_retention: Duration::from_secs(365 * 24 * 3600),
            report_retention: Duration::from_secs(396 * 24 * 3600),
        }
    }
}

impl StoreSettings {
    /// The retention against the retry ladder (`ladder`, the sum of
    /// `retry.delays`), the operator trace's against the retention, then
    /// where the store is.
    pub(super) fn check(&self, ladder: Duration, errors: &mut Vec<String>) {
        let needed = ladder + Duration::from_secs(86_400);
        if self.retention < needed {
            errors.push(format!(
                "store.retention ({}) must be at least the retry ladder ({}) plus a day: a \
                 shorter one forgets who was emailed while retries are pending, and a retried \
                 alert would email them again",
                humantime::format_duration(self.retention),
                humantime::format_duration(ladder)
            ));
        }
        if self.operations_retention < self.retention {
            errors.push(format!(
                "store.operations_retention ({}) must be at least store.retention ({}): the \
                 trace of who read or purged the deliveries must outlive them",
                humantime::format_duration(self.operations_retention),
                humantime::format_duration(self.retention)
            ));
        }
        if self.report_retention < self.retention {
            errors.push(format!(
                "store.report_retention ({}) must be at least store.retention ({}): the \
                 report's facts are written as the deliveries are, and kept longer",
                humantime::format_duration(self.report_retention),
                humantime::format_duration(self.retention)
            ));
        }
        if let Some(url) = &self.url {
            self.check_url(url, errors);
        } else if self.path.as_os_str().is_empty() {
            errors.push(
                "store.path is required: the file of the dedup record and audit trail".into(),
            );
        }
    }

    /// Replaces `url` with what `url_file` holds, when it is given.
    ///
    /// # Errors
    /// [`SettingsError::Read`] when the file cannot be read.
    pub(super) fn read_url_file(&mut self) -> Result<(), SettingsError> {
        if let Some(path) = &self.url_file {
            self.url = Some(read_secret(path).map_err(|error| {
                SettingsError::Read(format!("store.url_file {}: {error}", path.display()))
            })?);
        }
        Ok(())
    }

    fn check_url(&self, url: &SecretString, errors: &mut Vec<String>) {
        if !self.path.as_os_str().is_empty() {
            errors.push(
                "store.path and store.url are both given: give store.path for a SQLite file, \
                 or store.url for a PostgreSQL database"
                    .into(),
            );
        }
        let parsed = match PostgresUrl::parse(url.expose_secret()) {
            Ok(parsed) => parsed,
            Err(error) => {
                errors.push(error);
                return;
            }
        };
        let elsewhere = parsed.elsewhere();
        if parsed.has_no_host() {
            errors.push(
                "store.url has no host: write it postgres://user:password@host:port/database"
                    .into(),
            );
        } else if self.ca_file.is_none() {
            errors.extend(elsewhere.iter().map(|place| {
                format!(
                    "store.url names {place}, which is not this machine: give store.ca_file, \
                     the authority of its certificate, so that the connection is TLS"
                )
            }));
        }
        for mode in &parsed.sslmodes {
            let error = match mode.as_str() {
                // relais's TLS is verify-full whatever the URL says.
                "require" | "verify-full" if self.ca_file.is_some() => continue,
                // Said already: the host needs store.ca_file.
                "require" | "verify-full" if !elsewhere.is_empty() => continue,
                "require" | "verify-full" => format!(
                    "store.url has sslmode={mode} without store.ca_file: give store.ca_file, \
                     the authority relais checks PostgreSQL's certificate against"
                ),
                "disable" | "allow" | "prefer" => format!(
                    "store.url has sslmode={mode}: relais decides TLS itself, always TLS with \
                     store.ca_file (which a database on another machine needs) and in clear \
                     only to this machine without it; leave sslmode out, or write \
                     sslmode=verify-full"
                ),
                "verify-ca" => "store.url has sslmode=verify-ca, which leaves the server's name \
                                unchecked: relais always checks PostgreSQL's certificate against \
                                store.ca_file and the host's name; leave sslmode out, or write \
                                sslmode=verify-full"
                    .into(),
                _ => "store.url has an sslmode PostgreSQL does not know; leave sslmode out, or \
                      write sslmode=verify-full"
                    .into(),
            };
            if !errors.contains(&error) {
                errors.push(error);
            }
        }
        if parsed.config.get_dbname().is_none() {
            errors.push(
                "store.url names no database: postgres://user:password@host:port/database".into(),
            );
        }
    }

    /// `url` as the PostgreSQL client connects with it, TLS decided by
    /// relais whatever the URL's `sslmode` says: required (a server that
    /// does not offer it is refused, never talked to in clear) with
    /// `ca_file` or towards any host that is not this machine; off
    /// otherwise (this machine, no authority to check against).
    ///
    /// # Errors
    /// A message when there is no `url` or the client cannot read it.
    pub fn postgres_config(&self) -> Result<tokio_postgres::Config, String> {
        let url = self.url.as_ref().ok_or("no store.url")?;
        let parsed = PostgresUrl::parse(url.expose_secret())?;
        let tls = self.ca_file.is_some() || !parsed.elsewhere().is_empty();
        let mut config = parsed.config;
        config.ssl_mode(if tls {
            SslMode::Require
        } else {
            SslMode::Disable
        });
        Ok(config)
    }

    /// Where the store is, for logs and CLI output: the SQLite file, or
    /// the PostgreSQL URL without its password (user info and
    /// `?password=`).
    pub fn describe(&self) -> String {
        match &self.url {
            Some(url) => postgres_url::redacted(url.expose_secret()),
            None => self.path.display().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::StoreSettings;
    use crate::settings::fixtures::{MINIMAL, env, write};
    use crate::settings::{CREDENTIALS_ENV, Settings, SettingsError};

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

    /// Loads the minimal settings with `store.url` = `url` (and
    /// `store.ca_file` when `ca_file`): the errors, or none.
    fn errors_with(url: &str, ca_file: bool) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let mut store = format!("url = {url:?}");
        if ca_file {
            store.push_str("\nca_file = \"db-ca.pem\"");
        }
        let text = MINIMAL.replace("path = \"state/relais.db\"", &store);
        match Settings::load_with_env(Some(&write(dir.path(), &text)), env(&[])) {
            Ok(_) => Vec::new(),
            Err(SettingsError::Invalid(errors)) => errors,
            Err(error) => panic!("{error}"),
        }
    }

    #[test]
    fn an_sslmode_other_than_require_or_verify_full_is_refused_and_either_needs_store_ca_file() {
        let url = |mode: &str| format!("postgres://relais@db.example.org/relais?sslmode={mode}");

        for mode in ["require", "verify-full"] {
            assert_eq!(
                errors_with(&url(mode), true),
                Vec::<String>::new(),
                "{mode}"
            );
        }
        for mode in ["disable", "allow", "prefer"] {
            assert_eq!(
                errors_with(&url(mode), true),
                [format!(
                    "store.url has sslmode={mode}: relais decides TLS itself, always TLS with \
                     store.ca_file (which a database on another machine needs) and in clear only \
                     to this machine without it; leave sslmode out, or write sslmode=verify-full"
                )],
                "{mode}"
            );
        }
        assert_eq!(
            errors_with(&url("verify-ca"), true),
            [
                "store.url has sslmode=verify-ca, which leaves the server's name unchecked: relais \
                 always checks PostgreSQL's certificate against store.ca_file and the host's \
                 name; leave sslmode out, or write sslmode=verify-full"
            ]
        );
        assert_eq!(
            errors_with(&url("sometimes"), true),
            [
                "store.url has an sslmode PostgreSQL does not know; leave sslmode out, or write \
                 sslmode=verify-full"
            ]
        );
        // Asked for on this machine without an authority to check against.
        assert_eq!(
            errors_with("postgres://relais@127.0.0.1/relais?sslmode=require", false),
            [
                "store.url has sslmode=require without store.ca_file: give store.ca_file, the \
                 authority relais checks PostgreSQL's certificate against"
            ]
        );
        // Even to this machine, no sslmode may turn TLS off.
        assert_eq!(
            errors_with("postgres://relais@127.0.0.1/relais?sslmode=disable", false).len(),
            1
        );
        // libpq's own TLS files are not read: store.ca_file is.
        assert_eq!(
            errors_with(
                "postgres://relais@127.0.0.1/relais?sslrootcert=ca.pem",
                false
            ),
            [
                "store.url cannot be read as a PostgreSQL URL (unknown option `sslrootcert`): \
                 write it postgres://user:password@host:port/database"
            ]
        );
    }

    #[test]
    fn every_host_and_host_address_of_store_url_must_be_this_machine_without_store_ca_file() {
        let elsewhere = |place: &str| {
            vec![format!(
                "store.url names {place}, which is not this machine: give store.ca_file, the \
                 authority of its certificate, so that the connection is TLS"
            )]
        };
        for (url, place) in [
            (
                "postgres://relais@127.0.0.1/relais?host=db.example.org",
                "db.example.org",
            ),
            (
                "postgres://relais@localhost/relais?hostaddr=10.1.2.3",
                "10.1.2.3",
            ),
            (
                "postgres://relais@localhost/relais?host=localhost,db.example.org",
                "db.example.org",
            ),
            (
                "postgres://relais@localhost/relais?hostaddr=127.0.0.1,10.1.2.3",
                "10.1.2.3",
            ),
            (
                "postgres://localhost:5432,db.example.org:5433/relais",
                "db.example.org",
            ),
            (
                "postgres://relais@localhost/relais?host=db%2Eexample%2Eorg",
                "db.example.org",
            ),
            // The client takes everything before the first `@` as the
            // user: this URL goes to db.example.org.
            (
                "postgres://127.0.0.1/relais?application_name=a@db.example.org/relais",
                "db.example.org",
            ),
        ] {
            assert_eq!(errors_with(url, false), elsewhere(place), "{url}");
            assert_eq!(errors_with(url, true), Vec::<String>::new(), "{url}");
        }
        for here in [
            "postgres://relais@localhost/relais?host=/run/postgresql",
            "postgres://relais@localhost/relais?host=%2Frun%2Fpostgresql",
            "postgres://relais@localhost/relais?hostaddr=127.0.0.1",
            "postgres://relais@[::1]:5432/relais",
            "postgres://relais@localhost/relais?host=localhost,127.0.0.1",
            "postgres://relais@localhost,127.0.0.1:5433/relais",
        ] {
            assert_eq!(errors_with(here, false), Vec::<String>::new(), "{here}");
        }
    }

    #[test]
    fn the_password_of_store_url_is_never_shown() {
        let shown = |url: &str| {
            StoreSettings {
                url: Some(SecretString::from(url.to_owned())),
                ..StoreSettings::default()
            }
            .describe()
        };
        assert_eq!(
            shown("postgres://relais@127.0.0.1/relais?password=s3cret&sslmode=require"),
            "postgres://relais@127.0.0.1/relais?password=***&sslmode=require"
        );
        assert_eq!(
            shown("postgres://relais@127.0.0.1/relais?pass%77ord=s3cret"),
            "postgres://relais@127.0.0.1/relais?pass%77ord=***"
        );
        assert_eq!(
            shown("postgresql://relais:s3cret@db.example.org:5432,db2.example.org:5433/relais"),
            "postgresql://relais:***@db.example.org:5432,db2.example.org:5433/relais"
        );
        assert_eq!(
            shown("postgres://relais:s3c?ret@127.0.0.1/relais"),
            "postgres://relais:***@127.0.0.1/relais"
        );
        assert_eq!(
            shown("postgres://relais:s3@cr@et@127.0.0.1/relais"),
            "postgres://relais:***@127.0.0.1/relais"
        );

        let errors = errors_with(
            "postgres://relais:s3cret@db.example.org/relais?password=s3cret&sslmode=prefer",
            false,
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(!errors.concat().contains("s3cret"), "{errors:?}");
    }

    #[test]
    fn relais_requires_tls_with_store_ca_file_or_towards_another_machine_whatever_sslmode_says() {
        use tokio_postgres::config::SslMode;
        let mode = |url: &str, ca_file: bool| {
            StoreSettings {
                url: Some(SecretString::from(url.to_owned())),
                ca_file: ca_file.then(|| "db-ca.pem".into()),
                ..StoreSettings::default()
            }
            .postgres_config()
            .unwrap()
            .get_ssl_mode()
        };
        assert_eq!(
            mode("postgres://relais@127.0.0.1/relais?sslmode=disable", true),
            SslMode::Require
        );
        assert_eq!(
            mode(
                "postgres://relais@db.example.org/relais?sslmode=verify-full",
                true
            ),
            SslMode::Require
        );
        // Settings not checked (built in code): never in clear off this
        // machine, even without an authority (the connection then fails).
        assert_eq!(
            mode(
                "postgres://relais@localhost/relais?hostaddr=10.1.2.3&sslmode=prefer",
                false
            ),
            SslMode::Require
        );
        assert_eq!(
            mode("postgres://relais@localhost/relais", false),
            SslMode::Disable
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
    fn the_report_facts_are_kept_thirteen_months_and_never_less_than_the_deliveries() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), MINIMAL);
        let settings = Settings::load_with_env(Some(&file), env(&[])).unwrap();
        assert_eq!(
            settings.store.report_retention,
            std::time::Duration::from_secs(396 * 86_400)
        );

        let Err(SettingsError::Invalid(errors)) = Settings::load_with_env(
            Some(&file),
            env(&[
                ("RELAIS__STORE__RETENTION", "2days"),
                ("RELAIS__STORE__REPORT_RETENTION", "1day"),
            ]),
        ) else {
            panic!("accepted");
        };
        assert_eq!(
            errors,
            [
                "store.report_retention (1day) must be at least store.retention (2days): the \
                 report's facts are written as the deliveries are, and kept longer"
            ]
        );
    }

    #[test]
    fn the_operator_trace_is_kept_a_year_and_never_less_than_the_deliveries() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), MINIMAL);
        let settings = Settings::load_with_env(Some(&file), env(&[])).unwrap();
        assert_eq!(
            settings.store.operations_retention,
            std::time::Duration::from_secs(365 * 86_400)
        );

        let Err(SettingsError::Invalid(errors)) = Settings::load_with_env(
            Some(&file),
            env(&[
                ("RELAIS__STORE__RETENTION", "2days"),
                ("RELAIS__STORE__OPERATIONS_RETENTION", "1day"),
            ]),
        ) else {
            panic!("accepted");
        };
        assert_eq!(
            errors,
            [
                "store.operations_retention (1day) must be at least store.retention (2days): \
                 the trace of who read or purged the deliveries must outlive them"
            ]
        );
        assert!(
            Settings::load_with_env(
                Some(&file),
                env(&[
                    ("RELAIS__STORE__RETENTION", "2days"),
                    ("RELAIS__STORE__OPERATIONS_RETENTION", "2days"),
                ]),
            )
            .is_ok()
        );
    }
}

//! The settings' secret files and where they really are: under systemd,
//! the service's own credentials (`$CREDENTIALS_DIRECTORY`) replace the
//! files the settings name, which are meant for `relais check` run as root.
//!
//! It warns, at start and in `relais check`, about a secret that users
//! other than relais's can read: a secret file, or a settings file holding
//! a password inline (`amqp.url`'s, `smtp.password`, `store.url`'s). It never reads, shows or logs a secret's value.

use std::path::{Path, PathBuf};

use super::Settings;
use super::store::holds_password;

/// Where systemd puts the service's credentials (`LoadCredential=`).
pub const CREDENTIALS_ENV: &str = "CREDENTIALS_DIRECTORY";

/// The credentials relais takes from `$CREDENTIALS_DIRECTORY` when they are
/// there, in place of the setting's file: the service's private copies win
/// over the paths the settings file gives for `relais check` run as root.
pub const CREDENTIALS: [&str; 6] = [
    "amqp-url",
    "amqp-client-key",
    "smtp-password",
    "ack-key",
    "ack-previous-key",
    "store-url",
];

impl Settings {
    /// The settings that name a secret file, in the order of
    /// [`CREDENTIALS`], the credentials that replace them under systemd.
    fn secret_files(&mut self) -> [(&'static str, &mut Option<PathBuf>); 6] {
        [
            ("amqp.url_file", &mut self.amqp.url_file),
            ("amqp.key_file", &mut self.amqp.key_file),
            ("smtp.password_file", &mut self.smtp.password_file),
            ("ack.key_file", &mut self.ack.key_file),
            ("ack.previous_key_file", &mut self.ack.previous_key_file),
            ("store.url_file", &mut self.store.url_file),
        ]
    }

    /// Points each secret file setting at its credential in `directory`
    /// (systemd's, if any) when one is there; returns a warning for each
    /// secret file that users other than its owner can read.
    pub(super) fn take_secret_files(&mut self, directory: Option<&Path>) -> Vec<String> {
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
}

/// A warning when the settings file `path`, readable by other users than
/// its owner, holds a secret inline (a password in `amqp.url`, one of
/// `amqp.urls` or `store.url`, or `smtp.password`), naming each and the
/// file setting that would keep it instead.
pub(super) fn exposed_inline_secret(path: &Path, text: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    if mode & 0o044 == 0 {
        return None;
    }
    let value: toml::Value = toml::from_str(text).ok()?;
    let setting = |section: &str, key: &str| {
        value
            .get(section)
            .and_then(|table| table.get(key))
            .and_then(toml::Value::as_str)
    };
    // RabbitMQ's built-in guest:guest, which it accepts only from the
    // broker's own machine, is no secret.
    let amqp_secret = |url: &str| {
        url::Url::parse(url).ok().is_some_and(|url| {
            url.password()
                .is_some_and(|p| !(url.username() == "guest" && p == "guest"))
        })
    };
    let amqp_password = setting("amqp", "url").is_some_and(amqp_secret);
    let urls_password = value
        .get("amqp")
        .and_then(|amqp| amqp.get("urls"))
        .and_then(toml::Value::as_array)
        .is_some_and(|urls| urls.iter().filter_map(toml::Value::as_str).any(amqp_secret));
    let smtp_password = value
        .get("smtp")
        .and_then(|smtp| smtp.get("password"))
        .is_some();
    let store_password = setting("store", "url").is_some_and(holds_password);
    let exposed: Vec<(&str, &str)> = [
        (amqp_password, "the password of amqp.url", "amqp.url_file"),
        (urls_password, "the password of amqp.urls", "amqp.url_file"),
        (smtp_password, "smtp.password", "smtp.password_file"),
        (
            store_password,
            "the password of store.url",
            "store.url_file",
        ),
    ]
    .into_iter()
    .filter_map(|(found, secret, file)| found.then_some((secret, file)))
    .collect();
    if exposed.is_empty() {
        return None;
    }
    let secrets: Vec<&str> = exposed.iter().map(|(secret, _)| *secret).collect();
    let mut files: Vec<&str> = exposed.iter().map(|(_, file)| *file).collect();
    files.dedup();
    Some(format!(
        "{} holds a secret inline ({}) and can be read by other users (mode {mode:04o}): \
         `chmod 600` it, or move the secret to {} (or a systemd credential)",
        path.display(),
        secrets.join(", "),
        files.join(" / ")
    ))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use crate::settings::Settings;
    use crate::settings::fixtures::{MINIMAL, env, write};

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
    fn a_settings_file_others_can_read_with_the_password_of_store_url_inline_is_a_warning() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let with_url = |url: &str| {
            let text = MINIMAL.replace("path = \"state/relais.db\"", &format!("url = {url:?}"));
            let file = write(dir.path(), &text);
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            Settings::load_with_env(Some(&file), env(&[]))
                .unwrap()
                .warnings
        };

        for url in [
            "postgres://relais:PASSWORD-78@127.0.0.1/relais",
            "postgres://relais@127.0.0.1/relais?password=PASSWORD-78",
        ] {
            let warnings = with_url(url);
            assert_eq!(warnings.len(), 1, "{url}: {warnings:?}");
            assert!(
                warnings[0].contains(
                    "holds a secret inline (the password of store.url) and can be read by other \
                     users (mode 0644): `chmod 600` it, or move the secret to store.url_file"
                ),
                "{warnings:?}"
            );
            assert!(!warnings[0].contains("PASSWORD-78"));
        }
        let without = with_url("postgres://relais@127.0.0.1/relais");
        assert!(without.is_empty(), "{without:?}");
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
}

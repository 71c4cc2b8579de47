//! Reading the settings: the built-in defaults, then the settings file,
//! then environment variables `RELAIS__SECTION__KEY`; relative paths taken
//! from the file's folder, secret files from systemd's credentials when
//! there, and every section checked.
//!
//! It refuses the settings with every problem listed at once, and never
//! quotes a secret in an error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};

use super::secrets::exposed_inline_secret;
use super::{CREDENTIALS_ENV, Settings, SettingsError};

/// The environment variable naming the settings file, when `--config` is not given.
pub const CONFIG_ENV: &str = "RELAIS_CONFIG";

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
        settings.warnings.extend(settings.consent.waived());
        settings.amqp.read_url_file()?;
        settings.store.read_url_file()?;
        settings.check().map_err(SettingsError::Invalid)?;
        Ok(settings)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let required = [&mut self.registry.path, &mut self.store.path];
        let optional = [
            &mut self.territories.path,
            &mut self.smtp.password_file,
            &mut self.smtp.ca_file,
            &mut self.smtp.file_dir,
            &mut self.amqp.url_file,
            &mut self.amqp.ca_file,
            &mut self.amqp.cert_file,
            &mut self.amqp.key_file,
            &mut self.ack.key_file,
            &mut self.ack.previous_key_file,
            &mut self.store.url_file,
            &mut self.store.ca_file,
        ];
        for path in required.into_iter().chain(optional.into_iter().flatten()) {
            if path.is_relative() && !path.as_os_str().is_empty() {
                *path = base.join(&*path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::settings::fixtures::{MINIMAL, env, write};
    use crate::settings::{LogFormat, SettingsError};

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
}

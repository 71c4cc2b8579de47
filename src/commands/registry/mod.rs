//! `relais registry …`: the registry file itself, looked at before it is
//! live: [`diff`] says what a change would do. And `--registry FILE`, which
//! `check`, `resolve` and `coverage` take to read a candidate file in place
//! of the settings' `registry.path`, without touching the settings.
//!
//! Like every subcommand, these only read: a registry goes live when the
//! operator puts it at `registry.path` and reloads relais.

mod diff;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::settings::Settings;

pub use diff::DiffArgs;

/// The subcommands of `relais registry`.
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// What a registry change does before it is live: the référents added,
    /// removed and changed, the routes, and the communes whose recipients
    /// change. Exit 0: no change; 1: trouble (an invalid file); 2: changes.
    Diff(DiffArgs),
}

/// Runs a `relais registry` subcommand.
pub(super) fn registry(config: Option<&Path>, command: RegistryCommand) -> ExitCode {
    match command {
        RegistryCommand::Diff(args) => diff::diff(config, &args),
    }
}

/// Which registry file a command reads: a candidate named on the command
/// line, else the settings' `registry.path`.
#[derive(Debug, Args)]
pub struct RegistryFile {
    /// Read this registry file instead of the settings' registry.path (a
    /// candidate, checked before it is live); relative to the current
    /// directory.
    #[arg(long, value_name = "FILE")]
    pub registry: Option<PathBuf>,
}

impl RegistryFile {
    /// The file to read with `settings`.
    pub fn path<'a>(&'a self, settings: &'a Settings) -> &'a Path {
        self.registry.as_deref().unwrap_or(&settings.registry.path)
    }
}

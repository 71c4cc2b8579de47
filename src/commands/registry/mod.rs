//! `relais registry …`: the registry outside the daemon, one file per
//! subcommand, in the order an operator meets them. From the spreadsheet:
//! [`import`] makes a registry's référents from a CSV, alone or in place of
//! their networks' in an existing registry, and [`export`] writes them as
//! one (`document` is the registry file as these two read and rewrite it,
//! `spreadsheet` the columns and encodings of its CSV form; they write a
//! file or standard output that an operator reviews, never the registry
//! relais runs on). Before a change is live: [`diff`] says what it would
//! do, and [`probe`] proves the addresses it adds or changes with a test
//! email. Putting it live on a shared store: [`publish`]. Afterwards:
//! [`versions`] lists and shows the registries the store keeps, so that
//! the file behind a delivery can be questioned again. And `--registry
//! FILE`, which `check`, `resolve` and `coverage` take to read a
//! candidate file in place of the settings' `registry.path`.

mod diff;
mod document;
pub mod export;
pub mod import;
mod probe;
mod publish;
mod spreadsheet;
mod versions;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::settings::Settings;

pub use diff::DiffArgs;
use export::ExportArgs;
use import::ImportArgs;
use probe::ProbeArgs;
use publish::PublishArgs;
use versions::ShowArgs;

/// The subcommands of `relais registry`.
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Make a registry's référents from a spreadsheet (CSV).
    Import(ImportArgs),
    /// Write a registry's référents as a spreadsheet (CSV).
    Export(ExportArgs),
    /// What a registry change does before it is live: the référents added,
    /// removed and changed, the routes, and the communes whose recipients
    /// change. Exit 0: no change; 1: trouble (an invalid file); 2: changes.
    Diff(DiffArgs),
    /// Send a test email to référents' addresses (those named, or those a
    /// new registry adds or changes) and say which the mail server
    /// refused; `--status`: who confirmed receipt.
    Probe(ProbeArgs),
    /// Make a registry file the one every relais on the PostgreSQL store
    /// routes with, within seconds and without a restart.
    Publish(PublishArgs),
    /// The registries the store keeps: every one relais routed with, and
    /// those published, the last used first.
    Versions,
    /// Print a registry the store keeps, by its digest (as `relais audit`
    /// names it), to question it with `relais resolve --registry`.
    Show(ShowArgs),
}

/// Runs a `relais registry` subcommand.
pub(super) async fn registry(config: Option<&Path>, command: RegistryCommand) -> ExitCode {
    let done = match command {
        RegistryCommand::Diff(args) => return diff::diff(config, &args),
        RegistryCommand::Probe(args) => probe::probe(config, &args).await,
        RegistryCommand::Publish(args) => publish::publish(config, &args).await,
        RegistryCommand::Versions => versions::versions(config).await,
        RegistryCommand::Show(args) => versions::show(config, &args).await,
        RegistryCommand::Import(args) => import::import(config, &args),
        RegistryCommand::Export(args) => export::export(config, &args),
    };
    super::exit_code(done)
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

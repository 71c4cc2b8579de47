//! `relais registry …`: the registry's life outside the daemon, one file
//! per subcommand: [`publish`] makes a checked file the one every relais
//! of a shared store routes with; [`probe`] proves référents' addresses
//! with a test email; [`versions`] lists and shows the registries the
//! store keeps; [`import`] makes a registry's référents from a
//! spreadsheet, alone or in place of their networks' in an existing
//! registry, and [`export`] writes them as one (`document` is the registry
//! file as these two read and rewrite it, `spreadsheet` the columns and
//! encodings of its CSV form; they write a file or standard output that
//! an operator reviews, never the registry relais runs on).

mod document;
pub mod export;
pub mod import;
mod probe;
mod publish;
mod spreadsheet;
mod versions;

use std::path::Path;

use clap::Subcommand;

use export::ExportArgs;
use import::ImportArgs;
use probe::ProbeArgs;
use publish::PublishArgs;
use versions::ShowArgs;

/// The subcommands of `relais registry`.
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Make a registry file the one every relais on the PostgreSQL store
    /// routes with, within seconds and without a restart.
    Publish(PublishArgs),
    /// Send a test email to référents' addresses (those named, or those a
    /// new registry adds or changes) and say which the mail server
    /// refused; `--status`: who confirmed receipt.
    Probe(ProbeArgs),
    /// The registries the store keeps: every one relais routed with, and
    /// those published, the last used first.
    Versions,
    /// Print a registry the store keeps, by its digest (as `relais audit`
    /// names it), to question it with `relais resolve --registry`.
    Show(ShowArgs),
    /// Make a registry's référents from a spreadsheet (CSV).
    Import(ImportArgs),
    /// Write a registry's référents as a spreadsheet (CSV).
    Export(ExportArgs),
}

/// Runs `relais registry <command>`.
pub(super) async fn registry(
    config: Option<&Path>,
    command: RegistryCommand,
) -> anyhow::Result<()> {
    match command {
        RegistryCommand::Publish(args) => publish::publish(config, &args).await,
        RegistryCommand::Probe(args) => probe::probe(config, &args).await,
        RegistryCommand::Versions => versions::versions(config).await,
        RegistryCommand::Show(args) => versions::show(config, &args).await,
        RegistryCommand::Import(args) => import::import(config, &args),
        RegistryCommand::Export(args) => export::export(config, &args),
    }
}

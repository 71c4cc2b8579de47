//! `relais registry …`: the registry's life outside the daemon, one file
//! per subcommand: [`publish`] makes a checked file the one every relais
//! of a shared store routes with; [`probe`] proves référents' addresses
//! with a test email; [`versions`] lists and shows the registries the
//! store keeps.

mod probe;
mod publish;
mod versions;

use std::path::Path;

use clap::Subcommand;

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
    }
}

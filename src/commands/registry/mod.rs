//! `relais registry …`: the registry's life outside the daemon, one file
//! per subcommand: [`publish`] makes a checked file the one every relais
//! of a shared store routes with.

mod publish;

use std::path::Path;

use clap::Subcommand;

use publish::PublishArgs;

/// The subcommands of `relais registry`.
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Make a registry file the one every relais on the PostgreSQL store
    /// routes with, within seconds and without a restart.
    Publish(PublishArgs),
}

/// Runs `relais registry <command>`.
pub(super) async fn registry(
    config: Option<&Path>,
    command: RegistryCommand,
) -> anyhow::Result<()> {
    match command {
        RegistryCommand::Publish(args) => publish::publish(config, &args).await,
    }
}

//! The command line's top: the settings file every subcommand reads, and
//! which subcommand to run. Parsing only; each subcommand, its arguments
//! and the function that carries it out are in a file of
//! [`crate::commands`].

use std::path::PathBuf;

use clap::Parser;

use crate::commands::Command;
use crate::settings::CONFIG_ENV;

/// relais: relays social-care alerts from emergency doctors to the
/// référents of the territory, by email.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// The settings file (TOML). Environment variables RELAIS__SECTION__KEY
    /// override it, e.g. RELAIS__SMTP__PORT=2525.
    #[arg(long, short, global = true, env = CONFIG_ENV, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

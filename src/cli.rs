//! The command line: one subcommand per job an operator or a developer
//! has. Parsing only; each subcommand is carried out by a function of
//! [`crate::commands`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::outcome::Reason;
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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: consume alerts and email the référents.
    Run,
    /// Check the settings and the registry, and summarise them.
    Check,
    /// Show who would receive an alert of a kind about a territory.
    Resolve(ResolveArgs),
    /// What the registry covers of France: per network, the communes and
    /// population served at each level, and the gaps per département.
    Coverage(CoverageArgs),
    /// Publish an alert the way the dispatch software does (smoke tests).
    Publish(PublishArgs),
    /// Show who was emailed about an alert, or every delivery since a time.
    Audit(AuditArgs),
    /// The alerts awaiting acknowledgement: who has them, since when, the
    /// next step of their escalation.
    Pending(PendingArgs),
    /// One screen on the queues: exit 2 when dead letters wait.
    Status(StatusArgs),
    /// Look at, replay or purge the dead letters.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
}

#[derive(Debug, Args)]
pub struct CoverageArgs {
    /// Only this network, e.g. ccas.
    #[arg(long, value_name = "NETWORK")]
    pub network: Option<String>,
    /// Print JSON, for scripts: every commune of every gap.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON, for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// List dead letters (they stay in the queue).
    List {
        /// At most this many, oldest first.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Send dead letters back to relais, attempt count reset.
    Replay(ReplayArgs),
    /// Delete dead letters for good: those of an alert, or those older than
    /// a duration (they hold health data: keep them no longer than needed).
    Purge(PurgeArgs),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true))]
pub struct PurgeArgs {
    /// The dead letters of this alert id.
    #[arg(long, group = "which", value_name = "ID")]
    pub id: Option<String>,
    /// The dead letters dead-lettered longer ago than this, e.g. 30d.
    #[arg(long, group = "which", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub older_than: Option<std::time::Duration>,
    /// Confirm the deletion (without it, only show what would go).
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true))]
pub struct ReplayArgs {
    /// Every dead letter.
    #[arg(long, group = "which")]
    pub all: bool,
    /// The dead letters of this alert id.
    #[arg(long, group = "which", value_name = "ID")]
    pub id: Option<String>,
    /// The dead letters of this reason (invalid, unroutable, forbidden, conflict, rejected, exhausted, delivery_limit).
    #[arg(long, group = "which", value_name = "REASON")]
    pub reason: Option<Reason>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("territory").required(true))]
pub struct ResolveArgs {
    /// The alert's kind, e.g. orientation_sociale.
    #[arg(long)]
    pub kind: String,
    /// An INSEE commune code, e.g. 75113.
    #[arg(long, group = "territory")]
    pub commune: Option<String>,
    /// A département code, e.g. 2A or 974.
    #[arg(long, group = "territory")]
    pub departement: Option<String>,
    /// The instant of the alert, RFC 3339 (e.g. 2026-12-25T10:00:00+01:00),
    /// for the référents' absences; now by default.
    #[arg(long, value_name = "INSTANT")]
    pub at: Option<String>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The alert (JSON); standard input when absent.
    #[arg(long, short, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PendingArgs {
    /// One JSON document, for scripts and monitoring.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).multiple(true))]
pub struct AuditArgs {
    /// An alert id: who was emailed about it, and when.
    #[arg(long, group = "which", value_name = "ID", conflicts_with_all = ["since", "operations"])]
    pub alert: Option<String>,
    /// Every delivery (or, with --operations, every operator command) in
    /// this last span of time, e.g. 24h or 7d.
    #[arg(long, group = "which", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub since: Option<std::time::Duration>,
    /// The operators' commands on the dead letters and the audit trail:
    /// when, which Unix user, what, how many.
    #[arg(long, group = "which")]
    pub operations: bool,
}

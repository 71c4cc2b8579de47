//! The operators' and developers' subcommands: one file each, beside its
//! arguments, and this index that names them and runs the one asked for.
//! Output is for people (and, where said, for scripts); it never shows a
//! secret or a patient detail.
//!
//! - [`run`]: the daemon;
//! - [`check`], [`resolve`], [`coverage`]: the settings and the registry,
//!   read without the broker (the last two with the absences the référents
//!   declared, from the store); each reads a candidate registry instead
//!   with `--registry FILE`;
//! - [`registry`]: the registry file before it is live (`diff`);
//! - [`absences`]: the absences in force or to come, the registry's and the
//!   declared ones;
//! - [`publish`]: an alert published as the dispatch software does;
//! - [`audit`], [`pending`]: the store's trail, and the alerts awaiting
//!   acknowledgement;
//! - [`bounce`]: one bounce, handed over by the mail server;
//! - [`report`]: the convention's yearly report, from the store's facts
//!   that name nobody;
//! - [`status`], [`dead_letters`], [`escalations`]: the queues, the dead
//!   letters, and the copies waiting for a step of escalation;
//! - [`registry`]: the registry file published to a fleet, made from a
//!   spreadsheet and exported to one;
//! - `trace`: the record of each operator command in the store's
//!   operations log; `output`: what the commands print, escaped.
//!
//! A subcommand never decides what happens to an alert: it reads, or asks
//! the broker, the store or the relay's own modules to act.

pub mod absences;
pub mod audit;
pub mod bounce;
pub mod check;
pub mod coverage;
pub mod dead_letters;
pub mod escalations;
mod output;
pub mod pending;
pub mod publish;
pub mod registry;
pub mod report;
pub mod resolve;
pub mod run;
pub mod status;
mod trace;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use lapin::Connection;

use crate::geography::Geography;
use crate::settings::Settings;

pub use check::NO_PUBLISHER;

use absences::AbsencesArgs;
use audit::AuditArgs;
use bounce::BounceArgs;
use check::CheckArgs;
use coverage::CoverageArgs;
use dead_letters::DeadLettersCommand;
use escalations::EscalationsCommand;
use pending::PendingArgs;
use publish::PublishArgs;
use registry::RegistryCommand;
use report::ReportArgs;
use resolve::ResolveArgs;
use status::StatusArgs;

/// The subcommands, in the order `relais --help` lists them.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: consume alerts and email the référents.
    Run,
    /// Check the settings and the registry, and summarise them.
    Check(CheckArgs),
    /// Show who would receive an alert of a kind about a territory.
    Resolve(ResolveArgs),
    /// What the registry covers of France: per network, the communes and
    /// population served at each level, and the gaps per département.
    Coverage(CoverageArgs),
    /// The registry file before it is live: what a change would do.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// The absences in force or to come: the registry's, and those the
    /// référents declared on their page.
    Absences(AbsencesArgs),
    /// Publish an alert the way the dispatch software does (smoke tests).
    Publish(PublishArgs),
    /// Show who was emailed about an alert, or every delivery since a time.
    Audit(AuditArgs),
    /// Read one bounce on standard input (for the mail server's pipe):
    /// a mailbox that refused an alert for good sends it on.
    Bounce(BounceArgs),
    /// The alerts awaiting acknowledgement: who has them, since when, the
    /// next step of their escalation.
    Pending(PendingArgs),
    /// The convention's yearly report: per association (or network,
    /// département, kind, month), the alerts received, delivered,
    /// acknowledged and how fast, escalated, and what became of them.
    Report(ReportArgs),
    /// One screen on the queues: exit 2 when dead letters wait.
    Status(StatusArgs),
    /// Look at, replay or purge the dead letters.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
    /// Look at, or purge of acknowledged alerts, the escalation queues.
    #[command(subcommand)]
    Escalations(EscalationsCommand),
}

/// Runs the subcommand with the settings file `config`; errors are
/// printed, and become exit code 1.
pub async fn dispatch(config: Option<&Path>, command: Command) -> ExitCode {
    let result = match command {
        Command::Run => run::run(config).await,
        Command::Check(args) => check::check(config, &args),
        Command::Resolve(args) => resolve::resolve(config, &args).await,
        Command::Coverage(args) => coverage::coverage(config, &args).await,
        Command::Registry(command) => return registry::registry(config, command).await,
        Command::Absences(args) => absences::absences(config, &args).await,
        Command::Publish(args) => publish::publish(config, &args).await,
        Command::Audit(args) => audit::audit(config, &args).await,
        Command::Bounce(args) => return bounce::bounce(config, &args).await,
        Command::Pending(args) => pending::pending(config, &args).await,
        Command::Report(args) => report::report(config, &args).await,
        Command::Status(args) => return status::status(config, args.json).await,
        Command::DeadLetters(command) => dead_letters::dead_letters(config, command).await,
        Command::Escalations(command) => escalations::escalations(config, command).await,
    };
    exit_code(result)
}

/// A command's result as its exit code: an error is printed, and becomes
/// exit code 1.
fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("relais: {}", crate::telemetry::causes(&error));
            ExitCode::FAILURE
        }
    }
}

/// The official geography the settings name.
fn load_geography(settings: &Settings) -> anyhow::Result<Arc<Geography>> {
    Ok(Arc::new(settings.territories.geography()?))
}

/// Connects to the broker for an operator's command.
async fn connect(settings: &Settings) -> anyhow::Result<Connection> {
    crate::amqp::connect(&settings.amqp, "relais (operator)").await
}

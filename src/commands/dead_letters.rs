//! `relais dead-letters list|replay|purge`: the operators' hands on
//! `<queue>.dead`. Every command is recorded in the operations log (a
//! command that cannot be recorded is not done), and a purge only shows
//! what it would delete until `--yes` confirms it: dead letters hold health
//! data, and a purged one is gone for good.

use std::path::Path;

use anyhow::bail;
use clap::{Args, Subcommand};

use super::output::printable;
use super::trace::Trace;
use crate::amqp::Topology;
use crate::amqp::dead_letters::{self, DeadLetter, Selection};
use crate::outcome::Reason;
use crate::settings::Settings;

/// What `relais dead-letters` does with `<queue>.dead`.
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

/// Which dead letters `relais dead-letters purge` deletes, and whether
/// for good.
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

/// Which dead letters `relais dead-letters replay` sends back.
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

/// `relais dead-letters list|replay|purge`.
pub(super) async fn dead_letters(
    config: Option<&Path>,
    command: DeadLettersCommand,
) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let trace = Trace::open(&settings).await?;
    let topology = Topology::new(&settings);
    let connection = super::connect(&settings).await?;
    let login = settings.amqp.login();
    let login = login.as_deref();
    let result = match command {
        DeadLettersCommand::List { limit, json } => {
            let letters = dead_letters::list(&connection, &topology, limit, login).await?;
            trace.done("dead-letters list", letters.len()).await?;
            if json {
                println!("{}", serde_json::to_string(&letters)?);
            } else {
                print_letters(&letters);
            }
            Ok(())
        }
        DeadLettersCommand::Replay(args) => {
            let (selection, which) = match (args.all, args.id, args.reason) {
                (true, _, _) => (Selection::All, "--all".to_owned()),
                (_, Some(id), _) => (Selection::Id(id.clone()), format!("--id {id}")),
                (_, _, Some(reason)) => (Selection::Reason(reason), format!("--reason {reason}")),
                _ => bail!("give --all, --id ID or --reason REASON"),
            };
            let replayed = dead_letters::replay(
                &connection,
                &topology,
                &selection,
                settings.amqp.confirm_timeout,
                login,
            )
            .await?;
            trace
                .done(
                    &format!("dead-letters replay {which}"),
                    replayed.taken.len(),
                )
                .await?;
            print_letters(&replayed.taken);
            println!(
                "replayed {} dead letter(s) to {}; {} left in {}",
                replayed.taken.len(),
                topology.queue,
                replayed.left,
                topology.dead
            );
            Ok(())
        }
        DeadLettersCommand::Purge(args) => {
            let (selection, which, option) = match (args.id, args.older_than) {
                (Some(id), _) => (
                    Selection::Id(id.clone()),
                    format!("of alert {id}"),
                    format!("--id {id}"),
                ),
                (None, Some(age)) => (
                    Selection::OlderThan(age),
                    format!("older than {}", humantime::format_duration(age)),
                    format!("--older-than {}", humantime::format_duration(age)),
                ),
                (None, None) => bail!("give --id ID or --older-than DURATION"),
            };
            if args.yes {
                let purged = dead_letters::purge(&connection, &topology, &selection, login).await?;
                trace
                    .done(
                        &format!("dead-letters purge {option} --yes"),
                        purged.taken.len(),
                    )
                    .await?;
                print_letters(&purged.taken);
                println!("purged {} dead letter(s) {which}", purged.taken.len());
                Ok(())
            } else {
                let letters = dead_letters::list(&connection, &topology, usize::MAX, login).await?;
                let chosen: Vec<DeadLetter> = letters
                    .into_iter()
                    .filter(|letter| selection.takes(letter))
                    .collect();
                trace
                    .done(&format!("dead-letters purge {option}"), chosen.len())
                    .await?;
                print_letters(&chosen);
                Err(anyhow::anyhow!(
                    "{} dead letter(s) {which} would be deleted for good; run again with --yes to do it",
                    chosen.len()
                ))
            }
        }
    };
    let _ = connection.close(200, "done".into()).await;
    result
}

fn print_letters(letters: &[DeadLetter]) {
    for letter in letters {
        println!(
            "{}\t{}\t{}\t{}\tattempts={}\t{}\t{}",
            printable(&letter.alert_id),
            printable(&letter.kind),
            printable(&letter.territory),
            printable(&letter.reason),
            letter
                .attempts
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
            printable(letter.failed_at.as_deref().unwrap_or("-")),
            printable(&letter.error)
        );
    }
}

//! `relais status`: the queues on one screen, the oldest dead letter's age
//! and, with a PostgreSQL store, which relais is active; its exit code is
//! the check (2 when dead letters wait, 1 when the broker is unreachable).
//! It only looks (the oldest dead letter is read and given back): nothing
//! is moved or recorded.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use time::format_description::well_known::Rfc3339;

use super::output::printable;
use crate::amqp::Topology;
use crate::amqp::dead_letters::{self, DeadLetter};
use crate::settings::Settings;

/// How `relais status` prints.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// `relais status`: the queues on one screen. Exit 2 when dead letters
/// wait (for cron and Nagios-style checks), 1 when the broker is unreachable.
pub(super) async fn status(config: Option<&Path>, json: bool) -> ExitCode {
    let report = async {
        let settings = Settings::load(config)?;
        let topology = Topology::new(&settings);
        let connection = super::connect(&settings).await?;
        let queues = topology.inspect(&connection).await?;
        let oldest =
            dead_letters::list(&connection, &topology, 1, settings.amqp.login().as_deref())
                .await?
                .into_iter()
                .next();
        let _ = connection.close(200, "status".into()).await;
        let active = active_instance(&settings).await;
        anyhow::Ok((settings, topology, queues, oldest, active))
    };
    let (settings, topology, queues, oldest, active) = match report.await {
        Ok(report) => report,
        Err(error) => {
            eprintln!("relais: {}", crate::telemetry::causes(&error));
            return ExitCode::FAILURE;
        }
    };
    let dead = queues
        .iter()
        .find(|queue| queue.name == topology.dead)
        .and_then(|queue| queue.messages)
        .unwrap_or(0);
    let oldest_age = oldest
        .as_ref()
        .and_then(DeadLetter::age)
        .map(|age| age.whole_seconds().max(0));
    if json {
        let value = serde_json::json!({
            "broker": { "url": settings.amqp.redacted_url(), "reachable": true },
            "active": active,
            "queues": queues,
            "dead_letters": dead,
            "oldest_dead_letter_age_seconds": oldest_age,
        });
        println!("{value}");
    } else {
        println!("broker: {} (reachable)", settings.amqp.redacted_url());
        if let Some(active) = &active {
            println!("{active}");
        }
        println!("{:<48} {:>9} {:>10}", "queue", "messages", "consumers");
        for queue in &queues {
            let count = |n: Option<u32>| n.map_or_else(|| "missing".to_owned(), |n| n.to_string());
            println!(
                "{:<48} {:>9} {:>10}",
                queue.name,
                count(queue.messages),
                count(queue.consumers)
            );
        }
        match oldest_age {
            Some(age) => println!(
                "oldest dead letter: {} ago",
                humantime::format_duration(std::time::Duration::from_secs(age.unsigned_abs()))
            ),
            None if dead > 0 => println!("oldest dead letter: age unknown"),
            None => println!("no dead letter"),
        }
    }
    if dead > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// With a PostgreSQL store, which relais is active: the holder of the
/// queue's lease (`relais on <host> (pid <n>)`).
async fn active_instance(settings: &Settings) -> Option<String> {
    settings.store.url.as_ref()?;
    Some(
        match crate::standby::lease_holder(&settings.store, &settings.amqp.queue).await {
            Ok(Some((name, since))) => format!(
                "active: {} (active since {}); any other relais of this queue is standby",
                printable(&name),
                since.format(&Rfc3339).unwrap_or_default()
            ),
            Ok(None) => "active: none (no relais holds the lease of this queue)".to_owned(),
            Err(error) => format!("active: unknown ({error})"),
        },
    )
}

//! `relais escalations list|purge`: the operators' hands on the escalation
//! queues (`<queue>.escalation.<wait>`), where a copy of each delivered
//! alert, content and all, waits for the next step of its escalation, up
//! to three waits, acknowledged or not.
//!
//! The broker cannot take one given message out of a queue, and a copy
//! must keep the alert's content for its step to write its email: the
//! copies cannot be emptied in place. A purge takes each copy once and
//! removes those of alerts acknowledged in every network they were emailed
//! to (their chain will email nobody); every other goes back as it was, its
//! wait and its place kept. It only shows what it would remove until
//! `--yes` confirms it. Every command is recorded in the operations log (a
//! command that cannot be recorded is not done). It never shows a copy's
//! content, and never emails: what a removed copy would have done is
//! nothing.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use lapin::message::BasicGetMessage;
use lapin::options::BasicAckOptions;
use lapin::protocol::AMQPSoftError;
use lapin::{Connection, Error as BrokerError};
use serde::Serialize;
use time::OffsetDateTime;

use super::output::{printable, step_name};
use super::trace::Trace;
use crate::alert::AlertId;
use crate::amqp::Topology;
use crate::amqp::dead_letters::Pass;
use crate::amqp::headers;
use crate::amqp::topology::soft_error;
use crate::registry::Registry;
use crate::settings::Settings;
use crate::store::{AlertKey, AuditReader, OperationLog, Store, StoreError};

/// What `relais escalations` does with the escalation queues.
#[derive(Debug, Subcommand)]
pub enum EscalationsCommand {
    /// Per escalation queue: how many copies wait, and how long the oldest
    /// has waited (never their content).
    List {
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Remove the copies of alerts acknowledged in every network they were
    /// emailed to (they hold health data their chain no longer needs).
    Purge(PurgeArgs),
}

/// Which copies `relais escalations purge` removes, and whether for good.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The copies of alerts acknowledged in every network they were
    /// emailed to (the only ones a purge may remove).
    #[arg(long, required = true)]
    pub acknowledged: bool,
    /// Confirm the removal (without it, only show what would go).
    #[arg(long)]
    pub yes: bool,
}

/// One escalation queue as operators see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EscalationQueue {
    pub queue: String,
    /// Its wait, e.g. `12h`.
    pub wait: String,
    /// Copies waiting; `None` when the queue was never declared (no alert
    /// escalated with this wait yet).
    pub messages: Option<u32>,
    /// How long the oldest copy has waited, in seconds, when the store
    /// knows when its step was scheduled.
    pub oldest_seconds: Option<u64>,
}

/// What operators see of one copy: the alert's id, its step, its queue.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WaitingCopy {
    queue: String,
    alert_id: String,
    step: u8,
}

/// `relais escalations list|purge`.
pub(super) async fn escalations(
    config: Option<&Path>,
    command: EscalationsCommand,
) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let trace = Trace::open(&settings).await?;
    let queues = escalation_queues(&settings)?;
    let store = AuditReader::open(&settings.store).await?;
    let connection = super::connect(&settings).await?;
    let login = settings.amqp.login();
    let login = login.as_deref();
    let result = match command {
        EscalationsCommand::List { json } => {
            let listed = list(&connection, &store, &queues, login).await?;
            let waiting: u32 = listed.iter().filter_map(|queue| queue.messages).sum();
            trace
                .done("escalations list", usize::try_from(waiting)?)
                .await?;
            if json {
                println!("{}", serde_json::json!({ "queues": listed }));
            } else {
                print_queues(&listed);
            }
            Ok(())
        }
        EscalationsCommand::Purge(PurgeArgs { yes, .. }) => {
            let remove = yes.then(|| trace.log());
            let swept = sweep(&connection, &store, &queues, login, remove).await?;
            let command = if yes {
                "escalations purge --acknowledged --yes"
            } else {
                "escalations purge --acknowledged"
            };
            trace.done(command, swept.acknowledged.len()).await?;
            print_copies(&swept.acknowledged);
            if yes {
                println!(
                    "purged {} escalation cop(ies) of acknowledged alerts; {} kept",
                    swept.acknowledged.len(),
                    swept.kept
                );
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "{} escalation cop(ies) of acknowledged alerts would be removed for good \
                     ({} kept); run again with --yes to do it",
                    swept.acknowledged.len(),
                    swept.kept
                ))
            }
        }
    };
    let _ = connection.close(200, "done".into()).await;
    result
}

/// The escalation queues of the registry's waits (each route's
/// `escalate_after`, either priority), shortest wait first.
fn escalation_queues(settings: &Settings) -> anyhow::Result<Vec<(String, Duration)>> {
    let geography = super::load_geography(settings)?;
    let registry = Registry::load(&settings.registry.path, &geography)?;
    let mut waits: Vec<Duration> = registry
        .summary()
        .routes
        .iter()
        .filter_map(|(kind, _)| registry.route_escalation(kind))
        .flat_map(|escalate| [escalate.urgent, escalate.normal])
        .flatten()
        .collect();
    // Steps that wait for an office to open go through the hops' queues.
    if registry.has_opening_hours() {
        waits.extend(crate::registry::HOPS);
    }
    waits.sort_unstable();
    waits.dedup();
    let topology = Topology::new(settings);
    Ok(waits
        .into_iter()
        .map(|wait| (topology.escalation_queue(wait).0, wait))
        .collect())
}

/// Each escalation queue's depth, and how long its oldest copy (the first
/// in line) has waited. The copy looked at goes back as it was.
async fn list(
    connection: &Connection,
    store: &Store,
    queues: &[(String, Duration)],
    login: Option<&str>,
) -> anyhow::Result<Vec<EscalationQueue>> {
    let mut listed = Vec::with_capacity(queues.len());
    for (queue, wait) in queues {
        let mut shown = EscalationQueue {
            queue: queue.clone(),
            wait: humantime::format_duration(*wait).to_string(),
            messages: None,
            oldest_seconds: None,
        };
        let Some(mut pass) = open(connection, queue, login).await? else {
            listed.push(shown);
            continue;
        };
        shown.messages = Some(pass.remaining());
        let first = pass.next().await;
        pass.close().await?;
        if let Some(message) = first? {
            shown.oldest_seconds = waited(store, &message, *wait, login).await?;
        }
        listed.push(shown);
    }
    Ok(listed)
}

/// A pass over `queue`, or `None` when the broker has no such queue.
async fn open(
    connection: &Connection,
    queue: &str,
    login: Option<&str>,
) -> Result<Option<Pass>, BrokerError> {
    match Pass::open(connection, queue, login).await {
        Ok(pass) => Ok(Some(pass)),
        Err(error) if soft_error(&error, AMQPSoftError::NOTFOUND).is_some() => Ok(None),
        Err(error) => Err(error),
    }
}

/// How long the copy `message` has waited in a queue of wait `wait`: its
/// step was due `wait` after it was scheduled, as the store recorded.
async fn waited(
    store: &Store,
    message: &BasicGetMessage,
    wait: Duration,
    login: Option<&str>,
) -> Result<Option<u64>, StoreError> {
    let properties = &message.delivery.properties;
    let (Some(id), Some(step)) = (
        alert_id(&message.delivery.data),
        headers::escalation(properties, login),
    ) else {
        return Ok(None);
    };
    let publisher = headers::publisher(properties, login).unwrap_or_default();
    let key = AlertKey {
        publisher: &publisher,
        id: id.as_str(),
    };
    let steps = store.escalation(key).await?;
    let Some(due_at) = steps.iter().find(|s| s.step == step).map(|s| s.due_at) else {
        return Ok(None);
    };
    let left = (due_at - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
    let waited = time::Duration::try_from(wait).unwrap_or(time::Duration::MAX) - left;
    Ok(Some(waited.whole_seconds().max(0).unsigned_abs()))
}

/// What a purge found.
#[derive(Debug, Default)]
struct Swept {
    /// The copies of acknowledged alerts: removed, or (without `--yes`)
    /// to be.
    acknowledged: Vec<WaitingCopy>,
    /// The copies put back.
    kept: usize,
}

/// Takes each copy of the escalation queues once; those of alerts
/// acknowledged in every network they were emailed to are removed when
/// `remove` is given (their steps recorded as over in it), every other
/// goes back as it was.
///
/// # Errors
/// When the broker or the store fails; what was removed is gone, the rest
/// goes back.
async fn sweep(
    connection: &Connection,
    store: &Store,
    queues: &[(String, Duration)],
    login: Option<&str>,
    remove: Option<&OperationLog>,
) -> anyhow::Result<Swept> {
    let mut swept = Swept::default();
    for (queue, _) in queues {
        let Some(mut pass) = open(connection, queue, login).await? else {
            continue;
        };
        let walked = walk(&mut pass, queue, store, login, remove, &mut swept).await;
        pass.close().await?;
        walked?;
    }
    Ok(swept)
}

/// One queue's part of [`sweep`].
async fn walk(
    pass: &mut Pass,
    queue: &str,
    store: &Store,
    login: Option<&str>,
    remove: Option<&OperationLog>,
    swept: &mut Swept,
) -> anyhow::Result<()> {
    while let Some(message) = pass.next().await? {
        let properties = &message.delivery.properties;
        let copy = alert_id(&message.delivery.data)
            .zip(headers::escalation(properties, login))
            .map(|(id, step)| WaitingCopy {
                queue: queue.to_owned(),
                alert_id: id.to_string(),
                step,
            });
        let publisher = headers::publisher(properties, login).unwrap_or_default();
        let done = match &copy {
            Some(copy) => chain_done(store, &publisher, &copy.alert_id).await?,
            None => false,
        };
        match copy {
            Some(copy) if done => {
                if let Some(log) = remove {
                    message
                        .delivery
                        .acker
                        .ack(BasicAckOptions::default())
                        .await
                        .context("cannot remove an escalation copy")?;
                    let key = AlertKey {
                        publisher: &publisher,
                        id: &copy.alert_id,
                    };
                    log.escalation_purged(key, copy.step)
                        .await
                        .context("the copy was removed, but its step could not be recorded")?;
                }
                swept.acknowledged.push(copy);
            }
            _ => swept.kept += 1,
        }
    }
    Ok(())
}

/// Whether the chain of alert `id` of `publisher` needs its copies no
/// more: the store knows which networks it was emailed to, and each of
/// them acknowledged it. An alert the store knows no email of (or one of
/// no network) is not known to be done.
async fn chain_done(store: &Store, publisher: &str, id: &str) -> Result<bool, StoreError> {
    let Ok(alert) = AlertId::parse(id) else {
        return Ok(false);
    };
    let mut networks: Vec<String> = Vec::new();
    for email in store.alert(&alert).await? {
        if email.publisher != publisher && !email.publisher.is_empty() {
            continue;
        }
        let Some(network) = email.network else {
            return Ok(false);
        };
        networks.push(network);
    }
    if networks.is_empty() {
        return Ok(false);
    }
    let key = AlertKey { publisher, id };
    let acknowledged = store.acknowledged_networks(key).await?;
    Ok(networks
        .iter()
        .all(|network| acknowledged.contains(network)))
}

/// The alert id of a copy's body, when it is one (the copy is the alert
/// as published; nothing else of it is read).
fn alert_id(body: &[u8]) -> Option<AlertId> {
    let body: serde_json::Value = serde_json::from_slice(body).ok()?;
    AlertId::parse(body.get("id")?.as_str()?).ok()
}

fn print_queues(queues: &[EscalationQueue]) {
    for queue in queues {
        let messages = queue
            .messages
            .map_or_else(|| "not declared".to_owned(), |n| format!("{n} waiting"));
        let oldest = queue.oldest_seconds.map_or_else(
            || "-".to_owned(),
            |seconds| humantime::format_duration(Duration::from_secs(seconds)).to_string(),
        );
        println!("{}	{messages}	oldest={oldest}", queue.queue);
    }
}

fn print_copies(copies: &[WaitingCopy]) {
    for copy in copies {
        println!(
            "{}	{}	{}",
            copy.queue,
            printable(&copy.alert_id),
            step_name(copy.step)
        );
    }
}

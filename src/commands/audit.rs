//! `relais audit`: the store's trail, read back: who was emailed about an
//! alert (and who acknowledged it, what they did about it, and its
//! escalation), every delivery
//! since a time, or the operators' own commands. Each reading is itself
//! recorded in the operations log before anything is printed; the trail is
//! never changed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, bail};
use clap::Args;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::output::{printable, step_name};
use super::trace::Trace;
use crate::alert::AlertId;
use crate::registry::short_digest;
use crate::settings::Settings;
use crate::store::AuditReader;

/// What `relais audit` reads back: one alert, a span of time, or the
/// operators' commands.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).multiple(true))]
pub struct AuditArgs {
    /// An alert id: who was emailed about it, and when; who acknowledged
    /// it, what they did about it, and its escalation.
    #[arg(long, group = "which", value_name = "ID", conflicts_with_all = ["since", "operations"])]
    pub alert: Option<String>,
    /// Every delivery (or, with --operations, every operator command) in
    /// this last span of time, e.g. 24h or 7d.
    #[arg(long, group = "which", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub since: Option<std::time::Duration>,
    /// The operators' commands on the dead letters, the escalation copies
    /// and the audit trail: when, which Unix user, what, how many.
    #[arg(long, group = "which")]
    pub operations: bool,
}

/// `relais audit`: deliveries from the store, one line each, oldest first:
/// time, alert id, référent id, address, Message-ID, the server's reply,
/// what the alert said of consent; or, with `--operations`, the operators'
/// commands.
pub(super) async fn audit(config: Option<&Path>, args: &AuditArgs) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let trace = Trace::open(&settings).await?;
    let reader = AuditReader::open(&settings.store).await?;
    let since = args
        .since
        .map(|since| {
            let since = time::Duration::try_from(since).context("--since is too long")?;
            anyhow::Ok(OffsetDateTime::now_utc() - since)
        })
        .transpose()?;
    if args.operations {
        let operations = reader.operations(since).await?;
        trace
            .done(&operations_command(args), operations.len())
            .await?;
        for operation in &operations {
            println!(
                "{}	{}	{}	{}",
                operation.recorded_at.format(&Rfc3339).unwrap_or_default(),
                printable(&operation.unix_user),
                printable(&operation.command),
                operation.count
            );
        }
        if operations.is_empty() {
            eprintln!("no operation recorded");
        }
        return Ok(());
    }
    let mut acknowledged = Vec::new();
    let mut follow_ups = Vec::new();
    let mut escalation = Vec::new();
    let mut bounces = Vec::new();
    let (deliveries, command) = match (&args.alert, since) {
        (Some(id), _) => {
            let id = AlertId::parse(id).map_err(|problem| anyhow::anyhow!("--alert {problem}"))?;
            acknowledged = reader.acknowledgements(&id).await?;
            follow_ups = reader.follow_ups(&id).await?;
            escalation = reader.escalations(&id).await?;
            bounces = reader.bounces_of(id.as_str()).await?;
            (reader.alert(&id).await?, format!("audit --alert {id}"))
        }
        (None, Some(since)) => (reader.since(since).await?, operations_command(args)),
        (None, None) => bail!("give --alert ID, --since DURATION or --operations"),
    };
    trace.done(&command, deliveries.len()).await?;
    // Each registry's version label, once.
    let versions: BTreeMap<String, Option<String>> = reader
        .registry_versions()
        .await?
        .into_iter()
        .map(|kept| (kept.digest, kept.version))
        .collect();
    let registry = |digest: Option<&str>| match digest {
        // Recorded before relais kept it: not known.
        None => "registry unknown".to_owned(),
        Some(digest) => match versions.get(digest) {
            Some(Some(version)) => {
                format!("registry {} ({})", short_digest(digest), printable(version))
            }
            _ => format!("registry {}", short_digest(digest)),
        },
    };
    for delivery in &deliveries {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\tconsent {}\t{}{}",
            delivery.delivered_at.format(&Rfc3339).unwrap_or_default(),
            printable(&delivery.alert_id),
            printable(&delivery.referent_id),
            printable(&delivery.email),
            printable(&delivery.message_id),
            printable(&delivery.smtp_reply),
            // Recorded before relais kept it: not known.
            printable(delivery.consent.as_deref().unwrap_or("unknown")),
            registry(delivery.registry.as_deref()),
            of_publisher(&delivery.publisher)
        );
    }
    for (referent, at) in &acknowledged {
        println!(
            "{}\t{}\t{}\tacknowledged",
            at.format(&Rfc3339).unwrap_or_default(),
            printable(args.alert.as_deref().unwrap_or_default()),
            printable(referent)
        );
    }
    for follow_up in &follow_ups {
        println!(
            "{}\t{}\t{}\tfollowed_up {}{}",
            follow_up.recorded_at.format(&Rfc3339).unwrap_or_default(),
            printable(&follow_up.alert_id),
            printable(&follow_up.referent_id),
            follow_up.follow_up.code(),
            of_publisher(&follow_up.publisher)
        );
    }
    for (publisher, step) in &escalation {
        let (at, state) = match step.done_at {
            Some(done) => (done, "escalation"),
            None => (step.due_at, "escalation due"),
        };
        println!(
            "{}\t{}\t{}\t{state}{}",
            at.format(&Rfc3339).unwrap_or_default(),
            printable(args.alert.as_deref().unwrap_or_default()),
            step_name(step.step),
            of_publisher(publisher)
        );
    }
    for bounce in &bounces {
        println!(
            "{}\t{}\t{}\tbounced {} {}{}{}",
            bounce.received_at.format(&Rfc3339).unwrap_or_default(),
            printable(&bounce.email.alert_id),
            printable(&bounce.email.referent_id),
            bounce.action.as_str(),
            printable(&bounce.status),
            match bounce.acted_at {
                Some(at) => format!(", sent on {}", at.format(&Rfc3339).unwrap_or_default()),
                None => String::new(),
            },
            of_publisher(&bounce.email.publisher)
        );
    }
    if deliveries.is_empty() {
        eprintln!("no delivery recorded");
    }
    Ok(())
}

/// The command line of an `audit` without `--alert`, as recorded.
fn operations_command(args: &AuditArgs) -> String {
    let mut command = String::from("audit");
    if let Some(since) = args.since {
        let _ = write!(command, " --since {}", humantime::format_duration(since));
    }
    if args.operations {
        command.push_str(" --operations");
    }
    command
}

/// The last column of a line about a publisher's alert: two publishers may
/// use one id. Nothing for an alert of no known publisher.
fn of_publisher(publisher: &str) -> String {
    if publisher.is_empty() {
        String::new()
    } else {
        format!("\tpublisher {}", printable(publisher))
    }
}

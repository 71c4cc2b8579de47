//! `relais pending`: the alerts emailed within `ack.link_ttl` that a
//! network has not acknowledged, for people or as one JSON document. The
//! reading is recorded in the operations log; nothing is acknowledged or
//! escalated from here.

use std::path::Path;

use anyhow::bail;
use clap::Args;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::output::{printable, step_name};
use super::trace::Trace;
use crate::settings::Settings;
use crate::store::{AuditReader, EscalationStep};

/// How `relais pending` prints.
#[derive(Debug, Args)]
pub struct PendingArgs {
    /// One JSON document, for scripts and monitoring.
    #[arg(long)]
    pub json: bool,
}

/// `relais pending`: the alerts emailed within `ack.link_ttl` that a
/// network has not acknowledged, oldest first: per network, who has it,
/// since when, and the next step of its escalation.
pub(super) async fn pending(config: Option<&Path>, args: &PendingArgs) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    if !settings.ack.enabled() {
        bail!("acknowledgements are off (ack.listen is empty): nothing is awaited");
    }
    let trace = Trace::open(&settings).await?;
    let reader = AuditReader::open(&settings.store).await?;
    let since = OffsetDateTime::now_utc() - settings.ack.link_ttl;
    let pending = reader.pending(since).await?;
    let command = if args.json {
        "pending --json"
    } else {
        "pending"
    };
    trace.done(command, pending.len()).await?;
    let rfc3339 = |at: OffsetDateTime| at.format(&Rfc3339).unwrap_or_default();
    if args.json {
        let alerts: Vec<serde_json::Value> = pending
            .iter()
            .map(|p| {
                serde_json::json!({
                    "alert_id": p.alert_id,
                    "network": p.network,
                    "referents": p.referents,
                    "since": rfc3339(p.since),
                    "next_escalation": p.next.map(|next| serde_json::json!({
                        "step": step_name(next.step),
                        "at": rfc3339(next.due_at),
                    })),
                    "unacknowledged_at": p.unacknowledged_at.map(rfc3339),
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "pending": alerts }));
        return Ok(());
    }
    if pending.is_empty() {
        println!("no alert awaits an acknowledgement");
        return Ok(());
    }
    println!("SINCE	ALERT	NETWORK	RÉFÉRENTS	NEXT");
    for alert in &pending {
        let next = match (alert.next, alert.unacknowledged_at) {
            (_, Some(at)) => format!("unacknowledged since {}", rfc3339(at)),
            (Some(EscalationStep { step, due_at, .. }), None) => {
                format!("{} at {}", step_name(step), rfc3339(due_at))
            }
            (None, None) => "-".to_owned(),
        };
        println!(
            "{}	{}	{}	{}	{}",
            rfc3339(alert.since),
            printable(&alert.alert_id),
            printable(&alert.network),
            printable(&alert.referents.join(",")),
            next
        );
    }
    Ok(())
}

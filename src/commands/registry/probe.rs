//! `relais registry probe`: proves référents' addresses before an alert
//! needs them. It sends each a test email clearly marked as such
//! ("Message de test de relais — aucune action demandée"), through the
//! mail server the settings name, and says which the server refused;
//! with the acknowledgement pages served, the email's link lets the office
//! confirm receipt, and `--status` lists who has not. Which référents:
//! those named (`--referent`), or those whose address a new registry adds
//! or changes (`--changed-from OLD`).
//!
//! Each probe is recorded in the store, and the command in the operations
//! log. A probe names an address and a référent: never an alert.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use ring::rand::SecureRandom as _;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::super::output::printable;
use super::super::trace::Trace;
use super::RegistryFile;
use crate::fence::Fence;
use crate::health::Health;
use crate::mail::Mailer;
use crate::mail::render::probe::probe as render_probe;
use crate::registry::{Referent, Registry};
use crate::settings::{Settings, SettingsError};
use crate::store::Probe;

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// A référent to probe (again for several).
    #[arg(long = "referent", value_name = "ID")]
    pub referents: Vec<String>,
    /// Probe the référents whose address is new or changed since this
    /// registry file (the one in force before a change).
    #[arg(long, value_name = "OLD", conflicts_with = "referents")]
    pub changed_from: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryFile,
    /// List the last probe of each address: refused, confirmed or not.
    #[arg(long, conflicts_with_all = ["referents", "changed_from"])]
    pub status: bool,
}

pub(super) async fn probe(config: Option<&Path>, args: &ProbeArgs) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    if args.status {
        return status(&settings).await;
    }
    let geography = super::super::load_geography(&settings)?;
    let registry = Registry::load(args.registry.path(&settings), &geography)?;
    let targets: Vec<&Referent> = match &args.changed_from {
        Some(old) => changed(&Registry::load(old, &geography)?, &registry),
        None if args.referents.is_empty() => anyhow::bail!(
            "say whom to probe: --referent ID (one or more), or --changed-from OLD_REGISTRY"
        ),
        None => args
            .referents
            .iter()
            .map(|id| {
                registry
                    .referent(id)
                    .ok_or_else(|| anyhow::anyhow!("the registry names no référent {id:?}"))
            })
            .collect::<anyhow::Result<_>>()?,
    };
    if targets.is_empty() {
        println!("no address to probe: the registry adds or changes none");
        return Ok(());
    }
    let from = settings.smtp.sender().map_err(anyhow::Error::msg)?;
    let outbound = settings.smtp.outbound().map_err(SettingsError::Invalid)?;
    let mailer = Mailer::new(&outbound, Arc::new(Health::default()), Fence::open())?;
    let trace = Trace::open(&settings).await?;
    let public = settings
        .ack
        .enabled()
        .then(|| settings.ack.public_url.trim_end_matches('/'));
    let mut refused = 0;
    for referent in &targets {
        let token = token()?;
        let link = public.map(|public| format!("{public}/probe/{token}"));
        let email = render_probe(&from, referent, &token, link.as_deref())?;
        let (failed, reply) = match mailer.send(&email).await {
            Ok(accepted) => (false, accepted.reply),
            Err(error) => (true, error.to_string()),
        };
        refused += usize::from(failed);
        println!(
            "{}\t{}\t{}\t{}",
            referent.id(),
            referent.email(),
            if failed { "refused" } else { "accepted" },
            printable(&reply)
        );
        let probe = Probe {
            token,
            referent_id: referent.id().to_string(),
            email: referent.email().to_string(),
            sent_at: OffsetDateTime::now_utc(),
            refused: failed,
            reply,
            confirmed_at: None,
        };
        trace.log().store().probe_sent(&probe).await?;
    }
    mailer.close().await;
    trace.done("registry probe", targets.len()).await?;
    if public.is_some() {
        eprintln!(
            "# each office can confirm receipt from the email's link: relais registry probe --status"
        );
    }
    if refused > 0 {
        anyhow::bail!(
            "{refused} of {} address(es) could not be reached: correct them in the registry, \
             then probe them again",
            targets.len()
        );
    }
    Ok(())
}

/// The référents of `new` whose address `old` does not have for them (new
/// référents, and changed addresses), in registry order.
fn changed<'a>(old: &Registry, new: &'a Registry) -> Vec<&'a Referent> {
    let before: HashMap<&str, String> = old
        .referents()
        .iter()
        .map(|referent| (referent.id().as_str(), referent.email().to_string()))
        .collect();
    new.referents()
        .iter()
        .filter(|referent| {
            before.get(referent.id().as_str()) != Some(&referent.email().to_string())
        })
        .collect()
}

/// A probe's token: 128 random bits, in hexadecimal.
fn token() -> anyhow::Result<String> {
    let mut bytes = [0_u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no randomness to make a probe's token"))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// `--status`: the last probe of each address.
async fn status(settings: &Settings) -> anyhow::Result<()> {
    let trace = Trace::open(settings).await?;
    let probes = trace.log().store().last_probes().await?;
    trace.done("registry probe --status", probes.len()).await?;
    if probes.is_empty() {
        println!("no address was probed");
        return Ok(());
    }
    let mut waiting = 0;
    for probe in &probes {
        let state = match (probe.refused, probe.confirmed_at) {
            (true, _) => format!("refused: {}", printable(&probe.reply)),
            (false, Some(at)) => format!("confirmed {}", at.format(&Rfc3339).unwrap_or_default()),
            (false, None) => {
                waiting += 1;
                "not confirmed".to_owned()
            }
        };
        println!(
            "{}\t{}\t{}\t{state}",
            probe.sent_at.format(&Rfc3339).unwrap_or_default(),
            printable(&probe.referent_id),
            printable(&probe.email),
        );
    }
    eprintln!(
        "# {waiting} of {} address(es) not confirmed yet",
        probes.len()
    );
    Ok(())
}

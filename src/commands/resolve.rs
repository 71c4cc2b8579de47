//! `relais resolve`: who would receive an alert of a kind about a
//! territory, at an instant, as the relay would resolve it, with why on
//! standard error (the place, the level, a deputy standing in, a gap). It
//! reads the settings, the registry and the absences the référents
//! declared (from the store, when there is one), and never sends anything.

use std::path::Path;

use clap::Args;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::registry::RegistryFile;
use crate::alert::{Kind, Priority};
use crate::availability::paris_date;
use crate::registry::Registry;
use crate::settings::Settings;
use crate::territory::TerritoryError;

/// What `relais resolve` is asked: a kind, a territory, an instant.
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
    /// for the référents' absences (the registry's, and those declared by
    /// then); now by default.
    #[arg(long, value_name = "INSTANT")]
    pub at: Option<String>,
    #[command(flatten)]
    pub registry: RegistryFile,
}

/// `relais resolve`: who would receive an alert, one `<id> <email>` line each.
pub(super) async fn resolve(config: Option<&Path>, args: &ResolveArgs) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let geography = super::load_geography(&settings)?;
    let registry = Registry::load(args.registry.path(&settings), &geography)?;
    let kind = Kind::parse(&args.kind).map_err(|problem| anyhow::anyhow!("--kind {problem}"))?;
    let territory = geography
        .territory(args.commune.as_deref(), args.departement.as_deref())
        .map_err(|error| match error {
            TerritoryError::Departement => anyhow::anyhow!("--departement {error}"),
            TerritoryError::Missing | TerritoryError::Mismatch { .. } => anyhow::anyhow!("{error}"),
            _ => anyhow::anyhow!("--commune {error}"),
        })?;
    let at = match &args.at {
        Some(at) => OffsetDateTime::parse(at, &Rfc3339).map_err(|_| {
            anyhow::anyhow!("--at must be an RFC 3339 instant, e.g. 2026-12-25T10:00:00+01:00")
        })?,
        None => OffsetDateTime::now_utc(),
    };
    let place = geography.describe(territory);
    eprintln!("# {}", place.place);
    if let Some(mapped) = &place.mapped {
        eprintln!("# {mapped}");
    }

    let declared = match super::absences::declared(&settings, paris_date(at), at).await {
        Ok(declared) => crate::absences::extra(declared),
        Err(error) => {
            eprintln!(
                "# the declared absences cannot be read ({error}): the registry's absences only"
            );
            crate::registry::ExtraAbsences::default()
        }
    };
    let resolution = registry.resolve_with(&kind, territory, at, &declared)?;
    for matched in &resolution.matched {
        for referent in &matched.referents {
            println!("{} {}", referent.id(), referent.email());
            if let Some(phone) = referent.phone() {
                eprintln!("# {} answers the telephone at {phone}", referent.id());
            }
        }
        for (deputy, absent) in &matched.standing_in {
            eprintln!(
                "# {} is absent that day: {} receives it in its place",
                absent.id(),
                deputy.id()
            );
        }
        eprintln!(
            "# network {}: {} référent(s) at the {} level",
            matched.network,
            matched.referents.len(),
            matched.level.as_str()
        );
    }
    let zone = crate::calendar::Zone::of_departement(territory.departement());
    for priority in [Priority::Urgent, Priority::Normal] {
        if let Some(wait) = registry.escalate_after(&kind, priority) {
            let due = registry.step_due(&kind, territory, at, wait);
            let due =
                jiff::Timestamp::from_nanosecond(due.unix_timestamp_nanos()).unwrap_or_default();
            eprintln!(
                "# escalation ({}): its first step would fall on {}",
                priority.as_str(),
                zone.in_words(due)
            );
        }
    }
    if let Some(unmatched) = resolution.unmatched_error(territory) {
        eprintln!("# {unmatched}: such an alert would also be dead-lettered as unroutable");
    }
    Ok(())
}

//! `relais absences`: every absence in force or to come, the registry's and
//! those the référents declared on their absence page, together, for people
//! or as one JSON document; and the reading of the declared ones that
//! `relais resolve` and `relais coverage` share. It reads the settings, the
//! registry and the store (when there is one), and changes nothing.

use std::path::Path;

use clap::Args;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use super::output::printable;
use crate::availability::paris_date;
use crate::registry::Registry;
use crate::settings::Settings;
use crate::store::{AuditReader, DeclaredAbsence, StoreError};

/// How `relais absences` prints.
#[derive(Debug, Args)]
pub struct AbsencesArgs {
    /// One JSON document, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// One absence, as `relais absences` lists it.
#[derive(Debug, Serialize)]
struct Listed {
    referent: String,
    /// `None` for a référent the registry no longer names.
    network: Option<String>,
    from: String,
    to: String,
    /// The deputy the référent chose, if it chose one.
    deputy: Option<String>,
    /// `registry` (the file, changed by the operators) or `self` (the
    /// référent's page).
    source: &'static str,
    /// When the référent declared it (RFC 3339); `None` for the registry's.
    declared_at: Option<String>,
}

/// `relais absences`: the registry's absences and the declared ones that
/// end today (in Paris) or later, first day first.
pub(super) async fn absences(config: Option<&Path>, args: &AbsencesArgs) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let geography = super::load_geography(&settings)?;
    let registry = Registry::load(&settings.registry.path, &geography)?;
    let now = OffsetDateTime::now_utc();
    let today = paris_date(now);
    let declared = declared(&settings, today, now).await.map_err(|error| {
        anyhow::anyhow!("cannot read the absences the référents declared: {error}")
    })?;
    let listed = listed(&registry, declared, today);
    if args.json {
        println!("{}", serde_json::json!({ "absences": listed }));
        return Ok(());
    }
    if listed.is_empty() {
        println!("no absence in force or to come");
        return Ok(());
    }
    println!("RÉFÉRENT	NETWORK	FROM	TO	DEPUTY	SOURCE	DECLARED_AT");
    for absence in &listed {
        println!(
            "{}	{}	{}	{}	{}	{}	{}",
            printable(&absence.referent),
            printable(absence.network.as_deref().unwrap_or("-")),
            absence.from,
            absence.to,
            printable(absence.deputy.as_deref().unwrap_or("-")),
            absence.source,
            absence.declared_at.as_deref().unwrap_or("-"),
        );
    }
    Ok(())
}

/// The registry's absences and `declared`, that end on `today` or later,
/// first day first.
fn listed(registry: &Registry, declared: Vec<DeclaredAbsence>, today: Date) -> Vec<Listed> {
    let mut listed: Vec<Listed> = Vec::new();
    for referent in registry.referents() {
        for absence in registry.absences_of(referent) {
            if absence.to >= today {
                listed.push(Listed {
                    referent: referent.id().to_string(),
                    network: Some(referent.network().to_owned()),
                    from: absence.from.to_string(),
                    to: absence.to.to_string(),
                    deputy: None,
                    source: "registry",
                    declared_at: None,
                });
            }
        }
    }
    for absence in declared {
        listed.push(Listed {
            network: registry
                .referent(&absence.referent_id)
                .map(|r| r.network().to_owned()),
            referent: absence.referent_id,
            from: absence.from.to_string(),
            to: absence.to.to_string(),
            deputy: absence.deputy_id,
            source: "self",
            declared_at: absence.declared_at.format(&Rfc3339).ok(),
        });
    }
    // Dates as `YYYY-MM-DD` order as the dates do.
    listed.sort_by(|a, b| {
        (&a.from, &a.to, &a.referent, a.source).cmp(&(&b.from, &b.to, &b.referent, b.source))
    });
    listed
}

/// The absences the référents declared, in force at `at` and ending on
/// `from` or later, from the store when there is one (none when the
/// SQLite file does not exist yet: nothing was declared).
///
/// # Errors
/// [`StoreError`] when the store exists but cannot be read.
pub(super) async fn declared(
    settings: &Settings,
    from: Date,
    at: OffsetDateTime,
) -> Result<Vec<DeclaredAbsence>, StoreError> {
    if settings.store.url.is_none() && !settings.store.path.exists() {
        return Ok(Vec::new());
    }
    AuditReader::open(&settings.store)
        .await?
        .declared_absences(from, at)
        .await
}

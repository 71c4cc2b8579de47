//! `relais registry export --csv`: a registry's référents as the
//! spreadsheet `relais registry import` reads, one row per territory, by
//! code (`insee`, `epci`, `departement`, `region`, `fallback`; never a
//! postal code). UTF-8 with a byte-order mark and `;` between fields, as
//! French spreadsheets open CSV with their accents. The registry is checked
//! as relais checks it first: a registry relais would refuse is not
//! exported. What a spreadsheet does not hold (routes, networks,
//! publishers, a référent's hours and absences) stays in the registry.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;

use super::document::{ReferentEntry, RegistryDocument};
use super::spreadsheet::Column;
use crate::settings::Settings;

/// What `relais registry export` reads and where it writes.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write CSV (the one format so far).
    #[arg(long)]
    pub csv: bool,
    /// The registry to export; by default the one the settings name.
    #[arg(long, value_name = "FILE")]
    pub registry: Option<PathBuf>,
    /// Write the spreadsheet there rather than on standard output.
    #[arg(long, short, value_name = "OUT.csv")]
    pub output: Option<PathBuf>,
}

/// The columns an export writes: every one but those that name a place
/// by anything else than its code.
const COLUMNS: [Column; 12] = [
    Column::Id,
    Column::Network,
    Column::Organisation,
    Column::Name,
    Column::Email,
    Column::Phone,
    Column::Insee,
    Column::Epci,
    Column::Departement,
    Column::Region,
    Column::Fallback,
    Column::Deputies,
];

/// `relais registry export`.
pub(super) fn export(config: Option<&Path>, args: &ExportArgs) -> anyhow::Result<()> {
    if !args.csv {
        bail!("say the format: --csv (the one format so far)");
    }
    let settings = Settings::load(config)?;
    let geography = super::super::load_geography(&settings)?;
    let path = args.registry.as_ref().unwrap_or(&settings.registry.path);
    let (document, _) = RegistryDocument::read(path)?;
    if let Err(errors) = document.check(&geography) {
        bail!(
            "the registry {} has {} error(s), nothing was exported:\n  - {}",
            path.display(),
            errors.len(),
            errors.join("\n  - ")
        );
    }
    let csv = spreadsheet(&document.referent)?;
    match &args.output {
        Some(output) => std::fs::write(output, &csv)
            .with_context(|| format!("cannot write {}", output.display()))?,
        None => {
            use std::io::Write as _;
            std::io::stdout()
                .write_all(&csv)
                .context("cannot write on standard output")?;
        }
    }
    Ok(())
}

/// The référents as CSV, sorted by id, one row per territory.
///
/// # Errors
/// None in practice: writing to memory.
fn spreadsheet(referents: &[ReferentEntry]) -> anyhow::Result<Vec<u8>> {
    let mut sorted: Vec<&ReferentEntry> = referents.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let mut writer = csv::WriterBuilder::new()
        .delimiter(b';')
        .terminator(csv::Terminator::CRLF)
        .from_writer(b"\xEF\xBB\xBF".to_vec());
    writer.write_record(COLUMNS.iter().map(|c| c.name()))?;
    for referent in sorted {
        let places = referent
            .communes
            .iter()
            .map(|code| (Column::Insee, code.as_str()))
            .chain(referent.epcis.iter().map(|c| (Column::Epci, c.as_str())))
            .chain(
                referent
                    .departements
                    .iter()
                    .map(|c| (Column::Departement, c.as_str())),
            )
            .chain(
                referent
                    .regions
                    .iter()
                    .map(|c| (Column::Region, c.as_str())),
            )
            .chain(referent.fallback.then_some((Column::Fallback, "yes")));
        let deputies = referent.deputies.join(" ");
        for (column, code) in places {
            let cell = |c: Column| -> &str {
                match c {
                    Column::Id => &referent.id,
                    Column::Network => &referent.network,
                    Column::Organisation => referent.organisation.as_deref().unwrap_or_default(),
                    Column::Name => referent.name.as_deref().unwrap_or_default(),
                    Column::Email => &referent.email,
                    Column::Phone => referent.phone.as_deref().unwrap_or_default(),
                    Column::Deputies => &deputies,
                    c if c == column => code,
                    _ => "",
                }
            };
            writer.write_record(COLUMNS.iter().map(|c| cell(*c)))?;
        }
    }
    writer
        .into_inner()
        .map_err(|error| anyhow::anyhow!(error.to_string()))
}

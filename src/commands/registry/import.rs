//! `relais registry import`: the référents of a spreadsheet (CSV) as a
//! registry. Each row gives one territory of one référent (its id, or one
//! made from its network and its place); a référent's rows must agree on
//! who it is. A territory is read against the official geography: an INSEE
//! code, a postal code, a commune's name in its département, an EPCI's
//! SIREN, a département or a région by code or name, or `fallback`. A
//! postal code or a name that several communes share is refused with its
//! candidates, never guessed.
//!
//! Every error is reported at once, each with its line, and nothing is
//! written while there is one; the registry made is checked as relais
//! checks it at start-up before it is written. With `--into`, the référents
//! of the networks the spreadsheet names replace those of the registry,
//! which keeps everything else (routes, networks, publishers, the other
//! networks' référents, and the absences and hours of the référents it
//! re-imports).

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;

use super::document::{ReferentEntry, RegistryDocument};
use super::spreadsheet::{self, Column};
use crate::geography::{CommuneInfo, CommuneNames, Epci, Geography, Region, normalise};
use crate::registry::ReferentId;
use crate::settings::Settings;
use crate::territory::{Commune, Departement};

/// What `relais registry import` reads and where it writes.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The spreadsheet, as CSV (UTF-8 or Windows-1252, `;` or `,`).
    #[arg(value_name = "FILE.csv")]
    pub file: PathBuf,
    /// A registry whose référents of the spreadsheet's networks are
    /// replaced; everything else in it is kept.
    #[arg(long, value_name = "REGISTRY.toml")]
    pub into: Option<PathBuf>,
    /// Write the registry there rather than on standard output.
    #[arg(long, short, value_name = "OUT.toml")]
    pub output: Option<PathBuf>,
}

/// `relais registry import`.
pub(super) fn import(config: Option<&Path>, args: &ImportArgs) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let geography = super::super::load_geography(&settings)?;
    let text = std::fs::read(&args.file)
        .map(|bytes| spreadsheet::decode(&bytes))
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let imported = read(&text, &geography);
    drop(text);
    let imported = imported.map_err(|errors| {
        anyhow::anyhow!(
            "{} has {} error(s), nothing was written:\n  - {}",
            args.file.display(),
            errors.len(),
            errors.join("\n  - ")
        )
    })?;
    let (mut document, header) = match &args.into {
        Some(path) => (RegistryDocument::read(path)?.0, String::new()),
        None => (
            RegistryDocument::default(),
            "# Référents imported by `relais registry import`: relais needs the\n\
             # [[route]]s too (docs/operations.md, \"From the spreadsheet\").\n\n"
                .to_owned(),
        ),
    };
    let replaced = merge(&mut document, imported.referents);
    check(&mut document, &geography, &imported.lines)
        .with_context(|| format!("{}: nothing was written", args.file.display()))?;
    let toml = document.to_toml(&header)?;
    match &args.output {
        Some(path) => std::fs::write(path, &toml)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{toml}"),
    }
    let networks = imported.networks.into_iter().collect::<Vec<_>>().join(", ");
    match &args.into {
        Some(into) => eprintln!(
            "relais: {} référent(s) of {networks} imported in place of {replaced} in {}",
            imported.count,
            into.display()
        ),
        None => eprintln!(
            "relais: {} référent(s) of {networks} imported; the registry needs its [[route]]s \
             (or import with --into REGISTRY.toml)",
            imported.count
        ),
    }
    Ok(())
}

/// The référents a spreadsheet gives.
#[derive(Debug)]
pub(super) struct Imported {
    /// Sorted by id, their territories sorted.
    referents: Vec<ReferentEntry>,
    count: usize,
    networks: BTreeSet<String>,
    /// Each référent's rows, to say where a registry's error comes from.
    lines: HashMap<String, Vec<u64>>,
}

/// Puts `imported` in place of the référents of their networks; returns how
/// many it replaced. A référent imported again keeps what a spreadsheet
/// does not say: its time zone, hours and absences.
fn merge(document: &mut RegistryDocument, imported: Vec<ReferentEntry>) -> usize {
    let networks: BTreeSet<&str> = imported.iter().map(|r| r.network.as_str()).collect();
    let (replaced, kept): (Vec<ReferentEntry>, Vec<ReferentEntry>) =
        std::mem::take(&mut document.referent)
            .into_iter()
            .partition(|r| networks.contains(r.network.as_str()));
    let count = replaced.len();
    let mut replaced: HashMap<String, ReferentEntry> =
        replaced.into_iter().map(|r| (r.id.clone(), r)).collect();
    let mut referents = kept;
    for mut referent in imported {
        if let Some(old) = replaced.remove(&referent.id) {
            referent.time_zone = old.time_zone;
            referent.hours = old.hours;
            referent.absences = old.absences;
        }
        referents.push(referent);
    }
    referents.sort_by(|a, b| a.id.cmp(&b.id));
    document.referent = referents;
    count
}

/// Checks the registry made as relais would load it; its errors name the
/// référent, and here its rows too. A registry without routes is refused, so
/// référents imported alone are checked under a route to every network
/// they name, which nothing writes.
fn check(
    document: &mut RegistryDocument,
    geography: &std::sync::Arc<Geography>,
    lines: &HashMap<String, Vec<u64>>,
) -> anyhow::Result<()> {
    let routed = document.route.is_empty();
    if routed {
        let networks: BTreeSet<&str> = document
            .referent
            .iter()
            .map(|r| r.network.as_str())
            .collect();
        let mut route = toml::Table::new();
        route.insert("kind".into(), "*".into());
        route.insert(
            "networks".into(),
            toml::Value::Array(networks.into_iter().map(toml::Value::from).collect()),
        );
        document.route.push(route);
    }
    let checked = document.check(geography);
    if routed {
        document.route.clear();
    }
    match checked {
        Ok(()) => Ok(()),
        Err(errors) => {
            let errors: Vec<String> = errors
                .into_iter()
                .filter(|e| !(routed && ADDED_ROUTE_ERRORS.iter().any(|a| e.starts_with(a))))
                .map(
                    |error| match referent_of(&error).and_then(|id| lines.get(id)) {
                        Some(rows) => format!("{error} (line {})", join(rows)),
                        None => error,
                    },
                )
                .collect();
            if errors.is_empty() {
                return Ok(());
            }
            bail!(
                "the registry made has {} error(s):\n  - {}",
                errors.len(),
                errors.join("\n  - ")
            )
        }
    }
}

/// The beginnings of the errors that only the route added for the check
/// can cause (a network named wrongly is already the référent's error).
const ADDED_ROUTE_ERRORS: [&str; 2] = ["route #1 (kind \"*\")", "the registry has no [[route]]"];

/// The id an error of the registry's checks names: `referent #3 ("id")`.
fn referent_of(error: &str) -> Option<&str> {
    let start = error.find("(\"")? + 2;
    let end = start + error[start..].find("\")")?;
    Some(&error[start..end])
}

fn join(lines: &[u64]) -> String {
    lines
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A territory, as the registry lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Commune(Commune),
    Epci(Epci),
    Departement(Departement),
    Region(Region),
    Fallback,
}

impl Place {
    /// The id of a référent the spreadsheet gives none: its network and
    /// its place (`ccas-75113`, `cpam-75`, `ccas-epci-200046977`).
    fn id(self, network: &str) -> String {
        match self {
            Place::Commune(commune) => format!("{network}-{commune}"),
            Place::Epci(epci) => format!("{network}-epci-{epci}"),
            Place::Departement(departement) => format!("{network}-{departement}"),
            Place::Region(region) => format!("{network}-region-{region}"),
            Place::Fallback => format!("{network}-fallback"),
        }
    }
}

/// What a référent's rows must agree on, in the order of [`Pending::said`].
const SAID: [Column; 6] = [
    Column::Network,
    Column::Name,
    Column::Organisation,
    Column::Email,
    Column::Phone,
    Column::Deputies,
];

/// One référent, as its rows say it so far.
#[derive(Default)]
struct Pending {
    lines: Vec<u64>,
    /// (value, the line that first said it), per column of [`SAID`].
    said: [Option<(String, u64)>; SAID.len()],
    /// Sorted and deduplicated once every row is read.
    places: Vec<Place>,
}

/// A spreadsheet's header: which column each field is, and the name it
/// was given (errors use it).
struct Header {
    columns: Vec<Column>,
    names: BTreeMap<Column, String>,
}

impl Header {
    fn read(cells: &csv::StringRecord) -> Result<Self, String> {
        let mut columns = Vec::with_capacity(cells.len());
        let mut names = BTreeMap::new();
        let mut unknown = Vec::new();
        let mut twice = Vec::new();
        for cell in cells {
            match Column::from_header(cell) {
                Some(column) => {
                    if names.insert(column, cell.trim().to_owned()).is_some() {
                        twice.push(format!("`{}`", cell.trim()));
                    }
                    columns.push(column);
                }
                None => unknown.push(format!("`{}`", cell.trim())),
            }
        }
        let mut problems = Vec::new();
        if !unknown.is_empty() {
            problems.push(format!(
                "unknown column(s) {}; the columns are {}",
                unknown.join(", "),
                Column::accepted()
            ));
        }
        if !twice.is_empty() {
            problems.push(format!("column(s) given twice: {}", twice.join(", ")));
        }
        for needed in [Column::Network, Column::Email] {
            if !names.contains_key(&needed) {
                problems.push(format!("no `{}` column", needed.name()));
            }
        }
        if !problems.is_empty() {
            return Err(format!("line 1 (the header): {}", problems.join("; ")));
        }
        Ok(Self { columns, names })
    }

    /// The name the header gave `column`, or its English name.
    fn name(&self, column: Column) -> &str {
        self.names
            .get(&column)
            .map_or_else(|| column.name(), String::as_str)
    }
}

/// One row's cells, by column; an absent column is an empty cell.
struct Row<'r> {
    cells: [&'r str; Column::ALL.len()],
}

impl Row<'_> {
    fn get(&self, column: Column) -> &str {
        self.cells[column as usize]
    }
}

/// Reads a spreadsheet's référents.
///
/// # Errors
/// Every error, each with its line.
pub(super) fn read(text: &str, geography: &Geography) -> Result<Imported, Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(spreadsheet::separator(text))
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = match reader.headers() {
        Ok(cells) => Header::read(cells).map_err(|e| vec![e])?,
        Err(error) => return Err(vec![format!("line 1 (the header): {error}")]),
    };
    let names = OnceCell::new();
    let mut errors = Vec::new();
    let mut referents: BTreeMap<String, Pending> = BTreeMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let line = error.position().map_or(0, |p| p.line());
                errors.push(format!("line {line}: {error}"));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() != header.columns.len() {
            errors.push(format!(
                "line {line}: {} field(s), the header has {}",
                record.len(),
                header.columns.len()
            ));
            continue;
        }
        let mut row = Row {
            cells: [""; Column::ALL.len()],
        };
        for (column, cell) in header.columns.iter().zip(record.iter()) {
            row.cells[*column as usize] = cell;
        }
        let place = place(&row, &header, geography, &names);
        let network = row.get(Column::Network);
        let id = match (row.get(Column::Id), &place) {
            ("", Ok(place)) if !network.is_empty() => place.id(network),
            ("", _) => {
                // Which référent cannot be said: the errors of the place
                // (or the missing network) are the row's.
                match place {
                    Err(error) => errors.push(format!("line {line}: {error}")),
                    Ok(_) => errors.push(format!(
                        "line {line}: no `{}` and no `{}`: the id is made from the network",
                        header.name(Column::Id),
                        header.name(Column::Network)
                    )),
                }
                continue;
            }
            (id, _) => id.to_owned(),
        };
        if let Err(problem) = ReferentId::parse(&id) {
            errors.push(format!("line {line}: {problem}"));
            continue;
        }
        let pending = referents.entry(id.clone()).or_default();
        pending.lines.push(line);
        for (column, slot) in SAID.into_iter().zip(&mut pending.said) {
            let value = match column {
                Column::Deputies => deputies(row.get(column)).join(" "),
                _ => row.get(column).to_owned(),
            };
            if value.is_empty() {
                continue;
            }
            match slot.as_ref() {
                None => *slot = Some((value, line)),
                Some((first, first_line)) if *first != value => errors.push(format!(
                    "line {line}: `{}` differs from line {first_line}'s for référent {id}: \
                     the rows of one référent must agree",
                    header.name(column)
                )),
                Some(_) => {}
            }
        }
        match place {
            Ok(place) => {
                pending.places.push(place);
            }
            Err(error) => errors.push(format!("line {line}: {error}")),
        }
    }
    let mut imported = Imported {
        referents: Vec::with_capacity(referents.len()),
        count: referents.len(),
        networks: BTreeSet::new(),
        lines: HashMap::with_capacity(referents.len()),
    };
    for (id, pending) in referents {
        let said = |column| {
            let at = SAID.iter().position(|c| *c == column)?;
            pending.said[at].as_ref().map(|(value, _)| value.clone())
        };
        let first = pending.lines.first().copied().unwrap_or_default();
        for needed in [Column::Network, Column::Email] {
            if said(needed).is_none() {
                errors.push(format!(
                    "line {first}: référent {id} has no `{}` on any of its rows",
                    header.name(needed)
                ));
            }
        }
        let network = said(Column::Network).unwrap_or_default();
        imported.networks.insert(network.clone());
        let mut entry = ReferentEntry {
            id: id.clone(),
            network,
            name: said(Column::Name),
            organisation: said(Column::Organisation),
            email: said(Column::Email).unwrap_or_default(),
            phone: said(Column::Phone),
            deputies: said(Column::Deputies)
                .map(|d| d.split(' ').map(str::to_owned).collect())
                .unwrap_or_default(),
            ..ReferentEntry::default()
        };
        let mut places = pending.places;
        places.sort_unstable();
        places.dedup();
        for place in places {
            match place {
                Place::Commune(c) => entry.communes.push(c.to_string()),
                Place::Epci(e) => entry.epcis.push(e.to_string()),
                Place::Departement(d) => entry.departements.push(d.to_string()),
                Place::Region(r) => entry.regions.push(r.to_string()),
                Place::Fallback => entry.fallback = true,
            }
        }
        imported.lines.insert(id, pending.lines);
        imported.referents.push(entry);
    }
    if imported.count == 0 && errors.is_empty() {
        errors.push("no référent: the spreadsheet has a header and no row".to_owned());
    }
    if !errors.is_empty() {
        errors.sort_by_key(|error| line_of(error));
        return Err(errors);
    }
    Ok(imported)
}

/// The line an error starts with, to list them in the file's order.
fn line_of(error: &str) -> u64 {
    error
        .strip_prefix("line ")
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|number| number.parse().ok())
        .unwrap_or(0)
}

/// A `deputies` cell's ids, separated by spaces or `|`.
fn deputies(cell: &str) -> Vec<&str> {
    cell.split(|c: char| c == '|' || c.is_whitespace())
        .filter(|id| !id.is_empty())
        .collect()
}

/// The territory a row gives: exactly one of its forms.
fn place<'g>(
    row: &Row<'_>,
    header: &Header,
    geography: &'g Geography,
    names: &OnceCell<CommuneNames<'g>>,
) -> Result<Place, String> {
    let name = |column| header.name(column);
    let postal = row.get(Column::PostalCode);
    let commune = row.get(Column::Commune);
    let departement = row.get(Column::Departement);
    let fallback = match row.get(Column::Fallback).to_lowercase().as_str() {
        "" | "no" | "non" | "false" | "0" => false,
        "yes" | "oui" | "true" | "1" | "x" => true,
        _ => {
            return Err(format!(
                "`{}` must be `yes`/`oui` or empty",
                name(Column::Fallback)
            ));
        }
    };
    // The forms given, with the columns each fills.
    let mut given = Vec::new();
    let mut form = |filled: bool, column: Column| {
        if filled {
            given.push(column);
        }
    };
    form(!row.get(Column::Insee).is_empty(), Column::Insee);
    form(!postal.is_empty(), Column::PostalCode);
    form(!commune.is_empty() && postal.is_empty(), Column::Commune);
    form(!row.get(Column::Epci).is_empty(), Column::Epci);
    form(
        !departement.is_empty() && (commune.is_empty() || !postal.is_empty()),
        Column::Departement,
    );
    form(!row.get(Column::Region).is_empty(), Column::Region);
    form(fallback, Column::Fallback);
    let form = match given.as_slice() {
        [form] => *form,
        [] => {
            return Err(format!(
                "no territory: fill one of `{}`, `{}` (with `{}` if it serves several), \
                 `{}` with `{}`, `{}`, `{}`, `{}` or `{}`",
                name(Column::Insee),
                name(Column::PostalCode),
                name(Column::Commune),
                name(Column::Commune),
                name(Column::Departement),
                name(Column::Epci),
                name(Column::Departement),
                name(Column::Region),
                name(Column::Fallback)
            ));
        }
        several => {
            let listed: Vec<String> = several.iter().map(|c| format!("`{}`", name(*c))).collect();
            return Err(format!(
                "gives {}: one territory per row (a référent's territories on rows of its own)",
                listed.join(" and ")
            ));
        }
    };
    match form {
        Column::Insee => {
            let code = row.get(Column::Insee);
            geography
                .check_current(code)
                .map(Place::Commune)
                .map_err(|problem| format!("`{}` {code} {problem}", name(Column::Insee)))
        }
        Column::PostalCode => {
            if !geography.knows_postal_codes() {
                return Err(format!(
                    "the territories file lists no postal code's communes: use `{}`, or a \
                     territories file of scripts/territories",
                    name(Column::Insee)
                ));
            }
            let served = geography.communes_of_postal_code(postal);
            if served.is_empty() {
                return Err(format!(
                    "`{}` {postal} is not a postal code in use",
                    name(Column::PostalCode)
                ));
            }
            let chosen: Vec<CommuneInfo<'_>> = if commune.is_empty() {
                served.clone()
            } else {
                let wanted = normalise(commune);
                served
                    .iter()
                    .filter(|c| normalise(c.name) == wanted)
                    .copied()
                    .collect()
            };
            match chosen.as_slice() {
                [one] => Ok(Place::Commune(one.commune)),
                [] => Err(format!(
                    "`{}` {postal} serves no commune named {commune:?}: it serves {}",
                    name(Column::PostalCode),
                    candidates(&served)
                )),
                several => Err(format!(
                    "`{}` {postal} is shared by {} communes: {}; add a `{}` column or use `{}`",
                    name(Column::PostalCode),
                    several.len(),
                    candidates(several),
                    name(Column::Commune),
                    name(Column::Insee)
                )),
            }
        }
        Column::Commune => {
            if departement.is_empty() {
                return Err(format!(
                    "`{}` needs its `{}` (or a `{}`) to say which commune",
                    name(Column::Commune),
                    name(Column::Departement),
                    name(Column::PostalCode)
                ));
            }
            let Some(code) = geography.find_departement(departement) else {
                return Err(format!(
                    "`{}` {departement:?} is no département's code or name",
                    name(Column::Departement)
                ));
            };
            let found = names
                .get_or_init(|| geography.commune_names())
                .find(commune, code);
            match found.as_slice() {
                [one] => Ok(Place::Commune(one.commune)),
                [] => Err(format!(
                    "no commune named {commune:?} in département {code}: use `{}`",
                    name(Column::Insee)
                )),
                several => Err(format!(
                    "{} communes are named {commune:?} in département {code}: {}; use `{}`",
                    several.len(),
                    candidates(several),
                    name(Column::Insee)
                )),
            }
        }
        Column::Epci => {
            let siren = row.get(Column::Epci);
            geography.find_epci(siren).map(Place::Epci).ok_or_else(|| {
                format!(
                    "`{}` {siren} is not the SIREN number of an EPCI of the geography",
                    name(Column::Epci)
                )
            })
        }
        Column::Departement => geography
            .find_departement(departement)
            .map(Place::Departement)
            .ok_or_else(|| {
                format!(
                    "`{}` {departement:?} is no département's code or name",
                    name(Column::Departement)
                )
            }),
        Column::Region => {
            let region = row.get(Column::Region);
            geography
                .find_region(region)
                .map(Place::Region)
                .ok_or_else(|| {
                    format!(
                        "`{}` {region:?} is no région's code or name",
                        name(Column::Region)
                    )
                })
        }
        _ => Ok(Place::Fallback),
    }
}

/// `Beccas (32039), Gavarret-sur-Aulouste (32142)`.
fn candidates(communes: &[CommuneInfo<'_>]) -> String {
    let mut text = String::new();
    for (position, commune) in communes.iter().enumerate() {
        if position > 0 {
            text.push_str(", ");
        }
        let _ = write!(text, "{} ({})", commune.name, commune.commune);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, network: &str) -> ReferentEntry {
        ReferentEntry {
            id: id.into(),
            network: network.into(),
            email: format!("{id}@example.org"),
            ..ReferentEntry::default()
        }
    }

    #[test]
    fn deputies_are_separated_by_spaces_or_bars() {
        assert_eq!(deputies(" a | b  c|d "), ["a", "b", "c", "d"]);
        assert!(deputies("").is_empty());
    }

    #[test]
    fn a_merge_replaces_the_imported_networks_only_and_keeps_what_the_sheet_cannot_say() {
        // Arrange
        let mut kept = entry("ccas-a", "ccas");
        kept.time_zone = Some("Europe/Paris".into());
        kept.absences = vec![toml::Table::new()];
        let mut document = RegistryDocument {
            referent: vec![entry("cpam-75", "cpam"), kept, entry("ccas-gone", "ccas")],
            ..RegistryDocument::default()
        };

        // Act
        let replaced = merge(
            &mut document,
            vec![entry("ccas-b", "ccas"), entry("ccas-a", "ccas")],
        );

        // Assert
        assert_eq!(replaced, 2);
        let ids: Vec<&str> = document.referent.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["ccas-a", "ccas-b", "cpam-75"]);
        assert_eq!(
            document.referent[0].time_zone.as_deref(),
            Some("Europe/Paris")
        );
        assert_eq!(document.referent[0].absences.len(), 1);
        assert_eq!(document.referent[1].time_zone, None);
    }

    #[test]
    fn a_registry_error_s_referent_and_line_are_read_back() {
        assert_eq!(
            referent_of(r#"referent #3 ("ccas-a"): email "x" is not a valid address"#),
            Some("ccas-a")
        );
        assert_eq!(referent_of("the registry has no [[route]]"), None);
        assert_eq!(line_of("line 12: no territory"), 12);
    }
}

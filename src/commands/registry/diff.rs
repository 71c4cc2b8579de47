//! `relais registry diff OLD NEW`: what a registry change does before it
//! is live, for the people who review it (text) and for a review pipeline
//! (`--json`). The comparison itself is the registry's
//! ([`RegistryDiff`]); this file loads the two files, prints, and chooses
//! the exit status, as `diff(1)` does: 0 no change, 1 trouble, 2 changes.
//!
//! It reads the two files and the geography only (the settings' when a
//! settings file is given, else the one built in): never the broker, the
//! store or the absences.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};

use crate::commands::output::{printable, provenance};
use crate::geography::Geography;
use crate::registry::{
    CommuneChange, FieldChange, Recipients, ReferentEntry, Registry, RegistryDiff,
};
use crate::settings::Settings;

/// The two files `relais registry diff` compares, and how it prints.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The registry in force (or any earlier one).
    pub old: PathBuf,
    /// The candidate.
    pub new: PathBuf,
    /// Every commune whose recipients change, not only the first 20 per
    /// network and kind.
    #[arg(long)]
    pub all: bool,
    /// Print JSON, for a review pipeline: every commune, full digests.
    #[arg(long)]
    pub json: bool,
}

/// Communes listed per network and kind in the text report, without
/// `--all`.
const LISTED: usize = 20;

/// Territory codes listed in a référent's line; beyond, only counts.
const CODES_LISTED: usize = 10;

/// Exit status when the registries differ, as `diff(1)`'s.
const CHANGED: u8 = 2;

/// `relais registry diff`: prints what changes; exit 0 when nothing does,
/// 1 on trouble (every error of both files listed), 2 when something does.
pub(super) fn diff(config: Option<&Path>, args: &DiffArgs) -> ExitCode {
    let geography = match geography(config) {
        Ok(geography) => geography,
        Err(error) => {
            eprintln!("relais: {}", crate::telemetry::causes(&error));
            return ExitCode::FAILURE;
        }
    };
    let (old, new) = (
        Registry::load(&args.old, &geography),
        Registry::load(&args.new, &geography),
    );
    let (old, new) = match (old, new) {
        (Ok(old), Ok(new)) => (old, new),
        (old, new) => {
            for error in [old.err(), new.err()].into_iter().flatten() {
                eprintln!("relais: {error}");
            }
            return ExitCode::FAILURE;
        }
    };
    let diff = RegistryDiff::between(&old, &new);
    let files = [(&args.old, &old), (&args.new, &new)];
    if args.json {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let written = serde_json::to_writer(&mut out, &report_json(files, &diff))
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
            .and_then(|()| out.flush());
        if let Err(error) = written {
            eprintln!("relais: cannot write the report: {error}");
            return ExitCode::FAILURE;
        }
    } else {
        print!("{}", report(files, &diff, args.all));
    }
    if diff.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(CHANGED)
    }
}

/// The settings' geography when a settings file is named, else the one
/// built in: a review pipeline needs no settings.
fn geography(config: Option<&Path>) -> anyhow::Result<Arc<Geography>> {
    match config {
        Some(_) => crate::commands::load_geography(&Settings::load(config)?),
        None => Ok(Arc::new(Geography::built_in())),
    }
}

/// The report for people: the two files, a line per référent (by id), per
/// route setting and per commune whose recipients change, then the summary.
fn report(files: [(&PathBuf, &Registry); 2], diff: &RegistryDiff, all: bool) -> String {
    let mut out = String::new();
    for (side, (path, registry)) in ["old", "new"].into_iter().zip(files) {
        let _ = writeln!(
            out,
            "{side}: {} ({})",
            printable(&path.display().to_string()),
            provenance(registry)
        );
    }
    referent_lines(&mut out, diff);
    route_lines(&mut out, diff);
    publisher_lines(&mut out, diff);
    recipient_lines(&mut out, diff, all);
    if diff.is_empty() {
        let _ = writeln!(out, "no change");
    }
    let (communes, population) = diff.communes_changed();
    let _ = writeln!(
        out,
        "{} référents added, {} removed, {} changed; {communes} communes ({population} \
         inhabitants) change recipients",
        diff.added.len(),
        diff.removed.len(),
        diff.changed.len()
    );
    out
}

/// A line per référent added, removed or changed, by id.
fn referent_lines(out: &mut String, diff: &RegistryDiff) {
    let mut referents: Vec<(&str, String)> = Vec::new();
    for (verb, entries) in [("added", &diff.added), ("removed", &diff.removed)] {
        referents.extend(entries.iter().map(|ReferentEntry { id, network }| {
            (
                id.as_str(),
                format!("{verb} référent {id} (network {network})"),
            )
        }));
    }
    for change in &diff.changed {
        let fields: Vec<String> = change.fields.iter().map(field).collect();
        referents.push((
            &change.id,
            format!("changed référent {}: {}", change.id, fields.join("; ")),
        ));
    }
    referents.sort_by(|a, b| a.0.cmp(b.0));
    for (_, line) in referents {
        let _ = writeln!(out, "{line}");
    }
}

/// A line per route setting changed.
fn route_lines(out: &mut String, diff: &RegistryDiff) {
    for route in &diff.routes {
        let verb = match (&route.old, &route.new) {
            (None, _) if route.field == "networks" => "added",
            (_, None) if route.field == "networks" => "removed",
            _ => "changed",
        };
        let _ = writeln!(
            out,
            "{verb} route {}: {} {} → {}",
            route.kind,
            route.field,
            or_none(route.old.as_deref()),
            or_none(route.new.as_deref())
        );
    }
}

/// A line per publisher added, removed or changed, by user.
fn publisher_lines(out: &mut String, diff: &RegistryDiff) {
    for publisher in &diff.publishers {
        let fields: Vec<String> = match publisher.change {
            "removed" => Vec::new(),
            "added" => publisher
                .fields
                .iter()
                .filter_map(|f| match f {
                    FieldChange::Value {
                        field,
                        new: Some(new),
                        ..
                    } => Some(format!("{field} {}", printable(new))),
                    _ => None,
                })
                .collect(),
            _ => publisher.fields.iter().map(field).collect(),
        };
        let _ = write!(out, "{} publisher {}", publisher.change, publisher.user);
        if !fields.is_empty() {
            let _ = write!(out, ": {}", fields.join("; "));
        }
        out.push('\n');
    }
}

/// Per network and kind, a line per commune whose recipients change (the
/// first [`LISTED`] unless `all`, then how many more).
fn recipient_lines(out: &mut String, diff: &RegistryDiff, all: bool) {
    for changes in &diff.recipients {
        let prefix = format!("{} {}", changes.network, changes.kind);
        let listed = if all { changes.communes.len() } else { LISTED };
        for commune in changes.communes.iter().take(listed) {
            let _ = writeln!(
                out,
                "{prefix}: {} ({}, {} inhabitants): {} → {}",
                printable(&commune.name),
                commune.commune,
                commune.population,
                recipients(commune.old.as_ref()),
                recipients(commune.new.as_ref())
            );
        }
        let rest = changes.communes.get(listed..).unwrap_or_default();
        if !rest.is_empty() {
            let population: u64 = rest.iter().map(|c| u64::from(c.population)).sum();
            let _ = writeln!(
                out,
                "{prefix}: … and {} more communes ({population} inhabitants)",
                rest.len()
            );
        }
    }
}

/// One field's change in a référent's line: `email a → b`, `communes
/// +32414, -32039`.
fn field(change: &FieldChange) -> String {
    match change {
        FieldChange::Value { field, old, new } => format!(
            "{field} {} → {}",
            printable(or_none(old.as_deref())),
            printable(or_none(new.as_deref()))
        ),
        FieldChange::Territories {
            field,
            added,
            removed,
        } => {
            if added.len() + removed.len() <= CODES_LISTED {
                let codes: Vec<String> = added
                    .iter()
                    .map(|code| format!("+{code}"))
                    .chain(removed.iter().map(|code| format!("-{code}")))
                    .collect();
                format!("{field} {}", codes.join(", "))
            } else {
                format!(
                    "{field} +{} -{} (the codes in --json)",
                    added.len(),
                    removed.len()
                )
            }
        }
    }
}

fn or_none(value: Option<&str>) -> &str {
    value.unwrap_or("none")
}

/// `ccas-a, ccas-b (commune)`, or `nobody`.
fn recipients(recipients: Option<&Recipients>) -> String {
    match recipients {
        Some(Recipients { level, referents }) => {
            format!("{} ({})", referents.join(", "), level.as_str())
        }
        None => "nobody".to_owned(),
    }
}

/// The report for a review pipeline: every change, every commune.
fn report_json<'d>(files: [(&PathBuf, &Registry); 2], diff: &'d RegistryDiff) -> Report<'d> {
    let file = |(path, registry): (&PathBuf, &Registry)| {
        json!({
            "path": path.display().to_string(),
            "digest": registry.digest(),
            "version": registry.version(),
        })
    };
    let entries = |entries: &[ReferentEntry]| -> Vec<Value> {
        entries
            .iter()
            .map(|e| json!({ "id": e.id, "network": e.network }))
            .collect()
    };
    let changed: Vec<Value> = diff
        .changed
        .iter()
        .map(|change| {
            let fields: Vec<Value> = change.fields.iter().map(field_json).collect();
            json!({ "id": change.id, "fields": fields })
        })
        .collect();
    let routes: Vec<Value> = diff
        .routes
        .iter()
        .map(|r| json!({ "kind": r.kind, "field": r.field, "old": r.old, "new": r.new }))
        .collect();
    let publishers: Vec<Value> = diff
        .publishers
        .iter()
        .map(|p| {
            let fields: Vec<Value> = p.fields.iter().map(field_json).collect();
            json!({ "user": p.user, "change": p.change, "fields": fields })
        })
        .collect();
    let (communes, population) = diff.communes_changed();
    Report {
        old: file(files[0]),
        new: file(files[1]),
        referents: json!({
            "added": entries(&diff.added),
            "removed": entries(&diff.removed),
            "changed": changed,
        }),
        routes,
        publishers,
        recipients: diff
            .recipients
            .iter()
            .map(|r| NetworkKind {
                network: &r.network,
                kind: &r.kind,
                communes: r.communes.iter().map(Commune).collect(),
            })
            .collect(),
        summary: json!({
            "changed": !diff.is_empty(),
            "referents_added": diff.added.len(),
            "referents_removed": diff.removed.len(),
            "referents_changed": diff.changed.len(),
            "communes": communes,
            "population": population,
        }),
    }
}

/// `{field, old, new}`, or `{field, added, removed}` for territory codes.
fn field_json(field: &FieldChange) -> Value {
    match field {
        FieldChange::Value { field, old, new } => {
            json!({ "field": field, "old": old, "new": new })
        }
        FieldChange::Territories {
            field,
            added,
            removed,
        } => json!({ "field": field, "added": added, "removed": removed }),
    }
}

/// The JSON report. The communes, which may be every commune of France
/// for each kind, are written from the diff as they are, not copied into
/// a tree of values first.
#[derive(Serialize)]
struct Report<'d> {
    old: Value,
    new: Value,
    referents: Value,
    routes: Vec<Value>,
    publishers: Vec<Value>,
    recipients: Vec<NetworkKind<'d>>,
    summary: Value,
}

#[derive(Serialize)]
struct NetworkKind<'d> {
    network: &'d str,
    kind: &'d str,
    communes: Vec<Commune<'d>>,
}

/// `{code, name, population, old, new}`, `old` and `new` each `{level,
/// referents}` or `null`.
struct Commune<'d>(&'d CommuneChange);

impl Serialize for Commune<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        struct Side<'d>(&'d Recipients);
        impl Serialize for Side<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut side = serializer.serialize_struct("Recipients", 2)?;
                side.serialize_field("level", self.0.level.as_str())?;
                side.serialize_field("referents", &self.0.referents)?;
                side.end()
            }
        }
        let change = self.0;
        let mut commune = serializer.serialize_struct("Commune", 5)?;
        commune.serialize_field("code", change.commune.as_str())?;
        commune.serialize_field("name", &change.name)?;
        commune.serialize_field("population", &change.population)?;
        commune.serialize_field("old", &change.old.as_ref().map(Side))?;
        commune.serialize_field("new", &change.new.as_ref().map(Side))?;
        commune.end()
    }
}

//! The registry: who the référents are, and which of them an alert goes to.
//!
//! It is loaded from a TOML file, validated whole (every error is reported at
//! once, and a registry with any error is refused), then never changed: a
//! reload builds a new one and swaps it in whole. Resolution is a few hash
//! look-ups, so it costs the same for one commune or for all of France.
//!
//! The rule: for each network the alert's kind routes to, every référent at
//! the most specific level that matches receives it: the arrondissement
//! municipal, else the commune, else its EPCI, else the département, else
//! the région, else the network's fallback référents. Every code is checked
//! against the official geography (`geography`), which also says where a
//! commune lies.
//!
//! The files: the checked values of a référent (`referent`), the file as
//! written (`raw`), its checks (`build`), resolution (`resolve`), escalation
//! (`escalation`), the absences declared outside the file and who stands
//! in (`absences`), the summary (`summary`) and what changes from one
//! registry to another (`diff/`).

mod absences;
mod build;
mod diff;
mod escalation;
mod office_hours;

pub use office_hours::{HOPS, hop};
mod raw;
mod referent;
mod resolve;
mod summary;
#[cfg(test)]
mod tests;
mod toml_text;

pub use toml_text::entries as toml_entries;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

pub use absences::{ExtraAbsence, ExtraAbsences, StandIn};
pub use diff::{
    CommuneChange, FieldChange, PublisherChange, RecipientChanges, Recipients, ReferentChange,
    ReferentEntry, RegistryDiff, RouteChange,
};
pub use escalation::{EscalateAfter, EscalationTiers};
pub use referent::{Phone, Referent, ReferentId};
pub use resolve::{Level, NetworkMatch, Resolution, Unroutable};
pub use summary::{NetworkSummary, Summary};

use crate::alert::Kind;
use crate::geography::{Epci, Geography, Region};
use crate::publisher::Publishers;
use crate::territory::{Commune, Departement};
use raw::RawRegistry;
use referent::Availability;

/// A route's kind that matches every kind.
const ANY_KIND: &str = "*";

/// Why a registry was refused.
#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("cannot read the registry {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the registry {path} is not valid TOML for a registry: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error(
        "the registry {path} has {} error(s):\n  - {}",
        errors.len(),
        errors.join("\n  - ")
    )]
    Invalid { path: PathBuf, errors: Vec<String> },
}

/// How many hex digits of [`Registry::digest`] people are shown: enough to
/// tell two files apart at a glance.
pub const DIGEST_SHOWN: usize = 12;

/// The first [`DIGEST_SHOWN`] hexadecimal digits of a registry's digest,
/// as people read and compare it (`sha256:` omitted).
pub fn short_digest(digest: &str) -> &str {
    digest.get(..DIGEST_SHOWN).unwrap_or(digest)
}

/// SHA-256 of `bytes`, lowercase hex.
fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// Index of a network in `Registry::networks`.
type NetworkIndex = u16;
/// Index of a référent in `Registry::referents`.
type ReferentIndex = u32;

/// A validated, immutable registry.
#[derive(Debug)]
pub struct Registry {
    referents: Vec<Referent>,
    networks: Vec<String>,
    /// Kind → networks, in the order the route lists them.
    routes: HashMap<String, Vec<NetworkIndex>>,
    /// French label of each routed kind, for the email subject.
    labels: HashMap<String, String>,
    /// Who writes each routed kind's alerts (`un médecin`), as declared.
    authors: HashMap<String, String>,
    /// Networks of the `*` route, added to every kind's.
    any_kind: Vec<NetworkIndex>,
    /// Per routed kind (`*` included), how long its alerts wait for an
    /// acknowledgement before each step of escalation.
    escalations: HashMap<String, EscalateAfter>,
    /// Communes and arrondissements municipaux.
    by_commune: Index<(NetworkIndex, Commune)>,
    by_epci: Index<(NetworkIndex, Epci)>,
    by_departement: Index<(NetworkIndex, Departement)>,
    by_region: Index<(NetworkIndex, Region)>,
    /// Per network (by index), its fallback référents.
    fallback: Vec<Vec<ReferentIndex>>,
    /// The geography its codes were checked against, and which says where a
    /// territory lies.
    geography: Arc<Geography>,
    /// Deputies and absences, for the référents that have any.
    availability: HashMap<ReferentIndex, Availability>,
    /// Who may publish what; empty: anyone may publish anything.
    publishers: Publishers,
    /// The opening hours networks and référents declare.
    openings: office_hours::Openings,
    /// The file's own label (`version = "…"`), if it gives one.
    version: Option<String>,
    /// SHA-256 of the file's bytes, lowercase hex: which file this is,
    /// whatever its name or label.
    digest: String,
}

impl Registry {
    /// Reads and validates a registry file: TOML, or JSON with the same
    /// keys when its name ends in `.json` (for large registries generated
    /// by a tool: JSON parses faster).
    ///
    /// # Errors
    /// [`RegistryError`]: unreadable file, syntax or shape error, or the
    /// complete list of validation errors.
    pub fn load(path: &Path, geography: &Arc<Geography>) -> Result<Self, RegistryError> {
        Self::load_with_text(path, geography).map(|(registry, _)| registry)
    }

    /// As [`Registry::load`], with the file's text (which the store keeps,
    /// read once).
    ///
    /// # Errors
    /// As [`Registry::load`].
    pub fn load_with_text(
        path: &Path,
        geography: &Arc<Geography>,
    ) -> Result<(Self, String), RegistryError> {
        let read = |source| RegistryError::Read {
            path: path.to_owned(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(read)?;
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let registry = Self::from_text(&text, json, path, geography)?;
        Ok((registry, text))
    }

    /// Validates a registry given as TOML text.
    ///
    /// # Errors
    /// As [`Registry::load`], with an empty path.
    pub fn from_toml(text: &str, geography: &Arc<Geography>) -> Result<Self, RegistryError> {
        Self::from_text(text, false, Path::new(""), geography)
    }

    /// Validates a registry given as JSON text.
    ///
    /// # Errors
    /// As [`Registry::load`], with an empty path.
    pub fn from_json(text: &str, geography: &Arc<Geography>) -> Result<Self, RegistryError> {
        Self::from_text(text, true, Path::new(""), geography)
    }

    fn from_text(
        text: &str,
        json: bool,
        path: &Path,
        geography: &Arc<Geography>,
    ) -> Result<Self, RegistryError> {
        let syntax = |message: String| RegistryError::Syntax {
            path: path.to_owned(),
            message,
        };
        let raw: RawRegistry = if json {
            serde_json::from_str(text).map_err(|error| syntax(error.to_string()))?
        } else {
            match toml_text::by_entry(text) {
                Some(raw) => raw,
                None => toml::from_str(text).map_err(|error| syntax(error.to_string()))?,
            }
        };
        let mut registry =
            build::build(raw, geography.clone()).map_err(|errors| RegistryError::Invalid {
                path: path.to_owned(),
                errors,
            })?;
        registry.digest = sha256_hex(text.as_bytes());
        Ok(registry)
    }

    /// SHA-256 of the file's bytes, 64 lowercase hex digits: names the
    /// exact file in force (logs, metrics, the store), whatever its path or
    /// its `version` label says. Operators are shown its first
    /// [`DIGEST_SHOWN`] digits, as `registry sha256:abcdef123456`.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The file's own label (`version = "2026-12-06 UNCCAS"`), one line of
    /// at most 64 printable characters, if the file gives one.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// Which registry this is, as people compare it:
    /// `sha256:0123456789ab (version 2026-12 UNCCAS)`.
    pub fn provenance(&self) -> String {
        match &self.version {
            Some(version) => format!("sha256:{} (version {version})", short_digest(&self.digest)),
            None => format!("sha256:{}", short_digest(&self.digest)),
        }
    }

    /// The geography the registry was checked against.
    pub fn geography(&self) -> &Arc<Geography> {
        &self.geography
    }

    /// How people call a kind: the route's `label`, else the kind with spaces.
    pub fn kind_label(&self, kind: &Kind) -> String {
        self.labels
            .get(kind.as_str())
            .cloned()
            .unwrap_or_else(|| kind.as_str().replace('_', " "))
    }

    /// Who writes an alert of `kind` from broker user `publisher`, as the
    /// email names them: its route's `author`, else the `*` route's, else
    /// its publisher's; `None` when nobody says.
    pub fn author(&self, kind: &Kind, publisher: &str) -> Option<&str> {
        self.authors
            .get(kind.as_str())
            .or_else(|| self.authors.get(ANY_KIND))
            .map(String::as_str)
            .or_else(|| self.publishers.author(publisher))
    }

    pub fn referents(&self) -> &[Referent] {
        &self.referents
    }

    /// The place of `referent` in [`Registry::referents`], if it is one of
    /// this registry's (for counters kept per référent beside a registry).
    pub fn position(&self, referent: &Referent) -> Option<usize> {
        let range = self.referents.as_ptr_range();
        let at = std::ptr::from_ref(referent);
        range
            .contains(&at)
            .then(|| (at as usize - range.start as usize) / std::mem::size_of::<Referent>())
    }

    /// Who may publish what (see [`Publishers::authorize`]).
    pub fn publishers(&self) -> &Publishers {
        &self.publishers
    }
}

/// Référents by territory code: each key points at a run of one flat list
/// of référent indexes (in registry order), so a national registry costs
/// two allocations, not one per commune.
#[derive(Debug)]
struct Index<K> {
    runs: HashMap<K, (u32, u32)>,
    referents: Vec<ReferentIndex>,
}

impl<K: std::hash::Hash + Eq + Ord + Copy> Index<K> {
    fn new(mut entries: Vec<(K, ReferentIndex)>) -> Self {
        // Stable: référents of one key keep their registry order.
        entries.sort_by_key(|(key, _)| *key);
        let mut runs = HashMap::with_capacity(entries.len());
        let mut referents = Vec::with_capacity(entries.len());
        for chunk in entries.chunk_by(|a, b| a.0 == b.0) {
            let start = referents.len() as u32;
            referents.extend(chunk.iter().map(|(_, referent)| *referent));
            runs.insert(chunk[0].0, (start, chunk.len() as u32));
        }
        runs.shrink_to_fit();
        Self { runs, referents }
    }

    fn get(&self, key: &K) -> Option<&[ReferentIndex]> {
        let &(start, len) = self.runs.get(key)?;
        self.referents.get(start as usize..(start + len) as usize)
    }

    fn keys(&self) -> impl Iterator<Item = &K> {
        self.runs.keys()
    }

    /// Each key with its référents, in no order.
    fn entries(&self) -> impl Iterator<Item = (&K, &[ReferentIndex])> {
        self.runs.iter().map(|(key, &(start, len))| {
            (key, &self.referents[start as usize..(start + len) as usize])
        })
    }
}

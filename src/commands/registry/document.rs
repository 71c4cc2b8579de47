//! The registry file as a document that `relais registry import` rewrites
//! and `relais registry export` reads: its `[[route]]`, `[[network]]` and
//! `[[publisher]]` entries carried as they are, and its `[[referent]]`s
//! with every key the file may give. It checks nothing: what it writes is
//! checked by [`crate::registry::Registry`] before anyone reads it.
//!
//! Written back, the document is regenerated TOML: deterministic (the
//! référents sorted by id, their territories sorted), without the
//! comments of the file it was read from.

use std::path::Path;

use std::sync::Arc;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::geography::Geography;
use crate::registry::{Registry, RegistryError};

/// A registry file's entries.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RegistryDocument {
    /// The label people give this version of the file, kept as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) version: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) route: Vec<toml::Table>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) network: Vec<toml::Table>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) publisher: Vec<toml::Table>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) referent: Vec<ReferentEntry>,
}

/// A `[[referent]]`, its keys in the order a person reads them. Unknown
/// keys are refused, as the registry refuses them: a key this document
/// did not know would otherwise be dropped on rewriting.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReferentEntry {
    pub(super) id: String,
    pub(super) network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) organisation: Option<String>,
    pub(super) email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) phone: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) communes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) epcis: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) departements: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) regions: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) fallback: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) deputies: Vec<String>,
    /// What a spreadsheet does not say: carried over from the registry a
    /// référent is imported into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) hours: Option<toml::Table>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) absences: Vec<toml::Table>,
}

impl RegistryDocument {
    /// Reads a registry file: TOML, or JSON when its name ends in `.json`.
    ///
    /// # Errors
    /// An unreadable file, or one that is not a registry's shape.
    pub(super) fn read(path: &Path) -> anyhow::Result<(Self, String)> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the registry {}", path.display()))?;
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let document = if json {
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!(e.to_string()))
        } else {
            Self::by_entry(&text)
                .map_or_else(|| toml::from_str(&text), Ok)
                .map_err(|e| anyhow::anyhow!(e.to_string()))
        }
        .with_context(|| format!("the registry {} is not a registry's TOML", path.display()))?;
        Ok((document, text))
    }

    /// A TOML registry read one `[[…]]` entry at a time, as relais reads
    /// one (`registry::toml_entries`): a national file's whole tree is
    /// some 120 MB. `None` when an entry does not parse alone: the whole
    /// file's parse then gives the error, with its line.
    fn by_entry(text: &str) -> Option<Self> {
        let mut document: Option<Self> = None;
        for entry in crate::registry::toml_entries(text) {
            let part: Self = toml::from_str(entry).ok()?;
            match &mut document {
                None => document = Some(part),
                Some(whole) => {
                    if part.version.is_some() {
                        return None;
                    }
                    whole.route.extend(part.route);
                    whole.network.extend(part.network);
                    whole.publisher.extend(part.publisher);
                    whole.referent.extend(part.referent);
                }
            }
        }
        document
    }

    /// Checks the document as relais checks a registry file, read in its
    /// JSON form (the same keys as TOML): a national registry parses in a
    /// fraction of the time and memory its TOML takes.
    ///
    /// # Errors
    /// Every error of the registry's checks.
    pub(super) fn check(&self, geography: &Arc<Geography>) -> Result<(), Vec<String>> {
        let json = serde_json::to_string(self).map_err(|error| vec![error.to_string()])?;
        match Registry::from_json(&json, geography) {
            Ok(_) => Ok(()),
            Err(RegistryError::Invalid { errors, .. }) => Err(errors),
            Err(error) => Err(vec![error.to_string()]),
        }
    }

    /// The document as TOML, with `header` (comment lines) first.
    ///
    /// # Errors
    /// A value TOML cannot write (none that a registry holds).
    pub(super) fn to_toml(&self, header: &str) -> anyhow::Result<String> {
        let body = toml::to_string(self).context("cannot write the registry as TOML")?;
        Ok(format!("{header}{body}"))
    }
}

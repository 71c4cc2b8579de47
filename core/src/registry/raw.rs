//! The registry file as written, before any check: the serde shapes of its
//! `[[route]]`, `[[referent]]` and `[[publisher]]` entries, which refuse
//! unknown keys (a misspelt key is an error, not a silent default). Nothing
//! here checks a value; `build` does, and lists every error at once.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::publisher::RawPublisher;

/// The registry file as written, before validation. Its strings borrow
/// from the file's text where they can: a national registry has some
/// 100,000 commune codes, which need not be copied one by one (and then
/// freed, scattered among the registry's own allocations) to be checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegistry<'a> {
    /// The file's own label, e.g. `2026-12-06 UNCCAS`, said beside its
    /// digest wherever the registry is named.
    #[serde(default)]
    pub(super) version: Option<String>,
    #[serde(default)]
    pub(super) route: Vec<RawRoute>,
    #[serde(default, borrow)]
    pub(super) referent: Vec<RawReferent<'a>>,
    #[serde(default)]
    pub(super) publisher: Vec<RawPublisher>,
    #[serde(default)]
    pub(super) network: Vec<RawNetwork>,
}

/// A network's description: its opening hours (`office_hours`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    pub(super) name: String,
    #[serde(default)]
    pub(super) hours: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub(super) time_zone: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) kind: String,
    pub(super) networks: Vec<String>,
    /// How the kind is named to people, e.g. `Orientation sociale`.
    #[serde(default)]
    pub(super) label: Option<String>,
    #[serde(default)]
    pub(super) escalate_after: Option<RawEscalateAfter>,
    /// Who writes alerts of this kind, as the email names them (`un
    /// médecin`, `le CCAS`).
    #[serde(default)]
    pub(super) author: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEscalateAfter {
    #[serde(default)]
    pub(super) urgent: Option<String>,
    #[serde(default)]
    pub(super) normal: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReferent<'a> {
    #[serde(borrow)]
    pub(super) id: Text<'a>,
    #[serde(borrow)]
    pub(super) network: Text<'a>,
    #[serde(default, borrow)]
    pub(super) name: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub(super) organisation: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) email: Text<'a>,
    /// The office's telephone, for the operators who call about an alert
    /// nobody acknowledged.
    #[serde(default, borrow)]
    pub(super) phone: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub(super) communes: Vec<Text<'a>>,
    #[serde(default, borrow)]
    pub(super) epcis: Vec<Text<'a>>,
    #[serde(default, borrow)]
    pub(super) departements: Vec<Text<'a>>,
    #[serde(default, borrow)]
    pub(super) regions: Vec<Text<'a>>,
    #[serde(default)]
    pub(super) fallback: bool,
    #[serde(default, borrow)]
    pub(super) deputies: Vec<Text<'a>>,
    #[serde(default)]
    pub(super) absences: Vec<RawAbsence>,
    /// The référent's own opening hours, over its network's.
    #[serde(default)]
    pub(super) hours: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub(super) time_zone: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAbsence {
    pub(super) from: String,
    pub(super) to: String,
}

/// A string of the registry file: borrowed from the file's text, or owned
/// when the file wrote it with escapes. (serde borrows a bare `Cow<str>`
/// field, but not one inside a `Vec` or an `Option`.)
pub(super) struct Text<'a>(Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }

            fn visit_str<E>(self, text: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E>(self, text: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}

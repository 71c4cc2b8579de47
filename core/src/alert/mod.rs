//! The message contract with the dispatch software: what an alert is, and the
//! one place where a message body becomes an [`Alert`].
//!
//! Everything an alert carries is checked here, once; past [`Alert::parse`]
//! no code sees an unchecked string. The errors name the field and the rule
//! broken, and never repeat a patient value: they travel in dead-letter
//! headers and are printed by the operators' tools.

mod consent;

use std::fmt;

use serde_json::Value;
use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::geography::Geography;
use crate::territory::{Territory, TerritoryError};

pub use consent::{Basis, CONSENT_CLOCK_SKEW, Consent, GivenBy};

/// Longest `summary`, in characters.
pub const SUMMARY_MAX_CHARS: usize = 4000;
/// Longest value of any other free-text field, in characters.
pub const TEXT_MAX_CHARS: usize = 500;

/// Why a message is not a valid alert. Its text goes into the dead letter's
/// `x-relais-error` header, for the developers of the dispatch software.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidAlert {
    #[error("the message is {size} bytes, over the limit of {max} bytes (amqp.max_message_bytes)")]
    TooLarge { size: usize, max: usize },
    #[error("the message is not UTF-8 text")]
    NotUtf8,
    #[error("the message is not a JSON alert: {0}")]
    NotJson(String),
    #[error("field `{field}` {problem}")]
    Field {
        field: &'static str,
        problem: String,
    },
}

impl InvalidAlert {
    fn field(field: &'static str, problem: impl Into<String>) -> Self {
        Self::Field {
            field,
            problem: problem.into(),
        }
    }
}

/// The identity of an alert, chosen by the dispatch software: 1 to 128
/// characters of `A-Za-z0-9._:-`. Two messages with the same id are the same
/// alert.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertId(String);

impl AlertId {
    /// # Errors
    /// A description of the rule broken.
    pub fn parse(id: &str) -> Result<Self, String> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
        if id.is_empty() || id.len() > 128 {
            return Err("must be 1 to 128 characters long".into());
        }
        if !id.chars().all(allowed) {
            return Err("may only contain the characters A-Z a-z 0-9 . _ : -".into());
        }
        Ok(Self(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the alert asks for, e.g. `orientation_sociale`: a lowercase
/// identifier (`[a-z][a-z0-9_]*`, at most 64 characters). It is also the
/// routing key the alert is published with, and the registry routes on it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind(String);

impl Kind {
    /// # Errors
    /// A description of the rule broken.
    pub fn parse(kind: &str) -> Result<Self, String> {
        if !is_identifier(kind) {
            return Err(
                "must be a lowercase identifier: a letter, then letters, digits or `_`, at most 64"
                    .into(),
            );
        }
        Ok(Self(kind.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A lowercase identifier: a letter, then letters, digits or `_`, at most
/// 64 (kinds and network names).
pub(crate) fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    starts_well && rest_ok && text.len() <= 64
}

macro_rules! string_newtype_traits {
    ($type:ty) => {
        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }
    };
}
string_newtype_traits!(AlertId);
string_newtype_traits!(Kind);

/// How fast the référent should act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    Urgent,
    #[default]
    Normal,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Urgent => "urgent",
            Self::Normal => "normal",
        }
    }
}

/// The patient, as far as the doctor chose to tell. Every field is optional;
/// these are the values that must never reach a log line.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Patient {
    /// The association's dossier reference, what the référent quotes when
    /// calling back.
    pub reference: Option<String>,
    pub name: Option<String>,
    pub address: Option<String>,
    pub phone: Option<String>,
}

/// Whom the référent should call back about the alert (the doctor or the
/// association's desk).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Contact {
    pub name: Option<String>,
    pub phone: Option<String>,
}

/// Patient and contact details are redacted from `Debug` so that a stray
/// `{:?}` can never print them.
impl fmt::Debug for Patient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Patient(redacted)")
    }
}

impl fmt::Debug for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Contact(redacted)")
    }
}

/// A valid alert. Built only by [`Alert::parse`].
#[derive(Clone, PartialEq, Eq)]
pub struct Alert {
    id: AlertId,
    kind: Kind,
    priority: Priority,
    emitted_at: OffsetDateTime,
    association: String,
    territory: Territory,
    summary: String,
    patient: Patient,
    contact: Contact,
    consent: Option<Consent>,
}

/// Only what may be logged: identity, kind, priority, territory.
impl fmt::Debug for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alert")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("priority", &self.priority)
            .field("territory", &self.territory)
            .finish_non_exhaustive()
    }
}

impl Alert {
    /// Checks a message body against the contract (see `schema/alert.v1.json`),
    /// now.
    ///
    /// # Errors
    /// [`InvalidAlert`] naming the first rule the body breaks.
    pub fn parse(
        body: &[u8],
        max_bytes: usize,
        geography: &Geography,
    ) -> Result<Self, InvalidAlert> {
        Self::parse_at(body, max_bytes, geography, OffsetDateTime::now_utc())
    }

    /// As [`Alert::parse`], at `now`: the one rule that depends on the
    /// time is that `consent.at` is not in the future (beyond
    /// [`CONSENT_CLOCK_SKEW`]).
    ///
    /// # Errors
    /// As [`Alert::parse`].
    pub fn parse_at(
        body: &[u8],
        max_bytes: usize,
        geography: &Geography,
        now: OffsetDateTime,
    ) -> Result<Self, InvalidAlert> {
        if body.len() > max_bytes {
            return Err(InvalidAlert::TooLarge {
                size: body.len(),
                max: max_bytes,
            });
        }
        let text = std::str::from_utf8(body).map_err(|_| InvalidAlert::NotUtf8)?;
        let value: Value =
            serde_json::from_str(text).map_err(|error| InvalidAlert::NotJson(error.to_string()))?;
        let mut fields = Fields::new("the alert", value)?;

        let id = AlertId::parse(&fields.required_string("id")?)
            .map_err(|problem| InvalidAlert::field("id", problem))?;
        let kind = Kind::parse(&fields.required_string("kind")?)
            .map_err(|problem| InvalidAlert::field("kind", problem))?;
        let priority = match fields.optional_string("priority")?.as_deref() {
            None | Some("normal") => Priority::Normal,
            Some("urgent") => Priority::Urgent,
            Some(_) => {
                return Err(InvalidAlert::field(
                    "priority",
                    "must be `urgent` or `normal`",
                ));
            }
        };
        let emitted_at = instant("emitted_at", &fields.required_string("emitted_at")?)?;
        let association = one_line("association", fields.required_string("association")?)?;
        let territory = parse_territory(fields.required_object("territory")?, geography)?;
        let summary = parse_summary(fields.required_string("summary")?)?;
        let patient = match fields.optional_object("patient")? {
            None => Patient::default(),
            Some(mut patient) => Patient {
                reference: patient.optional_line("patient.reference")?,
                name: patient.optional_line("patient.name")?,
                address: patient.optional_line("patient.address")?,
                phone: patient.optional_line("patient.phone")?,
            },
        };
        let contact = match fields.optional_object("contact")? {
            None => Contact::default(),
            Some(mut contact) => Contact {
                name: contact.optional_line("contact.name")?,
                phone: contact.optional_line("contact.phone")?,
            },
        };
        let consent = fields
            .optional_object("consent")?
            .map(|consent| consent::parse(consent, now))
            .transpose()?;

        Ok(Self {
            id,
            kind,
            priority,
            emitted_at,
            association,
            territory,
            summary,
            patient,
            contact,
            consent,
        })
    }

    pub fn id(&self) -> &AlertId {
        &self.id
    }

    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    pub fn priority(&self) -> Priority {
        self.priority
    }

    pub fn emitted_at(&self) -> OffsetDateTime {
        self.emitted_at
    }

    /// The association that emitted the alert, e.g. `SOS Médecins Paris`.
    pub fn association(&self) -> &str {
        &self.association
    }

    pub fn territory(&self) -> Territory {
        self.territory
    }

    /// The doctor's description of the situation, verbatim (line breaks kept).
    pub fn summary(&self) -> &str {
        &self.summary
    }

    pub fn patient(&self) -> &Patient {
        &self.patient
    }

    pub fn contact(&self) -> &Contact {
        &self.contact
    }

    /// What the alert says of the person's agreement to being reported;
    /// `None` when it says nothing.
    pub fn consent(&self) -> Option<Consent> {
        self.consent
    }

    /// The alert in the contract's form: what [`Alert::parse`] accepts back
    /// as the same alert (the département is given only with a commune-less
    /// territory, the one form that needs it).
    pub fn to_json(&self) -> Value {
        let territory = match self.territory.commune() {
            // The code as the alert gave it, so that it reads back the same.
            Some(commune) => {
                let given = self.territory.mapped().map(|mapped| mapped.from);
                let code = given
                    .as_ref()
                    .map_or(commune.as_str(), |from| from.as_str());
                serde_json::json!({ "commune": code })
            }
            None => serde_json::json!({ "departement": self.territory.departement().as_str() }),
        };
        serde_json::json!({
            "id": self.id.as_str(),
            "kind": self.kind.as_str(),
            "priority": self.priority.as_str(),
            "emitted_at": self.emitted_at.format(&Rfc3339).unwrap_or_default(),
            "association": self.association,
            "territory": territory,
            "summary": self.summary,
            "patient": {
                "reference": self.patient.reference,
                "name": self.patient.name,
                "address": self.patient.address,
                "phone": self.patient.phone,
            },
            "contact": { "name": self.contact.name, "phone": self.contact.phone },
            "consent": self.consent.as_ref().map(Consent::to_json),
        })
    }
}

/// An instant of the alert (`emitted_at`, `consent.at`): RFC 3339, with an
/// offset.
fn instant(field: &'static str, text: &str) -> Result<OffsetDateTime, InvalidAlert> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
        InvalidAlert::field(
            field,
            "must be an RFC 3339 date-time, e.g. 2026-11-22T08:15:00+01:00",
        )
    })
}

/// The territory, read against the official geography: a commune code that
/// exists (or existed: see `geography`), a département that exists and is the
/// commune's.
fn parse_territory(mut fields: Fields, geography: &Geography) -> Result<Territory, InvalidAlert> {
    let commune = fields.optional_string("territory.commune")?;
    let departement = fields.optional_string("territory.departement")?;
    geography
        .territory(commune.as_deref(), departement.as_deref())
        .map_err(|error| {
            let field = match error {
                TerritoryError::Commune
                | TerritoryError::PostalCode
                | TerritoryError::Unknown { .. } => "territory.commune",
                TerritoryError::Departement => "territory.departement",
                TerritoryError::Missing | TerritoryError::Mismatch { .. } => "territory",
            };
            InvalidAlert::field(field, error.to_string())
        })
}

/// The summary keeps its line breaks (Windows ones become `\n`) and tabs; any
/// other control character is refused.
fn parse_summary(summary: String) -> Result<String, InvalidAlert> {
    let summary = if summary.contains('\r') {
        summary.replace("\r\n", "\n")
    } else {
        summary
    };
    if summary.trim().is_empty() {
        return Err(InvalidAlert::field("summary", "must not be empty"));
    }
    if summary.chars().count() > SUMMARY_MAX_CHARS {
        return Err(InvalidAlert::field(
            "summary",
            format!("must be at most {SUMMARY_MAX_CHARS} characters"),
        ));
    }
    if summary
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(InvalidAlert::field(
            "summary",
            "contains a control character other than a line break or a tab",
        ));
    }
    Ok(summary)
}

/// A one-line text: not blank, no control character (so no line break that
/// could ever reach a mail header), at most [`TEXT_MAX_CHARS`].
fn one_line(field: &'static str, value: String) -> Result<String, InvalidAlert> {
    if value.trim().is_empty() {
        return Err(InvalidAlert::field(field, "must not be empty"));
    }
    if value.chars().count() > TEXT_MAX_CHARS {
        return Err(InvalidAlert::field(
            field,
            format!("must be at most {TEXT_MAX_CHARS} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(InvalidAlert::field(
            field,
            "must be a single line without control characters",
        ));
    }
    Ok(value)
}

/// The members of a JSON object, taken one by one by their dotted path
/// (`patient.name`), so that every error names the field and none quotes the
/// value: a misplaced patient detail must not travel on in an error message.
struct Fields {
    object: serde_json::Map<String, Value>,
}

impl Fields {
    fn new(field: &'static str, value: Value) -> Result<Self, InvalidAlert> {
        match value {
            Value::Object(object) => Ok(Self { object }),
            _ => Err(InvalidAlert::field(field, "must be a JSON object")),
        }
    }

    fn take(&mut self, path: &'static str) -> Option<Value> {
        let member = path.rsplit('.').next().unwrap_or(path);
        match self.object.remove(member) {
            None | Some(Value::Null) => None,
            Some(value) => Some(value),
        }
    }

    fn optional_string(&mut self, path: &'static str) -> Result<Option<String>, InvalidAlert> {
        match self.take(path) {
            None => Ok(None),
            Some(Value::String(value)) => Ok(Some(value)),
            Some(_) => Err(InvalidAlert::field(path, "must be a string")),
        }
    }

    fn required_string(&mut self, path: &'static str) -> Result<String, InvalidAlert> {
        self.optional_string(path)?
            .ok_or_else(|| InvalidAlert::field(path, "is required"))
    }

    fn optional_object(&mut self, path: &'static str) -> Result<Option<Fields>, InvalidAlert> {
        self.take(path)
            .map(|value| Fields::new(path, value))
            .transpose()
    }

    fn required_object(&mut self, path: &'static str) -> Result<Fields, InvalidAlert> {
        self.optional_object(path)?
            .ok_or_else(|| InvalidAlert::field(path, "is required"))
    }

    /// An optional one-line text; an empty string counts as absent.
    fn optional_line(&mut self, path: &'static str) -> Result<Option<String>, InvalidAlert> {
        match self.optional_string(path)? {
            Some(value) if !value.trim().is_empty() => one_line(path, value).map(Some),
            _ => Ok(None),
        }
    }
}

impl Alert {
    /// The HMAC-SHA-256, under `key`, of the alert's content as parsed:
    /// each value in a fixed order, length-prefixed, so that the same alert
    /// published twice, however its JSON was laid out, has one digest, and
    /// two different ones never share it. No copy of the alert is made. The
    /// store keeps it with each delivery: an id used again for another
    /// alert is told apart from a copy of the same one. Keyed (the key is
    /// the store's), so that whoever reads the store cannot confirm a guess
    /// of a patient's details against it.
    pub fn digest(&self, key: &ring::hmac::Key) -> [u8; 32] {
        let mut context = ring::hmac::Context::with_key(key);
        self.content(|bytes| context.update(bytes));
        let mut digest = [0; 32];
        digest.copy_from_slice(context.sign().as_ref());
        digest
    }

    /// The unkeyed SHA-256 of the same content, as relais kept it before
    /// its digests were keyed: a delivery recorded then is still told
    /// apart from another alert of the same id until the store forgets it
    /// (`store.retention`).
    pub fn unkeyed_digest(&self) -> [u8; 32] {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        self.content(|bytes| context.update(bytes));
        let mut digest = [0; 32];
        digest.copy_from_slice(context.finish().as_ref());
        digest
    }

    /// Feeds the alert's content to `update`, in the digests' order.
    fn content(&self, mut update: impl FnMut(&[u8])) {
        let mut field = |value: Option<&str>| match value {
            None => update(&[0]),
            Some(text) => {
                update(&[1]);
                update(&(text.len() as u64).to_be_bytes());
                update(text.as_bytes());
            }
        };
        let territory = self.territory();
        let emitted_at = self.emitted_at();
        let instant = emitted_at.unix_timestamp_nanos().to_be_bytes();
        let offset = emitted_at.offset().whole_seconds().to_be_bytes();
        let patient = self.patient();
        let contact = self.contact();
        field(Some(self.id().as_str()));
        field(Some(self.kind().as_str()));
        field(Some(self.priority().as_str()));
        field(Some(self.association()));
        field(territory.mapped().as_ref().map(|m| m.from.as_str()));
        field(territory.commune().as_ref().map(|c| c.as_str()));
        field(Some(territory.departement().as_str()));
        field(Some(self.summary()));
        for value in [
            &patient.reference,
            &patient.name,
            &patient.address,
            &patient.phone,
            &contact.name,
            &contact.phone,
        ] {
            field(value.as_deref());
        }
        update(&instant);
        update(&offset);
        // After everything else, and nothing when absent: an alert without
        // a consent keeps the digest the stores have held since before.
        if let Some(consent) = self.consent() {
            update(&[2]);
            let words: &[&str] = match &consent {
                Consent::Given { by, .. } => &[consent.status(), by.as_str()],
                Consent::NotRequired { basis } => &[consent.status(), basis.as_str()],
            };
            for word in words {
                update(&(word.len() as u64).to_be_bytes());
                update(word.as_bytes());
            }
            if let Consent::Given { at, .. } = consent {
                update(&at.unix_timestamp_nanos().to_be_bytes());
                update(&at.offset().whole_seconds().to_be_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests;

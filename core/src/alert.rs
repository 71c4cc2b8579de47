//! The message contract with the dispatch software: what an alert is, and the
//! one place where a message body becomes an [`Alert`].
//!
//! Everything an alert carries is checked here, once; past [`Alert::parse`]
//! no code sees an unchecked string. The errors name the field and the rule
//! broken, and never repeat a patient value: they travel in dead-letter
//! headers and are printed by the operators' tools.

use std::fmt;

use serde_json::Value;
use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::geography::Geography;
use crate::territory::{Territory, TerritoryError};

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
    /// Checks a message body against the contract (see `schema/alert.v1.json`).
    ///
    /// # Errors
    /// [`InvalidAlert`] naming the first rule the body breaks.
    pub fn parse(
        body: &[u8],
        max_bytes: usize,
        geography: &Geography,
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
        let emitted_at = OffsetDateTime::parse(&fields.required_string("emitted_at")?, &Rfc3339)
            .map_err(|_| {
                InvalidAlert::field(
                    "emitted_at",
                    "must be an RFC 3339 date-time, e.g. 2026-11-22T08:15:00+01:00",
                )
            })?;
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
        })
    }
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
    /// The SHA-256 of the alert's content as parsed: each value in a fixed
    /// order, length-prefixed, so that the same alert published twice,
    /// however its JSON was laid out, has one digest, and two different ones
    /// never share it. No copy of the alert is made. The store keeps it with
    /// each delivery: an id used again for another alert is told apart from
    /// a copy of the same one.
    pub fn digest(&self) -> [u8; 32] {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        let mut field = |value: Option<&str>| match value {
            None => context.update(&[0]),
            Some(text) => {
                context.update(&[1]);
                context.update(&(text.len() as u64).to_be_bytes());
                context.update(text.as_bytes());
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
        context.update(&instant);
        context.update(&offset);
        let hash = context.finish();
        let mut digest = [0; 32];
        digest.copy_from_slice(hash.as_ref());
        digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 65536;

    fn example() -> Value {
        serde_json::json!({
            "id": "SOS75-2026-000123",
            "kind": "orientation_sociale",
            "priority": "urgent",
            "emitted_at": "2026-11-22T08:15:00+01:00",
            "association": "SOS Médecins Paris",
            "territory": { "commune": "75113" },
            "summary": "Personne âgée isolée, sans aide à domicile, chute récente.",
            "patient": { "reference": "D-2026-4411", "name": "Mme Jeanne Durand",
                         "address": "12 rue de la Santé, 75013 Paris", "phone": "01 45 00 00 00" },
            "contact": { "name": "Dr Martin", "phone": "01 47 07 77 77" }
        })
    }

    fn parse(value: &Value) -> Result<Alert, InvalidAlert> {
        Alert::parse(
            value.to_string().as_bytes(),
            MAX,
            crate::geography::tests::france(),
        )
    }

    fn with(mut value: Value, pointer: &str, replacement: Value) -> Value {
        *value.pointer_mut(pointer).unwrap() = replacement;
        value
    }

    fn without(mut value: Value, field: &str) -> Value {
        value.as_object_mut().unwrap().remove(field);
        value
    }

    fn field_error(value: &Value) -> (&'static str, String) {
        match parse(value) {
            Err(InvalidAlert::Field { field, problem }) => (field, problem),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn the_contract_example_parses_into_its_parts() {
        let alert = parse(&example()).unwrap();
        assert_eq!(alert.id().as_str(), "SOS75-2026-000123");
        assert_eq!(alert.kind().as_str(), "orientation_sociale");
        assert_eq!(alert.priority(), Priority::Urgent);
        assert_eq!(alert.emitted_at().offset().whole_hours(), 1);
        assert_eq!(alert.association(), "SOS Médecins Paris");
        assert_eq!(alert.territory().commune().unwrap().as_str(), "75113");
        assert_eq!(alert.territory().departement().as_str(), "75");
        assert_eq!(alert.patient().reference.as_deref(), Some("D-2026-4411"));
        assert_eq!(alert.contact().phone.as_deref(), Some("01 47 07 77 77"));
    }

    #[test]
    fn optional_parts_default_and_unknown_fields_are_ignored() {
        let mut value = without(
            without(without(example(), "priority"), "patient"),
            "contact",
        );
        value["future_field"] = serde_json::json!({"anything": [1, 2]});
        let alert = parse(&value).unwrap();
        assert_eq!(alert.priority(), Priority::Normal);
        assert_eq!(alert.patient(), &Patient::default());
        assert_eq!(alert.contact(), &Contact::default());
    }

    #[test]
    fn every_required_field_is_required() {
        for field in [
            "id",
            "kind",
            "emitted_at",
            "association",
            "territory",
            "summary",
        ] {
            assert_eq!(
                parse(&without(example(), field)).unwrap_err().to_string(),
                format!("field `{field}` is required")
            );
            let null = with(example(), &format!("/{field}"), Value::Null);
            assert_eq!(field_error(&null).1, "is required");
        }
    }

    #[test]
    fn the_id_is_checked() {
        for id in ["", "a b", "SOS75/2026", "é", &"x".repeat(129)] {
            let (field, _) = field_error(&with(example(), "/id", id.into()));
            assert_eq!(field, "id", "{id:?}");
        }
        assert!(parse(&with(example(), "/id", "a.B_9:-".into())).is_ok());
        assert!(parse(&with(example(), "/id", "x".repeat(128).into())).is_ok());
    }

    #[test]
    fn the_kind_must_be_an_identifier() {
        for kind in [
            "",
            "Orientation",
            "9x",
            "orientation-sociale",
            "a b",
            &"a".repeat(65),
        ] {
            assert_eq!(
                field_error(&with(example(), "/kind", kind.into())).0,
                "kind"
            );
        }
    }

    #[test]
    fn the_priority_is_urgent_or_normal() {
        let (field, problem) = field_error(&with(example(), "/priority", "URGENT".into()));
        assert_eq!(
            (field, problem.as_str()),
            ("priority", "must be `urgent` or `normal`")
        );
        let normal = parse(&with(example(), "/priority", "normal".into())).unwrap();
        assert_eq!(normal.priority(), Priority::Normal);
    }

    #[test]
    fn emitted_at_must_be_rfc3339() {
        for date in ["2026-11-22", "22/11/2026 08:15", "2026-11-22T08:15:00"] {
            assert_eq!(
                field_error(&with(example(), "/emitted_at", date.into())).0,
                "emitted_at"
            );
        }
        assert!(
            parse(&with(
                example(),
                "/emitted_at",
                "2026-11-22T07:15:00Z".into()
            ))
            .is_ok()
        );
    }

    #[test]
    fn the_territory_needs_a_valid_commune_or_departement() {
        let value = with(example(), "/territory", serde_json::json!({}));
        assert_eq!(field_error(&value).0, "territory");
        let value = with(
            example(),
            "/territory",
            serde_json::json!({"commune": "7511"}),
        );
        assert_eq!(field_error(&value).0, "territory.commune");
        let value = with(
            example(),
            "/territory",
            serde_json::json!({"departement": "20"}),
        );
        assert_eq!(field_error(&value).0, "territory.departement");
        let value = with(
            example(),
            "/territory",
            serde_json::json!({"departement": "2A"}),
        );
        assert_eq!(
            parse(&value).unwrap().territory().departement().as_str(),
            "2A"
        );
    }

    #[test]
    fn the_summary_is_bounded_and_keeps_its_lines() {
        let long = "é".repeat(SUMMARY_MAX_CHARS + 1);
        assert_eq!(
            field_error(&with(example(), "/summary", long.into())).0,
            "summary"
        );
        let exact = "é".repeat(SUMMARY_MAX_CHARS);
        assert!(parse(&with(example(), "/summary", exact.into())).is_ok());
        assert_eq!(
            field_error(&with(example(), "/summary", "  \n ".into())).0,
            "summary"
        );
        assert_eq!(
            field_error(&with(example(), "/summary", "a\u{7}b".into())).0,
            "summary"
        );
        let lines = parse(&with(
            example(),
            "/summary",
            "ligne 1\r\nligne 2\n\tfin".into(),
        ));
        assert_eq!(lines.unwrap().summary(), "ligne 1\nligne 2\n\tfin");
    }

    #[test]
    fn one_line_fields_refuse_line_breaks() {
        for pointer in ["/association", "/patient/name", "/contact/phone"] {
            let value = with(example(), pointer, "Dr X\r\nBcc: x@evil.example".into());
            let (_, problem) = field_error(&value);
            assert_eq!(problem, "must be a single line without control characters");
        }
    }

    #[test]
    fn errors_never_quote_patient_values() {
        let sentinel = "PATIENT-SENTINEL-42";
        let cases = [
            with(example(), "/patient", sentinel.into()),
            with(example(), "/patient/name", serde_json::json!([sentinel])),
            with(
                example(),
                "/patient/address",
                format!("{sentinel}\n").into(),
            ),
            with(example(), "/contact", serde_json::json!([sentinel])),
            with(example(), "/summary", format!("{sentinel}\u{0}").into()),
            with(example(), "/territory", sentinel.into()),
            with(example(), "/territory/commune", sentinel.into()),
            with(
                example(),
                "/association",
                serde_json::json!({ "x": sentinel }),
            ),
            with(example(), "/id", format!("{sentinel} ").into()),
        ];
        for value in cases {
            let error = parse(&value).unwrap_err().to_string();
            assert!(!error.contains(sentinel), "{error}");
        }
    }

    #[test]
    fn oversized_non_utf8_and_non_json_bodies_are_invalid() {
        let body = example().to_string();
        assert_eq!(
            Alert::parse(body.as_bytes(), 100, crate::geography::tests::france()),
            Err(InvalidAlert::TooLarge {
                size: body.len(),
                max: 100
            })
        );
        assert_eq!(
            Alert::parse(
                b"{\"id\": \"\xff\"}",
                MAX,
                crate::geography::tests::france()
            ),
            Err(InvalidAlert::NotUtf8)
        );
        assert!(matches!(
            Alert::parse(b"not json", MAX, crate::geography::tests::france()),
            Err(InvalidAlert::NotJson(_))
        ));
        assert_eq!(
            Alert::parse(b"[1, 2]", MAX, crate::geography::tests::france())
                .unwrap_err()
                .to_string(),
            "field `the alert` must be a JSON object"
        );
    }

    #[test]
    fn debug_output_carries_no_patient_data() {
        let alert = parse(&example()).unwrap();
        let debug = format!("{alert:?} {:?} {:?}", alert.patient(), alert.contact());
        assert!(!debug.contains("Durand") && !debug.contains("Martin") && !debug.contains("01 4"));
        assert!(debug.contains("SOS75-2026-000123"));
    }

    fn hex(digest: [u8; 32]) -> String {
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn the_digest_of_an_alert_is_pinned_as_the_stores_hold_it() {
        // The stores hold these bytes: a change would make every alert
        // delivered before it a conflict with its own copies.
        let full = parse(&example()).unwrap();
        let bare = parse(&serde_json::json!({
            "id": "SOS01-7",
            "kind": "orientation_sociale",
            "emitted_at": "2026-11-22T23:59:30-05:00",
            "association": "SOS Médecins Ain",
            "territory": { "commune": "01039" },
            "summary": "Isolement.",
        }))
        .unwrap();
        assert!(bare.territory().mapped().is_some());

        assert_eq!(
            hex(full.digest()),
            "8df07dcbd0f9540278db442588d6b725f6b4131d955fe30edd3975f3029ad00d"
        );
        assert_eq!(
            hex(bare.digest()),
            "37d59235eaf12f5f9a2ffcdddb9df82c5727a38f162ebe625a68796ec1a60e57"
        );
    }

    #[test]
    fn the_same_alert_laid_out_differently_has_one_digest_and_another_has_another() {
        let alert = parse(&example()).unwrap();
        let relaid = Alert::parse(
            serde_json::to_string_pretty(&example()).unwrap().as_bytes(),
            MAX,
            crate::geography::tests::france(),
        )
        .unwrap();
        let mut other = example();
        other["territory"]["commune"] = "75112".into();
        let other = parse(&other).unwrap();

        assert_eq!(alert.digest(), relaid.digest());
        assert_ne!(alert.digest(), other.digest());
    }
}

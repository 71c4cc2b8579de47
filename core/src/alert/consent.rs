//! Whether the person agreed to their alert being shared outside the care
//! team (a social-action office, a caisse), as the dispatch software
//! declares it: agreed, by whom and when; or shared without asking, on
//! which legal basis.
//!
//! Two small closed lists, so that an email and the audit trail can say it
//! in words and no free text travels with it. Whether an alert must carry
//! a consent is the operator's setting (`consent.required`), not the
//! contract's: this module only reads what the alert says, and refuses a
//! `consent` that breaks its rules.

use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

use super::{Fields, InvalidAlert, instant};

/// How far ahead of relais's clock `consent.at` may be: the dispatch
/// software's clock and relais's rarely agree to the second, but an
/// agreement dated later than that has not been given yet.
pub const CONSENT_CLOCK_SKEW: Duration = Duration::minutes(5);

/// What an alert says of the person's agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// The person, or whoever may speak for them, agreed to the alert.
    Given {
        by: GivenBy,
        /// When, in the offset the alert gave it.
        at: OffsetDateTime,
    },
    /// Shared without asking, on a legal basis that allows it.
    NotRequired { basis: Basis },
}

/// Who agreed to the alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GivenBy {
    /// The person themselves.
    Person,
    /// Their legal representative (a parent, a guardian).
    LegalRepresentative,
    /// The trusted person they designated (personne de confiance, article
    /// L1111-6 of the Code de la santé publique).
    TrustedPerson,
}

/// Why an alert may be shared without the person's agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// The person cannot give their agreement and the alert protects their
    /// vital interests (GDPR article 9(2)(c)).
    VitalInterest,
    /// The law obliges the sender to report the situation (a child or a
    /// vulnerable adult in danger).
    LegalObligation,
}

impl GivenBy {
    pub const ALL: [Self; 3] = [Self::Person, Self::LegalRepresentative, Self::TrustedPerson];

    /// The word of the contract.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Person => "person",
            Self::LegalRepresentative => "legal_representative",
            Self::TrustedPerson => "trusted_person",
        }
    }
}

impl Basis {
    pub const ALL: [Self; 2] = [Self::VitalInterest, Self::LegalObligation];

    /// The word of the contract.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VitalInterest => "vital_interest",
            Self::LegalObligation => "legal_obligation",
        }
    }
}

impl Consent {
    /// The word of the contract's `consent.status`.
    pub fn status(&self) -> &'static str {
        match self {
            Self::Given { .. } => "given",
            Self::NotRequired { .. } => "not_required",
        }
    }

    /// The consent in one short line, what the audit trail keeps with each
    /// delivery: `given:person:2026-11-22T07:10:00Z` (the instant in UTC,
    /// to the second) or `not_required:vital_interest`.
    pub fn code(&self) -> String {
        match self {
            Self::Given { by, at } => {
                let at = at
                    .to_offset(UtcOffset::UTC)
                    .replace_nanosecond(0)
                    .unwrap_or(*at);
                format!(
                    "given:{}:{}",
                    by.as_str(),
                    at.format(&Rfc3339).unwrap_or_default()
                )
            }
            Self::NotRequired { basis } => format!("not_required:{}", basis.as_str()),
        }
    }

    /// The consent in the contract's form.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Given { by, at } => serde_json::json!({
                "status": "given",
                "given_by": by.as_str(),
                "at": at.format(&Rfc3339).unwrap_or_default(),
            }),
            Self::NotRequired { basis } => serde_json::json!({
                "status": "not_required",
                "basis": basis.as_str(),
            }),
        }
    }
}

impl fmt::Display for Consent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code())
    }
}

/// Reads `consent`'s members; `at` may be at most [`CONSENT_CLOCK_SKEW`]
/// after `now`.
pub(super) fn parse(mut fields: Fields, now: OffsetDateTime) -> Result<Consent, InvalidAlert> {
    match fields.required_string("consent.status")?.as_str() {
        "given" => {
            let by = fields.required_string("consent.given_by")?;
            let by = GivenBy::ALL
                .into_iter()
                .find(|known| known.as_str() == by)
                .ok_or_else(|| {
                    InvalidAlert::field(
                        "consent.given_by",
                        "must be `person`, `legal_representative` or `trusted_person`",
                    )
                })?;
            let at = instant("consent.at", &fields.required_string("consent.at")?)?;
            if at > now + CONSENT_CLOCK_SKEW {
                return Err(InvalidAlert::field(
                    "consent.at",
                    "must not be in the future (more than 5 minutes ahead of relais's clock)",
                ));
            }
            Ok(Consent::Given { by, at })
        }
        "not_required" => {
            let basis = fields.required_string("consent.basis")?;
            let basis = Basis::ALL
                .into_iter()
                .find(|known| known.as_str() == basis)
                .ok_or_else(|| {
                    InvalidAlert::field(
                        "consent.basis",
                        "must be `vital_interest` or `legal_obligation`",
                    )
                })?;
            Ok(Consent::NotRequired { basis })
        }
        _ => Err(InvalidAlert::field(
            "consent.status",
            "must be `given` or `not_required`",
        )),
    }
}

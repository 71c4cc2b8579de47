//! A référent: the person an office names to receive alerts, its identity
//! in the registry, and who stands in for it when it is away. This module
//! owns the checked values only; it never reads the registry file (`raw`)
//! nor decides who receives an alert (`resolve`).

use std::fmt;
use std::sync::Arc;

use lettre::Address;
use lettre::message::Mailbox;

use super::ReferentIndex;
use crate::availability::Absence;

/// A référent's identity in the registry, e.g. `ccas-paris-13`: 1 to 64
/// characters of `A-Za-z0-9._-`. It travels in the `X-Relais-Referent`
/// header and the Message-ID, and names the référent in logs and the audit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReferentId(String);

impl ReferentId {
    /// # Errors
    /// A description of the rule broken.
    pub fn parse(id: &str) -> Result<Self, String> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if id.is_empty() || id.len() > 64 || !id.chars().all(allowed) {
            return Err(format!(
                "id {id:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ -"
            ));
        }
        Ok(Self(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReferentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ReferentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A person named by an office to receive alerts.
#[derive(Debug, Clone)]
pub struct Referent {
    pub(super) id: ReferentId,
    /// Shared by every référent of the network.
    pub(super) network: Arc<str>,
    pub(super) organisation: Option<String>,
    pub(super) mailbox: Mailbox,
    /// For the operators only: never in an email, an event or a page.
    pub(super) phone: Option<Phone>,
}

impl Referent {
    pub fn id(&self) -> &ReferentId {
        &self.id
    }

    /// The network of offices the référent belongs to (`ccas`, `cpam`, …).
    pub fn network(&self) -> &str {
        &self.network
    }

    /// The person's name, if the registry gives one.
    pub fn name(&self) -> Option<&str> {
        self.mailbox.name.as_deref()
    }

    /// The office, e.g. `CCAS de Paris 13e`.
    pub fn organisation(&self) -> Option<&str> {
        self.organisation.as_deref()
    }

    /// Name and address, as the email's `To`.
    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    pub fn email(&self) -> &Address {
        &self.mailbox.email
    }

    /// The office's telephone, for the operators.
    pub fn phone(&self) -> Option<&Phone> {
        self.phone.as_ref()
    }
}

/// A telephone number as the registry writes it (`01 53 00 00 00`,
/// `+33 1 53 00 00 00`): digits, with spaces, dots, hyphens, parentheses
/// and one leading `+`; 3 to 15 digits (ITU-T E.164 allows 15; 3 for a
/// short number such as `115`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// # Errors
    /// A description of the rule broken.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let digits = text.chars().filter(char::is_ascii_digit).count();
        let body = text.strip_prefix('+').unwrap_or(text);
        let allowed = |c: char| c.is_ascii_digit() || matches!(c, ' ' | '.' | '-' | '(' | ')');
        if !body.chars().all(allowed) || !(3..=15).contains(&digits) {
            return Err(
                "phone must be 3 to 15 digits, with spaces, dots, hyphens, parentheses \
                 and one leading + (e.g. \"01 53 00 00 00\")"
                    .to_owned(),
            );
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who stands in for a référent, and when it is away.
#[derive(Debug, Default)]
pub(super) struct Availability {
    /// Référents of the same network, in registry order of the list.
    pub(super) deputies: Vec<ReferentIndex>,
    pub(super) absences: Vec<Absence>,
}

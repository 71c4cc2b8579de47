//! What the store holds, as relais reads it: the records of emails,
//! acknowledgements, follow-ups, escalation steps, operators' commands and
//! the absences référents declare. Ids, addresses, replies, codes, dates
//! and times, and what an alert said of consent, in short: never an
//! alert's content.

use std::time::Duration;

use time::{Date, OffsetDateTime};

use crate::alert::Consent;
use crate::follow_up::FollowUp;

/// The SHA-256 of an alert's content in its canonical form: what tells two
/// alerts with one id apart.
pub type Digest = [u8; 32];

/// Which alert: the publisher that sent it and its id. Two publishers may
/// use one id: each has its own alert, its own deliveries,
/// acknowledgements and escalation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertKey<'a> {
    /// The broker user that published it (the broker-checked `user_id`),
    /// or empty when the message named none. The records written before
    /// relais kept publishers have it empty too: every publisher's alert of
    /// that id finds them.
    pub publisher: &'a str,
    /// The alert's own id.
    pub id: &'a str,
}

/// A référent already emailed about an alert, and the content it received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub referent_id: String,
    /// `None` for a record older than digests.
    pub digest: Option<Digest>,
}

/// One email accepted by a mail server: a line of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentEmail {
    /// The alert's publisher (see [`AlertKey`]).
    pub publisher: String,
    pub alert_id: String,
    pub referent_id: String,
    /// The référent's network (`None` for a record older than networks).
    pub network: Option<String>,
    pub email: String,
    pub message_id: String,
    pub smtp_reply: String,
    pub delivered_at: OffsetDateTime,
    /// What the alert said of the person's agreement (see
    /// [`consent_record`]); `None` for a record older than consents.
    pub consent: Option<String>,
    /// The SHA-256 of the registry that chose this référent (see
    /// [`KeptRegistry`]); `None` for a record older than provenance.
    pub registry: Option<String>,
    /// The number the email's return path was tagged with
    /// (`smtp.bounce_address`, see [`crate::bounce::tag`]); `None` when
    /// bounces are not read.
    pub return_path: Option<u64>,
}

/// A registry relais routed with, as the store keeps it: the file's bytes
/// under their SHA-256 (hex), so that the audit can say which registry
/// sent an alert to whom, and a fleet on one store can share one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptRegistry {
    pub digest: String,
    /// The file's `version` label, if it gives one.
    pub version: Option<String>,
    /// `toml` or `json`.
    pub format: String,
    pub body: Vec<u8>,
}

/// What the store knows of a registry, without its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryVersion {
    pub digest: String,
    pub version: Option<String>,
    /// When a relais first routed with it.
    pub first_used: OffsetDateTime,
    /// When it was last made the fleet's (`relais registry publish`).
    pub published_at: Option<OffsetDateTime>,
}

/// A test email `relais registry probe` sent to a référent's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The random token of its confirmation link.
    pub token: String,
    pub referent_id: String,
    pub email: String,
    pub sent_at: OffsetDateTime,
    /// Whether the mail server refused it (or it could not be sent).
    pub refused: bool,
    /// The server's answer, or why it could not be sent.
    pub reply: String,
    /// When the office confirmed receipt from the email's link.
    pub confirmed_at: Option<OffsetDateTime>,
}

/// What the audit trail keeps of an alert's consent: its short form
/// ([`Consent::code`]), or `none` when the alert said nothing (delivered
/// by a relais that does not require consent).
pub fn consent_record(consent: Option<Consent>) -> String {
    consent.map_or_else(|| "none".to_owned(), |consent| consent.code())
}

/// What an acknowledgement changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    /// The first time this référent acknowledged this alert (a second
    /// click changes nothing).
    pub first: bool,
    /// The référent's network, as recorded with its email.
    pub network: Option<String>,
    /// From the alert's first email to its network to this acknowledgement.
    pub waited: Option<Duration>,
}

/// A follow-up a référent recorded (the "suite donnée"): a line of the
/// audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpRecord {
    /// The alert's publisher (see [`AlertKey`]).
    pub publisher: String,
    pub alert_id: String,
    pub referent_id: String,
    pub follow_up: FollowUp,
    pub recorded_at: OffsetDateTime,
}

/// What recording a follow-up changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowedUp {
    /// The acknowledgement it also counts as: `first` when the référent
    /// had not acknowledged the alert before.
    pub acknowledged: Acknowledged,
    /// `false` when it was already the référent's last follow-up: nothing
    /// new was recorded.
    pub recorded: bool,
}

/// Where an alert stands for one of its référents, as their page shows
/// it: what they did, and what the others of their network did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Handling {
    /// When this référent acknowledged it (the first time).
    pub acknowledged_at: Option<OffsetDateTime>,
    /// The first of the network to acknowledge it, by id, when it was
    /// another référent than this one.
    pub first_colleague: Option<(String, OffsetDateTime)>,
    /// The last follow-up recorded by anyone of the network, this
    /// référent included.
    pub follow_up: Option<FollowUpRecord>,
    /// The other référents of the network emailed about it, by id.
    pub colleagues: Vec<String>,
}

/// The last step of an escalation chain: nobody acknowledged.
pub const UNACKNOWLEDGED_STEP: u8 = 3;

/// One step of an alert's escalation chain: 1, the deputies; 2, the
/// fallback référents; 3, declared unacknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscalationStep {
    pub step: u8,
    /// When its wait ends.
    pub due_at: OffsetDateTime,
    /// When relais carried it out, if it did.
    pub done_at: Option<OffsetDateTime>,
}

/// An alert that a network has not acknowledged yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The alert's publisher (see [`AlertKey`]).
    pub publisher: String,
    pub alert_id: String,
    pub network: String,
    /// Its référents that were emailed, by id.
    pub referents: Vec<String>,
    /// Its first email to the network.
    pub since: OffsetDateTime,
    /// The next step of escalation not yet carried out, if the chain runs.
    pub next: Option<EscalationStep>,
    /// When the chain ended with nobody acknowledging, if it did.
    pub unacknowledged_at: Option<OffsetDateTime>,
}

/// One operator command that read or changed the dead letters or the
/// audit trail: who, what, how many, when. Never the messages' content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub recorded_at: OffsetDateTime,
    /// The Unix user, with the one who ran `sudo`, e.g. `root (sudo: alice)`.
    pub unix_user: String,
    /// The command, e.g. `dead-letters replay --reason rejected`.
    pub command: String,
    /// How many messages or deliveries it read or changed.
    pub count: usize,
}

/// An absence a référent declared on its absence page, as the store
/// keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredAbsence {
    /// The store's number for it (what the page's cancel button names).
    pub id: i64,
    /// Who is away.
    pub referent_id: String,
    /// The first and the last day of the absence (Paris dates, included).
    pub from: Date,
    pub to: Date,
    /// Which of its deputies it chose to stand in, if it chose.
    pub deputy_id: Option<String>,
    /// Who declared it: the référent whose personal link opened the page.
    pub declared_by: String,
    pub declared_at: OffsetDateTime,
    /// When it was cancelled (from the same page), if it was.
    pub cancelled_at: Option<OffsetDateTime>,
}

/// An absence to record (see [`DeclaredAbsence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbsenceDeclaration<'a> {
    pub referent_id: &'a str,
    pub from: Date,
    pub to: Date,
    pub deputy_id: Option<&'a str>,
    pub declared_by: &'a str,
    pub declared_at: OffsetDateTime,
}

impl Pending {
    /// Where its escalation chain stands, from the chain's `steps`: the
    /// next step not carried out, and when the last one declared it
    /// unacknowledged.
    pub(super) fn chain(&mut self, steps: &[EscalationStep]) {
        self.next = steps.iter().find(|s| s.done_at.is_none()).copied();
        self.unacknowledged_at = steps
            .iter()
            .find(|s| s.step == UNACKNOWLEDGED_STEP)
            .and_then(|s| s.done_at);
    }
}

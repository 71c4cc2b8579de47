//! The email a référent receives: a French message, text and HTML, laying
//! out everything they need to act on the alert.
//!
//! This module owns the rendering, and the guarantee that nothing an alert
//! carries can change the message's structure: every value is HTML-escaped
//! in the HTML part (the templates are auto-escaped), and only values whose
//! alphabet excludes CR and LF (ids, codes, the kind) reach a header. It
//! never sends anything (that is the mailer's job).
//!
//! An email is rendered once into an [`Email`]: its Message-ID, envelope
//! and bytes, everything the mailer, its retries and the store need.
//! [`notice`] renders the short email that tells a référent a colleague
//! acknowledged an alert.

pub mod notice;
pub mod probe;

use std::io::Write as _;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::message::header::ContentTransferEncoding;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart};
use lettre::{Address, Message};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use thiserror::Error;
use time::OffsetDateTime;

use crate::alert::{Alert, AlertId, Basis, Consent, GivenBy, Priority};
use crate::calendar::Zone;
use crate::geography::Description;
use crate::registry::{Referent, ReferentId};

/// How the registry has an email speak: the kind's label, who wrote the
/// alert, and where the référent's reply goes.
#[derive(Debug, Clone, Copy)]
pub struct Wording<'a> {
    /// `Orientation sociale`.
    pub kind_label: &'a str,
    /// `un médecin`, `le CCAS` (the route's or the publisher's `author`).
    pub author: Option<&'a str>,
    /// The publisher's `contact`: the email's `Reply-To`.
    pub reply_to: Option<&'a Mailbox>,
}

/// `22/11/2026 à 08:15 (heure de Paris)`: an instant in the local time of
/// the alert's territory, its zone named in words.
fn local_time(at: OffsetDateTime, zone: Zone) -> String {
    zone.in_words(jiff::Timestamp::from_nanosecond(at.unix_timestamp_nanos()).unwrap_or_default())
}

#[derive(Debug, Error)]
pub enum RenderError {
    #[error("the email template failed: {0}")]
    Template(#[from] minijinja::Error),
    #[error("the email could not be built: {0}")]
    Build(#[from] lettre::error::Error),
}

/// One email, rendered and formatted once: sent as it is, retried as it
/// is, and recorded under its Message-ID.
#[derive(Debug, Clone)]
pub struct Email {
    message_id: String,
    envelope: Envelope,
    bytes: Vec<u8>,
}

impl Email {
    /// `<relais.<alert>.<référent>@<sender domain>>`: see [`message_id`].
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// The sender and recipient given to the mail server.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The email with `return_path` as its envelope sender, where its
    /// bounce comes back (see [`crate::mail::ReturnPaths`]).
    #[must_use]
    pub fn returning_to(mut self, return_path: Address) -> Self {
        if let Ok(envelope) = Envelope::new(Some(return_path), self.envelope.to().to_vec()) {
            self.envelope = envelope;
        }
        self
    }

    /// The message as sent: headers and body, CRLF line endings.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// `X-Relais-Alert-Id`: which alert an email is about, for the référent's
/// mail filters and for support.
#[derive(Debug, Clone)]
pub struct AlertIdHeader(pub String);

/// `X-Relais-Referent`: which registry entry an email was sent to.
#[derive(Debug, Clone)]
pub struct ReferentHeader(pub String);

impl Header for AlertIdHeader {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Relais-Alert-Id")
    }

    fn parse(value: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(value.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

impl Header for ReferentHeader {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Relais-Referent")
    }

    fn parse(value: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(value.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// The HTML part, sent as 7bit when it can be: in ASCII (every other
/// character as a numeric character reference, `é` → `&#233;`, which HTML
/// reads the same; the template has no `<script>` or `<style>`, where it
/// would not), CRLF line endings, no line over RFC 5322's 998 octets and no
/// NUL. That skips the quoted-printable pass over the larger part, which
/// was the largest cost of an email. lettre would not choose 7bit itself
/// for lines of 76 characters or more (a SHOULD of the RFC, for text read
/// raw), and the summary's lines cannot be re-wrapped (`pre-wrap`). An HTML
/// that breaks a rule is left to lettre's own choice of encoding.
fn html_body(html: String) -> Body {
    const MAX_LINE: usize = 998;
    let mut out = Vec::with_capacity(html.len() + html.len() / 8);
    let mut line_start = 0;
    let mut chars = html.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\0' => return Body::new(html),
            '\r' | '\n' => {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.extend_from_slice(b"\r\n");
                line_start = out.len();
            }
            c if c.is_ascii() => out.push(c as u8),
            c => {
                let _ = write!(out, "&#{};", u32::from(c));
            }
        }
        if out.len() - line_start > MAX_LINE {
            return Body::new(html);
        }
    }
    Body::dangerous_pre_encoded(out, ContentTransferEncoding::SevenBit)
}

/// A patient detail, if details go in the email.
fn detail(value: &Option<String>, details: bool) -> Option<&str> {
    value.as_deref().filter(|_| details)
}

/// Renders the emails; built once, shared by every delivery.
pub struct Renderer {
    templates: Environment<'static>,
    from: Mailbox,
    /// Whether the summary and the patient's name, address and phone go
    /// in the email (`email.include_patient`).
    include_patient: bool,
}

/// Why a référent receives an alert.
#[derive(Debug, Clone, Copy)]
pub enum Addressed<'a> {
    /// It covers the alert's territory.
    Directly,
    /// It stands in for an absent référent.
    OnBehalfOf(&'a Referent),
    /// Nobody acknowledged the alert for this long: it climbs to this
    /// référent (a deputy, or a fallback référent).
    Escalated { unacknowledged_for: Duration },
    /// This référent handed the alert back ("ne relève pas de notre
    /// service"): it goes to the network's fallback référents.
    HandedBack(&'a Referent),
    /// This référent's mailbox refused the alert for good (a bounce): it
    /// goes to its deputies, else to the network's fallback référents.
    Bounced(&'a Referent),
}

/// A référent as an email names them to a colleague: `organisation — name`.
fn who(referent: &Referent) -> String {
    match (referent.organisation(), referent.name()) {
        (Some(organisation), Some(name)) => format!("{organisation} — {name}"),
        (Some(one), None) | (None, Some(one)) => one.to_owned(),
        (None, None) => referent.id().to_string(),
    }
}

/// The référent's personal links that an email carries, when the pages
/// are served (`ack.listen`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PageLinks<'a> {
    /// To acknowledge this alert.
    pub ack: Option<&'a str>,
    /// To the référent's absence page.
    pub absence: Option<&'a str>,
}

/// A wait as people write it: `2 h`, `1 j 12 h`, `30 min`, `45 s`.
fn french_duration(wait: Duration) -> String {
    let seconds = wait.as_secs();
    let parts = [
        (seconds / 86_400, "j"),
        (seconds % 86_400 / 3600, "h"),
        (seconds % 3600 / 60, "min"),
        (seconds % 60, "s"),
    ];
    let words: Vec<String> = parts
        .iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, unit)| format!("{count} {unit}"))
        .collect();
    if words.is_empty() {
        "0 s".to_owned()
    } else {
        words.join(" ")
    }
}

/// What the email says of the person's agreement to the alert being
/// shared with the référent: who agreed and when (in the territory's local
/// time, as `emitted_at` is shown), on which legal basis nobody was asked,
/// or, from a relais that does not require consent, that the alert does
/// not say. No patient data: it stays when the details do not.
fn consent_sentence(alert: &Alert, zone: Zone) -> String {
    match alert.consent() {
        Some(Consent::Given { by, at }) => {
            let who = match by {
                GivenBy::Person => "La personne",
                GivenBy::LegalRepresentative => "Son représentant légal",
                GivenBy::TrustedPerson => "Sa personne de confiance",
            };
            format!(
                "{who} a donné son accord pour ce signalement le {}.",
                local_time(at, zone)
            )
        }
        Some(Consent::NotRequired { basis }) => {
            let why = match basis {
                Basis::VitalInterest => {
                    "intérêt vital de la personne, hors d'état de donner son accord"
                }
                Basis::LegalObligation => "obligation légale de signalement",
            };
            format!("Signalement sans recueil du consentement : {why}.")
        }
        None => "Ce signalement n'indique pas si la personne a donné son accord.".to_owned(),
    }
}

/// What the templates see. Only this struct decides what of an alert
/// reaches the référent.
#[derive(Serialize)]
struct View<'a> {
    subject: &'a str,
    alert_id: &'a str,
    kind_label: &'a str,
    /// Who wrote the alert (`un médecin`), when the registry says.
    author: Option<&'a str>,
    /// Whether a reply reaches the association (`Reply-To`).
    reply_to: bool,
    urgent: bool,
    /// The summary and the patient's details are in the email.
    details: bool,
    association: &'a str,
    /// `Paris 13e Arrondissement (75113)`.
    territory: &'a str,
    /// `Paris (75)`.
    departement: &'a str,
    /// What the alert's code was, when it named a former commune.
    mapped: Option<&'a str>,
    /// The absent référent this one receives the alert for.
    on_behalf_of: Option<&'a str>,
    /// How long nobody acknowledged the alert, when it reaches this
    /// référent by escalation (`2 h`, `1 j 12 h`).
    escalated_after: Option<String>,
    /// Who handed the alert back (`CCAS de Paris 13e — Camille Martin`),
    /// when it reaches this référent so.
    handed_back_by: Option<String>,
    bounced_at: Option<String>,
    /// The référent's personal acknowledgement link.
    ack_link: Option<&'a str>,
    /// The référent's personal link to its absence page.
    absence_link: Option<&'a str>,
    emitted_at: String,
    /// Whether the person agreed, in one sentence (see [`consent_sentence`]).
    consent: String,
    summary: &'a str,
    patient: PatientView<'a>,
    contact: ContactView<'a>,
    referent_name: Option<&'a str>,
    referent_id: &'a str,
    organisation: Option<&'a str>,
    network: &'a str,
}

#[derive(Serialize)]
struct PatientView<'a> {
    any: bool,
    reference: Option<&'a str>,
    name: Option<&'a str>,
    address: Option<&'a str>,
    phone: Option<&'a str>,
}

#[derive(Serialize)]
struct ContactView<'a> {
    name: Option<&'a str>,
    phone: Option<&'a str>,
}

impl Renderer {
    /// # Errors
    /// A template that does not compile (they are part of the binary, so
    /// this is caught by the tests).
    pub fn new(from: Mailbox, include_patient: bool) -> Result<Self, RenderError> {
        let mut templates = Environment::new();
        templates.set_undefined_behavior(UndefinedBehavior::Strict);
        // `.html` templates are HTML-escaped by minijinja's default policy.
        templates.add_template("alert.txt", include_str!("../../../templates/alert.txt"))?;
        templates.add_template("alert.html", include_str!("../../../templates/alert.html"))?;
        Ok(Self {
            templates,
            from,
            include_patient,
        })
    }

    /// The email about `alert` for `referent`.
    ///
    /// # Errors
    /// [`RenderError`] if a template fails to render.
    pub fn render(
        &self,
        published: Published<'_>,
        referent: &Referent,
        wording: Wording<'_>,
        place: &Description,
        addressed: Addressed<'_>,
        links: PageLinks<'_>,
    ) -> Result<Email, RenderError> {
        let Published { alert, publisher } = published;
        let Wording {
            kind_label,
            author,
            reply_to,
        } = wording;
        let zone = Zone::of_departement(alert.territory().departement());
        let urgent = alert.priority() == Priority::Urgent;
        let subject = format!(
            "{}Alerte {} – {} – réf. {}",
            if urgent { "URGENT – " } else { "" },
            kind_label,
            place.place,
            alert.id()
        );
        let patient = alert.patient();
        let contact = alert.contact();
        // Without details, the templates are not even given them.
        let details = self.include_patient;
        let view = View {
            subject: &subject,
            alert_id: alert.id().as_str(),
            kind_label,
            author,
            reply_to: reply_to.is_some(),
            urgent,
            details,
            association: alert.association(),
            territory: &place.place,
            departement: &place.departement,
            mapped: place.mapped.as_deref(),
            ack_link: links.ack,
            absence_link: links.absence,
            on_behalf_of: match addressed {
                Addressed::OnBehalfOf(absent) => Some(
                    absent
                        .name()
                        .or(absent.organisation())
                        .unwrap_or(absent.id().as_str()),
                ),
                _ => None,
            },
            escalated_after: match addressed {
                Addressed::Escalated { unacknowledged_for } => {
                    Some(french_duration(unacknowledged_for))
                }
                _ => None,
            },
            handed_back_by: match addressed {
                Addressed::HandedBack(by) => Some(who(by)),
                _ => None,
            },
            bounced_at: match addressed {
                Addressed::Bounced(at) => Some(who(at)),
                _ => None,
            },
            emitted_at: local_time(alert.emitted_at(), zone),
            consent: consent_sentence(alert, zone),
            summary: if details { alert.summary() } else { "" },
            patient: PatientView {
                any: patient.reference.is_some()
                    || detail(&patient.name, details).is_some()
                    || detail(&patient.address, details).is_some()
                    || detail(&patient.phone, details).is_some(),
                reference: patient.reference.as_deref(),
                name: detail(&patient.name, details),
                address: detail(&patient.address, details),
                phone: detail(&patient.phone, details),
            },
            contact: ContactView {
                name: contact.name.as_deref(),
                phone: contact.phone.as_deref(),
            },
            referent_name: referent.name(),
            referent_id: referent.id().as_str(),
            organisation: referent.organisation(),
            network: referent.network(),
        };
        let view = minijinja::Value::from(minijinja::value::Serde(&view));
        let text = self.templates.get_template("alert.txt")?.render(&view)?;
        let html = html_body(self.templates.get_template("alert.html")?.render(&view)?);

        let message_id = message_id(publisher, alert.id(), referent.id(), &self.from);
        let mut message = Message::builder().from(self.from.clone());
        if let Some(reply_to) = reply_to {
            message = message.reply_to(reply_to.clone());
        }
        let message = message
            .to(ascii_domain(referent.mailbox()))
            .subject(subject)
            .message_id(Some(message_id.clone()))
            .header(AlertIdHeader(alert.id().to_string()))
            .header(ReferentHeader(referent.id().to_string()))
            .multipart(MultiPart::alternative_plain_html(text, html))?;
        Ok(Email {
            message_id,
            envelope: message.envelope().clone(),
            bytes: message.formatted(),
        })
    }
}

/// `mailbox` with its domain in ASCII (IDNA, `xn--…`) when its local part
/// is ASCII: such an address then needs no SMTPUTF8 anywhere, in the
/// envelope or in the `To` header (RFC 6532 allows UTF-8 there only with
/// it). A non-ASCII local part needs SMTPUTF8 anyway and stays as it is.
fn ascii_domain(mailbox: &Mailbox) -> Mailbox {
    let address = &mailbox.email;
    if AsRef::<str>::as_ref(address).is_ascii() || !address.user().is_ascii() {
        return mailbox.clone();
    }
    match idna::domain_to_ascii(address.domain())
        .ok()
        .and_then(|domain| Address::new(address.user(), domain).ok())
    {
        Some(ascii) => Mailbox::new(mailbox.name.clone(), ascii),
        None => mailbox.clone(),
    }
}

/// An alert and the publisher that sent it (the broker user, or empty when
/// the message named none): two publishers may use one id, and each
/// alert's emails have Message-IDs of their own.
#[derive(Debug, Clone, Copy)]
pub struct Published<'a> {
    pub alert: &'a Alert,
    pub publisher: &'a str,
}

/// The Message-ID of the email about `publisher`'s `alert` for
/// `referent`: the same for every send of that alert to that référent, so a
/// re-send is recognisably the same message (and mail servers can drop it
/// as a duplicate); another publisher's alert of the same id has another
/// (`<relais.<alert>.<référent>.<publisher>@<domain>>`; an alert of no
/// known publisher, `<relais.<alert>.<référent>@<domain>>`).
///
/// Alert ids may hold `.` and `:`, which cannot stand anywhere in a
/// Message-ID; they are written `=2E` and `=3A` (`=` is in neither id
/// alphabet, so the encoding stays one-to-one). A publisher (a broker user
/// name, any text) has every character but letters, digits, `-` and `_`
/// written `=` and its bytes in hexadecimal, `=` included.
pub fn message_id(
    publisher: &str,
    alert: &AlertId,
    referent: &ReferentId,
    from: &Mailbox,
) -> String {
    fn encode(id: &str) -> String {
        id.replace('.', "=2E").replace(':', "=3A")
    }
    let mut id = format!(
        "<relais.{}.{}",
        encode(alert.as_str()),
        encode(referent.as_str())
    );
    if !publisher.is_empty() {
        id.push('.');
        for byte in publisher.bytes() {
            if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
                id.push(char::from(byte));
            } else {
                id.push_str(&format!("={byte:02X}"));
            }
        }
    }
    format!("{id}@{}>", from.email.domain())
}

#[cfg(test)]
mod tests;

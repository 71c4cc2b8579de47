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
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::alert::{Alert, AlertId, Priority};
use crate::geography::Description;
use crate::registry::{Referent, ReferentId};

/// How `emitted_at` is shown: `22/11/2026 à 08:15 (UTC+01:00)`, in the
/// alert's own offset, which is the association's local time.
const EMITTED_AT: &[BorrowedFormatItem<'static>] = format_description!(
    "[day]/[month]/[year] à [hour]:[minute] (UTC[offset_hour sign:mandatory]:[offset_minute])"
);

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

/// What the templates see. Only this struct decides what of an alert
/// reaches the référent.
#[derive(Serialize)]
struct View<'a> {
    subject: &'a str,
    alert_id: &'a str,
    kind_label: &'a str,
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
    /// The référent's personal acknowledgement link.
    ack_link: Option<&'a str>,
    emitted_at: String,
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
        templates.add_template("alert.txt", include_str!("../../templates/alert.txt"))?;
        templates.add_template("alert.html", include_str!("../../templates/alert.html"))?;
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
        alert: &Alert,
        referent: &Referent,
        kind_label: &str,
        place: &Description,
        addressed: Addressed<'_>,
        ack_link: Option<&str>,
    ) -> Result<Email, RenderError> {
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
            urgent,
            details,
            association: alert.association(),
            territory: &place.place,
            departement: &place.departement,
            mapped: place.mapped.as_deref(),
            ack_link,
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
            emitted_at: alert
                .emitted_at()
                .format(EMITTED_AT)
                .unwrap_or_else(|_| alert.emitted_at().to_string()),
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

        let message_id = message_id(alert.id(), referent.id(), &self.from);
        let message = Message::builder()
            .from(self.from.clone())
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

/// The Message-ID of the email about `alert` for `referent`: the same for
/// every send of that pair, so a re-send is recognisably the same message
/// (and mail servers can drop it as a duplicate).
///
/// Alert ids may hold `.` and `:`, which cannot stand anywhere in a
/// Message-ID; they are written `=2E` and `=3A` (`=` is in neither id
/// alphabet, so the encoding stays one-to-one).
pub fn message_id(alert: &AlertId, referent: &ReferentId, from: &Mailbox) -> String {
    fn encode(id: &str) -> String {
        id.replace('.', "=2E").replace(':', "=3A")
    }
    format!(
        "<relais.{}.{}@{}>",
        encode(alert.as_str()),
        encode(referent.as_str()),
        from.email.domain()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use crate::testing::france;

    fn alert(patch: serde_json::Value) -> Alert {
        let mut value = serde_json::json!({
            "id": "SOS75-2026-000123",
            "kind": "orientation_sociale",
            "priority": "urgent",
            "emitted_at": "2026-11-22T08:15:00+01:00",
            "association": "SOS Médecins Paris",
            "territory": { "commune": "75113" },
            "summary": "Personne âgée isolée,\nsans aide à domicile.",
            "patient": { "reference": "D-2026-4411", "name": "Mme Jeanne Durand",
                         "address": "12 rue de la Santé", "phone": "01 45 00 00 00" },
            "contact": { "name": "Dr Martin", "phone": "01 47 07 77 77" }
        });
        for (key, patch) in patch.as_object().unwrap() {
            value[key] = patch.clone();
        }
        Alert::parse(value.to_string().as_bytes(), 65536, france()).unwrap()
    }

    fn registry() -> Registry {
        Registry::from_toml(
            r#"
            [[route]]
            kind = "orientation_sociale"
            networks = ["ccas"]
            label = "Orientation sociale"
            [[referent]]
            id = "ccas-paris-13"
            network = "ccas"
            name = "Camille Martin"
            organisation = "CCAS de Paris 13e"
            email = "camille.martin@ccas-paris13.example.org"
            communes = ["75113"]
            "#,
            france(),
        )
        .unwrap()
    }

    fn render(alert: &Alert) -> String {
        let registry = registry();
        let renderer =
            Renderer::new("relais <relais@sos75.example.org>".parse().unwrap(), true).unwrap();
        let email = renderer
            .render(
                alert,
                &registry.referents()[0],
                "Orientation sociale",
                &france().describe(alert.territory()),
                Addressed::Directly,
                None,
            )
            .unwrap();
        String::from_utf8(email.bytes().to_vec()).unwrap()
    }

    /// The decoded text and HTML parts, for assertions on the content.
    fn parts(raw: &str) -> (String, String) {
        let parsed = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .unwrap();
        let text = parsed.body_text(0).unwrap().replace("\r\n", "\n");
        let html = parsed.body_html(0).unwrap().into_owned();
        (text, html)
    }

    #[test]
    fn without_patient_details_the_email_gives_whom_to_call_and_the_dossier_only() {
        let registry = registry();
        let renderer = Renderer::new("relais@sos75.example.org".parse().unwrap(), false).unwrap();
        let message = renderer
            .render(
                &alert(serde_json::json!({})),
                &registry.referents()[0],
                "Orientation sociale",
                &france().describe(alert(serde_json::json!({})).territory()),
                Addressed::Directly,
                None,
            )
            .unwrap();
        let raw = String::from_utf8(message.bytes().to_vec()).unwrap();
        let (text, html) = parts(&raw);

        for part in [&text, &html] {
            assert!(
                part.contains("D-2026-4411"),
                "the dossier reference: {part}"
            );
            assert!(
                part.contains("Dr Martin") && part.contains("01 47 07 77 77"),
                "{part}"
            );
            assert!(part.contains("SOS75-2026-000123"), "{part}");
        }
        assert!(text.contains(
            "ne sont pas transmises par courriel : rappelez le contact ci-dessous en citant la r\u{e9}f\u{e9}rence du dossier."
        ), "{text}");
        for detail in [
            "Jeanne",
            "Durand",
            "Sant",
            "01 45 00 00 00",
            "Personne",
            "domicile",
        ] {
            assert!(!raw.contains(detail), "{detail} left by email");
            assert!(!text.contains(detail) && !html.contains(detail), "{detail}");
        }
    }

    #[test]
    fn the_html_part_is_ascii_and_travels_unencoded() {
        let raw = render(&alert(serde_json::json!({})));
        let (_, html) = parts(&raw);

        assert!(html.is_ascii(), "{html}");
        assert!(html.contains("R&#233;f&#233;rence de l'alerte"), "{html}");
        assert!(html.contains("Mme Jeanne Durand"), "{html}");
        let html_part = raw.split("Content-Type: text/html").nth(1).unwrap();
        assert!(
            html_part.starts_with("; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n"),
            "{html_part}"
        );
    }

    #[test]
    fn every_line_of_the_html_part_ends_in_crlf() {
        // The contract lets only LF (and tabs) into a summary.
        let raw = render(&alert(
            serde_json::json!({ "summary": "un\ndeux\n\ntrois\nquatre" }),
        ));

        let html_part = raw.split("Content-Type: text/html").nth(1).unwrap();
        let bare = html_part
            .match_indices(['\r', '\n'])
            .filter(|(at, found)| match *found {
                "\r" => !html_part[at + 1..].starts_with('\n'),
                _ => !html_part[..*at].ends_with('\r'),
            })
            .count();
        assert_eq!(bare, 0, "{html_part}");
        assert!(
            html_part.contains("un\r\ndeux\r\n\r\ntrois\r\nquatre"),
            "{html_part}"
        );
    }

    #[test]
    fn a_summary_too_long_for_one_line_is_still_encoded_safely() {
        let long = "é".repeat(600) + &"a".repeat(600);
        let raw = render(&alert(serde_json::json!({ "summary": long })));
        let (text, html) = parts(&raw);

        // No line of the message exceeds RFC 5322's 998 octets, and both
        // parts decode back to the whole summary (the HTML as rendered,
        // encoded by lettre, since 600 references make a line of 3,600
        // octets).
        assert!(raw.split("\r\n").all(|line| line.len() <= 998));
        assert!(!raw.contains("Content-Transfer-Encoding: 7bit"));
        assert!(text.contains(&long));
        assert!(html.contains(&long), "{html}");
    }

    #[test]
    fn the_headers_identify_the_alert_and_the_referent() {
        let raw = render(&alert(serde_json::json!({})));
        assert!(
            raw.contains("From: relais <relais@sos75.example.org>\r\n"),
            "{raw}"
        );
        assert!(
            raw.contains("To: \"Camille Martin\" <camille.martin@ccas-paris13.example.org>\r\n"),
            "{raw}"
        );
        assert!(raw.contains("X-Relais-Alert-Id: SOS75-2026-000123\r\n"));
        assert!(raw.contains("X-Relais-Referent: ccas-paris-13\r\n"));
        assert!(raw.contains(
            "Message-ID: <relais.SOS75-2026-000123.ccas-paris-13@sos75.example.org>\r\n"
        ));
        assert!(raw.contains("Content-Type: multipart/alternative;"));
    }

    #[test]
    fn an_internationalised_domain_is_written_in_its_ascii_form() {
        let ascii = ascii_domain(&"Agent <agent@mairie-évry.test>".parse().unwrap());
        assert_eq!(ascii.to_string(), "Agent <agent@xn--mairie-vry-h7a.test>");
        let utf8 = ascii_domain(&"éloïse@mairie-évry.test".parse().unwrap());
        assert_eq!(utf8.email.to_string(), "éloïse@mairie-évry.test");
    }

    #[test]
    fn the_subject_says_urgent_the_kind_and_the_territory() {
        let urgent = render(&alert(serde_json::json!({})));
        let parsed = mail_parser::MessageParser::default()
            .parse(urgent.as_bytes())
            .unwrap();
        assert_eq!(
            parsed.subject(),
            Some(
                "URGENT – Alerte Orientation sociale – Paris 13e Arrondissement (75113) – réf. SOS75-2026-000123"
            )
        );
        let normal = alert(serde_json::json!({"priority": "normal", "id": "A1"}));
        let registry = registry();
        let renderer = Renderer::new("relais@sos75.example.org".parse().unwrap(), true).unwrap();
        let message = renderer
            .render(
                &normal,
                &registry.referents()[0],
                "Orientation sociale",
                &france().describe(normal.territory()),
                Addressed::Directly,
                None,
            )
            .unwrap();
        let parsed = mail_parser::MessageParser::default()
            .parse(message.bytes())
            .unwrap();
        assert_eq!(
            parsed.subject(),
            Some("Alerte Orientation sociale – Paris 13e Arrondissement (75113) – réf. A1")
        );
    }

    #[test]
    fn the_body_lays_out_every_field_in_french() {
        let (text, html) = parts(&render(&alert(serde_json::json!({}))));
        for expected in [
            "Bonjour Camille Martin,",
            "SOS Médecins Paris vous transmet une alerte « Orientation sociale », signalée URGENTE",
            "Référence de l'alerte : SOS75-2026-000123",
            "Émise le : 22/11/2026 à 08:15 (UTC+01:00)",
            "Territoire : Paris 13e Arrondissement (75113), Paris (75)",
            "Personne âgée isolée,\nsans aide à domicile.",
            "Référence du dossier : D-2026-4411",
            "Nom : Mme Jeanne Durand",
            "Adresse : 12 rue de la Santé",
            "Téléphone : 01 45 00 00 00",
            "Dr Martin : 01 47 07 77 77",
            "de CCAS de Paris 13e (réseau ccas, identifiant ccas-paris-13)",
        ] {
            assert!(
                text.contains(expected),
                "text part lacks {expected:?}:\n{text}"
            );
        }
        assert!(
            html.contains("<strong>&#171; Orientation sociale &#187;</strong>"),
            "{html}"
        );
        assert!(html.contains("<li>Nom : Mme Jeanne Durand</li>"), "{html}");
    }

    #[test]
    fn alert_values_are_escaped_in_the_html_part() {
        let hostile = alert(serde_json::json!({
            "association": "<script>alert(1)</script> & Cie",
            "summary": "<img src=x onerror=alert(1)> \"quoted\"",
            "patient": { "name": "<b>Jeanne</b>" }
        }));
        let (text, html) = parts(&render(&hostile));
        assert!(
            !html.contains("<script>") && !html.contains("<img") && !html.contains("<b>Jeanne"),
            "{html}"
        );
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; Cie"),
            "{html}"
        );
        assert!(html.contains("&lt;b&gt;Jeanne&lt;&#x2f;b&gt;"), "{html}");
        // The text part is not HTML: it keeps the values as they are.
        assert!(text.contains("<script>alert(1)</script> & Cie"), "{text}");
    }

    #[test]
    fn no_alert_value_can_add_a_header() {
        // One-line fields refuse CR/LF at parsing; the summary may hold line
        // breaks, which must stay inside the encoded body.
        let injected = alert(serde_json::json!({
            "summary": "fin\r\nBcc: victim@example.org\r\n\r\nX-Injected: yes"
        }));
        let raw = render(&injected);
        let parsed = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .unwrap();
        for part in &parsed.parts {
            for header in part.headers() {
                let name = header.name().to_ascii_lowercase();
                assert!(
                    name != "bcc" && name != "x-injected",
                    "injected header {name}"
                );
            }
        }
        let text = parsed.body_text(0).unwrap();
        assert!(
            text.contains("Bcc: victim@example.org"),
            "the text stays in the body: {text}"
        );
    }

    #[test]
    fn an_alert_without_patient_or_contact_says_whom_to_call() {
        let bare = alert(serde_json::json!({ "patient": null, "contact": null }));
        let (text, _) = parts(&render(&bare));
        assert!(
            text.contains("Aucune coordonnée transmise : rappelez le contact ci-dessous."),
            "{text}"
        );
        assert!(
            text.contains("SOS Médecins Paris, en citant la référence SOS75-2026-000123."),
            "{text}"
        );
    }

    #[test]
    fn message_ids_encode_the_characters_a_message_id_cannot_hold() {
        let from: Mailbox = "relais@sos75.example.org".parse().unwrap();
        let alert = AlertId::parse("SOS75:2026.000123").unwrap();
        let referent = ReferentId::parse("ccas.paris-13").unwrap();
        assert_eq!(
            message_id(&alert, &referent, &from),
            "<relais.SOS75=3A2026=2E000123.ccas=2Eparis-13@sos75.example.org>"
        );
    }
}

//! The test email that proves a référent's address (`relais registry
//! probe`): clearly marked as a test, asking nothing, and with the
//! acknowledgement pages served, a link by which the office confirms that
//! it arrived. It is given a référent and a link, never an alert: it
//! cannot carry patient data.

use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::{Header, HeaderName, HeaderValue};

use super::{Email, ReferentHeader, RenderError, ascii_domain};
use crate::registry::Referent;

/// What every probe's subject says.
pub const SUBJECT: &str = "Message de test de relais — aucune action demandée";

/// `X-Relais-Probe`: the probe's token, so that a bounce or a mail
/// server's log can be matched with `relais registry probe --status`.
#[derive(Debug, Clone)]
pub struct ProbeHeader(pub String);

impl Header for ProbeHeader {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Relais-Probe")
    }

    fn parse(value: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(value.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// The probe `token` to `to`, from `from`; with `confirm`, the link by
/// which the office confirms receipt.
///
/// # Errors
/// [`RenderError::Build`] if the message cannot be built.
pub fn probe(
    from: &Mailbox,
    to: &Referent,
    token: &str,
    confirm: Option<&str>,
) -> Result<Email, RenderError> {
    let message_id = format!("<relais.probe.{token}@{}>", from.email.domain());
    let office = to.organisation().unwrap_or("votre organisme");
    let confirmation = confirm.map_or_else(
        || "Aucune réponse n'est nécessaire.".to_owned(),
        |link| {
            format!(
                "Pour nous aider, vous pouvez confirmer sa bonne réception en ouvrant ce \
                 lien, puis en cliquant sur « Confirmer la réception » :\r\n{link}"
            )
        },
    );
    let text = format!(
        "Bonjour,\r\n\r\n\
         Ceci est un message de test de relais, le service qui transmet à {office} \
         les alertes sociales des médecins de SOS Médecins. Il vérifie que cette \
         adresse ({address}) reçoit bien nos courriels.\r\n\r\n\
         Aucune action n'est demandée : ce message ne concerne aucune personne et ne \
         contient aucune alerte.\r\n\r\n\
         {confirmation}\r\n",
        address = to.email(),
    );
    let message = Message::builder()
        .from(from.clone())
        .to(ascii_domain(to.mailbox()))
        .subject(SUBJECT)
        .message_id(Some(message_id.clone()))
        .header(ProbeHeader(token.to_owned()))
        .header(ReferentHeader(to.id().to_string()))
        .body(text)?;
    Ok(Email {
        message_id,
        envelope: message.envelope().clone(),
        bytes: message.formatted(),
    })
}

//! The short email that tells a référent a colleague of their network
//! acknowledged an alert they also received (`ack.notify_colleagues`):
//! who and when, in one sentence, and the alert's reference. It is given
//! ids, a name and a time, never the alert: it cannot carry patient data.

use lettre::Message;
use lettre::message::Mailbox;

use super::{AlertIdHeader, Email, ReferentHeader, RenderError, ascii_domain, message_id};
use crate::alert::AlertId;
use crate::registry::Referent;

/// What the notice says: the alert, who acknowledged it (`CCAS de Paris
/// 13e — Camille Martin`) and when (`22/11/2026 à 08:15`, Paris time).
#[derive(Debug, Clone, Copy)]
pub struct Acknowledged<'a> {
    /// The alert's publisher (see `Published`): part of the Message-ID.
    pub publisher: &'a str,
    pub alert: &'a AlertId,
    pub by: &'a str,
    pub at: &'a str,
}

/// The notice to `to` that `acknowledged` happened, from `from`. Its
/// Message-ID is that of the alert's email to `to`, marked
/// `=prise-en-compte` (`=` is in no id's alphabet), so that it is never
/// taken for the alert's email itself.
///
/// # Errors
/// [`RenderError::Build`] if the message cannot be built.
pub fn acknowledged(
    from: &Mailbox,
    to: &Referent,
    acknowledged: Acknowledged<'_>,
) -> Result<Email, RenderError> {
    let Acknowledged {
        publisher,
        alert,
        by,
        at,
    } = acknowledged;
    let message_id =
        message_id(publisher, alert, to.id(), from).replacen('@', "=prise-en-compte@", 1);
    let text = format!(
        "Bonjour,\r\n\r\n{by} a pris en compte l'alerte {alert} le {at}.\r\n\r\n\
         Vous avez reçu cette alerte vous aussi : le lien de votre courriel d'alerte \
         indique qui l'a prise en compte et la suite donnée.\r\n\r\n\
         Ce message ne contient aucune donnée sur la personne.\r\n"
    );
    let message = Message::builder()
        .from(from.clone())
        .to(ascii_domain(to.mailbox()))
        .subject(format!("Alerte {alert} : déjà prise en compte"))
        .message_id(Some(message_id.clone()))
        .header(AlertIdHeader(alert.to_string()))
        .header(ReferentHeader(to.id().to_string()))
        .body(text)?;
    Ok(Email {
        message_id,
        envelope: message.envelope().clone(),
        bytes: message.formatted(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use crate::testing::france;

    #[test]
    fn a_colleague_reads_who_acknowledged_the_alert_and_when_and_nothing_of_the_person() {
        let registry = Registry::from_toml(
            r#"
            [[route]]
            kind = "orientation_sociale"
            networks = ["ccas"]
            [[referent]]
            id = "ccas-paris-13-accueil"
            network = "ccas"
            email = "accueil@ccas-paris13.example.org"
            communes = ["75113"]
            "#,
            france(),
        )
        .unwrap();
        let alert = AlertId::parse("SOS75-2026-000123").unwrap();
        let from: Mailbox = "relais <relais@sos75.example.org>".parse().unwrap();

        let email = acknowledged(
            &from,
            &registry.referents()[0],
            Acknowledged {
                publisher: "sos75-dispatch",
                alert: &alert,
                by: "CCAS de Paris 13e — Camille Martin",
                at: "22/11/2026 à 08:15",
            },
        )
        .unwrap();

        let parsed = mail_parser::MessageParser::default()
            .parse(email.bytes())
            .unwrap();
        assert_eq!(
            email.message_id(),
            "<relais.SOS75-2026-000123.ccas-paris-13-accueil.sos75-dispatch=prise-en-compte\
             @sos75.example.org>"
        );
        assert_eq!(
            parsed.subject(),
            Some("Alerte SOS75-2026-000123 : déjà prise en compte")
        );
        assert_eq!(
            parsed.body_text(0).unwrap(),
            "Bonjour,\r\n\r\nCCAS de Paris 13e — Camille Martin a pris en compte l'alerte \
             SOS75-2026-000123 le 22/11/2026 à 08:15.\r\n\r\nVous avez reçu cette alerte vous \
             aussi : le lien de votre courriel d'alerte indique qui l'a prise en compte et la \
             suite donnée.\r\n\r\nCe message ne contient aucune donnée sur la personne.\r\n"
        );
        assert_eq!(
            email
                .envelope()
                .to()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["accueil@ccas-paris13.example.org"]
        );
    }
}

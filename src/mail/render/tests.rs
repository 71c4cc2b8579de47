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
        "contact": { "name": "Dr Martin", "phone": "01 47 07 77 77" },
        "consent": { "status": "given", "given_by": "person", "at": "2026-11-22T08:10:00+01:00" }
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

/// The email's words when the registry says nothing of author or contact.
const WORDING: Wording<'static> = Wording {
    kind_label: "Orientation sociale",
    author: None,
    reply_to: None,
};

fn render(alert: &Alert) -> String {
    let registry = registry();
    let renderer =
        Renderer::new("relais <relais@sos75.example.org>".parse().unwrap(), true).unwrap();
    let email = renderer
        .render(
            Published {
                alert,
                publisher: "",
            },
            &registry.referents()[0],
            WORDING,
            &france().describe(alert.territory()),
            Addressed::Directly,
            PageLinks::default(),
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
            Published {
                alert: &alert(serde_json::json!({})),
                publisher: "",
            },
            &registry.referents()[0],
            WORDING,
            &france().describe(alert(serde_json::json!({})).territory()),
            Addressed::Directly,
            PageLinks::default(),
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
    // Whether the person agreed is no patient detail: it stays.
    assert!(
        text.contains("La personne a donné son accord pour ce signalement le 22/11/2026 à 08:10 (heure de Paris)."),
        "{text}"
    );
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
    assert!(
        raw.contains("Message-ID: <relais.SOS75-2026-000123.ccas-paris-13@sos75.example.org>\r\n")
    );
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
            Published {
                alert: &normal,
                publisher: "",
            },
            &registry.referents()[0],
            WORDING,
            &france().describe(normal.territory()),
            Addressed::Directly,
            PageLinks::default(),
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
        "Émise le : 22/11/2026 à 08:15 (heure de Paris)",
        "Territoire : Paris 13e Arrondissement (75113), Paris (75)",
        "Personne âgée isolée,\nsans aide à domicile.",
        "Référence du dossier : D-2026-4411",
        "Nom : Mme Jeanne Durand",
        "Adresse : 12 rue de la Santé",
        "Téléphone : 01 45 00 00 00",
        "Dr Martin : 01 47 07 77 77",
        "en tant que référent·e pour l'organisme « CCAS de Paris 13e » (réseau ccas, identifiant ccas-paris-13)",
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
        message_id("", &alert, &referent, &from),
        "<relais.SOS75=3A2026=2E000123.ccas=2Eparis-13@sos75.example.org>"
    );
}

#[test]
fn the_email_says_who_agreed_to_the_alert_and_when_in_the_territory_s_local_time() {
    let cases = [
        (
            serde_json::json!({ "status": "given", "given_by": "person",
                                "at": "2026-11-22T08:10:00+01:00" }),
            "La personne a donné son accord pour ce signalement le 22/11/2026 à 08:10 (heure de Paris).",
        ),
        (
            serde_json::json!({ "status": "given", "given_by": "legal_representative",
                                "at": "2026-11-21T23:05:00Z" }),
            "Son représentant légal a donné son accord pour ce signalement le 22/11/2026 à 00:05 (heure de Paris).",
        ),
        (
            serde_json::json!({ "status": "given", "given_by": "trusted_person",
                                "at": "2026-11-22T10:00:00+03:00" }),
            "Sa personne de confiance a donné son accord pour ce signalement le 22/11/2026 à 08:00 (heure de Paris).",
        ),
        (
            serde_json::json!({ "status": "not_required", "basis": "vital_interest" }),
            "Signalement sans recueil du consentement : intérêt vital de la personne, hors \
             d'état de donner son accord.",
        ),
        (
            serde_json::json!({ "status": "not_required", "basis": "legal_obligation" }),
            "Signalement sans recueil du consentement : obligation légale de signalement.",
        ),
        (
            serde_json::Value::Null,
            "Ce signalement n'indique pas si la personne a donné son accord.",
        ),
    ];
    for (consent, sentence) in cases {
        let (text, html) = parts(&render(&alert(serde_json::json!({ "consent": consent }))));

        assert!(
            text.contains(&format!(
                "territoire : Paris 13e Arrondissement (75113).\n\n{sentence}\n\n"
            )),
            "text part lacks {sentence:?}:\n{text}"
        );
        let encoded: String = sentence
            .replace('\'', "&#x27;")
            .replace('/', "&#x2f;")
            .chars()
            .map(|c| {
                if c.is_ascii() {
                    c.to_string()
                } else {
                    format!("&#{};", u32::from(c))
                }
            })
            .collect();
        assert!(
            html.contains(&format!("<p>{encoded}</p>")),
            "{encoded}:\n{html}"
        );
    }
}

#[test]
fn the_email_names_its_author_gives_the_territory_s_time_in_words_and_replies_to_the_association() {
    // Arrange: an alert of La Réunion (UTC+4), from a publisher that names
    // its author and its regulation desk.
    let alert = alert(serde_json::json!({
        "territory": { "commune": "97411" },
        "emitted_at": "2026-11-22T08:15:00+04:00",
        "consent": { "status": "given", "given_by": "person", "at": "2026-11-22T04:10:00Z" },
    }));
    let contact: Mailbox = "Régulation SOS Médecins <regulation@sos974.example.org>"
        .parse()
        .unwrap();
    let wording = Wording {
        kind_label: "Orientation sociale",
        author: Some("un médecin de garde"),
        reply_to: Some(&contact),
    };
    let registry = registry();
    let renderer =
        Renderer::new("relais <relais@sos974.example.org>".parse().unwrap(), true).unwrap();

    // Act
    let email = renderer
        .render(
            Published {
                alert: &alert,
                publisher: "",
            },
            &registry.referents()[0],
            wording,
            &france().describe(alert.territory()),
            Addressed::Directly,
            PageLinks::default(),
        )
        .unwrap();

    // Assert
    let raw = String::from_utf8(email.bytes().to_vec()).unwrap();
    let parsed = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .unwrap();
    let reply_to = parsed.reply_to().unwrap().first().unwrap();
    assert_eq!(reply_to.address(), Some("regulation@sos974.example.org"));
    let (text, html) = parts(&raw);
    for expected in [
        "vous transmet une alerte « Orientation sociale », signalée URGENTE par un médecin de garde, \
         pour une personne de votre territoire",
        "Émise le : 22/11/2026 à 08:15 (heure de La Réunion)",
        "La personne a donné son accord pour ce signalement le 22/11/2026 à 08:10 (heure de La Réunion).",
        "Une question sur cette alerte ? Répondez à ce message : votre réponse parvient à SOS Médecins Paris.",
    ] {
        assert!(text.contains(expected), "{expected}\n---\n{text}");
    }
    assert!(html.contains("par un m&#233;decin de garde"), "{html}");
    assert!(!text.contains("merci de ne pas y répondre"), "{text}");
}

#[test]
fn the_email_links_to_the_referent_s_absence_page_in_one_line() {
    let registry = registry();
    let renderer = Renderer::new("relais@sos75.example.org".parse().unwrap(), false).unwrap();
    let alert = alert(serde_json::json!({}));
    let links = PageLinks {
        ack: Some("https://relais.example.org/ack/A"),
        absence: Some("https://relais.example.org/absence/B"),
    };

    let message = renderer
        .render(
            Published {
                alert: &alert,
                publisher: "",
            },
            &registry.referents()[0],
            WORDING,
            &france().describe(alert.territory()),
            Addressed::Directly,
            links,
        )
        .unwrap();
    let (text, html) = parts(std::str::from_utf8(message.bytes()).unwrap());

    assert!(
        text.contains(
            "https://relais.example.org/ack/A\n\nAbsent·e ? Indiquez vos dates d'absence : \
             https://relais.example.org/absence/B\n\nRéférence de l'alerte"
        ),
        "{text}"
    );
    assert!(
        html.contains(
            "<p>Absent&#183;e ? <a href=\"https:&#x2f;&#x2f;relais.example.org&#x2f;absence&#x2f;B\">\
             Indiquez vos dates d'absence</a></p>"
        ),
        "{html}"
    );
}

//! The acknowledgement pages as the référent's browser receives them: the
//! HTML, rendered from `templates/ack.html` (compiled in) with every value
//! auto-escaped, and the headers a public page needs (no caching of the
//! token, no referrer, a strict CSP, no framing, no indexing).
//!
//! This module only renders: it never reads a token, the registry or the
//! store, and it is given ids, labels, places, times and the names of
//! référents, never patient data. No value reaches the HTML unescaped: the
//! template is `.html`, so minijinja escapes whatever it writes, as it does
//! for the emails. The follow-ups a page offers are the closed list of
//! [`FollowUp`], each a button of a form: nothing a référent types.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::{AutoEscape, Environment, Output, State, UndefinedBehavior, Value};
use serde::Serialize;

use crate::follow_up::FollowUp;

/// One of the pages, with what it shows; the template's `page`.
#[derive(Debug, Serialize)]
#[serde(tag = "page", rename_all = "snake_case")]
pub(super) enum Page<'a> {
    /// A valid link opened: the alert and where it stands, then the
    /// button, or the follow-ups once this référent acknowledged it.
    Confirm {
        alert_id: &'a str,
        /// The kind, as the registry labels it.
        label: &'a str,
        /// The territory, in words.
        place: &'a str,
        /// When the alert was emitted, Paris time (`22/11/2026 à 08h15`).
        emitted: &'a str,
        /// Who of the référent's network acknowledged it first, when it was
        /// another référent.
        colleague: Option<Colleague<'a>>,
        /// When this référent acknowledged it, Paris time (`22/11/2026 à
        /// 08:15`), if they did.
        acknowledged: Option<&'a str>,
        /// The network's last follow-up, in words.
        follow_up: Option<&'a str>,
    },
    /// The button pressed: recorded now (`first`), or recorded already;
    /// the follow-ups offered.
    Thanks {
        alert_id: &'a str,
        first: bool,
        /// The network's last follow-up, in words.
        follow_up: Option<&'a str>,
    },
    /// A follow-up chosen and recorded (the label of the choice); the
    /// others still offered, to change it.
    FollowedUp {
        alert_id: &'a str,
        follow_up: &'a str,
        /// The alert was handed back: not the référent's service's.
        handed_back: bool,
    },
    /// A follow-up that is not one of the buttons' (an altered form).
    UnknownChoice,
    /// The store could not record it: nothing is lost, press again.
    RetryLater,
    /// A link past its `ack.link_ttl`.
    Expired,
    /// A link relais did not sign, or that was altered.
    Unknown,
}

/// A référent of the same network who acknowledged the alert first.
#[derive(Debug, Serialize)]
pub(super) struct Colleague<'a> {
    /// Their organisation and name as the registry has them
    /// (`CCAS de Paris 13e — Camille Martin`).
    pub by: &'a str,
    /// When, Paris time (`22/11/2026 à 08:15`).
    pub at: &'a str,
}

impl Page<'_> {
    fn status(&self) -> StatusCode {
        match self {
            Self::Confirm { .. } | Self::Thanks { .. } | Self::FollowedUp { .. } => StatusCode::OK,
            Self::UnknownChoice => StatusCode::BAD_REQUEST,
            Self::RetryLater => StatusCode::SERVICE_UNAVAILABLE,
            Self::Expired => StatusCode::GONE,
            Self::Unknown => StatusCode::NOT_FOUND,
        }
    }
}

/// One button of the follow-ups' form: the code it posts, the words it
/// shows.
#[derive(Serialize)]
struct Choice {
    code: &'static str,
    label: &'static str,
}

/// The pages' template, compiled once; shared by every request.
pub(super) struct Templates {
    templates: Environment<'static>,
}

impl Templates {
    /// # Errors
    /// A template that does not compile (it is part of the binary, so this
    /// is caught by the tests).
    pub(super) fn new() -> Result<Self, minijinja::Error> {
        let mut templates = Environment::new();
        templates.set_undefined_behavior(UndefinedBehavior::Strict);
        templates.set_formatter(escape);
        let choices: Vec<Choice> = FollowUp::ALL
            .into_iter()
            .map(|choice| Choice {
                code: choice.code(),
                label: choice.label(),
            })
            .collect();
        templates.add_global("choices", Value::from(minijinja::value::Serde(&choices)));
        // `.html`: every value is HTML-escaped (see `escape`).
        templates.add_template("ack.html", include_str!("../../templates/ack.html"))?;
        Ok(Self { templates })
    }

    /// `page`, whole, with its status and the headers a public page needs.
    pub(super) fn render(&self, page: &Page<'_>) -> Response {
        let view = Value::from(minijinja::value::Serde(page));
        match self
            .templates
            .get_template("ack.html")
            .and_then(|template| template.render(&view))
        {
            Ok(html) => (page.status(), headers(), html).into_response(),
            Err(error) => {
                tracing::error!(%error, "cannot render an acknowledgement page");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

/// What a public page is served with: no caching (the link is personal),
/// no referrer, nothing but its own inline style and form, no framing, no
/// indexing.
fn headers() -> [(HeaderName, HeaderValue); 7] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'",
            ),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            HeaderName::from_static("x-robots-tag"),
            HeaderValue::from_static("noindex"),
        ),
    ]
}

/// minijinja's auto-escaping, with the pages' own entities: `'` is
/// written `&#39;` and `/` is left as it is (minijinja writes `&#x27;` and
/// `&#x2f;`), so that a page is the same bytes as it has always been; a
/// browser reads both the same. `&`, `<`, `>` and `"` are escaped as
/// minijinja does; a value the template marks safe, or a template that is
/// not HTML, is left to minijinja.
fn escape(out: &mut Output, state: &mut State, value: &Value) -> Result<(), minijinja::Error> {
    let Some(text) = value
        .as_str()
        .filter(|_| *state.auto_escape() == AutoEscape::Html && !value.is_safe())
    else {
        return minijinja::escape_formatter(out, state, value);
    };
    let mut rest = text;
    while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
        out.write_str(&rest[..at])?;
        out.write_str(match rest.as_bytes()[at] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => "&#39;",
        })?;
        rest = &rest[at + 1..];
    }
    out.write_str(rest)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every character the escaping changes, and a `/` it leaves.
    const REFERENCE: &str = "SOS94-1/2'<&>\"";
    const LABEL: &str = "Signalement d'isolement <b> & \"x\" / y";
    const PLACE: &str = "L'Haÿ-les-Roses (94038)";

    const HEAD: &str = "<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\">\
        <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
        <title>relais — prise en compte d'une alerte</title><style>body{font-family:\
        system-ui,Arial,sans-serif;margin:0;padding:16px;color:#1a1a1a;background:#fafafa}\
        main{max-width:560px;margin:auto;background:#fff;padding:20px;border-radius:8px}\
        h1{font-size:1.4em}dt{font-weight:bold;margin-top:8px}dd{margin:0}button{width:100%;\
        font-size:1.1em;padding:14px;margin-top:16px;border:0;border-radius:6px;\
        background:#0b5394;color:#fff}h2{font-size:1.15em;margin-top:24px}.note{padding:10px;\
        border-left:4px solid #0b5394;background:#eef3f9}.suite button{margin-top:10px;\
        background:#fff;color:#0b5394;border:2px solid #0b5394}</style></head><body><main>";
    const TAIL: &str = "</main></body></html>";
    /// The follow-ups' form: one button per choice, each posting its code.
    const FOLLOW_UPS: &str = "<form method=\"post\" class=\"suite\">\
        <button type=\"submit\" name=\"suite\" value=\"contact_etabli\">Contact établi avec la \
        personne</button><button type=\"submit\" name=\"suite\" value=\"oriente\">Orientée vers \
        un autre service</button><button type=\"submit\" name=\"suite\" value=\"injoignable\">\
        Personne injoignable</button><button type=\"submit\" name=\"suite\" value=\"refus\">La \
        personne refuse l&#39;accompagnement</button><button type=\"submit\" name=\"suite\" \
        value=\"hors_perimetre\">Ne relève pas de notre service</button></form>";

    async fn rendered(page: &Page<'_>) -> (StatusCode, String) {
        let response = Templates::new().unwrap().render(page);
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn each_page_is_the_html_relais_has_always_served_byte_for_byte() {
        let confirm = Page::Confirm {
            alert_id: REFERENCE,
            label: LABEL,
            place: PLACE,
            emitted: "22/11/2026 à 08h15",
            colleague: None,
            acknowledged: None,
            follow_up: None,
        };
        let pages: [(Page<'_>, StatusCode, &str); 7] = [
            (
                confirm,
                StatusCode::OK,
                "<h1>Alerte SOS94-1/2&#39;&lt;&amp;&gt;&quot;</h1><dl><dt>Type</dt>\
                 <dd>Signalement d&#39;isolement &lt;b&gt; &amp; &quot;x&quot; / y</dd>\
                 <dt>Territoire</dt><dd>L&#39;Haÿ-les-Roses (94038)</dd><dt>Émise le</dt>\
                 <dd>22/11/2026 à 08h15</dd></dl><p>En confirmant, vous indiquez à \
                 l'association et aux autres référents que l'alerte est vue et sera \
                 traitée.</p><form method=\"post\"><button type=\"submit\">J'ai pris \
                 connaissance de cette alerte</button></form>",
            ),
            (
                Page::Thanks {
                    alert_id: REFERENCE,
                    first: true,
                    follow_up: None,
                },
                StatusCode::OK,
                &format!(
                    "<h1>Merci</h1><p>L'alerte <strong>SOS94-1/2&#39;&lt;&amp;&gt;&quot;</strong> \
                     est notée comme prise en compte.</p><h2>Quelle suite avez-vous donnée ?</h2>\
                     <p>Dès que vous le savez, indiquez-la ici, ou plus tard en revenant sur ce \
                     lien.</p>{FOLLOW_UPS}"
                ),
            ),
            (
                Page::Thanks {
                    alert_id: REFERENCE,
                    first: false,
                    follow_up: Some("Personne injoignable"),
                },
                StatusCode::OK,
                &format!(
                    "<h1>Merci</h1><p>L'alerte <strong>SOS94-1/2&#39;&lt;&amp;&gt;&quot;</strong> \
                     est notée comme prise en compte (elle l'était déjà).</p><p>Suite donnée : \
                     Personne injoignable</p><h2>Quelle suite avez-vous donnée ?</h2><p>Dès que \
                     vous le savez, indiquez-la ici, ou plus tard en revenant sur ce lien.</p>\
                     {FOLLOW_UPS}"
                ),
            ),
            (
                Page::UnknownChoice,
                StatusCode::BAD_REQUEST,
                "<h1>Choix inconnu</h1><p>Ce choix n'est pas l'un de ceux que la page propose. \
                 Revenez sur le lien du courriel et appuyez sur l'un des boutons.</p>",
            ),
            (
                Page::RetryLater,
                StatusCode::SERVICE_UNAVAILABLE,
                "<h1>Réessayez dans un instant</h1><p>La prise en compte n'a pas pu être \
                 enregistrée. Rien n'est perdu : revenez sur ce lien et appuyez de nouveau \
                 sur le bouton.</p>",
            ),
            (
                Page::Expired,
                StatusCode::GONE,
                "<h1>Lien expiré</h1><p>Ce lien de prise en compte n'est plus valable. Si \
                 l'alerte vous concerne encore, contactez l'association qui vous l'a \
                 transmise.</p>",
            ),
            (
                Page::Unknown,
                StatusCode::NOT_FOUND,
                "<h1>Lien inconnu</h1><p>Ce lien n'est pas un lien de prise en compte \
                 valable. Ouvrez-le depuis le courriel reçu, sans le modifier.</p>",
            ),
        ];

        for (page, status, main) in pages {
            assert_eq!(
                rendered(&page).await,
                (status, format!("{HEAD}{main}{TAIL}"))
            );
        }
    }

    #[tokio::test]
    async fn a_referent_reads_who_acknowledged_first_and_what_was_done_then_the_follow_ups() {
        let alert = |colleague, acknowledged, follow_up| Page::Confirm {
            alert_id: "SOS75-1",
            label: "Orientation sociale",
            place: "Paris 13e Arrondissement (75113)",
            emitted: "22/11/2026 à 08h15",
            colleague,
            acknowledged,
            follow_up,
        };
        let head = "<h1>Alerte SOS75-1</h1><dl><dt>Type</dt><dd>Orientation sociale</dd>\
            <dt>Territoire</dt><dd>Paris 13e Arrondissement (75113)</dd><dt>Émise le</dt>\
            <dd>22/11/2026 à 08h15</dd></dl>";
        let colleague = "<p class=\"note\"><strong>Déjà prise en compte par CCAS de Paris 13e \
            — Camille &lt;M&gt; le 22/11/2026 à 08:20</strong></p>";
        let by = || {
            Some(Colleague {
                by: "CCAS de Paris 13e — Camille <M>",
                at: "22/11/2026 à 08:20",
            })
        };

        let not_yet = rendered(&alert(by(), None, Some("Orientée vers un autre service"))).await;
        let acknowledged = rendered(&alert(by(), Some("22/11/2026 à 09:05"), None)).await;
        let contacted = rendered(&Page::FollowedUp {
            alert_id: "SOS75-1",
            follow_up: "Contact établi avec la personne",
            handed_back: false,
        })
        .await;
        let handed_back = rendered(&Page::FollowedUp {
            alert_id: "SOS75-1",
            follow_up: "Ne relève pas de notre service",
            handed_back: true,
        })
        .await;

        assert_eq!(
            not_yet,
            (
                StatusCode::OK,
                format!(
                    "{HEAD}{head}{colleague}<p>Suite donnée : Orientée vers un autre service</p>\
                     <p>En confirmant, vous indiquez à l'association et aux autres référents que \
                     l'alerte est vue et sera traitée.</p><form method=\"post\"><button \
                     type=\"submit\">J'ai pris connaissance de cette alerte</button></form>{TAIL}"
                )
            ),
            "the button still acknowledges for this référent too"
        );
        assert_eq!(
            acknowledged,
            (
                StatusCode::OK,
                format!(
                    "{HEAD}{head}{colleague}<p>Vous avez pris en compte cette alerte le 22/11/2026 \
                     à 09:05.</p><h2>Quelle suite avez-vous donnée ?</h2><p>Vous pourrez la \
                     modifier en revenant sur ce lien.</p>{FOLLOW_UPS}{TAIL}"
                )
            )
        );
        assert_eq!(
            contacted,
            (
                StatusCode::OK,
                format!(
                    "{HEAD}<h1>Merci</h1><p>La suite donnée à l'alerte <strong>SOS75-1</strong> \
                     est notée : Contact établi avec la personne.</p><p>Vous pouvez fermer cette \
                     page.</p><h2>Modifier la suite donnée</h2>{FOLLOW_UPS}{TAIL}"
                )
            )
        );
        assert_eq!(
            handed_back,
            (
                StatusCode::OK,
                format!(
                    "{HEAD}<h1>Alerte SOS75-1</h1><p>Merci : l'association est informée que cette \
                     alerte ne relève pas de votre service. Elle est transmise au référent de repli de \
                     votre réseau.</p><p>Vous pouvez fermer cette \
                     page.</p><h2>Modifier la suite donnée</h2>{FOLLOW_UPS}{TAIL}"
                )
            )
        );
    }

    #[tokio::test]
    async fn a_page_is_served_with_the_headers_a_public_page_needs() {
        let response = Templates::new().unwrap().render(&Page::Expired);

        let headers = response.headers();
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers["x-robots-tag"], "noindex");
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    }
}

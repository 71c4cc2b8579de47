//! The acknowledgement pages as the référent's browser receives them: the
//! HTML, rendered from `templates/ack.html` (compiled in) with every value
//! auto-escaped, and the headers a public page needs (no caching of the
//! token, no referrer, a strict CSP, no framing, no indexing).
//!
//! This module only renders: it never reads a token, the registry or the
//! store, and it is given ids, labels and places, never patient data. No
//! value reaches the HTML unescaped: the template is `.html`, so minijinja
//! escapes whatever it writes, as it does for the emails.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::{AutoEscape, Environment, Output, State, UndefinedBehavior, Value};
use serde::Serialize;

/// One of the pages, with what it shows; the template's `page`.
#[derive(Debug, Serialize)]
#[serde(tag = "page", rename_all = "snake_case")]
pub(super) enum Page<'a> {
    /// A valid link opened: the alert, and the button.
    Confirm {
        alert_id: &'a str,
        /// The kind, as the registry labels it.
        label: &'a str,
        /// The territory, in words.
        place: &'a str,
        /// When the alert was emitted, Paris time (`22/11/2026 à 08h15`).
        emitted: &'a str,
    },
    /// The button pressed: recorded now (`first`), or recorded already.
    Thanks { alert_id: &'a str, first: bool },
    /// The store could not record it: nothing is lost, press again.
    RetryLater,
    /// A link past its `ack.link_ttl`.
    Expired,
    /// A link relais did not sign, or that was altered.
    Unknown,
}

impl Page<'_> {
    fn status(&self) -> StatusCode {
        match self {
            Self::Confirm { .. } | Self::Thanks { .. } => StatusCode::OK,
            Self::RetryLater => StatusCode::SERVICE_UNAVAILABLE,
            Self::Expired => StatusCode::GONE,
            Self::Unknown => StatusCode::NOT_FOUND,
        }
    }
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
        background:#0b5394;color:#fff}</style></head><body><main>";
    const TAIL: &str = "</main></body></html>";

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
        };
        let pages = [
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
                },
                StatusCode::OK,
                "<h1>Merci</h1><p>L'alerte <strong>SOS94-1/2&#39;&lt;&amp;&gt;&quot;</strong> \
                 est notée comme prise en compte.</p><p>Vous pouvez fermer cette page.</p>",
            ),
            (
                Page::Thanks {
                    alert_id: REFERENCE,
                    first: false,
                },
                StatusCode::OK,
                "<h1>Merci</h1><p>L'alerte <strong>SOS94-1/2&#39;&lt;&amp;&gt;&quot;</strong> \
                 est notée comme prise en compte (elle l'était déjà).</p><p>Vous pouvez \
                 fermer cette page.</p>",
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

//! Acknowledgement: each email carries a personal link, and the page it
//! opens lets the référent say "I have seen this alert".
//!
//! Only the POST of the page's button acknowledges: mail security gateways
//! open every link of an email, and a GET changes nothing. Acknowledging
//! twice is harmless; an expired or forged link gets a page saying so, with
//! a 4xx status, and changes nothing. The page shows the alert's reference,
//! kind, place and date, never patient data; it is small, works without
//! JavaScript and on a phone, and is served with the headers a public page
//! needs (no caching of the token, no referrer, a strict CSP). It runs on
//! `ack.listen`, behind the operator's HTTPS reverse proxy
//! (`ack.public_url`).

pub mod token;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use time::OffsetDateTime;

use crate::alert::{Alert, Kind};
use crate::live_registry::SharedRegistry;
use crate::registry::Referent;
use crate::store::Store;
use crate::telemetry::events::Events;
use token::{Link, Signer, TokenError};

/// What the emails' links are made of.
pub struct Links {
    signer: Signer,
    /// `ack.public_url`, without a trailing `/`.
    public_url: String,
    ttl: Duration,
}

impl Links {
    pub fn new(secret: &[u8], public_url: &str, ttl: Duration) -> Self {
        Self {
            signer: Signer::new(secret),
            public_url: public_url.trim_end_matches('/').to_owned(),
            ttl,
        }
    }

    /// The personal link for `referent` to acknowledge `alert`.
    pub fn link(&self, alert: &Alert, referent: &Referent) -> String {
        let territory = alert.territory();
        let expires = OffsetDateTime::now_utc() + self.ttl;
        let link = Link {
            alert_id: alert.id().to_string(),
            referent_id: referent.id().to_string(),
            kind: alert.kind().to_string(),
            commune: territory.commune().map(|c| c.to_string()),
            departement: territory.departement().to_string(),
            emitted_at: alert.emitted_at().unix_timestamp(),
            expires_at: expires.unix_timestamp(),
        };
        format!("{}/ack/{}", self.public_url, self.signer.sign(&link))
    }

    fn read(&self, token: &str) -> Result<Link, TokenError> {
        self.signer.read(token, OffsetDateTime::now_utc())
    }
}

/// What the pages need.
#[derive(Clone)]
struct Pages {
    links: Arc<Links>,
    registry: SharedRegistry,
    store: Store,
    events: Events,
}

/// The router of the acknowledgement pages.
pub fn router(links: Arc<Links>, registry: SharedRegistry, store: Store, events: Events) -> Router {
    Router::new()
        .route("/ack/{token}", get(show).post(acknowledge))
        .with_state(Pages {
            links,
            registry,
            store,
            events,
        })
}

/// GET: the alert, and the button. Changes nothing.
async fn show(State(pages): State<Pages>, Path(token): Path<String>) -> Response {
    match pages.links.read(&token) {
        Ok(link) => page(StatusCode::OK, &pages.confirm(&link)),
        Err(error) => refused(error),
    }
}

/// POST: the button. Records the acknowledgement (once).
async fn acknowledge(State(pages): State<Pages>, Path(token): Path<String>) -> Response {
    let link = match pages.links.read(&token) {
        Ok(link) => link,
        Err(error) => return refused(error),
    };
    let now = OffsetDateTime::now_utc();
    match pages
        .store
        .acknowledge(&link.alert_id, &link.referent_id, now)
        .await
    {
        Ok(acknowledged) => {
            let first = acknowledged.first;
            if first {
                let registry = pages.registry.load();
                let referent = registry
                    .referents()
                    .iter()
                    .find(|r| r.id().as_str() == link.referent_id);
                pages.events.alert_acknowledged(
                    &link.alert_id,
                    &link.referent_id,
                    referent,
                    &acknowledged,
                );
            }
            let body = format!(
                "<h1>Merci</h1><p>L'alerte <strong>{}</strong> est notée comme prise en compte{}.</p>\
                 <p>Vous pouvez fermer cette page.</p>",
                escape(&link.alert_id),
                if first { "" } else { " (elle l'était déjà)" }
            );
            page(StatusCode::OK, &body)
        }
        Err(error) => {
            tracing::error!(alert_id = %link.alert_id, referent = %link.referent_id, %error,
                "cannot record an acknowledgement");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "<h1>Réessayez dans un instant</h1><p>La prise en compte n'a pas pu être \
                 enregistrée. Rien n'est perdu : revenez sur ce lien et appuyez de nouveau \
                 sur le bouton.</p>",
            )
        }
    }
}

impl Pages {
    /// The page a valid link opens.
    fn confirm(&self, link: &Link) -> String {
        let registry = self.registry.load();
        let geography = registry.geography();
        let label = Kind::parse(&link.kind)
            .map(|kind| registry.kind_label(&kind))
            .unwrap_or_else(|_| link.kind.clone());
        let place = geography
            .territory(link.commune.as_deref(), Some(&link.departement))
            .map(|territory| geography.describe(territory).place)
            .unwrap_or_else(|_| link.departement.clone());
        let emitted = OffsetDateTime::from_unix_timestamp(link.emitted_at)
            .map(|at| {
                let paris = at.to_offset(crate::availability::paris_offset(at));
                format!(
                    "{:02}/{:02}/{} à {:02}h{:02}",
                    paris.day(),
                    u8::from(paris.month()),
                    paris.year(),
                    paris.hour(),
                    paris.minute()
                )
            })
            .unwrap_or_default();
        format!(
            "<h1>Alerte {reference}</h1>\
             <dl><dt>Type</dt><dd>{label}</dd><dt>Territoire</dt><dd>{place}</dd>\
             <dt>Émise le</dt><dd>{emitted}</dd></dl>\
             <p>En confirmant, vous indiquez à l'association et aux autres référents que \
             l'alerte est vue et sera traitée.</p>\
             <form method=\"post\"><button type=\"submit\">J'ai pris connaissance de cette alerte</button></form>",
            reference = escape(&link.alert_id),
            label = escape(&label),
            place = escape(&place),
        )
    }
}

fn refused(error: TokenError) -> Response {
    match error {
        TokenError::Expired => page(
            StatusCode::GONE,
            "<h1>Lien expiré</h1><p>Ce lien de prise en compte n'est plus valable. Si \
             l'alerte vous concerne encore, contactez l'association qui vous l'a transmise.</p>",
        ),
        TokenError::Forged => page(
            StatusCode::NOT_FOUND,
            "<h1>Lien inconnu</h1><p>Ce lien n'est pas un lien de prise en compte valable. \
             Ouvrez-le depuis le courriel reçu, sans le modifier.</p>",
        ),
    }
}

/// A whole page, with the headers a public page needs.
fn page(status: StatusCode, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>relais — prise en compte d'une alerte</title><style>{STYLE}</style></head>\
         <body><main>{body}</main></body></html>"
    );
    let headers = [
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
    ];
    (status, headers, html).into_response()
}

const STYLE: &str = "body{font-family:system-ui,Arial,sans-serif;margin:0;padding:16px;\
color:#1a1a1a;background:#fafafa}main{max-width:560px;margin:auto;background:#fff;\
padding:20px;border-radius:8px}h1{font-size:1.4em}dt{font-weight:bold;margin-top:8px}\
dd{margin:0}button{width:100%;font-size:1.1em;padding:14px;margin-top:16px;border:0;\
border-radius:6px;background:#0b5394;color:#fff}";

/// `text` for HTML.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

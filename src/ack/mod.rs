//! Acknowledgement: each email carries a personal link, and the page it
//! opens lets the référent say "I have seen this alert".
//!
//! Only the POST of the page's button acknowledges: mail security gateways
//! open every link of an email, and a GET changes nothing. Acknowledging
//! twice is harmless; an expired or forged link gets a page saying so, with
//! a 4xx status, and changes nothing. The page shows the alert's reference,
//! kind, place and date, never patient data; it is small, works without
//! JavaScript and on a phone, and is served with the headers a public page
//! needs (no caching of the token, no referrer, a strict CSP; see [`page`]).
//! The link's token is sealed ([`token`]): its URL, wherever it is logged,
//! tells nothing of the alert.
//! It runs on `ack.listen`, behind the operator's HTTPS reverse proxy
//! (`ack.public_url`).

pub mod copy;
mod page;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use time::OffsetDateTime;

use crate::alert::Kind;
use crate::live_registry::SharedRegistry;
use crate::mail::Published;
use crate::registry::Referent;
use crate::store::{AlertKey, Store};
use crate::telemetry::events::Events;
use page::{Page, Templates};
use token::{Link, Sealer, TokenError};

/// What the emails' links are made of.
pub struct Links {
    sealer: Sealer,
    /// Seals and opens the alerts' copies kept for hand-backs.
    copies: copy::CopySealer,
    /// `ack.public_url`, without a trailing `/`.
    public_url: String,
    ttl: Duration,
}

impl Links {
    /// Links sealed with `secret` (`ack.key_file`'s bytes); those sealed
    /// with `previous` (`ack.previous_key_file`'s, during a rotation) still
    /// open.
    pub fn new(secret: &[u8], previous: Option<&[u8]>, public_url: &str, ttl: Duration) -> Self {
        let sealer = Sealer::new(secret);
        Self {
            copies: copy::CopySealer::new(secret, previous),
            sealer: match previous {
                Some(previous) => sealer.with_previous(previous),
                None => sealer,
            },
            public_url: public_url.trim_end_matches('/').to_owned(),
            ttl,
        }
    }

    /// The personal link for `referent` to acknowledge `alert`; `None`
    /// (logged) when the system's random source fails, and the email goes
    /// without one.
    pub fn link(&self, published: Published<'_>, referent: &Referent) -> Option<String> {
        let Published { alert, publisher } = published;
        let territory = alert.territory();
        let expires = OffsetDateTime::now_utc() + self.ttl;
        let link = Link {
            alert_id: alert.id().to_string(),
            publisher: publisher.to_owned(),
            referent_id: referent.id().to_string(),
            kind: alert.kind().to_string(),
            commune: territory.commune().map(|c| c.to_string()),
            departement: territory.departement().to_string(),
            emitted_at: alert.emitted_at().unix_timestamp(),
            expires_at: expires.unix_timestamp(),
        };
        match self.sealer.seal(&link) {
            Ok(token) => Some(format!("{}/ack/{token}", self.public_url)),
            Err(error) => {
                tracing::error!(alert_id = %link.alert_id, referent = %link.referent_id, %error,
                    "cannot make an acknowledgement link; the email goes without one");
                None
            }
        }
    }

    /// `body` (an alert as published) sealed for the store, and until when
    /// it is kept: as long as its links live.
    pub fn seal_copy(&self, body: &[u8]) -> Option<(Vec<u8>, OffsetDateTime)> {
        let sealed = self.copies.seal(body)?;
        Some((sealed, OffsetDateTime::now_utc() + self.ttl))
    }

    /// The alert a copy sealed, if this relais's keys open it.
    pub fn open_copy(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        self.copies.open(sealed)
    }

    fn read(&self, token: &str) -> Result<Link, TokenError> {
        self.sealer.open(token, OffsetDateTime::now_utc())
    }
}

/// What the pages need.
#[derive(Clone)]
struct Pages {
    links: Arc<Links>,
    registry: SharedRegistry,
    store: Store,
    events: Events,
    templates: Arc<Templates>,
}

/// The router of the acknowledgement pages.
///
/// # Errors
/// The pages' template does not compile (it is part of the binary, so
/// this is caught by the tests).
pub fn router(
    links: Arc<Links>,
    registry: SharedRegistry,
    store: Store,
    events: Events,
) -> Result<Router, minijinja::Error> {
    let pages = Pages {
        links,
        registry,
        store,
        events,
        templates: Arc::new(Templates::new()?),
    };
    Ok(Router::new()
        .route("/ack/{token}", get(show).post(acknowledge))
        .with_state(pages))
}

/// GET: the alert, and the button. Changes nothing.
async fn show(State(pages): State<Pages>, Path(token): Path<String>) -> Response {
    match pages.links.read(&token) {
        Ok(link) => pages.confirm(&link),
        Err(error) => pages.refused(error),
    }
}

/// POST: the button. Records the acknowledgement (once).
async fn acknowledge(State(pages): State<Pages>, Path(token): Path<String>) -> Response {
    let link = match pages.links.read(&token) {
        Ok(link) => link,
        Err(error) => return pages.refused(error),
    };
    let now = OffsetDateTime::now_utc();
    match pages
        .store
        .acknowledge(
            AlertKey {
                publisher: &link.publisher,
                id: &link.alert_id,
            },
            &link.referent_id,
            now,
        )
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
                    &link.publisher,
                    &link.alert_id,
                    &link.referent_id,
                    referent,
                    &acknowledged,
                );
            }
            pages.templates.render(&Page::Thanks {
                alert_id: &link.alert_id,
                first,
            })
        }
        Err(error) => {
            tracing::error!(alert_id = %link.alert_id, referent = %link.referent_id, %error,
                "cannot record an acknowledgement");
            pages.templates.render(&Page::RetryLater)
        }
    }
}

impl Pages {
    /// The page a valid link opens.
    fn confirm(&self, link: &Link) -> Response {
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
        self.templates.render(&Page::Confirm {
            alert_id: &link.alert_id,
            label: &label,
            place: &place,
            emitted: &emitted,
        })
    }

    /// The page an expired or forged link opens.
    fn refused(&self, error: TokenError) -> Response {
        self.templates.render(&match error {
            TokenError::Expired => Page::Expired,
            TokenError::Forged => Page::Unknown,
        })
    }
}

//! The référents' pages: each email carries two personal links. The
//! acknowledgement page lets the référent say "I have seen this alert";
//! the absence page (`absence`, its own link, the référent's rather than
//! the alert's) lets it say when it will be away, and who of its deputies
//! stands in.
//!
//! Only the POST of the page's button acknowledges: mail security gateways
//! open every link of an email, and a GET changes nothing. Acknowledging
//! twice is harmless; an expired or forged link gets a page saying so, with
//! a 4xx status, and changes nothing. The page shows the alert's reference,
//! kind, place and date, never patient data; it is small, works without
//! JavaScript and on a phone, and is served with the headers a public page
//! needs (no caching of the token, no referrer, a strict CSP; see [`page`]).
//! The links' tokens are sealed ([`token`]), each kind under its own key: a
//! URL, wherever it is logged, tells nothing of the alert or the référent,
//! and an acknowledgement link never opens the absence page.
//! It runs on `ack.listen`, behind the operator's HTTPS reverse proxy
//! (`ack.public_url`).

mod absence;
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

use crate::absences::DeclaredAbsences;
use crate::alert::Kind;
use crate::live_registry::SharedRegistry;
use crate::mail::Published;
use crate::registry::Referent;
use crate::store::{AlertKey, Store};
use crate::telemetry::events::Events;
use page::{Page, Templates};
use token::{AbsenceLink, Link, Sealer, TokenError};

/// How long an absence page's link works: 90 days. Each email brings a
/// fresh one, but a référent of a quiet territory may go weeks without an
/// alert, and plans a leave weeks ahead: the link of its last email must
/// still open then. Longer than an acknowledgement link's
/// (`ack.link_ttl`), since what it opens is bounded: the référent's own
/// absences, and only its deputies in the registry (or its network's
/// fallback référents) can be made to receive its alerts.
pub const ABSENCE_LINK_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// What the emails' links are made of.
pub struct Links {
    sealer: Sealer<Link>,
    /// The absence pages' links: the same secrets, another purpose.
    absences: Sealer<AbsenceLink>,
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
        let (sealer, absences) = (Sealer::new(secret), Sealer::new(secret));
        let (sealer, absences) = match previous {
            Some(previous) => (
                sealer.with_previous(previous),
                absences.with_previous(previous),
            ),
            None => (sealer, absences),
        };
        Self {
            copies: copy::CopySealer::new(secret, previous),
            sealer,
            absences,
            public_url: public_url.trim_end_matches('/').to_owned(),
            ttl,
        }
    }

    /// The personal link to the absence page of the référent `referent_id`
    /// (valid [`ABSENCE_LINK_TTL`]); `None` (logged) when the system's
    /// random source fails, and the email or page goes without one.
    pub fn absence_link(&self, referent_id: &str) -> Option<String> {
        let expires = OffsetDateTime::now_utc() + ABSENCE_LINK_TTL;
        let link = AbsenceLink {
            referent_id: referent_id.to_owned(),
            expires_at: expires.unix_timestamp(),
        };
        match self.absences.seal(&link) {
            Ok(token) => Some(format!("{}/absence/{token}", self.public_url)),
            Err(error) => {
                tracing::error!(referent = referent_id, %error,
                    "cannot make an absence link; the email or page goes without one");
                None
            }
        }
    }

    fn read_absence(&self, token: &str) -> Result<AbsenceLink, TokenError> {
        self.absences.open(token, OffsetDateTime::now_utc())
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
    /// The relay's declared absences, told when the absence page changes
    /// one (so that the next alert counts it).
    absences: DeclaredAbsences,
    templates: Arc<Templates>,
}

/// The router of the référents' pages: `/ack/{token}` and
/// `/absence/{token}`.
///
/// # Errors
/// The pages' templates do not compile (they are part of the binary, so
/// this is caught by the tests).
pub fn router(
    links: Arc<Links>,
    registry: SharedRegistry,
    store: Store,
    events: Events,
    absences: DeclaredAbsences,
) -> Result<Router, minijinja::Error> {
    let pages = Pages {
        links,
        registry,
        store,
        events,
        absences,
        templates: Arc::new(Templates::new()?),
    };
    Ok(Router::new()
        .route("/ack/{token}", get(show).post(acknowledge))
        .route("/absence/{token}", get(absence::show).post(absence::change))
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
            let absence = pages.links.absence_link(&link.referent_id);
            pages.templates.render(&Page::Thanks {
                alert_id: &link.alert_id,
                first,
                absence: absence.as_deref(),
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
        let absence = self.links.absence_link(&link.referent_id);
        self.templates.render(&Page::Confirm {
            alert_id: &link.alert_id,
            label: &label,
            place: &place,
            emitted: &emitted,
            absence: absence.as_deref(),
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

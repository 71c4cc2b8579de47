//! The référents' pages: each email carries two personal links. The
//! acknowledgement page lets the référent say "I have seen this alert";
//! the absence page (`absence`, its own link, the référent's rather than
//! the alert's) lets it say when it will be away, and who of its deputies
//! stands in.
//!
//! Only the POST of the page's button acknowledges: mail security gateways
//! open every link of an email, and a GET changes nothing. Acknowledging
//! twice is harmless; an expired or forged link gets a page saying so, with
//! a 4xx status, and changes nothing. Once acknowledged, the page offers
//! the follow-ups ([`FollowUp`], the "suite donnée"), each a button posting
//! its code: the référent's last choice stands, and a choice also
//! acknowledges. The page tells a référent who of their network
//! acknowledged first (organisation and name, from the registry) and the
//! network's last follow-up; with `ack.notify_colleagues`, the first
//! acknowledgement in a network is also emailed to its other référents
//! ([`Notices`]). It shows the alert's reference, kind, place
//! and date, never patient data; it is small, works without JavaScript and
//! on a phone, and is served with the headers a public page needs (no
//! caching of the token, no referrer, a strict CSP; see [`page`]).
//! The links' tokens are sealed ([`token`]), each kind under its own key: a
//! URL, wherever it is logged, tells nothing of the alert or the référent,
//! and an acknowledgement link never opens the absence page. Each page of
//! a valid link leads to the référent's absence page ([`absence`]).
//! It runs on `ack.listen`, behind the operator's HTTPS reverse proxy
//! (`ack.public_url`).

mod absence;
pub mod copy;
mod page;
mod probe;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::Response;
use axum::routing::get;
use time::OffsetDateTime;

use crate::absences::DeclaredAbsences;
use crate::alert::{AlertId, Kind};
use crate::follow_up::FollowUp;
use crate::live_registry::SharedRegistry;
use crate::mail::render::notice;
use crate::mail::{Mailer, Published};
use crate::registry::{Referent, Registry};
use crate::store::{AlertKey, Fact, Handling, Store};
use crate::telemetry::events::Events;
use page::{Colleague, Page, Templates};
use token::{AbsenceLink, Link, Sealer, TokenError};

/// How long an absence page's link works: 90 days. Each email brings a
/// fresh one, but a référent of a quiet territory may go weeks without an
/// alert, and plans a leave weeks ahead: the link of its last email must
/// still open then. Longer than an acknowledgement link's
/// (`ack.link_ttl`), since what it opens is bounded: the référent's own
/// absences, and only its deputies in the registry (or its network's
/// fallback référents) can be made to receive its alerts.
pub const ABSENCE_LINK_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// The largest form a page posts: one follow-up's code, with room to spare.
const MAX_FORM: usize = 1024;

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

/// The emails that tell référents a colleague of their network
/// acknowledged an alert they also received (`ack.notify_colleagues`).
#[derive(Clone)]
pub struct Notices {
    pub mailer: Mailer,
    /// `smtp.from`, as the alerts' emails have it.
    pub from: lettre::message::Mailbox,
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
    /// `None` unless `ack.notify_colleagues`.
    notices: Option<Notices>,
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
    notices: Option<Notices>,
    absences: DeclaredAbsences,
) -> Result<Router, minijinja::Error> {
    let pages = Pages {
        links,
        registry,
        store,
        events,
        absences,
        templates: Arc::new(Templates::new()?),
        notices,
    };
    Ok(Router::new()
        .route("/ack/{token}", get(show).post(acknowledge))
        .route("/absence/{token}", get(absence::show).post(absence::change))
        .route("/probe/{token}", get(probe::show).post(probe::confirm))
        .layer(DefaultBodyLimit::max(MAX_FORM))
        .with_state(pages))
}

/// GET: the alert, where it stands, and the button (or the follow-ups).
/// Changes nothing.
async fn show(State(pages): State<Pages>, Path(token): Path<String>) -> Response {
    match pages.links.read(&token) {
        Ok(link) => pages.confirm(&link).await,
        Err(error) => pages.refused(error),
    }
}

/// POST: the button, which records the acknowledgement (once), or a
/// follow-up's button (`suite=<code>`), which records that follow-up.
async fn acknowledge(
    State(pages): State<Pages>,
    Path(token): Path<String>,
    form: Bytes,
) -> Response {
    let link = match pages.links.read(&token) {
        Ok(link) => link,
        Err(error) => return pages.refused(error),
    };
    let choice = url::form_urlencoded::parse(&form)
        .find(|(name, _)| name == "suite")
        .map(|(_, code)| FollowUp::parse(&code));
    match choice {
        None => pages.acknowledge(&link).await,
        Some(Some(FollowUp::HorsPerimetre)) => pages.hand_back(&link).await,
        Some(Some(follow_up)) => pages.follow_up(&link, follow_up).await,
        Some(None) => pages.templates.render(&Page::UnknownChoice),
    }
}

impl Pages {
    /// The page a valid link opens. Without the store, the alert and the
    /// button alone.
    async fn confirm(&self, link: &Link) -> Response {
        let handling = self
            .store
            .handling(key(link), &link.referent_id)
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(alert_id = %link.alert_id, referent = %link.referent_id, %error,
                    "cannot read where an alert stands; its page shows the button alone");
                Handling::default()
            });
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
        let colleague = handling
            .first_colleague
            .as_ref()
            .map(|(id, at)| (who(&registry, id), paris_time(*at)));
        let acknowledged = handling.acknowledged_at.map(paris_time);
        let absence = self.links.absence_link(&link.referent_id);
        self.templates.render(&Page::Confirm {
            alert_id: &link.alert_id,
            label: &label,
            place: &place,
            emitted: &emitted,
            colleague: colleague.as_ref().map(|(by, at)| Colleague { by, at }),
            acknowledged: acknowledged.as_deref(),
            follow_up: handling.follow_up.map(|last| last.follow_up.label()),
            absence: absence.as_deref(),
        })
    }

    /// The network of the link's référent, as the registry says now: what
    /// an acknowledgement counts for when its email's record is not (yet)
    /// in the store.
    fn network_of(&self, link: &Link) -> Option<String> {
        let registry = self.registry.load();
        registry
            .referent(&link.referent_id)
            .map(|referent| referent.network().to_owned())
    }

    /// The button pressed: the acknowledgement recorded (the first time
    /// told to the association), and the follow-ups offered.
    async fn acknowledge(&self, link: &Link) -> Response {
        let now = OffsetDateTime::now_utc();
        let network = self.network_of(link);
        let acknowledged = match self
            .store
            .acknowledge(key(link), &link.referent_id, network.as_deref(), now)
            .await
        {
            Ok(acknowledged) => acknowledged,
            Err(error) => {
                tracing::error!(alert_id = %link.alert_id, referent = %link.referent_id, %error,
                    "cannot record an acknowledgement");
                return self.templates.render(&Page::RetryLater);
            }
        };
        let handling = self.store.handling(key(link), &link.referent_id).await;
        if acknowledged.first
            && let Some(network) = &acknowledged.network
        {
            self.store.note(Fact::acknowledged(key(link), network, now));
        }
        if acknowledged.first {
            let registry = self.registry.load();
            self.events.alert_acknowledged(
                &link.publisher,
                &link.alert_id,
                &link.referent_id,
                referent(&registry, &link.referent_id),
                &acknowledged,
            );
            if let Ok(handling) = &handling {
                self.notify_colleagues(link, handling, &registry, now);
            }
        }
        let follow_up = match handling {
            Ok(handling) => handling.follow_up.map(|last| last.follow_up.label()),
            Err(_) => None,
        };
        let absence = self.links.absence_link(&link.referent_id);
        self.templates.render(&Page::Thanks {
            alert_id: &link.alert_id,
            first: acknowledged.first,
            follow_up,
            absence: absence.as_deref(),
        })
    }

    /// A référent hands the alert back: it is not their service's
    /// ("Ne relève pas de notre service"). It is recorded and published as
    /// any follow-up (the association learns of it from the `followed_up`
    /// event), and recorded as a hand-back: the active relais emails the
    /// network's fallback référents (`relay::hand_back`), and this
    /// référent no longer counts as having acknowledged it, so that the
    /// network's escalation goes on.
    async fn hand_back(&self, link: &Link) -> Response {
        let now = OffsetDateTime::now_utc();
        if let Err(error) = self
            .store
            .hand_back(key(link), &link.referent_id, now)
            .await
        {
            tracing::error!(alert_id = %link.alert_id, referent = %link.referent_id, %error,
                "cannot record a hand-back");
            return self.templates.render(&Page::RetryLater);
        }
        self.follow_up(link, FollowUp::HorsPerimetre).await
    }

    /// A follow-up's button pressed: recorded (and the acknowledgement
    /// with it, if it was not), each told to the association once.
    async fn follow_up(&self, link: &Link, follow_up: FollowUp) -> Response {
        let now = OffsetDateTime::now_utc();
        let network = self.network_of(link);
        let followed = match self
            .store
            .follow_up(
                key(link),
                &link.referent_id,
                network.as_deref(),
                follow_up,
                now,
            )
            .await
        {
            Ok(followed) => followed,
            Err(error) => {
                tracing::error!(alert_id = %link.alert_id, referent = %link.referent_id, %error,
                    "cannot record a follow-up");
                return self.templates.render(&Page::RetryLater);
            }
        };
        if followed.recorded
            && let Some(network) = &followed.acknowledged.network
        {
            self.store
                .note(Fact::followed_up(key(link), network, follow_up, now));
        }
        let registry = self.registry.load();
        let referent = referent(&registry, &link.referent_id);
        if followed.acknowledged.first {
            self.events.alert_acknowledged(
                &link.publisher,
                &link.alert_id,
                &link.referent_id,
                referent,
                &followed.acknowledged,
            );
            if let Ok(handling) = self.store.handling(key(link), &link.referent_id).await {
                self.notify_colleagues(link, &handling, &registry, now);
            }
        }
        if followed.recorded {
            self.events.alert_followed_up(
                &link.publisher,
                &link.alert_id,
                &link.referent_id,
                referent,
                followed.acknowledged.network.as_deref(),
                follow_up,
            );
        }
        self.templates.render(&Page::FollowedUp {
            alert_id: &link.alert_id,
            follow_up: follow_up.label(),
            handed_back: follow_up == FollowUp::HorsPerimetre,
        })
    }

    /// With `ack.notify_colleagues`, emails the other référents of the
    /// network (those the registry still has) that `link`'s référent just
    /// acknowledged the alert at `at`, when they are the first of the
    /// network to: one short email each, sent in the background, logged and
    /// counted, not tried again if refused (each one's page says the same).
    fn notify_colleagues(
        &self,
        link: &Link,
        handling: &Handling,
        registry: &Registry,
        at: OffsetDateTime,
    ) {
        let Some(notices) = &self.notices else {
            return;
        };
        let Ok(alert) = AlertId::parse(&link.alert_id) else {
            return;
        };
        if handling.first_colleague.is_some() {
            return;
        }
        let by = who(registry, &link.referent_id);
        let at = paris_time(at);
        for colleague in &handling.colleagues {
            let Some(to) = referent(registry, colleague) else {
                continue;
            };
            let email = notice::acknowledged(
                &notices.from,
                to,
                notice::Acknowledged {
                    publisher: &link.publisher,
                    alert: &alert,
                    by: &by,
                    at: &at,
                },
            );
            let email = match email {
                Ok(email) => email,
                Err(error) => {
                    tracing::error!(alert_id = %link.alert_id, referent = %colleague, %error,
                        "cannot render the email that a colleague acknowledged the alert");
                    continue;
                }
            };
            let (mailer, events) = (notices.mailer.clone(), self.events.clone());
            let (alert_id, referent_id) = (link.alert_id.clone(), colleague.clone());
            tokio::spawn(async move {
                let sent = mailer.send(&email).await;
                events.colleague_notified(&alert_id, &referent_id, sent.as_ref());
            });
        }
    }

    /// The page an expired or forged link opens.
    fn refused(&self, error: TokenError) -> Response {
        self.templates.render(&match error {
            TokenError::Expired => Page::Expired,
            TokenError::Forged => Page::Unknown,
        })
    }
}

/// The alert a link is about.
fn key(link: &Link) -> AlertKey<'_> {
    AlertKey {
        publisher: &link.publisher,
        id: &link.alert_id,
    }
}

/// The référent `id` in the registry in force, if it still has them.
fn referent<'r>(registry: &'r Registry, id: &str) -> Option<&'r Referent> {
    registry.referents().iter().find(|r| r.id().as_str() == id)
}

/// A référent as their colleagues read them: their organisation and name
/// from the registry (`CCAS de Paris 13e — Camille Martin`), either one
/// alone if it has only one; nothing else of them.
fn who(registry: &Registry, id: &str) -> String {
    let known = referent(registry, id);
    match (
        known.and_then(Referent::organisation),
        known.and_then(Referent::name),
    ) {
        (Some(organisation), Some(name)) => format!("{organisation} — {name}"),
        (Some(one), None) | (None, Some(one)) => one.to_owned(),
        (None, None) => "un autre référent".to_owned(),
    }
}

/// `at`, Paris time, as the pages write it: `22/11/2026 à 08:15`.
fn paris_time(at: OffsetDateTime) -> String {
    let paris = at.to_offset(crate::availability::paris_offset(at));
    format!(
        "{:02}/{:02}/{} à {:02}:{:02}",
        paris.day(),
        u8::from(paris.month()),
        paris.year(),
        paris.hour(),
        paris.minute()
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_time_is_written_in_paris_time_summer_and_winter() {
        let at = |unix| OffsetDateTime::from_unix_timestamp(unix).unwrap();

        // 2026-11-22 07:15 UTC, and 2026-07-01 06:15 UTC.
        assert_eq!(paris_time(at(1_795_331_700)), "22/11/2026 à 08:15");
        assert_eq!(paris_time(at(1_782_886_500)), "01/07/2026 à 08:15");
    }

    #[test]
    fn a_colleague_is_named_by_organisation_and_name_and_nothing_else() {
        let registry = Registry::from_toml(
            r#"
            [[route]]
            kind = "orientation_sociale"
            networks = ["ccas"]

            [[referent]]
            id = "both"
            network = "ccas"
            name = "Camille Martin"
            organisation = "CCAS de Paris 13e"
            email = "camille.martin@ccas-paris13.test"
            communes = ["75113"]

            [[referent]]
            id = "organisation"
            network = "ccas"
            organisation = "CCAS de Paris 13e"
            email = "accueil@ccas-paris13.test"
            communes = ["75113"]

            [[referent]]
            id = "name"
            network = "ccas"
            name = "Léa Petit"
            email = "lea.petit@ccas-paris13.test"
            communes = ["75113"]

            [[referent]]
            id = "neither"
            network = "ccas"
            email = "social@ccas-paris13.test"
            communes = ["75113"]
            "#,
            &Arc::clone(crate::testing::france()),
        )
        .unwrap();

        assert_eq!(who(&registry, "both"), "CCAS de Paris 13e — Camille Martin");
        assert_eq!(who(&registry, "organisation"), "CCAS de Paris 13e");
        assert_eq!(who(&registry, "name"), "Léa Petit");
        assert_eq!(who(&registry, "neither"), "un autre référent");
        assert_eq!(who(&registry, "gone"), "un autre référent");
    }
}

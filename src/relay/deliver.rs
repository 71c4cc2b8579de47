//! A new alert, to its référents: it says whether the person agreed (when
//! the operator requires it), the publisher may send it, its route and
//! territory name référents (those away that day replaced, by the
//! registry's absences and those they declared), an id used again for
//! other content is a conflict, whoever had it already is skipped, and
//! each of the others is emailed. The [`Decision`] says how it ended and,
//! when its route escalates, the first step to schedule.
//!
//! It never settles anything with the broker, and never emails a référent
//! the store or the message says already has the alert. Consent is checked
//! here only: an escalation step (`escalate`) carries out what an earlier
//! delivery accepted, and never refuses it for a setting changed since.

use super::send::Origin;
use std::time::Instant;

use futures_util::future::join_all;
use time::OffsetDateTime;

use super::{Decision, Incoming, Relay, key, published};
use crate::alert::Alert;
use crate::flood::Flood;
use crate::mail::{Addressed, Published, Wording};
use crate::outcome::{NextStep, Reason, Verdict};
use crate::registry::{Referent, Registry};
use crate::store::{AlertFacts, Fact};

/// Why an alert without `consent` is refused while `consent.required` is
/// on: for the dispatch software's developers, in `x-relais-error`.
pub const CONSENT_REQUIRED: &str = "consent is required: the alert has no `consent`, and this \
    relais shares an alert outside the care team only when it says that the person agreed, or \
    on which legal basis they were not asked (consent.required); see the contract";

impl Relay {
    /// Emails each référent of `alert` that has not had it yet; decides
    /// the verdict, every référent that now has it, and the first step of
    /// its escalation.
    pub(super) async fn deliver(
        &self,
        registry: &Registry,
        alert: &Alert,
        message: &Incoming<'_>,
        started: Instant,
    ) -> Decision {
        // Refused before anyone was emailed: nobody to carry on.
        let dead_letter = |reason, error: String| Decision::dead_letter(reason, error, Vec::new());
        if self.consent_required && alert.consent().is_none() {
            return dead_letter(Reason::Invalid, CONSENT_REQUIRED.to_owned());
        }
        let geography = registry.geography();
        let location = geography.location(alert.territory());
        if let Err(forbidden) = registry
            .publishers()
            .authorize(message.publisher, alert, &location)
        {
            return dead_letter(Reason::Forbidden, forbidden.to_string());
        }
        let now = OffsetDateTime::now_utc();
        let declared = self.absences.in_force(now).await;
        let resolution =
            match registry.resolve_with(alert.kind(), alert.territory(), now, &declared) {
                Ok(resolution) => resolution,
                Err(unroutable) => return dead_letter(Reason::Unroutable, unroutable.to_string()),
            };
        if alert.territory().mapped().is_some() {
            self.events.territory_mapped(alert);
        }
        let digest = alert.digest(&self.digest_key);
        let this = published(alert, message);

        let _one_at_a_time = self.in_flight.lock(alert.id()).await;
        let recorded = self
            .hold_until_read(alert, || self.store.served(key(this)))
            .await;
        // A delivery recorded before the digests were keyed holds the
        // unkeyed one until the store forgets it.
        let other_content =
            |recorded: [u8; 32]| recorded != digest && recorded != alert.unkeyed_digest();
        if recorded.iter().any(|r| r.digest.is_some_and(other_content)) {
            return dead_letter(
                Reason::Conflict,
                format!(
                    "the id was already used by an alert of different content, delivered to \
                     {} référent(s); nobody was emailed: publish this alert with a new id",
                    recorded.len()
                ),
            );
        }
        let mut served: Vec<String> = message.served.to_vec();
        served.extend(recorded.into_iter().map(|r| r.referent_id));
        let (done, to_send): (Vec<&Referent>, Vec<&Referent>) = resolution
            .referents()
            .partition(|referent| served.iter().any(|id| id == referent.id().as_str()));
        for referent in &done {
            self.events.duplicate_skipped(alert, referent);
        }

        // Named in words only for the emails that go out.
        let label = registry.kind_label(alert.kind());
        let wording = Wording {
            kind_label: &label,
            author: registry.author(alert.kind(), this.publisher),
            reply_to: registry.publishers().contact(this.publisher),
        };
        let place = geography.describe(alert.territory());
        let origin = Origin {
            content: digest,
            registry: registry.digest(),
        };
        let sends = to_send.iter().map(|referent| {
            let addressed = resolution
                .on_behalf_of(referent)
                .map_or(Addressed::Directly, Addressed::OnBehalfOf);
            self.send(this, referent, wording, &place, addressed, origin)
        });
        // Kept, sealed, for a référent who hands it back from the page:
        // written while the emails go out, and done before the alert is.
        let copy = async {
            if let Some(links) = self.ack.as_ref().filter(|_| !to_send.is_empty())
                && let Some((sealed, until)) = links.seal_copy(message.body)
                && let Err(error) = self.store.keep_copy(key(this), sealed, until).await
            {
                tracing::warn!(alert_id = %alert.id(), %error,
                    "cannot keep the alert's sealed copy: a hand-back of it would reach nobody");
            }
        };
        let ((), results) = futures_util::future::join(copy, join_all(sends)).await;
        let mut failures = Vec::new();
        let mut delivered_to: Vec<&str> = Vec::new();
        for (referent, result) in to_send.iter().zip(results) {
            match result {
                Some(failure) => failures.push(failure),
                None => {
                    served.push(referent.id().to_string());
                    delivered_to.push(referent.network());
                    let flood = self.flood.count(registry, referent, Instant::now());
                    if let Flood::Over { count, first } = flood {
                        self.events.referent_flooded(
                            alert,
                            referent,
                            count,
                            first,
                            self.flood.limit(),
                        );
                    }
                }
            }
        }
        served.sort_unstable();
        served.dedup();
        self.note_delivered(this, &mut delivered_to, now);

        if let Some(transient) = failures.iter().find(|f| f.is_transient()) {
            return Decision::retry(transient.to_string(), served);
        }
        if !failures.is_empty() {
            let errors: Vec<String> = failures.iter().map(ToString::to_string).collect();
            return Decision::dead_letter(Reason::Rejected, errors.join("; "), served);
        }
        if let Some(unroutable) = resolution.unmatched_error(alert.territory()) {
            return Decision::dead_letter(Reason::Unroutable, unroutable.to_string(), served);
        }
        // A copy whose référents all had it already is a duplicate (counted
        // as such), not another delivery.
        if !to_send.is_empty() {
            let mut networks: Vec<&str> = to_send.iter().map(|r| r.network()).collect();
            networks.sort_unstable();
            networks.dedup();
            self.events.alert_delivered(alert, &networks, started);
        }
        Decision {
            verdict: Verdict::Delivered {
                emails: to_send.len(),
                duplicates: done.len(),
            },
            served,
            next_step: self.first_step(registry, this).await,
        }
    }

    /// The yearly report's facts of `this`, received at `received_at` and
    /// just delivered to `networks` (in the background: best effort).
    fn note_delivered(
        &self,
        this: Published<'_>,
        networks: &mut Vec<&str>,
        received_at: OffsetDateTime,
    ) {
        networks.sort_unstable();
        networks.dedup();
        let departement = this.alert.territory().departement();
        let about = AlertFacts {
            departement: departement.as_str(),
            kind: this.alert.kind().as_str(),
            received_at,
        };
        let delivered_at = OffsetDateTime::now_utc();
        for network in networks.iter() {
            self.store
                .note(Fact::delivered(key(this), network, about, delivered_at));
        }
    }

    /// The first step of `alert`'s escalation, if its route escalates,
    /// acknowledgement links go out, and no copy of it scheduled it yet.
    async fn first_step(&self, registry: &Registry, this: Published<'_>) -> Option<NextStep> {
        self.ack.as_ref()?;
        let alert = this.alert;
        let wait = registry.escalate_after(alert.kind(), alert.priority())?;
        let now = time::OffsetDateTime::now_utc();
        let due = registry.step_due(alert.kind(), alert.territory(), now, wait);
        let first = NextStep::towards(1, wait, now, due);
        match self.store.escalation(key(this)).await {
            Ok(steps) if steps.is_empty() => Some(first),
            Ok(_) => None,
            Err(error) => {
                // Scheduled again rather than never: a step carried out
                // twice emails nobody twice.
                tracing::warn!(alert_id = %alert.id(), %error,
                    "cannot read the escalation chain; scheduling its first step");
                Some(first)
            }
        }
    }
}

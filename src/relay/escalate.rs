//! The timer of an escalation step, come due: for each network the alert
//! went to that has not acknowledged it, the next people of that network
//! are emailed (the deputies, then the fallback référents), and at the last
//! step the alert is declared unacknowledged. The [`Decision`] says how the
//! step ended and which step to schedule next.
//!
//! A step is carried out once: a copy of its message finds it done in the
//! store and emails nobody, and nobody who had the alert is emailed again.

use super::send::Origin;
use std::time::Duration;

use futures_util::future::join_all;
use time::OffsetDateTime;

use super::{Decision, Incoming, Relay, key, published};
use crate::alert::Alert;
use crate::mail::{Addressed, Wording};
use crate::outcome::{NextStep, Verdict};
use crate::registry::{EscalationTiers, Referent, Registry};
use crate::store::{Fact, UNACKNOWLEDGED_STEP};

impl Relay {
    /// Carries out step `step` of `alert`'s escalation: if a network it
    /// went to has not acknowledged it, email the next people of that
    /// network (step 1: the deputies of its référents, or its fallback
    /// référents if it has no deputy to add; step 2: its fallback
    /// référents), or, at the last step, declare it unacknowledged.
    /// Whoever already had the alert is not emailed again; a step already
    /// carried out (a copy of its message) is not carried out again.
    pub(super) async fn escalate(
        &self,
        registry: &Registry,
        alert: &Alert,
        step: u8,
        message: &Incoming<'_>,
    ) -> Decision {
        // The step emailed nobody: carried out already, or nobody waits.
        let nothing = |served: Vec<String>, next_step: Option<NextStep>| Decision {
            verdict: Verdict::Delivered {
                emails: 0,
                duplicates: 0,
            },
            served,
            next_step,
        };
        let this = published(alert, message);
        let _one_at_a_time = self.in_flight.lock(alert.id()).await;
        let steps = self
            .hold_until_read(alert, || self.store.escalation(key(this)))
            .await;
        let after = registry.escalate_after(alert.kind(), alert.priority());
        let started = OffsetDateTime::now_utc();
        let next = after.filter(|_| step < UNACKNOWLEDGED_STEP).map(|wait| {
            let due = registry.step_due(alert.kind(), alert.territory(), started, wait);
            NextStep::towards(step + 1, wait, started, due)
        });
        if steps.iter().any(|s| s.step == step && s.done_at.is_some()) {
            // A copy: carried out already. Its next step is scheduled
            // again only if relais stopped before recording it.
            let next = next.filter(|n| steps.iter().all(|s| s.step != n.step));
            return nothing(message.served.to_vec(), next);
        }
        // A hop towards a step that waits for an office to open: the
        // timer goes on, the step still falls when it was due. (A step
        // without opening hours is never early: its due time, kept to the
        // second below, was set before its timer started.)
        if let Some(waiting) = steps.iter().find(|s| s.step == step && s.due_at > started) {
            let hop = NextStep::towards(step, Duration::ZERO, started, waiting.due_at);
            return nothing(message.served.to_vec(), Some(hop));
        }
        let recorded = self
            .hold_until_read(alert, || self.store.served(key(this)))
            .await;
        let acknowledged = self
            .hold_until_read(alert, || self.store.acknowledged_networks(key(this)))
            .await;
        let mut served: Vec<String> = message.served.to_vec();
        served.extend(recorded.into_iter().map(|r| r.referent_id));
        let now = OffsetDateTime::now_utc();
        let declared = self.absences.in_force(now).await;
        let tiers = registry
            .escalation_tiers_with(alert.kind(), alert.territory(), now, &declared)
            .unwrap_or_default();
        let waiting: Vec<_> = tiers
            .iter()
            .filter(|tier| !acknowledged.iter().any(|n| n == tier.network))
            .collect();

        if step >= UNACKNOWLEDGED_STEP || waiting.is_empty() {
            let first = self.store.escalation_done(key(this), step, now).await;
            if step >= UNACKNOWLEDGED_STEP && matches!(first, Ok(true)) {
                for tier in &waiting {
                    self.events
                        .alert_unacknowledged(this.publisher, alert, tier.network);
                    self.store
                        .note(Fact::escalated(key(this), tier.network, step, now));
                }
            }
            return nothing(served, None);
        }

        let had = |referent: &&Referent| served.iter().any(|id| id == referent.id().as_str());
        let mut to_send: Vec<&Referent> = Vec::new();
        for tier in &waiting {
            let deputies: Vec<&Referent> =
                tier.deputies.iter().copied().filter(|r| !had(r)).collect();
            let climb = if step == 1 && !deputies.is_empty() {
                deputies
            } else {
                tier.fallback.iter().copied().filter(|r| !had(r)).collect()
            };
            for referent in climb {
                if !to_send.iter().any(|r| r.id() == referent.id()) {
                    to_send.push(referent);
                }
            }
        }
        let waited = after.unwrap_or_default() * u32::from(step);
        let label = registry.kind_label(alert.kind());
        let wording = Wording {
            kind_label: &label,
            author: registry.author(alert.kind(), this.publisher),
            reply_to: registry.publishers().contact(this.publisher),
        };
        let place = registry.geography().describe(alert.territory());
        let addressed = Addressed::Escalated {
            unacknowledged_for: waited,
        };
        let digest = alert.digest(&self.digest_key);
        let origin = Origin {
            content: digest,
            registry: registry.digest(),
        };
        let sends = to_send
            .iter()
            .map(|referent| self.send(this, referent, wording, &place, addressed, origin));
        let results = join_all(sends).await;
        let mut transient = None;
        let mut emails = 0;
        for (referent, result) in to_send.iter().zip(results) {
            match result {
                None => {
                    emails += 1;
                    served.push(referent.id().to_string());
                    let name = if step == 1 && tier_has_deputy(&waiting, referent) {
                        "deputies"
                    } else {
                        "fallback"
                    };
                    self.events
                        .alert_escalated(this.publisher, alert, referent, name);
                }
                // A refused address is the registry's to fix (logged and
                // counted); the chain goes on without it.
                Some(failure) if failure.is_transient() => transient = Some(failure),
                Some(_) => {}
            }
        }
        served.sort_unstable();
        served.dedup();
        if let Some(failure) = transient {
            return Decision::retry(failure.to_string(), served);
        }
        match self.store.escalation_done(key(this), step, now).await {
            Ok(_) => {
                for tier in &waiting {
                    self.store
                        .note(Fact::escalated(key(this), tier.network, step, now));
                }
            }
            Err(error) => tracing::warn!(alert_id = %alert.id(), step, %error,
                "cannot record the escalation step carried out"),
        }
        Decision {
            verdict: Verdict::Delivered {
                emails,
                duplicates: 0,
            },
            served,
            next_step: next,
        }
    }
}

/// Whether `referent` is among the deputies of a waiting network.
fn tier_has_deputy(tiers: &[&EscalationTiers<'_>], referent: &Referent) -> bool {
    tiers
        .iter()
        .any(|tier| tier.deputies.iter().any(|d| d.id() == referent.id()))
}

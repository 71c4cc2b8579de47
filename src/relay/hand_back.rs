//! A référent handed an alert back ("ne relève pas de notre service",
//! from the acknowledgement page): the network's present fallback
//! référents are emailed it, from the sealed copy the store kept, each
//! email saying who handed it back. Who already had the alert is not
//! emailed again. The network's escalation goes on: the référent who
//! handed it back does not count as having acknowledged it.
//!
//! Carried out by the active relais only (the page may be served by any),
//! from the store's list of hand-backs not done (`store::handback`).

use super::send::Origin;
use futures_util::future::join_all;
use time::OffsetDateTime;

use super::{Relay, key};
use crate::alert::Alert;
use crate::mail::{Addressed, Published, Wording};
use crate::registry::Registry;
use crate::store::{AlertKey, HandBack};

/// Why a hand-back could not be carried out now; it is tried again.
#[derive(Debug)]
pub struct NotYet(pub String);

impl Relay {
    /// Carries out the hand-backs recorded and not done, oldest first.
    /// Does nothing on a relais that may not send (a standby).
    pub async fn hand_backs(&self) {
        if !self.mailer.fence().holds() {
            return;
        }
        let due = match self.store.hand_backs_due().await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "cannot read the hand-backs to carry out; trying again");
                return;
            }
        };
        for hand_back in due {
            match self.hand_back(&hand_back).await {
                Ok(()) => {
                    if let Err(error) = self
                        .store
                        .hand_back_done(&hand_back, OffsetDateTime::now_utc())
                        .await
                    {
                        tracing::warn!(alert_id = %hand_back.alert_id, %error,
                            "cannot record the hand-back carried out; it is tried again, \
                             and nobody is emailed twice");
                    }
                }
                Err(NotYet(error)) => {
                    tracing::warn!(alert_id = %hand_back.alert_id,
                        referent = %hand_back.referent_id, %error,
                        "cannot carry out a hand-back now; trying again");
                }
            }
        }
    }

    /// Emails `hand_back`'s network's fallback référents the alert.
    async fn hand_back(&self, hand_back: &HandBack) -> Result<(), NotYet> {
        let registry = self.registry.load_full();
        let Some(by) = registry
            .referents()
            .iter()
            .find(|r| r.id().as_str() == hand_back.referent_id)
        else {
            tracing::error!(alert_id = %hand_back.alert_id, referent = %hand_back.referent_id,
                "an alert was handed back by a référent the registry no longer has; \
                 nobody else was emailed: call the office");
            return Ok(());
        };
        let Some(alert) = self
            .kept_copy(&hand_back.publisher, &hand_back.alert_id, &registry)
            .await?
        else {
            return Ok(());
        };
        let this = Published {
            alert: &alert,
            publisher: &hand_back.publisher,
        };
        let served = self
            .store
            .served(key(this))
            .await
            .map_err(|e| NotYet(e.to_string()))?;
        let now = OffsetDateTime::now_utc();
        let declared = self.absences.in_force(now).await;
        let tiers = registry
            .escalation_tiers_with(alert.kind(), alert.territory(), now, &declared)
            .unwrap_or_default();
        let to_send: Vec<_> = tiers
            .iter()
            .filter(|tier| tier.network == by.network())
            .flat_map(|tier| tier.fallback.iter().copied())
            .filter(|r| r.id() != by.id())
            .filter(|r| !served.iter().any(|s| s.referent_id == r.id().as_str()))
            .collect();
        if to_send.is_empty() {
            tracing::error!(alert_id = %alert.id(), network = by.network(),
                "an alert was handed back and its network has no fallback référent left to \
                 email: call the office");
            return Ok(());
        }
        let label = registry.kind_label(alert.kind());
        let wording = Wording {
            kind_label: &label,
            author: registry.author(alert.kind(), this.publisher),
            reply_to: registry.publishers().contact(this.publisher),
        };
        let place = registry.geography().describe(alert.territory());
        let digest = alert.digest(&self.digest_key);
        let origin = Origin {
            content: digest,
            registry: registry.digest(),
        };
        let sends = to_send.iter().map(|referent| {
            self.send(
                this,
                referent,
                wording,
                &place,
                Addressed::HandedBack(by),
                origin,
            )
        });
        let failures: Vec<_> = join_all(sends).await.into_iter().flatten().collect();
        match failures.iter().find(|f| f.is_transient()) {
            Some(transient) => Err(NotYet(transient.to_string())),
            None => Ok(()),
        }
    }
}

impl Relay {
    /// The alert `alert_id` of `publisher` from the sealed copy the store
    /// keeps of it, to send it on (a hand-back, a bounce); `None`, logged
    /// as an error for the operators to call the office, when no copy can
    /// be opened any more (forgotten after `ack.link_ttl`, or sealed with
    /// a key this relais no longer has).
    pub(super) async fn kept_copy(
        &self,
        publisher: &str,
        alert_id: &str,
        registry: &Registry,
    ) -> Result<Option<Alert>, NotYet> {
        let alert_key = AlertKey {
            publisher,
            id: alert_id,
        };
        let (Some(links), Some(sealed)) = (
            self.ack.as_ref(),
            self.store
                .copy(alert_key)
                .await
                .map_err(|e| NotYet(e.to_string()))?,
        ) else {
            tracing::error!(
                alert_id,
                "an alert to send on has no copy any more (forgotten after ack.link_ttl): \
                 nobody else was emailed: call the office"
            );
            return Ok(None);
        };
        let Some(body) = links.open_copy(&sealed) else {
            tracing::error!(
                alert_id,
                "the copy of an alert to send on opens with no key of this relais; \
                 nobody else was emailed: call the office"
            );
            return Ok(None);
        };
        Alert::parse(&body, usize::MAX, registry.geography())
            .map(Some)
            .map_err(|e| NotYet(format!("the copy is not an alert any more: {e}")))
    }
}

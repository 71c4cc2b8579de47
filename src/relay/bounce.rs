//! A référent's mailbox refused an alert for good (a bounce that `relais
//! bounce` recorded): the alert is sent on at once, from the sealed copy
//! the store kept, to that référent's present deputies, else to its
//! network's fallback référents, each email saying whose mailbox refused
//! it. Nobody who already had the alert is emailed again, and the network's
//! escalation, if any, goes on as before. The operators are told which
//! address to fix (`relais_referent_bounces_total`, a `bounced` event).
//!
//! Carried out by the active relais only (the bounce may have been
//! recorded on any host), from the store's list of failures not acted on.

use futures_util::future::join_all;
use time::OffsetDateTime;

use super::Relay;
use super::hand_back::NotYet;
use super::send::Origin;
use crate::mail::{Addressed, Published, Wording};
use crate::store::{AlertKey, BounceRecord, Fact};

impl Relay {
    /// Acts on the failures recorded and not acted on, oldest first. Does
    /// nothing on a relais that may not send (a standby).
    pub async fn bounces(&self) {
        if !self.mailer.fence().holds() {
            return;
        }
        let due = match self.store.bounces_to_act_on().await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "cannot read the bounces to act on; trying again");
                return;
            }
        };
        for bounce in due {
            match self.send_on(&bounce).await {
                Ok(()) => {
                    if let Err(error) = self
                        .store
                        .bounce_acted_on(&bounce, OffsetDateTime::now_utc())
                        .await
                    {
                        tracing::warn!(alert_id = %bounce.email.alert_id, %error,
                            "cannot record a bounce acted on; it is tried again, \
                             and nobody is emailed twice");
                    }
                }
                Err(NotYet(error)) => {
                    tracing::warn!(alert_id = %bounce.email.alert_id,
                        referent = %bounce.email.referent_id, %error,
                        "cannot act on a bounce now; trying again");
                }
            }
        }
    }

    /// Emails the alert `bounce` returned to the bounced référent's
    /// deputies, else to its network's fallback référents.
    async fn send_on(&self, bounce: &BounceRecord) -> Result<(), NotYet> {
        let returned = &bounce.email;
        let registry = self.registry.load_full();
        let Some(bounced) = registry.referent(&returned.referent_id) else {
            tracing::error!(alert_id = %returned.alert_id, referent = %returned.referent_id,
                "a bounce came back for a référent the registry no longer has; \
                 nobody else was emailed: call the office");
            return Ok(());
        };
        let Some(alert) = self
            .kept_copy(&returned.publisher, &returned.alert_id, &registry)
            .await?
        else {
            return Ok(());
        };
        let this = Published {
            alert: &alert,
            publisher: &returned.publisher,
        };
        let served = self
            .store
            .served(AlertKey {
                publisher: &returned.publisher,
                id: &returned.alert_id,
            })
            .await
            .map_err(|e| NotYet(e.to_string()))?;
        let now = OffsetDateTime::now_utc();
        let declared = self.absences.in_force(now).await;
        let not_served =
            |id: &str| id != bounced.id().as_str() && !served.iter().any(|s| s.referent_id == id);
        let deputies: Vec<_> = registry
            .deputies_of(bounced)
            .into_iter()
            .filter(|deputy| not_served(deputy.id().as_str()))
            .collect();
        let to_send = if deputies.is_empty() {
            registry
                .escalation_tiers_with(alert.kind(), alert.territory(), now, &declared)
                .unwrap_or_default()
                .iter()
                .filter(|tier| tier.network == bounced.network())
                .flat_map(|tier| tier.fallback.iter().copied())
                .filter(|r| not_served(r.id().as_str()))
                .collect()
        } else {
            deputies
        };
        if to_send.is_empty() {
            tracing::error!(alert_id = %alert.id(), referent = %bounced.id(),
                network = bounced.network(),
                "a référent's mailbox refused an alert and nobody else of its network is left \
                 to email: call the office");
        } else {
            let label = registry.kind_label(alert.kind());
            let wording = Wording {
                kind_label: &label,
                author: registry.author(alert.kind(), this.publisher),
                reply_to: registry.publishers().contact(this.publisher),
            };
            let place = registry.geography().describe(alert.territory());
            let origin = Origin {
                content: alert.digest(&self.digest_key),
                registry: registry.digest(),
            };
            let sends = to_send.iter().map(|referent| {
                self.send(
                    this,
                    referent,
                    wording,
                    &place,
                    Addressed::Bounced(bounced),
                    origin,
                )
            });
            let failures: Vec<_> = join_all(sends).await.into_iter().flatten().collect();
            if let Some(transient) = failures.iter().find(|f| f.is_transient()) {
                return Err(NotYet(transient.to_string()));
            }
        }
        self.store.note(Fact::bounced(
            AlertKey {
                publisher: &returned.publisher,
                id: &returned.alert_id,
            },
            bounced.network(),
            bounce.received_at,
        ));
        self.events.referent_bounced(
            &returned.publisher,
            &returned.alert_id,
            bounced,
            &bounce.status,
            to_send.len(),
        );
        Ok(())
    }
}

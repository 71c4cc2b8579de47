//! Hand-backs in the store: the sealed copy of each alert delivered while
//! the acknowledgement pages are served (`ack::copy` seals it; the store
//! never sees the key), and the référents who said an alert is not theirs,
//! each until the network's fallback référents were emailed it.
//!
//! A hand-back is recorded by whichever relais serves the page, and carried
//! out by the active relais (`relay::hand_back`): it reads those not done,
//! emails, then records them done. A référent who handed an alert back
//! does not count as having acknowledged it: its network's escalation goes
//! on.

use time::OffsetDateTime;

use super::value::Value;
use super::{AlertKey, Store, StoreError};

/// A référent's hand-back of an alert, not carried out yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandBack {
    pub publisher: String,
    pub alert_id: String,
    pub referent_id: String,
    pub requested_at: OffsetDateTime,
}

impl Store {
    /// Keeps `alert`'s sealed copy until `expires_at` (the first copy
    /// stays: every copy of one alert seals the same content), in the group
    /// commit with the deliveries.
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn keep_copy(
        &self,
        alert: AlertKey<'_>,
        sealed: Vec<u8>,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.commit((
            "INSERT INTO alert_copies (publisher, alert_id, sealed, expires_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (alert_id, publisher) DO NOTHING",
            vec![
                alert.publisher.into(),
                alert.id.into(),
                Value::Blob(sealed),
                expires_at.into(),
            ],
        ))
        .await
    }

    /// `alert`'s sealed copy, if it is still kept.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    pub async fn copy(&self, alert: AlertKey<'_>) -> Result<Option<Vec<u8>>, StoreError> {
        let mut rows = self
            .engine
            .read(
                "SELECT sealed FROM alert_copies WHERE alert_id = $1 AND publisher = $2",
                vec![alert.id.into(), alert.publisher.into()],
            )
            .await?;
        match rows.first_mut() {
            Some(row) => row.blob_or_null(0),
            None => Ok(None),
        }
    }

    /// Records that `referent_id` handed `alert` back at `at`; `false` if
    /// it already had (the first time stays).
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn hand_back(
        &self,
        alert: AlertKey<'_>,
        referent_id: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let changed = self
            .engine
            .execute(
                "INSERT INTO handbacks (publisher, alert_id, referent_id, requested_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (alert_id, publisher, referent_id) DO NOTHING",
                vec![
                    alert.publisher.into(),
                    alert.id.into(),
                    referent_id.into(),
                    at.into(),
                ],
            )
            .await?;
        Ok(changed == 1)
    }

    /// The hand-backs not carried out yet, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    pub async fn hand_backs_due(&self) -> Result<Vec<HandBack>, StoreError> {
        let rows = self
            .engine
            .scan(
                "SELECT publisher, alert_id, referent_id, requested_at FROM handbacks
                 WHERE done_at IS NULL ORDER BY requested_at",
                Vec::new(),
            )
            .await?;
        rows.into_iter()
            .map(|mut row| {
                Ok(HandBack {
                    publisher: row.text(0)?,
                    alert_id: row.text(1)?,
                    referent_id: row.text(2)?,
                    requested_at: row.time(3)?,
                })
            })
            .collect()
    }

    /// Records that `hand_back` was carried out at `at`.
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn hand_back_done(
        &self,
        hand_back: &HandBack,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.engine
            .execute(
                "UPDATE handbacks SET done_at = $1
                 WHERE alert_id = $2 AND publisher = $3 AND referent_id = $4",
                vec![
                    at.into(),
                    hand_back.alert_id.as_str().into(),
                    hand_back.publisher.as_str().into(),
                    hand_back.referent_id.as_str().into(),
                ],
            )
            .await
            .map(|_| ())
    }

    /// Who handed `alert` back, and when.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    pub async fn handed_back(
        &self,
        alert: AlertKey<'_>,
    ) -> Result<Vec<(String, OffsetDateTime)>, StoreError> {
        let rows = self
            .engine
            .read(
                "SELECT referent_id, requested_at FROM handbacks
                 WHERE alert_id = $1 AND publisher IN ($2, '') ORDER BY requested_at",
                vec![alert.id.into(), alert.publisher.into()],
            )
            .await?;
        rows.into_iter()
            .map(|mut row| Ok((row.text(0)?, row.time(1)?)))
            .collect()
    }

    /// Forgets the copies past their time and the hand-backs recorded
    /// before `before`.
    pub(super) fn prune_hand_backs(before: OffsetDateTime) -> [super::Statement; 2] {
        let now = OffsetDateTime::now_utc();
        [
            (
                "DELETE FROM alert_copies WHERE expires_at < $1",
                vec![now.into()],
            ),
            (
                "DELETE FROM handbacks WHERE requested_at < $1",
                vec![before.into()],
            ),
        ]
    }
}

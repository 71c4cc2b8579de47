//! Bounces in the store: which email each return path's number tags (the
//! `return_path` of its delivery), and what came back to it.
//!
//! `relais bounce` (run by the mail server, on any host) records a bounce
//! once per email and action: a mail server that sends the same failure
//! twice, or a bounce replayed, changes nothing the second time. The
//! active relais reads the failures not acted on (`relay::bounce`), sends
//! the alert on, then records them acted on.

use time::OffsetDateTime;

use super::value::Row;
use super::{AuditReader, Store, StoreError};

/// What a bounce reported for the email it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceAction {
    /// The mailbox refused it for good (`Action: failed`, a `5.x.x`
    /// status): the alert is sent on.
    Failed,
    /// The server keeps trying (`Action: delayed`): recorded and shown,
    /// nothing more.
    Delayed,
}

impl BounceAction {
    /// As stored and shown: `failed`, `delayed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Delayed => "delayed",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "failed" => Ok(Self::Failed),
            "delayed" => Ok(Self::Delayed),
            other => Err(StoreError::Shape(format!(
                "unknown bounce action {other:?}"
            ))),
        }
    }
}

/// The email a return path's number tags, as its delivery recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnedEmail {
    pub return_path: u64,
    pub publisher: String,
    pub alert_id: String,
    pub referent_id: String,
    pub network: Option<String>,
}

/// One bounce recorded for one email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceRecord {
    pub email: ReturnedEmail,
    pub action: BounceAction,
    /// The enhanced status code (RFC 3463), e.g. `5.1.1`; `unknown` for a
    /// bounce that gave none.
    pub status: String,
    pub received_at: OffsetDateTime,
    /// When the active relais sent the alert on (failures only).
    pub acted_at: Option<OffsetDateTime>,
}

/// A return path's number as the store keeps it: both engines keep
/// signed 64-bit integers, so the number's bits are kept as one.
pub(super) fn stored(number: u64) -> i64 {
    i64::from_ne_bytes(number.to_ne_bytes())
}

/// The number [`stored`] kept.
pub(super) fn number(stored: i64) -> u64 {
    u64::from_ne_bytes(stored.to_ne_bytes())
}

impl Store {
    /// The email whose return path was tagged with `number`, if its
    /// delivery is still kept (`store.retention`).
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn returned_email(&self, number: u64) -> Result<Option<ReturnedEmail>, StoreError> {
        let rows = self
            .engine
            .read(
                "SELECT return_path, publisher, alert_id, referent_id, network
                 FROM deliveries WHERE return_path = $1",
                vec![stored(number).into()],
            )
            .await?;
        rows.into_iter().next().map(returned_email).transpose()
    }

    /// Records a bounce of `email`; `false` if one with that action was
    /// recorded already (the first stands, and nothing changes).
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn record_bounce(
        &self,
        email: &ReturnedEmail,
        action: BounceAction,
        status: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let changed = self
            .engine
            .execute(
                "INSERT INTO bounces
                     (return_path, action, publisher, alert_id, referent_id, network, status,
                      received_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (return_path, action) DO NOTHING",
                vec![
                    stored(email.return_path).into(),
                    action.as_str().into(),
                    email.publisher.as_str().into(),
                    email.alert_id.as_str().into(),
                    email.referent_id.as_str().into(),
                    email.network.as_deref().into(),
                    status.into(),
                    at.into(),
                ],
            )
            .await?;
        Ok(changed == 1)
    }

    /// The failures not acted on yet, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn bounces_to_act_on(&self) -> Result<Vec<BounceRecord>, StoreError> {
        let rows = self
            .engine
            .scan(
                "SELECT return_path, publisher, alert_id, referent_id, network, action, status,
                        received_at, acted_at
                 FROM bounces WHERE action = 'failed' AND acted_at IS NULL
                 ORDER BY received_at, return_path",
                vec![],
            )
            .await?;
        rows.into_iter().map(bounce).collect()
    }

    /// Records that the alert of `bounce` was sent on at `at`.
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn bounce_acted_on(
        &self,
        bounce: &BounceRecord,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.engine
            .execute(
                "UPDATE bounces SET acted_at = $3
                 WHERE return_path = $1 AND action = $2 AND acted_at IS NULL",
                vec![
                    stored(bounce.email.return_path).into(),
                    bounce.action.as_str().into(),
                    at.into(),
                ],
            )
            .await?;
        Ok(())
    }

    /// The statement that forgets the bounces received before `before`,
    /// with the deliveries they return.
    pub(super) fn prune_bounces(before: OffsetDateTime) -> super::Statement {
        (
            "DELETE FROM bounces WHERE received_at < $1",
            vec![before.into()],
        )
    }
}

impl AuditReader {
    /// The bounces of the alerts of id `alert_id` (any publisher), oldest
    /// first: for the audit.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn bounces_of(&self, alert_id: &str) -> Result<Vec<BounceRecord>, StoreError> {
        let rows = self
            .0
            .engine
            .scan(
                "SELECT return_path, publisher, alert_id, referent_id, network, action, status,
                        received_at, acted_at
                 FROM bounces WHERE alert_id = $1
                 ORDER BY received_at, return_path, action",
                vec![alert_id.into()],
            )
            .await?;
        rows.into_iter().map(bounce).collect()
    }
}

fn returned_email(mut row: Row) -> Result<ReturnedEmail, StoreError> {
    Ok(ReturnedEmail {
        return_path: number(row.int(0)?),
        publisher: row.text(1)?,
        alert_id: row.text(2)?,
        referent_id: row.text(3)?,
        network: row.text_or_null(4)?,
    })
}

fn bounce(mut row: Row) -> Result<BounceRecord, StoreError> {
    Ok(BounceRecord {
        email: ReturnedEmail {
            return_path: number(row.int(0)?),
            publisher: row.text(1)?,
            alert_id: row.text(2)?,
            referent_id: row.text(3)?,
            network: row.text_or_null(4)?,
        },
        action: BounceAction::parse(&row.text(5)?)?,
        status: row.text(6)?,
        received_at: row.time(7)?,
        acted_at: row.time_or_null(8)?,
    })
}

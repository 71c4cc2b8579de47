//! The convention's yearly report's facts (`relais report`): one row per
//! alert per network it went to, kept `store.report_retention` (13 months)
//! where the deliveries they were drawn from are kept `store.retention`.
//!
//! A fact holds nothing that names a person: the alert is a pseudonym (the
//! store's `report` key's HMAC-SHA256 of its publisher and id, so that the
//! rows of one alert group together without its id), and beside it only
//! its publisher, network, département, kind, the times of its life and
//! codes (the dead letter's reason, the follow-up). Never a référent, an
//! address, patient data or free text.
//!
//! Facts are best effort: each is noted where relais records the event it
//! comes from ([`Store::note`]), and written by one task beside the work,
//! many in one transaction ([`write_facts`]), from a bounded queue. A
//! store out of reach (a restart, a failover) holds them back until it
//! comes back; any other failure, or a queue full because the store is
//! slower than the alerts, is logged. None of it ever delays or fails a
//! delivery, an acknowledgement or a page.
//! Every fact is an upsert keyed by (pseudonym, network) that keeps the
//! first received, delivered, bounced and acknowledged times, the highest
//! escalation step and the last follow-up.

use std::fmt::Write as _;
use std::time::Duration;

use ring::hmac;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::value::Row;
use super::{AlertKey, Store, StoreError, UNACKNOWLEDGED_STEP};
use crate::follow_up::FollowUp;

/// One alert in one network, as the report reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFact {
    /// The alert's pseudonym (32 hex digits).
    pub alert: String,
    /// Its network; empty for an alert dead-lettered before any network.
    pub network: String,
    /// The association's publisher id (the broker user that published it).
    pub publisher: String,
    /// The département code, when the alert could be read.
    pub departement: Option<String>,
    /// The alert's kind, when it could be read.
    pub kind: Option<String>,
    /// When relais received it (or, if the delivery's fact was lost, when
    /// the first fact of it was written).
    pub received_at: OffsetDateTime,
    pub delivered_at: Option<OffsetDateTime>,
    pub bounced_at: Option<OffsetDateTime>,
    /// The dead letter's reason code (`outcome::Reason`).
    pub dead_reason: Option<String>,
    /// When the network first acknowledged it.
    pub acknowledged_at: Option<OffsetDateTime>,
    /// The highest step of escalation carried out for the network (0: none).
    pub escalated: u8,
    /// Declared unacknowledged at the chain's last step.
    pub unacknowledged: bool,
    /// The last follow-up a référent of the network recorded (its code).
    pub outcome: Option<String>,
}

/// What relais read of an alert when it received it: what the report
/// groups it by.
#[derive(Debug, Clone, Copy)]
pub struct AlertFacts<'a> {
    pub departement: &'a str,
    pub kind: &'a str,
    pub received_at: OffsetDateTime,
}

/// One fact to write, owned so that it can be written in the background.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    publisher: String,
    alert_id: String,
    /// `None` for a dead letter: every row of the alert, or '' if it has
    /// none yet.
    network: Option<String>,
    departement: Option<String>,
    kind: Option<String>,
    received_at: OffsetDateTime,
    delivered_at: Option<OffsetDateTime>,
    bounced_at: Option<OffsetDateTime>,
    dead_reason: Option<String>,
    acknowledged_at: Option<OffsetDateTime>,
    escalated: u8,
    unacknowledged: bool,
    outcome: Option<&'static str>,
}

impl Fact {
    /// An event of `alert` in `network` at `at`, saying nothing yet.
    fn at(alert: AlertKey<'_>, network: Option<&str>, at: OffsetDateTime) -> Self {
        Self {
            publisher: alert.publisher.to_owned(),
            alert_id: alert.id.to_owned(),
            network: network.map(str::to_owned),
            departement: None,
            kind: None,
            received_at: at,
            delivered_at: None,
            bounced_at: None,
            dead_reason: None,
            acknowledged_at: None,
            escalated: 0,
            unacknowledged: false,
            outcome: None,
        }
    }

    /// `alert`, received as `about` says, delivered to `network` at `at`.
    pub fn delivered(
        alert: AlertKey<'_>,
        network: &str,
        about: AlertFacts<'_>,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            departement: Some(about.departement.to_owned()),
            kind: Some(about.kind.to_owned()),
            received_at: about.received_at,
            delivered_at: Some(at),
            ..Self::at(alert, Some(network), at)
        }
    }

    /// `alert` dead-lettered at `at` for `reason` (its code), with what was
    /// read of it if it could be read.
    pub fn dead_lettered(
        alert: AlertKey<'_>,
        reason: &str,
        about: Option<AlertFacts<'_>>,
        at: OffsetDateTime,
    ) -> Self {
        let mut fact = Self {
            dead_reason: Some(reason.to_owned()),
            ..Self::at(alert, None, at)
        };
        if let Some(about) = about {
            fact.departement = Some(about.departement.to_owned());
            fact.kind = Some(about.kind.to_owned());
            fact.received_at = about.received_at;
        }
        fact
    }

    /// `network` acknowledged `alert` at `at`.
    pub fn acknowledged(alert: AlertKey<'_>, network: &str, at: OffsetDateTime) -> Self {
        Self {
            acknowledged_at: Some(at),
            ..Self::at(alert, Some(network), at)
        }
    }

    /// Step `step` of `alert`'s escalation was carried out for `network` at
    /// `at`; the last step declares it unacknowledged.
    pub fn escalated(alert: AlertKey<'_>, network: &str, step: u8, at: OffsetDateTime) -> Self {
        Self {
            escalated: step,
            unacknowledged: step >= UNACKNOWLEDGED_STEP,
            ..Self::at(alert, Some(network), at)
        }
    }

    /// A référent of `network` recorded `follow_up` about `alert` at `at`.
    pub fn followed_up(
        alert: AlertKey<'_>,
        network: &str,
        follow_up: FollowUp,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            outcome: Some(follow_up.code()),
            // The follow-up acknowledges the alert if nothing did before.
            acknowledged_at: Some(at),
            ..Self::at(alert, Some(network), at)
        }
    }

    /// `alert`'s email to `network` bounced at `at`.
    pub fn bounced(alert: AlertKey<'_>, network: &str, at: OffsetDateTime) -> Self {
        Self {
            bounced_at: Some(at),
            ..Self::at(alert, Some(network), at)
        }
    }
}

/// The upsert of one fact: the first times stay (the earliest received),
/// the highest step, the last dead letter's reason and follow-up.
const UPSERT: &str = "INSERT INTO report_facts
         (alert, network, publisher, departement, kind, received_at, delivered_at, bounced_at,
          dead_reason, acknowledged_at, escalated, unacknowledged, outcome)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
     ON CONFLICT (alert, network) DO UPDATE SET
         departement = COALESCE(report_facts.departement, excluded.departement),
         kind = COALESCE(report_facts.kind, excluded.kind),
         received_at = CASE WHEN excluded.received_at < report_facts.received_at
                            THEN excluded.received_at ELSE report_facts.received_at END,
         delivered_at = COALESCE(report_facts.delivered_at, excluded.delivered_at),
         bounced_at = COALESCE(report_facts.bounced_at, excluded.bounced_at),
         dead_reason = COALESCE(excluded.dead_reason, report_facts.dead_reason),
         acknowledged_at = COALESCE(report_facts.acknowledged_at, excluded.acknowledged_at),
         escalated = CASE WHEN excluded.escalated > report_facts.escalated
                          THEN excluded.escalated ELSE report_facts.escalated END,
         unacknowledged = CASE WHEN excluded.unacknowledged > report_facts.unacknowledged
                               THEN excluded.unacknowledged ELSE report_facts.unacknowledged END,
         outcome = COALESCE(excluded.outcome, report_facts.outcome)";

/// Facts noted and not written yet: beyond, a fact is dropped (and
/// logged) rather than memory growing while the store lags.
pub(super) const FACTS_QUEUE: usize = 4096;
/// Most facts written in one transaction: short, so that a batch of
/// facts never holds the store long beside the deliveries' records.
const FACTS_BATCH: usize = 64;

/// The wait before a batch of facts is written again when the store could
/// not be reached (a restart, a failover): doubling from the first to the
/// longest, for as long as the store stays out of reach. The facts noted
/// meanwhile wait in the queue ([`FACTS_QUEUE`]).
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_LONGEST: Duration = Duration::from_secs(5);

/// Writes the facts noted on a store (see [`Store::note`]), those that
/// have arrived together in one transaction, until every handle that
/// notes them is gone. `store` is a handle that notes none. A batch the
/// store could not take because it could not be reached is written again
/// once it can; one it refused for any other reason is logged and left.
pub(super) async fn write_facts(store: Store, mut facts: mpsc::Receiver<Fact>) {
    let mut batch = Vec::with_capacity(FACTS_BATCH);
    while facts.recv_many(&mut batch, FACTS_BATCH).await > 0 {
        let mut wait = RETRY_FIRST;
        let mut waited = false;
        loop {
            match store.write_batch(&mut batch).await {
                Ok(()) => {
                    if waited {
                        tracing::info!(
                            "facts of the yearly report written, now that the store can be reached"
                        );
                    }
                    break;
                }
                Err(error) if error.is_unavailable() => {
                    if !waited {
                        tracing::warn!(count = batch.len(), %error,
                            "cannot write facts of the yearly report: the store cannot be \
                             reached; they will be written once it can");
                        waited = true;
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_LONGEST);
                }
                Err(error) => {
                    tracing::warn!(count = batch.len(), %error,
                        "cannot write facts of the yearly report; the report will miss them");
                    break;
                }
            }
        }
        batch.clear();
    }
}

impl Store {
    /// Notes `fact`, written beside the work ([`write_facts`]); never
    /// waits and never fails: the report's facts are best effort, and
    /// never hold up what they record.
    pub fn note(&self, fact: Fact) {
        let Some(facts) = &self.facts else {
            // A handle that writes no deliveries: written at once.
            let store = self.clone();
            tokio::spawn(async move {
                let (publisher, alert_id) = (fact.publisher.clone(), fact.alert_id.clone());
                if let Err(error) = store.fact(fact).await {
                    tracing::warn!(%alert_id, publisher, %error,
                        "cannot write a fact of the yearly report; the report will miss it");
                }
            });
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(fact)) = facts.try_send(fact) {
            tracing::warn!(alert_id = %fact.alert_id, publisher = fact.publisher,
                "too many facts of the yearly report wait for the store; this one is not \
                 written, and the report will miss it");
        }
    }

    /// Writes `batch` in one transaction. A fact whose statements cannot
    /// be made for a reason other than the store being out of reach is
    /// logged and left out of `batch`.
    async fn write_batch(&self, batch: &mut Vec<Fact>) -> Result<(), StoreError> {
        let mut statements = Vec::with_capacity(batch.len());
        let mut made = Vec::with_capacity(batch.len());
        for fact in batch.iter() {
            match self.statements(fact.clone()).await {
                Ok(written) => {
                    statements.extend(written);
                    made.push(true);
                }
                Err(error) if error.is_unavailable() => return Err(error),
                Err(error) => {
                    tracing::warn!(alert_id = %fact.alert_id, publisher = fact.publisher, %error,
                        "cannot write a fact of the yearly report; the report will miss it");
                    made.push(false);
                }
            }
        }
        let mut made = made.into_iter();
        batch.retain(|_| made.next().unwrap_or(false));
        if statements.is_empty() {
            return Ok(());
        }
        self.engine.write(statements).await.map(drop)
    }

    /// Writes `fact`; stored for good when this returns.
    ///
    /// # Errors
    /// [`StoreError`] if the store's key cannot be read or the write failed.
    pub async fn fact(&self, fact: Fact) -> Result<(), StoreError> {
        let statements = self.statements(fact).await?;
        self.engine.write(statements).await.map(drop)
    }

    /// The statements that write `fact`, in one transaction with others.
    /// A dead letter marks the rows of the networks the alert went to, or,
    /// when it has none, makes its row of no network.
    async fn statements(&self, fact: Fact) -> Result<Vec<super::Statement>, StoreError> {
        let alert = self.pseudonym(&fact.publisher, &fact.alert_id).await?;
        if fact.network.is_some() {
            let network = fact.network.clone().unwrap_or_default();
            return Ok(vec![upsert(alert, network, fact)]);
        }
        Ok(vec![
            (
                "UPDATE report_facts SET dead_reason = $2 WHERE alert = $1",
                vec![alert.as_str().into(), fact.dead_reason.clone().into()],
            ),
            (
                "INSERT INTO report_facts
                     (alert, network, publisher, departement, kind, received_at, dead_reason,
                      escalated, unacknowledged)
                 SELECT CAST($1 AS TEXT), '', CAST($2 AS TEXT), CAST($3 AS TEXT),
                        CAST($4 AS TEXT), CAST($5 AS BIGINT), CAST($6 AS TEXT), 0, 0
                 WHERE NOT EXISTS (SELECT 1 FROM report_facts WHERE alert = CAST($1 AS TEXT))",
                vec![
                    alert.into(),
                    fact.publisher.into(),
                    fact.departement.into(),
                    fact.kind.into(),
                    fact.received_at.into(),
                    fact.dead_reason.into(),
                ],
            ),
        ])
    }

    /// Records that `alert`'s email to `network` bounced at `at` (the
    /// first time stays).
    ///
    /// # Errors
    /// [`StoreError`] if the store's key cannot be read or the write failed.
    pub async fn fact_bounced(
        &self,
        alert: AlertKey<'_>,
        network: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.fact(Fact::bounced(alert, network, at)).await
    }

    /// The pseudonym of `publisher`'s alert `id`: the first 16 bytes, in
    /// hex, of the HMAC-SHA256 of `publisher`, NUL, `id` under the store's
    /// `report` key (read once per handle).
    ///
    /// # Errors
    /// [`StoreError`] if the key cannot be read.
    pub async fn pseudonym(&self, publisher: &str, id: &str) -> Result<String, StoreError> {
        let key = match self.report_key.get() {
            Some(key) => key.clone(),
            None => {
                let secret = self.key("report").await?;
                let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
                self.report_key.get_or_init(|| key).clone()
            }
        };
        let mut message = Vec::with_capacity(publisher.len() + 1 + id.len());
        message.extend_from_slice(publisher.as_bytes());
        message.push(0);
        message.extend_from_slice(id.as_bytes());
        let tag = hmac::sign(&key, &message);
        let mut hex = String::with_capacity(32);
        for byte in &tag.as_ref()[..16] {
            let _ = write!(hex, "{byte:02x}");
        }
        Ok(hex)
    }

    /// The facts of the alerts received in `[from, to)`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn report_facts(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<ReportFact>, StoreError> {
        let rows = self
            .engine
            .scan(
                "SELECT alert, network, publisher, departement, kind, received_at, delivered_at,
                        bounced_at, dead_reason, acknowledged_at, escalated, unacknowledged,
                        outcome
                 FROM report_facts WHERE received_at >= $1 AND received_at < $2
                 ORDER BY received_at, alert, network",
                vec![from.into(), to.into()],
            )
            .await?;
        rows.into_iter().map(report_fact).collect()
    }

    /// Forgets the facts of alerts received before `before`
    /// (`store.report_retention`); returns how many.
    ///
    /// # Errors
    /// [`StoreError`] if the delete failed.
    pub async fn prune_report(&self, before: OffsetDateTime) -> Result<usize, StoreError> {
        let deleted = self
            .engine
            .execute(
                "DELETE FROM report_facts WHERE received_at < $1",
                vec![before.into()],
            )
            .await?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }
}

fn report_fact(mut row: Row) -> Result<ReportFact, StoreError> {
    Ok(ReportFact {
        alert: row.text(0)?,
        network: row.text(1)?,
        publisher: row.text(2)?,
        departement: row.text_or_null(3)?,
        kind: row.text_or_null(4)?,
        received_at: row.time(5)?,
        delivered_at: row.time_or_null(6)?,
        bounced_at: row.time_or_null(7)?,
        dead_reason: row.text_or_null(8)?,
        acknowledged_at: row.time_or_null(9)?,
        escalated: u8::try_from(row.int(10)?).unwrap_or(u8::MAX),
        unacknowledged: row.int(11)? != 0,
        outcome: row.text_or_null(12)?,
    })
}

/// The upsert of `fact` as the row of `alert` in `network`.
fn upsert(alert: String, network: String, fact: Fact) -> super::Statement {
    (
        UPSERT,
        vec![
            alert.into(),
            network.into(),
            fact.publisher.into(),
            fact.departement.into(),
            fact.kind.into(),
            fact.received_at.into(),
            fact.delivered_at.into(),
            fact.bounced_at.into(),
            fact.dead_reason.into(),
            fact.acknowledged_at.into(),
            fact.escalated.into(),
            i64::from(fact.unacknowledged).into(),
            fact.outcome.into(),
        ],
    )
}

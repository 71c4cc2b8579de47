//! The operators' tools on `<queue>.dead`: look, replay, purge, without
//! touching RabbitMQ by hand; and the one [`Pass`] over a queue that
//! nothing consumes, which the tools on the escalation queues share.
//!
//! Looking never consumes: messages are taken unacknowledged and given back
//! when the channel closes. Replaying publishes each chosen message to the
//! main queue with a publisher confirm and removes it from `.dead` only
//! after the confirm, so an interruption at any point loses nothing (at
//! worst a message is both replayed and still in `.dead`; a second replay is
//! harmless, the store prevents a second email). What is shown of a message
//! is its checked identity (id, kind, territory) and relais's headers, never
//! its content.
//!
//! A message the broker dead-lettered itself (past `delivery_limit`) still
//! has its publisher's `user_id` and headers: every message is taken with
//! [`headers::strip_foreign`], so that neither what operators see and
//! select (a reason, a kind) nor a replay, published under relais's own
//! login, takes a publisher's `x-relais-*` header for relais's.

use std::time::Duration;

use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::alert::{AlertId, Kind};
use crate::amqp::headers;
use crate::amqp::publisher::Publisher;
use crate::amqp::topology::Topology;
use crate::outcome::Reason;
use crate::territory::{Commune, Departement};

/// One dead letter as operators see it. Every field is either checked
/// against the contract or written by relais or the broker.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeadLetter {
    pub alert_id: String,
    pub kind: String,
    pub territory: String,
    pub reason: String,
    pub error: String,
    pub attempts: Option<i64>,
    pub failed_at: Option<String>,
}

impl DeadLetter {
    fn read(message: &BasicGetMessage) -> Self {
        let delivery = &message.delivery;
        let headers = delivery.properties.headers().clone().unwrap_or_default();
        Self::from_parts(&headers, delivery.routing_key.as_str(), &delivery.data)
    }

    /// What operators see of a message of `.dead`: the alert's identity,
    /// each part only if it passes the contract's check, and relais's (or
    /// the broker's) record of why it is there.
    fn from_parts(headers: &FieldTable, routing_key: &str, body: &[u8]) -> Self {
        let body: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let field = |pointer: &str| {
            body.as_ref()
                .and_then(|b| b.pointer(pointer))
                .and_then(|v| v.as_str())
        };
        let alert_id = field("/id")
            .and_then(|id| AlertId::parse(id).ok())
            .map_or_else(|| "-".into(), |id| id.to_string());
        let kind = Kind::parse(&headers::routing_key(headers, routing_key))
            .map_or_else(|_| "-".into(), |k| k.to_string());
        let commune = field("/territory/commune").and_then(|c| Commune::parse(c).ok());
        let departement = field("/territory/departement").and_then(|d| Departement::parse(d).ok());
        // Only codes of a valid shape are shown: a dead letter's body may
        // hold anything.
        let territory = match (commune, departement) {
            (Some(commune), _) => format!("commune {commune}"),
            (None, Some(departement)) => format!("département {departement}"),
            (None, None) => "-".into(),
        };
        Self {
            alert_id,
            kind,
            territory,
            reason: headers::reason(headers).unwrap_or_else(|| "-".into()),
            error: headers::text(headers, headers::ERROR).unwrap_or_else(|| "-".into()),
            attempts: headers::number(headers, headers::ATTEMPTS),
            failed_at: headers::failed_at(headers),
        }
    }

    /// How long ago it was dead-lettered, if known.
    pub fn age(&self) -> Option<time::Duration> {
        let failed_at = OffsetDateTime::parse(self.failed_at.as_deref()?, &Rfc3339).ok()?;
        Some(OffsetDateTime::now_utc() - failed_at)
    }
}

/// Which dead letters a replay or purge takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    All,
    Id(String),
    Reason(Reason),
    /// Dead-lettered longer ago than this (one whose time is unknown is
    /// never taken).
    OlderThan(Duration),
}

impl Selection {
    /// Whether `letter` is one of the selected.
    pub fn takes(&self, letter: &DeadLetter) -> bool {
        match self {
            Self::All => true,
            Self::Id(id) => &letter.alert_id == id,
            Self::Reason(reason) => letter.reason == reason.as_str(),
            Self::OlderThan(age) => letter
                .age()
                .is_some_and(|actual| actual.unsigned_abs() > *age && actual.is_positive()),
        }
    }
}

/// Up to `limit` dead letters, oldest first, left in the queue.
///
/// # Errors
/// When the broker fails.
pub async fn list(
    connection: &Connection,
    topology: &Topology,
    limit: usize,
    login: Option<&str>,
) -> Result<Vec<DeadLetter>, lapin::Error> {
    let channel = connection.create_channel().await?;
    let mut letters = Vec::new();
    while letters.len() < limit {
        match take(&channel, &topology.dead, login).await? {
            Some(message) => letters.push(DeadLetter::read(&message)),
            None => break,
        }
    }
    // Closing the channel gives every message taken back to the queue.
    channel.close(200, "looked".into()).await?;
    Ok(letters)
}

/// What a replay or purge took out of `.dead`, and how many it left.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Taken {
    pub taken: Vec<DeadLetter>,
    pub left: usize,
}

/// Publishes the selected dead letters back to the main queue, with their
/// original routing key and their attempt count reset, each removed from
/// `.dead` only once the broker confirmed it. It is relais's own publish,
/// under its `login`: it keeps the référents served that relais recorded
/// (nobody is emailed twice), and nothing of relais's vocabulary that a
/// publisher wrote.
///
/// # Errors
/// When the broker fails; what was confirmed is moved, the rest stays.
pub async fn replay(
    connection: &Connection,
    topology: &Topology,
    selection: &Selection,
    confirm_timeout: Duration,
    login: Option<&str>,
) -> Result<Taken, anyhow::Error> {
    let publisher = Publisher::open(connection, confirm_timeout).await?;
    walk(connection, topology, selection, login, |message| {
        let publisher = publisher.clone();
        let queue = topology.queue.clone();
        async move {
            let delivery = &message.delivery;
            let original = delivery.properties.headers().clone().unwrap_or_default();
            let routing_key = headers::routing_key(&original, delivery.routing_key.as_str());
            let properties = headers::republish(
                &delivery.properties,
                headers::for_replay(
                    &original,
                    &routing_key,
                    &headers::served(&delivery.properties, login),
                ),
                login,
            );
            publisher
                .publish_confirmed("", &queue, &delivery.data, properties)
                .await?;
            Ok(())
        }
    })
    .await
}

/// Removes the selected dead letters for good.
///
/// # Errors
/// When the broker fails.
pub async fn purge(
    connection: &Connection,
    topology: &Topology,
    selection: &Selection,
    login: Option<&str>,
) -> Result<Taken, anyhow::Error> {
    walk(connection, topology, selection, login, |_| async { Ok(()) }).await
}

/// The next message of `queue`, taken unacknowledged, with relais's
/// headers only (see [`headers::strip_foreign`]).
async fn take(
    channel: &Channel,
    queue: &str,
    login: Option<&str>,
) -> Result<Option<BasicGetMessage>, lapin::Error> {
    let taken = channel
        .basic_get(queue.into(), BasicGetOptions::default())
        .await?;
    Ok(taken.map(|mut message| {
        let properties = std::mem::take(&mut message.delivery.properties);
        message.delivery.properties = headers::strip_foreign(properties, login);
        message
    }))
}

/// One pass over a queue that nothing consumes (`.dead`, an escalation
/// queue): each message it held when the pass began, taken once,
/// unacknowledged, with relais's headers only. The caller removes a
/// message by acking it; every other goes back when the pass closes, as
/// it was: a message given back keeps its place and, in a queue with a
/// TTL, the time it entered (republishing it would restart its wait).
/// It takes no more than the queue held at the start: a message that
/// comes back meanwhile (a replayed alert that fails again) is not taken
/// twice.
pub struct Pass {
    channel: Channel,
    queue: String,
    login: Option<String>,
    /// Messages still to take of those the queue held at the start.
    remaining: u32,
}

impl Pass {
    /// Starts a pass over `queue`, under relais's `login` (to tell its own
    /// messages' headers from a publisher's).
    ///
    /// # Errors
    /// When the queue does not exist or the broker fails.
    pub async fn open(
        connection: &Connection,
        queue: &str,
        login: Option<&str>,
    ) -> Result<Self, lapin::Error> {
        let channel = connection.create_channel().await?;
        let remaining = Topology::depth(&channel, queue).await?;
        Ok(Self {
            channel,
            queue: queue.to_owned(),
            login: login.map(str::to_owned),
            remaining,
        })
    }

    /// How many messages the pass has still to take.
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// The next message, or `None` once the pass took every message the
    /// queue held at its start (or the queue is empty).
    ///
    /// # Errors
    /// When the broker fails.
    pub async fn next(&mut self) -> Result<Option<BasicGetMessage>, lapin::Error> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        take(&self.channel, &self.queue, self.login.as_deref()).await
    }

    /// Ends the pass: every message taken and not acked goes back.
    ///
    /// # Errors
    /// When the broker fails (the messages go back all the same).
    pub async fn close(self) -> Result<(), lapin::Error> {
        self.channel.close(200, "done".into()).await
    }
}

/// Takes every message of `.dead` once; for the selected ones runs `act`
/// then acks (removes) them; the others go back when the pass closes.
async fn walk<F, Fut>(
    connection: &Connection,
    topology: &Topology,
    selection: &Selection,
    login: Option<&str>,
    act: F,
) -> Result<Taken, anyhow::Error>
where
    F: Fn(BasicGetMessage) -> Fut,
    Fut: Future<Output = Result<(), anyhow::Error>>,
{
    let mut pass = Pass::open(connection, &topology.dead, login).await?;
    let mut taken = Taken::default();
    while let Some(message) = pass.next().await? {
        let letter = DeadLetter::read(&message);
        if !selection.takes(&letter) {
            taken.left += 1;
            continue;
        }
        let acker = message.delivery.acker.clone();
        act(message).await?;
        acker.ack(BasicAckOptions::default()).await?;
        taken.taken.push(letter);
    }
    pass.close().await?;
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(failed_at: Option<OffsetDateTime>) -> DeadLetter {
        let mut headers = FieldTable::default();
        headers.insert(headers::REASON.into(), headers::long_string("invalid"));
        if let Some(at) = failed_at {
            let at = at.format(&Rfc3339).unwrap();
            headers.insert(headers::FAILED_AT.into(), headers::long_string(&at));
        }
        DeadLetter::from_parts(
            &headers,
            "orientation_sociale",
            br#"{"id": "SOS75-1", "territory": {"commune": "75113"}, "patient": {"name": "x"}}"#,
        )
    }

    #[test]
    fn what_operators_see_of_a_dead_letter_is_its_checked_identity_and_relais_s_record() {
        let seen = letter(None);
        assert_eq!(seen.alert_id, "SOS75-1");
        assert_eq!(seen.kind, "orientation_sociale");
        assert_eq!(seen.territory, "commune 75113");
        assert_eq!(seen.reason, "invalid");
        assert_eq!((seen.error.as_str(), seen.attempts), ("-", None));
    }

    #[test]
    fn a_purge_by_age_takes_only_dead_letters_known_to_be_older() {
        let now = OffsetDateTime::now_utc();
        let month = Selection::OlderThan(Duration::from_secs(30 * 86_400));
        assert!(month.takes(&letter(Some(now - time::Duration::days(40)))));
        assert!(!month.takes(&letter(Some(now - time::Duration::days(20)))));
        assert!(!month.takes(&letter(None)), "an unknown age is never taken");
    }
}

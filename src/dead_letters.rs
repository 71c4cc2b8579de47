//! The operators' tools on `<queue>.dead`: look, replay, purge, without
//! touching RabbitMQ by hand.
//!
//! Looking never consumes: messages are taken unacknowledged and given back
//! when the channel closes. Replaying publishes each chosen message to the
//! main queue with a publisher confirm and removes it from `.dead` only
//! after the confirm, so an interruption at any point loses nothing (at
//! worst a message is both replayed and still in `.dead`; a second replay is
//! harmless, the store prevents a second email). What is shown of a message
//! is its checked identity (id, kind, territory) and relais's headers, never
//! its content.

use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::alert::{AlertId, Kind};
use crate::outcome::{
    ATTEMPTS_HEADER, ERROR_HEADER, FAILED_AT_HEADER, Publisher, REASON_HEADER, ROUTING_KEY_HEADER,
};
use crate::territory::{Commune, Departement, Territory};
use crate::topology::Topology;

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
        let body: Option<serde_json::Value> = serde_json::from_slice(&delivery.data).ok();
        let field = |pointer: &str| {
            body.as_ref()
                .and_then(|b| b.pointer(pointer))
                .and_then(|v| v.as_str())
        };
        let alert_id = field("/id")
            .and_then(|id| AlertId::parse(id).ok())
            .map(|id| id.to_string())
            .unwrap_or_else(|| "-".into());
        let routing_key =
            text(&headers, ROUTING_KEY_HEADER).unwrap_or_else(|| delivery.routing_key.to_string());
        let kind = Kind::parse(&routing_key)
            .map(|k| k.to_string())
            .unwrap_or_else(|_| "-".into());
        let commune = field("/territory/commune").and_then(|c| Commune::parse(c).ok());
        let departement = field("/territory/departement").and_then(|d| Departement::parse(d).ok());
        let territory = Territory::new(commune, departement)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| "-".into());
        let reason = text(&headers, REASON_HEADER)
            .or_else(|| text(&headers, "x-first-death-reason"))
            .unwrap_or_else(|| "-".into());
        let failed_at = text(&headers, FAILED_AT_HEADER).or_else(|| death_time(&headers));
        Self {
            alert_id,
            kind,
            territory,
            reason,
            error: text(&headers, ERROR_HEADER).unwrap_or_else(|| "-".into()),
            attempts: number(&headers, ATTEMPTS_HEADER),
            failed_at,
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
    Reason(String),
}

impl Selection {
    fn takes(&self, letter: &DeadLetter) -> bool {
        match self {
            Self::All => true,
            Self::Id(id) => &letter.alert_id == id,
            Self::Reason(reason) => &letter.reason == reason,
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
) -> Result<Vec<DeadLetter>, lapin::Error> {
    let channel = connection.create_channel().await?;
    let mut letters = Vec::new();
    while letters.len() < limit {
        match channel
            .basic_get(topology.dead.as_str().into(), BasicGetOptions::default())
            .await?
        {
            Some(message) => letters.push(DeadLetter::read(&message)),
            None => break,
        }
    }
    // Closing the channel gives every message taken back to the queue.
    channel.close(200, "looked".into()).await?;
    Ok(letters)
}

/// What a replay or purge did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Moved {
    pub taken: Vec<DeadLetter>,
    pub left: usize,
}

/// Publishes the selected dead letters back to the main queue, with their
/// original routing key and their attempt count reset, each removed from
/// `.dead` only once the broker confirmed it.
///
/// # Errors
/// When the broker fails; what was confirmed is moved, the rest stays.
pub async fn replay(
    connection: &Connection,
    topology: &Topology,
    selection: &Selection,
) -> Result<Moved, anyhow::Error> {
    let publishing = connection.create_channel().await?;
    publishing
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let publisher = Publisher::new(publishing, std::time::Duration::from_secs(30));
    walk(connection, topology, selection, |message| {
        let publisher = publisher.clone();
        let queue = topology.queue.clone();
        async move {
            let delivery = &message.delivery;
            let mut headers = delivery.properties.headers().clone().unwrap_or_default();
            let routing_key = text(&headers, ROUTING_KEY_HEADER)
                .unwrap_or_else(|| delivery.routing_key.to_string());
            let inner = headers.inner().clone();
            headers = FieldTable::default();
            for (key, value) in inner {
                let name = key.as_str();
                if !name.starts_with("x-relais-")
                    && !name.starts_with("x-death")
                    && !name.starts_with("x-first-death")
                    && name != "x-delivery-count"
                    && !name.starts_with("x-last-death")
                {
                    headers.insert(key, value);
                }
            }
            headers.insert(
                ROUTING_KEY_HEADER.into(),
                AMQPValue::LongString(routing_key.as_str().into()),
            );
            let properties = delivery.properties.clone().with_headers(headers);
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
) -> Result<Moved, anyhow::Error> {
    walk(connection, topology, selection, |_| async { Ok(()) }).await
}

/// Takes every message of `.dead` once; for the selected ones runs `act`
/// then acks (removes) them; the others go back when the channel closes.
/// It takes no more than the queue held when it started: a replayed alert
/// that fails again comes back to `.dead`, and must not be replayed twice.
async fn walk<F, Fut>(
    connection: &Connection,
    topology: &Topology,
    selection: &Selection,
    act: F,
) -> Result<Moved, anyhow::Error>
where
    F: Fn(BasicGetMessage) -> Fut,
    Fut: Future<Output = Result<(), anyhow::Error>>,
{
    let channel: Channel = connection.create_channel().await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let present = channel
        .queue_declare(
            topology.dead.as_str().into(),
            passive,
            FieldTable::default(),
        )
        .await?
        .message_count();
    let mut moved = Moved::default();
    for _ in 0..present {
        let Some(message) = channel
            .basic_get(topology.dead.as_str().into(), BasicGetOptions::default())
            .await?
        else {
            break;
        };
        let letter = DeadLetter::read(&message);
        if !selection.takes(&letter) {
            moved.left += 1;
            continue;
        }
        let acker = message.delivery.acker.clone();
        act(message).await?;
        acker.ack(BasicAckOptions::default()).await?;
        moved.taken.push(letter);
    }
    channel.close(200, "done".into()).await?;
    Ok(moved)
}

fn text(headers: &FieldTable, name: &str) -> Option<String> {
    match headers.inner().get(name)? {
        AMQPValue::LongString(value) => Some(value.to_string()),
        AMQPValue::ShortString(value) => Some(value.to_string()),
        _ => None,
    }
}

fn number(headers: &FieldTable, name: &str) -> Option<i64> {
    match headers.inner().get(name)? {
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        _ => None,
    }
}

/// When the broker dead-lettered a message itself (from `x-death`).
fn death_time(headers: &FieldTable) -> Option<String> {
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()? else {
        return None;
    };
    let AMQPValue::Timestamp(seconds) = first.inner().get("time")? else {
        return None;
    };
    let time = OffsetDateTime::from_unix_timestamp(i64::try_from(*seconds).ok()?).ok()?;
    time.format(&Rfc3339).ok()
}

//! The `x-relais-*` headers: the one vocabulary relais writes on the
//! messages it republishes (to a retry queue, to `.dead`, on replay) and
//! reads back from them.
//!
//! Every header relais writes is built here, from the message's own
//! headers; every header it reads is read here, whatever type the writer
//! gave it. It never reads the message's body.
//!
//! relais's headers are relais's: a message relais did not publish itself
//! (its `user_id`, which the broker checks, is not relais's login) loses
//! every `x-relais-*` header as it comes in ([`strip_foreign`], called
//! where a delivery enters: the consumer and the dead-letter tools), before
//! anything reads or copies it. So a publisher cannot make an alert skip
//! its référent or climb its escalation, shorten its retry ladder, relabel
//! its dead letter, or have relais carry a header of its vocabulary under
//! relais's own login.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::outcome::Reason;
use crate::registry::ReferentId;

/// Why the alert was dead-lettered (`invalid`, `unroutable`, …).
pub const REASON: &str = "x-relais-reason";
/// The human-readable cause, with the SMTP reply where there is one.
pub const ERROR: &str = "x-relais-error";
/// How many times relais tried to deliver the alert.
pub const ATTEMPTS: &str = "x-relais-attempts";
/// When relais gave up on it (RFC 3339, UTC).
pub const FAILED_AT: &str = "x-relais-failed-at";
/// The routing key the alert was published with, kept while it goes
/// through the retry queues (which route it back by queue name).
pub const ROUTING_KEY: &str = "x-relais-routing-key";

/// Who published the alert (the broker-checked `user_id` it came with),
/// kept when relais publishes it again under its own login.
pub const PUBLISHER: &str = "x-relais-publisher";

/// The référents relais already emailed about the alert, by id, separated
/// by commas: a retry or a replay never emails them again, however long
/// the dead letter waited (the store forgets after `store.retention`).
/// Trusted only on a message relais published (see [`served`]).
pub const SERVED: &str = "x-relais-served";

/// On the copy of an alert waiting in an escalation queue: the step of
/// escalation it is the timer of (1, 2 or 3). Trusted only on a message
/// relais published (see [`escalation`]).
pub const ESCALATION: &str = "x-relais-escalation";

/// What every header of relais's vocabulary starts with (compared without
/// regard to case: none of them may come from outside).
const PREFIX: &str = "x-relais-";

/// The broker's reason for a message it dead-lettered itself.
const FIRST_DEATH_REASON: &str = "x-first-death-reason";

/// Longest `x-relais-error` kept; an SMTP reply can be long.
const ERROR_MAX_BYTES: usize = 2000;

/// The headers of a message sent one step down the retry ladder: its
/// attempt count, the last error and its original routing key.
pub fn for_retry(
    original: &FieldTable,
    attempts: i32,
    error: &str,
    routing_key: &str,
    served: &[String],
) -> FieldTable {
    let mut headers = attempt(original, attempts, error, served);
    headers.insert(ROUTING_KEY.into(), long_string(routing_key));
    headers
}

/// The headers of a dead letter: the attempt count, the error, the reason
/// and the time relais gave up.
pub fn for_dead_letter(
    original: &FieldTable,
    attempts: i32,
    reason: Reason,
    error: &str,
    served: &[String],
) -> FieldTable {
    let mut headers = attempt(original, attempts, error, served);
    headers.insert(REASON.into(), long_string(reason.as_str()));
    let now = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    headers.insert(FAILED_AT.into(), long_string(&now));
    headers
}

/// The headers of a replayed dead letter: the publisher's own, with
/// relais's and the broker's dead-lettering records removed (the alert
/// starts the ladder again), its original routing key, and the référents
/// already `served` (read with [`served`]).
pub fn for_replay(original: &FieldTable, routing_key: &str, served: &[String]) -> FieldTable {
    let mut headers = FieldTable::default();
    for (key, value) in original.inner() {
        let name = key.as_str();
        let recorded = is_relais_s(name)
            || name.starts_with("x-death")
            || name.starts_with("x-first-death")
            || name.starts_with("x-last-death")
            || name == "x-delivery-count";
        if !recorded {
            headers.insert(key.clone(), value.clone());
        }
    }
    headers.insert(ROUTING_KEY.into(), long_string(routing_key));
    set_served(&mut headers, served);
    headers
}

/// The référents a message says relais already emailed: its
/// `x-relais-served`, on a message whose `user_id` is relais's own `login`
/// (one relais published); none on any other, since a publisher could
/// otherwise keep an alert from its référents. Ids that are not référent
/// ids are left out.
pub fn served(properties: &BasicProperties, login: Option<&str>) -> Vec<String> {
    let listed = properties
        .headers()
        .as_ref()
        .filter(|_| from_relais(properties, login))
        .and_then(|headers| text(headers, SERVED));
    listed
        .iter()
        .flat_map(|list| list.split(','))
        .filter(|id| ReferentId::parse(id).is_ok())
        .map(str::to_owned)
        .collect()
}

/// The step of escalation a message is the timer of: its
/// `x-relais-escalation`, on a message relais published (as for
/// [`served`]: a publisher could otherwise make an alert climb to the
/// deputies and fallback référents at once); a value relais could not have
/// written counts as none.
pub fn escalation(properties: &BasicProperties, login: Option<&str>) -> Option<u8> {
    let headers = properties
        .headers()
        .as_ref()
        .filter(|_| from_relais(properties, login))?;
    number(headers, ESCALATION)
        .and_then(|step| u8::try_from(step).ok())
        .filter(|step| (1..=3).contains(step))
}

/// `properties` as relais takes the message in: without a single
/// `x-relais-*` header unless relais may have published it itself, so that
/// what relais reads and copies of its vocabulary is what it wrote.
///
/// relais published a message when its `user_id` is relais's own `login`
/// (the broker refuses any other `user_id` than the publishing login; with
/// a client certificate, `amqp.user` names it). Without a login name (which
/// the settings' check refuses), relais could not tell its own messages
/// from an anonymous publisher's: only a message that carries a `user_id`
/// would be known to be foreign, and [`served`] and [`escalation`] trust
/// nothing then, whatever stays.
#[must_use]
pub fn strip_foreign(properties: BasicProperties, login: Option<&str>) -> BasicProperties {
    let foreign = match login {
        Some(_) => !from_relais(&properties, login),
        None => properties.user_id().is_some(),
    };
    let Some(headers) = properties.headers().as_ref().filter(|_| foreign) else {
        return properties;
    };
    if !headers
        .inner()
        .keys()
        .any(|name| is_relais_s(name.as_str()))
    {
        return properties;
    }
    let mut kept = headers.inner().clone();
    kept.retain(|name, _| !is_relais_s(name.as_str()));
    properties.with_headers(FieldTable::from(kept))
}

/// Whether the broker vouches that relais published the message: its
/// `user_id` is relais's own `login` (never, without a login name).
fn from_relais(properties: &BasicProperties, login: Option<&str>) -> bool {
    login.is_some() && properties.user_id().as_ref().map(ShortString::as_str) == login
}

/// Whether `name` is of relais's vocabulary (`x-relais-…`, in any case).
fn is_relais_s(name: &str) -> bool {
    name.as_bytes()
        .get(..PREFIX.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(PREFIX.as_bytes()))
}

/// The headers of the copy of an alert that waits for step `step` of its
/// escalation: the publisher's own, as for a replay (no history: the
/// store has it), with the step.
pub fn for_escalation(original: &FieldTable, routing_key: &str, step: u8) -> FieldTable {
    let mut headers = for_replay(original, routing_key, &[]);
    headers.insert(ESCALATION.into(), AMQPValue::LongInt(i32::from(step)));
    headers
}

/// Writes `served` as `x-relais-served`, or removes the header when empty.
fn set_served(headers: &mut FieldTable, served: &[String]) {
    if served.is_empty() {
        let mut kept = headers.inner().clone();
        kept.remove(SERVED);
        *headers = FieldTable::from(kept);
    } else {
        headers.insert(SERVED.into(), long_string(&served.join(",")));
    }
}

/// The properties relais publishes a message again with (to a retry queue,
/// to `.dead`, on replay): the original's, with `headers`, under relais's
/// own login.
///
/// RabbitMQ checks a message's `user_id` against the login that publishes
/// it, and refuses the publish (closing the channel) when they differ: the
/// publisher's `user_id` cannot be kept. relais puts its own login there,
/// so that the broker vouches that relais wrote the message, and keeps the
/// publisher's in `x-relais-publisher`. `login` is `None` when relais logs
/// in without a user name (a client certificate): the message then goes
/// without a `user_id`.
pub fn republish(
    original: &BasicProperties,
    mut headers: FieldTable,
    login: Option<&str>,
) -> BasicProperties {
    let mut copied = headers.inner().clone();
    copied.remove(PUBLISHER);
    headers = FieldTable::from(copied);
    if let Some(publisher) = publisher(original, login) {
        headers.insert(PUBLISHER.into(), long_string(&publisher));
    }
    let properties = original.clone().with_headers(headers);
    match login {
        Some(login) => properties.with_user_id(ShortString::from(login)),
        None => without_user_id(properties),
    }
}

/// Who published the message, as far as the broker vouches for it: its
/// `user_id`; or, on a message whose `user_id` is relais's own `login` (one
/// relais republished), the `x-relais-publisher` relais wrote then.
pub fn publisher(properties: &BasicProperties, login: Option<&str>) -> Option<String> {
    let user = properties.user_id().as_ref()?.as_str();
    if Some(user) == login {
        let headers = properties.headers().as_ref()?;
        text(headers, PUBLISHER)
    } else {
        Some(user.to_owned())
    }
}

/// `properties` without a `user_id` (lapin has no setter to clear one).
fn without_user_id(properties: BasicProperties) -> BasicProperties {
    if properties.user_id().is_none() {
        return properties;
    }
    let mut copy = BasicProperties::default();
    macro_rules! keep {
        ($($get:ident => $set:ident),*) => {
            $(if let Some(value) = properties.$get().clone() {
                copy = copy.$set(value);
            })*
        };
    }
    keep!(
        content_type => with_content_type,
        content_encoding => with_content_encoding,
        headers => with_headers,
        delivery_mode => with_delivery_mode,
        priority => with_priority,
        correlation_id => with_correlation_id,
        reply_to => with_reply_to,
        expiration => with_expiration,
        message_id => with_message_id,
        timestamp => with_timestamp,
        kind => with_type,
        app_id => with_app_id,
        cluster_id => with_cluster_id
    );
    copy
}

/// `original` with the attempt count, the error of this attempt and the
/// référents served so far.
fn attempt(original: &FieldTable, attempts: i32, error: &str, served: &[String]) -> FieldTable {
    let mut headers = original.clone();
    headers.insert(ATTEMPTS.into(), AMQPValue::LongInt(attempts));
    headers.insert(ERROR.into(), long_string(truncate(error, ERROR_MAX_BYTES)));
    set_served(&mut headers, served);
    headers
}

/// The `x-relais-attempts` a message carries: 0 when it has none, or one
/// relais could not have written (not a number, below 0, or past `most`,
/// the number of retry delays): a publisher cannot skip the ladder, nor make
/// relais count past it.
pub fn attempts(headers: &FieldTable, most: usize) -> i32 {
    let most = i64::try_from(most).unwrap_or(i64::MAX);
    number(headers, ATTEMPTS)
        .filter(|n| (0..=most).contains(n))
        .map_or(0, |n| i32::try_from(n).unwrap_or(0))
}

/// The routing key the alert was first published with: the header, or
/// `current` (the key it was delivered with) before any retry.
pub fn routing_key(headers: &FieldTable, current: &str) -> String {
    text(headers, ROUTING_KEY).unwrap_or_else(|| current.to_owned())
}

/// Why a dead letter is there: relais's reason, or the broker's when the
/// broker dead-lettered it itself: that of its last death (`x-death` lists
/// them the most recent first), not its first, which for an alert that
/// went through the retry ladder is its wait's end ("expired").
pub fn reason(headers: &FieldTable) -> Option<String> {
    text(headers, REASON)
        .or_else(|| last_death(headers).and_then(|death| text(death, "reason")))
        .or_else(|| text(headers, FIRST_DEATH_REASON))
}

/// When relais gave up on a dead letter, or when the broker dead-lettered
/// it (from `x-death`).
pub fn failed_at(headers: &FieldTable) -> Option<String> {
    text(headers, FAILED_AT).or_else(|| death_time(headers))
}

/// A text header, whether sent as a long or a short string.
pub fn text(headers: &FieldTable, name: &str) -> Option<String> {
    match headers.inner().get(name)? {
        AMQPValue::LongString(value) => Some(value.to_string()),
        AMQPValue::ShortString(value) => Some(value.to_string()),
        _ => None,
    }
}

/// A number header, whatever integer type it was sent as.
pub fn number(headers: &FieldTable, name: &str) -> Option<i64> {
    match headers.inner().get(name)? {
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        _ => None,
    }
}

pub fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// The broker's record of the last time it dead-lettered the message.
fn last_death(headers: &FieldTable) -> Option<&FieldTable> {
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    match deaths.as_slice().first()? {
        AMQPValue::FieldTable(last) => Some(last),
        _ => None,
    }
}

fn death_time(headers: &FieldTable) -> Option<String> {
    let AMQPValue::Timestamp(seconds) = last_death(headers)?.inner().get("time")? else {
        return None;
    };
    let time = OffsetDateTime::from_unix_timestamp(i64::try_from(*seconds).ok()?).ok()?;
    time.format(&Rfc3339).ok()
}

/// At most `max` bytes of `text`, cut on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use lapin::types::FieldArray;

    use super::*;

    fn publisher_headers() -> FieldTable {
        let mut headers = FieldTable::default();
        headers.insert("x-dispatch-trace".into(), long_string("abc"));
        headers
    }

    #[test]
    fn a_retry_counts_the_attempt_and_keeps_the_routing_key_and_the_publishers_headers() {
        let headers = for_retry(
            &publisher_headers(),
            2,
            "SMTP: 451 later",
            "orientation_sociale",
            &[],
        );
        assert_eq!(attempts(&headers, 5), 2);
        assert_eq!(text(&headers, ERROR).as_deref(), Some("SMTP: 451 later"));
        assert_eq!(routing_key(&headers, "relais.q"), "orientation_sociale");
        assert_eq!(text(&headers, "x-dispatch-trace").as_deref(), Some("abc"));
        assert_eq!(reason(&headers), None);
    }

    #[test]
    fn a_dead_letter_says_why_when_and_after_how_many_attempts() {
        let headers = for_dead_letter(&publisher_headers(), 6, Reason::Exhausted, "SMTP: 421", &[]);
        assert_eq!(reason(&headers).as_deref(), Some("exhausted"));
        assert_eq!(attempts(&headers, 6), 6);
        assert_eq!(text(&headers, ERROR).as_deref(), Some("SMTP: 421"));
        let failed_at = failed_at(&headers).unwrap();
        assert!(
            OffsetDateTime::parse(&failed_at, &Rfc3339).is_ok(),
            "{failed_at}"
        );
    }

    #[test]
    fn a_long_error_is_cut_on_a_character_boundary() {
        let error = "é".repeat(ERROR_MAX_BYTES);
        let headers = for_dead_letter(&FieldTable::default(), 1, Reason::Rejected, &error, &[]);
        let kept = text(&headers, ERROR).unwrap();
        assert_eq!(kept.len(), ERROR_MAX_BYTES);
        assert!(kept.chars().all(|c| c == 'é'));
    }

    #[test]
    fn a_replay_starts_the_ladder_again_with_the_publishers_headers_only() {
        let mut dead = for_dead_letter(
            &for_retry(&publisher_headers(), 1, "451", "demande_visite", &[]),
            2,
            Reason::Exhausted,
            "451",
            &[],
        );
        dead.insert(
            "x-death".into(),
            AMQPValue::FieldArray(FieldArray::default()),
        );
        dead.insert("x-first-death-queue".into(), long_string("relais.q"));
        dead.insert("x-delivery-count".into(), AMQPValue::LongInt(3));
        let replayed = for_replay(&dead, "demande_visite", &[]);
        let mut names: Vec<&str> = replayed.inner().keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["x-dispatch-trace", ROUTING_KEY]);
        assert_eq!(attempts(&replayed, 5), 0);
        assert_eq!(routing_key(&replayed, "relais.q"), "demande_visite");
    }

    #[test]
    fn a_dead_letter_of_the_broker_gives_its_reason_and_time() {
        let mut death = FieldTable::default();
        death.insert("time".into(), AMQPValue::Timestamp(1_795_000_000));
        let mut headers = FieldTable::default();
        headers.insert("x-first-death-reason".into(), long_string("delivery_limit"));
        headers.insert(
            "x-death".into(),
            AMQPValue::FieldArray(vec![AMQPValue::FieldTable(death)].into()),
        );
        assert_eq!(reason(&headers).as_deref(), Some("delivery_limit"));
        assert_eq!(failed_at(&headers).as_deref(), Some("2026-11-18T11:06:40Z"));
    }

    #[test]
    fn a_republished_message_is_relais_s_and_names_its_publisher() {
        let original = BasicProperties::default()
            .with_user_id("sos75-dispatch".into())
            .with_message_id("SOS75-1".into());
        let retried = republish(&original, publisher_headers(), Some("relais"));
        assert_eq!(
            retried.user_id().as_ref().map(|u| u.as_str()),
            Some("relais")
        );
        assert_eq!(
            retried.message_id().as_ref().map(|m| m.as_str()),
            Some("SOS75-1")
        );
        let headers = retried.headers().clone().unwrap();
        assert_eq!(text(&headers, PUBLISHER).as_deref(), Some("sos75-dispatch"));
        assert_eq!(text(&headers, "x-dispatch-trace").as_deref(), Some("abc"));
        // Republished again (a second retry, a replay): still the publisher.
        let again = republish(&retried, headers, Some("relais"));
        assert_eq!(
            publisher(&again, Some("relais")).as_deref(),
            Some("sos75-dispatch")
        );
    }

    #[test]
    fn a_publisher_header_is_trusted_only_on_a_message_relais_published() {
        let mut forged = FieldTable::default();
        forged.insert(PUBLISHER.into(), long_string("sos13-dispatch"));
        let from_outside = BasicProperties::default()
            .with_user_id("sos75-dispatch".into())
            .with_headers(forged.clone());
        assert_eq!(
            publisher(&from_outside, Some("relais")).as_deref(),
            Some("sos75-dispatch")
        );
        let retried = republish(&from_outside, forged.clone(), Some("relais"));
        let headers = retried.headers().clone().unwrap();
        assert_eq!(text(&headers, PUBLISHER).as_deref(), Some("sos75-dispatch"));
        let anonymous = BasicProperties::default().with_headers(forged.clone());
        let retried = republish(&anonymous, forged, Some("relais"));
        let headers = retried.headers().clone().unwrap();
        assert_eq!(text(&headers, PUBLISHER), None);
    }

    #[test]
    fn an_escalation_step_is_trusted_only_on_a_message_relais_published() {
        let mut original = FieldTable::default();
        original.insert(ATTEMPTS.into(), AMQPValue::LongInt(2));
        original.insert(SERVED.into(), long_string("camille"));
        original.insert("x-dispatch".into(), long_string("kept"));
        let step = for_escalation(&original, "orientation_sociale", 2);
        assert_eq!(number(&step, ESCALATION), Some(2));
        assert_eq!(number(&step, ATTEMPTS), None, "the ladder starts anew");
        assert_eq!(text(&step, SERVED), None, "the store has who was served");
        assert_eq!(text(&step, "x-dispatch").as_deref(), Some("kept"));

        let from_relais = BasicProperties::default()
            .with_user_id("relais".into())
            .with_headers(step.clone());
        let forged = BasicProperties::default()
            .with_user_id("sos75-dispatch".into())
            .with_headers(step.clone());
        assert_eq!(escalation(&from_relais, Some("relais")), Some(2));
        assert_eq!(escalation(&forged, Some("relais")), None);
        assert_eq!(escalation(&from_relais, None), None);
        for value in [
            AMQPValue::LongInt(0),
            AMQPValue::LongInt(4),
            long_string("1"),
        ] {
            let mut headers = step.clone();
            headers.insert(ESCALATION.into(), value.clone());
            let properties = from_relais.clone().with_headers(headers);
            assert_eq!(escalation(&properties, Some("relais")), None, "{value:?}");
        }
    }

    /// Every header of relais's vocabulary, forged, beside the publisher's
    /// own and the broker's.
    fn forged_headers() -> FieldTable {
        let mut headers = publisher_headers();
        for name in [
            ESCALATION,
            ATTEMPTS,
            ROUTING_KEY,
            SERVED,
            REASON,
            "x-relais-whatever",
            "X-Relais-Escalation",
        ] {
            headers.insert(name.into(), AMQPValue::LongInt(2));
        }
        headers.insert(
            "x-death".into(),
            AMQPValue::FieldArray(FieldArray::default()),
        );
        headers
    }

    fn names(properties: &BasicProperties) -> Vec<String> {
        let headers = properties.headers().clone().unwrap_or_default();
        let mut names: Vec<String> = headers.inner().keys().map(|k| k.to_string()).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn a_message_relais_did_not_publish_loses_every_header_of_relais_s_vocabulary() {
        let from_publisher = BasicProperties::default()
            .with_user_id("sos75-dispatch".into())
            .with_message_id("SOS75-1".into())
            .with_headers(forged_headers());
        let taken = strip_foreign(from_publisher, Some("relais"));
        assert_eq!(names(&taken), ["x-death", "x-dispatch-trace"]);
        assert_eq!(
            taken.user_id().as_ref().map(|u| u.as_str()),
            Some("sos75-dispatch")
        );
        assert_eq!(
            taken.message_id().as_ref().map(|m| m.as_str()),
            Some("SOS75-1")
        );

        // Nor does a message without any user_id keep them.
        let anonymous = BasicProperties::default().with_headers(forged_headers());
        let taken = strip_foreign(anonymous, Some("relais"));
        assert_eq!(names(&taken), ["x-death", "x-dispatch-trace"]);

        // A message without headers stays as it is.
        let bare = BasicProperties::default().with_user_id("sos75-dispatch".into());
        assert_eq!(strip_foreign(bare, Some("relais")).headers(), &None);
    }

    #[test]
    fn a_message_relais_published_keeps_what_relais_wrote() {
        let from_publisher = BasicProperties::default().with_user_id("sos75-dispatch".into());
        let served = ["camille".to_owned()];
        let retry = republish(
            &from_publisher,
            for_retry(
                &publisher_headers(),
                1,
                "451",
                "orientation_sociale",
                &served,
            ),
            Some("relais"),
        );
        let taken = strip_foreign(retry.clone(), Some("relais"));
        assert_eq!(taken.headers(), retry.headers());
        assert_eq!(super::served(&taken, Some("relais")), served);
        assert_eq!(
            publisher(&taken, Some("relais")).as_deref(),
            Some("sos75-dispatch")
        );
    }

    #[test]
    fn a_publishers_forged_headers_do_not_come_back_trusted_from_a_retry() {
        // A publisher's alert is taken in, fails, and is retried under
        // relais's login: what comes back is what relais wrote.
        let from_publisher = BasicProperties::default()
            .with_user_id("sos75-dispatch".into())
            .with_headers(forged_headers());
        let taken = strip_foreign(from_publisher, Some("relais"));
        let original = taken.headers().clone().unwrap_or_default();
        let count = attempts(&original, 2) + 1;
        let key = routing_key(&original, "orientation_sociale");
        let retry = republish(
            &taken,
            for_retry(&original, count, "451", &key, &[]),
            Some("relais"),
        );
        let back = strip_foreign(retry, Some("relais"));
        assert_eq!(escalation(&back, Some("relais")), None);
        assert!(super::served(&back, Some("relais")).is_empty());
        let headers = back.headers().clone().unwrap_or_default();
        assert_eq!(attempts(&headers, 2), 1);
        assert_eq!(routing_key(&headers, "relais.q"), "orientation_sociale");
        assert_eq!(
            names(&back),
            [
                "x-death",
                "x-dispatch-trace",
                ATTEMPTS,
                ERROR,
                PUBLISHER,
                ROUTING_KEY
            ]
        );
    }

    #[test]
    fn without_a_login_name_only_a_message_with_a_user_id_is_known_to_be_foreign() {
        // relais then publishes without a user_id: such a message may be
        // its own, and keeps its headers (but none is trusted as relais's).
        let from_publisher = BasicProperties::default()
            .with_user_id("sos75-dispatch".into())
            .with_headers(forged_headers());
        let taken = strip_foreign(from_publisher, None);
        assert_eq!(names(&taken), ["x-death", "x-dispatch-trace"]);

        let unknown = BasicProperties::default().with_headers(forged_headers());
        let taken = strip_foreign(unknown, None);
        assert_eq!(taken.headers().as_ref(), Some(&forged_headers()));
        assert_eq!(escalation(&taken, None), None);
        assert!(super::served(&taken, None).is_empty());
    }

    #[test]
    fn without_a_login_name_a_republished_message_has_no_user_id() {
        let original = BasicProperties::default()
            .with_user_id("sos75-dispatch".into())
            .with_delivery_mode(2)
            .with_content_type("application/json".into());
        let retried = republish(&original, FieldTable::default(), None);
        assert_eq!(retried.user_id(), &None);
        assert_eq!(retried.delivery_mode(), &Some(2));
        assert_eq!(
            retried.content_type().as_ref().map(|c| c.as_str()),
            Some("application/json")
        );
        let headers = retried.headers().clone().unwrap();
        assert_eq!(text(&headers, PUBLISHER).as_deref(), Some("sos75-dispatch"));
    }

    #[test]
    fn numbers_are_read_whatever_integer_type_they_were_sent_as() {
        let mut headers = FieldTable::default();
        for (value, expected) in [
            (AMQPValue::ShortInt(3), 3),
            (AMQPValue::LongInt(4), 4),
            (AMQPValue::LongLongInt(5), 5),
            (long_string("2"), 0),
        ] {
            headers.insert(ATTEMPTS.into(), value);
            assert_eq!(attempts(&headers, 5), expected);
        }
    }

    #[test]
    fn an_attempt_count_relais_could_not_have_written_counts_as_none() {
        let mut headers = FieldTable::default();
        for value in [
            AMQPValue::LongInt(i32::MAX),
            AMQPValue::LongLongInt(i64::MAX),
            AMQPValue::LongLongInt(i64::MIN),
            AMQPValue::LongInt(-1),
            AMQPValue::LongInt(6),
            AMQPValue::Boolean(true),
        ] {
            headers.insert(ATTEMPTS.into(), value.clone());
            assert_eq!(attempts(&headers, 5), 0, "{value:?}");
        }
    }

    #[test]
    fn the_referents_served_travel_with_relais_s_messages_only() {
        let served = ["caf-75".to_owned(), "ccas-paris-13".to_owned()];
        let dead = for_dead_letter(&publisher_headers(), 1, Reason::Rejected, "550", &served);
        assert_eq!(text(&dead, SERVED).as_deref(), Some("caf-75,ccas-paris-13"));
        let from_relais = BasicProperties::default()
            .with_user_id("relais".into())
            .with_headers(dead.clone());
        assert_eq!(super::served(&from_relais, Some("relais")), served);
        let replayed = for_replay(&dead, "orientation_sociale", &served);
        assert_eq!(
            text(&replayed, SERVED).as_deref(),
            Some("caf-75,ccas-paris-13")
        );

        // A publisher that writes the header itself is not believed, and an
        // empty list removes a header it wrote.
        let forged = BasicProperties::default()
            .with_user_id("sos75-dispatch".into())
            .with_headers(dead.clone());
        assert!(super::served(&forged, Some("relais")).is_empty());
        assert!(super::served(&from_relais, None).is_empty());
        let retried = for_retry(&dead, 1, "451", "orientation_sociale", &[]);
        assert_eq!(text(&retried, SERVED), None);
    }
}

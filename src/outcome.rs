//! How the handling of one alert ended: the [`Outcome`] that the relay
//! decides and the broker side carries out, and the [`Reason`] a dead
//! letter gives.
//!
//! This module only names the verdicts. It depends on nothing but the
//! alert's id, so that the decision (`relay`), the broker side
//! (`amqp::settle`), the operators' commands and the events can all speak
//! of them without depending on each other.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

use crate::alert::AlertId;

/// Why an alert was dead-lettered; the value of its `x-relais-reason`
/// header (or, for [`Reason::DeliveryLimit`], of the broker's own
/// `x-first-death-reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The message breaks the contract: fix the dispatch software.
    Invalid,
    /// Nobody in the registry for its kind and territory: fix the registry.
    Unroutable,
    /// Its publisher may not send it (see the registry's `[[publisher]]`):
    /// a misconfigured dispatch software, or someone else's.
    Forbidden,
    /// Its id was already used by an alert of other content: the publisher
    /// must give it a new id. Nobody was emailed.
    Conflict,
    /// The mail server refused it for good (5xx): fix the référent's address.
    Rejected,
    /// Every retry failed.
    Exhausted,
    /// Delivered `amqp.delivery_limit` times without being settled (relais
    /// crashed or lost its channel each time): the broker dead-lettered it
    /// itself, without relais's headers.
    DeliveryLimit,
}

impl Reason {
    /// Every reason, in the order operators meet them.
    pub const ALL: [Self; 7] = [
        Self::Invalid,
        Self::Unroutable,
        Self::Forbidden,
        Self::Conflict,
        Self::Rejected,
        Self::Exhausted,
        Self::DeliveryLimit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Unroutable => "unroutable",
            Self::Forbidden => "forbidden",
            Self::Conflict => "conflict",
            Self::Rejected => "rejected",
            Self::Exhausted => "exhausted",
            Self::DeliveryLimit => "delivery_limit",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reason that relais does not know (e.g. a typo in `--reason`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("is not a dead-letter reason; the reasons are {}", reasons())]
pub struct UnknownReason;

fn reasons() -> String {
    Reason::ALL.map(Reason::as_str).join(", ")
}

impl FromStr for Reason {
    type Err = UnknownReason;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.as_str() == text)
            .ok_or(UnknownReason)
    }
}

/// What happens to the alert next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every référent's mail server accepted its email: `emails` now,
    /// `duplicates` earlier (a redelivery or a duplicate publish).
    Delivered { emails: usize, duplicates: usize },
    /// A transient failure (SMTP 4xx, server unreachable): try again later.
    Retry { error: String },
    /// The alert cannot be delivered as it is; an operator must look at it.
    /// Référents that could be reached were emailed first.
    DeadLetter { reason: Reason, error: String },
}

/// How the handling of one message ended, and which alert it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The alert's id, when the message was a valid alert.
    pub alert_id: Option<AlertId>,
    pub verdict: Verdict,
    /// The référents that have received this alert (now or before), by id:
    /// a retry or a dead letter carries them, so that no later attempt or
    /// replay emails them again, whatever the store still remembers.
    pub served: Vec<String>,
    /// The next step of the alert's escalation, to schedule in the broker
    /// before the message is acked.
    pub next: Option<NextStep>,
}

/// A step of escalation to come: its number, when it falls, and how long
/// the broker's timer that carries it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextStep {
    /// 1: deputies, 2: fallback référents, 3: declared unacknowledged.
    pub step: u8,
    /// The timer's wait: the step's whole wait, or, for a step that waits
    /// for an office to open, a hop towards it (`registry::hop`).
    pub after: Duration,
    /// When the step falls.
    pub due: time::OffsetDateTime,
}

impl NextStep {
    /// Step `step`, falling at `due`, scheduled at `now` by a route that
    /// waits `wait`: its timer waits the whole `wait` when that is when it
    /// falls (no opening hours), else the first hop towards `due`.
    pub fn towards(
        step: u8,
        wait: Duration,
        now: time::OffsetDateTime,
        due: time::OffsetDateTime,
    ) -> Self {
        let remaining = Duration::try_from(due - now).unwrap_or_default();
        let after = if remaining <= wait && !wait.is_zero() {
            wait
        } else {
            crate::registry::hop(remaining)
        };
        Self { step, after, due }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_reads_back_from_its_header_value() {
        for reason in Reason::ALL {
            assert_eq!(reason.as_str().parse(), Ok(reason));
        }
    }

    #[test]
    fn an_unknown_reason_is_refused_with_the_list_of_reasons() {
        let error = "rejeted".parse::<Reason>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "is not a dead-letter reason; the reasons are invalid, unroutable, forbidden, \
             conflict, rejected, exhausted, delivery_limit"
        );
    }
}

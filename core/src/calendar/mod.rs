//! When an office is open, and so when a wait counted in open time ends:
//! an escalation step that must not fall in the night, on a Sunday or on a
//! holiday of the office's own département, in the office's own zone
//! (Paris, the Antilles, La Réunion, the Pacific…).
//!
//! A [`Calendar`] joins an office's [`Hours`] (wall-clock ranges per day
//! of the week), its [`Zone`], and the département whose public holidays
//! close it ([`holidays`]). It computes instants from instants and never
//! reads a clock: the caller gives "now".
//!
//! Wall-clock ranges meet the changes of summer time thus: a range opens
//! at the first instant the office's clock reaches its start, and closes
//! at the first instant the clock reaches its end. On the spring change a
//! time the clock skips (02:30 in Paris) is reached at the change itself
//! (03:00 summer time); on the autumn change a time the clock shows twice
//! is reached the first time. So 09:00-17:00 is eight hours on either
//! Sunday of change, 00:00-24:00 is 23 hours in March and 25 in October,
//! and a calendar open around the clock counts real elapsed time.

mod holidays;
mod hours;
mod zone;

#[cfg(test)]
mod tests;

use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

pub use holidays::{easter_sunday, holidays, is_holiday};
pub use hours::{Hours, HoursError};
pub use zone::{Zone, ZoneError};

use crate::territory::Departement;

/// An office's opening hours, in its zone, closed on the public holidays
/// of its département.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    pub hours: Hours,
    /// Usually [`Zone::of_departement`] of `departement`; a registry may
    /// name another (a national network that keeps Paris time).
    pub zone: Zone,
    /// Whose public holidays close the office.
    pub departement: Departement,
}

impl Calendar {
    /// The instant at which `wait` of open time has passed since `start`:
    /// only the time inside the ranges of open days counts; a start while
    /// closed counts from the next opening. A wait that ends exactly at a
    /// closing time ends then, not at the next opening; a zero wait is
    /// [`Calendar::next_open`].
    ///
    /// The work grows with the days the wait spans (relais's escalation
    /// steps wait at most 30 days). A wait that would end beyond the last
    /// instant the calendar knows (year 9999) gives that instant.
    pub fn after_open_time(&self, start: Timestamp, wait: Duration) -> Timestamp {
        let Ok(mut remaining) = SignedDuration::try_from(wait) else {
            return Timestamp::MAX;
        };
        if start.checked_add(remaining).is_err() {
            return Timestamp::MAX;
        }
        let tz = self.zone.time_zone();
        let mut date = tz.to_datetime(start).date();
        loop {
            if !is_holiday(date, self.departement) {
                for range in self.hours.on(date.weekday()) {
                    let (Some(opens), Some(closes)) = (
                        reached(tz, date, range.opens),
                        reached(tz, date, range.closes),
                    ) else {
                        return Timestamp::MAX;
                    };
                    let from = opens.max(start);
                    if closes <= from {
                        continue;
                    }
                    let open = closes.duration_since(from);
                    if remaining <= open {
                        return from.checked_add(remaining).unwrap_or(Timestamp::MAX);
                    }
                    remaining -= open;
                }
            }
            let Ok(next) = date.tomorrow() else {
                return Timestamp::MAX;
            };
            date = next;
        }
    }

    /// The first instant at or after `at` when the office is open: `at`
    /// itself inside a range; the next opening otherwise (a range's
    /// closing time is outside it).
    pub fn next_open(&self, at: Timestamp) -> Timestamp {
        self.after_open_time(at, Duration::ZERO)
    }
}

/// The first instant at which the clock of `tz` reaches `minute` (after
/// midnight, up to 24:00) of `date`; `None` beyond the calendar's range.
fn reached(tz: &TimeZone, date: Date, minute: u16) -> Option<Timestamp> {
    let wall = if minute >= 24 * 60 {
        date.tomorrow().ok()?.at(0, 0, 0, 0)
    } else {
        // Below 24 × 60: the hour and the minutes fit `i8`.
        date.at((minute / 60) as i8, (minute % 60) as i8, 0, 0)
    };
    let ambiguous = tz.to_ambiguous_timestamp(wall);
    let earlier = ambiguous.earlier().ok()?;
    match ambiguous.offset() {
        // A skipped time: the clock passes it at the change, which
        // follows `earlier` (the time read with the offset after it).
        AmbiguousOffset::Gap { .. } => tz
            .following(earlier)
            .next()
            .map(|change| change.timestamp()),
        AmbiguousOffset::Unambiguous { .. } | AmbiguousOffset::Fold { .. } => Some(earlier),
    }
}

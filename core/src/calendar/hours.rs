//! Opening hours as an office writes them in the registry: per day of the
//! week, ranges of wall-clock time,
//!
//! ```toml
//! hours = { "mon-fri" = "08:30-12:00,13:30-17:00", sat = "09:00-12:00" }
//! ```
//!
//! This module owns reading them: the days (`mon` … `sun`, or a range of
//! them such as `mon-fri`), the ranges (`HH:MM-HH:MM`, several separated
//! by commas, `24:00` for the end of the day) and their rules. The
//! registry's serde shape holds the table as strings and hands its
//! entries to [`Hours::parse`], which lists every problem at once, as the
//! registry's checks do. An error names the key and the rule and never
//! quotes a value. Hours that open on no day are refused: a calendar
//! always opens again.

use std::ops::RangeInclusive;

use jiff::civil::Weekday;
use thiserror::Error;

/// The minutes of a day: `24:00`, the end of a range that runs to
/// midnight.
const DAY: u16 = 24 * 60;

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// An office's opening hours: for each day of the week, Monday first, its
/// ranges of wall-clock time in order, none overlapping. At least one day
/// has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hours {
    days: [Vec<Range>; 7],
}

/// A range of wall-clock time, in minutes after midnight: open from
/// `opens` until, not including, `closes` (at most 24:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Range {
    pub(super) opens: u16,
    pub(super) closes: u16,
}

/// Why an entry of `hours` is refused. `key` is the entry's key as
/// written (e.g. `mon-fri`); the value is never repeated.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HoursError {
    #[error(
        "{key:?} is not a day or a range of days (mon, tue, wed, thu, fri, sat, sun; e.g. mon-fri)"
    )]
    UnknownDay { key: String },
    #[error("{key:?}: a range of days runs forward, from mon to sun (e.g. mon-fri, not fri-mon)")]
    DaysBackwards { key: String },
    #[error("{key:?}: {day} is given by another key too")]
    DayTwice { key: String, day: &'static str },
    #[error(
        "{key:?}: hours are ranges HH:MM-HH:MM separated by commas, from 00:00 to 24:00 \
         (e.g. 08:30-12:00,13:30-17:00)"
    )]
    Malformed { key: String },
    #[error(
        "{key:?}: a range ends before it starts, or when it starts (a night across \
         midnight is two ranges, on two days)"
    )]
    EndNotAfterStart { key: String },
    #[error("{key:?}: two ranges overlap")]
    Overlap { key: String },
    #[error("no opening hours on any day")]
    NeverOpen,
}

impl Hours {
    /// Reads the entries of an `hours` table: a day or range of days, and
    /// its ranges of time.
    ///
    /// # Errors
    /// Every entry's problems, in the order of the entries (each day may
    /// be given once, each range must end after it starts, a day's ranges
    /// may not overlap), or [`HoursError::NeverOpen`] alone when the
    /// entries are valid but open on no day.
    pub fn parse<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Hours, Vec<HoursError>> {
        let mut days: [Option<Vec<Range>>; 7] = Default::default();
        let mut errors = Vec::new();
        for (key, value) in entries {
            let (which, ranges) = match entry(key, value) {
                Ok(found) => found,
                Err(problem) => {
                    errors.push(problem.at(key));
                    continue;
                }
            };
            for day in which {
                if days[day].is_some() {
                    errors.push(HoursError::DayTwice {
                        key: key.to_owned(),
                        day: DAYS[day],
                    });
                } else {
                    days[day] = Some(ranges.clone());
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let days = days.map(Option::unwrap_or_default);
        if days.iter().all(Vec::is_empty) {
            return Err(vec![HoursError::NeverOpen]);
        }
        Ok(Hours { days })
    }

    /// The ranges of `weekday`, in order; empty when the office is closed
    /// that day.
    pub(super) fn on(&self, weekday: Weekday) -> &[Range] {
        let monday_first = weekday.to_monday_zero_offset();
        &self.days[usize::try_from(monday_first).unwrap_or_default()]
    }
}

/// What is wrong with an entry, before it is told which key.
enum Problem {
    UnknownDay,
    DaysBackwards,
    Malformed,
    EndNotAfterStart,
    Overlap,
}

impl Problem {
    fn at(self, key: &str) -> HoursError {
        let key = key.to_owned();
        match self {
            Problem::UnknownDay => HoursError::UnknownDay { key },
            Problem::DaysBackwards => HoursError::DaysBackwards { key },
            Problem::Malformed => HoursError::Malformed { key },
            Problem::EndNotAfterStart => HoursError::EndNotAfterStart { key },
            Problem::Overlap => HoursError::Overlap { key },
        }
    }
}

/// The days of an entry and their ranges.
fn entry(key: &str, value: &str) -> Result<(RangeInclusive<usize>, Vec<Range>), Problem> {
    Ok((days_of(key)?, ranges_of(value)?))
}

/// The days, Monday as 0, of a key: `wed` or `mon-fri`.
fn days_of(key: &str) -> Result<RangeInclusive<usize>, Problem> {
    let day = |name: &str| {
        DAYS.iter()
            .position(|day| *day == name)
            .ok_or(Problem::UnknownDay)
    };
    let (first, last) = match key.split_once('-') {
        Some((first, last)) => (day(first)?, day(last)?),
        None => (day(key)?, day(key)?),
    };
    if last < first {
        return Err(Problem::DaysBackwards);
    }
    Ok(first..=last)
}

/// The ranges of a value, `08:30-12:00,13:30-17:00`, in order of opening.
fn ranges_of(value: &str) -> Result<Vec<Range>, Problem> {
    let mut ranges = Vec::new();
    for range in value.split(',') {
        let (opens, closes) = range.split_once('-').ok_or(Problem::Malformed)?;
        let opens = minutes(opens.trim()).ok_or(Problem::Malformed)?;
        let closes = minutes(closes.trim()).ok_or(Problem::Malformed)?;
        if closes <= opens {
            return Err(Problem::EndNotAfterStart);
        }
        ranges.push(Range { opens, closes });
    }
    ranges.sort_by_key(|range| range.opens);
    if ranges.windows(2).any(|pair| pair[1].opens < pair[0].closes) {
        return Err(Problem::Overlap);
    }
    Ok(ranges)
}

/// Minutes after midnight of `HH:MM`, `00:00` to `24:00`.
fn minutes(text: &str) -> Option<u16> {
    let [h1, h2, b':', m1, m2] = *text.as_bytes() else {
        return None;
    };
    let digit = |byte: u8| byte.is_ascii_digit().then(|| u16::from(byte - b'0'));
    let (hours, minutes) = (digit(h1)? * 10 + digit(h2)?, digit(m1)? * 10 + digit(m2)?);
    let total = hours * 60 + minutes;
    (minutes < 60 && total <= DAY).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(entries: &[(&str, &str)]) -> Result<Hours, Vec<HoursError>> {
        Hours::parse(entries.iter().copied())
    }

    fn range(opens: &str, closes: &str) -> Range {
        Range {
            opens: minutes(opens).unwrap(),
            closes: minutes(closes).unwrap(),
        }
    }

    fn errors(entries: &[(&str, &str)]) -> Vec<String> {
        parse(entries)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_range_of_days_and_a_single_day_each_get_their_hours() {
        let hours = parse(&[("mon-fri", "09:00-17:00"), ("sat", "09:00-12:00")]).unwrap();

        for weekday in [Weekday::Monday, Weekday::Wednesday, Weekday::Friday] {
            assert_eq!(hours.on(weekday), [range("09:00", "17:00")]);
        }
        assert_eq!(hours.on(Weekday::Saturday), [range("09:00", "12:00")]);
        assert_eq!(hours.on(Weekday::Sunday), []);
    }

    #[test]
    fn a_day_may_have_several_ranges_in_any_order() {
        let hours = parse(&[("tue", "13:30-17:00, 08:30-12:00")]).unwrap();

        assert_eq!(
            hours.on(Weekday::Tuesday),
            [range("08:30", "12:00"), range("13:30", "17:00")]
        );
    }

    #[test]
    fn a_range_may_run_to_midnight_as_24_00() {
        let hours = parse(&[("sun", "00:00-24:00")]).unwrap();

        assert_eq!(
            hours.on(Weekday::Sunday),
            [Range {
                opens: 0,
                closes: DAY
            }]
        );
    }

    #[test]
    fn an_unknown_day_is_refused_naming_the_key() {
        assert_eq!(
            errors(&[("lun", "09:00-17:00"), ("mon-fry", "09:00-17:00")]),
            [
                "\"lun\" is not a day or a range of days (mon, tue, wed, thu, fri, sat, sun; e.g. mon-fri)",
                "\"mon-fry\" is not a day or a range of days (mon, tue, wed, thu, fri, sat, sun; e.g. mon-fri)",
            ]
        );
        assert_eq!(
            errors(&[("fri-mon", "09:00-17:00")]),
            [
                "\"fri-mon\": a range of days runs forward, from mon to sun (e.g. mon-fri, not fri-mon)"
            ]
        );
    }

    #[test]
    fn a_day_given_twice_is_refused() {
        assert_eq!(
            errors(&[("mon-fri", "09:00-17:00"), ("wed", "09:00-12:00")]),
            ["\"wed\": wed is given by another key too"]
        );
    }

    #[test]
    fn a_malformed_time_is_refused_without_quoting_it() {
        for value in [
            "9h-17h",
            "09:00",
            "09:00-17:60",
            "25:00-26:00",
            "09:00-24:30",
            "",
            "09:00-17:00,",
        ] {
            let found = errors(&[("mon", value)]);

            assert_eq!(
                found,
                [
                    "\"mon\": hours are ranges HH:MM-HH:MM separated by commas, from 00:00 to 24:00 \
                  (e.g. 08:30-12:00,13:30-17:00)"
                ],
                "{value}"
            );
        }
    }

    #[test]
    fn a_range_ending_before_it_starts_or_overlapping_another_is_refused() {
        assert_eq!(
            errors(&[
                ("mon", "17:00-09:00"),
                ("tue", "09:00-09:00"),
                ("wed", "08:00-12:00,11:00-14:00")
            ]),
            [
                "\"mon\": a range ends before it starts, or when it starts (a night across midnight is two ranges, on two days)",
                "\"tue\": a range ends before it starts, or when it starts (a night across midnight is two ranges, on two days)",
                "\"wed\": two ranges overlap",
            ]
        );
    }

    #[test]
    fn hours_that_never_open_are_refused() {
        assert_eq!(parse(&[]), Err(vec![HoursError::NeverOpen]));
        assert_eq!(
            HoursError::NeverOpen.to_string(),
            "no opening hours on any day"
        );
    }
}

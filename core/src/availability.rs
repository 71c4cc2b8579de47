//! When a référent is away: the registry's `absences` (dates, inclusive,
//! in Europe/Paris, as an office writes them on a leave calendar), and the
//! date in Paris of any instant.
//!
//! Paris's offset comes from the time-zone database bundled in relais
//! ([`crate::calendar::Zone`]); the overseas départements' offices write
//! their absences in Paris dates too (the registry says so).

use thiserror::Error;
use time::{Date, Duration, OffsetDateTime, UtcOffset};

use crate::calendar::Zone;

/// The longest absence, in days: a longer one is a référent to replace.
pub const LONGEST_DAYS: i64 = 366;

/// How an absence's dates are written: `YYYY-MM-DD`, in the registry, on
/// the absence page and in the store.
pub const DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// A period of absence: `from` and `to` included, Paris dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Absence {
    pub from: Date,
    pub to: Date,
}

/// Why two dates are not an absence: the registry's rules, which an
/// absence a référent declares on its page follows too. Each variant is a
/// rule, so that a page can say it in the référent's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AbsenceError {
    /// The field named is not a `YYYY-MM-DD` date.
    #[error("`{0}` must be a date, YYYY-MM-DD (e.g. 2026-12-24)")]
    NotADate(&'static str),
    #[error("`to` is before `from`")]
    Reversed,
    #[error("lasts more than {LONGEST_DAYS} days: name another référent instead")]
    TooLong,
}

impl Absence {
    /// Parses `from` and `to` (`YYYY-MM-DD`).
    ///
    /// # Errors
    /// [`AbsenceError`]: which rule is broken, naming the field.
    pub fn parse(from: &str, to: &str) -> Result<Self, AbsenceError> {
        let date = |field: &'static str, text: &str| {
            Date::parse(text, DATE).map_err(|_| AbsenceError::NotADate(field))
        };
        Self::new(date("from", from)?, date("to", to)?)
    }

    /// The absence from `from` to `to`, both included.
    ///
    /// # Errors
    /// [`AbsenceError::Reversed`] or [`AbsenceError::TooLong`].
    pub fn new(from: Date, to: Date) -> Result<Self, AbsenceError> {
        if to < from {
            return Err(AbsenceError::Reversed);
        }
        if (to - from).whole_days() >= LONGEST_DAYS {
            return Err(AbsenceError::TooLong);
        }
        Ok(Self { from, to })
    }

    pub fn covers(&self, date: Date) -> bool {
        (self.from..=self.to).contains(&date)
    }

    /// Every date of the absence.
    pub fn dates(&self) -> impl Iterator<Item = Date> + use<> {
        let from = self.from;
        let days = (self.to - self.from).whole_days();
        (0..=days).map(move |day| from + Duration::days(day))
    }
}

/// The date in Paris at the instant `at`.
pub fn paris_date(at: OffsetDateTime) -> Date {
    at.to_offset(paris_offset(at)).date()
}

/// Paris's offset from UTC at the instant `at`: UTC+2 in summer time,
/// UTC+1 otherwise (and should `at` lie beyond the years the time-zone
/// database covers, -9999 to 9999).
pub fn paris_offset(at: OffsetDateTime) -> UtcOffset {
    let winter = UtcOffset::from_hms(1, 0, 0).unwrap_or(UtcOffset::UTC);
    let Ok(instant) = jiff::Timestamp::new(at.unix_timestamp(), 0) else {
        return winter;
    };
    let offset = Zone::Paris.offset(instant);
    UtcOffset::from_whole_seconds(offset.seconds()).unwrap_or(winter)
}

#[cfg(test)]
mod tests {
    use time::Weekday;
    use time::macros::{date, datetime};

    use super::*;

    fn is_sunday(date: Date) -> bool {
        date.weekday() == Weekday::Sunday
    }

    #[test]
    fn a_paris_date_changes_at_paris_midnight_in_winter_and_in_summer() {
        assert_eq!(
            paris_date(datetime!(2026-12-23 22:59:59 UTC)),
            date!(2026 - 12 - 23)
        );
        assert_eq!(
            paris_date(datetime!(2026-12-23 23:00:00 UTC)),
            date!(2026 - 12 - 24)
        );
        assert_eq!(
            paris_date(datetime!(2026-07-13 21:59:59 UTC)),
            date!(2026 - 07 - 13)
        );
        assert_eq!(
            paris_date(datetime!(2026-07-13 22:00:00 UTC)),
            date!(2026 - 07 - 14)
        );
        assert_eq!(
            paris_date(datetime!(2026-12-25 10:00:00 +01:00)),
            date!(2026 - 12 - 25)
        );
    }

    #[test]
    fn summer_time_starts_and_ends_on_the_last_sundays_of_march_and_october() {
        assert!(is_sunday(date!(2026 - 03 - 29)) && is_sunday(date!(2026 - 10 - 25)));
        let offset = |at| paris_offset(at).whole_hours();
        assert_eq!(offset(datetime!(2026-03-29 00:59:59 UTC)), 1);
        assert_eq!(offset(datetime!(2026-03-29 01:00:00 UTC)), 2);
        assert_eq!(offset(datetime!(2026-10-25 00:59:59 UTC)), 2);
        assert_eq!(offset(datetime!(2026-10-25 01:00:00 UTC)), 1);
    }

    #[test]
    fn an_absence_includes_both_of_its_dates() {
        let absence = Absence::parse("2026-12-24", "2027-01-02").unwrap();
        assert!(!absence.covers(date!(2026 - 12 - 23)));
        assert!(absence.covers(date!(2026 - 12 - 24)));
        assert!(absence.covers(date!(2027 - 01 - 02)));
        assert!(!absence.covers(date!(2027 - 01 - 03)));
        assert_eq!(absence.dates().count(), 10);
        assert_eq!(
            Absence::parse("2027-01-02", "2026-12-24"),
            Err(AbsenceError::Reversed)
        );
        assert_eq!(
            Absence::parse("24/12/2026", "2026-12-24")
                .unwrap_err()
                .to_string(),
            "`from` must be a date, YYYY-MM-DD (e.g. 2026-12-24)"
        );
        assert_eq!(
            Absence::parse("2026-01-01", "2026-12-31").map(|a| a.dates().count()),
            Ok(365)
        );
        assert_eq!(
            Absence::parse("2024-01-01", "2024-12-31").map(|a| a.dates().count()),
            Ok(366)
        );
        assert_eq!(
            Absence::parse("2026-01-01", "2027-01-02")
                .unwrap_err()
                .to_string(),
            "lasts more than 366 days: name another référent instead"
        );
    }
}

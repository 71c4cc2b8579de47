//! The public holidays (jours fériés) on which an office is closed, by
//! département: the eleven of the whole country, those of Alsace-Moselle,
//! and the day each overseas territory commemorates the abolition of
//! slavery. This module owns the rules and Easter's date; which offices
//! close on a holiday is the calendar's, and it never reads a clock.
//!
//! - Code du travail, article L3133-1: 1 January, Easter Monday, 1 May,
//!   8 May, Ascension Thursday (Easter + 39 days), Whit Monday (Easter +
//!   50), 14 July, 15 August, 1 November, 11 November, 25 December.
//!   Whit Monday is also the journée de solidarité, which an employer may
//!   have worked: relais counts the offices closed, as most are.
//! - Article L3134-13 (Moselle `57`, Bas-Rhin `67`, Haut-Rhin `68`): Good
//!   Friday and 26 December too. The law names Good Friday for the
//!   communes with a Protestant church or a shared one; offices treat it
//!   as a holiday throughout the three départements, and so does relais.
//! - Loi n° 83-550 du 30 juin 1983 (article L3422-2 of the code) and the
//!   dates of décret n° 83-1003 du 23 novembre 1983, as modified by décret
//!   n° 2012-553 du 23 avril 2012 (which added Saint-Barthélemy and
//!   Saint-Martin): Mayotte 27 April, Martinique 22 May, Guadeloupe 27 May,
//!   Guyane 10 June, Saint-Barthélemy 9 October, La Réunion 20 December.
//!   Saint-Martin: 28 May since 2018 (the territorial council's
//!   deliberation of 5 November 2015; the decree meant to write it in, in
//!   2016, carried a clerical error, and the interministerial circular of
//!   2018 set the 28th, which the préfecture has applied every year since);
//!   27 May before.
//!
//! The collectivités of the Pacific (`986`, `987`, `988`) and
//! Saint-Pierre-et-Miquelon (`975`) have labour codes of their own with
//! further days (e.g. 24 September in Nouvelle-Calédonie, 29 June in
//! Polynésie française): relais knows only the national eleven there.

use std::collections::BTreeSet;

use jiff::Span;
use jiff::civil::Date;

use crate::territory::Departement;

/// Every public holiday of `year` in `departement`, in date order.
pub fn holidays(year: i16, departement: Departement) -> BTreeSet<Date> {
    of_year(year, departement).collect()
}

/// Whether `date` is a public holiday in `departement`.
pub fn is_holiday(date: Date, departement: Departement) -> bool {
    of_year(date.year(), departement).any(|holiday| holiday == date)
}

/// Easter Sunday of `year` in the Gregorian calendar, by the anonymous
/// Gregorian computus (Meeus/Jones/Butcher).
pub fn easter_sunday(year: i16) -> Date {
    let y = i32::from(year);
    let a = y.rem_euclid(19);
    let (b, c) = (y.div_euclid(100), y.rem_euclid(100));
    let (d, e) = (b / 4, b % 4);
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let (i, k) = (c / 4, c % 4);
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    // March or April, 22 to 31 or 1 to 25: within range of `i8`.
    Date::new(year, month as i8, day as i8).unwrap_or_default()
}

/// The holidays of `year` in `departement`, unordered. A date beyond the
/// calendar's range (year 9999's) is left out rather than a panic.
fn of_year(year: i16, departement: Departement) -> impl Iterator<Item = Date> {
    let easter = easter_sunday(year);
    let after_easter = move |days: i64| easter.checked_add(Span::new().days(days)).ok();
    let fixed = move |month: i8, day: i8| Date::new(year, month, day).ok();
    let national = [
        fixed(1, 1),
        after_easter(1),
        fixed(5, 1),
        fixed(5, 8),
        after_easter(39),
        after_easter(50),
        fixed(7, 14),
        fixed(8, 15),
        fixed(11, 1),
        fixed(11, 11),
        fixed(12, 25),
    ];
    let local: [Option<Date>; 2] = match departement.as_str() {
        "57" | "67" | "68" => [after_easter(-2), fixed(12, 26)],
        "971" => [fixed(5, 27), None],
        "972" => [fixed(5, 22), None],
        "973" => [fixed(6, 10), None],
        "974" => [fixed(12, 20), None],
        "976" => [fixed(4, 27), None],
        "977" => [fixed(10, 9), None],
        "978" if year >= 2018 => [fixed(5, 28), None],
        "978" => [fixed(5, 27), None],
        _ => [None, None],
    };
    national.into_iter().chain(local).flatten()
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;

    use super::*;

    fn departement(code: &str) -> Departement {
        Departement::parse(code).unwrap()
    }

    #[test]
    fn easter_falls_on_the_published_sundays() {
        // The dates the Church and the almanacs publish.
        let published = [
            date(2008, 3, 23),
            date(2011, 4, 24),
            date(2019, 4, 21),
            date(2024, 3, 31),
            date(2025, 4, 20),
            date(2026, 4, 5),
            date(2027, 3, 28),
            date(2028, 4, 16),
            date(2029, 4, 1),
            date(2030, 4, 21),
            date(2038, 4, 25),
            date(2285, 3, 22),
        ];
        for sunday in published {
            assert_eq!(easter_sunday(sunday.year()), sunday);
        }
    }

    #[test]
    fn the_eleven_national_holidays_of_2026_in_paris() {
        let expected: BTreeSet<Date> = [
            date(2026, 1, 1),
            date(2026, 4, 6),
            date(2026, 5, 1),
            date(2026, 5, 8),
            date(2026, 5, 14),
            date(2026, 5, 25),
            date(2026, 7, 14),
            date(2026, 8, 15),
            date(2026, 11, 1),
            date(2026, 11, 11),
            date(2026, 12, 25),
        ]
        .into();
        assert_eq!(holidays(2026, departement("75")), expected);
        assert_eq!(holidays(2026, departement("2A")), expected);
    }

    #[test]
    fn easter_monday_ascension_and_whit_monday_follow_easter() {
        let paris = departement("75");
        let holidays_2027 = holidays(2027, paris);
        for expected in [date(2027, 3, 29), date(2027, 5, 6), date(2027, 5, 17)] {
            assert!(holidays_2027.contains(&expected), "{expected}");
        }
        let holidays_2038 = holidays(2038, paris);
        for expected in [date(2038, 4, 26), date(2038, 6, 3), date(2038, 6, 14)] {
            assert!(holidays_2038.contains(&expected), "{expected}");
        }
    }

    #[test]
    fn alsace_moselle_adds_good_friday_and_saint_stephens_day() {
        for code in ["57", "67", "68"] {
            let extra: Vec<Date> = holidays(2026, departement(code))
                .difference(&holidays(2026, departement("75")))
                .copied()
                .collect();
            assert_eq!(extra, [date(2026, 4, 3), date(2026, 12, 26)], "{code}");
        }
        assert!(is_holiday(date(2024, 3, 29), departement("67")));
        assert!(!is_holiday(date(2024, 3, 29), departement("54")));
    }

    #[test]
    fn each_overseas_territory_closes_on_its_own_abolition_day_only() {
        let days = [
            ("976", date(2026, 4, 27)),
            ("972", date(2026, 5, 22)),
            ("971", date(2026, 5, 27)),
            ("978", date(2026, 5, 28)),
            ("973", date(2026, 6, 10)),
            ("977", date(2026, 10, 9)),
            ("974", date(2026, 12, 20)),
        ];
        for (code, day) in days {
            let extra: Vec<Date> = holidays(2026, departement(code))
                .difference(&holidays(2026, departement("75")))
                .copied()
                .collect();
            assert_eq!(extra, [day], "{code}");
            for (other, _) in days.iter().filter(|(other, _)| *other != code) {
                assert!(!is_holiday(day, departement(other)), "{code} in {other}");
            }
        }
    }

    #[test]
    fn saint_martin_commemorated_on_27_may_before_2018() {
        assert!(is_holiday(date(2017, 5, 27), departement("978")));
        assert!(!is_holiday(date(2017, 5, 28), departement("978")));
        assert!(is_holiday(date(2018, 5, 28), departement("978")));
        assert!(!is_holiday(date(2018, 5, 27), departement("978")));
    }

    #[test]
    fn the_collectivites_with_labour_codes_of_their_own_know_only_the_national_holidays() {
        for code in ["975", "986", "987", "988"] {
            assert_eq!(
                holidays(2026, departement(code)),
                holidays(2026, departement("75"))
            );
        }
    }
}

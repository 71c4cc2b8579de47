//! The calendar's instants: waits across nights, week-ends and holidays,
//! in Paris and overseas, across the changes of summer time. Each instant
//! is written with the office's own offset, as its clock shows it.

use std::time::Duration;

use jiff::Timestamp;

use super::{Calendar, Hours, Zone};
use crate::territory::Departement;

/// An office of `departement`, in its zone, open `hours`.
fn office(departement: &str, hours: &[(&str, &str)]) -> Calendar {
    let departement = Departement::parse(departement).unwrap();
    Calendar {
        hours: Hours::parse(hours.iter().copied()).unwrap(),
        zone: Zone::of_departement(departement),
        departement,
    }
}

fn at(instant: &str) -> Timestamp {
    instant.parse().unwrap()
}

fn hours(count: u64) -> Duration {
    Duration::from_secs(count * 3600)
}

const WEEKDAYS: &[(&str, &str)] = &[("mon-fri", "09:00-17:00")];
const EVERY_DAY: &[(&str, &str)] = &[("mon-sun", "09:00-17:00")];
const AROUND_THE_CLOCK: &[(&str, &str)] = &[("mon-sun", "00:00-24:00")];

#[test]
fn a_friday_evening_alert_waiting_two_hours_falls_on_monday_at_eleven() {
    let paris = office("75", WEEKDAYS);

    let due = paris.after_open_time(at("2026-01-09T18:00:00+01:00"), hours(2));

    assert_eq!(due, at("2026-01-12T11:00:00+01:00"));
    assert_eq!(paris.zone.local(due).to_string(), "2026-01-12T11:00:00");
}

#[test]
fn a_start_inside_an_open_range_counts_from_the_start() {
    let paris = office("75", WEEKDAYS);
    let tuesday_ten = at("2026-01-13T10:00:00+01:00");

    assert_eq!(
        paris.after_open_time(tuesday_ten, hours(3)),
        at("2026-01-13T13:00:00+01:00")
    );
    assert_eq!(paris.next_open(tuesday_ten), tuesday_ten);
}

#[test]
fn a_start_at_closing_time_counts_from_the_next_opening() {
    let paris = office("75", WEEKDAYS);
    let tuesday_five = at("2026-01-13T17:00:00+01:00");

    assert_eq!(
        paris.after_open_time(tuesday_five, hours(1)),
        at("2026-01-14T10:00:00+01:00")
    );
    assert_eq!(
        paris.next_open(tuesday_five),
        at("2026-01-14T09:00:00+01:00")
    );
}

#[test]
fn a_wait_that_ends_at_closing_time_ends_then() {
    let paris = office("75", WEEKDAYS);

    let due = paris.after_open_time(at("2026-01-13T15:00:00+01:00"), hours(2));

    assert_eq!(due, at("2026-01-13T17:00:00+01:00"));
}

#[test]
fn the_lunch_break_does_not_count() {
    let paris = office("75", &[("mon-fri", "08:30-12:00,13:30-17:00")]);

    let due = paris.after_open_time(at("2026-01-13T11:00:00+01:00"), hours(2));

    assert_eq!(due, at("2026-01-13T14:30:00+01:00"));
}

#[test]
fn a_two_day_wait_spans_more_than_a_week_of_office_hours() {
    let paris = office("75", WEEKDAYS);

    // 5 hours on Monday, 32 to Friday, 8 the next Monday, 3 on Tuesday.
    let due = paris.after_open_time(at("2026-01-12T12:00:00+01:00"), hours(48));

    assert_eq!(due, at("2026-01-20T12:00:00+01:00"));
}

#[test]
fn a_wait_skips_ascension_thursday() {
    let paris = office("75", WEEKDAYS);

    // One hour on Wednesday 13 May 2026, none on Thursday 14 (Ascension).
    let due = paris.after_open_time(at("2026-05-13T16:00:00+02:00"), hours(3));

    assert_eq!(due, at("2026-05-15T11:00:00+02:00"));
}

#[test]
fn saint_stephens_day_closes_alsace_moselle_but_not_paris() {
    let christmas_eve = at("2025-12-24T16:00:00+01:00");

    let in_paris = office("75", WEEKDAYS).after_open_time(christmas_eve, hours(2));
    let in_strasbourg = office("67", WEEKDAYS).after_open_time(christmas_eve, hours(2));

    assert_eq!(in_paris, at("2025-12-26T10:00:00+01:00"));
    assert_eq!(in_strasbourg, at("2025-12-29T10:00:00+01:00"));
}

#[test]
fn an_abolition_day_closes_only_its_own_territory() {
    let hours_972_971 = &[("mon-fri", "08:00-17:00")];
    let thursday = at("2026-05-21T16:00:00-04:00");

    let in_guadeloupe = office("971", hours_972_971).after_open_time(thursday, hours(2));
    let in_martinique = office("972", hours_972_971).after_open_time(thursday, hours(2));

    // Martinique closes on Friday 22 May, then on Whit Monday 25 May.
    assert_eq!(in_guadeloupe, at("2026-05-22T09:00:00-04:00"));
    assert_eq!(in_martinique, at("2026-05-26T09:00:00-04:00"));
}

#[test]
fn la_reunion_keeps_utc_plus_four_all_year() {
    let reunion = office("974", &[("mon-fri", "08:00-16:00")]);

    let in_july = reunion.after_open_time(at("2026-07-10T15:00:00+04:00"), hours(2));
    let in_january = reunion.after_open_time(at("2026-01-09T15:00:00+04:00"), hours(2));

    assert_eq!(in_july, at("2026-07-13T05:00:00Z"));
    assert_eq!(in_january, at("2026-01-12T05:00:00Z"));
}

#[test]
fn guadeloupe_opens_at_eight_at_utc_minus_four() {
    let guadeloupe = office("971", &[("mon-fri", "08:00-16:00")]);

    let due =
        guadeloupe.after_open_time(at("2026-03-30T07:00:00-04:00"), Duration::from_secs(1800));

    assert_eq!(due, at("2026-03-30T12:30:00Z"));
}

#[test]
fn nine_to_five_on_the_sunday_summer_time_starts_is_eight_hours() {
    let paris = office("75", EVERY_DAY);

    let from_saturday = paris.after_open_time(at("2026-03-28T16:00:00+01:00"), hours(2));
    let whole_sunday = paris.after_open_time(at("2026-03-29T09:00:00+02:00"), hours(8));

    assert_eq!(from_saturday, at("2026-03-29T10:00:00+02:00"));
    assert_eq!(whole_sunday, at("2026-03-29T17:00:00+02:00"));
}

#[test]
fn nine_to_five_on_the_sunday_summer_time_ends_is_eight_hours() {
    let paris = office("75", EVERY_DAY);

    let from_saturday = paris.after_open_time(at("2026-10-24T16:00:00+02:00"), hours(2));
    let whole_sunday = paris.after_open_time(at("2026-10-25T09:00:00+01:00"), hours(8));

    assert_eq!(from_saturday, at("2026-10-25T10:00:00+01:00"));
    assert_eq!(whole_sunday, at("2026-10-25T17:00:00+01:00"));
}

#[test]
fn an_office_open_around_the_clock_counts_real_time_across_both_changes() {
    let paris = office("75", AROUND_THE_CLOCK);

    let spring = paris.after_open_time(at("2026-03-28T00:00:00+01:00"), hours(48));
    let autumn = paris.after_open_time(at("2026-10-24T00:00:00+02:00"), hours(48));

    assert_eq!(spring, at("2026-03-30T01:00:00+02:00"));
    assert_eq!(autumn, at("2026-10-25T23:00:00+01:00"));
}

#[test]
fn a_range_opening_in_the_skipped_hour_opens_at_the_change() {
    let paris = office("75", &[("sun", "02:30-04:00")]);
    let saturday = at("2026-03-28T12:00:00+01:00");

    assert_eq!(paris.next_open(saturday), at("2026-03-29T03:00:00+02:00"));
    assert_eq!(
        paris.after_open_time(saturday, Duration::from_secs(1800)),
        at("2026-03-29T03:30:00+02:00")
    );
}

#[test]
fn a_range_opening_in_the_repeated_hour_opens_at_its_first_reading() {
    let paris = office("75", &[("sun", "02:30-04:00")]);
    let saturday = at("2026-10-24T12:00:00+02:00");

    // Open from 02:30 summer time to 04:00 winter time: two and a half hours.
    assert_eq!(paris.next_open(saturday), at("2026-10-25T02:30:00+02:00"));
    assert_eq!(
        paris.after_open_time(saturday, hours(2)),
        at("2026-10-25T03:30:00+01:00")
    );
    assert_eq!(
        paris.after_open_time(saturday, Duration::from_secs(9000)),
        at("2026-10-25T04:00:00+01:00")
    );
}

#[test]
fn a_wait_beyond_the_calendars_range_gives_its_last_instant() {
    let paris = office("75", WEEKDAYS);
    let start = at("2026-01-13T10:00:00+01:00");

    assert_eq!(paris.after_open_time(start, Duration::MAX), Timestamp::MAX);
    assert_eq!(
        paris.after_open_time(start, hours(24 * 366 * 8000)),
        Timestamp::MAX
    );
}

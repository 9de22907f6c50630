//! Europe/Oslo local time for mails, and its Norwegian and English wording.
//!
//! Norway follows the EU rule: CET (UTC+1), and CEST (UTC+2) from 01:00 UTC
//! on the last Sunday of March to 01:00 UTC on the last Sunday of October.
//! Computing that here avoids a time-zone database for one zone.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, Timelike, Utc, Weekday};

/// The last Sunday of `month` (March or October: both have 31 days).
fn last_sunday_of_31_day_month(year: i32, month: u32) -> NaiveDate {
    let last = NaiveDate::from_ymd_opt(year, month, 31).expect("month has 31 days");
    let back = last.weekday().num_days_from_sunday();
    last - chrono::Days::new(u64::from(back))
}

/// The UTC offset of Europe/Oslo at `at`, in hours: 1 (CET) or 2 (CEST).
pub(crate) fn oslo_offset_hours(at: DateTime<Utc>) -> i32 {
    let year = at.year();
    let switch = |month| {
        last_sunday_of_31_day_month(year, month)
            .and_hms_opt(1, 0, 0)
            .expect("01:00 exists")
            .and_utc()
    };
    if switch(3) <= at && at < switch(10) {
        2
    } else {
        1
    }
}

/// `at` as a Europe/Oslo wall-clock time.
pub(crate) fn to_oslo(at: DateTime<Utc>) -> NaiveDateTime {
    let offset = FixedOffset::east_opt(oslo_offset_hours(at) * 3600).expect("valid offset");
    at.with_timezone(&offset).naive_local()
}

const MONTHS_NB: [&str; 12] = [
    "januar",
    "februar",
    "mars",
    "april",
    "mai",
    "juni",
    "juli",
    "august",
    "september",
    "oktober",
    "november",
    "desember",
];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn weekday_nb(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "mandag",
        Weekday::Tue => "tirsdag",
        Weekday::Wed => "onsdag",
        Weekday::Thu => "torsdag",
        Weekday::Fri => "fredag",
        Weekday::Sat => "lørdag",
        Weekday::Sun => "søndag",
    }
}

fn weekday_en(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

/// "torsdag 3. juli 2025 kl. 14:05 (norsk tid)". Never a run of six digits:
/// the longest run is the four-digit year.
pub(crate) fn format_nb(at: DateTime<Utc>) -> String {
    let local = to_oslo(at);
    format!(
        "{} {}. {} {} kl. {:02}:{:02} (norsk tid)",
        weekday_nb(local.weekday()),
        local.day(),
        MONTHS_NB[local.month0() as usize],
        local.year(),
        local.hour(),
        local.minute()
    )
}

/// "Thursday 3 July 2025 at 14:05 (Norwegian time)".
pub(crate) fn format_en(at: DateTime<Utc>) -> String {
    let local = to_oslo(at);
    format!(
        "{} {} {} {} at {:02}:{:02} (Norwegian time)",
        weekday_en(local.weekday()),
        local.day(),
        MONTHS_EN[local.month0() as usize],
        local.year(),
        local.hour(),
        local.minute()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn summer_time_is_utc_plus_two() {
        assert_eq!(oslo_offset_hours(utc("2025-07-03T12:00:00Z")), 2);
        assert_eq!(
            format_nb(utc("2025-07-03T12:05:00Z")),
            "torsdag 3. juli 2025 kl. 14:05 (norsk tid)"
        );
        assert_eq!(
            format_en(utc("2025-07-03T12:05:00Z")),
            "Thursday 3 July 2025 at 14:05 (Norwegian time)"
        );
    }

    #[test]
    fn winter_time_is_utc_plus_one() {
        assert_eq!(oslo_offset_hours(utc("2025-01-15T12:00:00Z")), 1);
        assert_eq!(
            format_nb(utc("2025-01-15T08:30:00Z")),
            "onsdag 15. januar 2025 kl. 09:30 (norsk tid)"
        );
        assert_eq!(
            format_en(utc("2025-12-31T23:30:00Z")),
            "Thursday 1 January 2026 at 00:30 (Norwegian time)"
        );
    }

    #[test]
    fn the_switches_happen_at_one_o_clock_utc_on_the_last_sundays() {
        // 2025: 30 March and 26 October.
        assert_eq!(oslo_offset_hours(utc("2025-03-30T00:59:59Z")), 1);
        assert_eq!(oslo_offset_hours(utc("2025-03-30T01:00:00Z")), 2);
        assert_eq!(oslo_offset_hours(utc("2025-10-26T00:59:59Z")), 2);
        assert_eq!(oslo_offset_hours(utc("2025-10-26T01:00:00Z")), 1);
        // 2024: 31 March (the 31st itself is a Sunday) and 27 October.
        assert_eq!(oslo_offset_hours(utc("2024-03-31T00:59:59Z")), 1);
        assert_eq!(oslo_offset_hours(utc("2024-03-31T01:00:00Z")), 2);
        assert_eq!(oslo_offset_hours(utc("2024-10-27T01:00:00Z")), 1);
        assert_eq!(
            to_oslo(utc("2025-03-30T01:00:00Z")).to_string(),
            "2025-03-30 03:00:00"
        );
        assert_eq!(
            to_oslo(utc("2025-10-26T01:00:00Z")).to_string(),
            "2025-10-26 02:00:00"
        );
    }
}

//! Calendar rules: the two-year inactivity period and the legacy cutoff;
//! and [`DayCache`], instants from stored numbers without a calendar
//! conversion per instant.

use chrono::{DateTime, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// Applications submitted before this instant (1 April 2022 00:00 in
/// Europe/Oslo, which was on summer time, UTC+2) are legacy.
pub fn legacy_cutoff() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2022, 3, 31, 22, 0, 0)
        .single()
        .expect("valid constant instant")
}

/// The instant two calendar years after `t`. A 29 February maps to
/// 28 February (chrono clamps to the last day of the month), so a person last
/// seen on 29 February 2024 is due after 28 February 2026.
pub fn two_years_after(t: DateTime<Utc>) -> DateTime<Utc> {
    t.checked_add_months(Months::new(24))
        .expect("date in range")
}

/// True when an account last active at `last_active` has been inactive for
/// over two years as of `as_of`.
pub fn inactive_over_two_years(last_active: DateTime<Utc>, as_of: DateTime<Utc>) -> bool {
    as_of > two_years_after(last_active)
}

/// When the 30-day warning before the purge is due.
pub fn purge_warning_at(last_active: DateTime<Utc>) -> DateTime<Utc> {
    two_years_after(last_active) - chrono::Duration::days(30)
}

/// Days from day 1 of the common era to the Unix epoch.
const UNIX_EPOCH_DAY_FROM_CE: i64 = 719_163;

/// 1970-01-01, the date of day 0.
const UNIX_EPOCH_DATE: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(date) => date,
    None => panic!("1970-01-01 is a date"),
};

/// The calendar date of the day last converted: events read from a log
/// come in time order, mostly many to a day, and finding a date from a day
/// number is the dearest part of building an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayCache {
    day: i64,
    date: NaiveDate,
}

impl Default for DayCache {
    fn default() -> Self {
        DayCache::EPOCH
    }
}

impl DayCache {
    /// A cache holding day 0 (usable in `const` and thread-local items).
    pub const EPOCH: DayCache = DayCache {
        day: 0,
        date: UNIX_EPOCH_DATE,
    };

    /// `DateTime::from_timestamp(seconds, nanos)`, with the date of a day
    /// met before taken from the cache.
    #[inline]
    pub fn instant(&mut self, seconds: i64, nanos: u32) -> Option<DateTime<Utc>> {
        let day = seconds.div_euclid(86_400);
        let second_of_day = seconds.rem_euclid(86_400) as u32;
        if day != self.day {
            let from_ce = i32::try_from(day.checked_add(UNIX_EPOCH_DAY_FROM_CE)?).ok()?;
            self.date = NaiveDate::from_num_days_from_ce_opt(from_ce)?;
            self.day = day;
        }
        let time = NaiveTime::from_num_seconds_from_midnight_opt(second_of_day, nanos)?;
        Some(NaiveDateTime::new(self.date, time).and_utc())
    }

    /// `DateTime::from_timestamp_micros(micros)`, as [`DayCache::instant`].
    #[inline]
    pub fn instant_micros(&mut self, micros: i64) -> Option<DateTime<Utc>> {
        let seconds = micros.div_euclid(1_000_000);
        let nanos = micros.rem_euclid(1_000_000) as u32 * 1_000;
        self.instant(seconds, nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn leap_day_maps_to_the_28th_two_years_on() {
        assert_eq!(
            two_years_after(at("2024-02-29T12:00:00Z")),
            at("2026-02-28T12:00:00Z")
        );
    }

    #[test]
    fn exactly_two_years_is_not_over_two_years() {
        let last = at("2023-05-10T08:00:00Z");
        assert!(!inactive_over_two_years(last, at("2025-05-10T08:00:00Z")));
        assert!(inactive_over_two_years(last, at("2025-05-10T08:00:01Z")));
    }

    #[test]
    fn leap_day_last_login_is_due_after_the_28th() {
        let last = at("2024-02-29T00:00:00Z");
        assert!(!inactive_over_two_years(last, at("2026-02-28T00:00:00Z")));
        assert!(inactive_over_two_years(last, at("2026-02-28T00:00:01Z")));
    }

    #[test]
    fn the_cutoff_is_midnight_in_oslo() {
        assert_eq!(legacy_cutoff().to_rfc3339(), "2022-03-31T22:00:00+00:00");
    }

    proptest! {
        #[test]
        fn instants_through_one_day_cache_are_chronos(
            instants in proptest::collection::vec(
                (
                    prop_oneof![
                        any::<i64>(),
                        -8_300_000_000_000i64..8_300_000_000_000,
                        1_700_000_000i64..1_700_300_000,
                    ],
                    prop_oneof![any::<u32>(), 0u32..2_100_000_000],
                ),
                1..40,
            ),
        ) {
            let mut days = DayCache::default();
            for (seconds, nanos) in instants {
                prop_assert_eq!(
                    days.instant(seconds, nanos),
                    DateTime::from_timestamp(seconds, nanos)
                );
                let micros = seconds.wrapping_mul(7).wrapping_add(i64::from(nanos));
                prop_assert_eq!(
                    days.instant_micros(micros),
                    DateTime::from_timestamp_micros(micros)
                );
            }
        }
    }
}

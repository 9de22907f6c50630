//! [`DayCache`]: instants from stored numbers without a calendar conversion
//! per instant.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

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

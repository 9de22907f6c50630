//! Calendar rules: the two-year inactivity period and the legacy cutoff.

use chrono::{DateTime, Months, TimeZone, Utc};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}

//! Cron schedules with an IANA time zone (`croner` for the patterns, `chrono-tz` for the zones).
//!
//! Ticks are found on the zone's wall clock and then placed on the time line, so daylight-saving
//! changes behave as a person expects: a wall-clock time that does not exist that day (spring
//! forward) is skipped, and one that exists twice (fall back) fires once, at its first instant.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// The most wall-clock matches looked at to find one tick (gaps and repeats are few; this only
/// bounds a pattern that matches no real instant).
const MAX_STEPS: usize = 1000;

/// A parsed schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    pattern: String,
    zone: Tz,
    cron: Cron,
}

/// Why a schedule was refused, and which field it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleError {
    /// `cron` or `timezone`.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl Schedule {
    /// Parses a pattern of 5 fields (minute first) or 6 (seconds first), and a zone name
    /// (UTC when `None`).
    ///
    /// # Errors
    /// The field and the reason: a pattern with another number of fields or a value out of
    /// range (`61 * * * *`), or a zone the IANA database does not know.
    pub fn parse(pattern: &str, zone: Option<&str>) -> Result<Self, ScheduleError> {
        let cron_err = |reason: String| ScheduleError { field: "cron", reason };
        let fields = pattern.split_whitespace().count();
        if !pattern.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
            return Err(cron_err(format!(
                "`{pattern}` has {fields} fields; write 5 (minute hour day month weekday) or 6 (seconds first)"
            )));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(pattern)
            .map_err(|e| cron_err(format!("`{pattern}` is not a valid cron pattern: {e}")))?;
        let zone = match zone {
            None => Tz::UTC,
            Some(name) => name.parse::<Tz>().map_err(|_| ScheduleError {
                field: "timezone",
                reason: format!("`{name}` is not an IANA time zone (such as UTC or Europe/Berlin)"),
            })?,
        };
        Ok(Self { pattern: pattern.to_string(), zone, cron })
    }

    /// The pattern as written.
    #[must_use]
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The zone's IANA name.
    #[must_use]
    pub fn zone(&self) -> &str {
        self.zone.name()
    }

    /// The first tick strictly after `after` (micros since the epoch).
    #[must_use]
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let after_utc = from_micros(after)?;
        let mut cursor = after_utc.with_timezone(&self.zone).naive_local();
        for _ in 0..MAX_STEPS {
            cursor = self.cron.find_next_occurrence(&cursor, false).ok()?;
            if let Some(at) = self.place(cursor).filter(|t| *t > after) {
                return Some(at);
            }
        }
        None
    }

    /// The latest tick at or before `at`, if it is after `after` (the latest missed tick).
    #[must_use]
    pub fn latest_between(&self, after: i64, at: i64) -> Option<i64> {
        let mut cursor = from_micros(at)?.with_timezone(&self.zone).naive_local();
        let mut inclusive = true;
        for _ in 0..MAX_STEPS {
            cursor = self.cron.find_previous_occurrence(&cursor, inclusive).ok()?;
            inclusive = false;
            match self.place(cursor) {
                Some(t) if t <= after => return None,
                Some(t) if t <= at => return Some(t),
                _ => {}
            }
        }
        None
    }

    /// A wall-clock time on the time line: `None` in a gap, the first instant when repeated.
    fn place(&self, local: NaiveDateTime) -> Option<i64> {
        let instant = match self.zone.from_local_datetime(&local) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t,
            LocalResult::None => return None,
        };
        Some(instant.with_timezone(&Utc).timestamp_micros())
    }
}

fn from_micros(micros: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text).expect("time").timestamp_micros()
    }

    fn show(micros: i64) -> String {
        from_micros(micros).expect("time").to_rfc3339()
    }

    #[test]
    fn five_and_six_fields_parse() {
        let s = Schedule::parse("0 9 * * MON-FRI", Some("Europe/Berlin")).expect("valid");
        assert_eq!((s.pattern(), s.zone()), ("0 9 * * MON-FRI", "Europe/Berlin"));
        // Friday 2026-11-27 10:00 Berlin -> Monday 2026-11-30 09:00 Berlin (08:00 UTC).
        assert_eq!(show(s.next_after(at("2026-11-27T09:00:00Z")).expect("tick")), "2026-11-30T08:00:00+00:00");
        let every_second = Schedule::parse("* * * * * *", None).expect("valid");
        assert_eq!(every_second.next_after(at("2026-01-01T00:00:00Z")), Some(at("2026-01-01T00:00:01Z")));
        let every_5s = Schedule::parse("*/5 * * * * *", None).expect("valid");
        assert_eq!(every_5s.next_after(at("2026-01-01T00:00:03.5Z")), Some(at("2026-01-01T00:00:05Z")));
    }

    #[test]
    fn bad_patterns_and_zones_are_refused() {
        assert_eq!(Schedule::parse("61 * * * *", None).expect_err("range").field, "cron");
        assert_eq!(Schedule::parse("* * * *", None).expect_err("4 fields").field, "cron");
        assert_eq!(Schedule::parse("0 0 0 1 1 * 2030", None).expect_err("7 fields").field, "cron");
        assert_eq!(Schedule::parse("every day", None).expect_err("words").field, "cron");
        let zone = Schedule::parse("0 9 * * *", Some("Mars/Olympus")).expect_err("zone");
        assert_eq!(zone.field, "timezone");
        assert!(zone.reason.contains("Mars/Olympus"));
    }

    #[test]
    fn a_tick_in_the_spring_gap_is_skipped() {
        // Berlin 2026-03-29: 02:00 jumps to 03:00, so 02:30 does not exist that day.
        let s = Schedule::parse("30 2 * * *", Some("Europe/Berlin")).expect("valid");
        let next = s.next_after(at("2026-03-28T12:00:00Z")).expect("tick");
        assert_eq!(show(next), "2026-03-30T00:30:00+00:00", "the 29th has no 02:30");
    }

    #[test]
    fn a_tick_repeated_in_autumn_fires_once() {
        // Berlin 2026-10-25: 03:00 falls back to 02:00, so 02:30 happens twice.
        let s = Schedule::parse("30 2 * * *", Some("Europe/Berlin")).expect("valid");
        let first = s.next_after(at("2026-10-24T12:00:00Z")).expect("tick");
        assert_eq!(show(first), "2026-10-25T00:30:00+00:00", "the first 02:30 (CEST)");
        let second = s.next_after(first).expect("tick");
        assert_eq!(show(second), "2026-10-26T01:30:00+00:00", "not again at 02:30 CET, but the next day");
    }

    #[test]
    fn the_latest_missed_tick_is_found() {
        let s = Schedule::parse("0 * * * *", None).expect("valid");
        let t = s.latest_between(at("2026-01-01T00:30:00Z"), at("2026-01-01T05:10:00Z"));
        assert_eq!(t, Some(at("2026-01-01T05:00:00Z")));
        assert_eq!(s.latest_between(at("2026-01-01T05:00:00Z"), at("2026-01-01T05:10:00Z")), None, "already fired");
        assert_eq!(s.latest_between(at("2026-01-01T04:00:00Z"), at("2026-01-01T05:00:00Z")), Some(at("2026-01-01T05:00:00Z")));
        let gap = Schedule::parse("30 2 * * *", Some("Europe/Berlin")).expect("valid");
        let missed = gap.latest_between(at("2026-03-27T00:00:00Z"), at("2026-03-29T12:00:00Z"));
        assert_eq!(missed.map(show).as_deref(), Some("2026-03-28T01:30:00+00:00"), "skips the gap of the 29th");
    }
}

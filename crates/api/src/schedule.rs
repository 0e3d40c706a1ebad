//! A drill's schedule: a cron pattern (five fields, minute first, or six with seconds first)
//! read in an IANA time zone, so "0 2 * * SUN" in Europe/Paris stays at 02:00 local time across
//! daylight saving changes. croner finds the occurrences; jiff knows the zones (its database is
//! built in).

use croner::Cron;
use croner::parser::{CronParser, Seconds};
use jiff::Zoned;
use jiff::tz::TimeZone;
use standby_model::Timestamp;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    zone: TimeZone,
}

impl Schedule {
    /// Parses a pattern and a zone; the error says which is wrong and why.
    pub fn parse(pattern: &str, time_zone: &str) -> Result<Schedule, String> {
        if pattern.len() > 200 {
            return Err("schedule is longer than 200 characters.".into());
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(pattern)
            .map_err(|error| format!("schedule '{pattern}' is not a cron pattern: {error}."))?;
        let zone = jiff::tz::db().get(time_zone).map_err(|_| {
            format!(
                "timeZone '{time_zone}' is not an IANA time zone (such as Europe/Paris or UTC)."
            )
        })?;
        let schedule = Schedule { cron, zone };
        // A pattern that never fires (30 February) is refused now rather than never running.
        if schedule.next_after(Timestamp::now()).is_none() {
            return Err(format!("schedule '{pattern}' never fires."));
        }
        Ok(schedule)
    }

    /// The first occurrence strictly after `after`; `None` if there is none within croner's
    /// search range.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let instant = jiff::Timestamp::from_microsecond(after.ticks() / 10).ok()?;
        let zoned = Zoned::new(instant, self.zone.clone());
        let next = self.cron.find_next_occurrence(&zoned, false).ok()?;
        Some(Timestamp::from_ticks(
            next.timestamp().as_microsecond() * 10,
        ))
    }

    /// In words ("At 02:00 on Sunday").
    pub fn describe(&self) -> String {
        self.cron.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    #[test]
    fn occurrences_follow_the_zone_across_daylight_saving() {
        let nightly = Schedule::parse("0 2 * * *", "Europe/Paris").unwrap();
        // Winter: 02:00 in Paris is 01:00 UTC; summer: 00:00 UTC.
        assert_eq!(
            nightly.next_after(at("2026-01-10T12:00:00Z")),
            Some(at("2026-01-11T01:00:00Z"))
        );
        assert_eq!(
            nightly.next_after(at("2026-07-10T12:00:00Z")),
            Some(at("2026-07-11T00:00:00Z"))
        );
        let every_five_seconds = Schedule::parse("*/5 * * * * *", "UTC").unwrap();
        assert_eq!(
            every_five_seconds.next_after(at("2026-01-10T12:00:03Z")),
            Some(at("2026-01-10T12:00:05Z"))
        );
        assert_eq!(
            every_five_seconds.next_after(at("2026-01-10T12:00:05Z")),
            Some(at("2026-01-10T12:00:10Z")),
            "strictly after"
        );
    }

    #[test]
    fn bad_patterns_and_zones_say_what_is_wrong() {
        assert!(
            Schedule::parse("every night", "UTC")
                .unwrap_err()
                .contains("cron")
        );
        assert!(
            Schedule::parse("0 2 * * *", "Mars/Olympus")
                .unwrap_err()
                .contains("timeZone")
        );
        assert!(Schedule::parse("0 0 30 2 *", "UTC").is_err());
        assert!(
            !Schedule::parse("0 2 * * SUN", "UTC")
                .unwrap()
                .describe()
                .is_empty()
        );
    }
}

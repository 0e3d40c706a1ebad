//! Instants as VSPC writes them: RFC 3339 in UTC with seven fractional digits
//! (`2026-11-27T10:15:30.1234567+00:00`), stored as 100-nanosecond ticks since the Unix epoch so
//! that what is stored is exactly what is served, and comparisons are integer comparisons.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

const TICKS_PER_SECOND: i64 = 10_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    ticks: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("'{0}' is not a date (YYYY-MM-DD) or an RFC 3339 date-time")]
    Unparsable(String),
    #[error("'{0}' is outside the supported range of instants (years 0001 to 9999, UTC)")]
    OutOfRange(String),
}

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.9999999Z: the instants RFC 3339 (four-digit
/// years) and .NET's `DateTime` can both write.
const MIN_TICKS: i64 = -621_355_968_000_000_000;
const MAX_TICKS: i64 = 2_534_023_007_999_999_999;

impl Timestamp {
    pub const fn from_ticks(ticks: i64) -> Self {
        Self { ticks }
    }

    /// 100-nanosecond units since 1970-01-01T00:00:00Z.
    pub const fn ticks(self) -> i64 {
        self.ticks
    }

    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    pub fn from_unix_seconds(seconds: i64) -> Self {
        Self {
            ticks: seconds.saturating_mul(TICKS_PER_SECOND),
        }
    }

    pub fn unix_seconds(self) -> i64 {
        self.ticks.div_euclid(TICKS_PER_SECOND)
    }

    pub fn from_datetime(at: OffsetDateTime) -> Self {
        // Sub-tick precision is dropped (floor), as .NET does.
        let ticks = at.unix_timestamp_nanos().div_euclid(100);
        Self {
            ticks: i64::try_from(ticks).unwrap_or(if ticks < 0 { i64::MIN } else { i64::MAX }),
        }
    }

    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.ticks) * 100)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    pub fn plus_millis(self, millis: i64) -> Self {
        Self {
            ticks: self
                .ticks
                .saturating_add(millis.saturating_mul(TICKS_PER_SECOND / 1000)),
        }
    }

    pub fn plus_seconds(self, seconds: i64) -> Self {
        Self {
            ticks: self
                .ticks
                .saturating_add(seconds.saturating_mul(TICKS_PER_SECOND)),
        }
    }

    /// Parses what clients send: RFC 3339 with any offset, a date-time without offset (UTC), or
    /// a bare date `YYYY-MM-DD` (00:00:00 UTC of that day).
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        let text = text.trim();
        let at = if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
            at
        } else if let Ok(at) = PrimitiveDateTime::parse(
            text,
            format_description!(
                version = 2,
                "[year]-[month]-[day][first [T][t][ ]][hour]:[minute][optional [:[second][optional [.[subsecond]]]]]"
            ),
        ) {
            at.assume_utc()
        } else if let Ok(day) = Date::parse(text, format_description!("[year]-[month]-[day]")) {
            day.midnight().assume_utc()
        } else {
            return Err(TimestampError::Unparsable(text.to_owned()));
        };
        // The instant itself, whatever the offset: converting to UTC first would panic for an
        // instant whose UTC year is past the date library's range (9999-12-31T23:30-01:00).
        let nanos = at.unix_timestamp_nanos();
        i64::try_from(nanos.div_euclid(100))
            .ok()
            .filter(|ticks| (MIN_TICKS..=MAX_TICKS).contains(ticks))
            .map(Self::from_ticks)
            .ok_or_else(|| TimestampError::OutOfRange(text.to_owned()))
    }

    /// The vendor's wire form: UTC, seven fractional digits, `+00:00`.
    pub fn to_wire(self) -> String {
        let at = self.to_datetime();
        let fraction = self.ticks.rem_euclid(TICKS_PER_SECOND);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}+00:00",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            fraction
        )
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_wire())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_wire())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wire_form_has_seven_digits_in_utc() {
        let at = Timestamp::parse("2023-01-16T16:30:09.4952609+01:00").unwrap();
        assert_eq!(at.to_wire(), "2023-01-16T15:30:09.4952609+00:00");
        assert_eq!(
            Timestamp::from_unix_seconds(0).to_wire(),
            "1970-01-01T00:00:00.0000000+00:00"
        );
    }

    #[test]
    fn accepts_date_only_and_offsetless_values_as_utc() {
        assert_eq!(
            Timestamp::parse("2026-11-27").unwrap().to_wire(),
            "2026-11-27T00:00:00.0000000+00:00"
        );
        assert_eq!(
            Timestamp::parse("2026-11-27T10:15:30").unwrap().to_wire(),
            "2026-11-27T10:15:30.0000000+00:00"
        );
        assert_eq!(
            Timestamp::parse("2026-11-27T10:15:30Z").unwrap(),
            Timestamp::parse("2026-11-27T10:15:30").unwrap()
        );
        assert_eq!(
            Timestamp::parse("2026-11-27T10:15:30.123456789Z")
                .unwrap()
                .to_wire(),
            "2026-11-27T10:15:30.1234567+00:00"
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-11-27T25:00:00Z",
            "27/11/2026",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn refuses_years_outside_0001_to_9999_in_utc() {
        for bad in [
            "-0001-01-01T00:00:00",
            "-2026-11-26",
            "0000-12-31T23:59:59Z",
            "0001-01-01T00:30:00+01:00",
            "9999-12-31T23:30:00-01:00",
            "+10000-01-01",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad} should be refused");
        }
        for (edge, wire) in [
            ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.0000000+00:00"),
            (
                "9999-12-31T23:59:59.9999999Z",
                "9999-12-31T23:59:59.9999999+00:00",
            ),
        ] {
            assert_eq!(Timestamp::parse(edge).unwrap().to_wire(), wire);
        }
    }

    proptest! {
        #[test]
        fn wire_form_round_trips(ticks in -621_355_968_000_000_000_i64..2_534_023_007_990_000_000_i64) {
            let at = Timestamp::from_ticks(ticks);
            prop_assert_eq!(Timestamp::parse(&at.to_wire()).unwrap(), at);
        }
    }
}

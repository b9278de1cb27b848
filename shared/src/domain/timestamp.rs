//! Points in time as whole seconds since the Unix epoch, shown as RFC 3339.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A UTC instant with one-second resolution. Serialises as RFC 3339
/// (`2026-11-22T10:00:00Z`); stored in DynamoDB as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time from the system clock.
    pub fn now() -> Self {
        Self(OffsetDateTime::now_utc().unix_timestamp())
    }

    /// From seconds since the epoch.
    pub const fn from_unix(seconds: i64) -> Self {
        Self(seconds)
    }

    /// Seconds since the epoch.
    pub const fn unix(self) -> i64 {
        self.0
    }

    /// This instant moved by `seconds` (saturating).
    pub const fn plus(self, seconds: i64) -> Self {
        Self(self.0.saturating_add(seconds))
    }

    /// Seconds from `earlier` to `self`; negative if `earlier` is later.
    pub const fn seconds_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// As a `time` value, for calendar fields (hour, weekday).
    pub fn to_offset_date_time(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.0).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// RFC 3339 in UTC with a `Z` suffix.
    pub fn to_rfc3339(self) -> String {
        self.to_offset_date_time()
            .format(&Rfc3339)
            .unwrap_or_else(|_| self.0.to_string())
    }

    /// Parses RFC 3339 (any offset), truncating to whole seconds. Refuses an
    /// instant whose UTC form is not RFC 3339 (before year 0 or after 9999,
    /// such as `9999-12-31T23:59:59-23:59`).
    pub fn parse_rfc3339(input: &str) -> Option<Self> {
        let seconds = OffsetDateTime::parse(input, &Rfc3339)
            .ok()?
            .unix_timestamp();
        // INVARIANT: every parsed timestamp prints back as the same instant;
        // otherwise a decoded audit event would re-encode with another time.
        let utc = OffsetDateTime::from_unix_timestamp(seconds).ok()?;
        (0..=9999).contains(&utc.year()).then_some(Self(seconds))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not an RFC 3339 time")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_rfc3339_in_utc() {
        let t = Timestamp::from_unix(1_795_000_000);
        assert_eq!(t.to_rfc3339(), "2026-11-18T11:06:40Z");
        assert_eq!(Timestamp::parse_rfc3339("2026-11-18T11:06:40Z"), Some(t));
        assert_eq!(
            Timestamp::parse_rfc3339("2026-11-18T12:06:40+01:00"),
            Some(t)
        );
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn refuses_instants_that_would_not_print_back() {
        // Valid RFC 3339, but in UTC the year is 10000 or -1.
        assert_eq!(Timestamp::parse_rfc3339("9999-12-31T23:59:59-23:59"), None);
        assert_eq!(Timestamp::parse_rfc3339("0000-01-01T00:00:00+00:01"), None);
        for edge in ["9999-12-31T23:59:59Z", "0000-01-01T00:00:00Z"] {
            let t = Timestamp::parse_rfc3339(edge).unwrap();
            assert_eq!(t.to_rfc3339(), edge);
        }
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Timestamp::from_unix(i64::MAX).plus(10).unix(), i64::MAX);
        assert_eq!(
            Timestamp::from_unix(100).seconds_since(Timestamp::from_unix(40)),
            60
        );
    }
}

//! How long a grant lasts: parsed from `90m`, `2h`, `1h30m` or plain seconds.

use super::{ValidationError, quote};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Shortest grant: one minute.
pub const MIN_DURATION_SECONDS: u32 = 60;
/// Default ceiling for any grant: 12 hours. Deployments may lower or raise it.
pub const DEFAULT_MAX_DURATION_SECONDS: u32 = 12 * 3600;

/// A grant duration in seconds, between [`MIN_DURATION_SECONDS`] and a ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GrantDuration(u32);

impl GrantDuration {
    /// Checks `seconds` against the minimum and `ceiling`.
    pub fn new(seconds: u64, ceiling: u32) -> Result<Self, ValidationError> {
        if seconds < u64::from(MIN_DURATION_SECONDS) {
            return Err(ValidationError::new(
                "duration_seconds",
                format!(
                    "duration `{seconds}` is shorter than the minimum of {MIN_DURATION_SECONDS} seconds"
                ),
            ));
        }
        if seconds > u64::from(ceiling) {
            return Err(ValidationError::new(
                "duration_seconds",
                format!("duration `{seconds}` exceeds the limit of {ceiling} seconds"),
            ));
        }
        Ok(Self(u32::try_from(seconds).unwrap_or(u32::MAX)))
    }

    /// Parses a human duration (`45m`, `2h`, `1h30m`, `90s`, `3600`) and checks it.
    pub fn parse(input: &str, ceiling: u32) -> Result<Self, ValidationError> {
        Self::new(parse_seconds(input)?, ceiling)
    }

    /// The length in seconds.
    pub const fn seconds(self) -> u32 {
        self.0
    }
}

impl fmt::Display for GrantDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_seconds(u64::from(self.0)))
    }
}

/// A number of seconds the way durations are written: `2h`, `1h30m`, `90s`.
pub fn format_seconds(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Parses `1h30m`, `90m`, `45s`, `2d`, or bare seconds into seconds.
pub fn parse_seconds(input: &str) -> Result<u64, ValidationError> {
    let bad = || {
        ValidationError::new(
            "duration_seconds",
            format!(
                "{} is not a duration (try `30m`, `2h` or `1h30m`)",
                quote(input)
            ),
        )
    };
    let s = input.trim();
    if s.is_empty() || s.len() > 32 {
        return Err(bad());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| bad());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_human_durations() {
        let cases = [
            ("60", 60),
            ("90s", 90),
            ("45m", 2700),
            ("2h", 7200),
            ("1h30m", 5400),
            ("1d", 86_400),
            (" 2h ", 7200),
        ];
        for (input, want) in cases {
            assert_eq!(parse_seconds(input), Ok(want), "{input}");
        }
        for bad in [
            "",
            "h",
            "2x",
            "1.5h",
            "-1h",
            "2h3",
            "99999999999999999999999h",
            "１h",
        ] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn enforces_minimum_and_ceiling_at_the_edges() {
        assert!(GrantDuration::new(59, 3600).is_err());
        assert_eq!(GrantDuration::new(60, 3600).unwrap().seconds(), 60);
        assert_eq!(GrantDuration::new(3600, 3600).unwrap().seconds(), 3600);
        let err = GrantDuration::new(3601, 3600).unwrap_err();
        assert_eq!(
            err.to_string(),
            "duration `3601` exceeds the limit of 3600 seconds"
        );
        assert!(GrantDuration::new(u64::MAX, DEFAULT_MAX_DURATION_SECONDS).is_err());
    }

    #[test]
    fn displays_compactly() {
        assert_eq!(
            GrantDuration::new(5400, 43_200).unwrap().to_string(),
            "1h30m"
        );
        assert_eq!(GrantDuration::new(60, 43_200).unwrap().to_string(), "1m");
        assert_eq!(GrantDuration::new(61, 43_200).unwrap().to_string(), "1m1s");
    }
}

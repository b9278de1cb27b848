//! Request ids: ULIDs, so they sort by creation time and fit STS session names.

use super::{ValidationError, quote};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A request id: a ULID in canonical upper-case Crockford base32 (26 chars).
/// Lexical order is creation order, so DynamoDB sort keys built from it list
/// newest first when read backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(ulid::Ulid);

impl RequestId {
    /// A fresh id for a request created at `at`.
    pub fn generate(at: super::Timestamp) -> Self {
        let ms = u64::try_from(at.unix()).unwrap_or(0).saturating_mul(1000);
        Self(ulid::Ulid::from_parts(ms, rand::random::<u128>()))
    }

    /// Parses a canonical ULID (upper or lower case accepted).
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        // The first character carries the top 3 bits of a 128-bit value: 0-7.
        if input.len() != 26
            || !input.bytes().all(|b| b.is_ascii_alphanumeric())
            || !(b'0'..=b'7').contains(&input.as_bytes()[0])
        {
            return Err(ValidationError::new(
                "request_id",
                format!("{} is not a request id", quote(input)),
            ));
        }
        ulid::Ulid::from_string(input).map(Self).map_err(|_| {
            ValidationError::new(
                "request_id",
                format!("{} is not a request id", quote(input)),
            )
        })
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for RequestId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;

    #[test]
    fn ids_sort_by_creation_time() {
        let a = RequestId::generate(Timestamp::from_unix(1_000));
        let b = RequestId::generate(Timestamp::from_unix(1_001));
        assert!(a.to_string() < b.to_string());
        assert_eq!(a.to_string().len(), 26);
    }

    #[test]
    fn parse_round_trips_and_refuses_junk() {
        let id = RequestId::generate(Timestamp::now());
        assert_eq!(RequestId::parse(&id.to_string()), Ok(id));
        assert_eq!(RequestId::parse(&id.to_string().to_lowercase()), Ok(id));
        for bad in [
            "",
            "01ARZ3NDEKTSV4RRFFQ69G5FA",
            "01ARZ3NDEKTSV4RRFFQ69G5FAVX",
            "../../etc/passwd000000000",
            "01ARZ3NDEKTSV4RRFFQ69G5FA!",
            "ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
        ] {
            assert!(RequestId::parse(bad).is_err(), "{bad}");
        }
    }
}

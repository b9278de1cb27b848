//! Free-text and identifier fields that come from users: reasons, tickets,
//! user ids and idempotency keys.

use super::{ValidationError, is_bidi_control, quote};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Why access is needed: 1-1024 characters, trimmed, no control characters
/// (so it can never forge a log line or a terminal escape).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reason(String);
string_newtype!(Reason);

impl Reason {
    /// Longest reason, in characters.
    pub const MAX_CHARS: usize = 1024;

    /// Validates a reason.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        free_text("reason", input, Self::MAX_CHARS).map(Self)
    }
}

/// A change or incident ticket reference: `[A-Za-z0-9._#/:-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ticket(String);
string_newtype!(Ticket);

impl Ticket {
    /// Validates a ticket reference.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let ok = !input.is_empty()
            && input.len() <= 64
            && input
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._#/:-".contains(c));
        if ok {
            Ok(Self(input.to_owned()))
        } else {
            Err(ValidationError::new(
                "ticket",
                format!(
                    "{} is not a ticket reference (1-64 of A-Z a-z 0-9 . _ # / : -)",
                    quote(input)
                ),
            ))
        }
    }
}

/// A user id: the verified token's subject. 1-256 characters, no control
/// characters, no surrounding white space.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(String);
string_newtype!(UserId);

impl UserId {
    /// Validates a subject.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let ok = !input.is_empty()
            && input.chars().count() <= 256
            && input.trim() == input
            && !input.chars().any(char::is_control)
            && !input.contains('#');
        if ok {
            Ok(Self(input.to_owned()))
        } else {
            Err(ValidationError::new(
                "sub",
                format!(
                    "{} is not a usable subject (1-256 characters, no control characters or `#`)",
                    quote(input)
                ),
            ))
        }
    }
}

/// A client-chosen idempotency key: `[A-Za-z0-9_.:-]{8,128}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);
string_newtype!(IdempotencyKey);

impl IdempotencyKey {
    /// Validates a key from the `Idempotency-Key` header.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let ok = (8..=128).contains(&input.len())
            && input
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c));
        if ok {
            Ok(Self(input.to_owned()))
        } else {
            Err(ValidationError::new(
                "idempotency_key",
                format!(
                    "{} is not an idempotency key (8-128 of A-Z a-z 0-9 _ . : -)",
                    quote(input)
                ),
            ))
        }
    }
}

/// Trimmed free text of 1..=`max` characters with no control characters.
pub(crate) fn free_text(
    field: &'static str,
    input: &str,
    max: usize,
) -> Result<String, ValidationError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(ValidationError::new(
            field,
            format!("{field} must not be empty"),
        ));
    }
    let count = trimmed.chars().count();
    if count > max {
        return Err(ValidationError::new(
            field,
            format!("{field} is {count} characters long; the limit is {max}"),
        ));
    }
    if let Some(c) = trimmed
        .chars()
        .find(|c| c.is_control() || is_bidi_control(*c))
    {
        return Err(ValidationError::new(
            field,
            format!(
                "{field} contains the control character U+{:04X}",
                u32::from(c)
            ),
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_limits_and_characters() {
        assert_eq!(
            Reason::parse("  fix INC-42 ").unwrap().as_str(),
            "fix INC-42"
        );
        assert!(Reason::parse(&"é".repeat(1024)).is_ok());
        assert!(Reason::parse(&"é".repeat(1025)).is_err());
        for bad in [
            "",
            "   ",
            "a\nb",
            "a\u{1b}[31mred",
            "a\u{0}",
            "a\u{202E}b",
            "a\u{061C}b",
            "tab\there",
            "\u{7f}",
        ] {
            assert!(Reason::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Reason::parse("déploiement urgent 🚒").is_ok());
    }

    #[test]
    fn ticket_charset_and_length() {
        for ok in [
            "INC-1",
            "JIRA/OPS-123",
            "a",
            "sn:CHG0012345",
            "#42",
            &"a".repeat(64),
        ] {
            assert!(Ticket::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "has space",
            "semi;colon",
            "ünïcode",
            "a\n",
            &"a".repeat(65),
        ] {
            assert!(Ticket::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn user_id_rules() {
        for ok in [
            "alice",
            "00u1abcd2EFGH3ijk4x7",
            "alice@example.com",
            "auth0|123",
        ] {
            assert!(UserId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", " alice", "alice\n", "a#b", &"a".repeat(257)] {
            assert!(UserId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(UserId::parse(&"a".repeat(256)).is_ok());
    }

    #[test]
    fn idempotency_key_rules() {
        assert!(IdempotencyKey::parse("2f1c9a7e-0b7c-4c8e").is_ok());
        for bad in [
            "short",
            "has space here",
            &"k".repeat(129),
            "semi;colon-key",
        ] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }
}

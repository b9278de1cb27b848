//! Names and tag values sent to STS, kept to STS's rules, which the local
//! emulator does not check.

use super::RequestId;
use regex::Regex;
use std::fmt;
use std::sync::LazyLock;

/// `RoleSessionName`: `tollgate-<request id>`, 2-64 of `[\w+=,.@-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionName(String);

impl SessionName {
    /// The session name for a request. A ULID is 26 characters of Crockford
    /// base32, so the result is always 35 valid characters.
    pub fn for_request(id: RequestId) -> Self {
        Self(format!("tollgate-{id}"))
    }

    /// The name as sent to STS.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` satisfies STS's rules for a role session name.
    pub fn is_valid(name: &str) -> bool {
        (2..=64).contains(&name.len()) && name.chars().all(is_sts_name_char)
    }
}

impl fmt::Display for SessionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_sts_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// A `SourceIdentity` for a user id: 2-64 of `[\w+=,.@-]`, other characters
/// replaced by `-`, never starting with `aws:` (the `:` is replaced anyway).
pub fn sanitize_source_identity(user: &str) -> String {
    let mut out: String = user
        .chars()
        .map(|c| if is_sts_name_char(c) { c } else { '-' })
        .take(64)
        .collect();
    while out.len() < 2 {
        out.push('-');
    }
    out
}

/// STS's character class for session tag values. `char::is_alphanumeric`
/// is not it: Unicode `Alphabetic` also holds combining marks (`U+093F`,
/// `U+0345`) that `\p{L}` does not, and STS refuses them.
static TAG_VALUE_CHAR: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]$").ok());

/// Whether STS accepts `c` in a session tag key or value
/// (`[\p{L}\p{Z}\p{N}_.:/=+\-@]`).
pub fn is_tag_char(c: char) -> bool {
    if "_.:/=+-@".contains(c) || c.is_ascii_alphanumeric() || c == ' ' {
        return true;
    }
    match &*TAG_VALUE_CHAR {
        Some(class) => !c.is_ascii() && class.is_match(c.encode_utf8(&mut [0; 4])),
        // The pattern is a constant that compiles; were it ever not to, keep
        // to ASCII rather than guess.
        None => false,
    }
}

/// A session tag value: at most 256 characters of
/// `[\p{L}\p{Z}\p{N}_.:/=+\-@]`, others replaced by `_`.
pub fn sanitize_tag_value(value: &str) -> String {
    value
        .chars()
        .take(256)
        .map(|c| if is_tag_char(c) { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;

    #[test]
    fn session_names_are_always_valid() {
        let name = SessionName::for_request(RequestId::generate(Timestamp::now()));
        assert!(name.as_str().starts_with("tollgate-"));
        assert_eq!(name.as_str().len(), 35);
        assert!(SessionName::is_valid(name.as_str()));
        assert!(!SessionName::is_valid("a"));
        assert!(!SessionName::is_valid("has space"));
        assert!(!SessionName::is_valid(&"a".repeat(65)));
    }

    #[test]
    fn source_identity_is_sanitised() {
        assert_eq!(
            sanitize_source_identity("alice@example.com"),
            "alice@example.com"
        );
        assert_eq!(sanitize_source_identity("auth0|123"), "auth0-123");
        assert_eq!(sanitize_source_identity("aws:root"), "aws-root");
        assert_eq!(sanitize_source_identity("x"), "x-");
        assert_eq!(sanitize_source_identity(&"é".repeat(100)).len(), 64);
    }

    #[test]
    fn tag_values_are_sanitised() {
        assert_eq!(sanitize_tag_value("INC-42 / urgent"), "INC-42 / urgent");
        assert_eq!(sanitize_tag_value("a;b\nc#d"), "a_b_c_d");
        assert_eq!(sanitize_tag_value(&"x".repeat(300)).chars().count(), 256);
        assert_eq!(sanitize_tag_value("équipe"), "équipe");
        // Alphabetic to Rust, but marks (Mc, Mn) to Unicode: STS refuses them.
        assert_eq!(sanitize_tag_value("हि\u{0345}"), "ह__");
        assert_eq!(
            sanitize_tag_value("a\u{3000}b\u{2160}"),
            "a\u{3000}b\u{2160}"
        );
    }
}

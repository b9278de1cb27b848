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

/// Hex characters of `sha256(user id)` appended to a changed source identity.
pub const SOURCE_IDENTITY_HASH_CHARS: usize = 16;

/// A `SourceIdentity` for a user id (STS: 2-64 of `[\w+=,.@-]`, never
/// starting with `aws:`). A subject that already fits is sent as it is.
/// Any other is changed — characters outside the set become `-`, the result
/// is cut to 47 characters — and always gets `=` and the first 16 hex
/// characters of `sha256(subject)` appended, so two subjects never map to
/// one value (`auth0|alice` → `auth0-alice=<hash>`, while `auth0-alice` stays
/// `auth0-alice`). A subject that already ends like a mapped value (`=` and
/// 16 lowercase hex characters) is mapped too, so no subject can choose to
/// equal another's mapped value.
pub fn sanitize_source_identity(user: &str) -> String {
    let fits = (2..=64).contains(&user.len())
        && user.chars().all(is_sts_name_char)
        && !user.to_ascii_lowercase().starts_with("aws:")
        && !looks_mapped(user);
    if fits {
        return user.to_owned();
    }
    use sha2::{Digest, Sha256};
    let hash = hex::encode(Sha256::digest(user.as_bytes()));
    let keep = 64 - 1 - SOURCE_IDENTITY_HASH_CHARS;
    let mut out: String = user
        .chars()
        .map(|c| if is_sts_name_char(c) { c } else { '-' })
        .take(keep)
        .collect();
    out.push('=');
    out.push_str(&hash[..SOURCE_IDENTITY_HASH_CHARS]);
    out
}

/// Whether `value` ends as [`sanitize_source_identity`] ends a changed value.
fn looks_mapped(value: &str) -> bool {
    let n = SOURCE_IDENTITY_HASH_CHARS;
    value.len() > n
        && value.as_bytes()[value.len() - n - 1] == b'='
        && value[value.len() - n..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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
        let mapped = sanitize_source_identity("auth0|123");
        assert!(mapped.starts_with("auth0-123="), "{mapped}");
        assert_eq!(
            mapped.len(),
            "auth0-123=".len() + SOURCE_IDENTITY_HASH_CHARS
        );
        assert!(sanitize_source_identity("aws:root").starts_with("aws-root="));
        assert!(sanitize_source_identity("x").starts_with("x="));
        assert_eq!(sanitize_source_identity(&"é".repeat(100)).len(), 64);
    }

    #[test]
    fn a_changed_source_identity_gets_a_hash_suffix_so_distinct_users_stay_distinct() {
        // Kept as they are: already valid, and not shaped like a mapped value.
        for kept in [
            "alice",
            "alice@example.com",
            "00u1abcd2EFGH3ijk4x7",
            "a.b+c=d,e",
        ] {
            assert_eq!(sanitize_source_identity(kept), kept);
        }
        let pairs = [
            ("auth0|alice", "auth0-alice"),
            ("aws:root", "aws-root"),
            (&"a".repeat(70) as &str, &"a".repeat(64) as &str),
            (
                &format!("{}x", "a".repeat(64)),
                &format!("{}y", "a".repeat(64)),
            ),
            ("x", "x-"),
        ];
        for (changed, other) in pairs {
            let a = sanitize_source_identity(changed);
            let b = sanitize_source_identity(other);
            assert_ne!(a, b, "`{changed}` and `{other}` must not collide");
            assert!((2..=64).contains(&a.len()), "{a}");
            assert!(a.chars().all(is_sts_name_char), "{a}");
        }
        // A valid value that looks like a mapped one is mapped too, so no
        // subject can choose to equal another's mapped value.
        let mapped = sanitize_source_identity("auth0|alice");
        assert_ne!(sanitize_source_identity(&mapped), mapped);
        // Deterministic.
        assert_eq!(sanitize_source_identity("auth0|alice"), mapped);
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

//! Pure types and rules: validated values, identities, and the request lifecycle.
//! Nothing here does I/O or knows about AWS; everything else builds on it.

mod duration;
mod identity;
mod lifecycle;
mod onboarding;
mod request_id;
mod role_arn;
mod session_policy;
mod sts_names;
mod text;
mod timestamp;

pub use duration::{
    DEFAULT_MAX_DURATION_SECONDS, GrantDuration, MIN_DURATION_SECONDS, format_seconds,
    parse_seconds,
};
pub use identity::{Identity, RoleInfo};
pub use lifecycle::{
    AccessRequest, Actor, Approval, Command, DEFAULT_PENDING_TTL_SECONDS, DecisionRecord, Event,
    EventKind, EventSignature, NewRequest, Refusal, Status,
};
pub use onboarding::{MANAGED_TAG, OnboardingRules, RoleCheck, RoleFacts, assess};
pub use request_id::RequestId;
pub use role_arn::RoleArn;
pub use session_policy::SessionPolicy;
pub use sts_names::{
    SOURCE_IDENTITY_HASH_CHARS, SessionName, is_tag_char, sanitize_source_identity,
    sanitize_tag_value,
};
pub use text::{IdempotencyKey, Reason, Ticket, UserId};
pub use timestamp::Timestamp;

/// Why a value was refused at the boundary. Messages are for people:
/// lowercase, no trailing period, user input in backticks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    /// The field that was refused, as named in the API (`role_arn`, `reason`, ...).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl ValidationError {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Unicode's `Bidi_Control` characters (overrides, embeddings, isolates and
/// marks), which can make text read differently from how it is stored.
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Characters that show nothing, or change how text around them shows:
/// zero-width spaces and joiners, word joiners and invisible operators,
/// the byte-order mark, soft hyphen, Mongolian vowel separator, combining
/// grapheme joiner, tag characters and interlinear annotation marks.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'..='\u{2064}'
            | '\u{206A}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// Quotes user input for an error message: backticked, control and bidi
/// characters escaped, and cut to a length that keeps messages readable.
pub(crate) fn quote(input: &str) -> String {
    const MAX: usize = 80;
    let mut out = String::from("`");
    for (i, c) in input.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        if c.is_control() || is_bidi_control(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('`');
    out
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quoting_escapes_control_and_bidi_characters_and_cuts_long_input() {
        assert_eq!(quote("a\nb"), "`a\\nb`");
        assert_eq!(quote("x\u{202E}y\u{061C}"), "`x\\u{202e}y\\u{61c}`");
        assert_eq!(quote(&"é".repeat(100)), format!("`{}…`", "é".repeat(80)));
    }
}

//! What the CLI reports when something fails: a stable code, a message for
//! people, an optional hint, and the process exit code scripts can branch on.

use std::fmt;
use tollgate::domain::ValidationError;

/// Process exit codes, documented in `tollgate --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Any other failure.
    Generic,
    /// Bad command-line input, or input the broker refused as invalid (400).
    Usage,
    /// Policy or a hard rule said no (403), or the request was denied.
    Denied,
    /// Unknown request, or none visible to you (404), or no active grant.
    NotFound,
    /// The request moved on or a digest did not match (409).
    Conflict,
    /// The broker or AWS could not be reached or asked us to slow down
    /// (429, 502-504, network errors).
    Unavailable,
    /// No token, or the broker refused it (401).
    Unauthenticated,
    /// `--wait` ran out of time before a decision.
    TimedOut,
    /// Ctrl-C.
    Interrupted,
}

impl Exit {
    /// The numeric process exit code.
    pub const fn code(self) -> u8 {
        match self {
            Self::Generic => 1,
            Self::Usage => 2,
            Self::Denied => 3,
            Self::NotFound => 4,
            Self::Conflict => 5,
            Self::Unavailable => 6,
            Self::Unauthenticated => 7,
            Self::TimedOut => 8,
            Self::Interrupted => 130,
        }
    }

    /// The exit for a numeric code from an offline command (0 is not an error).
    pub const fn from_code(code: i32) -> Self {
        match code {
            2 => Self::Usage,
            3 => Self::Denied,
            4 => Self::NotFound,
            5 => Self::Conflict,
            6 => Self::Unavailable,
            7 => Self::Unauthenticated,
            8 => Self::TimedOut,
            130 => Self::Interrupted,
            _ => Self::Generic,
        }
    }

    /// The exit code for a refusal from the broker: by its code where the
    /// status alone would mislead (an unknown role is a 400 to the API, but
    /// "not found" to a person), else by the status.
    pub fn for_refusal(status: u16, code: &str) -> Self {
        match code {
            "unknown_role" => Self::NotFound,
            _ => Self::for_status(status),
        }
    }

    /// The exit code for an HTTP error status from the broker.
    pub const fn for_status(status: u16) -> Self {
        match status {
            400 | 413 | 422 => Self::Usage,
            401 => Self::Unauthenticated,
            403 => Self::Denied,
            404 => Self::NotFound,
            409 => Self::Conflict,
            429 | 502..=504 => Self::Unavailable,
            _ => Self::Generic,
        }
    }
}

/// The exit-code table shown in `tollgate --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success
  1    other error
  2    usage error or invalid input (400)
  3    denied by policy or by an approver (403)
  4    not found: an unknown request or role, or no active grant (404)
  5    conflict: the request moved on or the digest changed (409)
  6    broker or AWS unavailable (503, 429, network)
  7    unauthenticated: no token or a rejected one (401)
  8    timed out waiting for a decision
  130  interrupted (Ctrl-C)";

/// A failure as the CLI reports it. Never holds a token or a credential.
#[derive(Debug, Clone, PartialEq)]
pub struct CliError {
    /// How the process exits.
    pub exit: Exit,
    /// Stable snake_case code: the broker's own, or one of the CLI's.
    pub code: String,
    /// For people: lowercase, no trailing period.
    pub message: String,
    /// What to do next, when there is something useful to say.
    pub hint: Option<String>,
    /// The broker's decision explanation, for policy denials.
    pub explanation: Option<Box<serde_json::Value>>,
}

impl CliError {
    /// A failure with an exit code, a code and a message.
    pub fn new(exit: Exit, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            exit,
            code: code.into(),
            message: message.into(),
            hint: None,
            explanation: None,
        }
    }

    /// A usage error (exit 2).
    pub fn usage(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, code, message)
    }

    /// Any other failure (exit 1).
    pub fn generic(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Exit::Generic, code, message)
    }

    /// A failure the command has already reported on its output: only the
    /// exit code remains to be given.
    pub fn reported(exit: Exit) -> Self {
        Self::new(exit, REPORTED, "")
    }

    /// Adds a hint.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Builds the error for a non-success HTTP response from the broker,
    /// using its `{"error": {"code", "message"}}` body when it sent one.
    pub fn from_response(status: u16, body: &[u8]) -> Self {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let code = error
            .and_then(|e| e.get("code"))
            .and_then(serde_json::Value::as_str)
            .map(sanitize_code);
        let exit = Exit::for_refusal(status, code.as_deref().unwrap_or_default());
        let message = error
            .and_then(|e| e.get("message"))
            .and_then(serde_json::Value::as_str)
            .map(crate::output::clean);
        let explanation = error
            .and_then(|e| e.get("explanation"))
            .or_else(|| parsed.as_ref().and_then(|v| v.get("explanation")))
            .filter(|e| !e.is_null())
            .cloned();
        let mut err = Self::new(
            exit,
            code.unwrap_or_else(|| format!("http_{status}")),
            message.unwrap_or_else(|| format!("the broker answered with HTTP {status}")),
        );
        err.explanation = explanation.map(Box::new);
        err.hint = match exit {
            Exit::Unauthenticated => Some(
                "check TOLLGATE_TOKEN or the token command of your profile; tokens expire".into(),
            ),
            _ => None,
        };
        err
    }

    /// Writes the error to `err` for people: `error: <message> (<code>)`,
    /// then the explanation and hint when present.
    pub fn write_human(&self, err: &mut dyn std::io::Write) -> std::io::Result<()> {
        use crate::output::clean;
        writeln!(err, "error: {} ({})", clean(&self.message), self.code)?;
        if let Some(explanation) = &self.explanation {
            crate::output::write_explanation(err, explanation)?;
        }
        if let Some(hint) = &self.hint {
            for (i, line) in hint.lines().enumerate() {
                let label = if i == 0 { "hint:" } else { "     " };
                writeln!(err, "{label} {}", clean(line))?;
            }
        }
        Ok(())
    }

    /// The error as JSON: `{"error": {"code", "message", "exit_code", ...}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut error = serde_json::json!({
            "code": self.code,
            "message": self.message,
            "exit_code": self.exit.code(),
        });
        if let Some(obj) = error.as_object_mut() {
            if let Some(hint) = &self.hint {
                obj.insert("hint".into(), hint.clone().into());
            }
            if let Some(explanation) = &self.explanation {
                obj.insert("explanation".into(), (**explanation).clone());
            }
        }
        serde_json::json!({ "error": error })
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for CliError {}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Self::generic(BROKEN_PIPE, "output closed")
        } else {
            Self::generic("io_error", format!("input/output failed: {e}"))
        }
    }
}

/// The code of a failure already reported (see [`CliError::reported`]).
pub const REPORTED: &str = "reported";

/// The code for output going to a closed pipe (`tollgate list | head`),
/// which ends the command quietly.
pub const BROKEN_PIPE: &str = "broken_pipe";

impl From<ValidationError> for CliError {
    fn from(e: ValidationError) -> Self {
        Self::usage("invalid_input", e.message)
    }
}

/// Keeps a server-supplied code to `[a-z0-9_]`, at most 64 characters, so it
/// cannot smuggle anything into a terminal or a script that matches on it.
fn sanitize_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_map_to_distinct_exit_codes() {
        let cases = [
            (400, 2),
            (413, 2),
            (401, 7),
            (403, 3),
            (404, 4),
            (409, 5),
            (429, 6),
            (502, 6),
            (503, 6),
            (504, 6),
            (500, 1),
            (418, 1),
        ];
        for (status, code) in cases {
            assert_eq!(Exit::for_status(status).code(), code, "HTTP {status}");
        }
    }

    #[test]
    fn every_exit_code_is_distinct_and_documented() {
        let all = [
            Exit::Generic,
            Exit::Usage,
            Exit::Denied,
            Exit::NotFound,
            Exit::Conflict,
            Exit::Unavailable,
            Exit::Unauthenticated,
            Exit::TimedOut,
            Exit::Interrupted,
        ];
        let mut codes: Vec<u8> = all.iter().map(|e| e.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        for code in codes {
            assert!(
                EXIT_CODES_HELP.contains(&format!("\n  {code} ")),
                "exit code {code} missing from help"
            );
        }
    }

    #[test]
    fn an_unknown_role_exits_as_not_found_like_an_unknown_request() {
        let err = CliError::from_response(
            400,
            br#"{"error":{"code":"unknown_role","message":"role `x` does not exist"}}"#,
        );
        assert_eq!(err.exit.code(), 4);
        let err = CliError::from_response(
            400,
            br#"{"error":{"code":"invalid_input","message":"bad"}}"#,
        );
        assert_eq!(err.exit.code(), 2);
    }

    #[test]
    fn messages_and_hints_print_their_lines_cleaned() {
        let err =
            CliError::generic("x", "denied: \u{202e}reversed").with_hint("first\nsecond \u{1b}[2J");
        let mut buf = Vec::new();
        err.write_human(&mut buf).unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "error: denied: \\u{202e}reversed (x)\nhint: first\n      second \u{fffd}[2J\n"
        );
    }

    #[test]
    fn broker_error_bodies_keep_code_message_and_explanation() {
        let body = br#"{"error":{"code":"policy_denied","message":"no policy permits `request`","explanation":{"permitted_by":[]}}}"#;
        let err = CliError::from_response(403, body);
        assert_eq!(err.exit, Exit::Denied);
        assert_eq!(err.code, "policy_denied");
        assert_eq!(err.message, "no policy permits `request`");
        assert_eq!(
            err.explanation,
            Some(Box::new(serde_json::json!({"permitted_by": []})))
        );
    }

    #[test]
    fn bodies_that_are_not_broker_errors_still_give_a_clear_error() {
        let err = CliError::from_response(502, b"<html>Bad Gateway</html>");
        assert_eq!(err.exit, Exit::Unavailable);
        assert_eq!(err.code, "http_502");
        assert_eq!(err.message, "the broker answered with HTTP 502");
    }

    #[test]
    fn server_codes_and_messages_cannot_carry_terminal_escapes() {
        let body = br#"{"error":{"code":"bad\u001b[31mcode","message":"red \u001b[31m alert"}}"#;
        let err = CliError::from_response(400, body);
        assert_eq!(err.code, "bad31mcode");
        assert!(!err.message.contains('\u{1b}'));
    }

    #[test]
    fn unauthenticated_errors_hint_at_the_token_without_showing_it() {
        let err = CliError::from_response(
            401,
            br#"{"error":{"code":"unauthenticated","message":"token expired"}}"#,
        );
        assert_eq!(err.exit.code(), 7);
        let mut buf = Vec::new();
        err.write_human(&mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.starts_with("error: token expired (unauthenticated)\n"));
        assert!(text.contains("hint: check TOLLGATE_TOKEN"));
    }
}

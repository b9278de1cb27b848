//! Reading request bodies and query strings: a 16 KiB cap (413), strict JSON
//! objects whose unknown fields, wrong types and malformed text are refused
//! with a 400 that names the field, and nothing of the input echoed raw.

use crate::BrokerError;
use crate::domain::ValidationError;
use axum::body::{Body, Bytes};
use axum::extract::FromRequest;
use axum::http::Request;
use serde_json::{Map, Value};

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The raw body, at most [`MAX_BODY_BYTES`]; larger bodies are refused
/// with 413 before they are parsed.
#[derive(Debug)]
pub struct LimitedBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for LimitedBody {
    type Rejection = super::ApiError;

    async fn from_request(req: Request<Body>, _state: &S) -> Result<Self, Self::Rejection> {
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(too_large().into());
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| too_large())?;
        Ok(Self(bytes))
    }
}

fn too_large() -> BrokerError {
    BrokerError::PayloadTooLarge {
        limit: MAX_BODY_BYTES,
    }
}

/// A JSON object body whose fields are taken one by one; every field must be
/// one of those the route knows.
#[derive(Debug)]
pub struct JsonObject {
    fields: Map<String, Value>,
}

impl JsonObject {
    /// Parses `bytes` as a JSON object with only `allowed` fields. An empty
    /// body is an empty object (for routes whose fields are all optional).
    pub fn parse(bytes: &[u8], allowed: &[&str]) -> Result<Self, BrokerError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self { fields: Map::new() });
        }
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| BrokerError::InvalidInput {
                code: "malformed_json",
                message: format!(
                    "the body is not valid JSON ({} at line {}, column {})",
                    match e.classify() {
                        serde_json::error::Category::Eof => "unexpected end",
                        serde_json::error::Category::Syntax => "syntax error",
                        serde_json::error::Category::Data | serde_json::error::Category::Io =>
                            "unreadable",
                    },
                    e.line(),
                    e.column()
                ),
            })?;
        let Value::Object(fields) = value else {
            return Err(BrokerError::InvalidInput {
                code: "malformed_json",
                message: "the body must be a JSON object".into(),
            });
        };
        if let Some(unknown) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(BrokerError::InvalidInput {
                code: "unknown_field",
                message: format!(
                    "unknown field {}; expected {}",
                    crate::domain::quote(unknown),
                    list(allowed)
                ),
            });
        }
        Ok(Self { fields })
    }

    /// A string field that must be present.
    pub fn required_str(&self, name: &'static str) -> Result<&str, BrokerError> {
        self.optional_str(name)?
            .ok_or_else(|| missing(name, "a string"))
    }

    /// A string field that may be absent or `null`.
    pub fn optional_str(&self, name: &'static str) -> Result<Option<&str>, BrokerError> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong_type(name, "a string", other)),
        }
    }

    /// A non-negative whole number that must be present.
    pub fn required_u64(&self, name: &'static str) -> Result<u64, BrokerError> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Err(missing(name, "a whole number")),
            Some(Value::Number(n)) => n.as_u64().ok_or_else(|| {
                field_error(
                    name,
                    format!("`{name}` must be a whole number of at least 0, without a fraction"),
                )
            }),
            Some(other) => Err(wrong_type(name, "a whole number", other)),
        }
    }

    /// A boolean field that may be absent or `null` (then false).
    pub fn optional_bool(&self, name: &'static str) -> Result<bool, BrokerError> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(wrong_type(name, "`true` or `false`", other)),
        }
    }

    /// Any JSON value; `null` counts as absent.
    pub fn optional_value(&self, name: &'static str) -> Option<&Value> {
        self.fields.get(name).filter(|v| !v.is_null())
    }
}

/// A [`ValidationError`] as a 400 naming its field.
pub fn field_error(field: &'static str, message: String) -> BrokerError {
    BrokerError::from(ValidationError { field, message })
}

fn missing(name: &'static str, what: &str) -> BrokerError {
    field_error(name, format!("`{name}` is required and must be {what}"))
}

fn wrong_type(name: &'static str, what: &str, got: &Value) -> BrokerError {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    field_error(name, format!("`{name}` must be {what}, not {got}"))
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        return "no fields".into();
    }
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses a query string into pairs, refusing names outside `allowed` and
/// names given twice.
pub fn query_pairs(
    raw: Option<&str>,
    allowed: &[&str],
) -> Result<Vec<(String, String)>, BrokerError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded_pairs(raw.unwrap_or("")) {
        if !allowed.contains(&k.as_str()) {
            return Err(BrokerError::InvalidInput {
                code: "unknown_parameter",
                message: format!(
                    "unknown query parameter {}; expected {}",
                    crate::domain::quote(&k),
                    list(allowed)
                ),
            });
        }
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(BrokerError::invalid(format!(
                "query parameter `{k}` is given more than once"
            )));
        }
        out.push((k, v));
    }
    Ok(out)
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space, `%XX`
/// escapes), lossy on invalid UTF-8.
fn form_urlencoded_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: &BrokerError) -> &'static str {
        e.code()
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let e = JsonObject::parse(br#"{"reason":"x","rol_arn":"y"}"#, &["reason", "role_arn"])
            .unwrap_err();
        assert_eq!(code(&e), "unknown_field");
        assert!(e.to_string().contains("`rol_arn`"), "{e}");
    }

    #[test]
    fn malformed_json_and_non_objects_are_refused_without_echoing_input() {
        for body in [
            &b"{\"reason\": \"secret-ish\""[..],
            b"{reason: 1}",
            b"[1,2]",
            b"\"text\"",
            b"\xff\xfe",
        ] {
            let e = JsonObject::parse(body, &["reason"]).unwrap_err();
            assert_eq!(code(&e), "malformed_json", "{body:?}");
            assert!(!e.to_string().contains("secret-ish"));
        }
    }

    #[test]
    fn wrong_types_name_the_field_and_what_was_expected() {
        let o = JsonObject::parse(
            br#"{"duration_seconds":"2h","reason":5,"n":-1,"f":1.5}"#,
            &["duration_seconds", "reason", "n", "f"],
        )
        .unwrap();
        let e = o.required_u64("duration_seconds").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`duration_seconds` must be a whole number, not a string"
        );
        let e = o.required_str("reason").unwrap_err();
        assert_eq!(e.to_string(), "`reason` must be a string, not a number");
        assert!(o.required_u64("n").is_err());
        assert!(o.required_u64("f").is_err());
        let e = o.required_str("missing").unwrap_err();
        assert!(e.to_string().contains("`missing` is required"));
    }

    #[test]
    fn null_and_empty_bodies_mean_absent() {
        let o = JsonObject::parse(b"  ", &["comment"]).unwrap();
        assert_eq!(o.optional_str("comment").unwrap(), None);
        let o = JsonObject::parse(br#"{"comment":null}"#, &["comment"]).unwrap();
        assert_eq!(o.optional_str("comment").unwrap(), None);
        assert!(o.optional_value("comment").is_none());
    }

    #[test]
    fn query_strings_decode_and_refuse_unknown_or_repeated_names() {
        let pairs = query_pairs(
            Some("scope=mine&status=active&next_token=a%2Bb+c"),
            &["scope", "status", "next_token"],
        )
        .unwrap();
        assert_eq!(pairs[2], ("next_token".into(), "a+b c".into()));
        let e = query_pairs(Some("scop=mine"), &["scope"]).unwrap_err();
        assert_eq!(e.code(), "unknown_parameter");
        assert!(query_pairs(Some("scope=a&scope=b"), &["scope"]).is_err());
        assert_eq!(query_pairs(Some("x=%zz%4"), &["x"]).unwrap()[0].1, "%zz%4");
        assert!(query_pairs(None, &[]).unwrap().is_empty());
    }
}

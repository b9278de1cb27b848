//! The optional narrowing a requester asks for: an IAM policy document that
//! the issued credentials may not exceed.

use super::{ValidationError, is_bidi_control, is_invisible};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A requested narrowing, stored compact. STS caps a session policy at 2,048
/// characters; the broker's own cut-off statement takes up to
/// [`SessionPolicy::RESERVED_CHARS`] of that, so a narrowing may use the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPolicy {
    statements: Vec<Value>,
    compact: String,
}

impl SessionPolicy {
    /// STS's limit on a session policy's plaintext.
    pub const STS_LIMIT_CHARS: usize = 2048;
    /// Room kept for the statement that ends the credentials at the window's end.
    pub const RESERVED_CHARS: usize = 200;

    /// Validates a policy document given as JSON (object with `Statement`).
    pub fn parse(doc: &Value) -> Result<Self, ValidationError> {
        let bad =
            |why: &str| ValidationError::new("session_policy", format!("session policy {why}"));
        let Value::Object(map) = doc else {
            return Err(bad("must be a JSON object"));
        };
        for key in map.keys() {
            if key != "Version" && key != "Statement" {
                return Err(bad(&format!(
                    "has an unsupported field `{}`",
                    super::quote(key).trim_matches('`')
                )));
            }
        }
        // INVARIANT: what an approver reads is what STS receives: no control,
        // bidi or invisible character anywhere, keys included (as `reason`).
        if let Some(c) = first_hidden_char(doc) {
            return Err(bad(&format!(
                "contains the control or invisible character U+{:04X}",
                u32::from(c)
            )));
        }
        if map.get("Version").is_some_and(|v| v != "2012-10-17") {
            return Err(bad("`Version` must be `2012-10-17`"));
        }
        let statements = match map.get("Statement") {
            Some(Value::Array(items)) if !items.is_empty() => items.clone(),
            Some(obj @ Value::Object(_)) => vec![obj.clone()],
            _ => return Err(bad("needs a non-empty `Statement`")),
        };
        for st in &statements {
            let Value::Object(st) = st else {
                return Err(bad("statements must be objects"));
            };
            match st.get("Effect").and_then(Value::as_str) {
                Some("Allow" | "Deny") => {}
                _ => return Err(bad("statements need `Effect` `Allow` or `Deny`")),
            }
            if st.contains_key("Principal") || st.contains_key("NotPrincipal") {
                return Err(bad("statements may not name a principal"));
            }
            if !(st.contains_key("Action") || st.contains_key("NotAction")) {
                return Err(bad("statements need `Action` or `NotAction`"));
            }
            if st
                .get("Sid")
                .and_then(Value::as_str)
                .is_some_and(|sid| sid.starts_with("Tollgate"))
            {
                return Err(bad(
                    "statement ids starting with `Tollgate` are reserved for the broker",
                ));
            }
        }
        let compact = serde_json::to_string(&statements).map_err(|_| bad("is not valid JSON"))?;
        let limit = Self::STS_LIMIT_CHARS - Self::RESERVED_CHARS;
        if compact.len() > limit {
            return Err(bad(&format!(
                "is {} characters; the limit is {limit}",
                compact.len()
            )));
        }
        Ok(Self {
            statements,
            compact,
        })
    }

    /// The statements, as given.
    pub fn statements(&self) -> &[Value] {
        &self.statements
    }

    /// The statements as compact JSON (what the digest covers).
    pub fn as_compact_json(&self) -> &str {
        &self.compact
    }
}

/// The first control, bidi or invisible character in any key or string.
fn first_hidden_char(value: &Value) -> Option<char> {
    let hidden = |s: &str| {
        s.chars()
            .find(|c| c.is_control() || is_bidi_control(*c) || is_invisible(*c))
    };
    match value {
        Value::String(s) => hidden(s),
        Value::Array(items) => items.iter().find_map(first_hidden_char),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| hidden(k).or_else(|| first_hidden_char(v))),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

impl Serialize for SessionPolicy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde_json::json!({"Version": "2012-10-17", "Statement": self.statements}).serialize(s)
    }
}

impl<'de> Deserialize<'de> for SessionPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Self::parse(&v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_plain_narrowing() {
        let p = SessionPolicy::parse(&json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})).unwrap();
        assert_eq!(p.statements().len(), 1);
        let single = SessionPolicy::parse(
            &json!({"Statement": {"Effect": "Deny", "NotAction": "s3:*", "Resource": "*"}}),
        )
        .unwrap();
        assert_eq!(single.statements().len(), 1);
    }

    #[test]
    fn refuses_bidi_controls_and_invisible_characters_anywhere_in_the_document() {
        for c in [
            '\u{202E}', '\u{2066}', '\u{200B}', '\u{200D}', '\u{2060}', '\u{FEFF}', '\u{061C}',
            '\u{0007}',
        ] {
            let in_value = json!({"Statement": [{"Effect": "Allow", "Action": format!("s3:Get{c}Object"), "Resource": "*"}]});
            let in_key = json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {format!("StringEquals{c}"): {"aws:SourceIp": "10.0.0.1"}}}]});
            let deep = json!({"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [format!("arn:aws:s3:::logs{c}/*")]}]});
            for doc in [in_value, in_key, deep] {
                let err = SessionPolicy::parse(&doc).unwrap_err();
                assert_eq!(err.field, "session_policy");
                assert!(
                    err.message.contains(&format!("U+{:04X}", u32::from(c))),
                    "{}",
                    err.message
                );
            }
        }
        // Other Unicode is fine (S3 keys may hold it).
        assert!(SessionPolicy::parse(&json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/équipe/*"}]})).is_ok());
    }

    #[test]
    fn refuses_malformed_or_oversized_documents() {
        let big = "s3:GetObject".repeat(200);
        let bad = [
            json!("Allow *"),
            json!({}),
            json!({"Statement": []}),
            json!({"Version": "2008-10-17", "Statement": [{"Effect": "Allow", "Action": "*"}]}),
            json!({"Statement": [{"Effect": "Maybe", "Action": "*"}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Principal": "*"}]}),
            json!({"Statement": [{"Effect": "Allow", "Resource": "*"}]}),
            json!({"Statement": ["Allow"]}),
            json!({"Statement": [{"Effect": "Allow", "Action": big}]}),
            json!({"Id": "x", "Statement": [{"Effect": "Allow", "Action": "*"}]}),
            json!({"Statement": [{"Sid": "TollgateWindowEnd", "Effect": "Allow", "Action": "*"}]}),
        ];
        for doc in bad {
            assert!(SessionPolicy::parse(&doc).is_err(), "{doc}");
        }
    }
}

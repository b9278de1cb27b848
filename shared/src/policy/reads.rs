//! What the policies read, found once at load time from each policy's JSON
//! form: which context fields the `request` and `auto_approve` policies use,
//! the literals they compare them with, and whether anything but a role's
//! tags, account, path and maximum session decides about it. Discovery
//! ([`super::terms`]) probes exactly these values instead of guessing.
//!
//! A field "compared with literals only" is used solely as
//! `context.f <op> <literal>` (`<`, `<=`, `>`, `>=`, `==`, `!=`, `like`,
//! `isInRange(ip(..))`): a decision then changes only where the field
//! crosses one of those literals. Any other use (arithmetic, a comparison
//! with another attribute, a method such as `toTime()`) makes it opaque.

use cedar_policy::Policy;
use serde_json::Value;
use std::collections::BTreeSet;

/// How the policies use one context field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldUse<T: Ord> {
    /// Some policy reads it (or asks `context has` it).
    pub read: bool,
    /// Literals it is compared with.
    pub literals: BTreeSet<T>,
    /// Some policy uses it other than in a comparison with a literal.
    pub opaque: bool,
}

impl<T: Ord> FieldUse<T> {
    fn merge(&mut self, other: Self) {
        self.read |= other.read;
        self.opaque |= other.opaque;
        self.literals.extend(other.literals);
    }
}

/// What one policy (or, merged, a set of policies) reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Reads {
    /// `context.duration_seconds`.
    pub duration: FieldUse<i64>,
    /// `context.hour`.
    pub hour: FieldUse<i64>,
    /// `context.weekday`.
    pub weekday: FieldUse<String>,
    /// `context.now`: the datetime literals it is compared with.
    pub now: FieldUse<String>,
    /// `context.source_ip`: the ranges it is checked against.
    pub source_ip: FieldUse<String>,
    /// `context.ticket`: literals, and `like` patterns with `*` kept.
    pub ticket: FieldUse<String>,
    /// `context.reason`.
    pub reason: FieldUse<String>,
    /// `context.mfa`.
    pub mfa: bool,
    /// A condition reads the role's name or compares the role itself, so
    /// two roles with equal tags, account, path and maximum session may
    /// still be decided differently.
    pub role_identity: bool,
    /// The role tags conditions read (`hasTag`/`getTag` with a literal key).
    pub role_tags: BTreeSet<String>,
    /// A condition reads a role tag whose key is not a literal.
    pub role_tags_opaque: bool,
    /// `resource.account` is read.
    pub role_account: bool,
    /// `resource.path` is read.
    pub role_path: bool,
    /// `resource.max_session_seconds` is read.
    pub role_max_session: bool,
}

impl Reads {
    /// What `policy`'s conditions read. A policy whose JSON form cannot be
    /// produced is taken to read everything, opaquely.
    pub(crate) fn of(policy: &Policy) -> Self {
        let mut reads = Self::default();
        match policy.to_json() {
            Ok(json) => {
                for condition in json["conditions"].as_array().into_iter().flatten() {
                    reads.walk(&condition["body"]);
                }
            }
            Err(_) => reads.everything(),
        }
        reads
    }

    /// Merges `other` into `self`.
    pub(crate) fn merge(&mut self, other: Self) {
        self.duration.merge(other.duration);
        self.hour.merge(other.hour);
        self.weekday.merge(other.weekday);
        self.now.merge(other.now);
        self.source_ip.merge(other.source_ip);
        self.ticket.merge(other.ticket);
        self.reason.merge(other.reason);
        self.mfa |= other.mfa;
        self.role_identity |= other.role_identity;
        self.role_tags.extend(other.role_tags);
        self.role_tags_opaque |= other.role_tags_opaque;
        self.role_account |= other.role_account;
        self.role_path |= other.role_path;
        self.role_max_session |= other.role_max_session;
    }

    fn everything(&mut self) {
        for f in [
            "duration_seconds",
            "hour",
            "weekday",
            "now",
            "source_ip",
            "ticket",
            "reason",
        ] {
            self.read_field(f, true);
        }
        self.mfa = true;
        self.role_identity = true;
        self.role_tags_opaque = true;
        self.role_account = true;
        self.role_path = true;
        self.role_max_session = true;
    }

    /// Marks context field `field` read (opaquely when `opaque`).
    fn read_field(&mut self, field: &str, opaque: bool) {
        let mark = |read: &mut bool, o: &mut bool| {
            *read = true;
            *o |= opaque;
        };
        match field {
            "duration_seconds" => mark(&mut self.duration.read, &mut self.duration.opaque),
            "hour" => mark(&mut self.hour.read, &mut self.hour.opaque),
            "weekday" => mark(&mut self.weekday.read, &mut self.weekday.opaque),
            "now" => mark(&mut self.now.read, &mut self.now.opaque),
            "source_ip" => mark(&mut self.source_ip.read, &mut self.source_ip.opaque),
            "ticket" => mark(&mut self.ticket.read, &mut self.ticket.opaque),
            "reason" => mark(&mut self.reason.read, &mut self.reason.opaque),
            "mfa" => self.mfa = true,
            _ => {}
        }
    }

    /// Records `context.field <op> literal`; false when `literal` is not a
    /// literal this field is compared with.
    fn literal(&mut self, field: &str, literal: &Value) -> bool {
        let long = literal["Value"].as_i64();
        let text = literal["Value"].as_str().map(str::to_owned);
        let extension = |name: &str| {
            literal[name][0]["Value"]
                .as_str()
                .filter(|_| literal.as_object().is_some_and(|o| o.len() == 1))
                .map(str::to_owned)
        };
        let recorded = match field {
            "duration_seconds" => long.map(|v| self.duration.literals.insert(v)),
            "hour" => long.map(|v| self.hour.literals.insert(v)),
            "weekday" => text.map(|v| self.weekday.literals.insert(v)),
            "ticket" => text.map(|v| self.ticket.literals.insert(v)),
            "reason" => text.map(|v| self.reason.literals.insert(v)),
            "now" => extension("datetime").map(|v| self.now.literals.insert(v)),
            _ => None,
        };
        if recorded.is_some() {
            self.read_field(field, false);
        }
        recorded.is_some()
    }

    fn walk(&mut self, v: &Value) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| self.walk(i)),
            Value::Object(map) if map.len() == 1 => {
                let Some((op, body)) = map.iter().next() else {
                    return;
                };
                self.node(op, body);
            }
            Value::Object(map) => map.values().for_each(|i| self.walk(i)),
            _ => {}
        }
    }

    fn node(&mut self, op: &str, body: &Value) {
        match op {
            "<" | "<=" | ">" | ">=" | "==" | "!=" => {
                let (left, right) = (&body["left"], &body["right"]);
                let done = match (context_field(left), context_field(right)) {
                    (Some(f), _) if self.literal(f, right) => true,
                    (_, Some(f)) if self.literal(f, left) => true,
                    _ => false,
                };
                if !done {
                    self.walk(left);
                    self.walk(right);
                }
            }
            "like" => match context_field(&body["left"]) {
                Some(f @ ("ticket" | "reason")) => {
                    let pattern: String = body["pattern"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| match p {
                            Value::String(w) if w == "Wildcard" => "*".to_owned(),
                            other => other["Literal"].as_str().unwrap_or("").to_owned(),
                        })
                        .collect();
                    let field = if f == "ticket" {
                        &mut self.ticket
                    } else {
                        &mut self.reason
                    };
                    field.read = true;
                    field.literals.insert(pattern);
                }
                _ => self.walk(&body["left"]),
            },
            "isInRange" => {
                let args = body.as_array().map(Vec::as_slice).unwrap_or_default();
                match args {
                    [subject, range] if context_field(subject) == Some("source_ip") => {
                        match range["ip"][0]["Value"].as_str() {
                            Some(r) => {
                                self.source_ip.read = true;
                                self.source_ip.literals.insert(r.to_owned());
                            }
                            None => {
                                self.read_field("source_ip", true);
                                self.walk(range);
                            }
                        }
                    }
                    _ => self.walk(body),
                }
            }
            "." => {
                let left = &body["left"];
                let attr = body["attr"].as_str().unwrap_or("");
                match left["Var"].as_str() {
                    Some("context") => self.read_field(attr, true),
                    Some("resource") => match attr {
                        "account" => self.role_account = true,
                        "path" => self.role_path = true,
                        "max_session_seconds" => self.role_max_session = true,
                        _ => self.role_identity = true,
                    },
                    _ => self.walk(left),
                }
            }
            "has" => {
                let left = &body["left"];
                match left["Var"].as_str() {
                    Some("context") => self.read_field(body["attr"].as_str().unwrap_or(""), false),
                    Some("resource") => {}
                    _ => self.walk(left),
                }
            }
            "hasTag" | "getTag" => {
                if body["left"]["Var"].as_str() == Some("resource") {
                    match body["right"]["Value"].as_str() {
                        Some(key) => {
                            self.role_tags.insert(key.to_owned());
                        }
                        None => self.role_tags_opaque = true,
                    }
                } else {
                    self.walk(&body["left"]);
                }
                self.walk(&body["right"]);
            }
            "Var" => {
                // `resource` anywhere else: compared, passed to a function,
                // tested with `in` or `is`.
                if body.as_str() == Some("resource") {
                    self.role_identity = true;
                }
            }
            _ => self.walk(body),
        }
    }
}

/// The context field `v` reads, when it is `context.<field>`.
fn context_field(v: &Value) -> Option<&str> {
    let access = v.get(".")?;
    (access["left"]["Var"].as_str() == Some("context"))
        .then(|| access["attr"].as_str())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cedar_policy::PolicySet;

    fn reads(text: &str) -> Reads {
        let set: PolicySet = text.parse().unwrap();
        let mut all = Reads::default();
        for p in set.policies() {
            all.merge(Reads::of(p));
        }
        all
    }

    #[test]
    fn literal_comparisons_are_collected_and_other_uses_are_opaque() {
        let r = reads(
            r#"permit(principal, action, resource) when {
                 context.duration_seconds <= 7200 && 900 < context.duration_seconds &&
                 (context.hour < 7 || context.hour >= 19) && context.weekday == "saturday" &&
                 context.now < datetime("2026-01-01T00:00:00Z") &&
                 context.source_ip.isInRange(ip("10.0.0.0/8")) &&
                 context has ticket && context.ticket like "CHG-*" &&
                 resource.getTag("environment") == "production" && resource.account == "1"
               };"#,
        );
        assert_eq!(r.duration.literals, BTreeSet::from([900, 7200]));
        assert!(r.duration.read && !r.duration.opaque);
        assert_eq!(r.hour.literals, BTreeSet::from([7, 19]));
        assert!(!r.hour.opaque);
        assert_eq!(r.weekday.literals, BTreeSet::from(["saturday".into()]));
        assert_eq!(
            r.now.literals,
            BTreeSet::from(["2026-01-01T00:00:00Z".into()])
        );
        assert!(!r.now.opaque);
        assert_eq!(r.source_ip.literals, BTreeSet::from(["10.0.0.0/8".into()]));
        assert!(r.ticket.read && !r.ticket.opaque);
        assert_eq!(r.ticket.literals, BTreeSet::from(["CHG-*".into()]));
        assert!(!r.reason.read && !r.mfa && !r.role_identity);
        assert_eq!(r.role_tags, BTreeSet::from(["environment".into()]));
        assert!(r.role_account && !r.role_path && !r.role_max_session && !r.role_tags_opaque);
    }

    #[test]
    fn arithmetic_methods_and_attribute_comparisons_are_opaque() {
        let r = reads(
            r#"permit(principal, action, resource) when {
                 context.duration_seconds <= resource.max_session_seconds &&
                 context.now.toTime() < duration("7h") &&
                 context.hour + 1 > 8 && !context.mfa
               };"#,
        );
        assert!(r.duration.opaque && r.now.opaque && r.hour.opaque);
        assert!(r.mfa);
        assert!(
            !r.role_identity,
            "max_session_seconds is not the role's identity"
        );
    }

    #[test]
    fn reading_the_role_name_or_comparing_the_role_is_its_identity() {
        for text in [
            r#"permit(principal, action, resource) when { resource.name like "Prod*" };"#,
            r#"permit(principal, action, resource) when { resource == Tollgate::Role::"arn:aws:iam::111122223333:role/tollgate/X" };"#,
            r#"permit(principal, action, resource) when { resource in [Tollgate::Role::"a"] };"#,
        ] {
            assert!(reads(text).role_identity, "{text}");
        }
        let r = reads(
            r#"permit(principal, action, resource == Tollgate::Role::"arn:aws:iam::111122223333:role/tollgate/X")
               when { resource.hasTag("a") && resource.getTag("a") == principal.getTag("b") };"#,
        );
        assert!(
            !r.role_identity,
            "a role pinned in the scope is handled by slicing"
        );
    }
}

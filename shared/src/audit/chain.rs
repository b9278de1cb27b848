//! Hash chaining of a request's events: event n stores
//! `sha256(hash of event n-1 ‖ canonical event n)`, so any edit, deletion,
//! insertion or reordering is detected by [`verify`]. Each hash is also
//! signed with the audit key (an asymmetric KMS key, see `aws::kms`), so
//! someone who can write the table but cannot sign cannot rebuild a chain
//! that [`verify_signed`] accepts.

use crate::domain::{Event, EventSignature};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ParsedPublicKey, UnparsedPublicKey};
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The `prev_hash` of a request's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The KMS signing algorithm of audit signatures.
pub const SIGNING_ALGORITHM: &str = "ECDSA_SHA_256";

/// The canonical encoding of an event: its JSON with every field but `hash`
/// and `signature`,
/// object keys sorted at every level, no white space. Sorting is done here
/// rather than relied on from serde_json, whose key order depends on a
/// feature that other crates in the build switch on.
pub fn canonical(event: &Event) -> Vec<u8> {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("hash");
        map.remove("signature");
    }
    let mut out = Vec::with_capacity(512);
    write_sorted(&value, &mut out);
    out
}

fn write_sorted(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(serde_json::to_vec(key).unwrap_or_default());
                out.push(b':');
                write_sorted(&map[key], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_sorted(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend(serde_json::to_vec(scalar).unwrap_or_default()),
    }
}

/// `sha256(prev_hash ‖ canonical(event))`, hex.
pub fn hash_event(event: &Event) -> String {
    let mut h = Sha256::new();
    h.update(event.prev_hash.as_bytes());
    h.update(canonical(event));
    hex::encode(h.finalize())
}

/// What is wrong with a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// No events at all.
    #[error("the request has no audit events")]
    Empty,
    /// An event belongs to another request.
    #[error("event {seq} belongs to another request")]
    ForeignEvent {
        /// Its position.
        seq: u64,
    },
    /// A gap or reordering in sequence numbers.
    #[error(
        "event {found} found where event {expected} was expected (deleted, inserted or reordered)"
    )]
    Sequence {
        /// The expected position.
        expected: u64,
        /// What was there.
        found: u64,
    },
    /// An event does not chain from the one before.
    #[error("event {seq} does not follow from the event before it")]
    Link {
        /// Its position.
        seq: u64,
    },
    /// An event's content no longer matches its hash.
    #[error("event {seq} was altered after it was written")]
    Altered {
        /// Its position.
        seq: u64,
    },
    /// An event carries no signature (written without the audit key, or
    /// stripped).
    #[error("event {seq} is not signed")]
    Unsigned {
        /// Its position.
        seq: u64,
    },
    /// An event's signature is not the audit key's over its hash.
    #[error(
        "event {seq} is not signed by the audit key (the chain was rebuilt, or the key is another)"
    )]
    BadSignature {
        /// Its position.
        seq: u64,
    },
    /// The last event is not the one the request points to.
    #[error(
        "the chain ends at event {last_seq}, but the request records another head (events were removed or added at the end)"
    )]
    Head {
        /// The last event found.
        last_seq: u64,
    },
}

/// Checks a request's events, in stored order, against the head hash and
/// version the request item records.
pub fn verify(events: &[Event], head_hash: &str, version: u64) -> Result<(), ChainError> {
    let Some(first) = events.first() else {
        return Err(ChainError::Empty);
    };
    let mut prev = GENESIS;
    for (i, event) in events.iter().enumerate() {
        let expected = i as u64 + 1;
        if event.request_id != first.request_id {
            return Err(ChainError::ForeignEvent { seq: event.seq });
        }
        if event.seq != expected {
            return Err(ChainError::Sequence {
                expected,
                found: event.seq,
            });
        }
        if event.prev_hash != prev {
            return Err(ChainError::Link { seq: event.seq });
        }
        if hash_event(event) != event.hash {
            return Err(ChainError::Altered { seq: event.seq });
        }
        prev = &event.hash;
    }
    let last = events.len() as u64;
    if prev != head_hash || last != version {
        return Err(ChainError::Head { last_seq: last });
    }
    Ok(())
}

/// The bytes an event's signature covers: its hash, decoded (32 bytes).
/// They are sent to KMS as a `RAW` message, so KMS signs their sha256, and
/// [`AuditKey::verifies`] checks the same (see README: the emulator signs
/// `DIGEST` messages as `RAW` ones, so `RAW` is what behaves alike in both).
pub fn signed_message(event_hash: &str) -> Option<Vec<u8>> {
    hex::decode(event_hash).ok().filter(|b| b.len() == 32)
}

/// Why a public key is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an ECC_NIST_P256 public key: {0}")]
pub struct KeyError(pub String);

/// The audit key's public half, which signatures are checked against.
#[derive(Debug)]
pub struct AuditKey {
    key: ParsedPublicKey,
}

impl AuditKey {
    /// From a DER `SubjectPublicKeyInfo`, as KMS `GetPublicKey` returns it.
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der)
            .parse()
            .map(|key| Self { key })
            .map_err(|e| KeyError(e.to_string()))
    }

    /// From a PEM `PUBLIC KEY` block (the DER above, as `openssl` and
    /// `tollgate audit verify --public-key` take it).
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let block = pem::parse(text).map_err(|e| KeyError(e.to_string()))?;
        if block.tag() != "PUBLIC KEY" {
            return Err(KeyError(format!(
                "the PEM block is `{}`, not `PUBLIC KEY`",
                block.tag()
            )));
        }
        Self::from_der(block.contents())
    }

    /// Whether `signature` is this key's over `event_hash`.
    pub fn verifies(&self, event_hash: &str, signature: &EventSignature) -> bool {
        let (Some(message), Ok(sig)) = (
            signed_message(event_hash),
            base64::engine::general_purpose::STANDARD.decode(&signature.value),
        ) else {
            return false;
        };
        signature.algorithm == SIGNING_ALGORITHM && self.key.verify_sig(&message, &sig).is_ok()
    }
}

/// [`verify`], and then every event's signature against the audit key.
pub fn verify_signed(
    events: &[Event],
    head_hash: &str,
    version: u64,
    key: &AuditKey,
) -> Result<(), ChainError> {
    verify(events, head_hash, version)?;
    for event in events {
        match &event.signature {
            None => return Err(ChainError::Unsigned { seq: event.seq }),
            Some(sig) if !key.verifies(&event.hash, sig) => {
                return Err(ChainError::BadSignature { seq: event.seq });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_encoding_sorts_keys_at_every_level() {
        let mut out = Vec::new();
        write_sorted(
            &serde_json::json!({"b": 1, "a": {"d": [{"z": 1, "y": 2}], "c": "x"}}),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":{"c":"x","d":[{"y":2,"z":1}]},"b":1}"#
        );
    }
}

//! Pagination tokens: the store's page key, sealed so that clients can
//! neither read nor forge it. A token is bound to the caller's subject, the
//! list scope and the status filter, and expires after a day, so nobody can
//! craft a key to page through someone else's requests.
//!
//! Format: `base64url(version ‖ nonce[16] ‖ ciphertext ‖ tag[32])`, where the
//! plaintext is `{"exp":…,"k":<page key>}`, the ciphertext is the plaintext
//! XOR an HMAC-SHA256 keystream (`HMAC(k_enc, nonce ‖ counter)`), and the tag
//! is `HMAC(k_mac, "tollgate-page" ‖ binding ‖ version ‖ nonce ‖ ciphertext)`
//! (encrypt-then-MAC). Both keys are derived from one master key: the
//! settings secret's `pagination_key` deployed, `TOLLGATE_PAGINATION_KEY`
//! locally, or random per process when neither is set (tokens then do not
//! survive a restart, and do not work across Lambda instances).

use super::crypto::{hmac_sha256, hmac_sha256_verify};
use crate::BrokerError;
use crate::domain::Timestamp;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

const VERSION: u8 = 1;
const NONCE: usize = 16;
const TAG: usize = 32;
/// Tokens longer than this are refused unread.
pub const MAX_TOKEN_CHARS: usize = 4096;
/// How long a token stays usable, in seconds.
pub const TOKEN_LIFETIME_SECONDS: i64 = 24 * 3600;

/// What a token is bound to: who listed, and which list.
#[derive(Debug, Clone, Copy)]
pub struct PageBinding<'a> {
    /// The caller's subject.
    pub sub: &'a str,
    /// `mine`, `reviewable` or `revocable`.
    pub scope: &'a str,
    /// The status filter, if any.
    pub status: Option<&'a str>,
}

impl PageBinding<'_> {
    fn bytes(&self) -> Vec<u8> {
        // Length-prefixed, so no two bindings encode alike.
        let mut out = Vec::new();
        for part in [self.sub, self.scope, self.status.unwrap_or("\u{0}")] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

/// Seals and opens pagination tokens. Cheap to clone.
#[derive(Clone)]
pub struct PageSealer {
    keys: Arc<Keys>,
}

struct Keys {
    enc: [u8; 32],
    mac: [u8; 32],
}

impl std::fmt::Debug for PageSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageSealer([redacted])")
    }
}

impl PageSealer {
    /// Derives the sealing keys from a master secret.
    pub fn new(master: &[u8]) -> Self {
        Self {
            keys: Arc::new(Keys {
                enc: hmac_sha256(master, &[b"tollgate-page-enc"]),
                mac: hmac_sha256(master, &[b"tollgate-page-mac"]),
            }),
        }
    }

    /// A sealer with a random key, for one process.
    pub fn random() -> Self {
        Self::new(&rand::random::<[u8; 32]>())
    }

    /// Seals `key` for `binding`, usable until a day after `now`.
    pub fn seal<T: Serialize>(&self, binding: PageBinding<'_>, key: &T, now: Timestamp) -> String {
        let plain = serde_json::json!({ "exp": now.plus(TOKEN_LIFETIME_SECONDS).unix(), "k": key })
            .to_string()
            .into_bytes();
        let nonce: [u8; NONCE] = rand::random();
        let cipher = self.keystream_xor(&nonce, &plain);
        let tag = self.tag(binding, &nonce, &cipher);
        let mut out = Vec::with_capacity(1 + NONCE + cipher.len() + TAG);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&cipher);
        out.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens a token sealed for `binding`; anything else is a 400
    /// `invalid_page_token`.
    pub fn open<T: DeserializeOwned>(
        &self,
        binding: PageBinding<'_>,
        token: &str,
        now: Timestamp,
    ) -> Result<T, BrokerError> {
        let invalid = || BrokerError::InvalidInput {
            code: "invalid_page_token",
            message: "`next_token` is not a token this server issued for this list".into(),
        };
        if token.len() > MAX_TOKEN_CHARS {
            return Err(invalid());
        }
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        if raw.len() < 1 + NONCE + TAG || raw[0] != VERSION {
            return Err(invalid());
        }
        let (body, tag) = raw.split_at(raw.len() - TAG);
        let (nonce, cipher) = body[1..].split_at(NONCE);
        let bound = binding.bytes();
        // INVARIANT: nothing of the token is used before its tag checks out.
        if !hmac_sha256_verify(
            &self.keys.mac,
            &[b"tollgate-page", &bound, &[VERSION], nonce, cipher],
            tag,
        ) {
            return Err(invalid());
        }
        let plain = self.keystream_xor(nonce, cipher);
        #[derive(serde::Deserialize)]
        struct Sealed<T> {
            exp: i64,
            k: T,
        }
        let sealed: Sealed<T> = serde_json::from_slice(&plain).map_err(|_| invalid())?;
        if now.unix() > sealed.exp {
            return Err(BrokerError::InvalidInput {
                code: "invalid_page_token",
                message: "`next_token` has expired; list again from the start".into(),
            });
        }
        Ok(sealed.k)
    }

    fn tag(&self, binding: PageBinding<'_>, nonce: &[u8], cipher: &[u8]) -> [u8; TAG] {
        hmac_sha256(
            &self.keys.mac,
            &[
                b"tollgate-page",
                &binding.bytes(),
                &[VERSION],
                nonce,
                cipher,
            ],
        )
    }

    fn keystream_xor(&self, nonce: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len());
        for (counter, chunk) in data.chunks(32).enumerate() {
            let block = hmac_sha256(&self.keys.enc, &[nonce, &(counter as u32).to_be_bytes()]);
            out.extend(chunk.iter().zip(block).map(|(d, k)| d ^ k));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn key() -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "pk".to_string(),
                "REQ#01J0000000000000000000000A".to_string(),
            ),
            ("gsi1pk".to_string(), "USER#alice".to_string()),
        ])
    }

    fn alice() -> PageBinding<'static> {
        PageBinding {
            sub: "alice",
            scope: "mine",
            status: None,
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_unix(1_800_000_000)
    }

    #[test]
    fn a_token_opens_for_the_same_caller_and_list() {
        let s = PageSealer::random();
        let token = s.seal(alice(), &key(), now());
        let back: BTreeMap<String, String> = s.open(alice(), &token, now().plus(60)).unwrap();
        assert_eq!(back, key());
    }

    #[test]
    fn a_token_is_opaque() {
        let s = PageSealer::random();
        let token = s.seal(alice(), &key(), now());
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains("alice") && !text.contains("REQ#"), "{text}");
        // Fresh nonce each time: equal keys give different tokens.
        assert_ne!(token, s.seal(alice(), &key(), now()));
    }

    #[test]
    fn a_token_does_not_open_for_another_caller_scope_status_or_server() {
        let s = PageSealer::new(b"master key one");
        let token = s.seal(alice(), &key(), now());
        let others = [
            PageBinding {
                sub: "bob",
                ..alice()
            },
            PageBinding {
                scope: "reviewable",
                ..alice()
            },
            PageBinding {
                status: Some("active"),
                ..alice()
            },
        ];
        for b in others {
            let e = s
                .open::<BTreeMap<String, String>>(b, &token, now())
                .unwrap_err();
            assert_eq!(e.code(), "invalid_page_token", "{b:?}");
        }
        let other_server = PageSealer::new(b"master key two");
        assert!(
            other_server
                .open::<BTreeMap<String, String>>(alice(), &token, now())
                .is_err()
        );
        assert!(
            PageSealer::new(b"master key one")
                .open::<BTreeMap<String, String>>(alice(), &token, now())
                .is_ok()
        );
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let s = PageSealer::random();
        let token = s.seal(alice(), &key(), now());
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 0..raw.len() {
            for bit in [0x01u8, 0x80] {
                let mut t = raw.clone();
                t[i] ^= bit;
                let forged = URL_SAFE_NO_PAD.encode(&t);
                assert!(
                    s.open::<BTreeMap<String, String>>(alice(), &forged, now())
                        .is_err(),
                    "byte {i} bit {bit:#x}"
                );
            }
        }
        let truncated = URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 1]);
        assert!(
            s.open::<BTreeMap<String, String>>(alice(), &truncated, now())
                .is_err()
        );
    }

    #[test]
    fn junk_and_expired_tokens_are_refused() {
        let s = PageSealer::random();
        for junk in ["", "abc", "!!!!", &"A".repeat(MAX_TOKEN_CHARS + 1)] {
            assert!(
                s.open::<BTreeMap<String, String>>(alice(), junk, now())
                    .is_err()
            );
        }
        let token = s.seal(alice(), &key(), now());
        let e = s
            .open::<BTreeMap<String, String>>(
                alice(),
                &token,
                now().plus(TOKEN_LIFETIME_SECONDS + 1),
            )
            .unwrap_err();
        assert!(e.to_string().contains("expired"));
    }
}

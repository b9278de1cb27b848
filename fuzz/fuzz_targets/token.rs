//! The local JWT verifier against arbitrary bearer tokens, forged signatures
//! (random, wrong secret, public key as HMAC secret) and properly signed
//! tokens with arbitrary header and claims: never a panic, never accepts a
//! forgery, accepts signed tokens only with valid claims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_fuzz::oracles;

fuzz_target!(|data: &[u8]| oracles::run_token(data));

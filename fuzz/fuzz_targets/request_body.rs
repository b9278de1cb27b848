//! Arbitrary bytes as the body of create, approve, deny/revoke and the
//! field-less routes, and as a query string: never a panic; accepted bodies
//! say exactly what was parsed; refusals are clean 400s.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_fuzz::oracles;

fuzz_target!(|data: &[u8]| oracles::run_request_body(data));

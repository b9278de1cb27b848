//! Arbitrary bytes decoded as an audit event, a list of events and a stored
//! request: no panic, deterministic canonical encoding, and `chain::verify`
//! detects edits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_fuzz::oracles;

fuzz_target!(|data: &[u8]| oracles::run_audit_event(data));

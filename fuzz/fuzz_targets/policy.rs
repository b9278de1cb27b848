//! Arbitrary text as Cedar policy files through `PolicyEngine::from_sources`:
//! never a panic, refusals located, loaded sets decide with default deny.
//! A NUL byte splits the input into two files (duplicate ids across files).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_fuzz::oracles;

fuzz_target!(|data: &[u8]| oracles::run_policy(data));

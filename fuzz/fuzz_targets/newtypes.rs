//! Arbitrary bytes through every validating newtype, the duration parser, the
//! session policy parser (on whatever JSON the bytes hold) and the STS
//! sanitisers, asserting their documented postconditions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_fuzz::oracles;

fuzz_target!(|data: &[u8]| oracles::run_newtypes(data));

//! Shared by the fuzz targets: the postconditions the proptest suite checks
//! (`shared/tests/oracles`), included by path so both test the same rules.

#[path = "../../shared/tests/oracles/mod.rs"]
pub mod oracles;

//! Shared helpers for the end-to-end tests: a local Lambda Runtime API for
//! the function binaries, API Gateway event builders, a real local broker
//! over the emulator, a recording proxy for what it sends to STS, a
//! webhook receiver, and an OpenID Connect issuer for the functions' tokens.

// This crate exists only to support tests: a helper that cannot do its job
// fails the test on the spot, with a message saying why.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod apigw;
pub mod aws_proxy;
pub mod broker;
pub mod issuer;
pub mod load;
pub mod revocations;
pub mod runtime_api;
pub mod sts_proxy;
pub mod webhooks;

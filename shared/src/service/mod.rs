//! Use cases, between the adapters (`aws`, `policy`) and the front doors
//! (the HTTP API, and through it the web console and the CLI): each is
//! written once, free of HTTP types; a handler only parses its input, calls
//! it and renders the result.
//!
//! - [`roles`]: discovery, the catalogued roles a caller may request and
//!   on what terms.

pub mod roles;

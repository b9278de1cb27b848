//! Tollgate: a just-in-time access broker for AWS, as a library shared by the
//! Lambda functions, the local server and the CLI.
//!
//! - [`domain`]: pure types and rules (ids, durations, the request lifecycle).
//! - [`policy`]: the Cedar schema, entity building, decisions and explanations.
//! - [`aws`]: adapters for DynamoDB, STS and IAM; no business rules.
//! - [`audit`]: the hash-chained audit trail, decision logs and metrics.
//! - [`service`]: use cases written once for every front door (discovery).
//! - [`api`]: the HTTP routes, shared by the Lambda functions and `tollgate serve`.

pub mod api;
pub mod audit;
pub mod aws;
pub mod config;
pub mod domain;
pub mod error;
pub mod policy;
pub mod service;

pub use config::Config;
pub use error::BrokerError;

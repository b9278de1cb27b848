//! The audit trail: hash-chained events per request, JSON decision log lines,
//! and CloudWatch Embedded Metric Format metrics.

pub mod chain;
pub mod log;
pub mod metrics;

pub use log::{AuditLog, Capture, Decision, Sink, Stdout};
pub use metrics::Metrics;

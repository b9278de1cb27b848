//! The audit trail: hash-chained events per request, JSON decision log lines,
//! and CloudWatch Embedded Metric Format metrics.

pub mod chain;

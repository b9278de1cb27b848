//! Adapters to AWS through the AWS SDK for Rust: the DynamoDB store, the STS
//! issuer, IAM role descriptions and revocation. No business rules live here.

//! Adapters to AWS through the AWS SDK for Rust: the DynamoDB store, target
//! accounts and their control roles, the STS issuer, IAM role descriptions,
//! the role catalogue, revocation and the policy store on S3. No business
//! rules live here.
//!
//! Every client is built from one [`SdkConfig`] loaded by [`load_sdk_config`]
//! (timeouts and the standard retry mode). SDK errors are matched on their
//! typed variants and folded into [`AwsError`] or [`StoreError`]: throttling,
//! time-outs and transport failures that outlast the SDK's retries become
//! [`BrokerError::Unavailable`].

pub mod accounts;
mod catalogue;
mod credentials;
mod dynamodb;
pub mod federation;
mod iam;
pub mod kms;
pub mod policy_store;
pub mod provision;
mod revocation;
pub mod schema;
mod sts;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use accounts::{AccountSettings, Accounts};
pub use catalogue::{
    Catalogue, CatalogueError, CatalogueReport, CatalogueSettings, MAX_DESCRIBES_PER_REFRESH,
    REFRESH_LEASE_SECONDS,
};
pub use credentials::{issue_recorded, mint, mint_credentials};
pub use dynamodb::{
    Created, Lease, LeaseState, OPEN_CAP_RETRY_SECONDS, Page, PageKey, PageRequest, RoleRevocation,
    Store, StoreError, UserLimits,
};
pub use federation::Federation;
pub use iam::RoleDirectory;
pub use kms::{AuditSigner, DEFAULT_AUDIT_KEY, ensure_audit_key};
pub use policy_store::{
    DEFAULT_POLICY_KEY, LOCAL_POLICY_BUCKET, PolicyObject, StoredVersion, ensure_bucket, s3_client,
};
pub use provision::{
    EXAMPLE_ROLES, ExampleRole, LOCAL_BROKER_ACCOUNT, LOCAL_EXTERNAL_ID, LOCAL_PRODUCTION_ACCOUNT,
    LOCAL_STAGING_ACCOUNT, Provisioned, account_admin, create_role, create_table, example_role,
    local_environment, provision,
};
pub use revocation::{
    Confirmation, DEFAULT_LEASE, FALLBACK_SID_PREFIX, POLICY_NAME, ROLE_POLICY_BUDGET_CHARS,
    Reconciled, Render, RevocationError, RevocationOutcome, Revoker,
};
pub use sts::{CredentialPlan, IssuedCredentials, Issuer, SessionTag};

use crate::BrokerError;
use crate::domain::ValidationError;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::time::Duration;

/// A boxed error carried for the logs.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Time allowed to open a connection to AWS.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Time allowed for a whole operation, retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per operation in the SDK's standard retry mode.
pub const MAX_ATTEMPTS: u32 = 3;

/// The loader every Tollgate process starts from: the default provider chain
/// (environment, profile, container or Lambda credentials; `AWS_ENDPOINT_URL`
/// redirects every client), the latest behaviour version, connect and
/// operation timeouts, and the standard retry mode.
pub fn sdk_config_loader() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
}

/// Loads the one [`SdkConfig`] a process builds all its clients from. Call it
/// once per cold start.
pub async fn load_sdk_config() -> SdkConfig {
    sdk_config_loader().load().await
}

/// A failure talking to IAM or STS, or a value the issuer refused before
/// calling them.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// Throttling, time-outs or transport errors that outlasted the SDK's
    /// retries: the caller may try again shortly.
    #[error("AWS is unavailable")]
    Unavailable(#[source] BoxError),
    /// AWS refused the call for a reason retrying will not fix (missing
    /// permission, malformed input the broker should never send).
    #[error("AWS refused `{operation}`")]
    Rejected {
        /// The operation that failed.
        operation: &'static str,
        /// The SDK error, for the logs.
        #[source]
        source: BoxError,
    },
    /// The broker refused the value itself, before calling AWS (checks the
    /// local emulator does not make).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// AWS returned something the broker cannot read (a role policy edited by
    /// hand into invalid JSON, a response without a required field).
    #[error("unexpected data from AWS: {0}")]
    Corrupt(String),
}

impl From<AwsError> for BrokerError {
    fn from(e: AwsError) -> Self {
        match e {
            AwsError::Unavailable(source) => Self::Unavailable {
                message: "AWS is unavailable; retry shortly".into(),
                source: Some(source),
            },
            AwsError::Invalid(v) => v.into(),
            other @ (AwsError::Rejected { .. } | AwsError::Corrupt(_)) => Self::Internal {
                detail: error_chain(&other),
            },
        }
    }
}

/// `error: cause: cause` on one line, for logs.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// Error codes AWS uses for throttling (as the SDK's retry classifier lists
/// them). Codes are part of the typed error metadata, never message text.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
];

/// Whether an SDK failure is transient: no response in time, no connection,
/// an unreadable response, a 5xx or 429, or a throttling error code.
pub(crate) fn is_transient<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            status >= 500
                || status == 429
                || ctx
                    .err()
                    .code()
                    .is_some_and(|code| THROTTLING_CODES.contains(&code))
        }
        _ => false,
    }
}

/// Folds an SDK failure that has no meaning of its own for the caller into
/// [`AwsError::Unavailable`] (transient) or [`AwsError::Rejected`].
pub(crate) fn aws_failure<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if is_transient(&err) {
        AwsError::Unavailable(Box::new(err))
    } else {
        AwsError::Rejected {
            operation,
            source: Box::new(err),
        }
    }
}

/// Decodes RFC 3986 percent-encoding, as IAM returns policy documents.
pub(crate) fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex(*hi).zip(hex(*lo)).map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

//! The audit key: an asymmetric KMS key (`ECC_NIST_P256`, `SIGN_VERIFY`)
//! that signs every event hash before the transaction that writes the event
//! ([`AuditSigner`], used by the store), and whose public key verifies them
//! ([`public_key`]). Locally, [`ensure_audit_key`] creates it on the emulator.

use super::{AwsError, aws_failure};
use crate::audit::chain::{self, AuditKey, SIGNING_ALGORITHM};
use crate::domain::EventSignature;
use aws_sdk_kms::Client;
use aws_sdk_kms::error::SdkError;
use aws_sdk_kms::operation::create_alias::CreateAliasError;
use aws_sdk_kms::operation::describe_key::DescribeKeyError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use base64::Engine as _;
use std::sync::Arc;

/// The audit key's name when none is configured: what `tollgate local
/// provision` creates (`TOLLGATE_AUDIT_KEY_ID`).
pub const DEFAULT_AUDIT_KEY: &str = "alias/tollgate-audit";

/// Signs event hashes with the audit key. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditSigner {
    client: Client,
    key_id: Arc<str>,
}

impl AuditSigner {
    /// A signer using key `key_id` (id, ARN or `alias/...`).
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: Arc::from(key_id.into()),
        }
    }

    /// The key as configured.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// One `Sign` call over the event hash (`RAW`: KMS signs sha256 of the
    /// 32 hash bytes; see [`chain::signed_message`]).
    #[tracing::instrument(skip_all)]
    pub async fn sign(&self, event_hash: &str) -> Result<EventSignature, AwsError> {
        let message = chain::signed_message(event_hash)
            .ok_or_else(|| AwsError::Corrupt(format!("`{event_hash}` is not an event hash")))?;
        let out = self
            .client
            .sign()
            .key_id(self.key_id.as_ref())
            .message(Blob::new(message))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| aws_failure("Sign", e))?;
        let (Some(signature), Some(key_id)) = (out.signature(), out.key_id()) else {
            return Err(AwsError::Corrupt(
                "Sign returned no signature or key".into(),
            ));
        };
        Ok(EventSignature {
            key_id: key_id.to_owned(),
            algorithm: SIGNING_ALGORITHM.to_owned(),
            value: base64::engine::general_purpose::STANDARD.encode(signature.as_ref()),
        })
    }
}

/// The audit key's public key, from one `GetPublicKey` call, checked to be
/// a P-256 signing key.
pub async fn public_key(client: &Client, key_id: &str) -> Result<AuditKey, AwsError> {
    let out = client
        .get_public_key()
        .key_id(key_id)
        .send()
        .await
        .map_err(|e| aws_failure("GetPublicKey", e))?;
    // `KeySpec`, or its deprecated twin `CustomerMasterKeySpec` (all the
    // emulator returns).
    #[allow(deprecated)]
    let p256 = out.key_spec() == Some(&KeySpec::EccNistP256)
        || out.customer_master_key_spec()
            == Some(&aws_sdk_kms::types::CustomerMasterKeySpec::EccNistP256);
    if !p256 || out.key_usage() != Some(&KeyUsageType::SignVerify) {
        return Err(AwsError::Corrupt(format!(
            "key `{key_id}` is not an ECC_NIST_P256 signing key"
        )));
    }
    let der = out
        .public_key()
        .ok_or_else(|| AwsError::Corrupt("GetPublicKey returned no key".into()))?;
    AuditKey::from_der(der.as_ref()).map_err(|e| AwsError::Corrupt(e.to_string()))
}

/// Creates the audit key under `alias` unless the alias exists; returns the
/// key's ARN. For the local emulator (`tollgate local provision`) and
/// tests; deployed, the template creates the key with its key policy.
pub async fn ensure_audit_key(client: &Client, alias: &str) -> Result<String, AwsError> {
    if let Some(arn) = describe(client, alias).await? {
        return Ok(arn);
    }
    let created = client
        .create_key()
        .key_spec(KeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .description("Tollgate audit key: signs every audit event hash")
        .send()
        .await
        .map_err(|e| aws_failure("CreateKey", e))?;
    let key_id = created
        .key_metadata()
        .map(|m| m.key_id().to_owned())
        .ok_or_else(|| AwsError::Corrupt("CreateKey returned no key".into()))?;
    match client
        .create_alias()
        .alias_name(alias)
        .target_key_id(&key_id)
        .send()
        .await
    {
        Ok(_) => {}
        // Another process created it meanwhile: use theirs.
        Err(SdkError::ServiceError(ctx))
            if matches!(ctx.err(), CreateAliasError::AlreadyExistsException(_)) => {}
        Err(e) => return Err(aws_failure("CreateAlias", e)),
    }
    describe(client, alias)
        .await?
        .ok_or_else(|| AwsError::Corrupt(format!("alias `{alias}` vanished after it was created")))
}

async fn describe(client: &Client, key_id: &str) -> Result<Option<String>, AwsError> {
    match client.describe_key().key_id(key_id).send().await {
        Ok(out) => Ok(out.key_metadata().and_then(|m| m.arn()).map(str::to_owned)),
        Err(SdkError::ServiceError(ctx))
            if matches!(ctx.err(), DescribeKeyError::NotFoundException(_)) =>
        {
            Ok(None)
        }
        Err(e) => Err(aws_failure("DescribeKey", e)),
    }
}

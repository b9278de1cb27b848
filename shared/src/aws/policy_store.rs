//! The policy store on S3: one object in a versioned bucket holding the
//! whole policy set (`policy::store::PolicyDocument`). Functions read it
//! with a conditional GET (`If-None-Match`: an unchanged set costs one 304);
//! `tollgate policy publish` writes a new version; `policy status` and
//! `policy diff` read the newest one.

use super::{AwsError, aws_failure};
use crate::policy::store::{Fetched, MAX_DOCUMENT_BYTES};
use aws_config::SdkConfig;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The bucket `tollgate local provision` creates on the emulator.
pub const LOCAL_POLICY_BUCKET: &str = "tollgate-policies";
/// The object key when none is configured.
pub const DEFAULT_POLICY_KEY: &str = "policies.json";
/// Object metadata holding the document's sha256 (`x-amz-meta-tollgate-digest`).
const DIGEST_METADATA: &str = "tollgate-digest";

/// An S3 client for the broker's one `SdkConfig`. Buckets are addressed
/// path-style when an endpoint URL is set (the emulator: `bucket.127.0.0.1`
/// does not resolve), virtual-hosted otherwise.
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// The newest stored version, as `policy status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    /// The object's version id.
    pub version_id: String,
    /// The document's sha256, as `publish` recorded it.
    pub digest: Option<String>,
    /// When it was written (RFC 3339).
    pub last_modified: Option<String>,
}

/// The one object that holds the policy set. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PolicyObject {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
}

impl PolicyObject {
    /// The object `key` in `bucket`.
    pub fn new(client: aws_sdk_s3::Client, bucket: String, key: String) -> Self {
        Self {
            client,
            bucket,
            key,
        }
    }

    /// `s3://bucket/key`, for messages.
    pub fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// Reads the newest version unless its ETag is still `etag`. A body over
    /// the document limit is refused without being read.
    pub async fn fetch(&self, etag: Option<&str>) -> Result<Fetched, AwsError> {
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .set_if_none_match(etag.map(str::to_owned))
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(err) => {
                if let Some(raw) = err.raw_response()
                    && raw.status().as_u16() == 304
                {
                    return Ok(Fetched::NotModified);
                }
                if super::is_transient(&err) {
                    return Err(AwsError::Unavailable(Box::new(err)));
                }
                return match err.into_service_error() {
                    GetObjectError::NoSuchKey(_) => Ok(Fetched::Missing),
                    // A delete marker answers 404 with no typed variant.
                    e if e.code() == Some("NoSuchKey") => Ok(Fetched::Missing),
                    e => Err(AwsError::Rejected {
                        operation: "s3:GetObject",
                        source: Box::new(e),
                    }),
                };
            }
        };
        if out
            .content_length()
            .is_some_and(|n| usize::try_from(n).map_or(true, |n| n > MAX_DOCUMENT_BYTES))
        {
            return Err(AwsError::Corrupt(format!(
                "the policy set object is larger than {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        let version_id = out.version_id().map(str::to_owned);
        let etag = out.e_tag().map(str::to_owned);
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| AwsError::Unavailable(Box::new(e)))?
            .to_vec();
        Ok(Fetched::Object {
            version_id,
            etag,
            body,
        })
    }

    /// Writes `body` (a validated document whose sha256 is `digest`) as the
    /// newest version; returns its version id.
    pub async fn publish(&self, body: Vec<u8>, digest: &str) -> Result<String, AwsError> {
        let out = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .content_type("application/json")
            .metadata(DIGEST_METADATA, digest)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| aws_failure("s3:PutObject", e))?;
        out.version_id()
            .filter(|v| !v.is_empty() && *v != "null")
            .map(str::to_owned)
            .ok_or_else(|| {
                AwsError::Corrupt(format!(
                    "{} is not versioned: enable versioning on the bucket, so functions can \
                     name the set they use and a bad publish can be rolled back",
                    self.location()
                ))
            })
    }

    /// The newest version's id and digest, without its content (`None`:
    /// nothing published yet).
    pub async fn head(&self) -> Result<Option<StoredVersion>, AwsError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(StoredVersion {
                version_id: out.version_id().unwrap_or("null").to_owned(),
                digest: out.metadata().and_then(|m| m.get(DIGEST_METADATA)).cloned(),
                last_modified: out
                    .last_modified()
                    .and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok()),
            })),
            Err(err) => match err.into_service_error() {
                HeadObjectError::NotFound(_) => Ok(None),
                e => Err(AwsError::Rejected {
                    operation: "s3:HeadObject",
                    source: Box::new(e),
                }),
            },
        }
    }
}

/// Creates `bucket` with versioning, for `tollgate local provision` (the
/// template creates the deployed one). An existing bucket is kept.
pub async fn ensure_bucket(client: &aws_sdk_s3::Client, bucket: &str) -> Result<(), AwsError> {
    match client.create_bucket().bucket(bucket).send().await {
        Ok(_) => {}
        Err(err) => {
            let service = err.as_service_error();
            let exists = service.is_some_and(|e| {
                e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists()
            });
            if !exists {
                return Err(aws_failure("s3:CreateBucket", err));
            }
        }
    }
    client
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(|e| aws_failure("s3:PutBucketVersioning", e))?;
    Ok(())
}

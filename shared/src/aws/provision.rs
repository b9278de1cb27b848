//! Provisioning for local use: the one table exactly as the IaC defines it
//! (keys, indexes, TTL, stream, encryption, point-in-time recovery) and the
//! example target roles, with the tags the example Cedar policies read.
//! Idempotent: what exists already is left as it is (tags are re-applied).

use super::schema::{
    GSI_BY_REQUESTER, GSI_OPEN_BY_DUE, GSI_PENDING_BY_ROLE, GSI1_PK, GSI1_SK, GSI2_PK, GSI2_SK,
    GSI3_PK, GSI3_SK, PK, SK, TTL,
};
use super::{AwsError, aws_failure};
use crate::domain::RoleArn;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    PointInTimeRecoverySpecification, Projection, ProjectionType, ScalarAttributeType,
    SseSpecification, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_iam::operation::create_role::CreateRoleError;
use aws_sdk_iam::types::Tag;

/// One example target role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExampleRole {
    /// IAM path.
    pub path: &'static str,
    /// Role name.
    pub name: &'static str,
    /// Maximum session duration, seconds.
    pub max_session_seconds: i32,
    /// IAM tags.
    pub tags: &'static [(&'static str, &'static str)],
}

/// The example roles (in the emulator's account 123456789012); the example
/// Cedar policies are written against these names and tags. Every one is
/// tagged `tollgate:managed=true`, as `infra/target-role.yaml` tags them: the
/// deployed functions may assume and revoke only roles with that tag.
pub const EXAMPLE_ROLES: &[ExampleRole] = &[
    ExampleRole {
        path: "/tollgate/",
        name: "StagingDeveloper",
        max_session_seconds: 3600,
        tags: &[("environment", "staging"), ("tollgate:managed", "true")],
    },
    ExampleRole {
        path: "/tollgate/",
        name: "ProductionOperator",
        max_session_seconds: 7200,
        tags: &[
            ("environment", "production"),
            ("tollgate:max-duration", "2h"),
            ("tollgate:managed", "true"),
        ],
    },
    ExampleRole {
        path: "/tollgate/",
        name: "ProductionBreakGlass",
        max_session_seconds: 3600,
        tags: &[
            ("environment", "production"),
            ("tollgate:approvals", "2"),
            ("tollgate:managed", "true"),
        ],
    },
    ExampleRole {
        path: "/tollgate/",
        name: "DataAnalyst",
        max_session_seconds: 3600,
        tags: &[
            ("environment", "production"),
            ("data-classification", "confidential"),
            ("owner-team", "data"),
            ("tollgate:managed", "true"),
        ],
    },
];

/// What [`provision`] created or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The table name.
    pub table: String,
    /// Whether the table was created now (false: it existed).
    pub table_created: bool,
    /// The example roles' ARNs.
    pub roles: Vec<RoleArn>,
}

/// Creates the table and the example roles; safe to run again.
pub async fn provision(
    dynamodb: &aws_sdk_dynamodb::Client,
    iam: &aws_sdk_iam::Client,
    table: &str,
) -> Result<Provisioned, AwsError> {
    let table_created = create_table(dynamodb, table).await?;
    let mut roles = Vec::with_capacity(EXAMPLE_ROLES.len());
    for role in EXAMPLE_ROLES {
        roles.push(
            create_role(
                iam,
                role.path,
                role.name,
                role.max_session_seconds,
                role.tags,
            )
            .await?,
        );
    }
    Ok(Provisioned {
        table: table.to_owned(),
        table_created,
        roles,
    })
}

/// Creates the table exactly as the IaC defines it and turns on TTL and
/// point-in-time recovery. Returns false when it already existed.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<bool, AwsError> {
    let bad = |e: aws_sdk_dynamodb::error::BuildError| AwsError::Corrupt(e.to_string());
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(bad)
    };
    let string_attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(bad)
    };
    let gsi = |name: &str, hash: &str, range: &str| -> Result<GlobalSecondaryIndex, AwsError> {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(hash, KeyType::Hash)?)
            .key_schema(key(range, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(bad)
    };
    let mut create = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .global_secondary_indexes(gsi(GSI_BY_REQUESTER, GSI1_PK, GSI1_SK)?)
        .global_secondary_indexes(gsi(GSI_PENDING_BY_ROLE, GSI2_PK, GSI2_SK)?)
        .global_secondary_indexes(gsi(GSI_OPEN_BY_DUE, GSI3_PK, GSI3_SK)?)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(bad)?,
        )
        .sse_specification(SseSpecification::builder().enabled(true).build());
    for name in [PK, SK, GSI1_PK, GSI1_SK, GSI2_PK, GSI2_SK, GSI3_PK, GSI3_SK] {
        create = create.attribute_definitions(string_attr(name)?);
    }
    let created = match create.send().await {
        Ok(_) => true,
        Err(SdkError::ServiceError(ctx))
            if matches!(ctx.err(), CreateTableError::ResourceInUseException(_)) =>
        {
            false
        }
        Err(e) => return Err(aws_failure("CreateTable", e)),
    };
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL)
                .build()
                .map_err(bad)?,
        )
        .send()
        .await
        .map_err(|e| aws_failure("UpdateTimeToLive", e))?;
    client
        .update_continuous_backups()
        .table_name(table)
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()
                .map_err(bad)?,
        )
        .send()
        .await
        .map_err(|e| aws_failure("UpdateContinuousBackups", e))?;
    Ok(created)
}

/// Creates (or re-tags) a target role that principals of its own account may
/// assume with session tags and a source identity.
pub async fn create_role(
    iam: &aws_sdk_iam::Client,
    path: &str,
    name: &str,
    max_session_seconds: i32,
    tags: &[(&str, &str)],
) -> Result<RoleArn, AwsError> {
    let bad = |e: aws_sdk_iam::error::BuildError| AwsError::Corrupt(e.to_string());
    let tags = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build().map_err(bad))
        .collect::<Result<Vec<_>, _>>()?;
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
        }],
    });
    let arn = match iam
        .create_role()
        .path(path)
        .role_name(name)
        .max_session_duration(max_session_seconds)
        .assume_role_policy_document(trust.to_string())
        .set_tags(Some(tags.clone()))
        .send()
        .await
    {
        Ok(out) => out.role().map(|r| r.arn().to_owned()),
        Err(aws_sdk_iam::error::SdkError::ServiceError(ctx))
            if matches!(ctx.err(), CreateRoleError::EntityAlreadyExistsException(_)) =>
        {
            iam.tag_role()
                .role_name(name)
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(|e| aws_failure("TagRole", e))?;
            let out = iam
                .get_role()
                .role_name(name)
                .send()
                .await
                .map_err(|e| aws_failure("GetRole", e))?;
            out.role().map(|r| r.arn().to_owned())
        }
        Err(e) => return Err(aws_failure("CreateRole", e)),
    };
    let arn = arn.ok_or_else(|| AwsError::Corrupt("IAM returned no role".into()))?;
    RoleArn::parse(&arn).map_err(|e| AwsError::Corrupt(e.to_string()))
}

//! Provisioning for local use: the one table exactly as the IaC defines it
//! (keys, indexes, TTL, stream, encryption, point-in-time recovery) in the
//! broker's account, and in each target account the control role and the
//! example target roles, with the tags the example Cedar policies read.
//! Idempotent: what exists already is left as it is (tags are re-applied).
//!
//! The emulator keeps accounts apart by the credentials used: credentials
//! from an AssumeRole into account B act in account B. Target accounts are
//! reached as an organisation's management account reaches member accounts,
//! through [`ORGANIZATION_ACCESS_ROLE`].

use super::accounts::assume_session;
use super::schema::{
    GSI_BY_REQUESTER, GSI_OPEN_BY_DUE, GSI_PENDING_BY_ROLE, GSI_UNREVIEWED, GSI1_PK, GSI1_SK,
    GSI2_PK, GSI2_SK, GSI3_PK, GSI3_SK, GSI4_PK, GSI4_SK, PK, SK, TTL,
};
use super::{AwsError, aws_failure};
use crate::config::{DEFAULT_CONTROL_ROLE, DEFAULT_MANAGED_ROLE_PATH};
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
use serde_json::{Value, json};

/// The broker's account in the emulator (moto's default account).
pub const LOCAL_BROKER_ACCOUNT: &str = "123456789012";
/// The local staging target account.
pub const LOCAL_STAGING_ACCOUNT: &str = "111122223333";
/// The local production target account.
pub const LOCAL_PRODUCTION_ACCOUNT: &str = "444455556666";
/// The ExternalId the local control roles require.
pub const LOCAL_EXTERNAL_ID: &str = "tollgate-local";
/// The role AWS Organizations creates in member accounts for the management
/// account; provisioning reaches the local target accounts through it.
pub const ORGANIZATION_ACCESS_ROLE: &str = "OrganizationAccountAccessRole";

/// The settings a local broker needs for the provisioned world, as
/// environment variables.
pub fn local_environment() -> Vec<(&'static str, String)> {
    vec![
        (
            "TOLLGATE_TARGET_ACCOUNTS",
            format!("{LOCAL_STAGING_ACCOUNT},{LOCAL_PRODUCTION_ACCOUNT}"),
        ),
        ("TOLLGATE_CONTROL_EXTERNAL_ID", LOCAL_EXTERNAL_ID.to_owned()),
        // Short names for the accounts: `tollgate roles`, `--role prod/...`.
        (
            "TOLLGATE_ACCOUNT_ALIASES",
            format!("staging={LOCAL_STAGING_ACCOUNT},prod={LOCAL_PRODUCTION_ACCOUNT}"),
        ),
    ]
}

/// One example target role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExampleRole {
    /// The target account it lives in.
    pub account: &'static str,
    /// IAM path.
    pub path: &'static str,
    /// Role name.
    pub name: &'static str,
    /// Maximum session duration, seconds.
    pub max_session_seconds: i32,
    /// IAM tags.
    pub tags: &'static [(&'static str, &'static str)],
}

impl ExampleRole {
    /// Its ARN.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:iam::{}:role{}{}",
            self.account, self.path, self.name
        )
    }
}

/// The example roles, in the local target accounts; the example Cedar
/// policies are written against these names and tags. Every one is tagged
/// `tollgate:managed=true`, as `infra/target-role.yaml` tags them: the
/// deployed broker may describe, assume and revoke only roles with that tag.
pub const EXAMPLE_ROLES: &[ExampleRole] = &[
    ExampleRole {
        account: LOCAL_STAGING_ACCOUNT,
        path: DEFAULT_MANAGED_ROLE_PATH,
        name: "StagingDeveloper",
        max_session_seconds: 3600,
        tags: &[("environment", "staging"), ("tollgate:managed", "true")],
    },
    ExampleRole {
        account: LOCAL_PRODUCTION_ACCOUNT,
        path: DEFAULT_MANAGED_ROLE_PATH,
        name: "ProductionOperator",
        max_session_seconds: 7200,
        tags: &[
            ("environment", "production"),
            ("tollgate:max-duration", "2h"),
            ("tollgate:managed", "true"),
        ],
    },
    ExampleRole {
        account: LOCAL_PRODUCTION_ACCOUNT,
        path: DEFAULT_MANAGED_ROLE_PATH,
        name: "ProductionBreakGlass",
        max_session_seconds: 3600,
        tags: &[
            ("environment", "production"),
            ("tollgate:approvals", "2"),
            ("tollgate:break-glass", "allowed"),
            ("tollgate:managed", "true"),
        ],
    },
    ExampleRole {
        account: LOCAL_PRODUCTION_ACCOUNT,
        path: DEFAULT_MANAGED_ROLE_PATH,
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

/// The example role named `name`.
pub fn example_role(name: &str) -> Option<&'static ExampleRole> {
    EXAMPLE_ROLES.iter().find(|r| r.name == name)
}

/// What [`provision`] created or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The table name.
    pub table: String,
    /// Whether the table was created now (false: it existed).
    pub table_created: bool,
    /// The control role of each target account.
    pub control_roles: Vec<RoleArn>,
    /// The example roles' ARNs.
    pub roles: Vec<RoleArn>,
}

/// Creates the table in the broker's account and, in each local target
/// account, the control role and that account's example roles; safe to run
/// again.
pub async fn provision(
    dynamodb: &aws_sdk_dynamodb::Client,
    iam: &aws_sdk_iam::Client,
    sts: &aws_sdk_sts::Client,
    table: &str,
) -> Result<Provisioned, AwsError> {
    let table_created = create_table(dynamodb, table).await?;
    let mut control_roles = Vec::new();
    let mut roles = Vec::with_capacity(EXAMPLE_ROLES.len());
    for account in [LOCAL_STAGING_ACCOUNT, LOCAL_PRODUCTION_ACCOUNT] {
        let admin = account_admin(iam, sts, account).await?;
        control_roles.push(create_control_role(&admin).await?);
        for role in EXAMPLE_ROLES.iter().filter(|r| r.account == account) {
            roles.push(
                create_role(
                    &admin,
                    role.path,
                    role.name,
                    role.max_session_seconds,
                    role.tags,
                )
                .await?,
            );
        }
    }
    Ok(Provisioned {
        table: table.to_owned(),
        table_created,
        control_roles,
        roles,
    })
}

/// An IAM client acting in the local target `account` as its organisation
/// access role (one AssumeRole), like `iam` otherwise.
pub async fn account_admin(
    iam: &aws_sdk_iam::Client,
    sts: &aws_sdk_sts::Client,
    account: &str,
) -> Result<aws_sdk_iam::Client, AwsError> {
    let arn = format!("arn:aws:iam::{account}:role/{ORGANIZATION_ACCESS_ROLE}");
    let (client, _) = assume_session(sts, iam.config(), &arn, "tollgate-provision", None).await?;
    Ok(client)
}

/// The control role of `infra/target-role.yaml`, as the emulator can hold
/// it: trusted by the broker's account with the local ExternalId, allowed
/// to list roles (the catalogue), read managed roles and write only their
/// `TollgateRevocations` policy.
async fn create_control_role(admin: &aws_sdk_iam::Client) -> Result<RoleArn, AwsError> {
    let (path, name) = DEFAULT_CONTROL_ROLE
        .rsplit_once('/')
        .map(|(p, n)| (format!("/{p}/"), n))
        .unwrap_or_else(|| ("/".to_owned(), DEFAULT_CONTROL_ROLE));
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "BrokerFunctions",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{LOCAL_BROKER_ACCOUNT}:root")},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {
                "sts:ExternalId": LOCAL_EXTERNAL_ID,
                "sts:RoleSessionName": super::accounts::CONTROL_SESSION_NAME,
            }},
        }],
    });
    // As `infra/target-role.yaml`'s TollgateControl: GetRole on the managed
    // path; inline-policy reads and writes only on managed roles (IAM has
    // no condition key for an inline policy's name: the broker writes only
    // TollgateRevocations, and DEPLOY.md's SCP keeps others from the rest).
    let roles = format!("arn:aws:iam::*:role{DEFAULT_MANAGED_ROLE_PATH}*");
    let permissions = json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                // The role catalogue lists roles under the managed path.
                // ListRoles has no resource-level permissions in IAM.
                "Sid": "ListRoles",
                "Effect": "Allow",
                "Action": "iam:ListRoles",
                "Resource": "*",
            },
            {
                "Sid": "DescribeManagedRoles",
                "Effect": "Allow",
                "Action": "iam:GetRole",
                "Resource": roles,
            },
            {
                "Sid": "RevocationPolicyOnManagedRoles",
                "Effect": "Allow",
                "Action": [
                    "iam:ListRolePolicies",
                    "iam:GetRolePolicy",
                    "iam:PutRolePolicy",
                    "iam:DeleteRolePolicy"
                ],
                "Resource": roles,
                "Condition": {"StringEquals": {"aws:ResourceTag/tollgate:managed": "true"}},
            },
        ],
    });
    let arn = ensure_role(admin, &path, name, 3600, &[], &trust).await?;
    admin
        .put_role_policy()
        .role_name(name)
        .policy_name("TollgateControl")
        .policy_document(permissions.to_string())
        .send()
        .await
        .map_err(|e| aws_failure("PutRolePolicy", e))?;
    Ok(arn)
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
    let indexes = [
        (GSI_BY_REQUESTER, GSI1_PK, GSI1_SK),
        (GSI_PENDING_BY_ROLE, GSI2_PK, GSI2_SK),
        (GSI_OPEN_BY_DUE, GSI3_PK, GSI3_SK),
        (GSI_UNREVIEWED, GSI4_PK, GSI4_SK),
    ];
    let mut create = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .set_global_secondary_indexes(Some(
            indexes
                .iter()
                .map(|(name, hash, range)| gsi(name, hash, range))
                .collect::<Result<Vec<_>, _>>()?,
        ))
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(bad)?,
        )
        .sse_specification(SseSpecification::builder().enabled(true).build());
    for name in [
        PK, SK, GSI1_PK, GSI1_SK, GSI2_PK, GSI2_SK, GSI3_PK, GSI3_SK, GSI4_PK, GSI4_SK,
    ] {
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
    if !created {
        // A table from an earlier version lacks the indexes added since:
        // add them (DynamoDB takes one index per update).
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| aws_failure("DescribeTable", e))?;
        let existing: Vec<String> = described
            .table()
            .map(|t| {
                t.global_secondary_indexes()
                    .iter()
                    .filter_map(|g| g.index_name().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for (name, hash, range) in indexes {
            if existing.iter().any(|e| e == name) {
                continue;
            }
            let index = gsi(name, hash, range)?;
            let create = aws_sdk_dynamodb::types::CreateGlobalSecondaryIndexAction::builder()
                .index_name(name)
                .set_key_schema(Some(index.key_schema().to_vec()))
                .set_projection(index.projection().cloned())
                .build()
                .map_err(bad)?;
            client
                .update_table()
                .table_name(table)
                .attribute_definitions(string_attr(hash)?)
                .attribute_definitions(string_attr(range)?)
                .global_secondary_index_updates(
                    aws_sdk_dynamodb::types::GlobalSecondaryIndexUpdate::builder()
                        .create(create)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| aws_failure("UpdateTable", e))?;
        }
    }
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

/// Creates (or re-tags) a target role in the account `iam` acts in,
/// trusting the local broker account, with AssumeRole, SetSourceIdentity
/// and TagSession each in a statement of its own carrying only the
/// condition keys AWS defines for that action.
pub async fn create_role(
    iam: &aws_sdk_iam::Client,
    path: &str,
    name: &str,
    max_session_seconds: i32,
    tags: &[(&str, &str)],
) -> Result<RoleArn, AwsError> {
    let broker = format!("arn:aws:iam::{LOCAL_BROKER_ACCOUNT}:root");
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AssumeAsTollgateSession",
                "Effect": "Allow",
                "Principal": {"AWS": broker},
                "Action": "sts:AssumeRole",
                "Condition": {"StringLike": {"sts:RoleSessionName": "tollgate-*"}},
            },
            {
                "Sid": "SetRequesterAsSourceIdentity",
                "Effect": "Allow",
                "Principal": {"AWS": broker},
                "Action": "sts:SetSourceIdentity",
                "Condition": {"StringLike": {"sts:SourceIdentity": "?*"}},
            },
            {
                "Sid": "TagSessionWithTollgateTags",
                "Effect": "Allow",
                "Principal": {"AWS": broker},
                "Action": "sts:TagSession",
                "Condition": {"ForAllValues:StringLike": {"aws:TagKeys": "tollgate:*"}},
            },
        ],
    });
    ensure_role(iam, path, name, max_session_seconds, tags, &trust).await
}

/// Creates a role, or re-tags it when it exists.
async fn ensure_role(
    iam: &aws_sdk_iam::Client,
    path: &str,
    name: &str,
    max_session_seconds: i32,
    tags: &[(&str, &str)],
    trust: &Value,
) -> Result<RoleArn, AwsError> {
    let bad = |e: aws_sdk_iam::error::BuildError| AwsError::Corrupt(e.to_string());
    let tags = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build().map_err(bad))
        .collect::<Result<Vec<_>, _>>()?;
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
            if !tags.is_empty() {
                iam.tag_role()
                    .role_name(name)
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map_err(|e| aws_failure("TagRole", e))?;
            }
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

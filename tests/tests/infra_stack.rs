//! The stacks as CloudFormation builds them. `infra/template.yaml`,
//! translated by aws-sam-translator and created in the local emulator
//! (`scripts/infra-stack`), must define the same table as the provisioning
//! code, grant each function exactly DESIGN.md's permissions (scoped to the
//! target accounts, never the broker's own), route exactly DESIGN.md's API
//! and alarm on what can go wrong; `infra/target-role.yaml`, created in the
//! staging and production accounts as a StackSet would, must give the
//! control roles exactly their permissions and make every role trust only
//! the broker function roles that need it, with trust statements AWS can
//! evaluate as written.
//!
//! One emulator and one deployment serve every test in this file; each test
//! reads what it needs through the AWS SDK for Rust or from the helper's
//! report of what the emulator holds. The emulator does not evaluate IAM, so
//! every policy is checked by its content.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed step is a failed test"
)]

use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::types::KeySchemaElement;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use tollgate::audit::metrics;
use tollgate::aws::testing::{Emulator, IamDocument, iam_lint, repo_root, sdk_config_for};
use tollgate::aws::{EXAMPLE_ROLES, create_table};

const BROKER_ACCOUNT: &str = "123456789012";
const STAGING_ACCOUNT: &str = "111122223333";
const PRODUCTION_ACCOUNT: &str = "444455556666";
const DEPLOYMENT_ID: &str = "tollgate-test";
const SETTINGS_SECRET: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:tollgate-settings-AbCdEf";
const FUNCTIONS: [&str; 5] = [
    "RequestsFunction",
    "ReviewsFunction",
    "CredentialsFunction",
    "RevocationsFunction",
    "ExpiryFunction",
];

/// The Python of the virtualenv the emulator runs from (`$TOLLGATE_VENV`
/// or `<repo>/.venv`, which starting the emulator creates when missing).
fn venv_python() -> PathBuf {
    std::env::var_os("TOLLGATE_VENV")
        .map_or_else(|| repo_root().join(".venv"), PathBuf::from)
        .join("bin")
        .join("python")
}

/// The permissions boundary a landing zone requires, in `account`.
fn boundary(account: &str) -> String {
    format!("arn:aws:iam::{account}:policy/landing-zone-boundary")
}

/// What the helper reports about the stacks it created.
struct Deployment {
    endpoint: String,
    broker: Value,
    production_targets: Value,
    staging_targets: Value,
}

fn infra_stack(endpoint: &str, args: &[&str]) -> Value {
    let out = Command::new(venv_python())
        .arg(repo_root().join("scripts/infra-stack"))
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .expect("run scripts/infra-stack");
    assert!(
        out.status.success(),
        "scripts/infra-stack {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("infra-stack prints JSON")
}

fn deployment() -> &'static Deployment {
    static DEPLOYMENT: OnceLock<Deployment> = OnceLock::new();
    DEPLOYMENT.get_or_init(|| {
        let endpoint = Emulator::shared()
            .expect("the local AWS emulator starts")
            .endpoint()
            .to_owned();
        // The landing-zone options on: a customer managed key created by the
        // stack, a permissions boundary on every role.
        let broker = infra_stack(
            &endpoint,
            &[
                "deploy",
                "--stack",
                "tollgate",
                "--param",
                "JwtIssuer=https://issuer.example.com/oauth2/default",
                "--param",
                "JwtAudience=tollgate",
                "--param",
                &format!("DeploymentId={DEPLOYMENT_ID}"),
                "--param",
                &format!("SettingsSecretArn={SETTINGS_SECRET}"),
                "--param",
                &format!("TargetAccountIds={STAGING_ACCOUNT},{PRODUCTION_ACCOUNT}"),
                "--param",
                "CreateKmsKey=true",
                "--param",
                &format!("PermissionsBoundaryArn={}", boundary(BROKER_ACCOUNT)),
            ],
        );
        // One target-account stack per account, as a StackSet instance
        // would be, in the account itself.
        let target_stack = |account: &str, env: &str| {
            infra_stack(
                &endpoint,
                &[
                    "create",
                    "--account",
                    account,
                    "--stack",
                    &format!("tollgate-targets-{env}"),
                    "--template",
                    repo_root()
                        .join("infra/target-role.yaml")
                        .to_str()
                        .expect("utf-8 path"),
                    "--param",
                    &format!("BrokerAccountId={BROKER_ACCOUNT}"),
                    "--param",
                    &format!("BrokerDeploymentId={DEPLOYMENT_ID}"),
                    "--param",
                    &format!("AccountEnvironment={env}"),
                    "--param",
                    &format!("PermissionsBoundaryArn={}", boundary(account)),
                ],
            )
        };
        let production_targets = target_stack(PRODUCTION_ACCOUNT, "production");
        let staging_targets = target_stack(STAGING_ACCOUNT, "staging");
        Deployment {
            endpoint,
            broker,
            production_targets,
            staging_targets,
        }
    })
}

fn physical_id<'a>(report: &'a Value, logical_id: &str) -> &'a str {
    report["resources"][logical_id]["physical_id"]
        .as_str()
        .unwrap_or_else(|| panic!("stack has no `{logical_id}`"))
}

/// A resource of the translated broker template.
fn translated<'a>(d: &'a Deployment, logical_id: &str) -> &'a Value {
    let r = &d.broker["translated"]["Resources"][logical_id];
    assert!(
        !r.is_null(),
        "the translated template has no `{logical_id}`"
    );
    r
}

/// A policy element that may be a string or a list, as a list.
fn as_list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_owned()).collect(),
        Value::Null => vec![],
        other => panic!("unexpected policy element {other}"),
    }
}

// ---------------------------------------------------------------- the table

/// A key schema as (attribute, HASH|RANGE) pairs.
type Keys = Vec<(String, String)>;

/// An index: its keys, projection type and projected non-key attributes.
type IndexShape = (Keys, String, Vec<String>);

/// The parts of `DescribeTable` that must not differ between local and deployed.
#[derive(Debug, PartialEq)]
struct TableShape {
    keys: Keys,
    attributes: BTreeMap<String, String>,
    indexes: BTreeMap<String, IndexShape>,
    local_indexes: usize,
    billing: String,
    stream: Option<(bool, String)>,
}

async fn table_shape(client: &aws_sdk_dynamodb::Client, name: &str) -> TableShape {
    let t = client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let keys = |ks: &[KeySchemaElement]| -> Keys {
        ks.iter()
            .map(|k| (k.attribute_name.clone(), k.key_type.as_str().to_owned()))
            .collect()
    };
    TableShape {
        keys: keys(t.key_schema()),
        attributes: t
            .attribute_definitions()
            .iter()
            .map(|a| {
                (
                    a.attribute_name.clone(),
                    a.attribute_type.as_str().to_owned(),
                )
            })
            .collect(),
        indexes: t
            .global_secondary_indexes()
            .iter()
            .map(|g| {
                let p = g.projection().unwrap();
                let mut non_key = p.non_key_attributes().to_vec();
                non_key.sort();
                (
                    g.index_name().unwrap().to_owned(),
                    (
                        keys(g.key_schema()),
                        p.projection_type().unwrap().as_str().to_owned(),
                        non_key,
                    ),
                )
            })
            .collect(),
        local_indexes: t.local_secondary_indexes().len(),
        billing: t
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map_or("PROVISIONED".to_owned(), |b| b.as_str().to_owned()),
        stream: t.stream_specification().map(|s| {
            (
                s.stream_enabled(),
                s.stream_view_type()
                    .map_or(String::new(), |v| v.as_str().to_owned()),
            )
        }),
    }
}

#[tokio::test]
async fn stack_table_has_the_same_keys_and_indexes_as_the_provisioned_table() {
    let d = deployment();
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config_for(&d.endpoint).await);
    create_table(&ddb, "provisioned-for-shape").await.unwrap();

    let deployed = table_shape(&ddb, physical_id(&d.broker, "Table")).await;
    let local = table_shape(&ddb, "provisioned-for-shape").await;

    assert_eq!(deployed, local);
    assert_eq!(deployed.indexes.len(), 4, "four GSIs: {deployed:?}");
}

#[tokio::test]
async fn template_ttl_stream_and_projections_match_the_provisioning_code() {
    // The emulator drops TimeToLiveSpecification (and PITR, SSE) from
    // stacks, so these are compared with the template as written.
    let d = deployment();
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config_for(&d.endpoint).await);
    create_table(&ddb, "provisioned-for-settings")
        .await
        .unwrap();
    let template = &d.broker["template_table"];

    let ttl = ddb
        .describe_time_to_live()
        .table_name("provisioned-for-settings")
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .unwrap();
    assert_eq!(ttl.time_to_live_status().unwrap().as_str(), "ENABLED");
    assert_eq!(
        template["TimeToLiveSpecification"]["AttributeName"].as_str(),
        ttl.attribute_name()
    );
    assert_eq!(template["TimeToLiveSpecification"]["Enabled"], true);

    let local = table_shape(&ddb, "provisioned-for-settings").await;
    let (enabled, view) = local
        .stream
        .clone()
        .expect("provisioned table has a stream");
    assert!(enabled);
    assert_eq!(
        template["StreamSpecification"]["StreamViewType"].as_str(),
        Some(view.as_str())
    );

    let template_projections: BTreeMap<String, String> = template["GlobalSecondaryIndexes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["IndexName"].as_str().unwrap().to_owned(),
                g["Projection"]["ProjectionType"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    let local_projections: BTreeMap<String, String> = local
        .indexes
        .iter()
        .map(|(name, (_, projection, _))| (name.clone(), projection.clone()))
        .collect();
    assert_eq!(template_projections, local_projections);

    let backups = ddb
        .describe_continuous_backups()
        .table_name("provisioned-for-settings")
        .send()
        .await
        .unwrap()
        .continuous_backups_description
        .unwrap();
    let pitr = backups
        .point_in_time_recovery_description()
        .and_then(|p| p.point_in_time_recovery_status())
        .map(|s| s.as_str().to_owned());
    assert_eq!(pitr.as_deref(), Some("ENABLED"));
    assert_eq!(
        template["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );

    let sse = ddb
        .describe_table()
        .table_name("provisioned-for-settings")
        .send()
        .await
        .unwrap()
        .table
        .unwrap()
        .sse_description
        .and_then(|s| s.status)
        .map(|s| s.as_str().to_owned());
    assert_eq!(sse.as_deref(), Some("ENABLED"));
    assert_eq!(template["SSESpecification"]["SSEEnabled"], true);
    assert_eq!(template["BillingMode"], "PAY_PER_REQUEST");
}

// ---------------------------------------------------------- permissions

/// One permission: (effect, action, resource, condition as canonical JSON).
type Permission = (String, String, String, String);

/// A role's inline permissions, with the stack's own ARNs replaced by
/// stable names.
fn permissions(d: &Deployment, role: &str) -> BTreeSet<Permission> {
    let report = &d.broker;
    let table = format!(
        "arn:aws:dynamodb:us-east-1:{BROKER_ACCOUNT}:table/{}",
        physical_id(report, "Table")
    );
    let key = format!(
        "arn:aws:kms:us-east-1:{BROKER_ACCOUNT}:key/{}",
        physical_id(report, "EncryptionKey")
    );
    let log_group = |fn_name: &str| {
        format!(
            "arn:aws:logs:us-east-1:{BROKER_ACCOUNT}:log-group:{}:*",
            physical_id(report, &format!("{fn_name}LogGroup"))
        )
    };
    let bucket = format!("arn:aws:s3:::{}", physical_id(report, "PolicyBucket"));
    let mut names = vec![
        (format!("{bucket}/policies.json"), "<policy set>".to_owned()),
        (bucket, "<policy bucket>".to_owned()),
        (format!("{table}/index/*"), "<table>/index/*".to_owned()),
        (table.clone(), "<table>".to_owned()),
        (key, "<key>".to_owned()),
        (SETTINGS_SECRET.to_owned(), "<settings secret>".to_owned()),
    ];
    for f in [
        "Requests",
        "Reviews",
        "Credentials",
        "Revocations",
        "Expiry",
    ] {
        names.push((log_group(f), format!("<{} log group>", f.to_lowercase())));
    }
    let rename = |r: &str| {
        names
            .iter()
            .find(|(arn, _)| arn == r)
            .map_or(r.to_owned(), |(_, n)| n.clone())
    };
    let mut out = BTreeSet::new();
    let policies = report["roles"][role]["inline_policies"]
        .as_object()
        .unwrap_or_else(|| panic!("role `{role}` has no inline policies"));
    for doc in policies.values() {
        for st in doc["Statement"].as_array().unwrap() {
            assert!(st.get("NotAction").is_none() && st.get("NotResource").is_none());
            let effect = st["Effect"].as_str().unwrap().to_owned();
            let condition = st.get("Condition").map_or(String::new(), Value::to_string);
            for action in as_list(&st["Action"]) {
                for resource in as_list(&st["Resource"]) {
                    out.insert((
                        effect.clone(),
                        action.clone(),
                        rename(&resource),
                        condition.clone(),
                    ));
                }
            }
        }
    }
    canonical(out)
}

/// Conditions compare as canonical JSON (keys sorted at every level).
fn canonical(set: BTreeSet<Permission>) -> BTreeSet<Permission> {
    fn sorted(v: Value) -> Value {
        match v {
            Value::Object(m) => {
                let ordered: BTreeMap<String, Value> =
                    m.into_iter().map(|(k, v)| (k, sorted(v))).collect();
                Value::Object(ordered.into_iter().collect())
            }
            Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
            other => other,
        }
    }
    set.into_iter()
        .map(|(e, a, r, c)| {
            let c = if c.is_empty() {
                c
            } else {
                sorted(serde_json::from_str::<Value>(&c).unwrap()).to_string()
            };
            (e, a, r, c)
        })
        .collect()
}

/// DESIGN.md's permissions for the role of function `f`.
fn expected(f: &str) -> BTreeSet<Permission> {
    let allow = |a: &str, r: &str, c: Value| {
        let c = if c.is_null() {
            String::new()
        } else {
            c.to_string()
        };
        ("Allow".to_owned(), a.to_owned(), r.to_owned(), c)
    };
    let log = format!(
        "<{} log group>",
        f.trim_end_matches("Function").to_lowercase()
    );
    let mut e = BTreeSet::from([
        allow("logs:CreateLogStream", &log, Value::Null),
        allow("logs:PutLogEvents", &log, Value::Null),
        allow("dynamodb:GetItem", "<table>", Value::Null),
        allow("dynamodb:Query", "<table>", Value::Null),
        allow("dynamodb:PutItem", "<table>", Value::Null),
        allow("dynamodb:UpdateItem", "<table>", Value::Null),
        allow("dynamodb:ConditionCheckItem", "<table>", Value::Null),
        allow("dynamodb:Query", "<table>/index/*", Value::Null),
    ]);
    let reads_settings = matches!(
        f,
        "RequestsFunction" | "ReviewsFunction" | "RevocationsFunction"
    );
    if reads_settings {
        e.insert(allow(
            "secretsmanager:GetSecretValue",
            "<settings secret>",
            Value::Null,
        ));
    }
    // The customer managed key, only through the services that need it.
    let via = if reads_settings {
        json!({"StringEquals": {"kms:ViaService": [
            "dynamodb.us-east-1.amazonaws.com", "secretsmanager.us-east-1.amazonaws.com"]}})
    } else {
        json!({"StringEquals": {"kms:ViaService": "dynamodb.us-east-1.amazonaws.com"}})
    };
    for a in [
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:GenerateDataKey*",
        "kms:DescribeKey",
    ] {
        e.insert(allow(a, "<key>", via.clone()));
    }
    // Every function that decides reads the policy store (the newest set;
    // a missing one is a 404 only with ListBucket), through the key.
    if f != "ExpiryFunction" {
        e.insert(allow("s3:GetObject", "<policy set>", Value::Null));
        e.insert(allow("s3:ListBucket", "<policy bucket>", Value::Null));
        e.insert(allow(
            "kms:Decrypt",
            "<key>",
            json!({"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}),
        ));
    }
    let targets = json!([STAGING_ACCOUNT, PRODUCTION_ACCOUNT]);
    let control = |role: &str| {
        allow(
            "sts:AssumeRole",
            &format!("arn:aws:iam::*:role/tollgate/{role}"),
            json!({"StringEquals": {
                "aws:ResourceAccount": targets,
                "sts:ExternalId": DEPLOYMENT_ID,
                "sts:RoleSessionName": "tollgate-control"}}),
        )
    };
    let only_from = |actions: &[&str]| -> Vec<Permission> {
        let me = format!(
            "arn:aws:lambda:us-east-1:{BROKER_ACCOUNT}:function:{DEPLOYMENT_ID}-{}",
            f.trim_end_matches("Function").to_lowercase()
        );
        actions
            .iter()
            .map(|a| {
                (
                    "Deny".to_owned(),
                    (*a).to_owned(),
                    "*".to_owned(),
                    json!({"ArnNotEquals": {"lambda:SourceFunctionArn": me}}).to_string(),
                )
            })
            .collect()
    };
    match f {
        "RequestsFunction" | "ReviewsFunction" => {
            e.insert(control("TollgateControlReader"));
            e.extend(only_from(&["sts:AssumeRole"]));
        }
        "RevocationsFunction" | "ExpiryFunction" => {
            e.insert(control("TollgateControl"));
            e.extend(only_from(&["sts:AssumeRole"]));
        }
        "CredentialsFunction" => {
            let managed = "arn:aws:iam::*:role/tollgate/*";
            let scoped = json!({
                "aws:ResourceAccount": targets,
                "aws:ResourceTag/tollgate:managed": "true"});
            e.insert(allow(
                "sts:AssumeRole",
                managed,
                json!({"StringEquals": scoped,
                       "StringLike": {"sts:RoleSessionName": "tollgate-*"}}),
            ));
            e.insert(allow(
                "sts:TagSession",
                managed,
                json!({"StringEquals": scoped,
                       "ForAllValues:StringEquals": {"aws:TagKeys":
                           ["tollgate:request", "tollgate:approver", "tollgate:ticket"]}}),
            ));
            e.insert(allow(
                "sts:SetSourceIdentity",
                managed,
                json!({ "StringEquals": scoped }),
            ));
            e.extend(only_from(&[
                "sts:AssumeRole",
                "sts:TagSession",
                "sts:SetSourceIdentity",
            ]));
        }
        other => panic!("unknown function {other}"),
    }
    canonical(e)
}

#[test]
fn each_function_role_holds_exactly_the_permissions_of_the_design() {
    let d = deployment();
    for f in FUNCTIONS {
        let role = format!("{f}Role");
        assert_eq!(permissions(d, &role), expected(f), "permissions of {role}");
        let trust = &d.broker["roles"][&role]["trust"]["Statement"];
        assert_eq!(
            trust,
            &json!([{
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole"
            }]),
            "{role} is assumable by Lambda only"
        );
        // Named after the deployment, so target accounts can trust it by name.
        assert_eq!(
            d.broker["roles"][&role]["name"],
            format!(
                "{DEPLOYMENT_ID}-{}",
                f.trim_end_matches("Function").to_lowercase()
            )
        );
    }
}

#[test]
fn no_function_touches_iam_and_every_sts_grant_is_scoped_to_the_target_accounts() {
    let d = deployment();
    for f in FUNCTIONS {
        let role = format!("{f}Role");
        let perms = permissions(d, &role);
        for (effect, action, resource, condition) in &perms {
            assert!(
                !action.starts_with("iam:"),
                "{role}: {action} on {resource}: no function has IAM permissions on roles"
            );
            if effect == "Allow" {
                assert!(!action.contains('*') || action == "kms:GenerateDataKey*");
            }
            if effect == "Allow" && action.starts_with("sts:") {
                let c: Value = serde_json::from_str(condition).unwrap();
                assert_eq!(
                    c["StringEquals"]["aws:ResourceAccount"],
                    json!([STAGING_ACCOUNT, PRODUCTION_ACCOUNT]),
                    "{role}: {action} only in the target accounts"
                );
                assert!(!resource.contains(BROKER_ACCOUNT), "{role}: {resource}");
            }
        }
        // Only credentials assumes managed roles; the others only a control role.
        let assumes: BTreeSet<&str> = perms
            .iter()
            .filter(|(e, a, _, _)| e == "Allow" && a == "sts:AssumeRole")
            .map(|(_, _, r, _)| r.as_str())
            .collect();
        let want = match f {
            "CredentialsFunction" => "arn:aws:iam::*:role/tollgate/*",
            "RequestsFunction" | "ReviewsFunction" => {
                "arn:aws:iam::*:role/tollgate/TollgateControlReader"
            }
            _ => "arn:aws:iam::*:role/tollgate/TollgateControl",
        };
        assert_eq!(assumes, BTreeSet::from([want]), "{role}");
        // Its STS permissions work only from its own function.
        let denied_unless: BTreeSet<&str> = perms
            .iter()
            .filter(|(e, _, _, _)| e == "Deny")
            .map(|(_, _, _, c)| c.as_str())
            .collect();
        let own_arn = d.broker["functions"][f]["arn"].as_str().unwrap();
        assert_eq!(
            denied_unless,
            BTreeSet::from([
                json!({"ArnNotEquals": {"lambda:SourceFunctionArn": own_arn}})
                    .to_string()
                    .as_str()
            ]),
            "{role} names its own deployed function"
        );
    }
}

#[test]
fn allowing_the_broker_account_adds_it_to_every_sts_scope() {
    // With AllowBrokerAccount=true (unsafe, off in the deployment above) the
    // account list of each STS grant is the target accounts plus this one.
    let d = deployment();
    let with_broker = json!({"Fn::Split": [",", {"Fn::Join": [",", [
        {"Fn::Join": [",", {"Ref": "TargetAccountIds"}]}, {"Ref": "AWS::AccountId"}]]}]});
    let scope = json!({"Fn::If": ["AllowBrokerAccount", with_broker, {"Ref": "TargetAccountIds"}]});
    for f in FUNCTIONS {
        let doc =
            &translated(d, &format!("{f}Role"))["Properties"]["Policies"][0]["PolicyDocument"];
        let sts: Vec<&Value> = doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| {
                s["Effect"] == "Allow"
                    && as_list(&s["Action"]).iter().any(|a| a.starts_with("sts:"))
            })
            .collect();
        assert!(!sts.is_empty(), "{f}");
        for s in sts {
            assert_eq!(
                s["Condition"]["StringEquals"]["aws:ResourceAccount"], scope,
                "{f}"
            );
        }
    }
    assert_eq!(
        translated(d, "RequestsFunction")["Properties"]["Environment"]["Variables"]["TOLLGATE_ALLOW_BROKER_ACCOUNT"],
        json!({"Ref": "AllowBrokerAccount"})
    );
}

// ------------------------------------------------------ functions and API

#[test]
fn functions_run_bootstrap_on_provided_al2023_with_the_broker_settings() {
    let d = deployment();
    let table = physical_id(&d.broker, "Table");
    for f in FUNCTIONS {
        let cfg = &d.broker["functions"][f];
        assert_eq!(cfg["runtime"], "provided.al2023", "{f}");
        assert_eq!(cfg["handler"], "bootstrap", "{f}");
        assert_eq!(cfg["architectures"], json!(["x86_64"]), "{f}");
        assert_eq!(
            cfg["role"],
            d.broker["roles"][format!("{f}Role")]["arn"],
            "{f} runs as its own role"
        );
        let env = cfg["environment"].as_object().unwrap();
        let var = |k: &str| {
            env.get(k)
                .map(|v| v.to_string().trim_matches('"').to_owned())
        };
        assert_eq!(var("TOLLGATE_TABLE").as_deref(), Some(table), "{f}");
        assert_eq!(
            var("TOLLGATE_POLICY_DIR").as_deref(),
            Some("/var/task/policies")
        );
        assert_eq!(var("TOLLGATE_MAX_DURATION").as_deref(), Some("43200"));
        assert_eq!(var("TOLLGATE_PENDING_TTL").as_deref(), Some("86400"));
        assert_eq!(var("TOLLGATE_RETENTION_DAYS").as_deref(), Some("400"));
        assert_eq!(var("TOLLGATE_GROUPS_CLAIM").as_deref(), Some("groups"));
        assert_eq!(
            var("TOLLGATE_TAG_CLAIMS").as_deref(),
            Some("department,clearance,location")
        );
        assert_eq!(var("RUST_LOG").as_deref(), Some("info"));
        // The policy store, checked at most every 10 s by default.
        assert_eq!(
            var("TOLLGATE_POLICY_BUCKET").as_deref(),
            Some(physical_id(&d.broker, "PolicyBucket")),
            "{f}"
        );
        assert_eq!(var("TOLLGATE_POLICY_KEY").as_deref(), Some("policies.json"));
        assert_eq!(
            var("TOLLGATE_POLICY_REFRESH_SECONDS").as_deref(),
            Some("10")
        );
        // Security: the issuer the function verifies tokens against, the
        // audit key it signs with, and the per-user caps.
        assert_eq!(
            var("TOLLGATE_JWT_ISSUER").as_deref(),
            Some("https://issuer.example.com/oauth2/default"),
            "{f}"
        );
        assert_eq!(var("TOLLGATE_JWT_AUDIENCE").as_deref(), Some("tollgate"));
        assert!(
            var("TOLLGATE_AUDIT_KEY_ID").is_some_and(|k| k.starts_with("arn:aws:kms:")),
            "{f}: {:?}",
            var("TOLLGATE_AUDIT_KEY_ID")
        );
        assert_eq!(var("TOLLGATE_MAX_OPEN_REQUESTS").as_deref(), Some("20"));
        assert_eq!(
            var("TOLLGATE_MAX_CREATES_PER_MINUTE").as_deref(),
            Some("10")
        );
        // The accounts settings (DESIGN.md "Accounts").
        assert_eq!(
            var("TOLLGATE_TARGET_ACCOUNTS"),
            Some(format!("{STAGING_ACCOUNT},{PRODUCTION_ACCOUNT}")),
            "{f}"
        );
        assert_eq!(
            var("TOLLGATE_ALLOW_BROKER_ACCOUNT").as_deref(),
            Some("false")
        );
        assert_eq!(
            var("TOLLGATE_BROKER_ACCOUNT").as_deref(),
            Some(BROKER_ACCOUNT)
        );
        assert_eq!(
            var("TOLLGATE_CONTROL_EXTERNAL_ID").as_deref(),
            Some(DEPLOYMENT_ID)
        );
        assert_eq!(
            var("TOLLGATE_MANAGED_ROLE_PATH").as_deref(),
            Some("/tollgate/")
        );
        assert_eq!(var("TOLLGATE_ACCOUNT_ALIASES").as_deref(), Some(""), "{f}");
        let control = match f {
            "RequestsFunction" | "ReviewsFunction" => "tollgate/TollgateControlReader",
            _ => "tollgate/TollgateControl",
        };
        assert_eq!(
            var("TOLLGATE_CONTROL_ROLE").as_deref(),
            Some(control),
            "{f}"
        );
        // Only functions that may read the settings secret are told where it is.
        let reads_settings = matches!(
            f,
            "RequestsFunction" | "ReviewsFunction" | "RevocationsFunction"
        );
        assert_eq!(
            var("TOLLGATE_SETTINGS_SECRET_ARN"),
            reads_settings.then(|| SETTINGS_SECRET.to_owned()),
            "{f}"
        );
    }
}

#[test]
fn only_the_five_function_roles_may_sign_with_the_audit_key() {
    let d = deployment();
    let key = &d.broker["translated"]["Resources"]["AuditKey"];
    assert_eq!(key["Properties"]["KeySpec"], "ECC_NIST_P256");
    assert_eq!(key["Properties"]["KeyUsage"], "SIGN_VERIFY");
    assert_eq!(key["DeletionPolicy"], "Retain");
    let statements = key["Properties"]["KeyPolicy"]["Statement"]
        .as_array()
        .unwrap();
    let actions = |st: &Value| -> Vec<String> {
        match &st["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a.iter().map(|v| v.as_str().unwrap().to_owned()).collect(),
            other => panic!("action {other}"),
        }
    };
    for st in statements {
        for a in actions(st) {
            assert!(
                !a.contains('*') && a != "kms:CreateGrant",
                "no wildcard action and no grants: {a}"
            );
        }
    }
    let signers: Vec<&Value> = statements
        .iter()
        .filter(|st| actions(st).iter().any(|a| a == "kms:Sign"))
        .collect();
    assert_eq!(signers.len(), 1, "one statement allows kms:Sign");
    assert_eq!(actions(signers[0]), ["kms:Sign"]);
    let principals: Vec<String> = signers[0]["Principal"]["AWS"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Fn::GetAtt"][0].as_str().unwrap().to_owned())
        .collect();
    let roles: Vec<String> = FUNCTIONS.iter().map(|f| format!("{f}Role")).collect();
    assert_eq!(principals, roles);
    // The function roles themselves hold no signing permission and nothing
    // on the audit key (only the optional data key's decrypt and encrypt).
    for f in FUNCTIONS {
        let role = d.broker["translated"]["Resources"][format!("{f}Role")].to_string();
        assert!(
            !role.contains("kms:Sign") && !role.contains("AuditKey"),
            "{f}Role"
        );
    }
}

/// The API's routes as `METHOD /path` (the broker's `Operation` names), with
/// the function each goes to and its authorizer.
fn api_routes(d: &Deployment) -> BTreeMap<String, (&'static str, String)> {
    let api = translated(d, "HttpApi");
    assert_eq!(api["Type"], "AWS::ApiGatewayV2::Api");
    let body = &api["Properties"]["Body"];
    let mut routes = BTreeMap::new();
    for (path, methods) in body["paths"].as_object().unwrap() {
        for (method, op) in methods.as_object().unwrap() {
            let uri = op["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
                .as_str()
                .unwrap();
            let function = FUNCTIONS
                .iter()
                .find(|f| uri.contains(&format!("${{{f}.Arn}}")))
                .unwrap_or_else(|| panic!("{method} {path} goes to no function: {uri}"));
            let auth = op["security"][0]
                .as_object()
                .and_then(|s| s.keys().next().cloned())
                .unwrap_or_default();
            assert_eq!(
                op["x-amazon-apigateway-integration"]["payloadFormatVersion"],
                "2.0"
            );
            routes.insert(
                format!("{} {path}", method.to_uppercase()),
                (*function, auth),
            );
        }
    }
    routes
}

#[test]
fn api_routes_are_exactly_those_of_the_design_and_only_health_and_the_console_skip_the_authorizer()
{
    let d = deployment();
    let routes = api_routes(d);
    let expect = |f: &'static str, auth: &str| (f, auth.to_owned());
    let want = BTreeMap::from([
        (
            "POST /requests".to_owned(),
            expect("RequestsFunction", "Jwt"),
        ),
        (
            "GET /requests".to_owned(),
            expect("RequestsFunction", "Jwt"),
        ),
        (
            "GET /requests/{id}".to_owned(),
            expect("RequestsFunction", "Jwt"),
        ),
        (
            "POST /requests/{id}/cancel".to_owned(),
            expect("RequestsFunction", "Jwt"),
        ),
        ("GET /roles".to_owned(), expect("RequestsFunction", "Jwt")),
        (
            "POST /requests/{id}/extend".to_owned(),
            expect("RequestsFunction", "Jwt"),
        ),
        (
            "POST /roles/check".to_owned(),
            expect("RequestsFunction", "Jwt"),
        ),
        (
            "POST /requests/{id}/approve".to_owned(),
            expect("ReviewsFunction", "Jwt"),
        ),
        (
            "POST /requests/{id}/deny".to_owned(),
            expect("ReviewsFunction", "Jwt"),
        ),
        (
            "POST /requests/{id}/review".to_owned(),
            expect("ReviewsFunction", "Jwt"),
        ),
        (
            "POST /requests/{id}/credentials".to_owned(),
            expect("CredentialsFunction", "Jwt"),
        ),
        (
            "POST /requests/{id}/console".to_owned(),
            expect("CredentialsFunction", "Jwt"),
        ),
        (
            "POST /requests/{id}/revoke".to_owned(),
            expect("RevocationsFunction", "Jwt"),
        ),
        ("GET /health".to_owned(), expect("RequestsFunction", "NONE")),
        (
            "GET /openapi.json".to_owned(),
            expect("RequestsFunction", "NONE"),
        ),
        ("GET /ui".to_owned(), expect("RequestsFunction", "NONE")),
        (
            "GET /ui/{proxy+}".to_owned(),
            expect("RequestsFunction", "NONE"),
        ),
    ]);
    assert_eq!(routes, want);

    let body = &translated(d, "HttpApi")["Properties"]["Body"];
    let jwt = &body["components"]["securitySchemes"]["Jwt"]["x-amazon-apigateway-authorizer"];
    assert_eq!(jwt["type"], "jwt");
    assert_eq!(jwt["identitySource"], "$request.header.Authorization");
    assert_eq!(
        jwt["jwtConfiguration"],
        json!({"issuer": {"Ref": "JwtIssuer"}, "audience": {"Ref": "JwtAudience"}})
    );

    let stage = &translated(d, "HttpApiApiGatewayDefaultStage")["Properties"];
    assert_eq!(
        stage["AccessLogSettings"]["DestinationArn"],
        json!({"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]})
    );
    let format: Value =
        serde_json::from_str(stage["AccessLogSettings"]["Format"].as_str().unwrap())
            .expect("access log lines are JSON");
    assert_eq!(format["request_id"], "$context.requestId");
    assert_eq!(
        stage["DefaultRouteSettings"],
        json!({
            "ThrottlingRateLimit": {"Ref": "ApiThrottleRateLimit"},
            "ThrottlingBurstLimit": {"Ref": "ApiThrottleBurstLimit"}
        })
    );
}

#[test]
fn expiry_runs_every_minute_without_async_retries_or_stale_events() {
    let d = deployment();
    let schedules = d.broker["schedules"].as_array().unwrap();
    assert_eq!(schedules.len(), 1, "{schedules:?}");
    let s = &schedules[0];
    assert_eq!(s["schedule"], "rate(1 minute)");
    assert_eq!(s["state"], "ENABLED");
    assert_eq!(
        s["targets"],
        json!([d.broker["functions"]["ExpiryFunction"]["arn"]])
    );
    // One sweep at a time, unless the account cannot reserve concurrency.
    assert_eq!(
        translated(d, "ExpiryFunction")["Properties"]["ReservedConcurrentExecutions"],
        json!({"Fn::If": ["ReserveExpiryConcurrency", 1, {"Ref": "AWS::NoValue"}]})
    );
    // A failed scheduled run is not retried and an event is not kept: the
    // next minute's run does the same work.
    let configs: Vec<&Value> = d.broker["translated"]["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::Lambda::EventInvokeConfig")
        .collect();
    assert_eq!(configs.len(), 1, "{configs:?}");
    let p = &configs[0]["Properties"];
    assert_eq!(p["FunctionName"], json!({"Ref": "ExpiryFunction"}));
    assert_eq!(p["MaximumRetryAttempts"], 0);
    assert_eq!(p["MaximumEventAgeInSeconds"], 60);
}

#[test]
fn without_a_settings_arn_the_stack_creates_a_secret_with_a_generated_pagination_key() {
    let d = deployment();
    let secret = &d.broker["translated"]["Resources"]["SettingsSecret"];
    assert_eq!(secret["Condition"], "CreateSettingsSecret");
    let generate = &secret["Properties"]["GenerateSecretString"];
    assert_eq!(generate["GenerateStringKey"], "pagination_key");
    assert!(generate["PasswordLength"].as_u64().unwrap() >= 32);
    let template: Value =
        serde_json::from_str(generate["SecretStringTemplate"].as_str().unwrap()).unwrap();
    assert_eq!(
        template,
        serde_json::json!({"webhook_urls": [], "webhook_signing_secret": ""})
    );
    // The stack was created with an existing ARN: no secret of its own.
    assert!(d.broker["resources"].get("SettingsSecret").is_none());
}

// --------------------------------------------------------------- alarms

/// The translated template's alarms by logical id.
fn alarms(d: &Deployment) -> BTreeMap<String, Value> {
    d.broker["translated"]["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|(id, r)| (id.clone(), r["Properties"].clone()))
        .collect()
}

/// (namespace, metric, operation) of each metric an alarm reads.
fn alarm_metrics(p: &Value) -> Vec<(String, String, String)> {
    let one = |m: &Value| {
        let dims = m["Dimensions"].as_array().cloned().unwrap_or_default();
        let dim = dims
            .iter()
            .find(|d| d["Name"] == "Operation")
            .map_or(String::new(), |d| d["Value"].as_str().unwrap().to_owned());
        (
            m["Namespace"].as_str().unwrap().to_owned(),
            m["MetricName"].as_str().unwrap().to_owned(),
            dim,
        )
    };
    match p["Metrics"].as_array() {
        Some(queries) => queries
            .iter()
            .filter(|q| !q["MetricStat"].is_null())
            .map(|q| one(&q["MetricStat"]["Metric"]))
            .collect(),
        None => vec![one(p)],
    }
}

#[test]
fn every_function_has_an_error_alarm_and_a_throttle_alarm() {
    let d = deployment();
    let mut seen = BTreeSet::new();
    for p in alarms(d).values() {
        if p["Namespace"] != "AWS/Lambda" {
            continue;
        }
        assert_eq!(p["Threshold"], 1);
        let function = p["Dimensions"][0]["Value"]["Ref"].as_str().unwrap();
        seen.insert((
            function.to_owned(),
            p["MetricName"].as_str().unwrap().to_owned(),
        ));
    }
    let want: BTreeSet<(String, String)> = FUNCTIONS
        .iter()
        .flat_map(|f| {
            [
                (f.to_string(), "Errors".to_owned()),
                (f.to_string(), "Throttles".to_owned()),
            ]
        })
        .collect();
    assert_eq!(seen, want);
}

#[test]
fn server_errors_alarms_cover_every_route_under_the_function_that_serves_it() {
    // Lambda does not count a 500 or 503 answer as an error: the broker's
    // own ServerErrors metric (per `METHOD /route`) does.
    let d = deployment();
    let mut covered: BTreeMap<String, &str> = BTreeMap::new();
    for (id, p) in alarms(d) {
        let ms = alarm_metrics(&p);
        if ms.iter().all(|(_, m, _)| m != metrics::SERVER_ERRORS) {
            continue;
        }
        let function = FUNCTIONS
            .iter()
            .find(|f| id == format!("{}ServerErrorsAlarm", f.trim_end_matches("Function")))
            .unwrap_or_else(|| panic!("server errors alarm `{id}` names no function"));
        assert_eq!(p["Threshold"], 1);
        assert_eq!(p["TreatMissingData"], "notBreaching");
        for (namespace, _, operation) in ms {
            assert_eq!(namespace, metrics::NAMESPACE);
            assert!(
                covered.insert(operation.clone(), function).is_none(),
                "{operation} twice"
            );
        }
    }
    // The broker names every `/ui/...` path `GET /ui` (routes.rs).
    let routes: BTreeMap<String, &str> = api_routes(d)
        .into_iter()
        .map(|(route, (f, _))| (route.trim_end_matches("/{proxy+}").to_owned(), f))
        .collect();
    assert_eq!(covered, routes);
}

#[test]
fn the_sweep_credential_revocation_and_policy_load_failures_overdue_reviews_and_api_5xx_each_have_an_alarm()
 {
    let d = deployment();
    let all = alarms(d);
    let sweep = &all["SweepNotRunningAlarm"];
    assert_eq!(
        alarm_metrics(sweep),
        [(
            metrics::NAMESPACE.to_owned(),
            metrics::SWEEP_RUNS.to_owned(),
            "sweep".to_owned()
        )]
    );
    // No datapoint is the failure: the sweep is not running.
    assert_eq!(sweep["TreatMissingData"], "breaching");
    assert_eq!(sweep["ComparisonOperator"], "LessThanThreshold");
    assert_eq!(sweep["Threshold"], 1);

    assert_eq!(
        alarm_metrics(&all["CredentialFailuresAlarm"]),
        [(
            metrics::NAMESPACE.to_owned(),
            metrics::CREDENTIAL_FAILURES.to_owned(),
            "credentials".to_owned()
        )]
    );
    let revocations: BTreeSet<(String, String, String)> =
        alarm_metrics(&all["RevocationFailuresAlarm"])
            .into_iter()
            .collect();
    assert_eq!(
        revocations,
        ["revoke", "sweep"]
            .iter()
            .map(|op| (
                metrics::NAMESPACE.to_owned(),
                "RevocationFailures".to_owned(),
                (*op).to_owned()
            ))
            .collect()
    );
    // Break-glass grants left unreviewed past the setting.
    let unreviewed = &all["UnreviewedBreakGlassAlarm"];
    assert_eq!(
        alarm_metrics(unreviewed),
        [(
            metrics::NAMESPACE.to_owned(),
            metrics::UNREVIEWED_BREAK_GLASS.to_owned(),
            "sweep".to_owned()
        )]
    );
    assert_eq!(unreviewed["Threshold"], 1);
    assert_eq!(
        unreviewed["ComparisonOperator"],
        "GreaterThanOrEqualToThreshold"
    );
    let policy = &all["PolicyLoadFailuresAlarm"];
    assert_eq!(
        alarm_metrics(policy),
        [(
            metrics::NAMESPACE.to_owned(),
            metrics::POLICY_LOAD_FAILURES.to_owned(),
            "policy".to_owned()
        )]
    );
    assert_eq!(
        (&policy["Threshold"], &policy["TreatMissingData"]),
        (&json!(1), &json!("notBreaching"))
    );
    let api = &all["ApiServerErrorsAlarm"];
    assert_eq!(api["Namespace"], "AWS/ApiGateway");
    assert_eq!(api["MetricName"], "5xx");
    assert_eq!(
        api["Dimensions"],
        json!([{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}])
    );
}

#[test]
fn every_alarm_notifies_the_given_topic_or_one_the_stack_creates() {
    let d = deployment();
    let topic =
        json!([{"Fn::If": ["HasAlarmTopic", {"Ref": "AlarmTopicArn"}, {"Ref": "AlarmTopic"}]}]);
    for (id, p) in alarms(d) {
        assert_eq!(p["AlarmActions"], topic, "{id}");
        assert_eq!(p["OKActions"], topic, "{id}");
    }
    // Deployed without AlarmTopicArn: the stack made its own, encrypted with
    // the stack's key.
    assert_eq!(
        d.broker["resources"]["AlarmTopic"]["type"],
        "AWS::SNS::Topic"
    );
    assert_eq!(translated(d, "AlarmTopic")["Condition"], "CreateAlarmTopic");
    assert_eq!(
        translated(d, "AlarmTopic")["Properties"]["KmsMasterKeyId"],
        key_ref()
    );
    let policy = &translated(d, "AlarmTopicPolicy")["Properties"]["PolicyDocument"]["Statement"];
    assert_eq!(
        policy[0]["Principal"],
        json!({"Service": "cloudwatch.amazonaws.com"})
    );
    assert_eq!(policy[0]["Action"], "sns:Publish");
}

// ----------------------------------------------------------- policy store

#[tokio::test]
async fn the_policy_store_is_versioned_encrypted_private_and_written_only_by_the_publisher() {
    let d = deployment();
    let bucket = physical_id(&d.broker, "PolicyBucket");
    // What the emulator made of it: the bucket, encrypted with the stack's key.
    let s3 = tollgate::aws::s3_client(&sdk_config_for(&d.endpoint).await);
    let sse = s3
        .get_bucket_encryption()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let rule = &sse.server_side_encryption_configuration().unwrap().rules()[0];
    let default = rule.apply_server_side_encryption_by_default().unwrap();
    assert_eq!(default.sse_algorithm().as_str(), "aws:kms");
    assert_eq!(
        default.kms_master_key_id().unwrap(),
        format!(
            "arn:aws:kms:us-east-1:{BROKER_ACCOUNT}:key/{}",
            physical_id(&d.broker, "EncryptionKey")
        )
    );
    // The emulator's CloudFormation skips versioning, the public access
    // block and bucket policies: those are checked as written.
    let p = &translated(d, "PolicyBucket")["Properties"];
    assert_eq!(p["VersioningConfiguration"], json!({"Status": "Enabled"}));
    assert_eq!(
        p["PublicAccessBlockConfiguration"],
        json!({"BlockPublicAcls": true, "BlockPublicPolicy": true,
               "IgnorePublicAcls": true, "RestrictPublicBuckets": true})
    );
    assert_eq!(
        p["OwnershipControls"]["Rules"],
        json!([{"ObjectOwnership": "BucketOwnerEnforced"}])
    );
    // Superseded sets are kept as long as the requests they decided.
    assert_eq!(
        p["LifecycleConfiguration"]["Rules"][0]["NoncurrentVersionExpiration"],
        json!({"NoncurrentDays": {"Ref": "RetentionDays"}})
    );
    assert_eq!(translated(d, "PolicyBucket")["DeletionPolicy"], "Retain");

    let statements =
        &translated(d, "PolicyBucketPolicy")["Properties"]["PolicyDocument"]["Statement"];
    let writes = &statements[0];
    assert_eq!(
        (&writes["Effect"], &writes["Principal"]),
        (&json!("Deny"), &json!("*"))
    );
    let denied = as_list(&writes["Action"]);
    for action in [
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "s3:RestoreObject",
    ] {
        assert!(denied.iter().any(|a| a == action), "{action}: {denied:?}");
    }
    assert_eq!(
        writes["Condition"],
        json!({"ArnNotEquals": {"aws:PrincipalArn": {"Fn::GetAtt": ["PolicyPublisherRole", "Arn"]}}})
    );
    assert_eq!(
        statements[1]["Condition"],
        json!({"Bool": {"aws:SecureTransport": "false"}})
    );

    // The publisher writes the set and reads what status and diff need; by
    // default principals of this account whose IAM policies allow it may
    // assume it.
    let publisher = &d.broker["roles"]["PolicyPublisherRole"];
    assert_eq!(
        publisher["name"],
        format!("{DEPLOYMENT_ID}-policy-publisher")
    );
    assert_eq!(
        publisher["trust"]["Statement"],
        json!([{
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{BROKER_ACCOUNT}:root")},
            "Action": "sts:AssumeRole"
        }])
    );
    let allow =
        |a: &str, r: &str, c: &str| ("Allow".to_owned(), a.to_owned(), r.to_owned(), c.to_owned());
    let via = json!({"StringEquals": {"kms:ViaService": [
        "s3.us-east-1.amazonaws.com", "dynamodb.us-east-1.amazonaws.com"]}})
    .to_string();
    assert_eq!(
        permissions(d, "PolicyPublisherRole"),
        canonical(BTreeSet::from([
            allow("s3:GetObject", "<policy set>", ""),
            allow("s3:PutObject", "<policy set>", ""),
            allow("s3:ListBucket", "<policy bucket>", ""),
            allow("dynamodb:Query", "<table>", ""),
            allow("dynamodb:Scan", "<table>", ""),
            allow("kms:Decrypt", "<key>", &via),
            allow("kms:GenerateDataKey", "<key>", &via),
        ]))
    );
    assert_eq!(
        d.broker["outputs"]["PolicyBucketName"].as_str(),
        Some(bucket),
        "{}",
        d.broker["outputs"]
    );
}

// ----------------------------------------------------- landing-zone fit

/// How the template names the customer managed key where one is used.
fn key_ref() -> Value {
    json!({"Fn::If": ["UseKmsKey",
        {"Fn::If": ["HasKmsKeyArn", {"Ref": "KmsKeyArn"}, {"Fn::GetAtt": ["EncryptionKey", "Arn"]}]},
        {"Ref": "AWS::NoValue"}]})
}

#[test]
fn log_groups_have_the_configured_retention_and_the_customer_key() {
    let d = deployment();
    let resources = d.broker["translated"]["Resources"].as_object().unwrap();
    let groups: Vec<_> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Logs::LogGroup")
        .collect();
    assert_eq!(groups.len(), 6, "five functions and the API");
    for (id, r) in groups {
        assert_eq!(
            r["Properties"]["RetentionInDays"],
            json!({"Ref": "LogRetentionDays"}),
            "{id}"
        );
        assert_eq!(r["Properties"]["KmsKeyId"], key_ref(), "{id}");
        assert_eq!(r["DeletionPolicy"], "Retain", "{id}");
    }
    for f in FUNCTIONS {
        assert_eq!(
            resources[f]["Properties"]["LoggingConfig"]["LogGroup"],
            json!({"Ref": format!("{}LogGroup", f.trim_end_matches("Function"))}),
            "{f} logs to its own group"
        );
    }
    assert_eq!(
        translated(d, "Table")["Properties"]["SSESpecification"]["KMSMasterKeyId"],
        key_ref()
    );
    assert_eq!(
        translated(d, "SettingsSecret")["Properties"]["KmsKeyId"],
        key_ref()
    );
}

#[test]
fn the_created_key_rotates_outlives_the_stack_and_lets_logs_and_alarms_use_it() {
    let d = deployment();
    let key = translated(d, "EncryptionKey");
    assert_eq!(key["Condition"], "CreateKmsKey");
    assert_eq!(key["DeletionPolicy"], "Retain");
    assert_eq!(key["Properties"]["EnableKeyRotation"], true);
    let statements = key["Properties"]["KeyPolicy"]["Statement"]
        .as_array()
        .unwrap();
    let by_sid: BTreeMap<&str, &Value> = statements
        .iter()
        .map(|s| (s["Sid"].as_str().unwrap(), s))
        .collect();
    assert_eq!(by_sid.len(), 3, "{statements:?}");
    assert_eq!(
        by_sid["AccountAdministersAndDelegatesToIam"]["Principal"],
        json!({"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}})
    );
    let logs = by_sid["CloudWatchLogsForThisAccount"];
    assert_eq!(
        logs["Principal"],
        json!({"Service": {"Fn::Sub": "logs.${AWS::Region}.${AWS::URLSuffix}"}})
    );
    assert_eq!(
        logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"],
        json!({"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"})
    );
    let alarms = by_sid["CloudWatchAlarmsPublishToTheTopic"];
    assert_eq!(
        alarms["Principal"],
        json!({"Service": "cloudwatch.amazonaws.com"})
    );
    assert_eq!(
        alarms["Action"],
        json!(["kms:Decrypt", "kms:GenerateDataKey*"])
    );
    // The emulator created it, and the functions' policies name it.
    assert_eq!(
        d.broker["resources"]["EncryptionKey"]["type"],
        "AWS::KMS::Key"
    );
}

#[test]
fn every_role_of_every_stack_carries_the_permissions_boundary() {
    let d = deployment();
    for (report, account) in [
        (&d.broker, BROKER_ACCOUNT),
        (&d.staging_targets, STAGING_ACCOUNT),
        (&d.production_targets, PRODUCTION_ACCOUNT),
    ] {
        let roles = report["roles"].as_object().unwrap();
        assert!(!roles.is_empty());
        for (id, role) in roles {
            assert_eq!(
                role["permissions_boundary"],
                json!(boundary(account)),
                "{id} in {account}"
            );
        }
    }
}

#[test]
fn no_arn_in_either_template_is_tied_to_the_commercial_partition() {
    // GovCloud (aws-us-gov) and China (aws-cn) need `${AWS::Partition}`;
    // cfn-lint checks each partition's region too (scripts/check-templates).
    for file in ["infra/template.yaml", "infra/target-role.yaml"] {
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        let hard_coded: Vec<&str> = text.lines().filter(|l| l.contains("arn:aws:")).collect();
        assert!(hard_coded.is_empty(), "{file}: {hard_coded:#?}");
        let suffixes: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(".amazonaws.com") && !l.trim_start().starts_with('#'))
            .filter(|l| {
                !l.contains("lambda.amazonaws.com") && !l.contains("cloudwatch.amazonaws.com")
            })
            .collect();
        assert!(
            suffixes.is_empty(),
            "{file}: regional endpoints need ${{AWS::URLSuffix}}: {suffixes:#?}"
        );
    }
}

// ------------------------------------------------------------ target roles

/// The tags `tollgate local provision` gives the example role `name`: the
/// target-account stack must give the deployed role the same ones, since the
/// example policies are written against them.
fn provisioned_tags(name: &str) -> BTreeMap<String, String> {
    EXAMPLE_ROLES
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("`{name}` is not an example role of the provisioning code"))
        .tags
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// An IAM client acting in `account`, as the StackSet did.
async fn account_iam(endpoint: &str, account: &str) -> aws_sdk_iam::Client {
    let sts = aws_sdk_sts::Client::new(&sdk_config_for(endpoint).await);
    let creds = sts
        .assume_role()
        .role_arn(format!(
            "arn:aws:iam::{account}:role/OrganizationAccountAccessRole"
        ))
        .role_session_name("infra-stack-test")
        .send()
        .await
        .unwrap()
        .credentials
        .unwrap();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_owned()),
            None,
            "target-account",
        ))
        .load()
        .await;
    aws_sdk_iam::Client::new(&config)
}

const EXAMPLES: [&str; 4] = [
    "StagingDeveloper",
    "ProductionOperator",
    "ProductionBreakGlass",
    "DataAnalyst",
];

#[tokio::test]
async fn example_roles_carry_the_provisioned_tags_under_the_managed_path_of_their_account() {
    let d = deployment();
    for (report, account, names) in [
        (
            &d.staging_targets,
            STAGING_ACCOUNT,
            vec!["StagingDeveloper"],
        ),
        (
            &d.production_targets,
            PRODUCTION_ACCOUNT,
            vec!["ProductionOperator", "ProductionBreakGlass", "DataAnalyst"],
        ),
    ] {
        let created: BTreeSet<&str> = report["roles"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .filter(|k| EXAMPLES.contains(k))
            .collect();
        assert_eq!(created, names.iter().copied().collect(), "{account}");
        let iam = account_iam(&d.endpoint, account).await;
        for name in names {
            let role = iam
                .get_role()
                .role_name(name)
                .send()
                .await
                .unwrap()
                .role
                .unwrap();
            assert_eq!(
                role.arn(),
                format!("arn:aws:iam::{account}:role/tollgate/{name}")
            );
            let example = EXAMPLE_ROLES.iter().find(|r| r.name == name).unwrap();
            assert_eq!(role.path(), example.path);
            assert_eq!(
                example.account, account,
                "{name} lives where the local world has it"
            );
            assert_eq!(role.max_session_duration(), Some(3600));
            let tags: BTreeMap<String, String> = iam
                .list_role_tags()
                .role_name(name)
                .send()
                .await
                .unwrap()
                .tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect();
            assert_eq!(tags, provisioned_tags(name), "tags of {name}");
            assert_eq!(
                tags.get("tollgate:managed").map(String::as_str),
                Some("true"),
                "{name} is assumable by the deployed broker"
            );
        }
    }
}

/// The condition keys AWS defines for each action that a trust policy may
/// grant (Service Authorization Reference, AWS STS), besides global `aws:`
/// keys that apply to every request. A statement naming a key its action
/// does not define may not match at all, so each action gets its own
/// statement with only its own keys.
fn defined_keys(action: &str) -> &'static [&'static str] {
    match action {
        "sts:AssumeRole" => &[
            "aws:TagKeys",
            "aws:RequestTag/",
            "sts:TransitiveTagKeys",
            "sts:ExternalId",
            "sts:RoleSessionName",
            "iam:ResourceTag/",
            "sts:SourceIdentity",
        ],
        "sts:SetSourceIdentity" => &["sts:SourceIdentity"],
        "sts:TagSession" => &["aws:TagKeys", "aws:RequestTag/", "sts:TransitiveTagKeys"],
        other => panic!("no trust policy here grants {other}"),
    }
}

/// The condition keys a statement uses.
fn condition_keys(statement: &Value) -> BTreeSet<String> {
    statement["Condition"]
        .as_object()
        .map(|ops| {
            ops.values()
                .flat_map(|keys| keys.as_object().unwrap().keys().cloned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_trust_statement_grants_one_action_with_only_the_keys_aws_defines_for_it() {
    let d = deployment();
    for report in [&d.staging_targets, &d.production_targets] {
        for (id, role) in report["roles"].as_object().unwrap() {
            for st in role["trust"]["Statement"].as_array().unwrap() {
                let actions = as_list(&st["Action"]);
                assert_eq!(actions.len(), 1, "{id}: one action per statement: {st}");
                let allowed = defined_keys(&actions[0]);
                for key in condition_keys(st) {
                    assert!(
                        allowed
                            .iter()
                            .any(|k| key == *k || (k.ends_with('/') && key.starts_with(k))),
                        "{id}: {} does not define {key}",
                        actions[0]
                    );
                }
            }
        }
    }
}

#[test]
fn example_roles_trust_only_the_credentials_function_role() {
    let d = deployment();
    let credentials = d.broker["roles"]["CredentialsFunctionRole"]["arn"].clone();
    assert_eq!(
        credentials,
        json!(format!(
            "arn:aws:iam::{BROKER_ACCOUNT}:role/{DEPLOYMENT_ID}-credentials"
        ))
    );
    let principal = json!({"AWS": credentials});
    let want = json!([
        {
            "Sid": "TollgateAssume",
            "Effect": "Allow",
            "Principal": principal,
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringLike": {"sts:RoleSessionName": "tollgate-*"},
                "Null": {"sts:SourceIdentity": "false"}
            }
        },
        {
            "Sid": "TollgateSourceIdentity",
            "Effect": "Allow",
            "Principal": principal,
            "Action": "sts:SetSourceIdentity",
            "Condition": {"Null": {"sts:SourceIdentity": "false"}}
        },
        {
            "Sid": "TollgateSessionTags",
            "Effect": "Allow",
            "Principal": principal,
            "Action": "sts:TagSession",
            "Condition": {
                "ForAllValues:StringEquals": {
                    "aws:TagKeys": ["tollgate:request", "tollgate:approver", "tollgate:ticket"]
                },
                "Null": {"sts:TransitiveTagKeys": "true"}
            }
        }
    ]);
    let mut seen = 0;
    for report in [&d.staging_targets, &d.production_targets] {
        for (id, role) in report["roles"].as_object().unwrap() {
            if EXAMPLES.contains(&id.as_str()) {
                assert_eq!(role["trust"]["Statement"], want, "{id}");
                seen += 1;
            }
        }
    }
    assert_eq!(seen, EXAMPLES.len());
}

#[test]
fn control_roles_trust_only_the_functions_that_need_them_with_the_external_id() {
    let d = deployment();
    let broker_role = |f: &str| d.broker["roles"][format!("{f}FunctionRole")]["arn"].clone();
    let condition = json!({"StringEquals": {
        "sts:ExternalId": DEPLOYMENT_ID,
        "sts:RoleSessionName": "tollgate-control"}});
    for (report, account) in [
        (&d.staging_targets, STAGING_ACCOUNT),
        (&d.production_targets, PRODUCTION_ACCOUNT),
    ] {
        let roles = &report["roles"];
        for (id, sid, principals, policy) in [
            (
                "TollgateControlRole",
                "TollgateRevokers",
                [broker_role("Revocations"), broker_role("Expiry")],
                "tollgate-control",
            ),
            (
                "TollgateControlReaderRole",
                "TollgateReaders",
                [broker_role("Requests"), broker_role("Reviews")],
                "tollgate-control-reader",
            ),
        ] {
            let role = &roles[id];
            assert_eq!(
                role["trust"]["Statement"],
                json!([{
                    "Sid": sid,
                    "Effect": "Allow",
                    "Principal": {"AWS": principals},
                    "Action": "sts:AssumeRole",
                    "Condition": condition
                }]),
                "{id} in {account}: no session tags, no source identity"
            );
            assert_eq!(role["path"], "/tollgate/");
            assert_eq!(role["max_session_duration"], 3600);
            assert_eq!(
                role["inline_policies"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .collect::<Vec<_>>(),
                [policy]
            );
            // The broker's functions name the same role.
            let name = role["name"].as_str().unwrap();
            let functions: Vec<&str> = if id == "TollgateControlRole" {
                vec!["RevocationsFunction", "ExpiryFunction"]
            } else {
                vec!["RequestsFunction", "ReviewsFunction"]
            };
            for f in functions {
                assert_eq!(
                    d.broker["functions"][f]["environment"]["TOLLGATE_CONTROL_ROLE"],
                    json!(format!("tollgate/{name}")),
                    "{f}"
                );
            }
        }
        let managed = format!("arn:aws:iam::{account}:role/tollgate/*");
        let describe = json!({
            "Sid": "DescribeManagedRoles", "Effect": "Allow",
            "Action": "iam:GetRole", "Resource": managed});
        assert_eq!(
            roles["TollgateControlReaderRole"]["inline_policies"]["tollgate-control-reader"]["Statement"],
            json!([describe])
        );
        assert_eq!(
            roles["TollgateControlRole"]["inline_policies"]["tollgate-control"]["Statement"],
            json!([
                {"Sid": "ListRoles", "Effect": "Allow", "Action": "iam:ListRoles", "Resource": "*"},
                describe,
                {
                    "Sid": "RevocationPolicyOnManagedRoles",
                    "Effect": "Allow",
                    "Action": ["iam:ListRolePolicies", "iam:GetRolePolicy",
                               "iam:PutRolePolicy", "iam:DeleteRolePolicy"],
                    "Resource": managed,
                    "Condition": {"StringEquals": {"aws:ResourceTag/tollgate:managed": "true"}}
                }
            ])
        );
    }
}

#[test]
fn parliament_finds_nothing_in_any_role_document_of_either_stack() {
    let d = deployment();
    let mut docs = Vec::new();
    let mut roles = 0;
    for report in [&d.broker, &d.staging_targets, &d.production_targets] {
        for role in report["roles"].as_object().unwrap().values() {
            roles += 1;
            let name = role["name"].as_str().unwrap();
            docs.push(IamDocument {
                name: format!("{name} trust"),
                trust_of: Some(role["arn"].as_str().unwrap().to_owned()),
                document: role["trust"].clone(),
            });
            for (policy, doc) in role["inline_policies"].as_object().unwrap() {
                docs.push(IamDocument {
                    name: format!("{name} {policy}"),
                    trust_of: None,
                    document: doc.clone(),
                });
            }
        }
    }
    // Five function roles, the policy publisher and two control roles per
    // target account, each with its trust policy and inline policies; four
    // example roles with their trust policies (their permissions are
    // managed policies).
    assert_eq!(roles, 5 + 1 + 2 * 2 + 4);
    assert!(docs.len() >= roles + 5 + 1 + 2 * 2, "{}", docs.len());
    assert_eq!(iam_lint(&docs).unwrap(), vec![]);
}

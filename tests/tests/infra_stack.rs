//! The broker stack as CloudFormation builds it: `infra/template.yaml`,
//! translated by aws-sam-translator and created in the local emulator
//! (`scripts/infra-stack`), must define the same table as the provisioning
//! code, grant each function exactly DESIGN.md's permissions, route exactly
//! DESIGN.md's API, and `infra/target-role.yaml`, created in another account
//! as a StackSet would, must trust only the credentials function's role.
//!
//! One emulator and one deployment serve every test in this file; each test
//! reads what it needs through the AWS SDK for Rust or from the helper's
//! report of what the emulator holds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed step is a failed test"
)]

use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::types::KeySchemaElement;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use tollgate::aws::testing::{Emulator, repo_root, sdk_config_for};
use tollgate::aws::{EXAMPLE_ROLES, create_table};

const BROKER_ACCOUNT: &str = "123456789012";
const TARGET_ACCOUNT: &str = "111111111111";
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
                &format!("SettingsSecretArn={SETTINGS_SECRET}"),
                "--param",
                &format!("TargetAccountIds={TARGET_ACCOUNT}"),
            ],
        );
        let credentials_role = broker["outputs"]["CredentialsFunctionRoleArn"]
            .as_str()
            .expect("the stack outputs the credentials role")
            .to_owned();
        let target_role_stack = |env: &str| {
            infra_stack(
                &endpoint,
                &[
                    "create",
                    "--account",
                    TARGET_ACCOUNT,
                    "--stack",
                    &format!("tollgate-targets-{env}"),
                    "--template",
                    repo_root()
                        .join("infra/target-role.yaml")
                        .to_str()
                        .expect("utf-8 path"),
                    "--param",
                    &format!("BrokerCredentialsRoleArn={credentials_role}"),
                    "--param",
                    &format!("AccountEnvironment={env}"),
                ],
            )
        };
        let production_targets = target_role_stack("production");
        let staging_targets = target_role_stack("staging");
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
    assert_eq!(deployed.indexes.len(), 3, "three GSIs: {deployed:?}");
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

/// A role's inline permissions as (action, resource, condition) triples, with
/// the stack's own ARNs replaced by stable names.
fn permissions(d: &Deployment, role: &str) -> BTreeSet<(String, String, String)> {
    let report = &d.broker;
    let table = format!(
        "arn:aws:dynamodb:us-east-1:{BROKER_ACCOUNT}:table/{}",
        physical_id(report, "Table")
    );
    let log_group = |fn_name: &str| {
        format!(
            "arn:aws:logs:us-east-1:{BROKER_ACCOUNT}:log-group:{}",
            physical_id(report, &format!("{fn_name}LogGroup"))
        )
    };
    let mut names = vec![
        (format!("{table}/index/*"), "<table>/index/*".to_owned()),
        (table.clone(), "<table>".to_owned()),
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
    let as_list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_owned()).collect(),
            Value::Null => vec![],
            other => panic!("unexpected policy element {other}"),
        }
    };
    let mut out = BTreeSet::new();
    let policies = report["roles"][role]["inline_policies"]
        .as_object()
        .unwrap_or_else(|| panic!("role `{role}` has no inline policies"));
    for doc in policies.values() {
        for st in doc["Statement"].as_array().unwrap() {
            assert_eq!(st["Effect"], "Allow", "{role}: only Allow statements");
            assert!(st.get("NotAction").is_none() && st.get("NotResource").is_none());
            let condition = st.get("Condition").map_or(String::new(), Value::to_string);
            for action in as_list(&st["Action"]) {
                for resource in as_list(&st["Resource"]) {
                    out.insert((action.clone(), rename(&resource), condition.clone()));
                }
            }
        }
    }
    out
}

fn expected(role: &str) -> BTreeSet<(String, String, String)> {
    let log = match role {
        "RequestsFunctionRole" => "<requests log group>",
        "ReviewsFunctionRole" => "<reviews log group>",
        "CredentialsFunctionRole" => "<credentials log group>",
        "RevocationsFunctionRole" => "<revocations log group>",
        "ExpiryFunctionRole" => "<expiry log group>",
        other => panic!("unknown role {other}"),
    };
    let plain = |a: &str, r: &str| (a.to_owned(), r.to_owned(), String::new());
    let managed_here = format!("arn:aws:iam::{BROKER_ACCOUNT}:role/tollgate/*");
    let tagged = r#"{"StringEquals":{"aws:ResourceTag/tollgate:managed":"true"}}"#;
    let mut e = BTreeSet::from([
        plain("logs:CreateLogStream", log),
        plain("logs:PutLogEvents", log),
        plain("dynamodb:GetItem", "<table>"),
        plain("dynamodb:Query", "<table>"),
        plain("dynamodb:PutItem", "<table>"),
        plain("dynamodb:UpdateItem", "<table>"),
        plain("dynamodb:ConditionCheckItem", "<table>"),
        plain("dynamodb:Query", "<table>/index/*"),
    ]);
    if matches!(
        role,
        "RequestsFunctionRole" | "ReviewsFunctionRole" | "RevocationsFunctionRole"
    ) {
        e.insert(plain("secretsmanager:GetSecretValue", "<settings secret>"));
    }
    // Reviews reads the role's tags too: approve and deny policies and the
    // visibility check are decided over them.
    if matches!(
        role,
        "RequestsFunctionRole" | "ReviewsFunctionRole" | "CredentialsFunctionRole"
    ) {
        e.insert(plain("iam:GetRole", &managed_here));
    }
    if role == "CredentialsFunctionRole" {
        let any_account = "arn:aws:iam::*:role/tollgate/*".to_owned();
        let scoped = format!(
            r#""StringEquals":{{"aws:ResourceAccount":["{TARGET_ACCOUNT}"],"aws:ResourceTag/tollgate:managed":"true"}}"#
        );
        e.insert((
            "sts:AssumeRole".into(),
            any_account.clone(),
            format!(r#"{{{scoped},"StringLike":{{"sts:RoleSessionName":"tollgate-*"}}}}"#),
        ));
        e.insert((
            "sts:TagSession".into(),
            any_account.clone(),
            format!(
                r#"{{"ForAllValues:StringEquals":{{"aws:TagKeys":["tollgate:request","tollgate:approver","tollgate:ticket"]}},{scoped}}}"#
            ),
        ));
        e.insert((
            "sts:SetSourceIdentity".into(),
            any_account,
            format!("{{{scoped}}}"),
        ));
    }
    if matches!(role, "RevocationsFunctionRole" | "ExpiryFunctionRole") {
        for a in [
            "iam:GetRole",
            "iam:ListRolePolicies",
            "iam:GetRolePolicy",
            "iam:PutRolePolicy",
            "iam:DeleteRolePolicy",
        ] {
            e.insert((a.to_owned(), managed_here.clone(), tagged.to_owned()));
        }
    }
    e
}

/// Conditions compare as canonical JSON (keys sorted).
fn canonical(set: BTreeSet<(String, String, String)>) -> BTreeSet<(String, String, String)> {
    set.into_iter()
        .map(|(a, r, c)| {
            let c = if c.is_empty() {
                c
            } else {
                let v: Value = serde_json::from_str(&c).unwrap();
                v.to_string()
            };
            (a, r, c)
        })
        .collect()
}

#[test]
fn each_function_role_holds_exactly_the_permissions_of_the_design() {
    let d = deployment();
    for f in FUNCTIONS {
        let role = format!("{f}Role");
        assert_eq!(
            canonical(permissions(d, &role)),
            canonical(expected(&role)),
            "permissions of {role}"
        );
        let trust = &d.broker["roles"][&role]["trust"]["Statement"];
        assert_eq!(
            trust,
            &serde_json::json!([{
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole"
            }]),
            "{role} is assumable by Lambda only"
        );
    }
}

#[test]
fn only_credentials_assumes_roles_and_only_revocations_and_expiry_write_role_policies() {
    let d = deployment();
    for f in FUNCTIONS {
        let role = format!("{f}Role");
        let perms = permissions(d, &role);
        let assumes = perms.iter().any(|(a, _, _)| a.starts_with("sts:"));
        let writes = perms
            .iter()
            .any(|(a, _, _)| a == "iam:PutRolePolicy" || a == "iam:DeleteRolePolicy");
        assert_eq!(assumes, f == "CredentialsFunction", "{role} and sts");
        assert_eq!(
            writes,
            f == "RevocationsFunction" || f == "ExpiryFunction",
            "{role} and role policy writes"
        );
        for (action, resource, condition) in &perms {
            assert!(!action.contains('*'), "{role}: wildcard action {action}");
            if action.starts_with("dynamodb:") {
                assert!(
                    resource == "<table>" || resource == "<table>/index/*",
                    "{role}: {action} on {resource}"
                );
            }
            if action.starts_with("sts:") || (writes && action.starts_with("iam:")) {
                assert!(
                    condition.contains(r#""aws:ResourceTag/tollgate:managed":"true""#),
                    "{role}: {action} without the managed-role tag condition"
                );
            }
        }
    }
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
        assert_eq!(cfg["architectures"], serde_json::json!(["x86_64"]), "{f}");
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
fn api_routes_are_exactly_those_of_the_design_and_only_health_and_the_console_skip_the_authorizer()
{
    let d = deployment();
    let api = &d.broker["translated"]["Resources"]["HttpApi"];
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
        (
            "POST /requests/{id}/approve".to_owned(),
            expect("ReviewsFunction", "Jwt"),
        ),
        (
            "POST /requests/{id}/deny".to_owned(),
            expect("ReviewsFunction", "Jwt"),
        ),
        (
            "POST /requests/{id}/credentials".to_owned(),
            expect("CredentialsFunction", "Jwt"),
        ),
        (
            "POST /requests/{id}/revoke".to_owned(),
            expect("RevocationsFunction", "Jwt"),
        ),
        ("GET /health".to_owned(), expect("RequestsFunction", "NONE")),
        ("GET /ui".to_owned(), expect("RequestsFunction", "NONE")),
        (
            "GET /ui/{proxy+}".to_owned(),
            expect("RequestsFunction", "NONE"),
        ),
    ]);
    assert_eq!(routes, want);

    let jwt = &body["components"]["securitySchemes"]["Jwt"]["x-amazon-apigateway-authorizer"];
    assert_eq!(jwt["type"], "jwt");
    assert_eq!(jwt["identitySource"], "$request.header.Authorization");
    assert_eq!(
        jwt["jwtConfiguration"],
        serde_json::json!({"issuer": {"Ref": "JwtIssuer"}, "audience": {"Ref": "JwtAudience"}})
    );

    let stage = &d.broker["translated"]["Resources"]["HttpApiApiGatewayDefaultStage"]["Properties"];
    assert_eq!(
        stage["AccessLogSettings"]["DestinationArn"],
        serde_json::json!({"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]})
    );
    let format: Value =
        serde_json::from_str(stage["AccessLogSettings"]["Format"].as_str().unwrap())
            .expect("access log lines are JSON");
    assert_eq!(format["request_id"], "$context.requestId");
    assert_eq!(
        stage["DefaultRouteSettings"],
        serde_json::json!({
            "ThrottlingRateLimit": {"Ref": "ApiThrottleRateLimit"},
            "ThrottlingBurstLimit": {"Ref": "ApiThrottleBurstLimit"}
        })
    );
}

#[test]
fn expiry_runs_every_minute_from_an_eventbridge_schedule() {
    let d = deployment();
    let schedules = d.broker["schedules"].as_array().unwrap();
    assert_eq!(schedules.len(), 1, "{schedules:?}");
    let s = &schedules[0];
    assert_eq!(s["schedule"], "rate(1 minute)");
    assert_eq!(s["state"], "ENABLED");
    let expiry = d.broker["functions"]["ExpiryFunction"]["name"]
        .as_str()
        .unwrap();
    assert_eq!(
        s["targets"],
        serde_json::json!([format!(
            "arn:aws:lambda:us-east-1:{BROKER_ACCOUNT}:function:{expiry}"
        )])
    );
    // One sweep at a time, unless the account cannot reserve concurrency.
    assert_eq!(
        d.broker["translated"]["Resources"]["ExpiryFunction"]["Properties"]["ReservedConcurrentExecutions"],
        serde_json::json!({"Fn::If": ["ReserveExpiryConcurrency", 1, {"Ref": "AWS::NoValue"}]})
    );
}

#[test]
fn every_function_has_an_error_alarm_and_a_throttle_alarm() {
    let d = deployment();
    let resources = d.broker["translated"]["Resources"].as_object().unwrap();
    let mut alarms = BTreeSet::new();
    for r in resources.values() {
        if r["Type"] != "AWS::CloudWatch::Alarm" {
            continue;
        }
        let p = &r["Properties"];
        assert_eq!(p["Namespace"], "AWS/Lambda");
        assert_eq!(p["Threshold"], 1);
        let function = p["Dimensions"][0]["Value"]["Ref"].as_str().unwrap();
        alarms.insert((
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
    assert_eq!(alarms, want);
}

#[test]
fn log_groups_have_the_configured_retention() {
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
            serde_json::json!({"Ref": "LogRetentionDays"}),
            "{id}"
        );
    }
    for f in FUNCTIONS {
        assert_eq!(
            resources[f]["Properties"]["LoggingConfig"]["LogGroup"],
            serde_json::json!({"Ref": format!("{}LogGroup", f.trim_end_matches("Function"))}),
            "{f} logs to its own group"
        );
    }
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

// ------------------------------------------------------------ target roles

/// The tags `tollgate local provision` gives the example role `name`: the
/// target-role stack must give the deployed role the same ones, since the
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

/// An IAM client acting in the target account, as the StackSet did.
async fn target_account_iam(endpoint: &str) -> aws_sdk_iam::Client {
    let sts = aws_sdk_sts::Client::new(&sdk_config_for(endpoint).await);
    let creds = sts
        .assume_role()
        .role_arn(format!(
            "arn:aws:iam::{TARGET_ACCOUNT}:role/OrganizationAccountAccessRole"
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

#[tokio::test]
async fn target_roles_carry_the_provisioned_tags_under_the_managed_path() {
    let d = deployment();
    let iam = target_account_iam(&d.endpoint).await;
    let all: BTreeSet<&str> = EXAMPLE_ROLES.iter().map(|r| r.name).collect();
    let created: BTreeSet<&str> = [&d.staging_targets, &d.production_targets]
        .iter()
        .flat_map(|r| r["roles"].as_object().unwrap().keys())
        .map(String::as_str)
        .collect();
    assert_eq!(
        created, all,
        "the two environments create every example role"
    );
    for (report, names) in [
        (&d.staging_targets, vec!["StagingDeveloper"]),
        (
            &d.production_targets,
            vec!["ProductionOperator", "ProductionBreakGlass", "DataAnalyst"],
        ),
    ] {
        let created: BTreeSet<&str> = report["roles"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(created, names.iter().copied().collect());
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
                format!("arn:aws:iam::{TARGET_ACCOUNT}:role/tollgate/{name}")
            );
            let example = EXAMPLE_ROLES.iter().find(|r| r.name == name).unwrap();
            assert_eq!(role.path(), example.path);
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

#[test]
fn target_roles_trust_only_the_credentials_role_with_a_source_identity() {
    let d = deployment();
    let credentials_role = &d.broker["outputs"]["CredentialsFunctionRoleArn"];
    for report in [&d.staging_targets, &d.production_targets] {
        for (name, role) in report["roles"].as_object().unwrap() {
            let statements = role["trust"]["Statement"].as_array().unwrap();
            let mut actions = BTreeSet::new();
            for st in statements {
                assert_eq!(st["Effect"], "Allow", "{name}");
                assert_eq!(
                    st["Principal"],
                    serde_json::json!({"AWS": credentials_role}),
                    "{name} trusts only the credentials function's role"
                );
                let acts: Vec<&str> = match &st["Action"] {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(a) => a.iter().map(|x| x.as_str().unwrap()).collect(),
                    other => panic!("{name}: action {other}"),
                };
                for a in acts {
                    actions.insert(a.to_owned());
                    if a == "sts:AssumeRole" {
                        assert_eq!(
                            st["Condition"]["Null"]["sts:SourceIdentity"], "false",
                            "{name}: AssumeRole requires a source identity"
                        );
                        assert_eq!(
                            st["Condition"]["StringLike"]["sts:RoleSessionName"], "tollgate-*",
                            "{name}: session names are tollgate-<request id>"
                        );
                    }
                    if a == "sts:TagSession" {
                        assert_eq!(
                            st["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"],
                            serde_json::json!([
                                "tollgate:request",
                                "tollgate:approver",
                                "tollgate:ticket"
                            ]),
                            "{name}: only Tollgate's session tags"
                        );
                    }
                }
            }
            assert_eq!(
                actions,
                BTreeSet::from([
                    "sts:AssumeRole".to_owned(),
                    "sts:SetSourceIdentity".to_owned(),
                    "sts:TagSession".to_owned()
                ]),
                "{name}"
            );
        }
    }
}

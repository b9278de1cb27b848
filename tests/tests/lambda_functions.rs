//! The compiled Lambda function binaries, run as Lambda runs them: each is
//! started with `AWS_LAMBDA_RUNTIME_API` pointing at a local Runtime API
//! (`tollgate_tests::runtime_api`), polls for work, and answers API Gateway
//! HTTP API (payload 2.0) events built from the real fixtures, or the
//! EventBridge scheduled event, with the emulator behind. Every event carries
//! a bearer token from a local OpenID Connect issuer
//! (`tollgate_tests::issuer`), which the functions verify themselves, and
//! the claims API Gateway's authorizer would add (which they ignore). Also
//! measures each function's init time (process start to first poll).
//!
//! The binaries must be built first (`cargo build -p tollgate-requests ...`
//! or `make build`); the test says so when they are not.

// Helpers outside `#[test]` functions fail the test loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use tollgate::aws::testing::{Emulator, repo_root, unique_name};
use tollgate::aws::{Created, Store};
use tollgate::domain::{AccessRequest, RoleArn, Timestamp};
use tollgate_tests::apigw::{authorizer_claims, fixture, http_event, response_parts};
use tollgate_tests::issuer::{AUDIENCE, FakeIssuer};
use tollgate_tests::runtime_api::{FunctionProcess, Outcome, RuntimeApi, workspace_binary};
use tollgate_tests::sts_proxy::StsProxy;

const FUNCTIONS: [&str; 5] = [
    "requests",
    "reviews",
    "credentials",
    "revocations",
    "expiry",
];
const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);

struct Setup {
    endpoint: String,
    table: String,
    logs: tempfile::TempDir,
    issuer: FakeIssuer,
}

impl Setup {
    async fn new() -> Self {
        let emulator = Emulator::shared().unwrap_or_else(|e| panic!("emulator: {e}"));
        let clients = emulator.clients().await;
        let table = unique_name("lambda");
        tollgate::aws::provision(&clients.dynamodb, &clients.iam, &clients.sts, &table)
            .await
            .unwrap();
        clients.audit_signer().await.unwrap();
        Self {
            endpoint: emulator.endpoint().to_owned(),
            table,
            logs: tempfile::tempdir().unwrap(),
            issuer: FakeIssuer::start().await,
        }
    }

    /// The environment a deployed function gets, pointed at the emulator.
    fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_SESSION_TOKEN", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("TOLLGATE_TABLE", self.table.as_str()),
            ("TOLLGATE_ROLE_CACHE_SECONDS", "0"),
            (
                "TOLLGATE_BROKER_ACCOUNT",
                tollgate::aws::LOCAL_BROKER_ACCOUNT,
            ),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
            ("TOLLGATE_JWT_AUDIENCE", AUDIENCE),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .chain([("TOLLGATE_JWT_ISSUER".to_owned(), self.issuer.issuer())])
        .chain(
            tollgate::aws::local_environment()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v)),
        )
        .chain([(
            "TOLLGATE_POLICY_DIR".to_owned(),
            repo_root()
                .join("infra")
                .join("policies")
                .display()
                .to_string(),
        )])
        .collect()
    }

    /// Starts function `name` against a fresh Runtime API; returns both and
    /// the init time.
    async fn start(&self, name: &str) -> (RuntimeApi, FunctionProcess, Duration) {
        self.start_with(name, &[]).await
    }

    /// [`Setup::start`] with further environment variables.
    async fn start_with(
        &self,
        name: &str,
        extra: &[(&str, &str)],
    ) -> (RuntimeApi, FunctionProcess, Duration) {
        let binary = workspace_binary(&format!("tollgate-{name}"), &format!("tollgate-{name}"));
        let runtime = RuntimeApi::start().await;
        let mut env = self.env();
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let process = FunctionProcess::spawn(&binary, &runtime, &env, self.logs.path());
        let first = runtime
            .wait_for_polls(1, Duration::from_secs(60))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "{name} never polled for work; init error: {:?}",
                    runtime.init_error()
                )
            });
        let init = first.duration_since(process.started);
        (runtime, process, init)
    }
}

fn role(name: &str) -> String {
    tollgate::aws::example_role(name).unwrap().arn()
}

/// Token claims (beyond `iss`, `aud`, `iat`, `exp`) for a user.
fn user(sub: &str, groups: &[&str], mfa: bool, extra: &[(&str, &str)]) -> Value {
    let mut c = json!({
        "sub": sub,
        "groups": groups,
        "amr": if mfa { vec!["pwd", "mfa"] } else { vec!["pwd"] },
    });
    for (k, v) in extra {
        c[*k] = json!(v);
    }
    c
}

fn alice() -> Value {
    user(
        "alice",
        &["developers", "oncall"],
        true,
        &[("department", "data")],
    )
}

fn bob() -> Value {
    user("bob", &["sre"], true, &[])
}

impl Setup {
    /// An HTTP API event as API Gateway delivers it for a caller holding a
    /// token with `who`'s claims (signed with the issuer's key `k1`): the
    /// bearer token in `authorization`, and the authorizer's flattened copy
    /// of its claims in the request context. `None`: neither.
    async fn http(
        &self,
        runtime: &RuntimeApi,
        method: &str,
        path: &str,
        body: Option<Value>,
        who: Option<&Value>,
    ) -> (u16, Value) {
        let token = who.map(|c| self.issuer.token("k1", c));
        self.send(runtime, method, path, body, who, token.as_deref())
            .await
    }

    /// The same with any token and any authorizer claims, as a direct
    /// invoke can send them.
    async fn send(
        &self,
        runtime: &RuntimeApi,
        method: &str,
        path: &str,
        body: Option<Value>,
        claims: Option<&Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        let claims = claims.map(authorizer_claims);
        let mut event = http_event(method, path, body.as_deref(), claims.as_ref());
        if let Some(t) = token {
            event["headers"]["authorization"] = json!(format!("Bearer {t}"));
        }
        let response = runtime.invoke(event, INVOKE_TIMEOUT).await.response();
        response_parts(&response)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_function_binary_serves_only_its_routes_through_the_runtime_api() {
    let setup = Setup::new().await;
    let mut init_times = BTreeMap::new();

    // requests: health, create (auto-approved and pending), show, refusals.
    let (rt, mut requests, init) = setup.start("requests").await;
    init_times.insert("requests", init);
    let (status, body) = runtime_health(&rt).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let staging = json!({"role_arn": role("StagingDeveloper"), "duration_seconds": 900, "reason": "lambda test"});
    let (status, created) = setup
        .http(
            &rt,
            "POST",
            "/requests",
            Some(staging.clone()),
            Some(&alice()),
        )
        .await;
    assert_eq!(
        (status, created["status"].as_str()),
        (201, Some("active")),
        "{created}"
    );
    let production = json!({"role_arn": role("ProductionOperator"), "duration_seconds": 1800,
                            "reason": "lambda test", "ticket": "INC-77"});
    let (status, pending) = setup
        .http(&rt, "POST", "/requests", Some(production), Some(&alice()))
        .await;
    assert_eq!(
        (status, pending["status"].as_str()),
        (201, Some("pending")),
        "{pending}"
    );
    let id = pending["id"].as_str().unwrap().to_owned();
    let (status, _) = setup
        .http(&rt, "POST", "/requests", Some(staging), None)
        .await;
    assert_eq!(status, 401, "no token, no identity");
    let (status, shown) = setup
        .http(&rt, "GET", &format!("/requests/{id}"), None, Some(&bob()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(shown["events"].as_array().unwrap().len(), 1);
    let (status, reviewable) = setup
        .http(&rt, "GET", "/requests?scope=reviewable", None, Some(&bob()))
        .await;
    assert_eq!(status, 200);
    assert!(
        reviewable["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == id.as_str())
    );
    let (status, _) = setup
        .http(
            &rt,
            "POST",
            &format!("/requests/{id}/approve"),
            Some(json!({"digest": pending["digest"]})),
            Some(&bob()),
        )
        .await;
    assert_eq!(status, 404, "approve is not a route of `requests`");
    assert!(requests.is_running());
    assert!(
        requests
            .stdout()
            .lines()
            .any(|l| l.contains("\"tollgate.audit\"") && l.contains(&id))
    );

    // reviews: approve; nothing else is mounted.
    let (rt, _reviews, init) = setup.start("reviews").await;
    init_times.insert("reviews", init);
    let (status, _) = runtime_health(&rt).await;
    assert_eq!(status, 404);
    let (status, approved) = setup
        .http(
            &rt,
            "POST",
            &format!("/requests/{id}/approve"),
            Some(json!({"digest": pending["digest"]})),
            Some(&bob()),
        )
        .await;
    assert_eq!(
        (status, approved["status"].as_str()),
        (200, Some("active")),
        "{approved}"
    );

    // credentials: requester only (anyone else: as if there were no such
    // request); the credentials work; and the function never reaches a
    // control role (the template gives it none), only the target role.
    let sts = StsProxy::start(&setup.endpoint).await;
    let (rt, credentials, init) = setup
        .start_with("credentials", &[("AWS_ENDPOINT_URL_STS", &sts.endpoint())])
        .await;
    init_times.insert("credentials", init);
    let (status, _) = setup
        .http(
            &rt,
            "POST",
            &format!("/requests/{id}/credentials"),
            Some(json!({})),
            Some(&bob()),
        )
        .await;
    assert_eq!(status, 404);
    let (status, creds) = setup
        .http(
            &rt,
            "POST",
            &format!("/requests/{id}/credentials"),
            Some(json!({})),
            Some(&alice()),
        )
        .await;
    assert_eq!(status, 200, "{creds}");
    assert!(sts.control_session_calls().is_empty());
    assert_eq!(sts.assume_role_calls().len(), 1);
    let arn = caller_arn(&setup.endpoint, &creds).await;
    assert_eq!(
        arn,
        format!(
            "arn:aws:sts::{}:assumed-role/ProductionOperator/tollgate-{id}",
            tollgate::aws::LOCAL_PRODUCTION_ACCOUNT
        )
    );
    let secret = creds["secret_access_key"].as_str().unwrap();
    assert!(
        !credentials.stdout().contains(secret),
        "a secret reached the function's log"
    );

    // revocations: an SRE ends the grant; the deny statement is on the role.
    let (rt, _revocations, init) = setup.start("revocations").await;
    init_times.insert("revocations", init);
    let (status, revoked) = setup
        .http(
            &rt,
            "POST",
            &format!("/requests/{id}/revoke"),
            Some(json!({"reason": "done"})),
            Some(&bob()),
        )
        .await;
    assert_eq!(
        (status, revoked["status"].as_str()),
        (200, Some("revoked")),
        "{revoked}"
    );
    let clients = Emulator::shared().unwrap().clients().await;
    let doc = clients
        .iam_in(tollgate::aws::LOCAL_PRODUCTION_ACCOUNT)
        .await
        .unwrap()
        .get_role_policy()
        .role_name("ProductionOperator")
        .policy_name("TollgateRevocations")
        .send()
        .await
        .expect("the revocation statement");
    assert!(doc.policy_document().contains(&format!("tollgate-{id}")));

    // expiry: a scheduled event sweeps what is due, once.
    let store = clients
        .store(setup.table.clone(), 400 * 86_400)
        .await
        .unwrap();
    let now = Timestamp::now();
    let overdue = seed(&store, "ProductionOperator", false, now.plus(-2 * 86_400)).await;
    let ended = seed(&store, "StagingDeveloper", true, now.plus(-7200)).await;
    let (rt, expiry, init) = setup.start("expiry").await;
    init_times.insert("expiry", init);
    let report = rt
        .invoke(fixture("eventbridge-scheduled.json"), INVOKE_TIMEOUT)
        .await
        .response();
    assert_eq!(report["lapsed"], 1, "{report}");
    assert_eq!(report["expired"], 1, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(
        store.get(overdue).await.unwrap().unwrap().status.as_str(),
        "lapsed"
    );
    assert_eq!(
        store.get(ended).await.unwrap().unwrap().status.as_str(),
        "expired"
    );
    let again = rt
        .invoke(fixture("eventbridge-scheduled.json"), INVOKE_TIMEOUT)
        .await
        .response();
    assert_eq!(
        (again["lapsed"].as_u64(), again["expired"].as_u64()),
        (Some(0), Some(0)),
        "{again}"
    );
    // One SweepRuns datapoint per completed sweep: the alarm that says the
    // sweep is not running treats a missing one as breaching.
    assert_eq!(sweep_runs(&expiry.stdout()), 2);

    for name in FUNCTIONS {
        eprintln!("init time {name}: {:?}", init_times[name]);
        assert!(
            init_times[name] < Duration::from_secs(10),
            "{name} took {:?} to start",
            init_times[name]
        );
    }
}

/// Starts function `name` with `env` and checks that it exits within 30 s
/// without ever polling for work (`why`: what it lacks, for the message).
async fn assert_exits_without_polling(
    setup: &Setup,
    name: &str,
    env: &[(String, String)],
    why: &str,
) {
    let binary = workspace_binary(&format!("tollgate-{name}"), &format!("tollgate-{name}"));
    let runtime = RuntimeApi::start().await;
    let mut process = FunctionProcess::spawn(&binary, &runtime, env, setup.logs.path());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while process.is_running() {
        assert!(
            std::time::Instant::now() < deadline,
            "{name} kept running {why}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        runtime
            .wait_for_polls(1, Duration::from_millis(10))
            .await
            .is_none(),
        "{name} polled for work {why}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_that_cannot_start_exits_without_polling() {
    let setup = Setup::new().await;
    let mut env = setup.env();
    env.push(("TOLLGATE_POLICY_DIR".into(), "/nonexistent/policies".into()));
    assert_exits_without_polling(&setup, "requests", &env, "without policies").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_refuses_to_start_with_a_development_clock_or_secret() {
    let setup = Setup::new().await;
    let clock = setup.logs.path().join("clock-offset");
    std::fs::write(&clock, "86400").unwrap();
    for (name, key, value) in [
        (
            "expiry",
            "TOLLGATE_DEV_CLOCK_FILE",
            clock.display().to_string(),
        ),
        (
            "requests",
            "TOLLGATE_DEV_CLOCK_FILE",
            clock.display().to_string(),
        ),
        (
            "credentials",
            "TOLLGATE_DEV_SECRET",
            "a-development-secret-0123456789".to_owned(),
        ),
    ] {
        let binary = workspace_binary(&format!("tollgate-{name}"), &format!("tollgate-{name}"));
        // The same environment without the local-only setting starts.
        let runtime = RuntimeApi::start().await;
        let _baseline = FunctionProcess::spawn(&binary, &runtime, &setup.env(), setup.logs.path());
        assert!(
            runtime
                .wait_for_polls(1, Duration::from_secs(60))
                .await
                .is_some(),
            "{name} did not start without {key}"
        );
        let mut env = setup.env();
        env.push((key.to_owned(), value));
        assert_exits_without_polling(&setup, name, &env, &format!("with {key} set")).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expiry_error_is_reported_to_the_runtime_as_an_invocation_error() {
    let setup = Setup::new().await;
    let binary = workspace_binary("tollgate-expiry", "tollgate-expiry");
    let runtime = RuntimeApi::start().await;
    let mut env = setup.env();
    // A table that does not exist: the sweep's first read fails.
    env.push(("TOLLGATE_TABLE".into(), unique_name("missing")));
    let process = FunctionProcess::spawn(&binary, &runtime, &env, setup.logs.path());
    match runtime
        .invoke(fixture("eventbridge-scheduled.json"), INVOKE_TIMEOUT)
        .await
    {
        Outcome::Error { body, .. } => {
            assert_eq!(body["errorType"], "internal", "{body}");
            assert_eq!(
                body["errorMessage"], "internal error",
                "no detail leaks: {body}"
            );
        }
        Outcome::Response(r) => panic!("the sweep succeeded on a missing table: {r}"),
    }
    assert_eq!(
        sweep_runs(&process.stdout()),
        0,
        "a failed sweep is not a run"
    );
}

/// How many SweepRuns EMF datapoints a function wrote to stdout.
fn sweep_runs(stdout: &str) -> usize {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["SweepRuns"] == 1 && l["Operation"] == "sweep")
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn cold_starts_are_measured_for_every_function() {
    let setup = Setup::new().await;
    let mut lines = Vec::new();
    for name in FUNCTIONS {
        let mut times = Vec::new();
        for _ in 0..3 {
            let (_rt, _process, init) = setup.start(name).await;
            times.push(init);
        }
        times.sort();
        let size = std::fs::metadata(workspace_binary(&format!("tollgate-{name}"), name))
            .map(|m| m.len())
            .unwrap_or(0);
        lines.push(format!(
            "{name:12} init median {:>7.1} ms (min {:.1}, max {:.1}); binary {:.1} MiB (this profile)",
            times[1].as_secs_f64() * 1000.0,
            times[0].as_secs_f64() * 1000.0,
            times[2].as_secs_f64() * 1000.0,
            size as f64 / 1_048_576.0
        ));
        assert!(times[1] < Duration::from_secs(10), "{name}: {times:?}");
    }
    eprintln!("{}", lines.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn deployed_settings_come_from_secrets_manager_and_page_tokens_survive_cold_starts() {
    let setup = Setup::new().await;
    let (hook, got) = tollgate_tests::webhooks::receiver("settings").await;
    let sm = aws_sdk_secretsmanager::Client::new(&Emulator::shared().unwrap().sdk_config().await);
    let secret = sm
        .create_secret()
        .name(unique_name("tollgate-settings"))
        .secret_string(
            json!({"webhook_urls": [hook], "webhook_signing_secret": "from-secrets-manager",
                   "pagination_key": "a-pagination-key-shared-by-every-instance"})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let arn = secret.arn().unwrap().to_owned();
    let start = |with_secret: bool| {
        let setup = &setup;
        let arn = arn.clone();
        async move {
            let binary = workspace_binary("tollgate-requests", "tollgate-requests");
            let runtime = RuntimeApi::start().await;
            let mut env = setup.env();
            if with_secret {
                env.push(("TOLLGATE_SETTINGS_SECRET_ARN".into(), arn));
            }
            let process = FunctionProcess::spawn(&binary, &runtime, &env, setup.logs.path());
            (runtime, process)
        }
    };
    let (first, _p1) = start(true).await;
    let production = json!({"role_arn": role("ProductionOperator"), "duration_seconds": 900,
                            "reason": "settings test", "ticket": "INC-5"});
    for _ in 0..3 {
        let (status, _) = setup
            .http(
                &first,
                "POST",
                "/requests",
                Some(production.clone()),
                Some(&alice()),
            )
            .await;
        assert_eq!(status, 201);
    }
    // The webhook from the secret got each pending request, signed with its secret.
    let received = got.lock().unwrap().clone();
    assert_eq!(received.len(), 3);
    let (headers, body) = &received[0];
    let ts: i64 = headers["x-tollgate-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        headers["x-tollgate-signature"].to_str().unwrap(),
        tollgate::api::notify::signature(&"from-secrets-manager".to_owned().into(), ts, body)
    );
    // A page token from one instance opens in another with the same key...
    let (_, page) = setup
        .http(&first, "GET", "/requests?limit=1", None, Some(&alice()))
        .await;
    let token = page["next_token"].as_str().unwrap().to_owned();
    let (second, _p2) = start(true).await;
    let (status, next) = setup
        .http(
            &second,
            "GET",
            &format!("/requests?limit=1&next_token={token}"),
            None,
            Some(&alice()),
        )
        .await;
    assert_eq!(status, 200, "{next}");
    assert_ne!(next["items"][0]["id"], page["items"][0]["id"]);
    // ...but not in one without it (a random key per process).
    let (third, _p3) = start(false).await;
    let (status, refused) = setup
        .http(
            &third,
            "GET",
            &format!("/requests?limit=1&next_token={token}"),
            None,
            Some(&alice()),
        )
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (400, Some("invalid_page_token"))
    );
}

async fn runtime_health(rt: &RuntimeApi) -> (u16, Value) {
    let event = fixture("apigw-v2-unauthenticated.json");
    response_parts(&rt.invoke(event, INVOKE_TIMEOUT).await.response())
}

/// Stores a request as if made at `at` (active at once when `active`).
async fn seed(
    store: &Store,
    role_name: &str,
    active: bool,
    at: Timestamp,
) -> tollgate::domain::RequestId {
    let arn = RoleArn::parse(&role(role_name)).unwrap();
    let new = tollgate::aws::testing::new_request(&arn, "alice", 3600, 1).unwrap();
    let (req, event) = AccessRequest::create(new, active, vec![], at);
    assert_eq!(
        store.create(&req, &event, None).await.unwrap(),
        Created::New
    );
    req.id
}

async fn caller_arn(endpoint: &str, creds: &Value) -> String {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sts::config::Credentials::new(
            creds["access_key_id"].as_str().unwrap(),
            creds["secret_access_key"].as_str().unwrap(),
            creds["session_token"].as_str().map(str::to_owned),
            None,
            "tollgate-lambda-test",
        ))
        .load()
        .await;
    aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_direct_invoke_with_forged_authorizer_claims_gets_nowhere() {
    let setup = Setup::new().await;
    let (rt, _requests, _) = setup.start("requests").await;
    let staging = json!({"role_arn": role("StagingDeveloper"), "duration_seconds": 900,
                         "reason": "forged claims"});
    // What a principal allowed to invoke the function directly can forge.
    let forged = user("mallory", &["developers", "sre"], true, &[]);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "mallory", "iss": setup.issuer.issuer(), "aud": AUDIENCE, "exp": now + 600}),
        &jsonwebtoken::EncodingKey::from_secret(b"guessable"),
    )
    .unwrap();
    let mut expired = forged.clone();
    expired["exp"] = json!(now - 3600);
    let mut other_audience = forged.clone();
    other_audience["aud"] = json!("another-app");
    let mut other_issuer = forged.clone();
    other_issuer["iss"] = json!("https://idp.example.com/");
    let refused = [
        ("claims alone", None),
        (
            "a token signed by an unpublished key under a published kid",
            Some(setup.issuer.forged_token("k1", &forged)),
        ),
        ("an HS256 token", Some(hs256)),
        ("an expired token", Some(setup.issuer.token("k1", &expired))),
        (
            "another audience",
            Some(setup.issuer.token("k1", &other_audience)),
        ),
        (
            "another issuer",
            Some(setup.issuer.token("k1", &other_issuer)),
        ),
        ("not a token", Some("not.a.token".to_owned())),
    ];
    for (what, token) in refused {
        let (status, body) = setup
            .send(
                &rt,
                "POST",
                "/requests",
                Some(staging.clone()),
                Some(&forged),
                token.as_deref(),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("unauthenticated")),
            "{what}: {body}"
        );
    }
    // A valid token for alice with claims forged for mallory: alice asks.
    let token = setup.issuer.token("k1", &alice());
    let (status, created) = setup
        .send(
            &rt,
            "POST",
            "/requests",
            Some(staging),
            Some(&forged),
            Some(&token),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["requester"]["sub"], "alice");
    assert_eq!(
        created["requester"]["groups"],
        json!(["developers", "oncall"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_issuers_keys_are_cached_refreshed_for_a_new_key_and_not_for_every_unknown_one() {
    let setup = Setup::new().await;
    let (rt, _requests, _) = setup.start("requests").await;
    assert_eq!(setup.issuer.fetches(), (0, 0), "nothing fetched at start");
    for _ in 0..3 {
        let (status, body) = setup
            .http(&rt, "GET", "/requests?scope=mine", None, Some(&alice()))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(setup.issuer.fetches(), (1, 1), "fetched once, then cached");
    // The issuer rotates: a token under the new key makes one refresh.
    setup.issuer.rotate("k2");
    let token = setup.issuer.token("k2", &alice());
    let (status, body) = setup
        .send(
            &rt,
            "GET",
            "/requests?scope=mine",
            None,
            Some(&alice()),
            Some(&token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(setup.issuer.fetches(), (2, 2));
    // Made-up key ids right after: refused without asking the issuer again.
    for kid in ["k3", "k4", "k5"] {
        let token = setup.issuer.forged_token(kid, &alice());
        let (status, _) = setup
            .send(
                &rt,
                "GET",
                "/requests?scope=mine",
                None,
                Some(&alice()),
                Some(&token),
            )
            .await;
        assert_eq!(status, 401, "{kid}");
    }
    assert_eq!(setup.issuer.fetches(), (2, 2), "refreshes are rate-limited");
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_reach_the_policies_exactly_as_the_token_holds_them_or_not_at_all() {
    let setup = Setup::new().await;
    let (rt, _requests, _) = setup.start("requests").await;
    let staging = json!({"role_arn": role("StagingDeveloper"), "duration_seconds": 900,
                         "reason": "groups"});
    let spaced = user(
        "alice",
        &["developers", "Data Engineers", "not admins"],
        true,
        &[],
    );
    let (status, created) = setup
        .http(
            &rt,
            "POST",
            "/requests",
            Some(staging.clone()),
            Some(&spaced),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["requester"]["groups"],
        json!(["Data Engineers", "developers", "not admins"])
    );
    let many: Vec<String> = (0..100).map(|i| format!("team-{i}")).collect();
    let mut too_many = alice();
    too_many["groups"] = json!([many, vec!["developers".to_owned()]].concat());
    let mut too_long = alice();
    too_long["groups"] = json!(["developers", "x".repeat(257)]);
    let mut not_text = alice();
    not_text["groups"] = json!(["developers", 42]);
    for (what, who, says) in [
        ("101 groups", too_many, "at most 100"),
        ("a group of 257 characters", too_long, "257 characters"),
        ("a numeric group", not_text, "not a string"),
    ] {
        let (status, body) = setup
            .http(&rt, "POST", "/requests", Some(staging.clone()), Some(&who))
            .await;
        assert_eq!(status, 401, "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{what}: {message}");
    }
}

/// A copy of the example policies plus `extra` (`name`, text) files, as a
/// stored policy document.
fn policy_document(extra: &[(&str, &str)]) -> tollgate::policy::PolicyDocument {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo_root().join("infra/policies")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    for (name, text) in extra {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    tollgate::policy::PolicyDocument::from_dir(dir.path()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_decides_with_the_published_set_keeps_it_over_an_invalid_one_and_needs_the_store_to_start()
 {
    let setup = Setup::new().await;
    let s3 = tollgate::aws::s3_client(&Emulator::shared().unwrap().sdk_config().await);
    let bucket = unique_name("lambda-policies").to_lowercase();
    tollgate::aws::ensure_bucket(&s3, &bucket).await.unwrap();
    let object =
        tollgate::aws::PolicyObject::new(s3.clone(), bucket.clone(), "policies.json".into());
    // Published before the cold start: staging grants over 30 minutes now
    // need an approval, unlike in the bundled set.
    let doc = policy_document(&[(
        "staging-short.cedar",
        r#"@id("staging-auto-approve-30m")
forbid (principal, action == Tollgate::Action::"auto_approve", resource)
when { resource.hasTag("environment") && resource.getTag("environment") == "staging" &&
       context.duration_seconds > 1800 };"#,
    )]);
    let version = object.publish(doc.to_bytes(), &doc.digest()).await.unwrap();
    let (runtime, process, _) = setup
        .start_with(
            "requests",
            &[
                ("TOLLGATE_POLICY_BUCKET", &bucket),
                ("TOLLGATE_POLICY_REFRESH_SECONDS", "0"),
            ],
        )
        .await;
    let staging = json!({"role_arn": role("StagingDeveloper"), "duration_seconds": 3600,
                         "reason": "policy store", "ticket": "CHG-7"});
    let who = alice();
    let dry_run = || {
        setup.http(
            &runtime,
            "POST",
            "/requests?dry_run=true",
            Some(staging.clone()),
            Some(&who),
        )
    };
    let (status, answer) = dry_run().await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (
            answer["outcome"].as_str(),
            answer["policy_version"].as_str()
        ),
        (Some("pending"), Some(version.as_str())),
        "{answer}"
    );

    // Written behind publish's back: an invalid set is ignored, counted.
    s3.put_object()
        .bucket(&bucket)
        .key("policies.json")
        .body(br#"{"format":"tollgate-policies/1","files":{"bad.cedar":"permit (principal, action, resource) when { context.nope };"}}"#.to_vec().into())
        .send()
        .await
        .unwrap();
    let (_, answer) = dry_run().await;
    assert_eq!(answer["policy_version"], version.as_str(), "{answer}");
    assert_eq!(answer["outcome"], "pending");
    assert!(process.stdout().contains("\"PolicyLoadFailures\""));

    // A store that cannot be read refuses the cold start: serving the
    // bundled set instead could undo a published tightening.
    let mut env = setup.env();
    env.push((
        "TOLLGATE_POLICY_BUCKET".into(),
        unique_name("no-such-bucket").to_lowercase(),
    ));
    assert_exits_without_polling(&setup, "requests", &env, "without its policy store").await;
}

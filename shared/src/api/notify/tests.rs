use super::*;
use crate::domain::{
    GrantDuration, Identity, NewRequest, Reason, RequestId, RoleArn, Ticket, Timestamp, UserId,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use std::sync::Mutex;
use std::time::Instant;

fn request(reason: &str) -> AccessRequest {
    let now = Timestamp::from_unix(1_800_000_000);
    let new = NewRequest {
        id: RequestId::generate(now),
        requester: Identity {
            sub: UserId::parse("alice").unwrap(),
            groups: vec!["developers".into()],
            tags: Default::default(),
            mfa: false,
        },
        role_arn: RoleArn::parse("arn:aws:iam::123456789012:role/tollgate/ProductionOperator")
            .unwrap(),
        duration: GrantDuration::new(3600, 43_200).unwrap(),
        reason: Reason::parse(reason).unwrap(),
        ticket: Some(Ticket::parse("INC-42").unwrap()),
        session_policy: None,
        approvals_required: 1,
        pending_ttl_seconds: 86_400,
    };
    AccessRequest::create(new, false, vec!["p1".into()], now).0
}

type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

async fn receiver(status: StatusCode, delay: Duration) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route(
            "/hook/{token}",
            post(
                move |State(seen): State<Seen>, headers: HeaderMap, body: Bytes| async move {
                    tokio::time::sleep(delay).await;
                    seen.lock().unwrap().push((headers, body));
                    status
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook/T0KEN-SECRET"), seen)
}

fn secret() -> SecretString {
    SecretString::from("webhook-signing-secret")
}

#[tokio::test]
async fn a_pending_request_is_posted_signed_and_slack_compatible() {
    let (url, seen) = receiver(StatusCode::OK, Duration::ZERO).await;
    let n = Notifier::new(&[SecretString::from(url)], Some(secret()), DEFAULT_BUDGET).unwrap();
    let req = request("deploy <!channel> fix & roll back");
    let report = n.notify(Notice::Pending(&req)).await;
    assert_eq!(
        report,
        NotifyReport {
            delivered: 1,
            failed: 0
        }
    );
    let seen = seen.lock().unwrap();
    let (headers, body) = &seen[0];
    let ts: i64 = headers["x-tollgate-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((ts - Timestamp::now().unix()).abs() < 60);
    let sig = headers["x-tollgate-signature"].to_str().unwrap();
    assert_eq!(sig, signature(&secret(), ts, body));
    // The receiver's own check: recompute over "<timestamp>.<body>".
    let mut signed = ts.to_string().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(body);
    assert!(crate::api::crypto::hmac_sha256_verify(
        b"webhook-signing-secret",
        &[&signed],
        &hex::decode(sig.strip_prefix("v1=").unwrap()).unwrap()
    ));
    let msg: Value = serde_json::from_slice(body).unwrap();
    assert!(
        msg["text"]
            .as_str()
            .unwrap()
            .contains("alice asks for ProductionOperator")
    );
    assert_eq!(msg["tollgate"]["event"], "request.pending");
    assert_eq!(msg["tollgate"]["request_id"], req.id.to_string());
    let fields = msg["attachments"][0]["fields"].as_array().unwrap();
    let reason = fields.iter().find(|f| f["title"] == "Reason").unwrap();
    assert_eq!(
        reason["value"],
        "deploy &lt;!channel&gt; fix &amp; roll back"
    );
    assert!(
        fields
            .iter()
            .any(|f| f["title"] == "Ticket" && f["value"] == "INC-42")
    );
}

#[tokio::test]
async fn failing_and_slow_webhooks_never_hold_the_request_beyond_the_budget() {
    let (ok, ok_seen) = receiver(StatusCode::OK, Duration::ZERO).await;
    let (broken, _) = receiver(StatusCode::INTERNAL_SERVER_ERROR, Duration::ZERO).await;
    let (slow, _) = receiver(StatusCode::OK, Duration::from_secs(30)).await;
    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook/x", l.local_addr().unwrap())
    };
    let urls: Vec<SecretString> = [ok, broken, slow, closed]
        .into_iter()
        .map(SecretString::from)
        .collect();
    let budget = Duration::from_millis(700);
    let n = Notifier::new(&urls, Some(secret()), budget).unwrap();
    let req = request("on-call fix");
    let actor = Actor::User(UserId::parse("bob").unwrap());
    let started = Instant::now();
    let report = n.notify(Notice::Denied(&req, &actor)).await;
    let took = started.elapsed();
    assert!(took < budget + Duration::from_millis(500), "took {took:?}");
    assert_eq!(
        report,
        NotifyReport {
            delivered: 1,
            failed: 3
        }
    );
    assert_eq!(ok_seen.lock().unwrap().len(), 1);
}

#[test]
fn webhook_urls_must_be_https_except_to_localhost() {
    for bad in [
        "http://hooks.example.com/x",
        "ftp://example.com/x",
        "file:///etc/passwd",
    ] {
        let e = Notifier::new(&[SecretString::from(bad)], None, DEFAULT_BUDGET).unwrap_err();
        assert!(matches!(e, NotifyConfigError::Insecure(_)), "{bad}");
    }
    assert!(matches!(
        Notifier::new(&[SecretString::from("not a url")], None, DEFAULT_BUDGET),
        Err(NotifyConfigError::Unparsable(1))
    ));
    for good in [
        "https://hooks.slack.com/services/T/B/X",
        "http://127.0.0.1:9/x",
    ] {
        assert!(Notifier::new(&[SecretString::from(good)], None, DEFAULT_BUDGET).is_ok());
    }
}

#[test]
fn errors_and_debug_output_never_show_a_webhook_path() {
    let e = Notifier::new(
        &[SecretString::from(
            "http://hooks.example.com/services/T000/B000/XXXXSECRET",
        )],
        None,
        DEFAULT_BUDGET,
    )
    .unwrap_err();
    assert!(!e.to_string().contains("XXXXSECRET"), "{e}");
    let n = Notifier::new(
        &[SecretString::from(
            "https://hooks.example.com/services/T000/B000/XXXXSECRET",
        )],
        None,
        DEFAULT_BUDGET,
    )
    .unwrap();
    assert!(!format!("{n:?}").contains("XXXXSECRET"));
}

#[tokio::test]
async fn a_disabled_notifier_sends_nothing() {
    let n = Notifier::disabled();
    assert!(!n.is_enabled());
    let req = request("x");
    assert_eq!(
        n.notify(Notice::Pending(&req)).await,
        NotifyReport::default()
    );
}

#[tokio::test]
async fn messages_link_to_the_request_page_in_the_console() {
    let (url, seen) = receiver(StatusCode::OK, Duration::ZERO).await;
    let n = Notifier::new(&[SecretString::from(url)], None, DEFAULT_BUDGET)
        .unwrap()
        .with_links(Some("https://tollgate.example.com/".into()));
    let req = request("rotate certificates");
    n.notify(Notice::Pending(&req)).await;
    let body = seen.lock().unwrap()[0].1.clone();
    let msg: Value = serde_json::from_slice(&body).unwrap();
    let want = format!("https://tollgate.example.com/ui/requests/{}", req.id);
    assert_eq!(msg["tollgate"]["link"], want.as_str());
    assert_eq!(
        msg["tollgate"]["link_path"],
        format!("/ui/requests/{}", req.id)
    );
    assert!(
        msg["text"]
            .as_str()
            .unwrap()
            .ends_with(&format!("<{want}|Open in Tollgate>"))
    );
    // Without a public URL: the path only, and no link in the text.
    let msg = message(&Notice::Pending(&req), None);
    assert_eq!(msg["tollgate"]["link"], Value::Null);
    assert_eq!(
        msg["tollgate"]["link_path"],
        format!("/ui/requests/{}", req.id)
    );
    assert!(!msg["text"].as_str().unwrap().contains("Open in Tollgate"));
}

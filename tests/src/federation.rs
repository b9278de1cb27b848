//! A stand-in for the AWS federation endpoint (`getSigninToken`), which the
//! emulator does not serve: it checks what it receives as AWS would (the
//! action, a `Session` JSON of exactly `sessionId`, `sessionKey` and
//! `sessionToken`), records it, and answers a fresh sign-in token.

use axum::response::IntoResponse;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One `getSigninToken` call as received: its query and the token answered.
#[derive(Debug, Clone)]
pub struct SigninCall {
    /// Every query parameter.
    pub query: BTreeMap<String, String>,
    /// The `Session` parameter, parsed.
    pub session: Value,
    /// The sign-in token answered.
    pub token: String,
}

/// What the stand-in received, in order.
pub type Calls = Arc<Mutex<Vec<SigninCall>>>;

/// Starts the stand-in on a free port; returns its endpoint
/// (`http://127.0.0.1:<port>/federation`) and the calls it answers.
pub async fn federation_endpoint() -> (String, Calls) {
    let calls: Calls = Arc::default();
    let app =
        axum::Router::new()
            .route(
                "/federation",
                axum::routing::get(
                    |axum::extract::State(calls): axum::extract::State<Calls>,
                     axum::extract::Query(query): axum::extract::Query<
                        BTreeMap<String, String>,
                    >| async move {
                        let bad = |why: &str| {
                            (axum::http::StatusCode::BAD_REQUEST, why.to_owned()).into_response()
                        };
                        if query.get("Action").map(String::as_str) != Some("getSigninToken") {
                            return bad("only getSigninToken is served here");
                        }
                        let Some(session) = query
                            .get("Session")
                            .and_then(|s| serde_json::from_str::<Value>(s).ok())
                        else {
                            return bad("Session is not JSON");
                        };
                        let keys: Vec<&str> = session
                            .as_object()
                            .map(|o| o.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        let filled = |k: &str| session[k].as_str().is_some_and(|v| !v.is_empty());
                        if keys != ["sessionId", "sessionKey", "sessionToken"]
                            || !["sessionId", "sessionKey", "sessionToken"]
                                .iter()
                                .all(|k| filled(k))
                        {
                            return bad("Session must hold sessionId, sessionKey and sessionToken");
                        }
                        let token = format!("signin-{}", rand::random::<u64>());
                        calls.lock().unwrap().push(SigninCall {
                            query,
                            session,
                            token: token.clone(),
                        });
                        axum::Json(serde_json::json!({ "SigninToken": token })).into_response()
                    },
                ),
            )
            .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/federation"), calls)
}

//! A webhook receiver for tests: records every POST (headers and body) to
//! `/hook/<anything>` and answers 200.

use std::sync::{Arc, Mutex};

/// What the receiver got, in order.
pub type Received = Arc<Mutex<Vec<(axum::http::HeaderMap, axum::body::Bytes)>>>;

/// Starts a receiver on a free port; returns its URL (`.../hook/<path>`)
/// and what it receives.
pub async fn receiver(path: &str) -> (String, Received) {
    let got: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook/{token}",
            axum::routing::post(
                |axum::extract::State(got): axum::extract::State<Received>,
                 headers: axum::http::HeaderMap,
                 body: axum::body::Bytes| async move {
                    got.lock().unwrap().push((headers, body));
                    "ok"
                },
            ),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook/{path}"), got)
}

//! `GET /health`: the process is up and serving. It makes no AWS calls, so
//! it answers even when AWS does not.

use axum::Json;
use serde_json::{Value, json};

/// `GET /health`.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

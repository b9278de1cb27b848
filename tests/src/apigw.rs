//! API Gateway HTTP API (payload format 2.0) events, built from the real
//! event fixtures under `tests/fixtures/`, as a JWT authorizer delivers them:
//! claims are strings, arrays flattened to `[a b]`.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The fixtures directory.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A fixture as JSON.
pub fn fixture(name: &str) -> Value {
    let path = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A token's claims as API Gateway's JWT authorizer passes them on in the
/// request context: every value a string, arrays flattened to `[a b]`
/// (which is why the functions never read them).
pub fn authorizer_claims(claims: &Value) -> BTreeMap<String, String> {
    let flat = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        other => other.to_string(),
    };
    claims
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), flat(v))).collect())
        .unwrap_or_default()
}

/// An HTTP API event for `method` on `path` (with an optional `?query`),
/// with `body`, carrying `claims` in the JWT authorizer context (or no
/// authorizer at all when `None`).
pub fn http_event(
    method: &str,
    path: &str,
    body: Option<&str>,
    claims: Option<&BTreeMap<String, String>>,
) -> Value {
    let mut e = fixture("apigw-v2-jwt.json");
    let (raw_path, query) = path.split_once('?').unwrap_or((path, ""));
    let route_key = format!("{method} {}", route_template(raw_path));
    e["routeKey"] = json!(route_key);
    e["rawPath"] = json!(raw_path);
    e["rawQueryString"] = json!(query);
    e["requestContext"]["routeKey"] = json!(route_key);
    e["requestContext"]["http"]["method"] = json!(method);
    e["requestContext"]["http"]["path"] = json!(raw_path);
    e["requestContext"]["requestId"] = json!(format!("{:x}", rand::random::<u64>()));
    let body = body.unwrap_or("");
    e["body"] = json!(body);
    e["headers"]["content-length"] = json!(body.len().to_string());
    if !query.is_empty() {
        let params: serde_json::Map<String, Value> = query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        e["queryStringParameters"] = Value::Object(params);
    }
    if let Some(id) = raw_path
        .strip_prefix("/requests/")
        .and_then(|r| r.split('/').next())
    {
        e["pathParameters"] = json!({ "id": id });
    }
    match claims {
        Some(c) => e["requestContext"]["authorizer"]["jwt"]["claims"] = json!(c),
        None => {
            if let Some(ctx) = e["requestContext"].as_object_mut() {
                ctx.remove("authorizer");
            }
        }
    }
    e
}

fn route_template(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["", "requests", _id] => "/requests/{id}".into(),
        ["", "requests", _id, action] => format!("/requests/{{id}}/{action}"),
        _ => path.to_string(),
    }
}

/// A Lambda proxy response: status and parsed JSON body.
pub fn response_parts(response: &Value) -> (u16, Value) {
    let status = response["statusCode"].as_u64().unwrap_or(0) as u16;
    let body = response["body"].as_str().unwrap_or("");
    let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string()));
    (status, body)
}

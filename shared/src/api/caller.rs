//! The authenticated caller of a request, as an axum extractor: their
//! identity (from the verified bearer token) and
//! source IP (from the API Gateway request context or the TCP peer).

use super::{ApiError, AppState};
use crate::domain::{Actor, Identity};
use axum::extract::{ConnectInfo, FromRequestParts};
use http::request::Parts;
use std::net::SocketAddr;

/// Who is calling, verified.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Their identity.
    pub identity: Identity,
    /// Where the call came from, when known.
    pub source_ip: Option<String>,
}

impl Caller {
    /// The caller as an audit actor.
    pub fn actor(&self) -> Actor {
        Actor::User(self.identity.sub.clone())
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let identity = state.auth.authenticate(parts, &state.config).await?;
        Ok(Self {
            identity,
            source_ip: source_ip(parts),
        })
    }
}

/// The caller's IP: API Gateway's `requestContext.http.sourceIp`, or the
/// TCP peer of the local server. Never a client-supplied header.
fn source_ip(parts: &Parts) -> Option<String> {
    use lambda_http::request::RequestContext;
    if let Some(ctx) = parts.extensions.get::<RequestContext>() {
        #[allow(unreachable_patterns)]
        return match ctx {
            RequestContext::ApiGatewayV2(c) => c.http.source_ip.clone(),
            _ => None,
        };
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
}

//! The HTTP API: one router served by the Lambda functions and `tollgate
//! serve`, so both run a single code path.
//!
//! - [`auth`] and [`caller`]: who is calling (API Gateway claims or a locally
//!   verified token).
//! - [`routes`] and [`handlers`]: the routes of DESIGN.md, mounted per
//!   function ([`RouteSet`]).
//! - [`input`], [`error`], [`pagination`]: strict input, the one error
//!   shape, sealed page tokens.
//! - [`notify`]: signed webhooks; [`settings`]: the secret settings.
//! - [`sweep`]: expiry and lapse; [`local`]: `tollgate serve`; [`lambda`]:
//!   what the function binaries share.
//! - [`openapi`]: `GET /openapi.json`, the API's contract.
//! - [`web`]: the web console's files under `/ui`; [`dev_oidc`]: the
//!   development sign-in that only `tollgate serve` with a development
//!   secret mounts.

pub mod auth;
pub mod caller;
pub mod clock;
pub(crate) mod crypto;
pub mod dev_oidc;
pub mod error;
pub mod handlers;
pub mod input;
pub mod lambda;
pub mod local;
pub mod notify;
pub mod openapi;
pub mod pagination;
pub mod policies;
pub mod routes;
pub mod settings;
pub mod state;
pub mod sweep;
pub mod web;

pub use caller::Caller;
pub use error::{ApiError, ApiResult};
pub use lambda::init_tracing;
pub use policies::Policies;
pub use routes::router;
pub use state::{AppState, RouteSet, StartupError, StateOptions};

#[cfg(test)]
mod tests;

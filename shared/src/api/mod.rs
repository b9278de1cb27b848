//! The HTTP API: one router served by the Lambda functions and `tollgate serve`.

pub mod auth;
pub(crate) mod crypto;
pub mod error;
pub mod input;
pub mod notify;
pub mod pagination;

pub use error::{ApiError, ApiResult};
pub mod clock;
pub mod settings;

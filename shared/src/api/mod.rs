//! The HTTP API: one router served by the Lambda functions and `tollgate serve`.

//! `GET /openapi.json`: the OpenAPI 3.1 description of this API, built from
//! the code's own limits and error table. The routes, the error codes and
//! their statuses are checked against the router and the source by the tests
//! below, the bodies against the running server by Schemathesis
//! (`scripts/api-contract`), and `docs/openapi.json` against this module.
//!
//! Responses are built as JSON values in the handlers, not from types a
//! derive could describe, so the schemas are written here, next to a test
//! that fails when the code gains a route or an error code they do not name.
//! Response objects are open (`additionalProperties` allowed): a client must
//! ignore fields it does not know; request bodies are closed, as the server
//! refuses unknown fields.

use crate::api::handlers::roles::MAX_ROLES_PER_CHECK;
use crate::api::input::MAX_BODY_BYTES;
use crate::aws::PageRequest;
use crate::domain::{MIN_DURATION_SECONDS, Reason};
use crate::service::roles::MAX_LIMIT as MAX_ROLES_PER_PAGE;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::sync::LazyLock;

/// Every error code the API answers with, its status, and what it means.
pub const ERROR_CODES: &[(&str, u16, &str)] = &[
    (
        "invalid_input",
        400,
        "a field is missing, of the wrong type or out of its limits; `field` names it",
    ),
    ("malformed_json", 400, "the body is not one JSON object"),
    (
        "unknown_field",
        400,
        "the body has a field the operation does not take",
    ),
    (
        "unknown_parameter",
        400,
        "the query has a parameter the operation does not take",
    ),
    (
        "invalid_page_token",
        400,
        "`next_token` is not one this server issued for this caller and listing, or it expired",
    ),
    ("invalid_page", 400, "the page asked for is out of range"),
    (
        "account_not_brokered",
        400,
        "the role's account is not one this broker serves",
    ),
    (
        "role_not_brokered",
        400,
        "the role is outside the managed path",
    ),
    ("unknown_role", 400, "no such role in its account"),
    (
        "extension_too_long",
        400,
        "the grant with the extension would be longer than the role allows",
    ),
    (
        "unknown_account",
        400,
        "the `account` filter names no target account or alias",
    ),
    (
        "unauthenticated",
        401,
        "no bearer token, or one that does not verify",
    ),
    (
        "policy_denied",
        403,
        "the policies do not permit this; `explanation` says which decided",
    ),
    (
        "self_review",
        403,
        "nobody approves or denies their own request",
    ),
    (
        "not_permitted",
        403,
        "the caller may not do this to this request",
    ),
    ("not_requester", 403, "only the requester may do this"),
    (
        "not_found",
        404,
        "no such request, or one the caller may not see (the same answer); no such route",
    ),
    (
        "method_not_allowed",
        405,
        "the route does not take this method",
    ),
    (
        "conflict",
        409,
        "the request changed meanwhile; read it again",
    ),
    (
        "idempotency_key_reused",
        409,
        "the `Idempotency-Key` was used with another body",
    ),
    (
        "not_pending",
        409,
        "the request is no longer pending (or no extension waits)",
    ),
    ("not_active", 409, "the grant is not active"),
    (
        "not_started",
        409,
        "the grant is scheduled and has not started yet",
    ),
    (
        "not_break_glass",
        409,
        "only break-glass grants are reviewed",
    ),
    (
        "already_reviewed",
        409,
        "the break-glass grant has its review already",
    ),
    (
        "unknown_role",
        409,
        "the grant's role can no longer be described",
    ),
    ("already_approved", 409, "this approver already approved"),
    (
        "digest_mismatch",
        409,
        "the request is not the one the approver was shown",
    ),
    ("not_due", 409, "not due yet"),
    (
        "account_not_brokered",
        409,
        "the grant's account is no longer brokered",
    ),
    ("payload_too_large", 413, "the body is over the size limit"),
    (
        "throttled",
        429,
        "too many requests; retry after `Retry-After` seconds",
    ),
    (
        "too_many_open_requests",
        429,
        "the caller has too many open requests",
    ),
    (
        "create_rate_exceeded",
        429,
        "the caller created too many requests in the last minute",
    ),
    ("internal", 500, "a bug; nothing of it is in the body"),
    (
        "aws_unavailable",
        503,
        "AWS could not be reached; retry after `Retry-After` seconds",
    ),
    (
        "revocation_incomplete",
        503,
        "recorded, not yet enforced; revoke again to finish",
    ),
];

/// One operation: its route, its id, who may call it, what it takes and
/// answers, and the error statuses it can give.
struct Operation {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    /// Whether a bearer token is required.
    auth: bool,
    /// The request body's schema, for operations that take one.
    body: Option<Value>,
    parameters: Vec<Value>,
    /// The success status and the response's schema.
    ok: (u16, Value),
    /// Another success status and its schema (a dry run's 200).
    also: Option<(u16, Value)>,
    errors: &'static [u16],
    links: Option<Value>,
}

/// Errors any authenticated operation can give besides its own.
const COMMON: &[u16] = &[401, 429, 500, 503];

fn operations() -> Vec<Operation> {
    let id_param = json!({
        "name": "id", "in": "path", "required": true,
        "description": "A request id (a ULID).",
        "schema": {"type": "string", "pattern": "^[0-7][0-9A-Za-z]{25}$"},
    });
    let request_links = json!({
        "ShowRequest": {"operationId": "showRequest", "parameters": {"id": "$response.body#/id"}},
        "ApproveRequest": {
            "operationId": "approveRequest",
            "parameters": {"id": "$response.body#/id"},
            "requestBody": {"digest": "$response.body#/digest"},
        },
        "DenyRequest": {"operationId": "denyRequest", "parameters": {"id": "$response.body#/id"}},
        "CancelRequest": {"operationId": "cancelRequest", "parameters": {"id": "$response.body#/id"}},
        "IssueCredentials": {"operationId": "issueCredentials", "parameters": {"id": "$response.body#/id"}},
        "RevokeGrant": {"operationId": "revokeGrant", "parameters": {"id": "$response.body#/id"}},
    });
    let reason = || schema_ref("ReasonBody");
    let request = || schema_ref("Request");
    let empty = empty_body();
    vec![
        Operation {
            method: "get",
            path: "/health",
            id: "health",
            summary: "The server is up (no AWS call).",
            auth: false,
            body: None,
            parameters: vec![],
            ok: (
                200,
                json!({"type": "object", "required": ["status", "version"], "properties": {"status": {"const": "ok"}, "version": {"type": "string"}}}),
            ),
            also: None,
            errors: &[],
            links: None,
        },
        Operation {
            method: "get",
            path: "/openapi.json",
            id: "openapi",
            summary: "This document.",
            auth: false,
            body: None,
            parameters: vec![],
            ok: (
                200,
                json!({"type": "object", "required": ["openapi", "paths"]}),
            ),
            also: None,
            errors: &[],
            links: None,
        },
        Operation {
            method: "post",
            path: "/requests",
            id: "createRequest",
            summary: "Ask for a role for a time, with a reason. `dry_run=true` answers the decision and stores nothing.",
            auth: true,
            body: Some(schema_ref("CreateRequest")),
            parameters: vec![
                json!({"name": "dry_run", "in": "query", "required": false, "schema": {"type": "boolean"},
                       "description": "Answer 200 with the decision and its explanation; store nothing."}),
                json!({"name": "Idempotency-Key", "in": "header", "required": false,
                       "description": "A retry with the same key and body answers the first request; with another body, 409.",
                       "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{8,128}$"}}),
            ],
            ok: (201, request()),
            also: Some((200, schema_ref("DryRun"))),
            errors: &[400, 403, 409, 413],
            links: Some(request_links.clone()),
        },
        Operation {
            method: "get",
            path: "/requests",
            id: "listRequests",
            summary: "The caller's requests (`mine`), those they may approve now (`reviewable`: pending requests and grants with an extension waiting), revoke (`revocable`) or review after break-glass (`unreviewed`).",
            auth: true,
            body: None,
            parameters: vec![
                json!({"name": "scope", "in": "query", "required": false,
                       "schema": {"type": "string", "enum": ["mine", "reviewable", "revocable", "unreviewed"]}}),
                json!({"name": "status", "in": "query", "required": false,
                       "schema": {"type": "string", "enum": statuses()}}),
                json!({"name": "limit", "in": "query", "required": false,
                       "schema": {"type": "integer", "minimum": 1, "maximum": PageRequest::MAX_LIMIT}}),
                json!({"name": "next_token", "in": "query", "required": false,
                       "description": "From the previous page; sealed to the caller and the listing.",
                       "schema": {"type": "string"}}),
            ],
            ok: (200, schema_ref("RequestList")),
            also: None,
            errors: &[400],
            links: None,
        },
        Operation {
            method: "get",
            path: "/requests/{id}",
            id: "showRequest",
            summary: "A request with its events, its role and whether the caller may review it. 404 to anyone who may not see it.",
            auth: true,
            body: None,
            parameters: vec![id_param.clone()],
            ok: (200, schema_ref("RequestDetail")),
            also: None,
            errors: &[400, 404],
            links: Some(request_links.clone()),
        },
        Operation {
            method: "post",
            path: "/requests/{id}/cancel",
            id: "cancelRequest",
            summary: "The requester withdraws a pending request.",
            auth: true,
            body: Some(empty.clone()),
            parameters: vec![id_param.clone()],
            ok: (200, request()),
            also: None,
            errors: &[400, 403, 404, 409, 413],
            links: None,
        },
        Operation {
            method: "post",
            path: "/requests/{id}/approve",
            id: "approveRequest",
            summary: "An eligible approver, not the requester, approves what they were shown (`digest`).",
            auth: true,
            body: Some(schema_ref("ApproveBody")),
            parameters: vec![id_param.clone()],
            ok: (200, request()),
            also: None,
            errors: &[400, 403, 404, 409, 413],
            links: Some(request_links.clone()),
        },
        Operation {
            method: "post",
            path: "/requests/{id}/deny",
            id: "denyRequest",
            summary: "An eligible approver refuses, with a reason.",
            auth: true,
            body: Some(reason()),
            parameters: vec![id_param.clone()],
            ok: (200, request()),
            also: None,
            errors: &[400, 403, 404, 409, 413],
            links: None,
        },
        Operation {
            method: "post",
            path: "/requests/{id}/credentials",
            id: "issueCredentials",
            summary: "The requester mints STS credentials for the active grant, capped at its window.",
            auth: true,
            body: Some(empty.clone()),
            parameters: vec![id_param.clone()],
            ok: (200, schema_ref("Credentials")),
            also: None,
            errors: &[400, 404, 409, 413],
            links: None,
        },
        Operation {
            method: "post",
            path: "/requests/{id}/console",
            id: "consoleSignIn",
            summary: "The requester gets an AWS console sign-in URL for the active grant: credentials minted as for `credentials` (their own `console_issued` event), exchanged at the partition's federation endpoint. The URL is a bearer secret.",
            auth: true,
            body: Some(schema_ref("ConsoleBody")),
            parameters: vec![id_param.clone()],
            ok: (200, schema_ref("ConsoleSignIn")),
            also: None,
            errors: &[400, 404, 409, 413],
            links: None,
        },
        Operation {
            method: "post",
            path: "/requests/{id}/extend",
            id: "extendGrant",
            summary: "The requester asks to lengthen an active or scheduled grant: applied at once when policy approves it, else it waits for approvals of its own digest.",
            auth: true,
            body: Some(schema_ref("ExtendBody")),
            parameters: vec![id_param.clone()],
            ok: (200, request()),
            also: None,
            errors: &[400, 403, 404, 409, 413],
            links: None,
        },
        Operation {
            method: "post",
            path: "/requests/{id}/review",
            id: "reviewBreakGlass",
            summary: "Someone other than the requester, permitted `review`, records whether a break-glass grant was justified; once.",
            auth: true,
            body: Some(schema_ref("ReviewBody")),
            parameters: vec![id_param.clone()],
            ok: (200, request()),
            also: None,
            errors: &[400, 403, 404, 409, 413],
            links: None,
        },
        Operation {
            method: "post",
            path: "/requests/{id}/revoke",
            id: "revokeGrant",
            summary: "The requester or an eligible approver ends an active grant; credentials already issued stop working.",
            auth: true,
            body: Some(reason()),
            parameters: vec![id_param],
            ok: (200, request()),
            also: None,
            errors: &[400, 403, 404, 409, 413],
            links: None,
        },
        Operation {
            method: "get",
            path: "/roles",
            id: "listRoles",
            summary: "The catalogued roles the caller may request, by account and name, with the terms the policies set for them (no AWS call but the catalogue's table).",
            auth: true,
            body: None,
            parameters: vec![
                json!({"name": "account", "in": "query", "required": false,
                       "description": "Only this target account: its alias or its 12-digit id.",
                       "schema": {"type": "string"}}),
                json!({"name": "name", "in": "query", "required": false,
                       "description": "Only roles of this name (IAM's case-insensitive match); empty: any.",
                       "schema": {"type": "string", "pattern": "^[A-Za-z0-9+=,.@_-]{0,64}$"}}),
                json!({"name": "limit", "in": "query", "required": false,
                       "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ROLES_PER_PAGE}}),
                json!({"name": "next_token", "in": "query", "required": false,
                       "description": "From the previous page; sealed to the caller and the filters.",
                       "schema": {"type": "string"}}),
            ],
            ok: (200, schema_ref("RoleList")),
            also: None,
            errors: &[400],
            links: None,
        },
        Operation {
            method: "post",
            path: "/roles/check",
            id: "checkRoles",
            summary: "Whether roles are ready to be brokered, and what to fix if not.",
            auth: true,
            body: Some(schema_ref("CheckRoles")),
            parameters: vec![],
            ok: (
                200,
                json!({"type": "object", "required": ["roles"], "properties": {"roles": {"type": "array", "items": {"type": "object"}}}}),
            ),
            also: None,
            errors: &[400, 403, 413],
            links: None,
        },
    ]
}

/// The body of an operation that takes none: absent, or `{}`.
fn empty_body() -> Value {
    json!({"type": "object", "additionalProperties": false, "maxProperties": 0})
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn statuses() -> Vec<&'static str> {
    use crate::domain::Status;
    Status::ALL.iter().map(|s| s.as_str()).collect()
}

fn timestamp() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn schemas() -> Value {
    let mut all = base_schemas();
    if let (Some(all), Value::Object(more)) = (all.as_object_mut(), lifecycle_schemas()) {
        all.extend(more);
    }
    // Fields of scheduled grants, extensions and break-glass.
    if let Value::Object(added) = lifecycle_properties() {
        for (schema, fields) in added {
            if let (Some(props), Value::Object(fields)) =
                (all[schema.as_str()]["properties"].as_object_mut(), fields)
            {
                props.extend(fields);
            }
        }
    }
    all
}

/// The fields scheduled grants, extensions and break-glass add to the
/// request schemas.
fn lifecycle_properties() -> Value {
    json!({
        "CreateRequest": {
                "starts_at": {"type": ["string", "null"], "format": "date-time", "description": "A scheduled grant's start: later than now, at most 30 days ahead."},
                "break_glass": {"type": ["boolean", "null"], "description": "Active at once where policy permits `break_glass`; reviewed afterwards. Not with `starts_at`."},
        },
        "DryRun": {
                "break_glass": {"type": "boolean"},
                "starts_at": {"type": ["string", "null"], "format": "date-time"},
        },
        "Request": {
                "starts_at": timestamp(),
                "extended_seconds": {"type": "integer", "description": "Seconds added by approved extensions."},
                "extensions_asked": {"type": "integer"},
                "pending_extension": {"type": "object", "description": "An extension waiting for approvals, with its own `digest`.",
                    "required": ["number", "seconds", "reason", "total_seconds", "digest"]},
                "break_glass": {"type": "object", "required": ["review"], "properties": {
                    "review": {"type": "string", "enum": ["review_pending", "justified", "unjustified"]},
                    "reviewed_by": {"type": "string"}, "reviewed_at": timestamp(), "comment": {"type": "string"}}},
        },
    })
}

/// The schemas of requests, grants and their listing.
fn base_schemas() -> Value {
    let text = |max: usize| json!({"type": "string", "minLength": 1, "maxLength": max});
    // The server reads an optional field given as `null` as absent.
    let optional_text =
        |max: usize| json!({"type": ["string", "null"], "minLength": 1, "maxLength": max});
    json!({
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "Stable, snake_case; see the error table in `info.description`."},
                    "message": {"type": "string", "description": "For people."},
                    "field": {"type": "string", "description": "The input field at fault."},
                    "explanation": {"type": "object", "description": "The policy decision, on `policy_denied`."},
                },
            }},
        },
        "CreateRequest": {
            "type": "object",
            "additionalProperties": false,
            "required": ["role_arn", "duration_seconds", "reason"],
            "properties": {
                "role_arn": {"type": "string", "pattern": "^arn:", "example": "arn:aws:iam::111122223333:role/tollgate/StagingDeveloper"},
                "duration_seconds": {"type": "integer", "minimum": MIN_DURATION_SECONDS, "example": 3600,
                                     "description": "At most the lowest of the broker's ceiling, the role's tag and the policies' limit."},
                "reason": text(Reason::MAX_CHARS),
                "ticket": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9._#/:-]{1,64}$"},
                "session_policy": {"type": ["object", "null"], "description": "An IAM policy narrowing the role for this grant."},
            },
        },
        "ApproveBody": {
            "type": "object",
            "additionalProperties": false,
            "required": ["digest"],
            "properties": {
                "digest": {"type": "string", "minLength": 1, "maxLength": 128, "description": "The request's `digest` as the approver read it."},
                "comment": optional_text(Reason::MAX_CHARS),
            },
        },
        "ReasonBody": {
            "type": "object",
            "additionalProperties": false,
            "required": ["reason"],
            "properties": {"reason": text(Reason::MAX_CHARS)},
        },
        "CheckRoles": {
            "type": "object",
            "additionalProperties": false,
            "required": ["role_arns"],
            "properties": {"role_arns": {"type": "array", "minItems": 1, "maxItems": MAX_ROLES_PER_CHECK, "items": {"type": "string"}}},
        },
        "DryRun": {
            "type": "object",
            "required": ["dry_run", "allowed", "outcome", "auto_approved", "approvals_required", "decision", "explanation", "policy_version"],
            "properties": {
                "dry_run": {"const": true},
                "allowed": {"type": "boolean"},
                "outcome": {"type": "string", "enum": ["denied", "pending", "active", "scheduled"]},
                "auto_approved": {"type": "boolean"},
                "approvals_required": {"type": "integer"},
                "max_duration_seconds": {"type": ["integer", "null"]},
                "duration_limit": {"type": ["object", "null"], "description": "Which limit caps the grant: the broker's ceiling, the role's tag or a policy."},
                "decision": {"type": "object"},
                "auto_approve": {"type": ["object", "null"]},
                "explanation": {"type": "string", "description": "The decision, for people."},
                "policy_version": {"type": "string", "description": "The policy set that decided: the policy store's version id, or `bundled-<digest>`."},
            },
        },
        "Actor": {
            "oneOf": [
                {"type": "string", "enum": ["system"]},
                {"type": "object", "required": ["user"], "properties": {"user": {"type": "string"}}},
            ],
        },
        "Request": {
            "type": "object",
            "required": ["id", "requester", "role_arn", "duration", "reason", "status", "version",
                         "created_at", "pending_deadline", "approvals_required", "approvals", "digest"],
            "properties": {
                "id": {"type": "string"},
                "requester": {"type": "object", "required": ["sub"], "properties": {
                    "sub": {"type": "string"}, "groups": {"type": "array", "items": {"type": "string"}},
                    "tags": {"type": "object", "additionalProperties": {"type": "string"}}, "mfa": {"type": "boolean"}}},
                "role_arn": {"type": "string"},
                "duration": {"type": "integer", "description": "Seconds."},
                "reason": {"type": "string"},
                "ticket": {"type": "string"},
                "session_policy": {"type": "object"},
                "status": {"type": "string", "enum": statuses()},
                "version": {"type": "integer"},
                "created_at": timestamp(),
                "pending_deadline": timestamp(),
                "window_start": timestamp(),
                "window_end": timestamp(),
                "approvals_required": {"type": "integer"},
                "approvals": {"type": "array", "items": {"type": "object", "required": ["approver", "at"], "properties": {
                    "approver": {"type": "string"}, "at": timestamp(), "comment": {"type": "string"}}}},
                "digest": {"type": "string", "description": "What an approver passes back to `approve`."},
                "closed_by": schema_ref("Actor"),
                "closed_reason": {"type": "string"},
                "closed_at": timestamp(),
                "credentials_issued": {"type": "integer"},
            },
        },
        "RequestDetail": {
            "allOf": [schema_ref("Request"), {
                "type": "object",
                "required": ["events", "role", "review"],
                "properties": {
                    "events": {"type": "array", "items": {"type": "object", "required": ["request_id", "seq", "at", "actor", "status", "type", "prev_hash", "hash"],
                        "properties": {"seq": {"type": "integer"}, "at": timestamp(), "actor": schema_ref("Actor"), "type": {"type": "string"}, "hash": {"type": "string"}}}},
                    "role": {"type": ["object", "null"], "properties": {"arn": {"type": "string"}, "account": {"type": "string"},
                        "tags": {"type": "object", "additionalProperties": {"type": "string"}}, "max_session_seconds": {"type": "integer"}}},
                    "review": {"type": "object", "required": ["allowed"], "properties": {"allowed": {"type": "boolean"},
                        "code": {"type": ["string", "null"]}, "message": {"type": ["string", "null"]},
                        "subject": {"type": "string", "enum": ["request", "extension"]},
                        "digest": {"type": ["string", "null"], "description": "What an approval must quote now."}}},
                },
            }],
        },
        "RequestList": {
            "type": "object",
            "required": ["items", "next_token"],
            "properties": {
                "items": {"type": "array", "items": schema_ref("Request")},
                "next_token": {"type": ["string", "null"]},
                "awaiting_mfa": {"type": "integer", "description": "`reviewable` only: requests the caller could approve after signing in with MFA."},
            },
        },
        "RoleList": {
            "type": "object",
            "required": ["items", "next_token"],
            "properties": {
                "items": {"type": "array", "items": {
                    "type": "object",
                    "required": ["role_arn", "account", "account_alias", "path", "name", "tags", "max_session_seconds", "terms"],
                    "properties": {
                        "role_arn": {"type": "string"},
                        "account": {"type": "string"},
                        "account_alias": {"type": ["string", "null"]},
                        "path": {"type": "string"},
                        "name": {"type": "string"},
                        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                        "max_session_seconds": {"type": "integer"},
                        "terms": schema_ref("Terms"),
                    },
                }},
                "next_token": {"type": ["string", "null"]},
            },
        },
        "Terms": {
            "type": "object",
            "description": "What the policies decide for the caller on this role, derived by asking them ahead of time.",
            "required": ["available_now", "max_duration_seconds", "max_duration_limit", "ticket_required",
                         "mfa_required", "auto_approve", "approvals_required", "depends_on"],
            "properties": {
                "available_now": {"type": "boolean", "description": "A request made now, as the caller is signed in and from where they are, would be allowed."},
                "max_duration_seconds": {"type": "integer"},
                "max_duration_limit": {"type": "object", "required": ["source"], "properties": {
                    "source": {"type": "string", "enum": ["ceiling", "role_tag", "policy"]}, "policy": {"type": "string"}}},
                "max_duration_without_ticket_seconds": {"type": "integer", "description": "When a ticket allows a longer grant: the longest without one."},
                "ticket_required": {"type": "boolean"},
                "mfa_required": {"type": "boolean"},
                "auto_approve": {"type": ["object", "null"], "required": ["max_duration_seconds", "ticket_required"], "properties": {
                    "max_duration_seconds": {"type": "integer"}, "ticket_required": {"type": "boolean"}}},
                "approvals_required": {"type": "integer"},
                "depends_on": {"type": "array", "items": {"type": "string", "enum": ["time_of_day", "day_of_week", "date", "source_ip", "reason"]}},
            },
        },
        "Credentials": {
            "type": "object",
            "required": ["access_key_id", "secret_access_key", "session_token", "expiration", "request_id", "session_name", "window_end"],
            "properties": {
                "access_key_id": {"type": "string"},
                "secret_access_key": {"type": "string"},
                "session_token": {"type": "string"},
                "expiration": timestamp(),
                "request_id": {"type": "string"},
                "session_name": {"type": "string"},
                "window_end": timestamp(),
            },
        },
    })
}

/// The bodies and answers of extend, review and console sign-in (a second
/// `json!`: one would pass the macro's recursion limit).
fn lifecycle_schemas() -> Value {
    let text = |max: usize| json!({"type": "string", "minLength": 1, "maxLength": max});
    json!({
        "ExtendBody": {
            "type": "object",
            "additionalProperties": false,
            "required": ["duration_seconds", "reason"],
            "properties": {
                "duration_seconds": {"type": "integer", "minimum": MIN_DURATION_SECONDS, "description": "Seconds to add; the whole grant stays within the role's limit."},
                "reason": text(Reason::MAX_CHARS),
            },
        },
        "ReviewBody": {
            "type": "object",
            "additionalProperties": false,
            "required": ["outcome", "comment"],
            "properties": {
                "outcome": {"type": "string", "enum": ["justified", "unjustified"]},
                "comment": text(Reason::MAX_CHARS),
            },
        },
        "ConsoleBody": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "destination": {"type": ["string", "null"], "maxLength": 2048, "description": "An https page of the role's partition's console; default its home in the broker's region."},
            },
        },
        "ConsoleSignIn": {
            "type": "object",
            "required": ["url", "expiration", "request_id", "session_name", "window_end"],
            "properties": {
                "url": {"type": "string", "description": "Signs its holder in to the AWS console; valid 15 minutes. Never store or share it."},
                "expiration": timestamp(),
                "request_id": {"type": "string"},
                "session_name": {"type": "string"},
                "window_end": timestamp(),
            },
        },
    })
}

fn description() -> String {
    let mut text = String::from(
        "Tollgate: just-in-time access to AWS roles. Every error is \
         `{\"error\": {\"code\", \"message\"}}`; `code` is stable.\n\n\
         | code | status | meaning |\n| --- | --- | --- |\n",
    );
    for (code, status, meaning) in ERROR_CODES {
        text.push_str(&format!("| `{code}` | {status} | {meaning} |\n"));
    }
    text
}

fn error_response(status: u16) -> Value {
    let codes: Vec<&str> = ERROR_CODES
        .iter()
        .filter(|(_, s, _)| *s == status)
        .map(|(c, _, _)| *c)
        .collect();
    let mut headers = Map::new();
    if status == 401 {
        headers.insert(
            "WWW-Authenticate".into(),
            json!({"schema": {"const": "Bearer"}}),
        );
    }
    if status == 429 || status == 503 {
        headers.insert(
            "Retry-After".into(),
            json!({"description": "Seconds.", "schema": {"type": "string", "pattern": "^[0-9]+$"}}),
        );
    }
    let mut response = json!({
        "description": format!("Error: {}.", codes.join(", ")),
        "content": {"application/json": {"schema": {"allOf": [
            schema_ref("Error"),
            {"properties": {"error": {"properties": {"code": {"enum": codes}}}}},
        ]}}},
    });
    if !headers.is_empty() {
        response["headers"] = Value::Object(headers);
    }
    response
}

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in operations() {
        let mut responses = Map::new();
        let (status, schema) = op.ok;
        let mut ok =
            json!({"description": "OK", "content": {"application/json": {"schema": schema}}});
        if let Some(links) = op.links {
            ok["links"] = links;
        }
        responses.insert(status.to_string(), ok);
        if let Some((status, schema)) = op.also {
            responses.insert(
                status.to_string(),
                json!({"description": "OK", "content": {"application/json": {"schema": schema}}}),
            );
        }
        let mut errors: Vec<u16> = op.errors.to_vec();
        if op.auth {
            errors.extend_from_slice(COMMON);
        }
        errors.sort_unstable();
        errors.dedup();
        for s in errors {
            responses.insert(
                s.to_string(),
                json!({"$ref": format!("#/components/responses/E{s}")}),
            );
        }
        let mut operation = json!({
            "operationId": op.id,
            "summary": op.summary,
            "responses": responses,
        });
        if !op.parameters.is_empty() {
            operation["parameters"] = Value::Array(op.parameters);
        }
        if let Some(body) = op.body {
            let required = body != empty_body();
            operation["requestBody"] =
                json!({"required": required, "content": {"application/json": {"schema": body}}});
        }
        operation["security"] = if op.auth {
            json!([{"bearer": []}])
        } else {
            json!([])
        };
        let entry = paths
            .entry(op.path)
            .or_insert_with(|| Value::Object(Map::new()));
        entry[op.method] = operation;
    }
    let mut responses = Map::new();
    let mut statuses: Vec<u16> = ERROR_CODES.iter().map(|(_, s, _)| *s).collect();
    statuses.sort_unstable();
    statuses.dedup();
    for s in statuses {
        responses.insert(format!("E{s}"), error_response(s));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Tollgate",
            "version": env!("CARGO_PKG_VERSION"),
            "description": description(),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "responses": responses,
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "An ID token from the organisation's OpenID provider.",
            }},
        },
        "x-body-limit-bytes": MAX_BODY_BYTES,
    })
}

static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| serde_json::to_string_pretty(&document()).unwrap_or_default() + "\n");

/// The document as served and as kept in `docs/openapi.json`.
pub fn document_text() -> &'static str {
    &DOCUMENT
}

/// `GET /openapi.json`.
pub async fn serve() -> Response {
    let mut response = document_text().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

#[cfg(test)]
mod tests;

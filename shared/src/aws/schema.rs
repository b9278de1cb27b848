//! The one DynamoDB table: its names, keys and index layout. The IaC copies
//! these names exactly; [`super::provision`] creates the table from them.
//!
//! | item | `pk` | `sk` | other attributes |
//! | --- | --- | --- | --- |
//! | request | `REQ#<id>` | `META` | `version` N, `status` S, `body` S (the request JSON), index keys, `ttl` N |
//! | event | `REQ#<id>` | `EVT#<seq, 10 digits>` | `event` S (the event JSON), `ttl` N |
//! | idempotency | `IDEM#<sub>#<key>` | `META` | `request_id` S, `fingerprint` S, `ttl` N (created + 24 h) |
//! | role revocation | `ROLEREV#<role arn>` | `<until, 12 digits>#<id>` | `request_id` S, `until` N (window end), `ttl` N (until + 1 day) |
//! | policy status | `POLICYSTATUS` | `<function>` | `body` S (which policy set the function serves, and the last set it rejected) |
//! | role lease | `LEASE#<role arn>` | `META` | `owner` S, `expires` N (epoch ms), `rendered` L of S (request ids the policy last written covers), `rendered_at` N, `role_id` S |
//! | catalogued role | `CATALOGUE#<account>` | `ROLE#<role name>` | `arn` S, `role_id` S, `max_session` N, `tags` M of S, `listed` BOOL (brokerable), `fingerprint` S (what `ListRoles` shows of it), `described_at` N |
//! | catalogue schedule | `CATALOGUE` | `META` | per account: `due_<account>` N (next refresh, or the running refresh's lease end), `refreshed_<account>` N, `roles_<account>` N |
//!
//! A role revocation item is written in the same transaction as the revoke
//! of a grant that had credentials issued: one per revoked grant, never a
//! shared item, so concurrent revocations do not cancel each other's
//! transactions. A strongly consistent Query of a role's `ROLEREV#`
//! partition is the set of statements the role's revocation policy needs
//! (see [`super::Revoker`]); the `LEASE#` item serialises the writes of
//! that policy.
//!
//! Global secondary indexes, all projecting every attribute:
//! - [`GSI_BY_REQUESTER`]: `gsi1pk = USER#<sub>`, `gsi1sk = REQ#<id>` (read backwards: newest first).
//! - [`GSI_PENDING_BY_ROLE`]: `gsi2pk = PENDING`, `gsi2sk = <role arn>#<id>`, while pending,
//!   and while an active grant's extension waits for approval: everything approvers may act on.
//! - [`GSI_OPEN_BY_DUE`]: `gsi3pk = DUE`, `gsi3sk = <due, 12 digits>#<id>`, while pending
//!   (due = pending deadline), active (due = window end), and revoked until the sweep has
//!   pruned its revocation statement (due = window end).
//! - [`GSI_UNREVIEWED`]: `gsi4pk = UNREVIEWED`, `gsi4sk = <created, 12 digits>#<id>`, a
//!   break-glass request until its review is recorded, whatever its status.

use crate::domain::{RequestId, RoleArn, Timestamp, UserId};

/// Partition key attribute.
pub const PK: &str = "pk";
/// Sort key attribute.
pub const SK: &str = "sk";
/// TTL attribute (epoch seconds); retention, never enforcement.
pub const TTL: &str = "ttl";
/// Request item: version number, bumped by every transition.
pub const VERSION: &str = "version";
/// Request item: stored status.
pub const STATUS: &str = "status";
/// Request item: the request as JSON.
pub const BODY: &str = "body";
/// Event item: the event as JSON.
pub const EVENT: &str = "event";
/// Idempotency item: the request the key created.
pub const REQUEST_ID: &str = "request_id";
/// Idempotency item: sha256 of the canonical request body.
pub const FINGERPRINT: &str = "fingerprint";

/// Role revocation item: the revoked grant's window end (epoch seconds).
pub const UNTIL: &str = "until";
/// Lease item: the holder's random token.
pub const OWNER: &str = "owner";
/// Lease item: when the lease lapses, epoch milliseconds (0 when released).
pub const EXPIRES: &str = "expires";
/// Lease item: the request ids whose statements the last policy written covers.
pub const RENDERED: &str = "rendered";
/// Lease item: the time (epoch seconds) that policy was rendered as of.
pub const RENDERED_AT: &str = "rendered_at";
/// Lease item: the role id that policy was rendered with.
pub const ROLE_ID: &str = "role_id";

/// Catalogued role: the role's ARN.
pub const ARN: &str = "arn";
/// Catalogued role: its maximum session duration, seconds.
pub const MAX_SESSION: &str = "max_session";
/// Catalogued role: its IAM tags.
pub const TAGS: &str = "tags";
/// Catalogued role: whether it is brokerable (and so listed).
pub const LISTED: &str = "listed";
/// Catalogued role: a hash of what `ListRoles` shows of it.
pub const FINGERPRINT_LISTED: &str = "fingerprint";
/// Catalogued role: when it was last read with `GetRole` (epoch seconds).
pub const DESCRIBED_AT: &str = "described_at";
/// The catalogue schedule's partition key.
pub const CATALOGUE: &str = "CATALOGUE";

/// Sort key of request and idempotency items.
pub const META: &str = "META";

/// Index: a requester's requests.
pub const GSI_BY_REQUESTER: &str = "by-requester";
/// `by-requester` partition key attribute.
pub const GSI1_PK: &str = "gsi1pk";
/// `by-requester` sort key attribute.
pub const GSI1_SK: &str = "gsi1sk";
/// Index: pending requests, by role (sparse).
pub const GSI_PENDING_BY_ROLE: &str = "pending-by-role";
/// `pending-by-role` partition key attribute.
pub const GSI2_PK: &str = "gsi2pk";
/// `pending-by-role` sort key attribute.
pub const GSI2_SK: &str = "gsi2sk";
/// Index: open requests by the time something is due (sparse).
pub const GSI_OPEN_BY_DUE: &str = "open-by-due";
/// `open-by-due` partition key attribute.
pub const GSI3_PK: &str = "gsi3pk";
/// `open-by-due` sort key attribute.
pub const GSI3_SK: &str = "gsi3sk";

/// Index: break-glass requests awaiting their review, oldest first (sparse).
pub const GSI_UNREVIEWED: &str = "unreviewed";
/// `unreviewed` partition key attribute.
pub const GSI4_PK: &str = "gsi4pk";
/// `unreviewed` sort key attribute.
pub const GSI4_SK: &str = "gsi4sk";

/// The one `gsi2pk` value.
pub const PENDING: &str = "PENDING";
/// The one `gsi3pk` value.
pub const DUE: &str = "DUE";
/// The one `gsi4pk` value.
pub const UNREVIEWED: &str = "UNREVIEWED";

/// How long a role revocation item is kept after its window end: 1 day.
pub const REVOCATION_TTL_SECONDS: i64 = 86_400;
/// How long an idempotency key is remembered: 24 hours.
pub const IDEMPOTENCY_TTL_SECONDS: i64 = 24 * 3600;
/// Default retention of history after a request's window or deadline: 400 days.
pub const DEFAULT_RETENTION_SECONDS: i64 = 400 * 86_400;

/// `REQ#<id>`.
pub fn request_pk(id: RequestId) -> String {
    format!("REQ#{id}")
}

/// The partition of the functions' policy status items.
pub const POLICY_STATUS_PK: &str = "POLICYSTATUS";

/// The smallest request partition key of a request created at or after
/// `since`: `REQ#` and the time part of a ULID (its first 10 characters).
pub fn request_pk_floor(since: Timestamp) -> String {
    let id = RequestId::generate(since).to_string();
    format!("REQ#{}", id.get(..10).unwrap_or(&id))
}

/// `EVT#<seq zero-padded to 10>`.
pub fn event_sk(seq: u64) -> String {
    format!("EVT#{seq:010}")
}

/// Attribute: open (pending or active) requests on a user's limits item.
pub const OPEN: &str = "open";
/// Attribute: creates counted on a user's per-minute item.
pub const CREATES: &str = "creates";
/// `sk` of the item counting a user's open requests.
pub const OPEN_COUNT: &str = "OPEN";

/// `pk` of a user's limit counters: `LIMIT#<sub>`.
pub fn limits_pk(user: &UserId) -> String {
    format!("LIMIT#{user}")
}

/// `sk` of a user's create counter for one minute: `CREATES#<unix minute>`.
pub fn creates_sk(minute: i64) -> String {
    format!("CREATES#{minute}")
}

/// `IDEM#<sub>#<key>`. Neither a subject nor a key may contain `#`.
pub fn idempotency_pk(user: &UserId, key: &str) -> String {
    format!("IDEM#{user}#{key}")
}

/// `ROLEREV#<role arn>`: the partition of a role's revoked grants.
pub fn role_revocations_pk(role: &RoleArn) -> String {
    format!("ROLEREV#{role}")
}

/// `<until unix seconds zero-padded to 12>#<id>`: sorted by window end.
pub fn role_revocation_sk(until: Timestamp, id: RequestId) -> String {
    due_sk(until, id)
}

/// `LEASE#<role arn>`: the lease on a role's revocation policy.
pub fn lease_pk(role: &RoleArn) -> String {
    format!("LEASE#{role}")
}

/// `CATALOGUE#<account>`: the partition of an account's catalogued roles.
pub fn catalogue_pk(account: &str) -> String {
    format!("CATALOGUE#{account}")
}

/// `ROLE#<name>`: a catalogued role.
pub fn catalogue_sk(name: &str) -> String {
    format!("ROLE#{name}")
}

/// `USER#<sub>`.
pub fn requester_pk(user: &UserId) -> String {
    format!("USER#{user}")
}

/// `REQ#<id>`, the `by-requester` sort key.
pub fn requester_sk(id: RequestId) -> String {
    format!("REQ#{id}")
}

/// `<role arn>#<id>`, the `pending-by-role` sort key.
pub fn pending_sk(role: &RoleArn, id: RequestId) -> String {
    format!("{role}#{id}")
}

/// The `pending-by-role` sort key prefix for one role.
pub fn pending_prefix(role: &RoleArn) -> String {
    format!("{role}#")
}

/// `<created unix seconds zero-padded to 12>#<id>`, the `unreviewed` sort key.
pub fn unreviewed_sk(created: Timestamp, id: RequestId) -> String {
    due_sk(created, id)
}

/// `<due unix seconds zero-padded to 12>#<id>`, the `open-by-due` sort key.
pub fn due_sk(due: Timestamp, id: RequestId) -> String {
    format!("{:012}#{id}", due.unix().max(0))
}

/// The exclusive upper bound of `open-by-due` sort keys due at or before `now`.
pub fn due_bound(now: Timestamp) -> String {
    format!("{:012}", now.unix().max(-1).saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_keys_sort_by_time_and_the_bound_includes_now_only() {
        let id = RequestId::generate(Timestamp::from_unix(1_000));
        let at_now = due_sk(Timestamp::from_unix(1_800_000_000), id);
        let later = due_sk(Timestamp::from_unix(1_800_000_001), id);
        let bound = due_bound(Timestamp::from_unix(1_800_000_000));
        assert!(at_now.as_str() < bound.as_str());
        assert!(later.as_str() > bound.as_str());
        assert_eq!(at_now.len(), 12 + 1 + 26);
        assert_eq!(event_sk(7), "EVT#0000000007");
    }

    #[test]
    fn the_request_floor_sorts_between_earlier_and_later_requests() {
        let t = Timestamp::from_unix(1_800_000_000);
        let floor = request_pk_floor(t);
        let before = request_pk(RequestId::generate(Timestamp::from_unix(1_799_999_999)));
        let at = request_pk(RequestId::generate(t));
        assert!(before < floor, "{before} {floor}");
        assert!(at >= floor, "{at} {floor}");
    }
}

//! The DynamoDB store: persists what the pure lifecycle returns. A create is
//! one transaction (request, first event, idempotency item); every
//! transition is one transaction (the request put conditional on its
//! version, plus the event put). Every event is signed with the audit key
//! ([`super::AuditSigner`]) just before its transaction; the store refuses
//! to write without one. Reads are strongly consistent on the table and
//! paginated on the indexes. Layout: [`super::schema`].
//!
//! Revocations: the transaction that revokes a grant with credentials
//! issued also writes the grant's role revocation item; the role's lease
//! item serialises writes of its revocation policy ([`Store::acquire_lease`]).

use super::schema::{
    self, BODY, DUE, EVENT, EXPIRES, FINGERPRINT, GSI_BY_REQUESTER, GSI_OPEN_BY_DUE,
    GSI_PENDING_BY_ROLE, GSI_UNREVIEWED, GSI1_PK, GSI1_SK, GSI2_PK, GSI2_SK, GSI3_PK, GSI3_SK,
    GSI4_PK, GSI4_SK, META, OWNER, PENDING, PK, RENDERED, RENDERED_AT, REQUEST_ID, ROLE_ID, SK,
    STATUS, TTL, UNREVIEWED, UNTIL, VERSION,
};
use super::{AuditSigner, AwsError, BoxError, is_transient};
use crate::BrokerError;
use crate::domain::UserId;
use crate::domain::{AccessRequest, Event, IdempotencyKey, RequestId, RoleArn, Status, Timestamp};
use crate::policy::store::PolicyStatus;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub(super) type Item = HashMap<String, AttributeValue>;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The request moved on since it was read (version check failed), or its
    /// id already exists.
    #[error("the request changed since it was read")]
    Conflict,
    /// The idempotency key was used before for a different request body.
    #[error("the idempotency key was used for a different request")]
    IdempotencyMismatch,
    /// A page request the store cannot serve (limit out of range, a start
    /// key for another listing).
    #[error("{0}")]
    InvalidPage(String),
    /// Throttling, time-outs or transport errors outlasted the SDK's retries.
    #[error("DynamoDB is unavailable")]
    Unavailable(#[source] BoxError),
    /// DynamoDB refused the call for a reason retrying will not fix (missing
    /// table, missing permission).
    #[error("DynamoDB refused the call")]
    Aws(#[source] BoxError),
    /// An item that does not decode, or inputs that contradict each other.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The event could not be signed with the audit key (or the store has
    /// no signer): nothing was written.
    #[error("the audit event could not be signed")]
    Signing(#[source] AwsError),
    /// The requester already has as many open requests as allowed.
    #[error("too many open requests")]
    TooManyOpen {
        /// The cap.
        max: u32,
    },
    /// The requester made as many requests this minute as allowed.
    #[error("too many requests this minute")]
    CreateRate {
        /// The cap.
        max: u32,
        /// Seconds until the next minute.
        retry_after_seconds: u64,
    },
}

impl From<StoreError> for BrokerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Self::Conflict {
                code: "conflict",
                message: "the request changed since you read it; fetch it again".into(),
            },
            StoreError::IdempotencyMismatch => Self::Conflict {
                code: "idempotency_key_reused",
                message: "this idempotency key was already used for a different request".into(),
            },
            StoreError::InvalidPage(message) => Self::InvalidInput {
                code: "invalid_page",
                message,
            },
            StoreError::Unavailable(source) => Self::Unavailable {
                message: "AWS is unavailable; retry shortly".into(),
                source: Some(source),
            },
            StoreError::Signing(e) => e.into(),
            StoreError::TooManyOpen { max } => Self::Limited {
                code: "too_many_open_requests",
                message: format!(
                    "you have {max} open requests, the most allowed; cancel one or wait for one to end"
                ),
                retry_after_seconds: OPEN_CAP_RETRY_SECONDS,
            },
            StoreError::CreateRate {
                max,
                retry_after_seconds,
            } => Self::Limited {
                code: "create_rate_exceeded",
                message: format!(
                    "you made {max} requests this minute, the most allowed; retry in {retry_after_seconds} seconds"
                ),
                retry_after_seconds,
            },
            other @ (StoreError::Aws(_) | StoreError::Corrupt(_)) => Self::Internal {
                detail: super::error_chain(&other),
            },
        }
    }
}

/// `Retry-After` for a refusal at the open-request cap: a place frees only
/// when a request ends, which no clock predicts.
pub const OPEN_CAP_RETRY_SECONDS: u64 = 60;

/// Per-user caps enforced in the create transaction itself, so racing
/// creates by one user can never exceed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserLimits {
    /// Open (pending or active) requests per user.
    pub max_open: u32,
    /// Creates per user per UTC minute.
    pub creates_per_minute: u32,
}

/// What [`Store::create`] did.
// Returned once per create, never stored in bulk: boxing would only cost callers.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The request was stored.
    New,
    /// The idempotency key was used before with the same body: this is the
    /// request it created, and nothing was written.
    Existing(AccessRequest),
}

/// Where a listing resumes: the last evaluated key, string attributes only.
/// The API layer seals it in an HMAC token before it reaches a client.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PageKey(pub BTreeMap<String, String>);

/// One page of a listing: `limit` items (1-100), from `start` or the top.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// Items per page, 1 to 100.
    pub limit: u32,
    /// Where the previous page ended.
    pub start: Option<PageKey>,
}

impl PageRequest {
    /// Largest page.
    pub const MAX_LIMIT: u32 = 100;

    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Self {
        Self { limit, start: None }
    }
}

/// A page of results and where the next one starts (none: this was the last).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// The key to pass as [`PageRequest::start`] for the next page.
    pub next: Option<PageKey>,
}

/// A revoked grant whose sessions its role's revocation policy must deny
/// until `until` (a role revocation item).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoleRevocation {
    /// The revoked request.
    pub id: RequestId,
    /// Its window end.
    pub until: Timestamp,
}

/// A role's lease item as read: who may write the role's revocation policy
/// until when, and what the last policy written covers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseState {
    /// When the current holder's lease lapses, epoch milliseconds (0: free).
    pub expires_ms: i64,
    /// Request ids whose statements the last policy written under the lease
    /// covers.
    pub rendered: Vec<String>,
    /// The time that policy was rendered as of, when one was.
    pub rendered_at: Option<Timestamp>,
    /// The role id it was rendered with.
    pub role_id: Option<String>,
}

impl LeaseState {
    /// Whether the last policy written covers request `id`.
    pub fn covers(&self, id: RequestId) -> bool {
        let id = id.to_string();
        self.rendered.contains(&id)
    }
}

/// What [`Store::acquire_lease`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lease {
    /// The caller holds the lease now.
    Acquired,
    /// Someone else holds it; their lease item as it was.
    Held(LeaseState),
}

/// The DynamoDB store. Cheap to clone; build once per process.
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    table: Arc<str>,
    retention_seconds: i64,
    signer: Option<AuditSigner>,
    limits: Option<UserLimits>,
}

impl Store {
    /// A store over `table`, keeping history `retention_seconds` past each
    /// request's window end (or pending deadline).
    pub fn new(client: Client, table: impl Into<String>, retention_seconds: i64) -> Self {
        Self {
            client,
            table: Arc::from(table.into()),
            retention_seconds,
            signer: None,
            limits: None,
        }
    }

    /// The same store, counting each user's open requests and creates per
    /// minute (one counter item each, updated in the create and closing
    /// transactions) and refusing a create past `limits`.
    #[must_use]
    pub fn with_limits(mut self, limits: UserLimits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// The same store, signing every event it writes with `signer`. A store
    /// without a signer can read, but refuses to write a request or event.
    #[must_use]
    pub fn with_signer(mut self, signer: AuditSigner) -> Self {
        self.signer = Some(signer);
        self
    }

    /// `event` with the audit key's signature over its hash: one KMS `Sign`
    /// call, made before the transaction that writes it.
    // INVARIANT: no event is written unsigned.
    async fn signed(&self, event: &Event) -> Result<Event, StoreError> {
        let Some(signer) = &self.signer else {
            return Err(StoreError::Signing(AwsError::Corrupt(
                "the store has no audit key to sign events with".into(),
            )));
        };
        let signature = signer
            .sign(&event.hash)
            .await
            .map_err(StoreError::Signing)?;
        Ok(Event {
            signature: Some(signature),
            ..event.clone()
        })
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The DynamoDB client, for adapters that keep their own items in the
    /// table (the role catalogue).
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The `ttl` of a request item: window end without extensions (or the
    /// pending deadline) plus retention. Extensions only move later events'
    /// `ttl`, so no event expires before the request item it chains to.
    pub fn request_ttl(&self, req: &AccessRequest) -> i64 {
        req.original_window_end()
            .unwrap_or(req.pending_deadline)
            .unix()
            .saturating_add(self.retention_seconds)
    }

    /// The `ttl` of an event item: the latest end the request can still reach
    /// (its window end, or while pending its deadline plus its duration) plus
    /// retention, so no event expires before the request item it chains to.
    pub fn event_ttl(&self, req: &AccessRequest) -> i64 {
        req.window_end
            .unwrap_or_else(|| req.pending_deadline.plus(i64::from(req.duration.seconds())))
            .unix()
            .saturating_add(self.retention_seconds)
    }

    /// Stores a new request with its first event, and the idempotency key
    /// when given, in one transaction. A key used before by the same
    /// requester with the same `fingerprint` returns the request it created
    /// ([`Created::Existing`]); with another fingerprint it is
    /// [`StoreError::IdempotencyMismatch`]. An existing id is a conflict.
    #[tracing::instrument(skip_all, fields(request_id = %req.id))]
    pub async fn create(
        &self,
        req: &AccessRequest,
        event: &Event,
        idem: Option<(&IdempotencyKey, &str)>,
    ) -> Result<Created, StoreError> {
        if req.version != 1 || event.seq != 1 {
            return Err(StoreError::Corrupt(format!(
                "a new request must be at version 1 with event 1, not {} and {}",
                req.version, event.seq
            )));
        }
        check_event_matches(req, event)?;
        let event = &self.signed(event).await?;
        let mut items = vec![
            self.put(
                self.request_item(req)?,
                "attribute_not_exists(pk)",
                &[],
                &[],
            )?,
            self.put(
                self.event_item(req, event)?,
                "attribute_not_exists(pk)",
                &[],
                &[],
            )?,
        ];
        // INVARIANT: the caps are conditions of the create transaction, so
        // concurrent creates by one user are counted one at a time.
        let limits_at = items.len();
        let minute = req.created_at.unix().div_euclid(60);
        if let Some(limits) = self.limits {
            let user = req.requester_id();
            items.push(self.update(
                schema::limits_pk(user),
                schema::OPEN_COUNT,
                "ADD #c :one",
                Some("attribute_not_exists(#c) OR #c < :max"),
                schema::OPEN,
                &[(":one", n(1)), (":max", n(limits.max_open))],
            )?);
            items.push(self.update(
                schema::limits_pk(user),
                &schema::creates_sk(minute),
                "ADD #c :one SET #ttl = :ttl",
                Some("attribute_not_exists(#c) OR #c < :max"),
                schema::CREATES,
                &[
                    (":one", n(1)),
                    (":max", n(limits.creates_per_minute)),
                    (":ttl", n((minute + 2) * 60)),
                ],
            )?);
        }
        let idem_at = items.len();
        if let Some((key, fingerprint)) = idem {
            let now = req.created_at.unix();
            let item = HashMap::from([
                (
                    PK.to_owned(),
                    s(schema::idempotency_pk(req.requester_id(), key.as_str())),
                ),
                (SK.to_owned(), s(META)),
                (REQUEST_ID.to_owned(), s(req.id.to_string())),
                (FINGERPRINT.to_owned(), s(fingerprint)),
                (
                    TTL.to_owned(),
                    n(now.saturating_add(schema::IDEMPOTENCY_TTL_SECONDS)),
                ),
            ]);
            // A key past its TTL is forgotten even if DynamoDB has not yet
            // deleted the item (TTL deletion lags; the emulator never deletes).
            items.push(self.put(
                item,
                "attribute_not_exists(pk) OR #ttl < :now",
                &[("#ttl", TTL)],
                &[(":now", n(now))],
            )?);
        }
        match self.transact(items).await {
            Ok(()) => Ok(Created::New),
            Err(TxError::Cancelled(reasons)) => {
                let failed = |i: usize| {
                    reasons
                        .get(i)
                        .is_some_and(|code| code == "ConditionalCheckFailed")
                };
                // A replayed key answers with its request, even at a cap.
                match (idem, self.limits) {
                    (Some((key, fingerprint)), _) if failed(idem_at) || reasons.is_empty() => {
                        self.resolve_idempotent(req, key, fingerprint).await
                    }
                    (_, Some(limits)) if failed(limits_at) => Err(StoreError::TooManyOpen {
                        max: limits.max_open,
                    }),
                    (_, Some(limits)) if failed(limits_at + 1) => Err(StoreError::CreateRate {
                        max: limits.creates_per_minute,
                        retry_after_seconds: u64::try_from(
                            (minute + 1) * 60 - req.created_at.unix(),
                        )
                        .unwrap_or(60)
                        .clamp(1, 60),
                    }),
                    _ => Err(StoreError::Conflict),
                }
            }
            Err(TxError::Store(e)) => Err(e),
        }
    }

    async fn resolve_idempotent(
        &self,
        req: &AccessRequest,
        key: &IdempotencyKey,
        fingerprint: &str,
    ) -> Result<Created, StoreError> {
        let pk = schema::idempotency_pk(req.requester_id(), key.as_str());
        let Some(item) = self.get_item(pk, META.to_owned()).await? else {
            return Err(StoreError::Conflict);
        };
        let stored = string_attr(&item, FINGERPRINT)?;
        if stored != fingerprint {
            return Err(StoreError::IdempotencyMismatch);
        }
        let id = RequestId::parse(string_attr(&item, REQUEST_ID)?)
            .map_err(|e| StoreError::Corrupt(format!("idempotency item: {e}")))?;
        match self.get(id).await? {
            Some(existing) => Ok(Created::Existing(existing)),
            None => Err(StoreError::Corrupt(format!(
                "idempotency key points to request {id}, which does not exist"
            ))),
        }
    }

    /// The request, read strongly consistent.
    #[tracing::instrument(skip_all, fields(request_id = %id))]
    pub async fn get(&self, id: RequestId) -> Result<Option<AccessRequest>, StoreError> {
        match self
            .get_item(schema::request_pk(id), META.to_owned())
            .await?
        {
            Some(item) => decode_request(&item).map(Some),
            None => Ok(None),
        }
    }

    /// The request and its events in chain order, from one strongly
    /// consistent Query on its partition (more only past 1 MB).
    #[tracing::instrument(skip_all, fields(request_id = %id))]
    pub async fn get_with_events(
        &self,
        id: RequestId,
    ) -> Result<Option<(AccessRequest, Vec<Event>)>, StoreError> {
        let mut request = None;
        let mut events = Vec::new();
        for item in self.query_partition(schema::request_pk(id)).await? {
            let sk = string_attr(&item, SK)?;
            if sk == META {
                request = Some(decode_request(&item)?);
            } else if sk.starts_with("EVT#") {
                let json = string_attr(&item, EVENT)?;
                let event: Event = serde_json::from_str(json)
                    .map_err(|e| StoreError::Corrupt(format!("event {sk} of {id}: {e}")))?;
                events.push(event);
            }
        }
        Ok(request.map(|r| (r, events)))
    }

    /// Persists a transition: `next` replaces the stored request only if the
    /// stored version is still `expected_version`, and `event` is written
    /// with it, in one transaction. A version mismatch is
    /// [`StoreError::Conflict`] and writes nothing.
    #[tracing::instrument(skip_all, fields(request_id = %next.id, version = expected_version))]
    pub async fn transition(
        &self,
        expected_version: u64,
        next: &AccessRequest,
        event: &Event,
    ) -> Result<(), StoreError> {
        if next.version != expected_version.saturating_add(1) || event.seq != next.version {
            return Err(StoreError::Corrupt(format!(
                "transition from version {expected_version} must write version {} with event {}, not {} with event {}",
                expected_version.saturating_add(1),
                expected_version.saturating_add(1),
                next.version,
                event.seq
            )));
        }
        check_event_matches(next, event)?;
        let event = &self.signed(event).await?;
        let mut items = vec![
            self.put(
                self.request_item(next)?,
                "#v = :expected",
                &[("#v", VERSION)],
                &[(":expected", n(expected_version))],
            )?,
            self.put(
                self.event_item(next, event)?,
                "attribute_not_exists(pk)",
                &[],
                &[],
            )?,
        ];
        // INVARIANT: a revoked grant whose credentials were issued is in its
        // role's revocation partition from the moment it is revoked; the
        // version check above means a credential issued since the read makes
        // this transaction fail, and the retry writes the item.
        if let Some(until) = next.revocation_until() {
            items.push(self.put(
                self.role_revocation_item(next, until),
                "attribute_not_exists(pk)",
                &[],
                &[],
            )?);
        }
        if self.limits.is_some() && event.kind.closes_request() {
            items.push(self.update(
                schema::limits_pk(next.requester_id()),
                schema::OPEN_COUNT,
                "ADD #c :minus_one",
                None,
                schema::OPEN,
                &[(":minus_one", n(-1))],
            )?);
        }
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(TxError::Cancelled(_)) => Err(StoreError::Conflict),
            Err(TxError::Store(e)) => Err(e),
        }
    }

    /// A requester's requests, newest first.
    #[tracing::instrument(skip_all)]
    pub async fn list_by_requester(
        &self,
        user: &UserId,
        page: PageRequest,
    ) -> Result<Page<AccessRequest>, StoreError> {
        self.query_index(
            IndexQuery {
                index: GSI_BY_REQUESTER,
                keys: [GSI1_PK, GSI1_SK],
                condition: "#ipk = :ipk",
                names: vec![("#ipk", GSI1_PK)],
                values: vec![(":ipk", s(schema::requester_pk(user)))],
                forward: false,
            },
            page,
        )
        .await
    }

    /// Requests stored as pending, and active grants with an extension
    /// waiting for approval, for every role or one role, by role. Includes
    /// requests past their deadline (or grants past their window) that the
    /// sweep has not yet closed: callers check [`AccessRequest::under_review`].
    #[tracing::instrument(skip_all)]
    pub async fn list_pending(
        &self,
        role: Option<&RoleArn>,
        page: PageRequest,
    ) -> Result<Page<AccessRequest>, StoreError> {
        let mut q = IndexQuery {
            index: GSI_PENDING_BY_ROLE,
            keys: [GSI2_PK, GSI2_SK],
            condition: "#ipk = :ipk",
            names: vec![("#ipk", GSI2_PK)],
            values: vec![(":ipk", s(PENDING))],
            forward: true,
        };
        if let Some(role) = role {
            q.condition = "#ipk = :ipk AND begins_with(#isk, :prefix)";
            q.names.push(("#isk", GSI2_SK));
            q.values.push((":prefix", s(schema::pending_prefix(role))));
        }
        self.query_index(q, page).await
    }

    /// Break-glass requests whose review is not recorded yet, oldest first.
    #[tracing::instrument(skip_all)]
    pub async fn list_unreviewed(
        &self,
        page: PageRequest,
    ) -> Result<Page<AccessRequest>, StoreError> {
        self.query_index(
            IndexQuery {
                index: GSI_UNREVIEWED,
                keys: [GSI4_PK, GSI4_SK],
                condition: "#ipk = :ipk",
                names: vec![("#ipk", GSI4_PK)],
                values: vec![(":ipk", s(UNREVIEWED))],
                forward: true,
            },
            page,
        )
        .await
    }

    /// How many break-glass requests created before `before` still await
    /// their review: one `Select=COUNT` query of the `unreviewed` index
    /// (more only past 1 MB of keys).
    #[tracing::instrument(skip_all)]
    pub async fn count_unreviewed_before(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut count = 0u64;
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .index_name(GSI_UNREVIEWED)
                .key_condition_expression("#ipk = :ipk AND #isk < :bound")
                .expression_attribute_names("#ipk", GSI4_PK)
                .expression_attribute_names("#isk", GSI4_SK)
                .expression_attribute_values(":ipk", s(UNREVIEWED))
                .expression_attribute_values(":bound", s(schema::due_bound(before.plus(-1))))
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_failure)?;
            count += u64::try_from(out.count()).unwrap_or(0);
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(count)
    }

    /// Requests with something due at or before `now`, earliest first:
    /// pending past their deadline, active past their window, and revoked
    /// whose revocation statement may now be pruned.
    #[tracing::instrument(skip_all)]
    pub async fn list_due(
        &self,
        now: Timestamp,
        page: PageRequest,
    ) -> Result<Page<AccessRequest>, StoreError> {
        self.by_due("#ipk = :ipk AND #isk < :bound", now, page)
            .await
    }

    /// Requests with something due after `now`, soonest first: pending
    /// requests by their deadline, active grants by their window end, and
    /// revoked grants whose statement awaits pruning. Callers filter by
    /// [`AccessRequest::effective_status`].
    #[tracing::instrument(skip_all)]
    pub async fn list_open(
        &self,
        now: Timestamp,
        page: PageRequest,
    ) -> Result<Page<AccessRequest>, StoreError> {
        self.by_due("#ipk = :ipk AND #isk >= :bound", now, page)
            .await
    }

    /// The `open-by-due` index, earliest first, on one side of `now`.
    async fn by_due(
        &self,
        condition: &'static str,
        now: Timestamp,
        page: PageRequest,
    ) -> Result<Page<AccessRequest>, StoreError> {
        self.query_index(
            IndexQuery {
                index: GSI_OPEN_BY_DUE,
                keys: [GSI3_PK, GSI3_SK],
                condition,
                names: vec![("#ipk", GSI3_PK), ("#isk", GSI3_SK)],
                values: vec![(":ipk", s(DUE)), (":bound", s(schema::due_bound(now)))],
                forward: true,
            },
            page,
        )
        .await
    }

    /// Housekeeping: drops a revoked request from the due index once its
    /// revocation statement is pruned. Conditional on `version`; not a
    /// transition (status and history are unchanged).
    #[tracing::instrument(skip_all, fields(request_id = %id, version))]
    pub async fn clear_due(&self, id: RequestId, version: u64) -> Result<(), StoreError> {
        self.update_due(id, version, None).await
    }

    /// Housekeeping: moves a request's place on the due index to `due`
    /// (a revoked grant whose statement the sweep confirmed comes back at
    /// its window end, to be pruned). Conditional on `version`.
    #[tracing::instrument(skip_all, fields(request_id = %id, version))]
    pub async fn set_due(
        &self,
        id: RequestId,
        version: u64,
        due: Timestamp,
    ) -> Result<(), StoreError> {
        self.update_due(id, version, Some(due)).await
    }

    async fn update_due(
        &self,
        id: RequestId,
        version: u64,
        due: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .key(PK, s(schema::request_pk(id)))
            .key(SK, s(META))
            .condition_expression("#v = :v")
            .expression_attribute_names("#g3pk", GSI3_PK)
            .expression_attribute_names("#g3sk", GSI3_SK)
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_values(":v", n(version));
        let update = match due {
            None => update.update_expression("REMOVE #g3pk, #g3sk"),
            Some(due) => update
                .update_expression("SET #g3pk = :due, #g3sk = :at")
                .expression_attribute_values(":due", s(DUE))
                .expression_attribute_values(":at", s(schema::due_sk(due, id))),
        };
        match update.send().await {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(StoreError::Conflict),
            Err(e) => Err(store_failure(e)),
        }
    }

    /// Every revoked grant of `role` that needed a statement, from one
    /// strongly consistent Query of the role's revocation partition (more
    /// only past 1 MB), earliest window end first. Items past their window
    /// are included until their `ttl`; callers compare times themselves.
    #[tracing::instrument(skip_all, fields(role = %role))]
    pub async fn role_revocations(
        &self,
        role: &RoleArn,
    ) -> Result<Vec<RoleRevocation>, StoreError> {
        self.query_partition(schema::role_revocations_pk(role))
            .await?
            .iter()
            .map(|item| {
                let id = RequestId::parse(string_attr(item, REQUEST_ID)?)
                    .map_err(|e| StoreError::Corrupt(format!("role revocation item: {e}")))?;
                Ok(RoleRevocation {
                    id,
                    until: Timestamp::from_unix(number_attr(item, UNTIL)?),
                })
            })
            .collect()
    }

    /// Takes the lease on `role`'s revocation policy for `owner` until
    /// `expires_ms` (epoch milliseconds), if it is free or lapsed at
    /// `now_ms`: one conditional update, which keeps what the last holder
    /// recorded. When someone else holds it, returns their lease item.
    #[tracing::instrument(skip_all, fields(role = %role))]
    pub async fn acquire_lease(
        &self,
        role: &RoleArn,
        owner: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Lease, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .key(PK, s(schema::lease_pk(role)))
            .key(SK, s(META))
            .update_expression("SET #owner = :owner, #expires = :expires")
            .condition_expression("attribute_not_exists(#expires) OR #expires < :now")
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_names("#expires", EXPIRES)
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":expires", n(expires_ms))
            .expression_attribute_values(":now", n(now_ms))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Lease::Acquired),
            Err(SdkError::ServiceError(ctx))
                if matches!(
                    ctx.err(),
                    UpdateItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                let UpdateItemError::ConditionalCheckFailedException(e) = ctx.into_err() else {
                    return Err(StoreError::Corrupt("update error changed kind".into()));
                };
                match e.item() {
                    Some(item) => decode_lease(item).map(Lease::Held),
                    // DynamoDB returns the item it checked; without it, ask.
                    None => Ok(Lease::Held(self.lease(role).await?)),
                }
            }
            Err(e) => Err(store_failure(e)),
        }
    }

    /// The lease item of `role`, read strongly consistent (default when
    /// there is none yet).
    #[tracing::instrument(skip_all, fields(role = %role))]
    pub async fn lease(&self, role: &RoleArn) -> Result<LeaseState, StoreError> {
        match self
            .get_item(schema::lease_pk(role), META.to_owned())
            .await?
        {
            Some(item) => decode_lease(&item),
            None => Ok(LeaseState::default()),
        }
    }

    /// Gives the lease on `role` back, if `owner` still holds it, and with
    /// `rendered` records what the policy just written covers (request ids,
    /// the time it was rendered as of, the role id). Returns false when
    /// someone else has taken the lease meanwhile (nothing is recorded).
    #[tracing::instrument(skip_all, fields(role = %role))]
    pub async fn release_lease(
        &self,
        role: &RoleArn,
        owner: &str,
        rendered: Option<(&[RequestId], Timestamp, &str)>,
    ) -> Result<bool, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .key(PK, s(schema::lease_pk(role)))
            .key(SK, s(META))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_names("#expires", EXPIRES)
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":free", n(0));
        update = match rendered {
            None => update.update_expression("SET #expires = :free"),
            Some((ids, at, role_id)) => update
                .update_expression(
                    "SET #expires = :free, #rendered = :rendered, #at = :at, #role_id = :role_id",
                )
                .expression_attribute_names("#rendered", RENDERED)
                .expression_attribute_names("#at", RENDERED_AT)
                .expression_attribute_names("#role_id", ROLE_ID)
                .expression_attribute_values(
                    ":rendered",
                    AttributeValue::L(ids.iter().map(|id| s(id.to_string())).collect()),
                )
                .expression_attribute_values(":at", n(at.unix()))
                .expression_attribute_values(":role_id", s(role_id)),
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(store_failure(e)),
        }
    }

    fn request_item(&self, req: &AccessRequest) -> Result<Item, StoreError> {
        let body = serde_json::to_string(req)
            .map_err(|e| StoreError::Corrupt(format!("request {} does not encode: {e}", req.id)))?;
        let mut item = HashMap::from([
            (PK.to_owned(), s(schema::request_pk(req.id))),
            (SK.to_owned(), s(META)),
            (VERSION.to_owned(), n(req.version)),
            (STATUS.to_owned(), s(req.status.as_str())),
            (BODY.to_owned(), s(body)),
            (
                GSI1_PK.to_owned(),
                s(schema::requester_pk(req.requester_id())),
            ),
            (GSI1_SK.to_owned(), s(schema::requester_sk(req.id))),
            (TTL.to_owned(), n(self.request_ttl(req))),
        ]);
        // Everything approvers may act on: a pending request, or an active
        // grant's extension waiting for approval.
        if req.status == Status::Pending
            || (req.status == Status::Active && req.pending_extension.is_some())
        {
            item.insert(GSI2_PK.to_owned(), s(PENDING));
            item.insert(
                GSI2_SK.to_owned(),
                s(schema::pending_sk(&req.role_arn, req.id)),
            );
        }
        let due = match req.status {
            Status::Pending => Some(req.pending_deadline),
            Status::Active => req.window_end,
            // Due at once, so that the sweep confirms the role's revocation
            // policy; the sweep then moves it to its window end, to prune.
            Status::Revoked => req
                .revocation_until()
                .and_then(|until| req.closed_at.or(Some(until))),
            _ => None,
        };
        if let Some(due) = due {
            item.insert(GSI3_PK.to_owned(), s(DUE));
            item.insert(GSI3_SK.to_owned(), s(schema::due_sk(due, req.id)));
        }
        if req.awaits_break_glass_review() {
            item.insert(GSI4_PK.to_owned(), s(UNREVIEWED));
            item.insert(
                GSI4_SK.to_owned(),
                s(schema::unreviewed_sk(req.created_at, req.id)),
            );
        }
        Ok(item)
    }

    fn role_revocation_item(&self, req: &AccessRequest, until: Timestamp) -> Item {
        HashMap::from([
            (PK.to_owned(), s(schema::role_revocations_pk(&req.role_arn))),
            (SK.to_owned(), s(schema::role_revocation_sk(until, req.id))),
            (REQUEST_ID.to_owned(), s(req.id.to_string())),
            (UNTIL.to_owned(), n(until.unix())),
            (
                TTL.to_owned(),
                n(until.unix().saturating_add(schema::REVOCATION_TTL_SECONDS)),
            ),
        ])
    }

    fn event_item(&self, req: &AccessRequest, event: &Event) -> Result<Item, StoreError> {
        let json = serde_json::to_string(event).map_err(|e| {
            StoreError::Corrupt(format!(
                "event {} of {} does not encode: {e}",
                event.seq, req.id
            ))
        })?;
        Ok(HashMap::from([
            (PK.to_owned(), s(schema::request_pk(req.id))),
            (SK.to_owned(), s(schema::event_sk(event.seq))),
            (EVENT.to_owned(), s(json)),
            (TTL.to_owned(), n(self.event_ttl(req))),
        ]))
    }

    fn put(
        &self,
        item: Item,
        condition: &str,
        names: &[(&str, &str)],
        values: &[(&str, AttributeValue)],
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .condition_expression(condition);
        for (k, v) in names {
            put = put.expression_attribute_names(*k, *v);
        }
        for (k, v) in values {
            put = put.expression_attribute_values(*k, v.clone());
        }
        let put = put
            .build()
            .map_err(|e| StoreError::Corrupt(format!("put does not build: {e}")))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// An update of counter attribute `counter` (`#c` in `expression`) on
    /// item `pk`/`sk`, with an optional condition.
    fn update(
        &self,
        pk: String,
        sk: &str,
        expression: &str,
        condition: Option<&str>,
        counter: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(self.table.as_ref())
            .key(PK, s(pk))
            .key(SK, s(sk))
            .update_expression(expression)
            .set_condition_expression(condition.map(str::to_owned))
            .expression_attribute_names("#c", counter);
        if expression.contains("#ttl") {
            update = update.expression_attribute_names("#ttl", TTL);
        }
        for (k, v) in values {
            update = update.expression_attribute_values(*k, v.clone());
        }
        let update = update
            .build()
            .map_err(|e| StoreError::Corrupt(format!("update does not build: {e}")))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), TxError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(ctx))
                if matches!(
                    ctx.err(),
                    TransactWriteItemsError::TransactionCanceledException(_)
                ) =>
            {
                let TransactWriteItemsError::TransactionCanceledException(e) = ctx.into_err()
                else {
                    return Err(TxError::Store(StoreError::Corrupt(
                        "transaction error changed kind".into(),
                    )));
                };
                let reasons: Vec<String> = e
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().unwrap_or("None").to_owned())
                    .collect();
                // Throttling inside a transaction surfaces as a cancellation
                // reason; it is not a conflict.
                if reasons
                    .iter()
                    .any(|c| c == "ThrottlingError" || c == "ProvisionedThroughputExceeded")
                {
                    return Err(TxError::Store(StoreError::Unavailable(Box::new(e))));
                }
                Err(TxError::Cancelled(reasons))
            }
            Err(SdkError::ServiceError(ctx))
                if matches!(
                    ctx.err(),
                    TransactWriteItemsError::ThrottlingException(_)
                        | TransactWriteItemsError::ProvisionedThroughputExceededException(_)
                        | TransactWriteItemsError::RequestLimitExceeded(_)
                        | TransactWriteItemsError::InternalServerError(_)
                        | TransactWriteItemsError::TransactionInProgressException(_)
                ) =>
            {
                // Still failing after the SDK's retries.
                Err(TxError::Store(StoreError::Unavailable(Box::new(
                    SdkError::ServiceError(ctx),
                ))))
            }
            Err(e) => Err(TxError::Store(store_failure(e))),
        }
    }

    /// Records which policy set a function serves: one item per function,
    /// the last load (or rejection) of any of its instances wins.
    #[tracing::instrument(skip_all, fields(function = %status.function))]
    pub async fn put_policy_status(&self, status: &PolicyStatus) -> Result<(), StoreError> {
        let body = serde_json::to_string(status)
            .map_err(|e| StoreError::Corrupt(format!("policy status does not encode: {e}")))?;
        self.client
            .put_item()
            .table_name(self.table.as_ref())
            .item(PK, s(schema::POLICY_STATUS_PK))
            .item(SK, s(status.function.clone()))
            .item(BODY, s(body))
            .send()
            .await
            .map_err(store_failure)?;
        Ok(())
    }

    /// What every function last recorded about its policy set, by function name.
    pub async fn policy_statuses(&self) -> Result<Vec<PolicyStatus>, StoreError> {
        self.query_partition(schema::POLICY_STATUS_PK.to_owned())
            .await?
            .iter()
            .map(|item| {
                serde_json::from_str(string_attr(item, BODY)?)
                    .map_err(|e| StoreError::Corrupt(format!("policy status does not decode: {e}")))
            })
            .collect()
    }

    /// Every request created at or after `since`, with its `created` event,
    /// oldest first: one Scan of the table (request ids sort by creation
    /// time, so older partitions are filtered out by key), for operator
    /// tools such as `tollgate policy diff`.
    pub async fn created_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(AccessRequest, Event)>, StoreError> {
        let floor = schema::request_pk_floor(since);
        let mut requests: BTreeMap<String, AccessRequest> = BTreeMap::new();
        let mut created: HashMap<String, Event> = HashMap::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(self.table.as_ref())
                .filter_expression(
                    "begins_with(#pk, :req) AND #pk >= :floor AND (#sk = :meta OR #sk = :first)",
                )
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":req", s("REQ#"))
                .expression_attribute_values(":floor", s(floor.clone()))
                .expression_attribute_values(":meta", s(META))
                .expression_attribute_values(":first", s(schema::event_sk(1)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_failure)?;
            for item in page.items() {
                let pk = string_attr(item, PK)?.to_owned();
                if string_attr(item, SK)? == META {
                    requests.insert(pk, decode_request(item)?);
                } else {
                    let event: Event = serde_json::from_str(string_attr(item, EVENT)?)
                        .map_err(|e| StoreError::Corrupt(format!("first event of {pk}: {e}")))?;
                    created.insert(pk, event);
                }
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(requests
            .into_iter()
            .filter(|(_, req)| req.created_at >= since)
            .filter_map(|(pk, req)| created.remove(&pk).map(|event| (req, event)))
            .collect())
    }

    /// Every item of partition `pk`, from strongly consistent Queries (more
    /// than one only past 1 MB).
    pub(super) async fn query_partition(&self, pk: String) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", s(pk.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_failure)?;
            items.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(items)
    }

    async fn get_item(&self, pk: String, sk: String) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table.as_ref())
            .key(PK, s(pk))
            .key(SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_failure)?;
        Ok(out.item)
    }

    async fn query_index(
        &self,
        q: IndexQuery,
        page: PageRequest,
    ) -> Result<Page<AccessRequest>, StoreError> {
        if !(1..=PageRequest::MAX_LIMIT).contains(&page.limit) {
            return Err(StoreError::InvalidPage(format!(
                "page size `{}` is not from 1 to {}",
                page.limit,
                PageRequest::MAX_LIMIT
            )));
        }
        let start = match page.start {
            None => None,
            Some(key) => Some(start_key(key, q.keys)?),
        };
        let mut query = self
            .client
            .query()
            .table_name(self.table.as_ref())
            .index_name(q.index)
            .key_condition_expression(q.condition)
            .scan_index_forward(q.forward)
            .limit(i32::try_from(page.limit).unwrap_or(100))
            .set_exclusive_start_key(start);
        for (k, v) in q.names {
            query = query.expression_attribute_names(k, v);
        }
        for (k, v) in q.values {
            query = query.expression_attribute_values(k, v);
        }
        let out = query.send().await.map_err(store_failure)?;
        let items = out
            .items()
            .iter()
            .map(decode_request)
            .collect::<Result<Vec<_>, _>>()?;
        let next = match out.last_evaluated_key() {
            Some(key) if !key.is_empty() => Some(page_key(key)?),
            _ => None,
        };
        Ok(Page { items, next })
    }
}

struct IndexQuery {
    index: &'static str,
    keys: [&'static str; 2],
    condition: &'static str,
    names: Vec<(&'static str, &'static str)>,
    values: Vec<(&'static str, AttributeValue)>,
    forward: bool,
}

enum TxError {
    /// The transaction was cancelled; one reason code per item, in order.
    Cancelled(Vec<String>),
    Store(StoreError),
}

fn check_event_matches(req: &AccessRequest, event: &Event) -> Result<(), StoreError> {
    if event.request_id != req.id || event.hash != req.chain_head {
        return Err(StoreError::Corrupt(format!(
            "event {} is not the head of request {}",
            event.seq, req.id
        )));
    }
    Ok(())
}

/// A listing's start key, checked to name exactly the attributes the index
/// returns as its last evaluated key.
fn start_key(key: PageKey, index_keys: [&str; 2]) -> Result<Item, StoreError> {
    let mut expected = vec![PK, SK, index_keys[0], index_keys[1]];
    expected.sort_unstable();
    let mut given: Vec<&str> = key.0.keys().map(String::as_str).collect();
    given.sort_unstable();
    if given != expected {
        return Err(StoreError::InvalidPage(
            "the page token belongs to another listing".into(),
        ));
    }
    Ok(key.0.into_iter().map(|(k, v)| (k, s(v))).collect())
}

fn page_key(key: &Item) -> Result<PageKey, StoreError> {
    key.iter()
        .map(|(k, v)| match v {
            AttributeValue::S(text) => Ok((k.clone(), text.clone())),
            _ => Err(StoreError::Corrupt(format!(
                "last evaluated key attribute `{k}` is not a string"
            ))),
        })
        .collect::<Result<BTreeMap<_, _>, _>>()
        .map(PageKey)
}

fn decode_request(item: &Item) -> Result<AccessRequest, StoreError> {
    let body = string_attr(item, BODY)?;
    let req: AccessRequest = serde_json::from_str(body)
        .map_err(|e| StoreError::Corrupt(format!("request body does not decode: {e}")))?;
    let version = match item.get(VERSION) {
        Some(AttributeValue::N(v)) => v.parse::<u64>().ok(),
        _ => None,
    };
    let status = string_attr(item, STATUS)?;
    if version != Some(req.version) || status != req.status.as_str() {
        return Err(StoreError::Corrupt(format!(
            "request {}: item attributes disagree with its body",
            req.id
        )));
    }
    Ok(req)
}

/// Whether an update failed its condition expression.
pub(super) fn condition_failed(
    e: &SdkError<UpdateItemError, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> bool {
    matches!(
        e,
        SdkError::ServiceError(ctx)
            if matches!(ctx.err(), UpdateItemError::ConditionalCheckFailedException(_))
    )
}

fn decode_lease(item: &Item) -> Result<LeaseState, StoreError> {
    let rendered = match item.get(RENDERED) {
        None => Vec::new(),
        Some(AttributeValue::L(ids)) => ids
            .iter()
            .map(|v| match v {
                AttributeValue::S(id) => Ok(id.clone()),
                _ => Err(StoreError::Corrupt(
                    "lease item: a rendered id is not a string".into(),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(StoreError::Corrupt(
                "lease item: `rendered` is not a list".into(),
            ));
        }
    };
    Ok(LeaseState {
        expires_ms: match item.get(EXPIRES) {
            Some(_) => number_attr(item, EXPIRES)?,
            None => 0,
        },
        rendered,
        rendered_at: match item.get(RENDERED_AT) {
            Some(_) => Some(Timestamp::from_unix(number_attr(item, RENDERED_AT)?)),
            None => None,
        },
        role_id: item.get(ROLE_ID).and_then(|v| v.as_s().ok()).cloned(),
    })
}

pub(super) fn number_attr(item: &Item, name: &str) -> Result<i64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("attribute `{name}` is not an integer"))),
        _ => Err(StoreError::Corrupt(format!(
            "item has no number attribute `{name}`"
        ))),
    }
}

pub(super) fn string_attr<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(StoreError::Corrupt(format!(
            "item has no string attribute `{name}`"
        ))),
    }
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn store_failure<E>(
    err: SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> StoreError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
{
    if is_transient(&err) {
        StoreError::Unavailable(Box::new(err))
    } else {
        StoreError::Aws(Box::new(err))
    }
}

//! The role catalogue: the brokerable roles of every target account, kept
//! in the table and refreshed by the sweep through each account's control
//! role, so that discovery (`GET /roles`) never calls IAM on the request
//! path.
//!
//! A refresh of one account lists the roles under the managed path
//! (`iam:ListRoles`, paginated; nested paths are not brokered and are left
//! out) and compares what the listing shows of each (id, maximum session,
//! trust policy, description) with what the table holds. `ListRoles`
//! returns no tags, so roles are read with `GetRole` when they are new or
//! changed, and, so that a change of tags alone is noticed, the
//! [`CatalogueSettings::rereads`] roles read longest ago are read again on
//! every refresh. A role is listed when `tollgate roles check` would call
//! it brokerable (tagged `tollgate:managed=true`, Tollgate tags that parse,
//! a trust policy the broker can use); a role gone from the listing is
//! dropped. At most [`MAX_DESCRIBES_PER_REFRESH`] new or changed roles are
//! read per refresh (four at a time); the rest are read on the next sweep.
//!
//! Refreshes are scheduled per account on the table's `CATALOGUE`/`META`
//! item: a sweep that finds an account due takes it with a conditional
//! update (a lease of [`REFRESH_LEASE_SECONDS`]), so concurrent sweeps do
//! not refresh one account twice; a refresh that fails is retried when the
//! lease runs out.
//!
//! Readers get every listed role of every target account, from one Query
//! per account, cached in process for [`CatalogueSettings::cache_seconds`].

use super::dynamodb::{Item, condition_failed, n, number_attr, s, store_failure, string_attr};
use super::iam::RoleDirectory;
use super::schema::{
    self, ARN, CATALOGUE, DESCRIBED_AT, FINGERPRINT_LISTED, LISTED, MAX_SESSION, META, PK, ROLE_ID,
    SK, TAGS,
};
use super::{AwsError, Store, StoreError, aws_failure};
use crate::domain::{OnboardingRules, RoleArn, RoleFacts, RoleInfo, Timestamp, assess};
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a sweep holds an account's refresh before another may take it.
pub const REFRESH_LEASE_SECONDS: i64 = 120;
/// New or changed roles read per account and refresh, at most.
pub const MAX_DESCRIBES_PER_REFRESH: usize = 200;
/// `GetRole` calls in flight at once during a refresh.
const DESCRIBE_CONCURRENCY: usize = 4;
/// Items per `BatchWriteItem`.
const BATCH: usize = 25;
/// Attempts at writing what `BatchWriteItem` left unprocessed.
const BATCH_ATTEMPTS: u32 = 5;

/// How the catalogue is refreshed and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueSettings {
    /// Seconds between refreshes of an account (0: every sweep).
    pub refresh_seconds: u32,
    /// Roles per account re-read on every refresh, least recently read first.
    pub rereads: u32,
    /// Seconds a reader keeps the catalogue in memory (0: read every time).
    pub cache_seconds: u32,
    /// The ceiling on any grant, to judge roles' Tollgate tags by.
    pub ceiling_seconds: u32,
}

/// What refreshes did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CatalogueReport {
    /// Accounts refreshed.
    pub accounts: u32,
    /// Roles added to the catalogue (listed or not).
    pub added: u32,
    /// Roles whose description changed.
    pub changed: u32,
    /// Roles dropped: deleted, or moved off the managed path.
    pub removed: u32,
    /// Roles read again although the listing showed no change.
    pub reread: u32,
    /// Accounts whose refresh failed (retried when its lease runs out).
    pub failed: u32,
    /// Whether new or changed roles remain to be read by the next sweep.
    pub more: bool,
}

impl CatalogueReport {
    /// Whether the catalogue changed.
    pub fn changed_anything(&self) -> bool {
        self.added + self.changed + self.removed > 0
    }

    fn add(&mut self, other: Self) {
        self.accounts += other.accounts;
        self.added += other.added;
        self.changed += other.changed;
        self.removed += other.removed;
        self.reread += other.reread;
        self.failed += other.failed;
        self.more |= other.more;
    }
}

/// Why an account could not be refreshed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// IAM or STS failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// The table failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The control role could not be assumed or may not read.
    #[error("the control role of account {account} cannot be used: {why}")]
    Control {
        /// The account.
        account: String,
        /// What STS or IAM said.
        why: String,
    },
}

/// A catalogued role as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    role: RoleInfo,
    listed: bool,
    fingerprint: String,
    described_at: i64,
}

/// A role as `ListRoles` shows it.
#[derive(Debug, Clone)]
struct Listed {
    arn: RoleArn,
    fingerprint: String,
}

/// The role catalogue. Cheap to clone; clones share the reader's cache.
#[derive(Clone)]
pub struct Catalogue {
    store: Store,
    roles: RoleDirectory,
    settings: CatalogueSettings,
    page_size: i32,
    describe_budget: usize,
    cache: Arc<Mutex<Option<Cached>>>,
}

/// The listed roles and when they were read.
type Cached = (Instant, Arc<Vec<RoleInfo>>);

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Catalogue {
    /// A catalogue in `store`'s table over the accounts `roles` reads in.
    pub fn new(store: Store, roles: RoleDirectory, settings: CatalogueSettings) -> Self {
        Self {
            store,
            roles,
            settings,
            page_size: 1000,
            describe_budget: MAX_DESCRIBES_PER_REFRESH,
            cache: Arc::new(Mutex::new(None)),
        }
    }

    /// The same catalogue listing `page_size` roles per `ListRoles` call
    /// (1-1000) and reading at most `describe_budget` new or changed roles
    /// per refresh: small values let tests page and spill over with a few
    /// roles.
    pub fn with_limits(mut self, page_size: i32, describe_budget: usize) -> Self {
        self.page_size = page_size.clamp(1, 1000);
        self.describe_budget = describe_budget.max(1);
        self
    }

    /// The settings.
    pub fn settings(&self) -> &CatalogueSettings {
        &self.settings
    }

    /// Every listed role of every target account, sorted by account and
    /// name: one Query per account, or none while the cached copy is fresh.
    pub async fn roles(&self) -> Result<Arc<Vec<RoleInfo>>, StoreError> {
        let ttl = Duration::from_secs(u64::from(self.settings.cache_seconds));
        if let Ok(cache) = self.cache.lock()
            && let Some((at, roles)) = cache.as_ref()
            && at.elapsed() < ttl
        {
            return Ok(roles.clone());
        }
        let mut roles = Vec::new();
        for account in &self.roles.accounts().settings().target_accounts {
            for item in self
                .store
                .query_partition(schema::catalogue_pk(account))
                .await?
            {
                match decode(&item) {
                    Ok(entry) if entry.listed => roles.push(entry.role),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(account, error = %e, "skipping a catalogue item"),
                }
            }
        }
        roles.sort_by(|a, b| (a.arn.account(), a.arn.name()).cmp(&(b.arn.account(), b.arn.name())));
        let roles = Arc::new(roles);
        if !ttl.is_zero()
            && let Ok(mut cache) = self.cache.lock()
        {
            *cache = Some((Instant::now(), roles.clone()));
        }
        Ok(roles)
    }

    /// Drops this process's cached copy of the catalogue.
    fn forget(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            *cache = None;
        }
    }

    /// Refreshes every target account whose refresh is due at `now`; an
    /// account another sweep is refreshing is left to it. Failures are
    /// logged and counted, never returned: the sweep's other work goes on.
    pub async fn refresh_due(&self, now: Timestamp) -> CatalogueReport {
        let mut report = CatalogueReport::default();
        let accounts: Vec<String> = self
            .roles
            .accounts()
            .settings()
            .target_accounts
            .iter()
            .cloned()
            .collect();
        for account in accounts {
            match self.claim(&account, now).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(account, error = %super::error_chain(&e), "cannot schedule the catalogue refresh");
                    continue;
                }
            }
            match self.refresh_account(&account, now).await {
                Ok((done, count)) => {
                    if let Err(e) = self.finish(&account, now, done.more, count).await {
                        tracing::warn!(account, error = %super::error_chain(&e), "catalogue refreshed but not rescheduled");
                    }
                    if done.changed_anything() {
                        tracing::info!(account, report = ?done, "role catalogue refreshed");
                        // Readers in this process (`tollgate serve`) see the
                        // change at once, not when their copy expires.
                        self.forget();
                    }
                    report.add(done);
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(account, error = %super::error_chain(&e), "catalogue refresh failed; retried when its lease runs out");
                }
            }
        }
        report
    }

    /// Refreshes `account` now, whatever its schedule. Returns what changed
    /// and how many roles it holds.
    pub async fn refresh_account(
        &self,
        account: &str,
        now: Timestamp,
    ) -> Result<(CatalogueReport, usize), CatalogueError> {
        let accounts = self.roles.accounts();
        let path = accounts.settings().managed_role_path.clone();
        let iam = accounts.iam_in(accounts.partition(), account).await?;
        let listed = list_roles(&iam, &path, self.page_size).await?;
        let mut stored: HashMap<String, Entry> = HashMap::new();
        for item in self
            .store
            .query_partition(schema::catalogue_pk(account))
            .await?
        {
            match decode(&item) {
                Ok(entry) => {
                    stored.insert(entry.role.arn.name().to_owned(), entry);
                }
                // Dropped here, written again below as a new role.
                Err(e) => tracing::warn!(account, error = %e, "rewriting a corrupt catalogue item"),
            }
        }
        let mut report = CatalogueReport {
            accounts: 1,
            ..CatalogueReport::default()
        };
        let mut deletes: Vec<String> = stored
            .keys()
            .filter(|name| !listed.iter().any(|l| l.arn.name() == name.as_str()))
            .cloned()
            .collect();
        // New or changed first, then the least recently read.
        let mut urgent: Vec<&Listed> = Vec::new();
        let mut rotation: Vec<(&Listed, i64)> = Vec::new();
        for l in &listed {
            match stored.get(l.arn.name()) {
                Some(entry) if entry.fingerprint == l.fingerprint => {
                    rotation.push((l, entry.described_at));
                }
                _ => urgent.push(l),
            }
        }
        if urgent.len() > self.describe_budget {
            urgent.truncate(self.describe_budget);
            report.more = true;
        }
        rotation.sort_by(|(a, at_a), (b, at_b)| (at_a, a.arn.name()).cmp(&(at_b, b.arn.name())));
        let rereads = usize::try_from(self.settings.rereads).unwrap_or(usize::MAX);
        let to_read: Vec<Listed> = urgent
            .into_iter()
            .cloned()
            .chain(rotation.into_iter().take(rereads).map(|(l, _)| l.clone()))
            .collect();
        let described = self.describe_all(account, &to_read).await?;
        let mut puts = Vec::new();
        for (l, facts) in to_read.iter().zip(described) {
            let name = l.arn.name();
            let entry = match facts {
                RoleFacts::Missing => {
                    // Deleted between the listing and the read.
                    if stored.contains_key(name) {
                        deletes.push(name.to_owned());
                    }
                    continue;
                }
                RoleFacts::Found { ref role, .. } => {
                    let listed = assess(&l.arn, &facts, self.rules()).brokerable;
                    Entry {
                        role: role.clone(),
                        listed,
                        fingerprint: l.fingerprint.clone(),
                        described_at: now.unix(),
                    }
                }
                // The control role may read only managed roles (deployed, a
                // tag condition): one it may not read is not brokerable.
                RoleFacts::Unreadable => Entry {
                    role: RoleInfo {
                        arn: l.arn.clone(),
                        role_id: String::new(),
                        max_session_seconds: 0,
                        tags: BTreeMap::new(),
                    },
                    listed: false,
                    fingerprint: l.fingerprint.clone(),
                    described_at: now.unix(),
                },
                RoleFacts::NotBrokered | RoleFacts::NoControlSession(_) => {
                    return Err(CatalogueError::Control {
                        account: account.to_owned(),
                        why: format!("{facts:?}"),
                    });
                }
            };
            match stored.get(name) {
                None => report.added += 1,
                Some(old) if old.role != entry.role || old.listed != entry.listed => {
                    report.changed += 1;
                }
                Some(old) if old.fingerprint != entry.fingerprint => report.changed += 1,
                Some(_) => report.reread += 1,
            }
            puts.push(encode(account, &entry));
        }
        report.removed = u32::try_from(deletes.len()).unwrap_or(u32::MAX);
        let count = listed.len();
        let mut writes = Vec::with_capacity(puts.len() + deletes.len());
        for item in puts {
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| StoreError::Corrupt(format!("catalogue put does not build: {e}")))?;
            writes.push(WriteRequest::builder().put_request(put).build());
        }
        for name in deletes {
            let delete = DeleteRequest::builder()
                .key(PK, s(schema::catalogue_pk(account)))
                .key(SK, s(schema::catalogue_sk(&name)))
                .build()
                .map_err(|e| {
                    StoreError::Corrupt(format!("catalogue delete does not build: {e}"))
                })?;
            writes.push(WriteRequest::builder().delete_request(delete).build());
        }
        self.write(writes).await?;
        Ok((report, count))
    }

    fn rules(&self) -> OnboardingRules<'_> {
        let settings = self.roles.accounts().settings();
        OnboardingRules {
            broker_account: &settings.broker_account,
            managed_path: &settings.managed_role_path,
            ceiling_seconds: self.settings.ceiling_seconds,
        }
    }

    /// `GetRole` for each of `roles`, a few at a time, in order.
    async fn describe_all(
        &self,
        account: &str,
        roles: &[Listed],
    ) -> Result<Vec<RoleFacts>, CatalogueError> {
        let mut out: Vec<Option<RoleFacts>> = vec![None; roles.len()];
        for (chunk_start, chunk) in roles.chunks(DESCRIBE_CONCURRENCY).enumerate() {
            let mut set = tokio::task::JoinSet::new();
            for (i, l) in chunk.iter().enumerate() {
                let directory = self.roles.clone();
                let arn = l.arn.clone();
                set.spawn(async move { (i, directory.facts(&arn).await) });
            }
            while let Some(joined) = set.join_next().await {
                let (i, facts) = joined.map_err(|e| CatalogueError::Control {
                    account: account.to_owned(),
                    why: format!("a describe task failed: {e}"),
                })?;
                if let Some(slot) = out.get_mut(chunk_start * DESCRIBE_CONCURRENCY + i) {
                    *slot = Some(facts?);
                }
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Writes and deletes in batches, retrying what DynamoDB leaves
    /// unprocessed.
    async fn write(&self, writes: Vec<WriteRequest>) -> Result<(), StoreError> {
        let table = self.store.table().to_owned();
        for chunk in writes.chunks(BATCH) {
            let mut pending = chunk.to_vec();
            for attempt in 1..=BATCH_ATTEMPTS {
                let out = self
                    .store
                    .client()
                    .batch_write_item()
                    .request_items(&table, pending)
                    .send()
                    .await
                    .map_err(store_failure)?;
                pending = out
                    .unprocessed_items()
                    .and_then(|u| u.get(&table))
                    .cloned()
                    .unwrap_or_default();
                if pending.is_empty() {
                    break;
                }
                if attempt == BATCH_ATTEMPTS {
                    return Err(StoreError::Unavailable(
                        "DynamoDB left catalogue writes unprocessed".into(),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
        }
        Ok(())
    }

    /// Takes `account`'s refresh if it is due at `now`.
    async fn claim(&self, account: &str, now: Timestamp) -> Result<bool, StoreError> {
        let result = self
            .store
            .client()
            .update_item()
            .table_name(self.store.table())
            .key(PK, s(CATALOGUE))
            .key(SK, s(META))
            .update_expression("SET #due = :until")
            .condition_expression("attribute_not_exists(#due) OR #due <= :now")
            .expression_attribute_names("#due", format!("due_{account}"))
            .expression_attribute_values(":until", n(now.unix() + REFRESH_LEASE_SECONDS))
            .expression_attribute_values(":now", n(now.unix()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(store_failure(e)),
        }
    }

    /// Schedules `account`'s next refresh: at once when roles remain to be
    /// read, else after the refresh interval.
    async fn finish(
        &self,
        account: &str,
        now: Timestamp,
        more: bool,
        count: usize,
    ) -> Result<(), StoreError> {
        let next = if more {
            now
        } else {
            now.plus(i64::from(self.settings.refresh_seconds))
        };
        self.store
            .client()
            .update_item()
            .table_name(self.store.table())
            .key(PK, s(CATALOGUE))
            .key(SK, s(META))
            .update_expression("SET #due = :next, #at = :now, #count = :count")
            .expression_attribute_names("#due", format!("due_{account}"))
            .expression_attribute_names("#at", format!("refreshed_{account}"))
            .expression_attribute_names("#count", format!("roles_{account}"))
            .expression_attribute_values(":next", n(next.unix()))
            .expression_attribute_values(":now", n(now.unix()))
            .expression_attribute_values(":count", n(count))
            .send()
            .await
            .map_err(store_failure)?;
        Ok(())
    }
}

/// Every role directly under `path` in the account `iam` acts in.
async fn list_roles(
    iam: &aws_sdk_iam::Client,
    path: &str,
    page_size: i32,
) -> Result<Vec<Listed>, AwsError> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = iam
            .list_roles()
            .path_prefix(path)
            .max_items(page_size)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| aws_failure("ListRoles", e))?;
        for role in page.roles() {
            // The prefix also matches nested paths, which are not brokered.
            if role.path() != path {
                continue;
            }
            let Ok(arn) = RoleArn::parse(role.arn()) else {
                tracing::warn!(
                    arn = role.arn(),
                    "ListRoles returned an ARN that does not parse"
                );
                continue;
            };
            let seen = serde_json::json!([
                role.role_id(),
                role.max_session_duration(),
                role.assume_role_policy_document(),
                role.description(),
            ]);
            out.push(Listed {
                arn,
                fingerprint: hex::encode(Sha256::digest(seen.to_string().as_bytes())),
            });
        }
        match page.marker() {
            Some(m) if page.is_truncated() => marker = Some(m.to_owned()),
            _ => break,
        }
    }
    Ok(out)
}

fn encode(account: &str, e: &Entry) -> Item {
    let tags = e
        .role
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), s(v.clone())))
        .collect();
    HashMap::from([
        (PK.to_owned(), s(schema::catalogue_pk(account))),
        (SK.to_owned(), s(schema::catalogue_sk(e.role.arn.name()))),
        (ARN.to_owned(), s(e.role.arn.as_str())),
        (ROLE_ID.to_owned(), s(e.role.role_id.clone())),
        (MAX_SESSION.to_owned(), n(e.role.max_session_seconds)),
        (TAGS.to_owned(), AttributeValue::M(tags)),
        (LISTED.to_owned(), AttributeValue::Bool(e.listed)),
        (FINGERPRINT_LISTED.to_owned(), s(e.fingerprint.clone())),
        (DESCRIBED_AT.to_owned(), n(e.described_at)),
    ])
}

fn decode(item: &Item) -> Result<Entry, StoreError> {
    let arn = RoleArn::parse(string_attr(item, ARN)?)
        .map_err(|e| StoreError::Corrupt(format!("catalogue item: {e}")))?;
    let tags = match item.get(TAGS) {
        Some(AttributeValue::M(m)) => m
            .iter()
            .map(|(k, v)| match v {
                AttributeValue::S(v) => Ok((k.clone(), v.clone())),
                _ => Err(StoreError::Corrupt(format!(
                    "catalogue item {arn}: a tag is not a string"
                ))),
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?,
        _ => {
            return Err(StoreError::Corrupt(format!(
                "catalogue item {arn}: no tags"
            )));
        }
    };
    Ok(Entry {
        role: RoleInfo {
            role_id: string_attr(item, ROLE_ID)?.to_owned(),
            max_session_seconds: u32::try_from(number_attr(item, MAX_SESSION)?).map_err(|_| {
                StoreError::Corrupt(format!("catalogue item {arn}: bad max_session"))
            })?,
            tags,
            arn,
        },
        listed: matches!(item.get(LISTED), Some(AttributeValue::Bool(true))),
        fingerprint: string_attr(item, FINGERPRINT_LISTED)?.to_owned(),
        described_at: number_attr(item, DESCRIBED_AT)?,
    })
}

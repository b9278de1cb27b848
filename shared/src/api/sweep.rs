//! The expiry sweep, run by the `expiry` function every minute and by
//! `tollgate serve` every few seconds: mark grants whose window ended
//! `expired`, pending requests past their deadline `lapsed`, and bring the
//! revocation policy of each role with a revoked grant due in line with the
//! table (confirming statements a revoke could not write, dropping those
//! whose window has passed). Each change is one conditional transition with
//! its event. Idempotent: a request someone else changed meanwhile is left
//! for the next run, and running twice does nothing the second time.
//! Batched: at most [`MAX_ITEMS`] per run. Each run also counts the
//! break-glass grants waiting for their review longer than allowed.
//!
//! Each run also refreshes the role catalogue of every target account whose
//! refresh is due ([`crate::aws::Catalogue::refresh_due`]), unless
//! `TOLLGATE_CATALOGUE_REFRESH_SECONDS` is 0.
//!
//! A revoked grant that needed a statement is due at once: the run renders
//! its role's policy from the table (under the role's lease, once per role
//! per run) and then moves the grant to its window end, when a later run
//! renders the role again, which drops the statement, and takes the grant
//! off the due index. A role whose render fails keeps its grants due (and
//! counts `RevocationFailures`); one whose lease someone else holds is left
//! for the next run.

use super::AppState;
use crate::BrokerError;
use crate::audit::metrics;
use crate::aws::{CatalogueReport, PageRequest, Reconciled, StoreError};
use crate::domain::{AccessRequest, Actor, Command, RoleArn, Status, Timestamp};
use serde::Serialize;
use std::collections::HashMap;

/// Due requests read per store page.
pub const BATCH: u32 = 50;
/// Requests handled per run, at most; the rest wait for the next run.
pub const MAX_ITEMS: usize = 500;

/// How much one run reads and handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepLimits {
    /// Due requests read per store page (1 to 100).
    pub batch: u32,
    /// Requests handled per run, at most (at least one page's worth is read).
    pub max_items: usize,
}

impl Default for SweepLimits {
    fn default() -> Self {
        Self {
            batch: BATCH,
            max_items: MAX_ITEMS,
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Grants marked expired.
    pub expired: u32,
    /// Pending requests marked lapsed.
    pub lapsed: u32,
    /// Revocation statements removed from roles because their window passed.
    pub pruned_statements: u32,
    /// Role revocation policies written because they differed from the table.
    pub policies_written: u32,
    /// Revoked grants whose statement this run confirmed (due again at
    /// their window end, to be pruned).
    pub confirmed: u32,
    /// Closed requests taken off the due index.
    pub cleared: u32,
    /// Requests left for the next run: changed by someone else meanwhile,
    /// or their role's revocation policy was being written by someone else.
    pub skipped: u32,
    /// Requests that failed (logged; retried next run).
    pub failed: u32,
    /// Whether more due requests remain than this run handled.
    pub more: bool,
    /// Break-glass grants older than `TOLLGATE_BREAK_GLASS_REVIEW_SECONDS`
    /// still without a review (counted as `UnreviewedBreakGlass` every
    /// run, zero included, so the alarm always has a datapoint).
    pub overdue_reviews: u64,
    /// What the role catalogue's refreshes did.
    pub catalogue: CatalogueReport,
}

impl SweepReport {
    /// Whether the run changed anything.
    pub fn changed(&self) -> bool {
        self.expired
            + self.lapsed
            + self.pruned_statements
            + self.policies_written
            + self.confirmed
            + self.cleared
            > 0
            || self.catalogue.changed_anything()
    }
}

/// How a role's revocation policy fared in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoleSync {
    Rendered,
    Busy,
    Failed,
}

/// One run's progress: the report and each role's render, done once.
#[derive(Default)]
struct Run {
    report: SweepReport,
    roles: HashMap<RoleArn, RoleSync>,
}

/// Runs one sweep as of `now`.
pub async fn sweep(state: &AppState, now: Timestamp) -> Result<SweepReport, BrokerError> {
    sweep_with(state, now, SweepLimits::default()).await
}

/// Runs one sweep as of `now` within `limits`.
pub async fn sweep_with(
    state: &AppState,
    now: Timestamp,
    limits: SweepLimits,
) -> Result<SweepReport, BrokerError> {
    let mut run = Run::default();
    let mut start = None;
    let mut seen = 0usize;
    loop {
        let page = state
            .store
            .list_due(
                now,
                PageRequest {
                    limit: limits.batch,
                    start,
                },
            )
            .await?;
        seen += page.items.len();
        handle(state, &page.items, now, &mut run).await;
        match page.next {
            Some(next) if seen < limits.max_items => start = Some(next),
            Some(_) => {
                run.report.more = true;
                break;
            }
            None => break,
        }
    }
    if state.config.catalogue_refresh_seconds > 0 {
        run.report.catalogue = state.catalogue.refresh_due(now).await;
    }
    finish(state, &run.report);
    let overdue_before = now.plus(-i64::from(state.config.break_glass_review_seconds));
    match state.store.count_unreviewed_before(overdue_before).await {
        Ok(n) => {
            run.report.overdue_reviews = n;
            state
                .metrics
                .count(metrics::UNREVIEWED_BREAK_GLASS, "sweep", n);
            if n > 0 {
                tracing::warn!(
                    overdue = n,
                    "break-glass grants wait for their review longer than allowed"
                );
            }
        }
        // The run's own work is done; the count is tried again next run.
        Err(e) => tracing::warn!(error = %e, "could not count unreviewed break-glass grants"),
    }
    state.metrics.count(metrics::SWEEP_RUNS, "sweep", 1);
    Ok(run.report)
}

/// Handles `requests` as listed due (possibly read a while ago) as of
/// `now`: the part of a run after the listing.
pub async fn sweep_requests(
    state: &AppState,
    requests: &[AccessRequest],
    now: Timestamp,
) -> SweepReport {
    let mut run = Run::default();
    handle(state, requests, now, &mut run).await;
    finish(state, &run.report);
    run.report
}

async fn handle(state: &AppState, requests: &[AccessRequest], now: Timestamp, run: &mut Run) {
    for req in requests {
        if let Err(e) = sweep_one(state, req, now, run).await {
            run.report.failed += 1;
            tracing::warn!(request_id = %req.id, code = e.code(), error = %e, "sweep could not handle a request");
        }
    }
}

fn finish(state: &AppState, report: &SweepReport) {
    if report.expired + report.lapsed > 0 {
        state.metrics.count(
            metrics::EXPIRIES,
            "sweep",
            u64::from(report.expired + report.lapsed),
        );
    }
}

async fn sweep_one(
    state: &AppState,
    req: &AccessRequest,
    now: Timestamp,
    run: &mut Run,
) -> Result<(), BrokerError> {
    let command = match (req.status, req.effective_status(now)) {
        (Status::Active, Status::Expired) => Command::Expire,
        (Status::Pending, Status::Lapsed) => Command::Lapse,
        (Status::Pending | Status::Active, _) => {
            // Not due yet by its own times (the index and the item disagree
            // by a clock tick); the next run will see it.
            run.report.skipped += 1;
            return Ok(());
        }
        (Status::Revoked, _) => return revoked(state, req, now, run).await,
        _ => return clear(state, req, &mut run.report).await,
    };
    let (next, event) = match req.apply(command, &Actor::System, now) {
        Ok(applied) => applied,
        Err(refusal) => {
            tracing::info!(request_id = %req.id, %refusal, "sweep skipped a request");
            run.report.skipped += 1;
            return Ok(());
        }
    };
    match state.store.transition(req.version, &next, &event).await {
        Ok(()) => {
            state.audit.transition(&next, &event);
            match next.status {
                Status::Expired => run.report.expired += 1,
                _ => run.report.lapsed += 1,
            }
            Ok(())
        }
        Err(StoreError::Conflict) => {
            run.report.skipped += 1;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// A revoked grant on the due index: render its role's policy from the
/// table (once per run), then move the grant to its window end, or take it
/// off the index once that has passed.
async fn revoked(
    state: &AppState,
    req: &AccessRequest,
    now: Timestamp,
    run: &mut Run,
) -> Result<(), BrokerError> {
    let sync = match run.roles.get(&req.role_arn) {
        Some(sync) => *sync,
        None => {
            let sync = render_role(state, &req.role_arn, now, &mut run.report).await;
            run.roles.insert(req.role_arn.clone(), sync);
            sync
        }
    };
    match sync {
        RoleSync::Rendered => {}
        RoleSync::Busy => {
            run.report.skipped += 1;
            return Ok(());
        }
        RoleSync::Failed => {
            // Keep it due so that the next run renders the role again.
            return Err(BrokerError::Unavailable {
                message: "rendering this role's revocation policy failed".into(),
                source: None,
            });
        }
    }
    match req.window_end.filter(|end| *end > now) {
        Some(end) => match state.store.set_due(req.id, req.version, end).await {
            Ok(()) => {
                run.report.confirmed += 1;
                Ok(())
            }
            Err(StoreError::Conflict) => {
                run.report.skipped += 1;
                Ok(())
            }
            Err(e) => Err(e.into()),
        },
        None => clear(state, req, &mut run.report).await,
    }
}

/// Renders `role`'s revocation policy from the table as of `now`.
async fn render_role(
    state: &AppState,
    role: &RoleArn,
    now: Timestamp,
    report: &mut SweepReport,
) -> RoleSync {
    let Some(revoker) = state.revoker.as_ref() else {
        tracing::error!("sweep without a role-policy writer");
        return RoleSync::Failed;
    };
    match revoker.reconcile(role, now).await {
        Ok(Reconciled::Rendered(render)) => {
            report.pruned_statements += u32::try_from(render.pruned).unwrap_or(u32::MAX);
            if render.written {
                report.policies_written += 1;
                tracing::info!(role = %role, outcome = ?render.outcome, pruned = render.pruned, "revocation policy rendered from the table");
            }
            RoleSync::Rendered
        }
        Ok(Reconciled::Busy) => RoleSync::Busy,
        Err(e) => {
            state
                .metrics
                .count(metrics::REVOCATION_FAILURES, "sweep", 1);
            tracing::warn!(role = %role, error = %crate::aws::error_chain(&e), "could not render the role's revocation policy; retrying next run");
            RoleSync::Failed
        }
    }
}

/// Takes a closed request off the due index (a revoked one once its
/// statement's window has passed).
async fn clear(
    state: &AppState,
    req: &AccessRequest,
    report: &mut SweepReport,
) -> Result<(), BrokerError> {
    match state.store.clear_due(req.id, req.version).await {
        Ok(()) => {
            report.cleared += 1;
            Ok(())
        }
        Err(StoreError::Conflict) => {
            report.skipped += 1;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

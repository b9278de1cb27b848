//! The expiry sweep, run by the `expiry` function every minute and by
//! `tollgate serve` every few seconds: mark grants whose window ended
//! `expired`, pending requests past their deadline `lapsed`, and drop
//! revocation statements whose window has passed. Each change is one
//! conditional transition with its event. Idempotent: a request someone
//! else changed meanwhile is left for the next run, and running twice does
//! nothing the second time. Batched: at most [`MAX_ITEMS`] per run.

use super::AppState;
use crate::BrokerError;
use crate::audit::metrics;
use crate::aws::{PageRequest, StoreError};
use crate::domain::{AccessRequest, Actor, Command, RoleArn, Status, Timestamp};
use serde::Serialize;
use std::collections::HashMap;

/// Due requests read per store page.
pub const BATCH: u32 = 50;
/// Requests handled per run, at most; the rest wait for the next run.
pub const MAX_ITEMS: usize = 500;

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Grants marked expired.
    pub expired: u32,
    /// Pending requests marked lapsed.
    pub lapsed: u32,
    /// Revocation statements removed from roles.
    pub pruned_statements: u32,
    /// Closed requests taken off the due index.
    pub cleared: u32,
    /// Requests changed by someone else meanwhile (left for the next run).
    pub skipped: u32,
    /// Requests that failed (logged; retried next run).
    pub failed: u32,
    /// Whether more due requests remain than this run handled.
    pub more: bool,
}

impl SweepReport {
    /// Whether the run changed anything.
    pub fn changed(&self) -> bool {
        self.expired + self.lapsed + self.pruned_statements + self.cleared > 0
    }
}

/// Runs one sweep as of `now`.
pub async fn sweep(state: &AppState, now: Timestamp) -> Result<SweepReport, BrokerError> {
    let mut report = SweepReport::default();
    let mut pruned_roles: HashMap<RoleArn, bool> = HashMap::new();
    let mut start = None;
    let mut seen = 0usize;
    loop {
        let page = state
            .store
            .list_due(
                now,
                PageRequest {
                    limit: BATCH,
                    start,
                },
            )
            .await?;
        for req in page.items {
            seen += 1;
            if let Err(e) = sweep_one(state, &req, now, &mut report, &mut pruned_roles).await {
                report.failed += 1;
                tracing::warn!(request_id = %req.id, code = e.code(), error = %e, "sweep could not handle a request");
            }
        }
        match page.next {
            Some(next) if seen < MAX_ITEMS => start = Some(next),
            Some(_) => {
                report.more = true;
                break;
            }
            None => break,
        }
    }
    if report.expired + report.lapsed > 0 {
        state.metrics.count(
            metrics::EXPIRIES,
            "sweep",
            u64::from(report.expired + report.lapsed),
        );
    }
    Ok(report)
}

async fn sweep_one(
    state: &AppState,
    req: &AccessRequest,
    now: Timestamp,
    report: &mut SweepReport,
    pruned_roles: &mut HashMap<RoleArn, bool>,
) -> Result<(), BrokerError> {
    let command = match (req.status, req.effective_status(now)) {
        (Status::Active, Status::Expired) => Command::Expire,
        (Status::Pending, Status::Lapsed) => Command::Lapse,
        (Status::Pending | Status::Active, _) => {
            // Not due yet by its own times (the index and the item disagree
            // by a clock tick); the next run will see it.
            report.skipped += 1;
            return Ok(());
        }
        (Status::Revoked, _) => {
            let role = &req.role_arn;
            let pruned = match pruned_roles.get(role) {
                Some(ok) => *ok,
                None => {
                    let result = prune(state, role, now).await;
                    pruned_roles.insert(role.clone(), result.is_ok());
                    report.pruned_statements += result?;
                    true
                }
            };
            if !pruned {
                // Keep it due so that the next run prunes the role again.
                return Err(BrokerError::Unavailable {
                    message: "pruning this role failed earlier in the run".into(),
                    source: None,
                });
            }
            return clear(state, req, report).await;
        }
        _ => return clear(state, req, report).await,
    };
    let (next, event) = match req.apply(command, &Actor::System, now) {
        Ok(applied) => applied,
        Err(refusal) => {
            tracing::info!(request_id = %req.id, %refusal, "sweep skipped a request");
            report.skipped += 1;
            return Ok(());
        }
    };
    match state.store.transition(req.version, &next, &event).await {
        Ok(()) => {
            state.audit.transition(&next, &event);
            match next.status {
                Status::Expired => report.expired += 1,
                _ => report.lapsed += 1,
            }
            Ok(())
        }
        Err(StoreError::Conflict) => {
            report.skipped += 1;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes the role's revocation statements whose window has passed.
async fn prune(state: &AppState, role: &RoleArn, now: Timestamp) -> Result<u32, BrokerError> {
    let Some(revoker) = state.revoker.as_ref() else {
        return Err(BrokerError::Internal {
            detail: "sweep without a role-policy writer".into(),
        });
    };
    let removed = revoker.prune(role, now).await?;
    Ok(u32::try_from(removed).unwrap_or(u32::MAX))
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

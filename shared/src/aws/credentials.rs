//! Minting credentials for a grant, in the order that keeps the audit trail
//! complete: plan (pure checks), record the issue event in one transaction,
//! then call STS. If the event cannot be written, STS is never called and no
//! credentials exist; if STS then fails, the trail holds one attempt more
//! than was issued (and a log line says it failed), never one fewer.

use super::{CredentialPlan, IssuedCredentials, Issuer, Store, StoreError};
use crate::BrokerError;
use crate::audit::{AuditLog, Metrics, metrics};
use crate::domain::{AccessRequest, Actor, Command, SessionName, Timestamp};

/// Attempts at recording the issue event when the request changed meanwhile
/// (another credential issued at the same moment bumps its version).
const RECORD_ATTEMPTS: usize = 3;

/// Mints credentials for `req` (as last read) on behalf of `actor` at `now`,
/// and returns the request as stored afterwards with the credentials.
/// Refusals of the lifecycle (not the requester, not active) come first. A
/// version conflict is read again and re-planned, up to three times.
pub async fn mint_credentials(
    store: &Store,
    issuer: &Issuer,
    log: &AuditLog,
    req: &AccessRequest,
    actor: &Actor,
    now: Timestamp,
) -> Result<(AccessRequest, IssuedCredentials), BrokerError> {
    let mut current = req.clone();
    for attempt in 1..=RECORD_ATTEMPTS {
        let plan = match CredentialPlan::new(&current, now) {
            Ok(plan) => plan,
            Err(invalid) => {
                // Report what the lifecycle refuses (wrong user, no grant)
                // before the planner's own reason.
                current.apply(
                    Command::IssueCredentials {
                        session_name: SessionName::for_request(current.id),
                        expires_at: now,
                    },
                    actor,
                    now,
                )?;
                return Err(invalid.into());
            }
        };
        let (next, event) = current.apply(
            Command::IssueCredentials {
                session_name: plan.session_name.clone(),
                expires_at: plan.expires_at,
            },
            actor,
            now,
        )?;
        // INVARIANT: the issue event is durable before STS is asked; no
        // credentials exist without their record.
        match store.transition(current.version, &next, &event).await {
            Ok(()) => {
                log.transition(&next, &event);
                let creds = issue_recorded(issuer, log, &next, &plan).await?;
                return Ok((next, creds));
            }
            Err(StoreError::Conflict) if attempt < RECORD_ATTEMPTS => {
                tracing::info!(request_id = %current.id, attempt, "version conflict; reading the request again");
                current = store
                    .get(current.id)
                    .await?
                    .ok_or_else(|| BrokerError::Conflict {
                        code: "conflict",
                        message: "the request changed since you read it; fetch it again".into(),
                    })?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// Calls STS for a plan whose issue event is already stored (`recorded` is
/// the request as written with it), and logs the outcome either way.
pub async fn issue_recorded(
    issuer: &Issuer,
    log: &AuditLog,
    recorded: &AccessRequest,
    plan: &CredentialPlan,
) -> Result<IssuedCredentials, BrokerError> {
    match issuer.issue(plan).await {
        Ok(creds) => {
            log.credentials_issued(recorded, plan, creds.expiration);
            Ok(creds)
        }
        Err(e) => {
            let err = BrokerError::from(e);
            log.credentials_failed(recorded, plan, err.code());
            // Every front door mints through here, so the alarm's metric is
            // counted here, on the log's own sink.
            Metrics::new(log.sink()).count(metrics::CREDENTIAL_FAILURES, "credentials", 1);
            Err(err)
        }
    }
}

//! `tollgate audit verify`: fetch a request with its audit events and check
//! the hash chain and every event's signature locally, against the audit
//! key's public key (fetched once from KMS, or a PEM file), so the check does
//! not depend on trusting the broker's own verdict or the table's content.

use super::Ctx;
use crate::args::AuditVerifyArgs;
use crate::error::CliError;
use crate::output::{OutputFormat, write_json};
use serde_json::json;
use std::io::Write;
use tollgate::audit::chain::{self, AuditKey, ChainError};
use tollgate::domain::{AccessRequest, Event};

/// The position of the first bad event a chain error names, if any.
pub fn first_bad_event(e: &ChainError) -> Option<u64> {
    match e {
        ChainError::Empty => None,
        ChainError::ForeignEvent { seq }
        | ChainError::Link { seq }
        | ChainError::Altered { seq }
        | ChainError::Unsigned { seq }
        | ChainError::BadSignature { seq } => Some(*seq),
        ChainError::Sequence { expected, .. } => Some(*expected),
        ChainError::Head { last_seq } => Some(last_seq + 1),
    }
}

/// Checks `events` against `req` and `key` and reports the outcome to `out`.
pub fn report(
    req: &AccessRequest,
    events: &[Event],
    key: &AuditKey,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let verdict = chain::verify_signed(events, &req.chain_head, req.version, key);
    match format {
        OutputFormat::Json => {
            let mut v = json!({
                "request_id": req.id,
                "verified": verdict.is_ok(),
                "events": events.len(),
                "head": req.chain_head,
            });
            if let Err(e) = &verdict {
                v["error"] = e.to_string().into();
                v["first_bad_event"] = first_bad_event(e).into();
            }
            write_json(out, &v)?;
        }
        OutputFormat::Table => {
            if verdict.is_ok() {
                writeln!(
                    out,
                    "audit trail of request {} verified: {} events, each signed by the audit key, head {}",
                    req.id,
                    events.len(),
                    req.chain_head
                )?;
            }
        }
    }
    verdict.map_err(|e| {
        let at =
            first_bad_event(&e).map_or_else(String::new, |n| format!(" (first bad event: {n})"));
        CliError::generic(
            "audit_chain_broken",
            format!("audit trail of request {} does not verify: {e}{at}", req.id),
        )
    })
}

/// `tollgate audit verify <id>`: through the broker, or straight from the
/// table with `--table`.
pub async fn verify(
    ctx: &mut Ctx<'_>,
    args: &AuditVerifyArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let format = ctx.output();
    let key = audit_key(ctx, args).await?;
    if let Some(table) = &args.table {
        let sdk = tollgate::aws::load_sdk_config().await;
        let store = tollgate::aws::Store::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            table.clone(),
            tollgate::Config::default().retention_seconds(),
        );
        let found = store.get_with_events(args.id).await.map_err(|e| {
            let mut err = super::local::store_error(&e);
            if matches!(e, tollgate::aws::StoreError::Corrupt(_)) {
                // An item that no longer decodes is itself tampering evidence.
                err.code = "audit_chain_broken".into();
                err.message = format!(
                    "audit trail of request {} does not verify: {}",
                    args.id, err.message
                );
            }
            err
        })?;
        let Some((req, events)) = found else {
            return Err(CliError::new(
                crate::error::Exit::NotFound,
                "not_found",
                format!("request {} is not in table `{table}`", args.id),
            ));
        };
        return report(&req, &events, &key, format, out);
    }
    let (client, _) = ctx.client().await?;
    let body = client.get(args.id).await?;
    let (req, events) = super::requests::parse_for_audit(&body)?;
    report(&req, &events, &key, format, out)
}

/// The key signatures are checked against: `--public-key`, else the public
/// key of `--key-id` (or `TOLLGATE_AUDIT_KEY_ID`, or the default alias) from
/// one KMS `GetPublicKey` call.
async fn audit_key(ctx: &Ctx<'_>, args: &AuditVerifyArgs) -> Result<AuditKey, CliError> {
    if let Some(path) = &args.public_key {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CliError::usage(
                "invalid_input",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        return AuditKey::from_pem(&text)
            .map_err(|e| CliError::usage("invalid_input", format!("{}: {e}", path.display())));
    }
    let key_id = args
        .key_id
        .clone()
        .or_else(|| (ctx.env)("TOLLGATE_AUDIT_KEY_ID").filter(|k| !k.trim().is_empty()))
        .unwrap_or_else(|| tollgate::aws::DEFAULT_AUDIT_KEY.to_owned());
    let sdk = tollgate::aws::load_sdk_config().await;
    tollgate::aws::kms::public_key(&aws_sdk_kms::Client::new(&sdk), &key_id)
        .await
        .map_err(|e| {
            let mut err = super::local::aws_error(&e);
            err.message = format!(
                "cannot fetch the public key of audit key `{}` (or pass --public-key FILE): {}",
                crate::output::clean(&key_id),
                err.message
            );
            err
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate::domain::{
        Actor, Command, GrantDuration, Identity, NewRequest, Reason, RequestId, RoleArn, Timestamp,
        UserId,
    };

    fn trail() -> (AccessRequest, Vec<Event>) {
        let now = Timestamp::from_unix(1_795_000_000);
        let new = NewRequest {
            id: RequestId::generate(now),
            requester: Identity {
                sub: UserId::parse("alice").unwrap(),
                groups: vec![],
                tags: Default::default(),
                mfa: false,
            },
            role_arn: RoleArn::parse("arn:aws:iam::123456789012:role/X").unwrap(),
            duration: GrantDuration::new(3600, 43_200).unwrap(),
            reason: Reason::parse("x").unwrap(),
            ticket: None,
            session_policy: None,
            approvals_required: 1,
            pending_ttl_seconds: 86_400,
        };
        let (req, e1) = AccessRequest::create(new, false, vec![], now);
        let bob = Actor::User(UserId::parse("bob").unwrap());
        let (req, e2) = req
            .apply(
                Command::Approve {
                    digest: req.digest.clone(),
                    comment: None,
                    policies: vec![],
                },
                &bob,
                now.plus(10),
            )
            .unwrap();
        (req, vec![e1, e2])
    }

    /// The trail signed with a fresh key, and that key's public half.
    fn signed_trail() -> (AccessRequest, Vec<Event>, AuditKey) {
        let (req, events) = trail();
        let key = tollgate::aws::testing::LocalAuditKey::generate().unwrap();
        let events = events.iter().map(|e| key.sign(e).unwrap()).collect();
        let public = AuditKey::from_der(&key.public_der().unwrap()).unwrap();
        (req, events, public)
    }

    #[test]
    fn an_intact_trail_verifies() {
        let (req, events, key) = signed_trail();
        let mut out = Vec::new();
        report(&req, &events, &key, OutputFormat::Table, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("verified: 2 events"), "{text}");
    }

    #[test]
    fn a_trail_signed_by_another_key_or_not_at_all_is_refused() {
        let (req, events, _) = signed_trail();
        let (_, _, other) = signed_trail();
        let err = report(&req, &events, &other, OutputFormat::Table, &mut Vec::new()).unwrap_err();
        assert!(
            err.message
                .contains("event 1 is not signed by the audit key"),
            "{}",
            err.message
        );
        let (req, unsigned) = trail();
        let err = report(
            &req,
            &unsigned,
            &other,
            OutputFormat::Table,
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(
            err.message.contains("event 1 is not signed"),
            "{}",
            err.message
        );
    }

    #[test]
    fn an_edited_event_is_named() {
        let (req, mut events, key) = signed_trail();
        events[0].at = events[0].at.plus(-60);
        let mut out = Vec::new();
        let err = report(&req, &events, &key, OutputFormat::Json, &mut out).unwrap_err();
        assert_eq!(err.exit.code(), 1);
        assert!(
            err.message.contains("event 1 was altered"),
            "{}",
            err.message
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["verified"], false);
        assert_eq!(v["first_bad_event"], 1);
    }

    #[test]
    fn a_deleted_last_event_is_caught_by_the_head() {
        let (req, mut events, key) = signed_trail();
        events.pop();
        let err = report(&req, &events, &key, OutputFormat::Table, &mut Vec::new()).unwrap_err();
        assert!(
            err.message.contains("first bad event: 2"),
            "{}",
            err.message
        );
    }
}

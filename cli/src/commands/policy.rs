//! The policy store from an operator's desk, with the operator's own AWS
//! credentials (as `audit verify --table` reads the table):
//! `tollgate policy publish <dir>` validates a directory and uploads it as
//! the store's newest version; `policy status` shows which version each
//! function serves; `policy diff <dir>` replays the last days' requests
//! against the set in force and the proposed one.

use super::Ctx;
use super::local::{aws_error, store_error};
use crate::args::{PolicyDiffArgs, PolicyPublishArgs, PolicyStatusArgs, StoreArgs};
use crate::error::{CliError, Exit};
use crate::output::{OutputFormat, Table, clean, write_json};
use crate::policy_cmd::{self, ValidateArgs};
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use tollgate::aws::{PolicyObject, Store};
use tollgate::policy::replay::{self, Case, Change};
use tollgate::policy::store::Fetched;
use tollgate::policy::{PolicyDocument, PolicyEngine};

/// Where the store and table are: flags, else environment, else profile.
struct Resolved {
    bucket: Option<String>,
    key: String,
    table: String,
}

fn resolve(ctx: &mut Ctx<'_>, args: &StoreArgs) -> Result<Resolved, CliError> {
    let settings = ctx.settings()?;
    Ok(Resolved {
        bucket: args
            .bucket
            .clone()
            .or_else(|| settings.policy_bucket.clone()),
        key: args
            .key
            .clone()
            .or_else(|| settings.policy_key.clone())
            .unwrap_or_else(|| tollgate::aws::DEFAULT_POLICY_KEY.to_owned()),
        table: args
            .table
            .clone()
            .or_else(|| settings.table.clone())
            .unwrap_or_else(|| tollgate::Config::default().table),
    })
}

fn require_bucket(r: &Resolved) -> Result<&str, CliError> {
    r.bucket.as_deref().ok_or_else(|| {
        CliError::usage("no_policy_bucket", "no policy store bucket is configured")
            .with_hint("pass --bucket, set TOLLGATE_POLICY_BUCKET, or add `policy_bucket` to your profile (the broker stack's PolicyBucketName output)")
    })
}

async fn object(bucket: &str, key: &str) -> PolicyObject {
    let sdk = tollgate::aws::load_sdk_config().await;
    PolicyObject::new(
        tollgate::aws::s3_client(&sdk),
        bucket.to_owned(),
        key.to_owned(),
    )
}

/// Loads and validates `dir` as the broker would: an invalid or empty set is
/// refused with exactly `policy validate`'s report (exit 1).
fn proposed(dir: &Path, out: &mut dyn Write) -> Result<(PolicyDocument, PolicyEngine), CliError> {
    let checked = PolicyDocument::from_dir(dir).and_then(|doc| {
        let engine = doc.engine_named(|name| dir.join(name).display().to_string())?;
        Ok((doc, engine))
    });
    checked.map_err(|_| {
        let code = policy_cmd::validate(
            &ValidateArgs {
                dir: dir.to_path_buf(),
            },
            out,
        );
        CliError::reported(Exit::from_code(code.max(policy_cmd::EXIT_INVALID)))
    })
}

/// `tollgate policy publish <dir>`.
pub async fn publish(
    ctx: &mut Ctx<'_>,
    args: &PolicyPublishArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let format = ctx.output();
    let r = resolve(ctx, &args.store)?;
    let bucket = require_bucket(&r)?;
    let (doc, engine) = proposed(&args.dir, out)?;
    let digest = doc.digest();
    let store = object(bucket, &r.key).await;
    let newest = store.head().await.map_err(|e| aws_error(&e))?;
    let unchanged = newest
        .as_ref()
        .filter(|v| !args.force && v.digest.as_deref() == Some(digest.as_str()));
    let (version, published) = match unchanged {
        Some(v) => (v.version_id.clone(), false),
        None => (
            store
                .publish(doc.to_bytes(), &digest)
                .await
                .map_err(|e| aws_error(&e))?,
            true,
        ),
    };
    match format {
        OutputFormat::Json => write_json(
            out,
            &json!({
                "published": published,
                "version": version,
                "digest": digest,
                "location": store.location(),
                "policies": engine.policy_count(),
                "files": engine.file_count(),
                "previous": newest.as_ref().map(|v| &v.version_id),
                "warnings": engine.warnings(),
            }),
        )?,
        OutputFormat::Table => {
            for warning in engine.warnings() {
                crate::output::write_clean_lines(out, &format!("warning: {warning}"))?;
            }
            if published {
                writeln!(
                    out,
                    "published version {version} of {} ({} policies in {} files, sha256 {})",
                    store.location(),
                    engine.policy_count(),
                    engine.file_count(),
                    &digest[..12]
                )?;
                writeln!(
                    out,
                    "functions load it within TOLLGATE_POLICY_REFRESH_SECONDS; `tollgate policy status` shows which version each serves"
                )?;
            } else {
                writeln!(
                    out,
                    "unchanged: {} already holds this set as version {version} (sha256 {}); nothing published (--force publishes anyway)",
                    store.location(),
                    &digest[..12]
                )?;
            }
        }
    }
    Ok(())
}

/// `tollgate policy status`.
pub async fn status(
    ctx: &mut Ctx<'_>,
    args: &PolicyStatusArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let format = ctx.output();
    let r = resolve(ctx, &args.store)?;
    let newest = match r.bucket.as_deref() {
        Some(bucket) => object(bucket, &r.key)
            .await
            .head()
            .await
            .map_err(|e| aws_error(&e))?,
        None => None,
    };
    let sdk = tollgate::aws::load_sdk_config().await;
    let store = Store::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        r.table.clone(),
        tollgate::Config::default().retention_seconds(),
    );
    let statuses = store.policy_statuses().await.map_err(|e| store_error(&e))?;
    let state = |version: &str| match &newest {
        Some(n) if n.version_id == version => "current",
        Some(_) => "behind",
        None => "bundled",
    };
    match format {
        OutputFormat::Json => write_json(
            out,
            &json!({
                "store": newest.as_ref().map(|n| json!({
                    "version": n.version_id,
                    "digest": n.digest,
                    "last_modified": n.last_modified,
                })),
                "functions": statuses.iter().map(|s| json!({
                    "function": s.function,
                    "version": s.version,
                    "digest": s.digest,
                    "origin": s.origin,
                    "loaded_at": s.loaded_at,
                    "state": state(&s.version),
                    "rejected": s.rejected,
                })).collect::<Vec<_>>(),
            }),
        )?,
        OutputFormat::Table => {
            match (&newest, &r.bucket) {
                (Some(n), Some(bucket)) => writeln!(
                    out,
                    "store: s3://{bucket}/{} version {}{}",
                    r.key,
                    n.version_id,
                    n.last_modified
                        .as_ref()
                        .map_or_else(String::new, |t| format!(", published {t}"))
                )?,
                (None, Some(bucket)) => writeln!(
                    out,
                    "store: s3://{bucket}/{} holds no set yet: functions serve their bundled set",
                    r.key
                )?,
                (_, None) => writeln!(
                    out,
                    "store: not configured here (--bucket or TOLLGATE_POLICY_BUCKET shows whether functions are current)"
                )?,
            }
            if statuses.is_empty() {
                writeln!(
                    out,
                    "no function has recorded a policy set in table `{}` yet",
                    r.table
                )?;
            }
            let mut t = Table::new(&["FUNCTION", "VERSION", "ORIGIN", "LOADED", "STATE"]);
            for s in &statuses {
                t.push(vec![
                    clean(&s.function),
                    clean(&s.version),
                    clean(&s.origin),
                    s.loaded_at.to_string(),
                    state(&s.version).to_owned(),
                ]);
            }
            t.write(out)?;
            for s in &statuses {
                if let Some(rej) = &s.rejected {
                    crate::output::write_clean_lines(
                        out,
                        &format!(
                            "{} rejected version {} at {}: {}",
                            s.function, rej.version, rej.at, rej.reason
                        ),
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// `tollgate policy diff <dir>`.
pub async fn diff(
    ctx: &mut Ctx<'_>,
    args: &PolicyDiffArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let format = ctx.output();
    let r = resolve(ctx, &args.store)?;
    let (doc, proposed_engine) = proposed(&args.dir, out)?;
    let (current_engine, current_version) = match &args.against {
        Some(dir) => {
            let (_, engine) = self::proposed(dir, out)?;
            (engine, format!("{} (directory)", dir.display()))
        }
        None => current(&r).await?,
    };
    let sdk = tollgate::aws::load_sdk_config().await;
    let store = Store::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        r.table.clone(),
        tollgate::Config::default().retention_seconds(),
    );
    let since = crate::clock::now().plus(-i64::from(args.days) * 86_400);
    let stored = store
        .created_since(since)
        .await
        .map_err(|e| store_error(&e))?;
    let mut cases = Vec::with_capacity(stored.len());
    let mut not_replayable = 0usize;
    for (req, created) in &stored {
        match Case::from_stored(req, created) {
            Ok(case) => cases.push(case),
            Err(_) => not_replayable += 1,
        }
    }
    let changes = replay::replay(&current_engine, &proposed_engine, &cases);
    match format {
        OutputFormat::Json => write_json(
            out,
            &json!({
                "current": current_version,
                "proposed_digest": doc.digest(),
                "days": args.days,
                "since": since,
                "replayed": cases.len(),
                "not_replayable": not_replayable,
                "changed": changes.iter().map(change_json).collect::<Vec<_>>(),
            }),
        )?,
        OutputFormat::Table => {
            for c in &changes {
                write_change(out, c)?;
            }
            writeln!(
                out,
                "{} of {} requests since {since} would be decided differently by the proposed set (sha256 {}) than by {current_version}",
                changes.len(),
                cases.len(),
                &doc.digest()[..12],
            )?;
            if not_replayable > 0 {
                writeln!(
                    out,
                    "{not_replayable} older requests were not replayed: they were created before decision inputs (role tags, source address) were recorded"
                )?;
            }
        }
    }
    Ok(())
}

/// The set in force: the store's newest (valid) version.
async fn current(r: &Resolved) -> Result<(PolicyEngine, String), CliError> {
    let bucket = require_bucket(r)?;
    let store = object(bucket, &r.key).await;
    match store.fetch(None).await.map_err(|e| aws_error(&e))? {
        Fetched::Object {
            version_id, body, ..
        } => {
            let version = version_id.unwrap_or_else(|| "null".into());
            let engine = PolicyDocument::parse(&body)
                .map_err(|e| e.to_string())
                .and_then(|doc| doc.engine().map_err(|e| e.to_string()))
                .map_err(|e| {
                    CliError::generic(
                        "stored_policy_invalid",
                        format!(
                            "version {version} of {} is not a valid set (functions ignore it and keep their last good set): {}",
                            store.location(),
                            clean(&e)
                        ),
                    )
                    .with_hint("compare against the set functions serve with --against <dir>")
                })?;
            Ok((engine, format!("version {version}")))
        }
        Fetched::Missing | Fetched::NotModified => Err(CliError::new(
            Exit::NotFound,
            "nothing_published",
            format!(
                "{} holds no policy set yet: functions serve their bundled set",
                store.location()
            ),
        )
        .with_hint("compare against the bundled set with --against <its directory>")),
    }
}

fn write_change(out: &mut dyn Write, c: &Change<'_>) -> std::io::Result<()> {
    writeln!(
        out,
        "{} {} asked {} for {}s at {} (decided by {})",
        c.case.request_id,
        clean(c.case.requester.sub.as_str()),
        c.case.role.arn,
        c.case.duration_seconds,
        c.case.at,
        clean(&c.case.policy_version),
    )?;
    crate::output::write_clean_lines(out, &format!("  now:      {}", c.before.describe()))?;
    crate::output::write_clean_lines(out, &format!("  proposed: {}", c.after.describe()))
}

fn change_json(c: &Change<'_>) -> Value {
    json!({
        "request_id": c.case.request_id,
        "requester": c.case.requester.sub,
        "role_arn": c.case.role.arn,
        "duration_seconds": c.case.duration_seconds,
        "created_at": c.case.at,
        "decided_by": c.case.policy_version,
        "current": c.before.to_json(),
        "proposed": c.after.to_json(),
    })
}

//! The request lifecycle from the command line: `request`, `list`, `show`,
//! `approve`, `deny`, `cancel`, `revoke`, `extend`, `review` and the online
//! `explain` dry run.

use super::Ctx;
use crate::args::{
    ApproveArgs, DenyArgs, ExplainArgs, ExtendArgs, IdArg, ListArgs, RequestArgs, ReviewArgs,
    ReviewOutcomeArg, RevokeArgs, WaitArgs,
};
use crate::client::{Client, Scope};
use crate::error::{CliError, Exit};
use crate::model::{self, parse_events, parse_page, parse_request};
use crate::output::{self, OutputFormat, Table, clean, truncate, write_fields, write_json};
use crate::role_ref::{RoleRef, resolve};
use serde_json::{Value, json};
use std::io::{BufRead, IsTerminal, Write};
use tollgate::domain::{
    AccessRequest, Actor, Event, EventKind, GrantDuration, IdempotencyKey, Reason, RequestId,
    SessionPolicy, StartsAt, Status, Ticket, Timestamp, UnderReview, format_seconds,
};

/// Longest duration the CLI sends; the broker applies the real ceiling.
const LOCAL_DURATION_CEILING: u32 = 7 * 86_400;
/// Most pages a listing follows.
const MAX_PAGES: usize = 50;

/// Builds and checks the body of `POST /requests` locally, so bad input is
/// refused before anything is sent.
pub fn request_body(
    role: &tollgate::domain::RoleArn,
    duration: &str,
    reason: &str,
    ticket: Option<&str>,
    session_policy: Option<&str>,
) -> Result<Value, CliError> {
    let mut body = request_fields(duration, reason, ticket, session_policy)?;
    body["role_arn"] = role.as_str().into();
    Ok(body)
}

/// [`request_body`] without the role, which a short form names only once
/// the broker has resolved it.
fn request_fields(
    duration: &str,
    reason: &str,
    ticket: Option<&str>,
    session_policy: Option<&str>,
) -> Result<Value, CliError> {
    let duration = GrantDuration::new(
        crate::args::duration_with_unit("--duration", duration)?,
        LOCAL_DURATION_CEILING,
    )?;
    let reason = Reason::parse(reason)?;
    let mut body = json!({
        "duration_seconds": duration.seconds(),
        "reason": reason.as_str(),
    });
    if let Some(t) = ticket {
        body["ticket"] = Ticket::parse(t)?.as_str().into();
    }
    if let Some(p) = session_policy {
        let text = match p.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path).map_err(|e| {
                CliError::usage(
                    "invalid_input",
                    format!("cannot read session policy file `{}`: {e}", clean(path)),
                )
            })?,
            None => p.to_owned(),
        };
        let doc: Value = serde_json::from_str(&text).map_err(|e| {
            CliError::usage(
                "invalid_input",
                format!("session policy is not valid JSON: {e}"),
            )
        })?;
        let policy = SessionPolicy::parse(&doc)?;
        body["session_policy"] = serde_json::to_value(&policy).unwrap_or(doc);
    }
    Ok(body)
}

/// `tollgate request`. The same request already pending (role, duration,
/// reason, ticket and session policy) is reused unless `--new` is given.
pub async fn request(
    ctx: &mut Ctx<'_>,
    args: &RequestArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut body = request_fields(
        &args.duration,
        &args.reason,
        args.ticket.as_deref(),
        args.session_policy.as_deref(),
    )?;
    let now = crate::clock::now();
    if let Some(start) = starts_at(args.starts_at.as_deref(), args.starts_in.as_deref(), now)? {
        body["starts_at"] = start.at().to_rfc3339().into();
    }
    if args.break_glass {
        body["break_glass"] = true.into();
    }
    let key = args
        .idempotency_key
        .as_deref()
        .map(IdempotencyKey::parse)
        .transpose()?;
    let waiting = (args.wait || args.then.credentials)
        .then(|| wait_timeout(&args.then.timeout))
        .transpose()?;
    let format = ctx.output();
    let (client, token) = ctx.client().await?;
    body["role_arn"] = resolve(&client, &args.role).await?.as_str().into();
    // A scheduled or break-glass request is always new: reusing a pending
    // one would change what was asked.
    let same = if args.new || body.get("starts_at").is_some() || args.break_glass {
        None
    } else {
        same_pending(&client, &body).await?
    };
    let answer = match same {
        Some(existing) => {
            let req = parse_request(&existing)?;
            eprintln!(
                "request {} asks for the same and is already pending (asked {}); using it \
                 (--new asks again)",
                req.id,
                output::relative(req.created_at, crate::clock::now())
            );
            existing
        }
        None => {
            client
                .create(&body, key.as_ref().map(IdempotencyKey::as_str))
                .await?
        }
    };
    let req = parse_request(&answer)?;
    let now = crate::clock::now();

    let Some(timeout) = waiting else {
        match format {
            OutputFormat::Json => write_json(out, &answer)?,
            OutputFormat::Table => write_request(out, &req, now)?,
        }
        if req.effective_status(now) == Status::Pending {
            eprintln!("{}", pending_hint(req.id));
        }
        return Ok(());
    };
    let credentials = mint_options(&args.then, format);
    await_decision(ctx, &client, &token, answer, timeout, credentials, out).await
}

/// `tollgate wait`: waits for a decision on a request, then prints it (or
/// credentials), exactly as `request --wait` does.
pub async fn wait(ctx: &mut Ctx<'_>, args: &WaitArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let timeout = wait_timeout(&args.then.timeout)?;
    let format = ctx.output();
    let (client, token) = ctx.client().await?;
    let answer = client.get(args.id).await?;
    let credentials = mint_options(&args.then, format);
    await_decision(ctx, &client, &token, answer, timeout, credentials, out).await
}

/// When a scheduled grant starts: `--starts-at` (RFC 3339, seconds
/// optional) or `--in` (from now), checked as the broker checks it.
pub fn starts_at(
    at: Option<&str>,
    within: Option<&str>,
    now: Timestamp,
) -> Result<Option<StartsAt>, CliError> {
    match (at, within) {
        (Some(at), _) => {
            let at = at.trim();
            // `2026-12-01T09:00Z` is RFC 3339 but for the seconds: add them.
            let with_seconds = match at.split_once('T') {
                Some((date, time)) if time.len() >= 5 && time[..5].matches(':').count() == 1 => {
                    let (hm, zone) = time.split_at(5);
                    if zone.starts_with(':') {
                        at.to_owned()
                    } else {
                        format!("{date}T{hm}:00{zone}")
                    }
                }
                _ => at.to_owned(),
            };
            Ok(Some(StartsAt::parse(&with_seconds, now).map_err(|e| {
                CliError::usage("invalid_input", format!("--starts-at: {}", e.message))
            })?))
        }
        (None, Some(within)) => {
            let seconds = crate::args::duration_with_unit("--in", within)?;
            let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
            Ok(Some(StartsAt::new(now.plus(seconds), now).map_err(
                |e| CliError::usage("invalid_input", format!("--in: {}", e.message)),
            )?))
        }
        (None, None) => Ok(None),
    }
}

/// How to print credentials once active, when asked for them.
fn mint_options(
    then: &crate::args::WaitOptions,
    format: OutputFormat,
) -> Option<super::credentials::MintOptions> {
    then.credentials.then(|| super::credentials::MintOptions {
        format: then.format.unwrap_or(match format {
            OutputFormat::Json => crate::args::CredentialFormat::Json,
            OutputFormat::Table => crate::args::CredentialFormat::Env,
        }),
        no_cache: then.no_cache,
    })
}

/// What to tell the requester of a pending request.
pub fn pending_hint(id: RequestId) -> String {
    format!(
        "request {id} waits for approval: wait for it with `tollgate wait {id}`, \
         withdraw it with `tollgate cancel {id}`"
    )
}

fn wait_timeout(input: &str) -> Result<std::time::Duration, CliError> {
    let secs = crate::args::duration_with_unit("--timeout", input)?;
    Ok(std::time::Duration::from_secs(secs))
}

/// Waits while `answer` (the broker's request) is pending, then prints the
/// active request, or credentials when `credentials` says how; a denial or
/// any other end is an error.
async fn await_decision(
    ctx: &mut Ctx<'_>,
    client: &Client,
    token: &secrecy::SecretString,
    answer: Value,
    timeout: std::time::Duration,
    credentials: Option<super::credentials::MintOptions>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let format = ctx.output();
    let req = parse_request(&answer)?;
    let answer = if req.effective_status(crate::clock::now()) == Status::Pending {
        if format == OutputFormat::Table {
            eprintln!(
                "request {} is pending: {}",
                req.id,
                clean(&approvals_line(&req))
            );
        }
        crate::wait::wait_for_decision(client, req.id, timeout).await?
    } else {
        answer
    };
    let req = parse_request(&answer)?;
    let now = crate::clock::now();
    check_decided_active(&req, now)?;
    if let Some(opts) = credentials {
        return super::credentials::mint_and_print(ctx, client, token, &req, opts, out).await;
    }
    match format {
        OutputFormat::Json => write_json(out, &answer)?,
        OutputFormat::Table => write_request(out, &req, now)?,
    }
    Ok(())
}

/// The caller's pending request that asks exactly what `body` asks, if any.
async fn same_pending(client: &Client, body: &Value) -> Result<Option<Value>, CliError> {
    let listing = collect_pages(client, Scope::Mine, Some("pending"), 100).await?;
    let wanted = |r: &AccessRequest| {
        Some(r.role_arn.as_str()) == body["role_arn"].as_str()
            && Some(u64::from(r.duration.seconds())) == body["duration_seconds"].as_u64()
            && Some(r.reason.as_str()) == body["reason"].as_str()
            && r.ticket.as_ref().map(Ticket::as_str) == body["ticket"].as_str()
            && r.session_policy
                .as_ref()
                .map_or(Value::Null, |p| serde_json::to_value(p).unwrap_or_default())
                == body["session_policy"]
    };
    let now = crate::clock::now();
    for item in listing.items {
        let r = parse_request(&item)?;
        if r.effective_status(now) == Status::Pending && wanted(&r) {
            return Ok(Some(item));
        }
    }
    Ok(None)
}

/// After waiting: the request must be active, or the wait failed.
fn check_decided_active(req: &AccessRequest, now: Timestamp) -> Result<(), CliError> {
    match req.effective_status(now) {
        Status::Active => Ok(()),
        Status::Denied => {
            let by = req
                .closed_by
                .as_ref()
                .map_or_else(String::new, |a| format!(" by {a}"));
            let why = req
                .closed_reason
                .as_ref()
                .map_or_else(String::new, |r| format!(": {r}"));
            Err(CliError::new(
                Exit::Denied,
                "request_denied",
                format!("request {} was denied{by}{why}", req.id),
            ))
        }
        other => Err(CliError::generic(
            format!("request_{other}"),
            format!("request {} is {other}", req.id),
        )),
    }
}

/// `tollgate list`.
pub async fn list(ctx: &mut Ctx<'_>, args: &ListArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let format = ctx.output();
    let (client, _) = ctx.client().await?;
    let (scope, status) = if args.pending {
        // Pending requests and open grants with an extension to approve.
        (Scope::Reviewable, None)
    } else if args.active {
        (Scope::Revocable, Some("active"))
    } else if args.unreviewed {
        (Scope::Unreviewed, None)
    } else {
        (Scope::Mine, args.status.as_deref())
    };
    let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
    let listing = collect_pages(&client, scope, status, limit).await?;
    match format {
        OutputFormat::Json => write_json(out, &Value::Array(listing.items.clone()))?,
        OutputFormat::Table => {
            let now = crate::clock::now();
            let reqs = listing
                .items
                .iter()
                .map(parse_request)
                .collect::<Result<Vec<_>, _>>()?;
            if reqs.is_empty() {
                eprintln!(
                    "{}",
                    match scope {
                        Scope::Reviewable => "no requests are waiting for your review",
                        Scope::Revocable => "no active grants you may revoke",
                        Scope::Unreviewed => "no break-glass grants are waiting for your review",
                        Scope::Mine => "no requests",
                    }
                );
            } else {
                match scope {
                    Scope::Reviewable => pending_table(&reqs, &listing.items, now),
                    Scope::Revocable => active_table(&reqs, now),
                    Scope::Mine | Scope::Unreviewed => mine_table(&reqs, now),
                }
                .write(out)?;
            }
            if listing.more {
                eprintln!("(showing the first {limit}; use --limit to see more)");
            }
        }
    }
    if listing.awaiting_mfa > 0 {
        let n = listing.awaiting_mfa;
        eprintln!(
            "{n} pending request{s} need{v} an approver signed in with multi-factor \
             authentication: sign in again with MFA to review {them}",
            s = if n == 1 { "" } else { "s" },
            v = if n == 1 { "s" } else { "" },
            them = if n == 1 { "it" } else { "them" },
        );
    }
    Ok(())
}

/// What `collect_pages` gathered.
#[derive(Debug, Default)]
pub struct Listing {
    /// The items, as the broker sent them.
    pub items: Vec<Value>,
    /// Whether more remain beyond the limit.
    pub more: bool,
    /// Pending requests the caller could approve after signing in with MFA
    /// (scope `reviewable`).
    pub awaiting_mfa: u64,
}

/// Follows pages of `GET /requests` until `limit` items.
pub async fn collect_pages(
    client: &Client,
    scope: Scope,
    status: Option<&str>,
    limit: usize,
) -> Result<Listing, CliError> {
    let mut listing = Listing::default();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let want = u32::try_from(limit.saturating_sub(listing.items.len())).unwrap_or(u32::MAX);
        let body = client
            .list_page(scope, status, want, token.as_deref())
            .await?;
        listing.awaiting_mfa += body["awaiting_mfa"].as_u64().unwrap_or(0);
        let page = parse_page(&body)?;
        listing.items.extend(page.items);
        if listing.items.len() >= limit {
            listing.more = listing.items.len() > limit || page.next_token.is_some();
            listing.items.truncate(limit);
            return Ok(listing);
        }
        match page.next_token {
            Some(t) => token = Some(t),
            None => return Ok(listing),
        }
    }
    listing.more = true;
    Ok(listing)
}

/// The role as a short label: `<account>:<path><name>`.
pub fn role_label(req: &AccessRequest) -> String {
    let arn = &req.role_arn;
    let path = arn.path().trim_start_matches('/');
    format!("{}:{path}{}", arn.account(), arn.name())
}

fn mine_table(reqs: &[AccessRequest], now: Timestamp) -> Table {
    let mut t = Table::new(&["ID", "STATUS", "ROLE", "DURATION", "WHEN", "REASON"]);
    for r in reqs {
        t.push(vec![
            r.id.to_string(),
            r.effective_status(now).to_string(),
            role_label(r),
            r.duration.to_string(),
            when_column(r, now),
            truncate(r.reason.as_str(), 48),
        ]);
    }
    t
}

/// What happens or happened when, in words that say which: `ends in 1h`,
/// `lapses in 23h`, `expired 2h ago`, `revoked 5m ago`.
fn when_column(r: &AccessRequest, now: Timestamp) -> String {
    let status = r.effective_status(now);
    let (verb, at) = match status {
        Status::Active => ("ends", r.window_end),
        Status::Scheduled => ("starts", r.window_start),
        Status::Pending => ("lapses", Some(r.pending_deadline)),
        Status::Expired => ("expired", r.window_end.or(r.closed_at)),
        Status::Lapsed => ("lapsed", Some(r.pending_deadline)),
        Status::Denied => ("denied", r.closed_at),
        Status::Cancelled => ("cancelled", r.closed_at),
        Status::Revoked => ("revoked", r.closed_at),
    };
    at.map_or_else(String::new, |at| {
        format!("{verb} {}", output::relative(at, now))
    })
}

/// `list --pending`: what an approver needs to tell requests apart.
/// `items` are the broker's answers, for `requester_active_grant`.
fn pending_table(reqs: &[AccessRequest], items: &[Value], now: Timestamp) -> Table {
    let mut t = Table::new(&[
        "ID",
        "REQUESTER",
        "ROLE",
        "DURATION",
        "TICKET",
        "POLICY",
        "HAS GRANT",
        "APPROVALS",
        "ASKED",
        "REASON",
    ]);
    for (r, item) in reqs.iter().zip(items) {
        let held = item["requester_active_grant"]["window_end"]
            .as_str()
            .and_then(Timestamp::parse_rfc3339)
            .map_or_else(
                || "no".to_owned(),
                |end| format!("yes, ends {}", output::relative(end, now)),
            );
        t.push(vec![
            r.id.to_string(),
            r.requester.sub.to_string(),
            role_label(r),
            r.duration.to_string(),
            r.ticket
                .as_ref()
                .map_or_else(|| "-".to_owned(), ToString::to_string),
            if r.session_policy.is_some() {
                "narrowed".to_owned()
            } else {
                "-".to_owned()
            },
            held,
            format!("{}/{}", r.approvals.len(), r.approvals_required),
            output::relative(r.created_at, now),
            truncate(r.reason.as_str(), 48),
        ]);
    }
    t
}

/// `list --active`: grants the caller may revoke.
fn active_table(reqs: &[AccessRequest], now: Timestamp) -> Table {
    let mut t = Table::new(&["ID", "REQUESTER", "ROLE", "ENDS", "CREDENTIALS", "REASON"]);
    for r in reqs {
        t.push(vec![
            r.id.to_string(),
            r.requester.sub.to_string(),
            role_label(r),
            r.window_end
                .map_or_else(String::new, |e| output::relative(e, now)),
            match r.credentials_issued {
                0 => "none issued".to_owned(),
                n => format!("issued {n}x"),
            },
            truncate(r.reason.as_str(), 48),
        ]);
    }
    t
}

fn approvals_line(r: &AccessRequest) -> String {
    let have = r.approvals.len();
    let need = usize::from(r.approvals_required);
    let who: Vec<String> = r.approvals.iter().map(|a| a.approver.to_string()).collect();
    let mut s = format!("{have} of {need} approvals");
    if !who.is_empty() {
        s.push_str(&format!(" ({})", who.join(", ")));
    }
    s
}

fn requester_line(r: &AccessRequest) -> String {
    let id = &r.requester;
    let mut parts = vec![id.sub.to_string()];
    if !id.groups.is_empty() {
        parts.push(format!("groups: {}", id.groups.join(", ")));
    }
    if !id.tags.is_empty() {
        let tags: Vec<String> = id.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.push(tags.join(", "));
    }
    parts.push(if id.mfa {
        "mfa".into()
    } else {
        "no mfa".into()
    });
    format!("{} ({})", parts[0], parts[1..].join("; "))
}

fn status_line(r: &AccessRequest, now: Timestamp) -> String {
    let line = grant_status_line(r, now);
    match &r.break_glass {
        Some(b) => format!("{line} (break-glass, {})", b.review.as_str()),
        None => line,
    }
}

fn grant_status_line(r: &AccessRequest, now: Timestamp) -> String {
    let status = r.effective_status(now);
    match status {
        Status::Scheduled => format!(
            "scheduled: starts {}, ends {}",
            r.window_start
                .map_or_else(String::new, |t| output::when(t, now)),
            r.window_end
                .map_or_else(String::new, |t| output::when(t, now))
        ),
        Status::Pending => format!(
            "pending: {}; lapses {}",
            approvals_line(r),
            output::relative(r.pending_deadline, now)
        ),
        Status::Active => match r.window_end {
            Some(end) => format!("active until {}", output::when(end, now)),
            None => "active".into(),
        },
        other => {
            let by = r
                .closed_by
                .as_ref()
                .map_or_else(String::new, |a| format!(" by {a}"));
            let at = r
                .closed_at
                .map_or_else(String::new, |t| format!(" {}", output::relative(t, now)));
            let why = r
                .closed_reason
                .as_ref()
                .map_or_else(String::new, |x| format!(": {x}"));
            format!("{other}{by}{at}{why}")
        }
    }
}

/// Writes a request's fields for people.
pub fn write_request(
    out: &mut dyn Write,
    r: &AccessRequest,
    now: Timestamp,
) -> std::io::Result<()> {
    let window = match (r.window_start, r.window_end) {
        (Some(s), Some(e)) if r.effective_status(now) == Status::Active => {
            format!("{} to {}", output::utc(s), output::when(e, now))
        }
        (Some(s), Some(e)) => format!("{} to {}", output::utc(s), output::utc(e)),
        _ => String::new(),
    };
    let approvals = r
        .approvals
        .iter()
        .map(|a| {
            let comment = a
                .comment
                .as_ref()
                .map_or_else(String::new, |c| format!(" \"{c}\""));
            format!("{} {}{comment}", a.approver, output::relative(a.at, now))
        })
        .collect::<Vec<_>>()
        .join("; ");
    let one = |v: String| vec![v];
    let mut digest = vec![
        r.digest.clone(),
        "(sha256 of the id, requester, role, duration, reason, ticket and session".to_owned(),
        "policy: an approval approves exactly these)".to_owned(),
    ];
    if r.effective_status(now) == Status::Pending {
        digest.push(format!(
            "approve exactly this: tollgate approve {} --digest {}",
            r.id,
            short_digest(&r.digest)
        ));
    }
    output::write_field_lines(
        out,
        &[
            ("request", one(r.id.to_string())),
            ("status", one(status_line(r, now))),
            ("role", one(r.role_arn.to_string())),
            ("requester", one(requester_line(r))),
            ("duration", one(r.duration.to_string())),
            ("reason", one(r.reason.to_string())),
            (
                "ticket",
                one(r
                    .ticket
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()),
            ),
            ("session policy", session_policy_lines(r)),
            ("asked", one(output::when(r.created_at, now))),
            ("window", one(window)),
            (
                "approvals",
                one(if approvals.is_empty() {
                    format!("0 of {} needed", r.approvals_required)
                } else {
                    format!(
                        "{} of {}: {approvals}",
                        r.approvals.len(),
                        r.approvals_required
                    )
                }),
            ),
            (
                "credentials",
                one(match r.credentials_issued {
                    0 => String::new(),
                    1 => "issued once".to_owned(),
                    n => format!("issued {n} times"),
                }),
            ),
            ("digest", digest),
        ],
    )
}

/// The session policy pretty-printed, or "none" (the role's own permissions).
fn session_policy_lines(r: &AccessRequest) -> Vec<String> {
    match &r.session_policy {
        Some(p) => output::pretty_policy(&serde_json::to_value(p).unwrap_or_default()),
        None => vec!["none: the role's own permissions".to_owned()],
    }
}

/// The first characters of a digest that `approve --digest` accepts.
const SHORT_DIGEST: usize = 16;

fn short_digest(digest: &str) -> &str {
    digest.get(..SHORT_DIGEST).unwrap_or(digest)
}

/// The `type` name of an event, as in the audit trail.
fn event_type(kind: &EventKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

fn event_detail(e: &Event) -> String {
    match &e.kind {
        EventKind::Created {
            auto_approved,
            policies,
            ..
        } => {
            let how = if *auto_approved {
                "auto-approved"
            } else {
                "needs approval"
            };
            if policies.is_empty() {
                how.to_owned()
            } else {
                format!("{how} (permitted by {})", policies.join(", "))
            }
        }
        EventKind::Approved {
            approvals,
            required,
            comment,
            ..
        } => {
            let c = comment
                .as_ref()
                .map_or_else(String::new, |c| format!(": {c}"));
            format!("{approvals} of {required}{c}")
        }
        EventKind::Denied { reason } | EventKind::Revoked { reason } => reason.to_string(),
        EventKind::CredentialsIssued {
            session_name,
            expires_at,
        } => format!("{session_name}, expiring {}", expires_at.to_rfc3339()),
        EventKind::ConsoleIssued {
            session_name,
            expires_at,
        } => format!(
            "console sign-in, {session_name}, expiring {}",
            expires_at.to_rfc3339()
        ),
        EventKind::ExtensionRequested {
            number,
            seconds,
            reason,
            auto_approved,
            window_end,
            ..
        } => {
            let how = match window_end {
                Some(end) if *auto_approved => {
                    format!("auto-approved, ends {}", end.to_rfc3339())
                }
                _ => "needs approval".to_owned(),
            };
            format!(
                "#{number} +{} ({how}): {reason}",
                format_seconds(u64::from(*seconds))
            )
        }
        EventKind::ExtensionApproved {
            number,
            approvals,
            required,
            window_end,
            comment,
            ..
        } => {
            let c = comment
                .as_ref()
                .map_or_else(String::new, |c| format!(": {c}"));
            let ends =
                window_end.map_or_else(String::new, |e| format!(", now ends {}", e.to_rfc3339()));
            format!("#{number} {approvals} of {required}{ends}{c}")
        }
        EventKind::ExtensionDenied { number, reason } => format!("#{number}: {reason}"),
        EventKind::Reviewed {
            outcome, comment, ..
        } => format!("{}: {comment}", outcome.as_str()),
        EventKind::Cancelled | EventKind::Expired | EventKind::Lapsed => String::new(),
    }
}

fn actor_label(a: &Actor) -> String {
    a.to_string()
}

/// Writes a request's audit events as a table.
pub fn events_table(events: &[Event]) -> Table {
    let mut t = Table::new(&["SEQ", "AT", "ACTOR", "EVENT", "STATUS", "DETAIL"]);
    for e in events {
        t.push(vec![
            e.seq.to_string(),
            e.at.to_rfc3339(),
            actor_label(&e.actor),
            event_type(&e.kind),
            e.status.to_string(),
            truncate(&event_detail(e), 72),
        ]);
    }
    t
}

/// `tollgate show`.
pub async fn show(ctx: &mut Ctx<'_>, args: &IdArg, out: &mut dyn Write) -> Result<(), CliError> {
    let format = ctx.output();
    let (client, _) = ctx.client().await?;
    let body = client.get(args.id).await?;
    if format == OutputFormat::Json {
        return Ok(write_json(out, &body)?);
    }
    let req = parse_request(&body)?;
    write_request(out, &req, crate::clock::now())?;
    if let Ok(events) = parse_events(&body)
        && !events.is_empty()
    {
        writeln!(out)?;
        events_table(&events).write(out)?;
    }
    Ok(())
}

/// `tollgate approve`: fetch, show, confirm, then approve exactly the digest
/// shown. With `--digest`, approve only if the request is what the approver
/// reviewed, without asking; with `--yes` alone, say afterwards what was
/// approved.
pub async fn approve(
    ctx: &mut Ctx<'_>,
    args: &ApproveArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let comment = args.comment.as_deref().map(Reason::parse).transpose()?;
    let reviewed = args.digest.as_deref().map(check_digest_arg).transpose()?;
    let format = ctx.output();
    let (client, _) = ctx.client().await?;
    let req = parse_request(&client.get(args.id).await?)?;
    let now = crate::clock::now();
    let status = req.effective_status(now);
    // What is under review: the request, or the extension of its grant,
    // each with its own digest.
    let (Some(subject), Some(digest)) = (req.under_review(now), req.review_digest(now)) else {
        return Err(CliError::new(
            Exit::Conflict,
            "not_pending",
            format!("request {} is {status}, not pending", req.id),
        ));
    };
    let extension = matches!(subject, UnderReview::Extension(_));
    let digest = digest.to_owned();
    if let Some(reviewed) = &reviewed
        && !digest.starts_with(reviewed.as_str())
    {
        return Err(CliError::new(
            Exit::Conflict,
            "digest_mismatch",
            format!(
                "request {}'s {} digest is {}, not the `{reviewed}` you reviewed; nothing was approved",
                req.id,
                subject.as_str(),
                short_digest(&digest)
            ),
        )
        .with_hint(format!("review it again with `tollgate show {}`", req.id)));
    }
    if reviewed.is_none() && !args.yes {
        let mut err = std::io::stderr().lock();
        writeln!(err, "You are approving:")?;
        write_approval_summary(&mut err, &req)?;
        if let UnderReview::Extension(ext) = &subject {
            write_extension_summary(&mut err, ext)?;
        }
        drop(err);
        let question = if extension {
            "Approve this extension?"
        } else {
            "Approve this request?"
        };
        if !confirm(question)? {
            return Err(CliError::generic(
                "not_confirmed",
                "approval not confirmed; nothing was changed",
            )
            .with_hint(format!(
                "answer `y` at the prompt, or pass --digest {} to approve what you reviewed",
                short_digest(&digest)
            )));
        }
    }
    let mut body = json!({ "digest": digest });
    if let Some(c) = &comment {
        body["comment"] = c.as_str().into();
    }
    let result = client.act(req.id, "approve", &body).await?;
    let after = parse_request(&result)?;
    match format {
        OutputFormat::Json => write_json(out, &result)?,
        OutputFormat::Table => {
            let now = crate::clock::now();
            match after.effective_status(now) {
                _ if extension && after.pending_extension.is_some() => writeln!(
                    out,
                    "approval of the extension recorded: request {} still ends {}",
                    after.id,
                    after
                        .window_end
                        .map_or_else(String::new, |e| output::when(e, now))
                )?,
                _ if extension => writeln!(
                    out,
                    "extension approved: request {} now ends {}",
                    after.id,
                    after
                        .window_end
                        .map_or_else(String::new, |e| output::when(e, now))
                )?,
                Status::Active | Status::Scheduled => writeln!(
                    out,
                    "approved: request {} is active until {}",
                    after.id,
                    after
                        .window_end
                        .map_or_else(String::new, |e| output::when(e, now))
                )?,
                _ => writeln!(
                    out,
                    "approval recorded: request {} has {}",
                    after.id,
                    clean(&approvals_line(&after))
                )?,
            }
        }
    }
    if reviewed.is_none() && args.yes {
        let mut err = std::io::stderr().lock();
        writeln!(err, "You approved, without --digest:")?;
        write_approval_summary(&mut err, &after)?;
    }
    Ok(())
}

/// A `--digest` argument: lowercase hex, at least [`SHORT_DIGEST`] characters.
fn check_digest_arg(d: &str) -> Result<String, CliError> {
    let d = d.trim().to_ascii_lowercase();
    if d.len() < SHORT_DIGEST || d.len() > 64 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CliError::usage(
            "invalid_input",
            format!(
                "--digest takes the digest `tollgate show` prints (hex, at least its first \
                 {SHORT_DIGEST} characters), not `{}`",
                clean(&d)
            ),
        ));
    }
    Ok(d)
}

/// Everything the digest covers, in the order an approver decides.
fn write_approval_summary(out: &mut dyn Write, req: &AccessRequest) -> std::io::Result<()> {
    let one = |v: String| vec![v];
    output::write_field_lines(
        out,
        &[
            ("  request", one(req.id.to_string())),
            ("  requester", one(requester_line(req))),
            ("  role", one(req.role_arn.to_string())),
            ("  duration", one(req.duration.to_string())),
            ("  reason", one(req.reason.to_string())),
            (
                "  ticket",
                one(req
                    .ticket
                    .as_ref()
                    .map_or_else(|| "(none)".to_owned(), ToString::to_string)),
            ),
            ("  session policy", session_policy_lines(req)),
            (
                "  starts",
                one(req
                    .starts_at
                    .map_or_else(|| "when approved".to_owned(), |t| t.to_rfc3339())),
            ),
            ("  approvals", one(approvals_line(req))),
            ("  digest", one(req.digest.clone())),
        ],
    )
}

/// The extension an approver is about to approve, after the request.
fn write_extension_summary(
    out: &mut dyn Write,
    ext: &tollgate::domain::Extension,
) -> std::io::Result<()> {
    let one = |v: String| vec![v];
    output::write_field_lines(
        out,
        &[
            (
                "  extension",
                one(format!(
                    "#{} adds {} ({} in all)",
                    ext.number,
                    format_seconds(u64::from(ext.seconds)),
                    format_seconds(u64::from(ext.total_seconds))
                )),
            ),
            ("  because", one(ext.reason.to_string())),
            (
                "  approvals",
                one(format!(
                    "{} of {}",
                    ext.approvals.len(),
                    ext.approvals_required
                )),
            ),
            ("  digest", one(ext.digest.clone())),
        ],
    )
}

/// `tollgate extend`: asks to lengthen a grant.
pub async fn extend(
    ctx: &mut Ctx<'_>,
    args: &ExtendArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let by = GrantDuration::new(
        crate::args::duration_with_unit("--by", &args.by)?,
        LOCAL_DURATION_CEILING,
    )?;
    let reason = Reason::parse(&args.reason)?;
    let format = ctx.output();
    let (client, _) = ctx.client().await?;
    let result = client
        .act(
            args.id,
            "extend",
            &json!({ "duration_seconds": by.seconds(), "reason": reason.as_str() }),
        )
        .await?;
    match format {
        OutputFormat::Json => write_json(out, &result)?,
        OutputFormat::Table => {
            let req = parse_request(&result)?;
            let now = crate::clock::now();
            let end = req
                .window_end
                .map_or_else(String::new, |e| output::when(e, now));
            match &req.pending_extension {
                Some(ext) => writeln!(
                    out,
                    "extension #{} of request {} waits for {} approval(s); the grant ends {end} until then",
                    ext.number, req.id, ext.approvals_required
                )?,
                None => writeln!(out, "extended: request {} now ends {end}", req.id)?,
            }
        }
    }
    Ok(())
}

/// `tollgate review`: records the review of a break-glass grant.
pub async fn review(
    ctx: &mut Ctx<'_>,
    args: &ReviewArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let comment = Reason::parse(&args.comment)?;
    let outcome = match args.outcome {
        ReviewOutcomeArg::Justified => "justified",
        ReviewOutcomeArg::Unjustified => "unjustified",
    };
    act(
        ctx,
        args.id,
        "review",
        json!({ "outcome": outcome, "comment": comment.as_str() }),
        out,
    )
    .await
}

/// Asks `question [y/N]` on stderr and reads one line from stdin; end of
/// input is no.
fn confirm(question: &str) -> Result<bool, CliError> {
    let mut err = std::io::stderr().lock();
    write!(err, "{question} [y/N] ")?;
    err.flush()?;
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line)?;
    if read == 0 && !std::io::stdin().is_terminal() {
        writeln!(err)?;
    }
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// `tollgate deny`.
pub async fn deny(ctx: &mut Ctx<'_>, args: &DenyArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let reason = Reason::parse(&args.reason)?;
    act(
        ctx,
        args.id,
        "deny",
        json!({ "reason": reason.as_str() }),
        out,
    )
    .await
}

/// `tollgate cancel`.
pub async fn cancel(ctx: &mut Ctx<'_>, args: &IdArg, out: &mut dyn Write) -> Result<(), CliError> {
    act(ctx, args.id, "cancel", json!({}), out).await
}

/// `tollgate revoke`. Also forgets any cached credentials for the grant.
pub async fn revoke(
    ctx: &mut Ctx<'_>,
    args: &RevokeArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let reason = Reason::parse(&args.reason)?;
    act(
        ctx,
        args.id,
        "revoke",
        json!({ "reason": reason.as_str() }),
        out,
    )
    .await?;
    super::credentials::forget_cached(ctx, args.id).await;
    Ok(())
}

async fn act(
    ctx: &mut Ctx<'_>,
    id: RequestId,
    action: &str,
    body: Value,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let format = ctx.output();
    let (client, _) = ctx.client().await?;
    let result = client.act(id, action, &body).await?;
    match format {
        OutputFormat::Json => write_json(out, &result)?,
        OutputFormat::Table => {
            let req = parse_request(&result)?;
            writeln!(
                out,
                "request {}: {}",
                req.id,
                clean(&status_line(&req, crate::clock::now()))
            )?;
        }
    }
    Ok(())
}

/// `tollgate explain`: offline against a policy directory with
/// `--policies`, else the broker's dry run (nothing stored). Exits 0 when it
/// would be allowed, 3 when denied.
pub async fn explain(
    ctx: &mut Ctx<'_>,
    args: &ExplainArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let format = if args.json {
        OutputFormat::Json
    } else {
        ctx.output()
    };
    if let Some(dir) = &args.policies {
        let Some(identity) = args.identity.clone() else {
            return Err(CliError::usage(
                "missing_argument",
                "--identity <CLAIMS_JSON> is needed to explain offline with --policies",
            ));
        };
        let offline = crate::policy_cmd::ExplainArgs {
            policies: dir.clone(),
            identity,
            role_arn: args.role.clone(),
            role_tags: args.role_tags.clone(),
            max_session: args.max_session.unwrap_or(3600),
            action: args.action.unwrap_or(tollgate::policy::Action::Request),
            duration: args.duration.clone(),
            reason: args.reason.clone(),
            ticket: args.ticket.clone(),
            source_ip: args.source_ip.clone(),
            now: args.now.clone(),
            requester: args.requester.clone(),
            approvals_so_far: args.approvals_so_far.unwrap_or(0),
            json: format == OutputFormat::Json,
        };
        return match crate::policy_cmd::explain(&offline, out) {
            0 => Ok(()),
            code => Err(CliError::reported(Exit::from_code(code))),
        };
    }
    let role = RoleRef::parse(&args.role).map_err(|e| CliError::usage("invalid_input", e))?;
    let mut body = request_fields(
        &args.duration,
        &args.reason,
        args.ticket.as_deref(),
        args.session_policy.as_deref(),
    )?;
    let (client, _) = ctx.client().await?;
    body["role_arn"] = resolve(&client, &role).await?.as_str().into();
    let result = client.dry_run(&body).await?;
    let allowed = decision_allowed(&result);
    match format {
        OutputFormat::Json => write_json(out, &result)?,
        OutputFormat::Table => {
            let mut shown = result.clone();
            shown["asked_seconds"] = body["duration_seconds"].clone();
            write_decision(out, &shown, allowed)?;
        }
    }
    match allowed {
        Some(false) => Err(CliError::reported(Exit::Denied)),
        _ => Ok(()),
    }
}

/// Whether a dry-run answer says the request would be allowed.
pub fn decision_allowed(v: &Value) -> Option<bool> {
    let d = v.get("decision").unwrap_or(v);
    if let Some(b) = d.get("allowed").and_then(Value::as_bool) {
        return Some(b);
    }
    match d
        .as_str()
        .or_else(|| d.get("decision").and_then(Value::as_str))
    {
        Some(s) if s.eq_ignore_ascii_case("allow") || s.eq_ignore_ascii_case("allowed") => {
            Some(true)
        }
        Some(s) if s.eq_ignore_ascii_case("deny") || s.eq_ignore_ascii_case("denied") => {
            Some(false)
        }
        _ => None,
    }
}

fn write_decision(out: &mut dyn Write, v: &Value, allowed: Option<bool>) -> std::io::Result<()> {
    let auto = v.get("auto_approved").and_then(Value::as_bool);
    let approvals = v.get("approvals_required").and_then(Value::as_u64);
    let limit = v.get("duration_limit").filter(|l| l.is_object());
    let too_long = match (limit, v.get("asked_seconds").and_then(Value::as_u64)) {
        (Some(l), Some(asked)) => l["seconds"].as_u64().is_some_and(|max| asked > max),
        _ => false,
    };
    let verdict = match (allowed, auto, approvals) {
        (Some(false), _, _) if too_long => format!(
            "denied: {} exceeds the {}",
            format_seconds(v["asked_seconds"].as_u64().unwrap_or_default()),
            limit.map(describe_limit).unwrap_or_default()
        ),
        (Some(false), _, _) => "denied".to_owned(),
        (Some(true), Some(true), _) => "allowed: the grant would be active at once".to_owned(),
        (Some(true), _, Some(n)) => format!(
            "allowed: it would wait for {n} approval{}",
            if n == 1 { "" } else { "s" }
        ),
        (Some(true), _, None) => "allowed".to_owned(),
        (None, _, _) => "unknown".to_owned(),
    };
    let longest = match limit {
        Some(l) => describe_limit(l),
        None => "none: the policies allow this request at no duration, as asked".to_owned(),
    };
    write_fields(out, &[("would be", verdict), ("longest grant", longest)])?;
    if let Some(expl) = v.get("explanation").filter(|e| !e.is_null()) {
        writeln!(out, "explanation:")?;
        output::write_explanation(out, expl)?;
    }
    Ok(())
}

/// A dry run's `duration_limit` for people: `2h allowed by policy x`.
pub fn describe_limit(l: &Value) -> String {
    let seconds = format_seconds(l["seconds"].as_u64().unwrap_or_default());
    match l["source"].as_str() {
        Some("policy") => format!(
            "{seconds} allowed by policy {}",
            l["policy"].as_str().unwrap_or("?")
        ),
        Some("role_tag") => format!(
            "{seconds} allowed by the role's {} tag",
            l["tag"].as_str().unwrap_or("tollgate:max-duration")
        ),
        _ => format!("{seconds} allowed by the broker's ceiling"),
    }
}

/// Reads a request body for `audit verify` and checks its chain.
pub fn parse_for_audit(body: &Value) -> Result<(AccessRequest, Vec<Event>), CliError> {
    Ok((model::parse_request(body)?, model::parse_events(body)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate::domain::{Identity, NewRequest, RoleArn, UserId};

    fn sample(auto: bool, approvals_required: u8) -> AccessRequest {
        let now = Timestamp::from_unix(1_795_000_000);
        let new = NewRequest {
            id: RequestId::generate(now),
            requester: Identity {
                sub: UserId::parse("alice").unwrap(),
                groups: vec!["developers".into()],
                tags: [("department".to_owned(), "data".to_owned())].into(),
                mfa: true,
            },
            role_arn: RoleArn::parse("arn:aws:iam::123456789012:role/tollgate/ProductionOperator")
                .unwrap(),
            duration: GrantDuration::new(7200, 43_200).unwrap(),
            reason: Reason::parse("deploy hotfix").unwrap(),
            ticket: Some(Ticket::parse("INC-42").unwrap()),
            session_policy: None,
            approvals_required,
            pending_ttl_seconds: 86_400,
        };
        AccessRequest::create(new, auto, vec!["staging-auto".into()], now).0
    }

    #[test]
    fn request_bodies_are_validated_before_sending() {
        let role = RoleArn::parse("arn:aws:iam::123456789012:role/X").unwrap();
        let body = request_body(&role, "1h30m", " fix it ", Some("CHG-1"), None).unwrap();
        assert_eq!(
            body,
            json!({"role_arn": "arn:aws:iam::123456789012:role/X", "duration_seconds": 5400, "reason": "fix it", "ticket": "CHG-1"})
        );
        for (d, r, t, p) in [
            ("soon", "x", None, None),
            ("30s", "x", None, None),
            ("1h", "", None, None),
            ("1h", "x", Some("bad ticket"), None),
            ("1h", "x", None, Some("{not json")),
            ("1h", "x", None, Some(r#"{"Statement": []}"#)),
            ("1h", "x", None, Some("@/nonexistent/policy.json")),
        ] {
            let err = request_body(&role, d, r, t, p).unwrap_err();
            assert_eq!(err.exit, Exit::Usage, "{d} {r} {t:?} {p:?}");
        }
        let body = request_body(
            &role,
            "1h",
            "x",
            None,
            Some(
                r#"{"Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}}"#,
            ),
        )
        .unwrap();
        assert_eq!(body["session_policy"]["Version"], "2012-10-17");
        assert_eq!(
            body["session_policy"]["Statement"][0]["Action"],
            "s3:GetObject"
        );
    }

    #[test]
    fn lists_show_one_aligned_row_per_request() {
        let now = Timestamp::from_unix(1_795_000_060);
        let reqs = [sample(true, 1), sample(false, 2)];
        let mut buf = Vec::new();
        mine_table(&reqs, now).write(&mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ID  "));
        let status_col = lines[0].find("STATUS").unwrap();
        assert_eq!(&lines[1][status_col..status_col + 6], "active");
        assert_eq!(&lines[2][status_col..status_col + 7], "pending");
        assert!(lines[1].contains("123456789012:tollgate/ProductionOperator"));
        assert!(lines[1].contains("ends in 1h 59m"));
        assert!(lines[2].contains("lapses in 23h 59m"));

        let items = [
            json!({"requester_active_grant": {"id": reqs[0].id, "window_end": reqs[0].window_end}}),
        ];
        let mut buf = Vec::new();
        pending_table(&reqs[1..], &items, now)
            .write(&mut buf)
            .unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (column, value) in [
            ("REQUESTER", "alice"),
            ("TICKET", "INC-42"),
            ("POLICY", "-"),
            ("HAS GRANT", "yes, ends in 1h 59m"),
            ("APPROVALS", "0/2"),
            ("ASKED", "1m ago"),
        ] {
            let at = lines[0].find(column).unwrap();
            assert!(lines[1][at..].starts_with(value), "{column}: {text}");
        }
        let mut buf = Vec::new();
        pending_table(&reqs[1..], &[json!({"requester_active_grant": null})], now)
            .write(&mut buf)
            .unwrap();
        let text = String::from_utf8(buf).unwrap();
        let at = text.find("HAS GRANT").unwrap();
        assert!(
            text.lines().nth(1).unwrap()[at..].starts_with("no "),
            "{text}"
        );
    }

    #[test]
    fn ended_requests_say_what_ended_them_and_when() {
        let created = Timestamp::from_unix(1_795_000_000);
        let active = sample(true, 1);
        let pending = sample(false, 1);
        let bob = Actor::User(UserId::parse("bob").unwrap());
        let later = created.plus(600);
        let (revoked, _) = active
            .apply(
                tollgate::domain::Command::Revoke {
                    reason: Reason::parse("done").unwrap(),
                },
                &bob,
                later,
            )
            .unwrap();
        let (denied, _) = pending
            .apply(
                tollgate::domain::Command::Deny {
                    reason: Reason::parse("no").unwrap(),
                },
                &bob,
                later,
            )
            .unwrap();
        let now = created.plus(3 * 3600);
        assert_eq!(when_column(&revoked, now), "revoked 2h 50m ago");
        assert_eq!(when_column(&denied, now), "denied 2h 50m ago");
        assert_eq!(when_column(&active, now), "expired 1h ago");
        assert_eq!(
            when_column(&pending, created.plus(86_400 + 60)),
            "lapsed 1m ago"
        );
    }

    #[test]
    fn a_request_shows_everything_an_approver_needs() {
        let now = Timestamp::from_unix(1_795_000_060);
        let req = sample(false, 1);
        let mut buf = Vec::new();
        write_request(&mut buf, &req, now).unwrap();
        let text = String::from_utf8(buf).unwrap();
        for want in [
            "role:",
            "arn:aws:iam::123456789012:role/tollgate/ProductionOperator",
            "alice (groups: developers; department=data; mfa)",
            "duration:       2h",
            "reason:         deploy hotfix",
            "ticket:         INC-42",
            "session policy: none: the role's own permissions",
            &format!("digest:         {}", req.digest),
            "                (sha256 of the id, requester, role, duration, reason, ticket and session",
            &format!(
                "                approve exactly this: tollgate approve {} --digest {}",
                req.id,
                &req.digest[..16]
            ),
            "status:         pending: 0 of 1 approvals; lapses in 23h 59m",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        // Once decided, there is nothing left to approve.
        let mut buf = Vec::new();
        write_request(&mut buf, &sample(true, 1), now).unwrap();
        assert!(!String::from_utf8(buf).unwrap().contains("tollgate approve"));
    }

    #[test]
    fn session_policies_are_pretty_printed_with_invisible_characters_shown() {
        let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": "s3:GetObject", "Resource": "arn:aws:s3:::logs/\u{202e}txt.exe\u{200b}"}]});
        let mut buf = Vec::new();
        output::write_field_lines(
            &mut buf,
            &[
                ("role", vec!["r".into()]),
                ("session policy", output::pretty_policy(&policy)),
            ],
        )
        .unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(
            text.starts_with("role:           r\nsession policy: {\n"),
            "{text}"
        );
        assert!(
            text.contains("\n                  \"Statement\": [\n"),
            "{text}"
        );
        assert!(
            text.contains(r#""Resource": "arn:aws:s3:::logs/\u{202e}txt.exe\u{200b}""#),
            "{text}"
        );
        assert!(!text.contains('\u{202e}') && !text.contains('\u{200b}'));
    }

    #[test]
    fn approve_takes_a_digest_or_at_least_its_first_sixteen_characters() {
        let digest = "3F2A9C01B7E4D5C6A7B8C9D0E1F2A3B4";
        assert_eq!(check_digest_arg(digest).unwrap(), digest.to_lowercase());
        for bad in ["3f2a9c01b7e4", "not-hex-at-all-xxxxxxxx", &"a".repeat(65)] {
            let err = check_digest_arg(bad).unwrap_err();
            assert_eq!(err.exit, Exit::Usage, "{bad}");
        }
    }

    #[test]
    fn waiting_ends_in_success_only_for_an_active_grant() {
        let now = Timestamp::from_unix(1_795_000_060);
        assert!(check_decided_active(&sample(true, 1), now).is_ok());
        let pending = sample(false, 1);
        let bob = Actor::User(UserId::parse("bob").unwrap());
        let (denied, _) = pending
            .apply(
                tollgate::domain::Command::Deny {
                    reason: Reason::parse("not during the freeze").unwrap(),
                },
                &bob,
                now,
            )
            .unwrap();
        let err = check_decided_active(&denied, now).unwrap_err();
        assert_eq!(err.exit, Exit::Denied);
        assert_eq!(
            err.message,
            format!(
                "request {} was denied by bob: not during the freeze",
                denied.id
            )
        );
        let err = check_decided_active(&pending, now.plus(90_000)).unwrap_err();
        assert_eq!(err.code, "request_lapsed");
        assert_eq!(err.exit, Exit::Generic);
    }

    #[test]
    fn events_are_listed_with_their_type_and_detail() {
        let now = Timestamp::from_unix(1_795_000_060);
        let req = sample(false, 2);
        let bob = Actor::User(UserId::parse("bob").unwrap());
        let (_, ev) = req
            .apply(
                tollgate::domain::Command::Approve {
                    digest: req.digest.clone(),
                    comment: Some(Reason::parse("ok").unwrap()),
                    policies: vec![],
                },
                &bob,
                now,
            )
            .unwrap();
        let mut buf = Vec::new();
        events_table(&[ev]).write(&mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(
            text.contains("bob    approved  pending  1 of 2: ok"),
            "{text}"
        );
    }

    #[test]
    fn dry_run_answers_are_read_as_allow_or_deny() {
        assert_eq!(decision_allowed(&json!({"allowed": true})), Some(true));
        assert_eq!(decision_allowed(&json!({"decision": "deny"})), Some(false));
        assert_eq!(
            decision_allowed(&json!({"decision": {"allowed": false}})),
            Some(false)
        );
        assert_eq!(decision_allowed(&json!({"x": 1})), None);
    }

    #[test]
    fn dry_runs_say_what_would_happen_why_and_what_limits_the_grant() {
        let answer = json!({
            "dry_run": true,
            "allowed": true,
            "outcome": "pending",
            "auto_approved": false,
            "approvals_required": 2,
            "max_duration_seconds": 7200,
            "duration_limit": {"seconds": 7200, "source": "policy", "policy": "production-two-hour-cap"},
            "explanation": "ALLOW: `request` on X for alice\npermitted by:\n  - prod-requests\n",
        });
        let mut buf = Vec::new();
        write_decision(&mut buf, &answer, decision_allowed(&answer)).unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "would be:      allowed: it would wait for 2 approvals\n\
             longest grant: 2h allowed by policy production-two-hour-cap\n\
             explanation:\n  ALLOW: `request` on X for alice\n  permitted by:\n    - prod-requests\n"
        );
        let mut too_long = answer.clone();
        too_long["allowed"] = json!(false);
        too_long["asked_seconds"] = json!(10_800);
        too_long["duration_limit"] =
            json!({"seconds": 7200, "source": "role_tag", "tag": "tollgate:max-duration"});
        let mut buf = Vec::new();
        write_decision(&mut buf, &too_long, Some(false)).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(
            text.starts_with(
                "would be:      denied: 3h exceeds the 2h allowed by the role's tollgate:max-duration tag\n"
            ),
            "{text}"
        );
        let mut nothing = answer;
        nothing["allowed"] = json!(false);
        nothing["duration_limit"] = Value::Null;
        let mut buf = Vec::new();
        write_decision(&mut buf, &nothing, Some(false)).unwrap();
        assert!(
            String::from_utf8(buf)
                .unwrap()
                .contains("longest grant: none: the policies allow this request at no duration")
        );
    }
}

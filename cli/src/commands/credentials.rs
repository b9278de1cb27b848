//! `tollgate credentials`: STS credentials for an active grant, by request id
//! or by role, as `credential_process` JSON, shell exports or JSON, reusing
//! the per-user cache while the credentials and the grant last (checked
//! with one read of the grant; see `confirm_cached`).

use super::Ctx;
use crate::args::{CredentialFormat, CredentialsArgs};
use crate::cache::{self, CachedEntry, CredentialCache};
use crate::client::{Client, Scope};
use crate::error::{CliError, Exit};
use crate::model::{IssuedCredentials, parse_request};
use crate::output::{OutputFormat, write_json};
use crate::role_ref::resolve;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use std::io::Write;
use std::time::Duration;
use tollgate::domain::{AccessRequest, RequestId, RoleArn, Status, Timestamp};

/// How `mint_and_print` behaves.
#[derive(Debug, Clone, Copy)]
pub struct MintOptions {
    /// Output format.
    pub format: CredentialFormat,
    /// Skip the cache.
    pub no_cache: bool,
}

/// `tollgate credentials`.
pub async fn run(
    ctx: &mut Ctx<'_>,
    args: &CredentialsArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let format = args.format.unwrap_or(match ctx.output() {
        OutputFormat::Json => CredentialFormat::Json,
        OutputFormat::Table => CredentialFormat::Env,
    });
    let settings = ctx.settings()?;
    let url = settings.require_url()?;
    let token = settings.token().await?;
    let cache = if args.no_cache {
        None
    } else {
        CredentialCache::from_env(&|k| (ctx.env)(k))
    };
    let caller = cache::caller_key(token.expose_secret());
    let now = crate::clock::now();
    let client = Client::new(url.clone(), &token)?;
    let role = match &args.role {
        Some(role) => Some(resolve(&client, role).await?),
        None => None,
    };

    if let Some(cache) = &cache {
        let hit = match (&args.id, &role) {
            (Some(id), _) => cache.get(url.as_str(), &caller, *id, now),
            (None, Some(role)) => cache.find_for_role(url.as_str(), &caller, role, now),
            (None, None) => Ok(None),
        };
        match hit {
            Ok(Some(entry)) => match confirm_cached(&client, &entry, now).await {
                Cached::Serve => return print_noted(out, format, &entry),
                Cached::Drop => cache.remove(url.as_str(), &caller, entry.request_id),
                Cached::Refused(e) => return Err(e),
            },
            Ok(None) => {}
            Err(e) => eprintln!("warning: not using the credential cache: {e}"),
        }
    }

    let req = match (&args.id, &role) {
        (Some(id), _) => parse_request(&client.get(*id).await?)?,
        (None, Some(role)) => active_grant_for_role(&client, role, now).await?,
        (None, None) => {
            return Err(CliError::usage(
                "missing_argument",
                "give a request id or --role",
            ));
        }
    };
    let opts = MintOptions {
        format,
        no_cache: args.no_cache,
    };
    mint_and_print(ctx, &client, &token, &req, opts, out).await
}

/// What to do with cached credentials, once the broker was asked.
#[derive(Debug)]
enum Cached {
    /// Hand them out: the grant is active, or the broker cannot be reached.
    Serve,
    /// Forget them: the grant has ended, was revoked, or is unknown.
    Drop,
    /// Do not hand them out, and say why: the broker answered with an error.
    Refused(CliError),
}

/// Whether cached credentials may still be handed out: one read of their
/// request (no new STS session, no audit event). A grant the broker says was
/// revoked, has ended, or no longer exists (another broker at the same URL)
/// is dropped: its credentials would only meet the role's deny statement,
/// and a newer grant for the role would be hidden behind them.
///
/// INVARIANT: cached credentials are served without the broker's word only
/// when the broker cannot be reached at all (connection refused, no answer
/// within [`CONFIRM_TIMEOUT`], a name that does not resolve), so AWS clients
/// keep working through an outage. Any answer from it that is not a
/// request (401, 403, 404, 429, 5xx) serves nothing: a broker that refuses
/// the caller or fails is not an outage the cache may paper over.
async fn confirm_cached(client: &Client, entry: &CachedEntry, now: Timestamp) -> Cached {
    let read = tokio::time::timeout(CONFIRM_TIMEOUT, client.get(entry.request_id)).await;
    let outcome = match read {
        Ok(answer) => answer.and_then(|v| parse_request(&v)),
        Err(_) => {
            return unreachable_warning(
                entry,
                &format!("no answer within {} s", CONFIRM_TIMEOUT.as_secs()),
            );
        }
    };
    match outcome {
        Ok(req) if req.effective_status(now) == Status::Active => Cached::Serve,
        Ok(_) => Cached::Drop,
        Err(e) if e.exit == Exit::NotFound => Cached::Drop,
        Err(e) if e.code == crate::client::UNREACHABLE => unreachable_warning(entry, &e.message),
        Err(e) => Cached::Refused(CliError {
            message: format!(
                "cached credentials for grant {} were not used: {}",
                entry.request_id, e.message
            ),
            hint: Some(
                "cached credentials are only used when the broker cannot be reached at all"
                    .to_owned()
                    + &e.hint.map_or_else(String::new, |h| format!("\n{h}")),
            ),
            ..e
        }),
    }
}

fn unreachable_warning(entry: &CachedEntry, why: &str) -> Cached {
    eprintln!(
        "warning: cannot reach the broker to confirm grant {} ({}); using cached credentials",
        entry.request_id,
        crate::output::clean(why)
    );
    Cached::Serve
}

/// How long a cache hit waits for the broker to confirm its grant. An AWS
/// client waits for `credential_process`, so a hung broker must not hold
/// it for the full request timeout.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(3);

/// Mints credentials for `req` (which must be active), caches them unless
/// told not to, and prints them.
pub async fn mint_and_print(
    ctx: &Ctx<'_>,
    client: &Client,
    token: &SecretString,
    req: &AccessRequest,
    opts: MintOptions,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let now = crate::clock::now();
    let status = req.effective_status(now);
    if status == Status::Scheduled {
        let start = req
            .window_start
            .map_or_else(String::new, |t| crate::output::when(t, now));
        return Err(CliError::new(
            Exit::Conflict,
            "not_started",
            format!(
                "request {}'s grant starts {start}; no credentials before then",
                req.id
            ),
        ));
    }
    let Some(window_end) = req.window_end.filter(|_| status == Status::Active) else {
        let hint = if status == Status::Pending {
            format!("wait for it with `tollgate wait {} --credentials`", req.id)
        } else {
            request_hint(client, &req.role_arn).await
        };
        return Err(CliError::new(
            Exit::Conflict,
            "not_active",
            format!("request {} is {status}, not active", req.id),
        )
        .with_hint(hint));
    };
    let credentials = client.credentials(req.id).await?;
    let entry = CachedEntry {
        request_id: req.id,
        role_arn: req.role_arn.clone(),
        window_end,
        credentials,
    };
    let cache = (!opts.no_cache)
        .then(|| CredentialCache::from_env(&|k| (ctx.env)(k)))
        .flatten();
    if let Some(cache) = cache {
        let caller = cache::caller_key(token.expose_secret());
        if let Err(e) = cache.put(client.base().as_str(), &caller, &entry, now) {
            eprintln!("warning: credentials not cached: {e}");
        }
    }
    print_noted(out, opts.format, &entry)
}

/// Finds the caller's active grant for `role`: the one whose window ends
/// last. Without one, the error names a pending request for the role, or
/// says what request policy would take.
pub async fn active_grant_for_role(
    client: &Client,
    role: &RoleArn,
    now: Timestamp,
) -> Result<AccessRequest, CliError> {
    let listing = super::requests::collect_pages(client, Scope::Mine, Some("active"), 1000).await?;
    let mut best: Option<AccessRequest> = None;
    for item in &listing.items {
        let req = parse_request(item)?;
        if &req.role_arn != role || req.effective_status(now) != Status::Active {
            continue;
        }
        if best.as_ref().is_none_or(|b| req.window_end > b.window_end) {
            best = Some(req);
        }
    }
    if let Some(best) = best {
        return Ok(best);
    }
    let pending = super::requests::collect_pages(client, Scope::Mine, Some("pending"), 1000)
        .await?
        .items
        .iter()
        .map(parse_request)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .find(|r| &r.role_arn == role && r.effective_status(now) == Status::Pending);
    Err(match pending {
        Some(p) => CliError::new(
            Exit::NotFound,
            "grant_pending",
            format!(
                "you have no active grant for role `{role}`: request {} for it waits for \
                 approval ({} of {} approvals)",
                p.id,
                p.approvals.len(),
                p.approvals_required
            ),
        )
        .with_hint(format!(
            "wait for it with `tollgate wait {} --credentials`",
            p.id
        )),
        None => CliError::new(
            Exit::NotFound,
            "no_active_grant",
            format!("you have no active grant for role `{role}`"),
        )
        .with_hint(request_hint(client, role).await),
    })
}

/// The `tollgate request` command for `role` that policy would take now,
/// found by dry runs: with a ticket only if one is needed, no longer than
/// the longest grant allowed, `--wait` unless it would be active at once.
/// When no such request would be allowed, says how to see why.
async fn request_hint(client: &Client, role: &RoleArn) -> String {
    const WHY: &str = "<why>";
    let ask = |ticket: Option<&'static str>| async move {
        let body = super::requests::request_body(role, "1h", WHY, ticket, None).ok()?;
        let answer = client.dry_run(&body).await.ok()?;
        Some((
            super::requests::decision_allowed(&answer) == Some(true),
            answer,
        ))
    };
    let (ticket, answer) = match ask(None).await {
        Some((true, answer)) => (None, answer),
        Some((false, _)) => match ask(Some("TICKET-1")).await {
            Some((true, answer)) => (Some("--ticket '<ticket>' "), answer),
            Some((false, denied)) => {
                let by = denied["decision"]["forbidden_by"][0]["id"]
                    .as_str()
                    .map_or_else(String::new, |p| format!(" (forbidden by {p})"));
                return format!(
                    "policy would not allow a request for this role now{by}; see why with \
                     `tollgate explain --role {role} --duration 1h --ticket <ticket>`"
                );
            }
            None => return generic_request_hint(role),
        },
        None => return generic_request_hint(role),
    };
    let longest = answer["max_duration_seconds"].as_u64().unwrap_or(3600);
    let duration = tollgate::domain::format_seconds(longest.min(3600));
    let wait = if answer["outcome"] == "active" {
        ""
    } else {
        " --wait"
    };
    format!(
        "request one with: tollgate request --role {role} --duration {duration} \
         --reason '{WHY}' {ticket}{wait}",
        ticket = ticket.unwrap_or_default()
    )
    .replace("  ", " ")
    .trim_end()
    .to_owned()
}

fn generic_request_hint(role: &RoleArn) -> String {
    format!(
        "request one with: tollgate request --role {role} --duration 1h --reason '<why>' --wait"
    )
}

/// The expiration told to AWS clients: never beyond the grant's window, so
/// they come back for fresh credentials (or a clear error) when it ends.
pub fn reported_expiration(entry: &CachedEntry) -> Timestamp {
    entry.credentials.expiration.min(entry.window_end)
}

/// Prints credentials, and for `--format env` says when they expire before
/// the grant does: the exported variables do not refresh themselves.
fn print_noted(
    out: &mut dyn Write,
    format: CredentialFormat,
    entry: &CachedEntry,
) -> Result<(), CliError> {
    print(out, format, entry)?;
    if format == CredentialFormat::Env
        && let Some(note) = expiry_note(entry, Timestamp::now(), crate::clock::now())
    {
        eprintln!("{note}");
    }
    Ok(())
}

/// Credentials that end more than a minute before their grant: AWS caps a
/// role-chained session at one hour, so a longer grant needs fresh ones.
/// Their expiration is on the system clock (`now`), the grant's end on the
/// broker's (`broker_now`): the two differ under a development clock.
pub fn expiry_note(entry: &CachedEntry, now: Timestamp, broker_now: Timestamp) -> Option<String> {
    let left = entry.credentials.expiration.seconds_since(now);
    let grant_left = entry.window_end.seconds_since(broker_now);
    (left + 60 < grant_left).then(|| {
        format!(
            "note: these credentials expire in {}, before your grant ends in {}: AWS limits \
             role-chained sessions to 1 hour. Run `tollgate credentials {} --format env` again \
             then, or use a credential_process profile (see `tollgate --help`), which the AWS \
             CLI and SDKs refresh by themselves",
            crate::output::human_seconds(left),
            crate::output::human_seconds(grant_left),
            entry.request_id
        )
    })
}

/// Quotes a value for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Prints credentials in `format`.
pub fn print(
    out: &mut dyn Write,
    format: CredentialFormat,
    entry: &CachedEntry,
) -> std::io::Result<()> {
    let c: &IssuedCredentials = &entry.credentials;
    let expiration = reported_expiration(entry);
    match format {
        CredentialFormat::CredentialProcess => {
            let doc = json!({
                "Version": 1,
                "AccessKeyId": c.access_key_id,
                "SecretAccessKey": c.secret_access_key.expose_secret(),
                "SessionToken": c.session_token.expose_secret(),
                "Expiration": expiration.to_rfc3339(),
            });
            writeln!(out, "{doc}")
        }
        CredentialFormat::Env => {
            writeln!(
                out,
                "export AWS_ACCESS_KEY_ID={}",
                shell_quote(&c.access_key_id)
            )?;
            writeln!(
                out,
                "export AWS_SECRET_ACCESS_KEY={}",
                shell_quote(c.secret_access_key.expose_secret())
            )?;
            writeln!(
                out,
                "export AWS_SESSION_TOKEN={}",
                shell_quote(c.session_token.expose_secret())
            )?;
            writeln!(
                out,
                "export AWS_CREDENTIAL_EXPIRATION={}",
                shell_quote(&expiration.to_rfc3339())
            )
        }
        CredentialFormat::Json => write_json(
            out,
            &json!({
                "request_id": entry.request_id,
                "role_arn": entry.role_arn,
                "window_end": entry.window_end,
                "access_key_id": c.access_key_id,
                "secret_access_key": c.secret_access_key.expose_secret(),
                "session_token": c.session_token.expose_secret(),
                "expiration": expiration,
            }),
        ),
    }
}

/// Deletes cached credentials for request `id` (after it was revoked).
pub async fn forget_cached(ctx: &mut Ctx<'_>, id: RequestId) {
    let Ok(settings) = ctx.settings() else {
        return;
    };
    let (Some(url), Ok(token)) = (settings.url.clone(), settings.token().await) else {
        return;
    };
    let Ok(url) = crate::settings::check_url(&url) else {
        return;
    };
    if let Some(cache) = CredentialCache::from_env(&|k| (ctx.env)(k)) {
        cache.remove(url.as_str(), &cache::caller_key(token.expose_secret()), id);
    }
}

/// `tollgate console`: a sign-in URL to the AWS console for an active grant
/// (by request id, or the caller's grant for a role), opened in the browser
/// or printed with `--print`. The URL signs in whoever holds it: it is
/// never cached or written anywhere else.
pub async fn console(
    ctx: &mut Ctx<'_>,
    args: &crate::args::ConsoleArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let format = ctx.output();
    let (client, _) = ctx.client().await?;
    let now = crate::clock::now();
    let id = match (&args.id, &args.role) {
        (Some(id), _) => *id,
        (None, Some(role)) => {
            let role = resolve(&client, role).await?;
            active_grant_for_role(&client, &role, now).await?.id
        }
        (None, None) => {
            return Err(CliError::usage(
                "missing_argument",
                "give a request id or --role",
            ));
        }
    };
    let mut body = json!({});
    if let Some(d) = &args.destination {
        body["destination"] = d.trim().into();
    }
    let answer = client.act(id, "console", &body).await?;
    let url = SecretString::from(
        answer["url"]
            .as_str()
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .ok_or_else(|| {
                CliError::new(
                    Exit::Unavailable,
                    "bad_response",
                    "the broker answered without a sign-in URL",
                )
            })?
            .to_owned(),
    );
    let expiration = answer["expiration"].as_str().unwrap_or_default();
    if args.print || format == OutputFormat::Json {
        match format {
            OutputFormat::Json => write_json(
                out,
                &json!({ "request_id": id, "url": url.expose_secret(), "expiration": expiration }),
            )?,
            OutputFormat::Table => writeln!(out, "{}", url.expose_secret())?,
        }
        return Ok(());
    }
    open_in_browser(&url)?;
    eprintln!("opened the AWS console for request {id}; the session ends by {expiration}");
    Ok(())
}

/// Hands `url` to the desktop's opener (`open`, `xdg-open`, `explorer`).
fn open_in_browser(url: &SecretString) -> Result<(), CliError> {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    let status = std::process::Command::new(opener)
        .arg(url.expose_secret())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() || cfg!(windows) => Ok(()),
        _ => Err(CliError::generic(
            "no_browser",
            format!("could not open a browser with `{opener}`"),
        )
        .with_hint("print the sign-in URL with --print and open it yourself (it is valid for 15 minutes and signs in whoever holds it)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(expiration: i64, window_end: i64) -> CachedEntry {
        let now = Timestamp::from_unix(1_795_000_000);
        CachedEntry {
            request_id: RequestId::generate(now),
            role_arn: RoleArn::parse("arn:aws:iam::123456789012:role/X").unwrap(),
            window_end: Timestamp::from_unix(window_end),
            credentials: IssuedCredentials {
                access_key_id: "ASIAEXAMPLE".into(),
                secret_access_key: SecretString::from("se'cret"),
                session_token: SecretString::from("tok"),
                expiration: Timestamp::from_unix(expiration),
            },
        }
    }

    fn render(format: CredentialFormat, e: &CachedEntry) -> String {
        let mut buf = Vec::new();
        print(&mut buf, format, e).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn credential_process_output_is_what_aws_clients_expect() {
        let e = entry(1_795_003_600, 1_795_007_200);
        let text = render(CredentialFormat::CredentialProcess, &e);
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            json!({
                "Version": 1,
                "AccessKeyId": "ASIAEXAMPLE",
                "SecretAccessKey": "se'cret",
                "SessionToken": "tok",
                "Expiration": "2026-11-18T12:06:40Z",
            })
        );
    }

    #[test]
    fn the_reported_expiration_never_outlives_the_grant() {
        let e = entry(1_795_003_600, 1_795_001_000);
        let v: serde_json::Value =
            serde_json::from_str(&render(CredentialFormat::CredentialProcess, &e)).unwrap();
        assert_eq!(
            v["Expiration"],
            Timestamp::from_unix(1_795_001_000).to_rfc3339()
        );
    }

    #[test]
    fn env_output_is_safe_to_eval() {
        let text = render(CredentialFormat::Env, &entry(1_795_003_600, 1_795_007_200));
        assert_eq!(
            text,
            "export AWS_ACCESS_KEY_ID='ASIAEXAMPLE'\n\
             export AWS_SECRET_ACCESS_KEY='se'\\''cret'\n\
             export AWS_SESSION_TOKEN='tok'\n\
             export AWS_CREDENTIAL_EXPIRATION='2026-11-18T12:06:40Z'\n"
        );
    }

    #[tokio::test]
    async fn a_broker_name_that_does_not_resolve_is_an_outage_and_serves_the_cache() {
        let client = Client::new(
            reqwest::Url::parse("https://tollgate.invalid/").unwrap(),
            &SecretString::from("t"),
        )
        .unwrap();
        let now = Timestamp::now();
        let e = entry(now.plus(3600).unix(), now.plus(7200).unix());
        assert!(matches!(
            confirm_cached(&client, &e, now).await,
            Cached::Serve
        ));
    }

    #[test]
    fn env_users_are_told_when_credentials_end_before_the_grant() {
        let now = Timestamp::from_unix(1_795_000_000);
        // A 2h grant: STS gave one hour.
        let e = entry(1_795_003_600, 1_795_007_200);
        let note = expiry_note(&e, now, now).unwrap();
        assert!(
            note.starts_with(
                "note: these credentials expire in 1h, before your grant ends in 2h: AWS limits"
            ),
            "{note}"
        );
        assert!(note.contains(&format!(
            "tollgate credentials {} --format env",
            e.request_id
        )));
        assert!(note.contains("credential_process"));
        // Ending with the grant (within a minute): nothing to say.
        assert_eq!(
            expiry_note(&entry(1_795_003_600, 1_795_003_650), now, now),
            None
        );
        assert_eq!(
            expiry_note(&entry(1_795_003_600, 1_795_001_000), now, now),
            None
        );
        // Under a development clock 10h ahead, a 1h grant is no longer than its credentials.
        let ahead = now.plus(36_000);
        assert_eq!(
            expiry_note(&entry(1_795_003_600, 1_795_039_600), now, ahead),
            None
        );
    }

    #[test]
    fn json_output_names_the_request_and_role() {
        let e = entry(1_795_003_600, 1_795_007_200);
        let v: serde_json::Value =
            serde_json::from_str(&render(CredentialFormat::Json, &e)).unwrap();
        assert_eq!(v["request_id"], e.request_id.to_string());
        assert_eq!(v["role_arn"], "arn:aws:iam::123456789012:role/X");
        assert_eq!(v["secret_access_key"], "se'cret");
        assert_eq!(v["window_end"], "2026-11-18T13:06:40Z");
        assert_eq!(v["expiration"], "2026-11-18T12:06:40Z");
    }
}

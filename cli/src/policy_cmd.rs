//! Offline policy commands: `tollgate policy validate <dir>` checks a policy
//! directory against the schema; `tollgate explain` shows what the policies
//! decide for a hypothetical request, without a broker or AWS.

use crate::output::write_clean_lines;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use tollgate::domain::{GrantDuration, Identity, Reason, RoleArn, RoleInfo, Ticket, Timestamp};
use tollgate::policy::{Action, PolicyEngine, Query, QueryContext};

/// Exit code: the policies allow the request, or the policy set is valid.
pub const EXIT_OK: i32 = 0;
/// Exit code of `policy validate`: the policy set is invalid or unreadable.
pub const EXIT_INVALID: i32 = 1;
/// Exit code of `explain`: bad arguments or input files, or invalid policies.
pub const EXIT_USAGE: i32 = 2;
/// Exit code of `explain`: the policies deny the request.
pub const EXIT_DENIED: i32 = 3;

/// `tollgate policy validate <dir>`.
#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// Directory of *.cedar files
    pub dir: PathBuf,
}

/// Loads and strictly validates every `*.cedar` file in `args.dir`, writing
/// either a summary and any warnings, or every problem as
/// `file:line:col: message`. Returns 0 when valid, 1 otherwise (an empty
/// set included: it would deny everything, which is never what was meant).
pub fn validate(args: &ValidateArgs, out: &mut dyn Write) -> i32 {
    match PolicyEngine::load_dir(&args.dir) {
        Ok(engine) if engine.policy_count() == 0 => {
            let _ = writeln!(
                out,
                "error: no policies in {} (no *.cedar file, or only empty ones): a broker \
                 with this set would deny every request",
                args.dir.display()
            );
            EXIT_INVALID
        }
        Ok(engine) => {
            let _ = writeln!(
                out,
                "ok: {} {} in {} {} under {}",
                engine.policy_count(),
                plural(engine.policy_count(), "policy", "policies"),
                engine.file_count(),
                plural(engine.file_count(), "file", "files"),
                args.dir.display()
            );
            for warning in engine.warnings() {
                let _ = write_clean_lines(out, &format!("warning: {warning}"));
            }
            EXIT_OK
        }
        Err(e) => {
            let _ = write_clean_lines(out, &format!("error: {e}"));
            EXIT_INVALID
        }
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

fn parse_action(s: &str) -> Result<Action, String> {
    s.parse()
        .map_err(|e: tollgate::domain::ValidationError| e.message)
}

/// `tollgate explain`: what would the policies decide?
#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// Directory of *.cedar policy files
    #[arg(long, value_name = "DIR", env = "TOLLGATE_POLICY_DIR")]
    pub policies: PathBuf,
    /// The principal's claims: a JSON file {"sub", "groups", "tags", "mfa"}
    #[arg(long, value_name = "CLAIMS_JSON")]
    pub identity: PathBuf,
    /// The role asked about
    #[arg(long, value_name = "ARN")]
    pub role_arn: String,
    /// A role IAM tag, as key=value (repeatable)
    #[arg(long = "role-tag", value_name = "KEY=VALUE")]
    pub role_tags: Vec<String>,
    /// The role's maximum session duration, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub max_session: u32,
    /// request, auto_approve, approve, revoke or read
    #[arg(long, default_value = "request", value_parser = parse_action)]
    pub action: Action,
    /// Grant length asked for, with a unit: 90m, 2h, 1h30m
    #[arg(long, default_value = "1h")]
    pub duration: String,
    /// The reason given
    #[arg(long, default_value = "policy explain")]
    pub reason: String,
    /// The ticket given, if any
    #[arg(long)]
    pub ticket: Option<String>,
    /// The caller's IP address, if it should be known to the policies
    #[arg(long, value_name = "IP")]
    pub source_ip: Option<String>,
    /// Decision time, RFC 3339 (default: now)
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// The requester's claims, for approve, read and revoke (JSON file like --identity)
    #[arg(long, value_name = "CLAIMS_JSON")]
    pub requester: Option<PathBuf>,
    /// Approvals the request already has
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub approvals_so_far: u32,
    /// Print the decision as JSON
    #[arg(long)]
    pub json: bool,
}

fn read_identity(path: &Path, flag: &str) -> Result<Identity, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{flag} `{}`: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{flag} `{}`: not a claims object {{\"sub\", \"groups\", \"tags\", \"mfa\"}}: {e}",
            path.display()
        )
    })
}

fn role_tags(pairs: &[String]) -> Result<BTreeMap<String, String>, String> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
            _ => Err(format!("--role-tag `{pair}` is not key=value")),
        })
        .collect()
}

/// Everything `explain` needs, validated as the broker would.
struct Inputs {
    engine: PolicyEngine,
    principal: Identity,
    requester: Option<Identity>,
    role: RoleInfo,
    duration: GrantDuration,
    reason: Reason,
    ticket: Option<Ticket>,
    now: Timestamp,
}

fn inputs(args: &ExplainArgs) -> Result<Inputs, String> {
    let engine = PolicyEngine::load_dir(&args.policies).map_err(|e| e.to_string())?;
    let principal = read_identity(&args.identity, "--identity")?;
    let requester = args
        .requester
        .as_deref()
        .map(|p| read_identity(p, "--requester"))
        .transpose()?;
    if !(3600..=43_200).contains(&args.max_session) {
        return Err(format!(
            "--max-session `{}` must be from 3600 to 43200 seconds",
            args.max_session
        ));
    }
    let role = RoleInfo {
        arn: RoleArn::parse(&args.role_arn).map_err(|e| e.message)?,
        role_id: String::new(),
        max_session_seconds: args.max_session,
        tags: role_tags(&args.role_tags)?,
    };
    let seconds =
        crate::args::duration_with_unit("--duration", &args.duration).map_err(|e| e.message)?;
    let duration = GrantDuration::new(seconds, u32::MAX).map_err(|e| e.message)?;
    let reason = Reason::parse(&args.reason).map_err(|e| e.message)?;
    let ticket = args
        .ticket
        .as_deref()
        .map(Ticket::parse)
        .transpose()
        .map_err(|e| e.message)?;
    let now = match &args.now {
        None => Timestamp::now(),
        Some(s) => Timestamp::parse_rfc3339(s)
            .ok_or_else(|| format!("--now `{s}` is not an RFC 3339 time"))?,
    };
    Ok(Inputs {
        engine,
        principal,
        requester,
        role,
        duration,
        reason,
        ticket,
        now,
    })
}

/// Decides a hypothetical request offline and writes the explanation (or
/// JSON with `--json`). Returns 0 when allowed, 3 when denied, 2 when the
/// arguments, input files or policies are unusable.
pub fn explain(args: &ExplainArgs, out: &mut dyn Write) -> i32 {
    let inputs = match inputs(args) {
        Ok(i) => i,
        Err(e) => {
            let _ = write_clean_lines(out, &format!("error: {e}"));
            return EXIT_USAGE;
        }
    };
    let query = Query {
        principal: &inputs.principal,
        action: args.action,
        role: &inputs.role,
        context: QueryContext {
            duration_seconds: inputs.duration.seconds(),
            reason: inputs.reason.as_str(),
            ticket: inputs.ticket.as_ref().map(Ticket::as_str),
            source_ip: args.source_ip.as_deref(),
            now: inputs.now,
            requester: inputs.requester.as_ref(),
            approvals_so_far: args.approvals_so_far,
        },
    };
    let decision = inputs.engine.decide(&query);
    // Policy files and claims files are input from others: printed cleaned.
    if args.json {
        let _ = crate::output::write_json(out, &decision.to_json());
    } else {
        let _ = write_clean_lines(out, &decision.explain());
    }
    if decision.allowed {
        EXIT_OK
    } else {
        EXIT_DENIED
    }
}

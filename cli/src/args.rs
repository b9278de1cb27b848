//! The command line: global options, every subcommand and its flags.

use crate::error::{CliError, EXIT_CODES_HELP};
use crate::output::OutputFormat;
use crate::role_ref::RoleRef;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use tollgate::domain::{RequestId, RoleArn, parse_seconds};

const CONFIG_HELP: &str = "\
Configuration, first match wins:
  1. flags: --url, --token-command, --output, --profile
  2. environment: TOLLGATE_URL, TOLLGATE_TOKEN (a bearer token) or
     TOLLGATE_TOKEN_COMMAND (a command that prints one), TOLLGATE_OUTPUT,
     TOLLGATE_PROFILE
  3. the profile in ~/.config/tollgate/config.toml ($XDG_CONFIG_HOME is
     respected; TOLLGATE_CONFIG names another file):

       default_profile = \"work\"
       [profiles.work]
       url = \"https://tollgate.example.com\"
       token_command = \"my-idp-cli print-token\"
       output = \"table\"

Tokens are never printed. There is no --token flag: a token on the command
line would show in `ps` and in shell history.

Use with the AWS CLI and SDKs, in ~/.aws/config:
  [profile prod-ops]
  credential_process = tollgate credentials --role arn:aws:iam::444455556666:role/tollgate/ProductionOperator --format credential-process";

/// Just-in-time AWS access: ask for a role for a while, get it approved,
/// use it.
#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Just-in-time access to AWS roles: request, approve, use, revoke",
    after_long_help = format!("{CONFIG_HELP}\n\n{EXIT_CODES_HELP}"),
    after_help = "Run `tollgate --help` for configuration and exit codes."
)]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Profile from the config file [env: TOLLGATE_PROFILE]
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// The broker's base URL [env: TOLLGATE_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// A command that prints a bearer token [env: TOLLGATE_TOKEN_COMMAND]
    #[arg(long, global = true, value_name = "COMMAND")]
    pub token_command: Option<String>,
    /// How to print results [env: TOLLGATE_OUTPUT]
    #[arg(long, short = 'o', global = true, value_enum)]
    pub output: Option<OutputFormat>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask for a role for a while, saying why
    Request(RequestArgs),
    /// Wait for a decision on a pending request, then print it or credentials
    Wait(WaitArgs),
    /// List your requests, those waiting for your review (--pending), or
    /// active grants you may revoke (--active)
    List(ListArgs),
    /// Show one request with its approvals and audit trail
    Show(IdArg),
    /// Approve a pending request after reviewing what it asks
    Approve(ApproveArgs),
    /// Deny a pending request
    Deny(DenyArgs),
    /// Withdraw your own pending request
    Cancel(IdArg),
    /// End an active grant now
    Revoke(RevokeArgs),
    /// Mint STS credentials for an active grant
    Credentials(CredentialsArgs),
    /// Sign in to the AWS console with an active grant (opens a browser)
    Console(ConsoleArgs),
    /// Ask to lengthen your active (or scheduled) grant
    Extend(ExtendArgs),
    /// Record whether a break-glass grant was justified
    Review(ReviewArgs),
    /// What policy would decide: asks the broker (nothing is stored), or
    /// decides offline with --policies
    Explain(Box<ExplainArgs>),
    /// Policy files: validate offline, publish, status, diff
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Check the audit trail
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The roles you may ask for, with the terms policy sets for each; `roles
    /// check`: whether existing roles can be brokered
    Roles(RolesArgs),
    /// Run the broker on this machine (against AWS_ENDPOINT_URL or AWS)
    Serve(ServeArgs),
    /// Local development helpers for the emulator
    #[command(subcommand)]
    Local(LocalCommand),
    /// Development helpers (only with TOLLGATE_DEV_SECRET set)
    #[command(subcommand)]
    Dev(DevCommand),
    /// Print a shell completion script
    Completions(CompletionsArgs),
}

/// A request id.
#[derive(Debug, Args)]
pub struct IdArg {
    /// The request id
    #[arg(value_parser = parse_request_id, value_name = "REQUEST_ID")]
    pub id: RequestId,
}

/// How to print credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CredentialFormat {
    /// The JSON the AWS CLI and SDKs read from `credential_process`
    CredentialProcess,
    /// `export AWS_...=...` lines for `eval`
    Env,
    /// A JSON object with the request, role and credentials
    Json,
}

/// `tollgate request`.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// The role to ask for: its ARN, or ACCOUNT/NAME (an account alias or id
    /// and the role name, like prod/ProductionOperator), or NAME when only
    /// one account has it (`tollgate roles` lists them)
    #[arg(long, value_parser = parse_role_ref, value_name = "ROLE")]
    pub role: RoleRef,
    /// How long the grant lasts once approved, with a unit: 30m, 2h, 1h30m
    #[arg(long, short = 'd', value_name = "DURATION")]
    pub duration: String,
    /// Why you need it
    #[arg(long, short = 'r')]
    pub reason: String,
    /// A change or incident ticket reference
    #[arg(long, short = 't')]
    pub ticket: Option<String>,
    /// An IAM policy narrowing the role: a JSON document, or @file
    #[arg(long, value_name = "JSON|@FILE")]
    pub session_policy: Option<String>,
    /// Start the grant at this time (RFC 3339, e.g. 2026-12-01T09:00Z), at
    /// most 30 days ahead; it lapses if not approved by then
    #[arg(long, value_name = "TIME", conflicts_with_all = ["starts_in", "break_glass"])]
    pub starts_at: Option<String>,
    /// Start the grant this long from now (30m, 2h, 1d)
    #[arg(long = "in", value_name = "DURATION", conflicts_with = "break_glass")]
    pub starts_in: Option<String>,
    /// Emergency access: active at once without approval where policy
    /// permits it, announced to everyone, and reviewed afterwards
    #[arg(long)]
    pub break_glass: bool,
    /// A key that makes retrying this exact request safe
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Ask again even if the same request (role, duration, reason, ticket,
    /// session policy) is already pending; without it, that one is reused
    #[arg(long)]
    pub new: bool,
    /// Wait for a decision (progress on stderr when it is a terminal)
    #[arg(long, short = 'w')]
    pub wait: bool,
    /// How long to wait, and what to print once active.
    #[command(flatten)]
    pub then: WaitOptions,
}

/// `tollgate wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The pending request
    #[arg(value_parser = parse_request_id, value_name = "REQUEST_ID")]
    pub id: RequestId,
    /// How long to wait, and what to print once active.
    #[command(flatten)]
    pub then: WaitOptions,
}

/// Waiting for a decision, for `request` and `wait`.
#[derive(Debug, Args)]
pub struct WaitOptions {
    /// How long to wait before giving up (exit 8)
    #[arg(long, default_value = "15m", value_name = "DURATION")]
    pub timeout: String,
    /// Once active, print credentials instead of the request (waits for
    /// approval)
    #[arg(long)]
    pub credentials: bool,
    /// Format for --credentials
    #[arg(long, value_enum, requires = "credentials")]
    pub format: Option<CredentialFormat>,
    /// Do not cache the credentials printed by --credentials
    #[arg(long, requires = "credentials")]
    pub no_cache: bool,
}

/// `tollgate list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Requests waiting for your review instead of your own
    #[arg(long, conflicts_with = "active")]
    pub pending: bool,
    /// Active grants you may revoke (yours, and others' where policy
    /// lets you revoke) instead of your own requests
    #[arg(long, conflicts_with = "unreviewed")]
    pub active: bool,
    /// Break-glass grants waiting for a review you may record
    #[arg(long, conflicts_with = "pending")]
    pub unreviewed: bool,
    /// Only requests in this state (pending, active, denied, ...)
    #[arg(long, conflicts_with_all = ["pending", "active", "unreviewed"], value_parser = parse_status)]
    pub status: Option<String>,
    /// At most this many requests (pages are followed until reached)
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
}

/// `tollgate approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The request id
    #[arg(value_parser = parse_request_id, value_name = "REQUEST_ID")]
    pub id: RequestId,
    /// A comment recorded with the approval
    #[arg(long, short = 'c')]
    pub comment: Option<String>,
    /// The digest `tollgate show` printed for what you reviewed (at least
    /// its first 16 characters): approve only if the request is exactly
    /// that, without asking again
    #[arg(long, value_name = "DIGEST")]
    pub digest: Option<String>,
    /// Approve without asking for confirmation (prints what was approved)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `tollgate deny`.
#[derive(Debug, Args)]
pub struct DenyArgs {
    /// The request id
    #[arg(value_parser = parse_request_id, value_name = "REQUEST_ID")]
    pub id: RequestId,
    /// Why, for the requester and the audit trail
    #[arg(long, short = 'r')]
    pub reason: String,
}

/// `tollgate revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The request id
    #[arg(value_parser = parse_request_id, value_name = "REQUEST_ID")]
    pub id: RequestId,
    /// Why, for the audit trail
    #[arg(long, short = 'r')]
    pub reason: String,
}

/// `tollgate credentials`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["id", "role"]))]
pub struct CredentialsArgs {
    /// The request whose grant to use
    #[arg(value_parser = parse_request_id, value_name = "REQUEST_ID")]
    pub id: Option<RequestId>,
    /// Use your active grant for this role (the one ending last): its ARN,
    /// ACCOUNT/NAME or NAME (short forms ask the broker, so
    /// credential_process, which must work through a broker outage from the
    /// cache, should name the ARN)
    #[arg(long, value_parser = parse_role_ref, value_name = "ROLE")]
    pub role: Option<RoleRef>,
    /// Output format [default: env, or json with --output json]
    #[arg(long, short = 'f', value_enum)]
    pub format: Option<CredentialFormat>,
    /// Neither read nor write the local credential cache
    #[arg(long)]
    pub no_cache: bool,
}

/// `tollgate console`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["id", "role"]))]
pub struct ConsoleArgs {
    /// The request whose grant to use
    #[arg(value_parser = parse_request_id, value_name = "REQUEST_ID")]
    pub id: Option<RequestId>,
    /// Use your active grant for this role (the one ending last): its ARN,
    /// ACCOUNT/NAME or NAME
    #[arg(long, value_parser = parse_role_ref, value_name = "ROLE")]
    pub role: Option<RoleRef>,
    /// Print the sign-in URL instead of opening a browser (it signs in
    /// whoever holds it: do not share or store it)
    #[arg(long)]
    pub print: bool,
    /// The console page to land on [default: the console home]
    #[arg(long, value_name = "URL")]
    pub destination: Option<String>,
}

/// `tollgate extend`.
#[derive(Debug, Args)]
pub struct ExtendArgs {
    /// The grant to extend
    #[arg(value_parser = parse_request_id, value_name = "REQUEST_ID")]
    pub id: RequestId,
    /// How much longer, with a unit: 30m, 1h
    #[arg(long, value_name = "DURATION")]
    pub by: String,
    /// Why, for the approvers and the audit trail
    #[arg(long, short = 'r')]
    pub reason: String,
}

/// How a break-glass grant was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReviewOutcomeArg {
    /// The emergency access was warranted
    Justified,
    /// It was not
    Unjustified,
}

/// `tollgate review`.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The break-glass request
    #[arg(value_parser = parse_request_id, value_name = "REQUEST_ID")]
    pub id: RequestId,
    /// Whether it was justified
    #[arg(long, value_enum)]
    pub outcome: ReviewOutcomeArg,
    /// What you found, for the audit trail
    #[arg(long, short = 'c')]
    pub comment: String,
}

/// `tollgate explain`: the broker's dry run, or offline with `--policies`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Decide offline against this directory of *.cedar files instead of
    /// asking the broker (needs --identity)
    #[arg(long, value_name = "DIR")]
    pub policies: Option<PathBuf>,
    /// The role asked about: its ARN, or (asking the broker) ACCOUNT/NAME or NAME
    #[arg(long, alias = "role-arn", value_name = "ROLE")]
    pub role: String,
    /// How long, with a unit: 30m, 2h, 1h30m
    #[arg(long, short = 'd', default_value = "1h", value_name = "DURATION")]
    pub duration: String,
    /// The reason given
    #[arg(long, short = 'r', default_value = "policy explain")]
    pub reason: String,
    /// A ticket reference
    #[arg(long, short = 't')]
    pub ticket: Option<String>,
    /// An IAM policy narrowing the role: a JSON document, or @file (online only)
    #[arg(long, value_name = "JSON|@FILE", conflicts_with = "policies")]
    pub session_policy: Option<String>,
    /// Offline: the principal's claims, a JSON file {"sub", "groups", "tags", "mfa"}
    #[arg(long, value_name = "CLAIMS_JSON", requires = "policies")]
    pub identity: Option<PathBuf>,
    /// Offline: a role IAM tag, KEY=VALUE (repeatable)
    #[arg(long = "role-tag", value_name = "KEY=VALUE", requires = "policies")]
    pub role_tags: Vec<String>,
    /// Offline: the role's maximum session duration, in seconds [default: 3600]
    #[arg(long, value_name = "SECONDS", requires = "policies")]
    pub max_session: Option<u32>,
    /// Offline: request, auto_approve, approve, revoke or read [default: request]
    #[arg(long, requires = "policies", value_parser = parse_action)]
    pub action: Option<tollgate::policy::Action>,
    /// Offline: the caller's IP address
    #[arg(long, value_name = "IP", requires = "policies")]
    pub source_ip: Option<String>,
    /// Offline: decision time, RFC 3339 [default: now]
    #[arg(long, value_name = "RFC3339", requires = "policies")]
    pub now: Option<String>,
    /// Offline: the requester's claims, for approve, read and revoke
    #[arg(long, value_name = "CLAIMS_JSON", requires = "policies")]
    pub requester: Option<PathBuf>,
    /// Offline: approvals the request already has [default: 0]
    #[arg(long, value_name = "N", requires = "policies")]
    pub approvals_so_far: Option<u32>,
    /// Print the decision as JSON (same as --output json)
    #[arg(long)]
    pub json: bool,
}

/// `tollgate policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check every *.cedar file in a directory against the schema
    Validate(crate::policy_cmd::ValidateArgs),
    /// Validate a directory and publish it to the policy store (your AWS
    /// credentials); functions load it within their refresh interval
    Publish(PolicyPublishArgs),
    /// Which policy set version each function serves, and the store's newest
    Status(PolicyStatusArgs),
    /// Replay the last days' requests against the set in force and a
    /// proposed directory; print each request that would be decided
    /// differently, with the policies responsible
    Diff(PolicyDiffArgs),
}

/// Where the policy store and the table are (your AWS credentials and region
/// from the usual AWS environment).
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The policy store bucket [default: TOLLGATE_POLICY_BUCKET or the profile's policy_bucket]
    #[arg(long, value_name = "BUCKET")]
    pub bucket: Option<String>,
    /// The policy set object [default: TOLLGATE_POLICY_KEY, the profile's policy_key, or policies.json]
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// The broker's table [default: TOLLGATE_TABLE, the profile's table, or tollgate]
    #[arg(long, value_name = "TABLE")]
    pub table: Option<String>,
}

/// `tollgate policy publish`.
#[derive(Debug, Args)]
pub struct PolicyPublishArgs {
    /// Directory of *.cedar files
    pub dir: PathBuf,
    /// Publish a new version even when the store already holds this exact set
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `tollgate policy status`.
#[derive(Debug, Args)]
pub struct PolicyStatusArgs {
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `tollgate policy diff`.
#[derive(Debug, Args)]
pub struct PolicyDiffArgs {
    /// Directory of *.cedar files: the proposed set
    pub dir: PathBuf,
    /// Replay requests created in the last N days
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=400))]
    pub days: u32,
    /// Compare against this directory instead of the store's newest set
    #[arg(long, value_name = "DIR")]
    pub against: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `tollgate audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify a request's hash-chained audit trail (exit 1 naming the first bad event)
    Verify(AuditVerifyArgs),
}

/// `tollgate roles [--account A]`, or `tollgate roles check ...`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RolesArgs {
    /// Only roles in this account: its alias or its 12-digit id
    #[arg(long, short = 'a', value_name = "ACCOUNT")]
    pub account: Option<String>,
    /// Print only the roles' short names (ACCOUNT/NAME), one a line: what
    /// shell completion offers for --role
    #[arg(long)]
    pub names: bool,
    /// A roles subcommand
    #[command(subcommand)]
    pub command: Option<RolesCommand>,
}

/// `tollgate roles ...` subcommands.
#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// Ask the broker whether roles can be brokered, and what to fix if not
    /// (account, path, `tollgate:managed` tag, trust policy, Tollgate tags);
    /// exits 1 when any cannot
    Check(RolesCheckArgs),
}

/// `tollgate roles check`.
#[derive(Debug, Args)]
pub struct RolesCheckArgs {
    /// Role ARNs (up to 20)
    #[arg(value_parser = parse_role, value_name = "ARN", required = true, num_args = 1..=20)]
    pub roles: Vec<RoleArn>,
}

/// `tollgate audit verify`.
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// The request id
    #[arg(value_parser = parse_request_id, value_name = "REQUEST_ID")]
    pub id: RequestId,
    /// Read the DynamoDB table directly instead of asking the broker
    /// (for auditors with read access to the table; AWS credentials and
    /// region from the usual AWS environment)
    #[arg(long, value_name = "TABLE")]
    pub table: Option<String>,
    /// Check signatures against this PEM public key (offline; export it once
    /// with `aws kms get-public-key`) instead of asking KMS
    #[arg(long, value_name = "FILE", conflicts_with = "key_id")]
    pub public_key: Option<PathBuf>,
    /// The audit key to fetch the public key of (`kms:GetPublicKey`, AWS
    /// credentials needed) [default: TOLLGATE_AUDIT_KEY_ID or alias/tollgate-audit]
    #[arg(long, value_name = "KEY")]
    pub key_id: Option<String>,
}

/// `tollgate serve`: flags override the `TOLLGATE_*` environment.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: TOLLGATE_ADDR or 127.0.0.1:8080]
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: Option<std::net::SocketAddr>,
    /// Directory of *.cedar policies [default: TOLLGATE_POLICY_DIR or ./policies]
    #[arg(long, value_name = "DIR")]
    pub policies: Option<PathBuf>,
    /// DynamoDB table [default: TOLLGATE_TABLE or tollgate]
    #[arg(long)]
    pub table: Option<String>,
    /// How often the expiry sweep runs [default: TOLLGATE_SWEEP_INTERVAL seconds or 5s]
    #[arg(long, value_name = "DURATION")]
    pub sweep_interval: Option<String>,
}

/// `tollgate local ...`.
#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Create the table and the example roles on AWS_ENDPOINT_URL
    Provision(ProvisionArgs),
}

/// `tollgate local provision`.
#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// DynamoDB table [default: TOLLGATE_TABLE or tollgate]
    #[arg(long)]
    pub table: Option<String>,
}

/// `tollgate dev ...`.
#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Mint an HS256 token signed with TOLLGATE_DEV_SECRET
    Token(DevTokenArgs),
}

/// `tollgate dev token`.
#[derive(Debug, Args)]
pub struct DevTokenArgs {
    /// The subject (user id)
    #[arg(long)]
    pub sub: String,
    /// A group (repeatable)
    #[arg(long = "group", short = 'g', value_name = "GROUP")]
    pub groups: Vec<String>,
    /// An extra string claim, KEY=VALUE (repeatable)
    #[arg(long = "claim", value_name = "KEY=VALUE", value_parser = parse_claim)]
    pub claims: Vec<(String, String)>,
    /// Mark the token as multi-factor authenticated (amr: ["mfa"])
    #[arg(long)]
    pub mfa: bool,
    /// Lifetime
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub ttl: String,
}

/// `tollgate completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Seconds from a duration typed for `flag`. A unit is required (`90m`,
/// `1h`, `45s`): a bare `90` could mean minutes as well as seconds.
pub fn duration_with_unit(flag: &str, input: &str) -> Result<u64, CliError> {
    let s = input.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CliError::usage(
            "invalid_input",
            format!(
                "{flag} `{s}` has no unit: write `{s}m` for {s} minutes, `{s}h` for hours \
                 or `{s}s` for seconds"
            ),
        ));
    }
    Ok(parse_seconds(s)?)
}

fn parse_request_id(s: &str) -> Result<RequestId, String> {
    RequestId::parse(s.trim()).map_err(|e| e.message)
}

fn parse_role(s: &str) -> Result<RoleArn, String> {
    RoleArn::parse(s.trim()).map_err(|e| e.message)
}

fn parse_role_ref(s: &str) -> Result<RoleRef, String> {
    RoleRef::parse(s)
}

fn parse_action(s: &str) -> Result<tollgate::policy::Action, String> {
    s.parse()
        .map_err(|e: tollgate::domain::ValidationError| e.message)
}

fn parse_status(s: &str) -> Result<String, String> {
    tollgate::domain::Status::parse(s)
        .map(|st| st.as_str().to_owned())
        .ok_or_else(|| {
            "expected one of pending, active, denied, cancelled, revoked, expired, lapsed".into()
        })
}

fn parse_claim(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn credentials_need_exactly_one_of_an_id_or_a_role() {
        assert!(Cli::try_parse_from(["tollgate", "credentials"]).is_err());
        assert!(
            Cli::try_parse_from([
                "tollgate",
                "credentials",
                "01KAQ3Z7V1W0000000000000AB",
                "--role",
                "arn:aws:iam::123456789012:role/X"
            ])
            .is_err()
        );
        let cli = Cli::try_parse_from([
            "tollgate",
            "credentials",
            "--role",
            "arn:aws:iam::123456789012:role/X",
            "--format",
            "credential-process",
        ])
        .unwrap();
        let Command::Credentials(args) = cli.command else {
            panic!("parsed as another command")
        };
        assert_eq!(args.format, Some(CredentialFormat::CredentialProcess));
    }

    #[test]
    fn bad_ids_and_arns_are_usage_errors() {
        let err = Cli::try_parse_from(["tollgate", "show", "nope"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("is not a request id"));
        let err = Cli::try_parse_from([
            "tollgate",
            "request",
            "--role",
            "arn:aws:s3:::bucket",
            "-d",
            "1h",
            "-r",
            "x",
        ])
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("not a role ARN"));
    }

    #[test]
    fn credential_options_require_credentials() {
        let base = [
            "tollgate",
            "request",
            "--role",
            "arn:aws:iam::123456789012:role/X",
            "-d",
            "1h",
            "-r",
            "x",
        ];
        for extra in [&["--format", "env"][..], &["--no-cache"]] {
            let mut argv = base.to_vec();
            argv.extend_from_slice(extra);
            assert!(Cli::try_parse_from(argv).is_err(), "{extra:?}");
        }
        let mut argv = base.to_vec();
        argv.extend_from_slice(&["--credentials", "--format", "env"]);
        assert!(Cli::try_parse_from(argv).is_ok());
    }

    #[test]
    fn global_options_go_before_or_after_the_subcommand() {
        let cli =
            Cli::try_parse_from(["tollgate", "list", "--output", "json", "--url", "https://x"])
                .unwrap();
        assert_eq!(cli.global.output, Some(OutputFormat::Json));
        assert_eq!(cli.global.url.as_deref(), Some("https://x"));
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(duration_with_unit("--duration", "90m").unwrap(), 5400);
        assert_eq!(duration_with_unit("--duration", " 1h30m ").unwrap(), 5400);
        let err = duration_with_unit("--duration", "90").unwrap_err();
        assert_eq!(err.exit.code(), 2);
        assert_eq!(
            err.message,
            "--duration `90` has no unit: write `90m` for 90 minutes, `90h` for hours or `90s` for seconds"
        );
        assert!(duration_with_unit("--timeout", "soon").is_err());
    }

    #[test]
    fn list_scopes_exclude_each_other() {
        for argv in [
            &["tollgate", "list", "--pending", "--active"][..],
            &["tollgate", "list", "--active", "--status", "active"],
        ] {
            assert!(Cli::try_parse_from(argv).is_err(), "{argv:?}");
        }
        assert!(Cli::try_parse_from(["tollgate", "list", "--active"]).is_ok());
    }

    #[test]
    fn claims_are_key_value_pairs() {
        assert_eq!(
            parse_claim("department=data"),
            Ok(("department".into(), "data".into()))
        );
        assert_eq!(parse_claim("k=a=b"), Ok(("k".into(), "a=b".into())));
        assert!(parse_claim("novalue").is_err());
        assert!(parse_claim("=x").is_err());
    }
}

//! Minting credentials: a pure [`CredentialPlan`] decides everything sent to
//! STS (duration, session name, source identity, session tags, the session
//! policy with its time cut-off) and checks it against STS's limits, which
//! the local emulator does not; [`Issuer`] makes the one `AssumeRole` call.

use super::{AwsError, aws_failure};
use crate::domain::{
    AccessRequest, RequestId, RoleArn, SessionName, SessionPolicy, Status, Timestamp,
    ValidationError, is_tag_char, sanitize_source_identity, sanitize_tag_value,
};
use aws_sdk_sts::Client;
use aws_sdk_sts::types::Tag;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::fmt;

/// STS's shortest session.
pub const MIN_SESSION_SECONDS: i64 = 900;
/// The longest session when chaining roles (as Lambda does): one hour.
pub const ROLE_CHAINING_MAX_SECONDS: i64 = 3600;
/// Tag naming the request the session belongs to.
pub const TAG_REQUEST: &str = "tollgate:request";
/// Tag naming who approved (space-separated), or `auto`.
pub const TAG_APPROVER: &str = "tollgate:approver";
/// Tag carrying the ticket reference, when there is one.
pub const TAG_TICKET: &str = "tollgate:ticket";
/// Sid of the statement that denies everything after the window's end.
pub const CUTOFF_SID: &str = "TollgateWindowEnd";
/// Sid of the statement that allows the role's permissions until the
/// window's end, when no narrowing was asked for.
pub const WINDOW_SID: &str = "TollgateWindow";

/// STS limits on session tags.
const MAX_TAGS: usize = 50;
const MAX_TAG_KEY_CHARS: usize = 128;
const MAX_TAG_VALUE_CHARS: usize = 256;

/// One session tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTag {
    /// Key.
    pub key: String,
    /// Value, already sanitised.
    pub value: String,
}

/// Everything one `AssumeRole` call sends, checked against STS's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialPlan {
    /// The request the credentials are for.
    pub request_id: RequestId,
    /// The role to assume.
    pub role_arn: RoleArn,
    /// `tollgate-<request id>`.
    pub session_name: SessionName,
    /// `clamp(remaining window, 900, min(3600, role max))`.
    pub duration_seconds: i32,
    /// The requester, sanitised to STS's rules.
    pub source_identity: String,
    /// Session tags, sanitised.
    pub tags: Vec<SessionTag>,
    /// The session policy, compact JSON, at most 2,048 characters.
    pub policy: String,
    /// When the session policy stops allowing anything: the window's end.
    pub cutoff: Timestamp,
    /// When the credentials will expire, as asked of STS.
    pub expires_at: Timestamp,
}

impl CredentialPlan {
    /// Plans credentials for `req`, an active grant, at `now`. Nothing of
    /// the role is needed beyond its ARN: IAM's smallest maximum session
    /// duration (3600 s) is the role-chaining cap, so every role allows the
    /// longest session the broker ever asks for.
    pub fn new(req: &AccessRequest, now: Timestamp) -> Result<Self, ValidationError> {
        let status = req.effective_status(now);
        let cutoff = match (status, req.window_end) {
            (Status::Active, Some(end)) if end > now => end,
            _ => {
                return Err(ValidationError::new(
                    "request_id",
                    format!("the request is {status}, not active"),
                ));
            }
        };
        let remaining = cutoff.seconds_since(now);
        let duration = remaining.clamp(MIN_SESSION_SECONDS, ROLE_CHAINING_MAX_SECONDS);
        let duration_seconds = i32::try_from(duration).unwrap_or(900);

        let session_name = SessionName::for_request(req.id);
        if !SessionName::is_valid(session_name.as_str()) {
            return Err(ValidationError::new(
                "request_id",
                "the session name does not meet STS's rules",
            ));
        }
        let source_identity = sanitize_source_identity(req.requester_id().as_str());
        check_source_identity(&source_identity)?;

        let mut tags = vec![
            tag(TAG_REQUEST, &req.id.to_string()),
            tag(TAG_APPROVER, &approvers(req)),
        ];
        if let Some(ticket) = &req.ticket {
            tags.push(tag(TAG_TICKET, ticket.as_str()));
        }
        check_tags(&tags)?;

        let policy = session_policy(req.session_policy.as_ref(), cutoff);
        check_policy_size(&policy)?;
        Ok(Self {
            request_id: req.id,
            role_arn: req.role_arn.clone(),
            session_name,
            duration_seconds,
            source_identity,
            tags,
            policy,
            cutoff,
            expires_at: now.plus(duration),
        })
    }
}

/// The session policy: the requested narrowing (or, without one, an
/// `Allow *` while `aws:CurrentTime` is before the cut-off), and always an
/// explicit `Deny *` once `aws:CurrentTime` passes it.
// INVARIANT: the session policy only narrows the role, and always ends at
// the window's end with an explicit deny, so credentials that STS's 900 s
// minimum lets outlive the grant are useless past it, and no allow (here or
// in a resource policy naming the session) can outlast it.
fn session_policy(narrowing: Option<&SessionPolicy>, cutoff: Timestamp) -> String {
    let at = cutoff.to_rfc3339();
    let mut statements: Vec<Value> = match narrowing {
        Some(p) => p.statements().to_vec(),
        None => vec![json!({
            "Sid": WINDOW_SID,
            "Effect": "Allow",
            "Action": "*",
            "Resource": "*",
            "Condition": {"DateLessThan": {"aws:CurrentTime": at}},
        })],
    };
    statements.push(json!({
        "Sid": CUTOFF_SID,
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"DateGreaterThan": {"aws:CurrentTime": at}},
    }));
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

/// Approvers' ids, sanitised and space-separated (STS tag values may not
/// hold commas), or `auto` when policy approved the request outright.
fn approvers(req: &AccessRequest) -> String {
    if req.approvals.is_empty() {
        return "auto".to_owned();
    }
    req.approvals
        .iter()
        .map(|a| sanitize_tag_value(a.approver.as_str()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn tag(key: &str, value: &str) -> SessionTag {
    SessionTag {
        key: key.to_owned(),
        value: sanitize_tag_value(value),
    }
}

fn check_tags(tags: &[SessionTag]) -> Result<(), ValidationError> {
    let bad = |m: String| ValidationError::new("session_tags", m);
    if tags.len() > MAX_TAGS {
        return Err(bad(format!(
            "{} session tags; STS allows {MAX_TAGS}",
            tags.len()
        )));
    }
    for (i, t) in tags.iter().enumerate() {
        let key_len = t.key.chars().count();
        if key_len == 0 || key_len > MAX_TAG_KEY_CHARS || !t.key.chars().all(is_tag_char) {
            return Err(bad(format!(
                "session tag key `{}` does not meet STS's rules",
                t.key
            )));
        }
        if t.value.chars().count() > MAX_TAG_VALUE_CHARS || !t.value.chars().all(is_tag_char) {
            return Err(bad(format!(
                "session tag `{}` has a value STS refuses",
                t.key
            )));
        }
        if tags[..i].iter().any(|o| o.key.eq_ignore_ascii_case(&t.key)) {
            return Err(bad(format!("session tag `{}` appears twice", t.key)));
        }
    }
    Ok(())
}

/// STS refuses a session policy over 2,048 plaintext characters.
fn check_policy_size(policy: &str) -> Result<(), ValidationError> {
    let chars = policy.chars().count();
    if chars > SessionPolicy::STS_LIMIT_CHARS {
        return Err(ValidationError::new(
            "session_policy",
            format!(
                "the session policy with its time limit is {chars} characters; STS allows {}",
                SessionPolicy::STS_LIMIT_CHARS
            ),
        ));
    }
    Ok(())
}

fn check_source_identity(value: &str) -> Result<(), ValidationError> {
    let ok = (2..=64).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
        && !value.to_ascii_lowercase().starts_with("aws:");
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "sub",
            "the requester's id cannot be sent as a source identity",
        ))
    }
}

/// Temporary credentials from STS. Never logged, stored or printed: the
/// secret parts are [`SecretString`] and `Debug` redacts them.
pub struct IssuedCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: SecretString,
    /// The session token.
    pub session_token: SecretString,
    /// When STS says they expire.
    pub expiration: Timestamp,
    /// The assumed-role ARN (`arn:aws:sts::<acct>:assumed-role/<role>/<session>`).
    pub assumed_role_arn: String,
}

impl fmt::Debug for IssuedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCredentials")
            .field("access_key_id", &"[redacted]")
            .field("secret_access_key", &"[redacted]")
            .field("session_token", &"[redacted]")
            .field("expiration", &self.expiration)
            .field("assumed_role_arn", &self.assumed_role_arn)
            .finish()
    }
}

/// Assumes target roles through STS. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Issuer {
    client: Client,
}

impl Issuer {
    /// An issuer over an STS client.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Makes the one `AssumeRole` call the plan describes.
    #[tracing::instrument(skip_all, fields(request_id = %plan.request_id))]
    pub async fn issue(&self, plan: &CredentialPlan) -> Result<IssuedCredentials, AwsError> {
        let mut call = self
            .client
            .assume_role()
            .role_arn(plan.role_arn.as_str())
            .role_session_name(plan.session_name.as_str())
            .duration_seconds(plan.duration_seconds)
            .policy(&plan.policy)
            .source_identity(&plan.source_identity);
        for t in &plan.tags {
            let tag = Tag::builder()
                .key(&t.key)
                .value(&t.value)
                .build()
                .map_err(|e| AwsError::Corrupt(format!("session tag does not build: {e}")))?;
            call = call.tags(tag);
        }
        let out = call
            .send()
            .await
            .map_err(|e| aws_failure("AssumeRole", e))?;
        let Some(c) = out.credentials() else {
            return Err(AwsError::Corrupt(
                "AssumeRole returned no credentials".into(),
            ));
        };
        Ok(IssuedCredentials {
            access_key_id: c.access_key_id().to_owned(),
            secret_access_key: SecretString::from(c.secret_access_key().to_owned()),
            session_token: SecretString::from(c.session_token().to_owned()),
            expiration: Timestamp::from_unix(c.expiration().secs()),
            assumed_role_arn: out
                .assumed_role_user()
                .map(|u| u.arn().to_owned())
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        Actor, Command, GrantDuration, Identity, NewRequest, Reason, Ticket, UserId,
    };
    use std::collections::BTreeMap;

    const T0: i64 = 1_800_000_000;

    fn role_arn() -> RoleArn {
        RoleArn::parse("arn:aws:iam::123456789012:role/tollgate/Ops").unwrap()
    }

    fn request(sub: &str, seconds: u64, policy: Option<Value>, approve: bool) -> AccessRequest {
        let new = NewRequest {
            id: RequestId::generate(Timestamp::from_unix(T0)),
            requester: Identity {
                sub: UserId::parse(sub).unwrap(),
                groups: vec![],
                tags: BTreeMap::new(),
                mfa: false,
            },
            role_arn: role_arn(),
            duration: GrantDuration::new(seconds, 43_200).unwrap(),
            reason: Reason::parse("deploy").unwrap(),
            ticket: Some(Ticket::parse("CHG-7").unwrap()),
            session_policy: policy.map(|p| SessionPolicy::parse(&p).unwrap()),
            approvals_required: 1,
            pending_ttl_seconds: 3600,
        };
        let (req, _) = AccessRequest::create(new, !approve, vec![], Timestamp::from_unix(T0));
        if !approve {
            return req;
        }
        let cmd = Command::Approve {
            digest: req.digest.clone(),
            comment: None,
            policies: vec![],
        };
        let bob = Actor::User(UserId::parse("bob|idp").unwrap());
        req.apply(cmd, &bob, Timestamp::from_unix(T0)).unwrap().0
    }

    fn at(offset: i64) -> Timestamp {
        Timestamp::from_unix(T0 + offset)
    }

    #[test]
    fn duration_is_clamped_to_the_window_the_floor_and_role_chaining() {
        let req = request("alice", 7200, None, false);
        let cases = [
            (0, 3600),    // two hours left: role chaining's one-hour cap
            (6000, 1200), // twenty minutes left
            (7000, 900),  // 200 s left: STS's floor
        ];
        for (offset, want) in cases {
            let plan = CredentialPlan::new(&req, at(offset)).unwrap();
            assert_eq!(plan.duration_seconds, want, "offset {offset}");
            assert_eq!(plan.expires_at, at(offset + i64::from(want)));
            assert_eq!(plan.cutoff, at(7200));
        }
    }

    #[test]
    fn plan_is_refused_outside_the_window() {
        let req = request("alice", 3600, None, false);
        assert!(CredentialPlan::new(&req, at(3600)).is_err());
        let pending = request("alice", 3600, None, false);
        let mut pending = pending;
        pending.status = Status::Pending;
        pending.window_end = None;
        assert!(CredentialPlan::new(&pending, at(0)).is_err());
    }

    #[test]
    fn names_identity_and_tags_follow_sts_rules() {
        let req = request("auth0|alice:admin", 3600, None, true);
        let plan = CredentialPlan::new(&req, at(10)).unwrap();
        assert_eq!(plan.session_name.as_str(), format!("tollgate-{}", req.id));
        assert!(
            plan.source_identity.starts_with("auth0-alice-admin="),
            "{}",
            plan.source_identity
        );
        let tags: BTreeMap<_, _> = plan
            .tags
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect();
        assert_eq!(tags[TAG_REQUEST], req.id.to_string());
        assert_eq!(tags[TAG_APPROVER], "bob_idp");
        assert_eq!(tags[TAG_TICKET], "CHG-7");
        let auto = request("alice", 3600, None, false);
        let plan = CredentialPlan::new(&auto, at(0)).unwrap();
        assert!(
            plan.tags
                .iter()
                .any(|t| t.key == TAG_APPROVER && t.value == "auto")
        );
    }

    #[test]
    fn tag_and_source_identity_checks_refuse_what_sts_would() {
        let long_key = SessionTag {
            key: "k".repeat(129),
            value: String::new(),
        };
        assert!(check_tags(&[long_key]).is_err());
        let comma = SessionTag {
            key: "a".into(),
            value: "x,y".into(),
        };
        assert!(check_tags(&[comma]).is_err());
        let dup = [tag("Team", "a"), tag("team", "b")];
        assert!(check_tags(&dup).is_err());
        let many: Vec<_> = (0..51).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert!(check_tags(&many).is_err());
        assert!(check_source_identity("aws:me").is_err());
        assert!(check_source_identity("x").is_err());
        assert!(check_source_identity("alice@example.com").is_ok());
    }

    #[test]
    fn a_session_policy_over_the_sts_limit_is_refused_before_any_call() {
        assert!(check_policy_size(&"x".repeat(2048)).is_ok());
        let err = check_policy_size(&"x".repeat(2049)).unwrap_err();
        assert_eq!(err.field, "session_policy");
        assert!(err.message.contains("2049"));
        // Characters, not bytes: STS counts plaintext characters.
        assert!(check_policy_size(&"é".repeat(2048)).is_ok());
    }

    #[test]
    fn issued_credentials_debug_redacts_every_secret() {
        let creds = IssuedCredentials {
            access_key_id: "ASIAEXAMPLEKEY".into(),
            secret_access_key: SecretString::from("very-secret".to_owned()),
            session_token: SecretString::from("token-value".to_owned()),
            expiration: at(900),
            assumed_role_arn: "arn".into(),
        };
        let shown = format!("{creds:?}");
        for secret in ["ASIAEXAMPLEKEY", "very-secret", "token-value"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("redacted"));
    }
}

//! Webhook notifications: on a new pending request and on every decision, a
//! Slack-compatible JSON message (`text`, `attachments[].fields`, and a
//! machine-readable `tollgate` object) is POSTed to each configured URL,
//! signed with `X-Tollgate-Signature: v1=<hex HMAC-SHA256 of
//! "<timestamp>.<body>">` and `X-Tollgate-Timestamp`. Each message links to
//! the request's page in the web console: `tollgate.link_path` is always
//! `/ui/requests/<id>`; with the public URL configured (`TOLLGATE_PUBLIC_URL`)
//! `tollgate.link` is the full address and the text ends with a Slack link.
//!
//! All webhooks are sent concurrently within a short total budget (2 s)
//! before the handler returns: Lambda freezes the process after the
//! response, so nothing is left in flight. A failing or slow webhook is
//! logged and never fails the request. Webhook URLs are secrets (Slack's
//! carry a token in the path): logs show only scheme and host.

use super::crypto::hmac_sha256;
use crate::domain::{AccessRequest, Actor};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Default time allowed for all webhooks of one notification together.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(2);

/// What happened, for a notification.
#[derive(Debug, Clone, Copy)]
pub enum Notice<'a> {
    /// A request is waiting for review.
    Pending(&'a AccessRequest),
    /// Policy approved a request outright.
    AutoApproved(&'a AccessRequest),
    /// An approver approved (the request may still need more approvals).
    Approved(&'a AccessRequest, &'a Actor),
    /// An approver denied.
    Denied(&'a AccessRequest, &'a Actor),
    /// A grant was revoked.
    Revoked(&'a AccessRequest, &'a Actor),
    /// A break-glass grant was taken: always sent, to every webhook.
    BreakGlass(&'a AccessRequest),
    /// The requester asked to extend a grant; it waits for approval.
    ExtensionPending(&'a AccessRequest),
    /// A grant was extended: by an approver, or by policy (no actor).
    Extended(&'a AccessRequest, Option<&'a Actor>),
    /// An approver denied an extension; the grant is unchanged.
    ExtensionDenied(&'a AccessRequest, &'a Actor),
    /// An approver reviewed a break-glass grant.
    Reviewed(&'a AccessRequest, &'a Actor),
}

impl Notice<'_> {
    /// Stable event name, e.g. `request.pending`.
    pub const fn event(&self) -> &'static str {
        match self {
            Self::Pending(_) => "request.pending",
            Self::AutoApproved(_) => "request.auto_approved",
            Self::Approved(..) => "request.approved",
            Self::Denied(..) => "request.denied",
            Self::Revoked(..) => "request.revoked",
            Self::BreakGlass(_) => "request.break_glass",
            Self::ExtensionPending(_) => "request.extension_pending",
            Self::Extended(..) => "request.extended",
            Self::ExtensionDenied(..) => "request.extension_denied",
            Self::Reviewed(..) => "request.reviewed",
        }
    }

    fn request(&self) -> &AccessRequest {
        match self {
            Self::Pending(r)
            | Self::AutoApproved(r)
            | Self::Approved(r, _)
            | Self::Denied(r, _)
            | Self::Revoked(r, _)
            | Self::BreakGlass(r)
            | Self::ExtensionPending(r)
            | Self::Extended(r, _)
            | Self::ExtensionDenied(r, _)
            | Self::Reviewed(r, _) => r,
        }
    }

    fn actor(&self) -> Option<&Actor> {
        match self {
            Self::Approved(_, a)
            | Self::Denied(_, a)
            | Self::Revoked(_, a)
            | Self::ExtensionDenied(_, a)
            | Self::Reviewed(_, a) => Some(a),
            Self::Extended(_, a) => *a,
            Self::Pending(_)
            | Self::AutoApproved(_)
            | Self::BreakGlass(_)
            | Self::ExtensionPending(_) => None,
        }
    }
}

/// Escapes text for Slack's mrkdwn so user input cannot ping `<!channel>`,
/// forge links or break formatting.
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The console page of request `id`, on this server.
pub fn link_path(id: &crate::domain::RequestId) -> String {
    format!("/ui/requests/{id}")
}

/// The Slack-compatible message for a notice, linking to the console under
/// `base` (the public URL, without a trailing slash) when given.
pub fn message(notice: &Notice<'_>, base: Option<&str>) -> Value {
    let r = notice.request();
    let who = slack_escape(r.requester_id().as_str());
    let role = slack_escape(r.role_arn.name());
    let approvals = format!("{}/{}", r.approvals.len(), r.approvals_required);
    let by = notice.actor().map(|a| slack_escape(&a.to_string()));
    let by_name = by.clone().unwrap_or_default();
    let path = link_path(&r.id);
    let link = base.map(|b| format!("{b}{path}"));
    let mut text = match notice {
        Notice::Pending(_) => format!(
            "{who} asks for {role} for {}: needs {} approval(s)",
            r.duration, r.approvals_required
        ),
        Notice::AutoApproved(_) => {
            format!(
                "{who} was granted {role} for {} (auto-approved)",
                r.duration
            )
        }
        Notice::Approved(..) if r.status == crate::domain::Status::Active => {
            format!(
                "{by_name} approved {who}'s request for {role}: access granted for {}",
                r.duration
            )
        }
        Notice::Approved(..) => {
            format!("{by_name} approved {who}'s request for {role} ({approvals} approvals)")
        }
        Notice::Denied(..) => format!("{by_name} denied {who}'s request for {role}"),
        Notice::Revoked(..) => format!("{by_name} revoked {who}'s access to {role}"),
        Notice::BreakGlass(_) => format!(
            ":rotating_light: {who} broke glass: {role} for {} without approval; it needs a review",
            r.duration
        ),
        Notice::ExtensionPending(_) => {
            let (more, need) = r
                .pending_extension
                .as_ref()
                .map_or((String::new(), 0), |e| {
                    (
                        crate::domain::format_seconds(u64::from(e.seconds)),
                        e.approvals_required,
                    )
                });
            format!("{who} asks to extend {role} by {more}: needs {need} approval(s)")
        }
        Notice::Extended(..) => {
            let end = r.window_end.map(|e| e.to_rfc3339()).unwrap_or_default();
            match notice.actor() {
                Some(_) => format!("{by_name} extended {who}'s access to {role} until {end}"),
                None => {
                    format!("{who}'s access to {role} was extended until {end} (auto-approved)")
                }
            }
        }
        Notice::ExtensionDenied(..) => {
            format!("{by_name} denied extending {who}'s access to {role}; it ends as before")
        }
        Notice::Reviewed(..) => {
            let outcome = r.break_glass.as_ref().map_or("", |b| b.review.as_str());
            format!("{by_name} reviewed {who}'s break-glass use of {role}: {outcome}")
        }
    };
    if let Some(link) = &link {
        // Slack's link syntax; the URL is ours and the id a ULID, so nothing to escape.
        text.push_str(&format!(" <{link}|Open in Tollgate>"));
    }
    let mut fields = vec![
        field("Request", &r.id.to_string(), true),
        field("Status", r.status.as_str(), true),
        field("Requester", r.requester_id().as_str(), true),
        field("Duration", &r.duration.to_string(), true),
        field("Role", r.role_arn.as_str(), false),
        field("Reason", r.reason.as_str(), false),
        field("Approvals", &approvals, true),
    ];
    if let Some(t) = &r.ticket {
        fields.push(field("Ticket", t.as_str(), true));
    }
    if let Some(end) = r.window_end {
        fields.push(field("Window ends", &end.to_rfc3339(), true));
    }
    if let Some(reason) = &r.closed_reason {
        fields.push(field("Because", reason.as_str(), false));
    }
    if let Some(start) = r.starts_at {
        fields.push(field("Starts", &start.to_rfc3339(), true));
    }
    if let Some(ext) = &r.pending_extension {
        fields.push(field(
            "Extension",
            &format!(
                "+{}: {}",
                crate::domain::format_seconds(u64::from(ext.seconds)),
                ext.reason
            ),
            false,
        ));
    }
    if let Some(bg) = &r.break_glass {
        fields.push(field("Break-glass review", bg.review.as_str(), true));
    }
    json!({
        "text": text,
        "attachments": [{
            "color": match notice {
                Notice::Pending(_) | Notice::ExtensionPending(_) => "#d4a017",
                Notice::AutoApproved(_) | Notice::Approved(..) | Notice::Extended(..) => "#2eb67d",
                Notice::Denied(..)
                | Notice::Revoked(..)
                | Notice::ExtensionDenied(..)
                | Notice::BreakGlass(_)
                | Notice::Reviewed(..) => "#e01e5a",
            },
            "fields": fields,
        }],
        "tollgate": {
            "event": notice.event(),
            "request_id": r.id,
            "status": r.status,
            "role_arn": r.role_arn,
            "requester": r.requester_id(),
            "actor": notice.actor().map(ToString::to_string),
            "duration_seconds": r.duration.seconds(),
            "approvals": r.approvals.len(),
            "approvals_required": r.approvals_required,
            "window_end": r.window_end,
            "digest": r.digest,
            "starts_at": r.starts_at,
            "extension": r.pending_extension.as_ref().map(|e| json!({
                "number": e.number,
                "seconds": e.seconds,
                "digest": e.digest,
                "approvals": e.approvals.len(),
                "approvals_required": e.approvals_required,
            })),
            "break_glass": r.break_glass.as_ref().map(|b| b.review.as_str()),
            "link_path": path,
            "link": link,
        },
    })
}

fn field(title: &str, value: &str, short: bool) -> Value {
    json!({ "title": title, "value": slack_escape(value), "short": short })
}

/// `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &SecretString, timestamp: i64, body: &[u8]) -> String {
    let tag = hmac_sha256(
        secret.expose_secret().as_bytes(),
        &[timestamp.to_string().as_bytes(), b".", body],
    );
    format!("v1={}", hex::encode(tag))
}

/// Why the notifier could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NotifyConfigError {
    /// A URL is not `https://` (or `http://` to a loopback address).
    #[error("webhook URL {0} must be https (http only to localhost)")]
    Insecure(String),
    /// A URL does not parse.
    #[error("webhook URL number {0} is not a URL")]
    Unparsable(usize),
    /// The HTTP client could not be built.
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(String),
}

/// How one notification went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifyReport {
    /// Webhooks that answered 2xx.
    pub delivered: usize,
    /// Webhooks that failed, answered non-2xx, or ran out of time.
    pub failed: usize,
}

/// Sends notifications to the configured webhooks. Cheap to clone.
#[derive(Clone, Default)]
pub struct Notifier {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    client: reqwest::Client,
    urls: Vec<(reqwest::Url, String)>,
    secret: Option<SecretString>,
    budget: Duration,
    link_base: Option<String>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.inner.as_ref().map_or(0, |i| i.urls.len());
        write!(f, "Notifier({n} webhooks)")
    }
}

impl Notifier {
    /// A notifier that sends nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// A notifier for `urls`, signing with `secret` when given, within `budget`.
    pub fn new(
        urls: &[SecretString],
        secret: Option<SecretString>,
        budget: Duration,
    ) -> Result<Self, NotifyConfigError> {
        if urls.is_empty() {
            return Ok(Self::disabled());
        }
        let mut parsed = Vec::new();
        for (i, u) in urls.iter().enumerate() {
            let url = reqwest::Url::parse(u.expose_secret().trim())
                .map_err(|_| NotifyConfigError::Unparsable(i + 1))?;
            let shown = redact(&url);
            let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
            match url.scheme() {
                "https" => {}
                "http" if loopback => {}
                _ => return Err(NotifyConfigError::Insecure(shown)),
            }
            parsed.push((url, shown));
        }
        if secret.is_none() {
            tracing::warn!(
                "webhooks are configured without a signing secret; receivers cannot verify them"
            );
        }
        let client = reqwest::Client::builder()
            .connect_timeout(budget.min(Duration::from_secs(1)))
            .timeout(budget)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tollgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyConfigError::Client(e.to_string()))?;
        Ok(Self {
            inner: Some(Arc::new(Inner {
                client,
                urls: parsed,
                secret,
                budget,
                link_base: None,
            })),
        })
    }

    /// Links messages to the console under `base` (the public URL).
    #[must_use]
    pub fn with_links(mut self, base: Option<String>) -> Self {
        if let Some(inner) = self.inner.as_mut().and_then(Arc::get_mut) {
            inner.link_base = base.map(|b| b.trim_end_matches('/').to_owned());
        }
        self
    }

    /// Whether any webhook is configured.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Sends `notice` to every webhook at once and returns within the
    /// budget, whatever the webhooks do.
    pub async fn notify(&self, notice: Notice<'_>) -> NotifyReport {
        let Some(inner) = &self.inner else {
            return NotifyReport::default();
        };
        let body = bytes::Bytes::from(message(&notice, inner.link_base.as_deref()).to_string());
        let timestamp = crate::domain::Timestamp::now().unix();
        let signature = inner
            .secret
            .as_ref()
            .map(|s| signature(s, timestamp, &body));
        let mut tasks = tokio::task::JoinSet::new();
        for (url, shown) in &inner.urls {
            let mut req = inner
                .client
                .post(url.clone())
                .header(http::header::CONTENT_TYPE, "application/json")
                .header("X-Tollgate-Timestamp", timestamp.to_string())
                .body(body.clone());
            if let Some(sig) = &signature {
                req = req.header("X-Tollgate-Signature", sig.clone());
            }
            let shown = shown.clone();
            tasks.spawn(async move {
                match req.send().await {
                    Ok(resp) if resp.status().is_success() => true,
                    Ok(resp) => {
                        tracing::warn!(webhook = %shown, status = resp.status().as_u16(), "webhook refused the notification");
                        false
                    }
                    Err(e) => {
                        // reqwest's error text may contain the URL; log only its kind.
                        let kind = if e.is_timeout() {
                            "timeout"
                        } else if e.is_connect() {
                            "connect"
                        } else {
                            "request"
                        };
                        tracing::warn!(webhook = %shown, error = kind, "webhook failed");
                        false
                    }
                }
            });
        }
        let total = inner.urls.len();
        let mut report = NotifyReport::default();
        let collect = async {
            while let Some(done) = tasks.join_next().await {
                if matches!(done, Ok(true)) {
                    report.delivered += 1;
                } else {
                    report.failed += 1;
                }
            }
        };
        if tokio::time::timeout(inner.budget, collect).await.is_err() {
            tracing::warn!(
                event = notice.event(),
                "webhooks ran out of time; abandoning the rest"
            );
        }
        // Dropping the set aborts anything still running.
        report.failed = total - report.delivered;
        tracing::info!(
            event = notice.event(),
            delivered = report.delivered,
            failed = report.failed,
            "notification sent"
        );
        report
    }
}

/// `scheme://host/…`: enough to tell webhooks apart in logs, never the path
/// or query, which may carry a token.
fn redact(url: &reqwest::Url) -> String {
    format!("{}://{}/…", url.scheme(), url.host_str().unwrap_or("?"))
}

#[cfg(test)]
mod tests;

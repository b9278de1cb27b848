//! Console sign-in: credentials minted for a grant are exchanged at the AWS
//! federation endpoint of the role's partition (`getSigninToken`) for a
//! sign-in token, which makes a one-time URL to the AWS Management Console.
//!
//! The URL signs its holder in as the grant's session: it is a bearer
//! secret. It is returned as a [`SecretString`], never logged or stored, and
//! no error carries it, the credentials or the token (reqwest's errors are
//! stripped of their URL, whose query holds the session).

use super::{AwsError, IssuedCredentials};
use crate::domain::{RoleArn, ValidationError, quote};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// How long AWS accepts a sign-in token after it was issued: 15 minutes.
pub const SIGN_IN_TOKEN_SECONDS: i64 = 900;
/// Time allowed to connect to the federation endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for the whole `getSigninToken` call.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest destination accepted.
const MAX_DESTINATION_CHARS: usize = 2048;
/// The largest `getSigninToken` answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Where a partition signs people in to its console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// `aws`, `aws-us-gov` or `aws-cn`.
    pub name: &'static str,
    /// The federation endpoint.
    pub federation: &'static str,
    /// The console's host; destinations must be on it or under it.
    pub console_host: &'static str,
    /// Whether the console has regional hosts (`<region>.<console host>`).
    pub regional_hosts: bool,
    /// The region whose console home is the default destination when the
    /// broker's own region is in another partition.
    pub default_region: &'static str,
}

/// The partitions whose roles can be brokered.
pub const PARTITIONS: [Partition; 3] = [
    Partition {
        name: "aws",
        federation: "https://signin.aws.amazon.com/federation",
        console_host: "console.aws.amazon.com",
        regional_hosts: true,
        default_region: "us-east-1",
    },
    Partition {
        name: "aws-us-gov",
        federation: "https://signin.amazonaws-us-gov.com/federation",
        console_host: "console.amazonaws-us-gov.com",
        regional_hosts: false,
        default_region: "us-gov-west-1",
    },
    Partition {
        name: "aws-cn",
        federation: "https://signin.amazonaws.cn/federation",
        console_host: "console.amazonaws.cn",
        regional_hosts: false,
        default_region: "cn-north-1",
    },
];

impl Partition {
    /// The partition of `role`.
    pub fn of(role: &RoleArn) -> Option<&'static Partition> {
        PARTITIONS.iter().find(|p| p.name == role.partition())
    }

    /// The partition a region belongs to, by its name.
    fn holds_region(&self, region: &str) -> bool {
        match self.name {
            "aws-cn" => region.starts_with("cn-"),
            "aws-us-gov" => region.starts_with("us-gov-"),
            _ => !region.starts_with("cn-") && !region.starts_with("us-gov-"),
        }
    }

    /// The console home of `region`.
    pub fn console_home(&self, region: &str) -> String {
        if self.regional_hosts {
            format!(
                "https://{region}.{}/console/home?region={region}",
                self.console_host
            )
        } else {
            format!("https://{}/console/home?region={region}", self.console_host)
        }
    }

    /// Whether `url` is a page of this partition's console: https, on its
    /// host or under it, without user information.
    fn is_console_page(&self, url: &reqwest::Url) -> bool {
        let host_ok = url.host_str().is_some_and(|h| {
            let h = h.to_ascii_lowercase();
            h == self.console_host || h.ends_with(&format!(".{}", self.console_host))
        });
        url.scheme() == "https"
            && host_ok
            && url.username().is_empty()
            && url.password().is_none()
            && url.port().is_none()
    }
}

/// Exchanges credentials for console sign-in URLs. Cheap to clone; build
/// once per cold start.
#[derive(Clone, Debug)]
pub struct Federation {
    http: reqwest::Client,
    endpoint: Option<reqwest::Url>,
    region: Option<String>,
    issuer: String,
}

impl Federation {
    /// A federation client. `endpoint` replaces every partition's
    /// federation endpoint (`TOLLGATE_FEDERATION_ENDPOINT`: tests and the
    /// demo); `region` is the broker's, whose console home is the default
    /// destination; `issuer` is where the console sends people whose
    /// session ended (the broker's console, or its name).
    pub fn new(
        endpoint: Option<&str>,
        region: Option<&str>,
        issuer: impl Into<String>,
    ) -> Result<Self, String> {
        let endpoint = endpoint
            .map(|e| {
                reqwest::Url::parse(e)
                    .map_err(|_| "the federation endpoint is not a URL".to_owned())
            })
            .transpose()?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tollgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the federation HTTP client: {e}"))?;
        Ok(Self {
            http,
            endpoint,
            region: region.map(str::to_owned),
            issuer: issuer.into(),
        })
    }

    /// Where the sign-in lands: `asked` when it is a page of the role's
    /// partition's console, else (when absent) the console home of the
    /// broker's region (or the partition's first region when the broker's
    /// is elsewhere). Anything else is refused: the URL is followed with the
    /// grant's session.
    pub fn destination(
        &self,
        role: &RoleArn,
        asked: Option<&str>,
    ) -> Result<reqwest::Url, ValidationError> {
        let partition = Partition::of(role).ok_or_else(|| {
            ValidationError::new(
                "role_arn",
                format!("partition `{}` has no console sign-in", role.partition()),
            )
        })?;
        let Some(asked) = asked else {
            let region = self
                .region
                .as_deref()
                .filter(|r| partition.holds_region(r))
                .unwrap_or(partition.default_region);
            return reqwest::Url::parse(&partition.console_home(region))
                .map_err(|_| ValidationError::new("destination", "the console home is not a URL"));
        };
        let refuse = || {
            ValidationError::new(
                "destination",
                format!(
                    "destination {} is not an https page of the AWS console (`https://{}/...` or a host under it)",
                    quote(asked),
                    partition.console_host
                ),
            )
        };
        if asked.chars().count() > MAX_DESTINATION_CHARS {
            return Err(refuse());
        }
        let url = reqwest::Url::parse(asked).map_err(|_| refuse())?;
        if partition.is_console_page(&url) {
            Ok(url)
        } else {
            Err(refuse())
        }
    }

    /// The federation endpoint for `role`.
    fn endpoint(&self, role: &RoleArn) -> Result<reqwest::Url, AwsError> {
        if let Some(e) = &self.endpoint {
            return Ok(e.clone());
        }
        let partition = Partition::of(role)
            .ok_or_else(|| AwsError::Corrupt(format!("no partition `{}`", role.partition())))?;
        reqwest::Url::parse(partition.federation)
            .map_err(|_| AwsError::Corrupt("a federation endpoint is not a URL".into()))
    }

    /// Asks the federation endpoint for a sign-in token for `creds` and
    /// builds the sign-in URL that lands on `destination`. One HTTPS call.
    ///
    /// No `SessionDuration` is sent: the credentials come from role chaining
    /// (the broker runs under a role), for which AWS refuses it; the console
    /// session then lasts as long as the credentials, which the plan caps
    /// at the grant (and the session policy cuts off at its end).
    #[tracing::instrument(skip_all, fields(role = %role))]
    pub async fn sign_in_url(
        &self,
        role: &RoleArn,
        creds: &IssuedCredentials,
        destination: &reqwest::Url,
    ) -> Result<SecretString, AwsError> {
        let endpoint = self.endpoint(role)?;
        let mut ask = endpoint.clone();
        {
            let session = serde_json::json!({
                "sessionId": creds.access_key_id,
                "sessionKey": creds.secret_access_key.expose_secret(),
                "sessionToken": creds.session_token.expose_secret(),
            })
            .to_string();
            ask.query_pairs_mut()
                .append_pair("Action", "getSigninToken")
                .append_pair("Session", &session);
        }
        let token = self.signin_token(ask).await?;
        let mut url = endpoint;
        url.query_pairs_mut()
            .append_pair("Action", "login")
            .append_pair("Issuer", &self.issuer)
            .append_pair("Destination", destination.as_str())
            .append_pair("SigninToken", token.expose_secret());
        Ok(SecretString::from(String::from(url)))
    }

    /// `GET <endpoint>?Action=getSigninToken...`: the token, or an error
    /// that carries neither the URL nor the answer.
    async fn signin_token(&self, ask: reqwest::Url) -> Result<SecretString, AwsError> {
        let failed = |e: reqwest::Error| {
            let e = e.without_url();
            if e.is_timeout() || e.is_connect() || e.is_request() || e.is_body() {
                AwsError::Unavailable(Box::new(e))
            } else {
                AwsError::Rejected {
                    operation: "getSigninToken",
                    source: Box::new(e),
                }
            }
        };
        let mut resp = self.http.get(ask).send().await.map_err(failed)?;
        let status = resp.status();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(AwsError::Corrupt(
                    "the federation endpoint's answer is too large".into(),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(AwsError::Unavailable(
                format!("the federation endpoint answered HTTP {}", status.as_u16()).into(),
            ));
        }
        if !status.is_success() {
            // The body is not shown: it may echo what was sent.
            return Err(AwsError::Rejected {
                operation: "getSigninToken",
                source: format!("HTTP {}", status.as_u16()).into(),
            });
        }
        let token = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("SigninToken")?.as_str().map(str::to_owned))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                AwsError::Corrupt("the federation endpoint answered without a sign-in token".into())
            })?;
        Ok(SecretString::from(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(partition: &str) -> RoleArn {
        RoleArn::parse(&format!(
            "arn:{partition}:iam::444455556666:role/tollgate/Ops"
        ))
        .unwrap()
    }

    fn federation(region: Option<&str>) -> Federation {
        Federation::new(None, region, "https://tollgate.example.com/ui/").unwrap()
    }

    #[test]
    fn each_partition_has_its_endpoint_and_console_home() {
        let f = federation(Some("eu-west-1"));
        let cases = [
            (
                "aws",
                "https://signin.aws.amazon.com/federation",
                "https://eu-west-1.console.aws.amazon.com/console/home?region=eu-west-1",
            ),
            (
                "aws-us-gov",
                "https://signin.amazonaws-us-gov.com/federation",
                "https://console.amazonaws-us-gov.com/console/home?region=us-gov-west-1",
            ),
            (
                "aws-cn",
                "https://signin.amazonaws.cn/federation",
                "https://console.amazonaws.cn/console/home?region=cn-north-1",
            ),
        ];
        for (partition, endpoint, home) in cases {
            let r = role(partition);
            assert_eq!(f.endpoint(&r).unwrap().as_str(), endpoint, "{partition}");
            assert_eq!(
                f.destination(&r, None).unwrap().as_str(),
                home,
                "{partition}"
            );
        }
        // A broker in a GovCloud region lands GovCloud roles in its region.
        let gov = federation(Some("us-gov-east-1"));
        assert_eq!(
            gov.destination(&role("aws-us-gov"), None).unwrap().as_str(),
            "https://console.amazonaws-us-gov.com/console/home?region=us-gov-east-1"
        );
        let local = Federation::new(Some("http://127.0.0.1:9/federation"), None, "t").unwrap();
        assert_eq!(
            local.endpoint(&role("aws-cn")).unwrap().as_str(),
            "http://127.0.0.1:9/federation"
        );
    }

    #[test]
    fn a_destination_must_be_an_https_page_of_the_roles_console() {
        let f = federation(Some("us-east-1"));
        let ok = [
            ("aws", "https://console.aws.amazon.com/s3/home"),
            (
                "aws",
                "https://us-west-2.console.aws.amazon.com/ec2/home?region=us-west-2#Instances:",
            ),
            ("aws-cn", "https://console.amazonaws.cn/iam/home"),
        ];
        for (partition, url) in ok {
            assert_eq!(
                f.destination(&role(partition), Some(url)).unwrap().as_str(),
                url
            );
        }
        let refused = [
            ("aws", "http://console.aws.amazon.com/"),
            ("aws", "https://evil.example.com/console.aws.amazon.com"),
            ("aws", "https://console.aws.amazon.com.evil.example.com/"),
            ("aws", "https://notconsole.aws.amazon.com/"),
            ("aws", "https://user@console.aws.amazon.com/"),
            ("aws", "https://console.aws.amazon.com:8443/"),
            ("aws", "javascript:alert(1)"),
            ("aws", "console.aws.amazon.com/s3"),
            ("aws-cn", "https://console.aws.amazon.com/"),
        ];
        for (partition, url) in refused {
            let err = f.destination(&role(partition), Some(url)).unwrap_err();
            assert_eq!(err.field, "destination", "{url}");
        }
        let long = format!("https://console.aws.amazon.com/{}", "a".repeat(2048));
        assert!(f.destination(&role("aws"), Some(&long)).is_err());
    }
}

//! IAM role ARNs: the only kind of resource Tollgate grants.

use super::{ValidationError, quote};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Partitions an IAM role ARN may name.
const PARTITIONS: &[&str] = &[
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];

/// A validated IAM role ARN: `arn:<partition>:iam::<12 digits>:role/<path><name>`.
/// No wildcards; name and path follow IAM's character and length rules.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleArn {
    arn: String,
    // Byte offsets into `arn`, fixed at parse time.
    partition_end: usize,
    account_start: usize,
    path_start: usize,
    name_start: usize,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

impl RoleArn {
    /// Parses and validates a role ARN.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let bad = |why: &str| {
            ValidationError::new(
                "role_arn",
                format!("{} is not a role ARN: {why}", quote(input)),
            )
        };
        if input.len() > 2048 {
            return Err(bad("longer than 2048 characters"));
        }
        let mut parts = input.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return Err(bad("expected arn:<partition>:iam::<account>:role/<name>"));
        };
        if !PARTITIONS.contains(&partition) {
            return Err(bad("unknown partition"));
        }
        if service != "iam" {
            return Err(bad("not an IAM ARN"));
        }
        if !region.is_empty() {
            return Err(bad("IAM ARNs have no region"));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the account id must be 12 digits"));
        }
        let Some(path_and_name) = resource.strip_prefix("role/") else {
            return Err(bad("not a role"));
        };
        let (path, name) = match path_and_name.rfind('/') {
            Some(i) => (&path_and_name[..=i], &path_and_name[i + 1..]),
            None => ("", path_and_name),
        };
        if name.is_empty() || name.chars().count() > 64 || !name.chars().all(is_name_char) {
            return Err(bad("the role name must be 1-64 of A-Z a-z 0-9 _+=,.@-"));
        }
        // IAM paths: `/` or `/segment/.../`, printable ASCII, at most 512.
        let full_path = format!("/{path}");
        if full_path.len() > 512
            || full_path.contains("//")
            || !full_path
                .chars()
                .all(|c| ('\u{21}'..='\u{7e}').contains(&c))
        {
            return Err(bad("invalid role path"));
        }
        if input.contains('*') || input.contains('?') {
            return Err(bad("wildcards are not allowed"));
        }
        let partition_end = 4 + partition.len();
        let account_start = partition_end + ":iam::".len();
        let path_start = account_start + 12 + ":role".len();
        let name_start = input.len() - name.len();
        Ok(Self {
            arn: input.to_owned(),
            partition_end,
            account_start,
            path_start,
            name_start,
        })
    }

    /// The full ARN.
    pub fn as_str(&self) -> &str {
        &self.arn
    }

    /// `aws`, `aws-cn`, ...
    pub fn partition(&self) -> &str {
        &self.arn[4..self.partition_end]
    }

    /// The 12-digit account id.
    pub fn account(&self) -> &str {
        &self.arn[self.account_start..self.account_start + 12]
    }

    /// The role name (what IAM's APIs take).
    pub fn name(&self) -> &str {
        &self.arn[self.name_start..]
    }

    /// The IAM path, `/` when none: always starts and ends with `/`.
    pub fn path(&self) -> &str {
        &self.arn[self.path_start..self.name_start]
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

impl Serialize for RoleArn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.arn)
    }
}

impl<'de> Deserialize<'de> for RoleArn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_roles_in_every_partition_with_and_without_paths() {
        let cases = [
            ("arn:aws:iam::123456789012:role/Admin", "aws", "/", "Admin"),
            ("arn:aws-cn:iam::123456789012:role/a", "aws-cn", "/", "a"),
            (
                "arn:aws-us-gov:iam::123456789012:role/ops/prod/Deploy",
                "aws-us-gov",
                "/ops/prod/",
                "Deploy",
            ),
            (
                "arn:aws:iam::000000000000:role/tollgate/Data.Reader@x_1+=,-",
                "aws",
                "/tollgate/",
                "Data.Reader@x_1+=,-",
            ),
        ];
        for (input, partition, path, name) in cases {
            let arn = RoleArn::parse(input).unwrap();
            assert_eq!(arn.partition(), partition, "{input}");
            assert_eq!(arn.path(), path, "{input}");
            assert_eq!(arn.name(), name, "{input}");
            assert_eq!(arn.account(), &input[input.find("::").unwrap() + 2..][..12]);
            assert_eq!(arn.as_str(), input);
        }
    }

    #[test]
    fn refuses_everything_that_is_not_a_concrete_role() {
        let long_name = format!("arn:aws:iam::123456789012:role/{}", "a".repeat(65));
        let bad = [
            "",
            "arn:aws:iam::123456789012:role/*",
            "arn:aws:iam::123456789012:role/Admin*",
            "arn:aws:iam::123456789012:role/ops/*/Admin",
            "arn:aws:iam::12345678901:role/Admin",
            "arn:aws:iam::1234567890123:role/Admin",
            "arn:aws:iam::12345678901a:role/Admin",
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/ops/",
            "arn:aws:iam::123456789012:role//Admin",
            "arn:aws:iam:us-east-1:123456789012:role/Admin",
            "arn:aws:sts::123456789012:role/Admin",
            "arn:aws-mars:iam::123456789012:role/Admin",
            "arn:aws:iam::123456789012:role/Ad min",
            "arn:aws:iam::123456789012:role/Admin\n",
            "arn:aws:iam::123456789012:role/ops path/Admin",
            "role/Admin",
            &long_name,
        ];
        for input in bad {
            assert!(RoleArn::parse(input).is_err(), "{input:?} was accepted");
        }
    }

    #[test]
    fn serde_refuses_invalid_arns() {
        let ok: Result<RoleArn, _> = serde_json::from_str("\"arn:aws:iam::123456789012:role/A\"");
        assert!(ok.is_ok());
        let bad: Result<RoleArn, _> = serde_json::from_str("\"arn:aws:iam::123456789012:role/*\"");
        assert!(bad.is_err());
    }
}

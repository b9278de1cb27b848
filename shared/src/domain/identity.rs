//! Who is asking (a verified identity) and what they ask for (a role as IAM
//! describes it): the two inputs every policy decision is made over.

use super::{RoleArn, UserId, ValidationError, quote};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A caller whose token has been verified, reduced to what policies may read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The token's subject.
    pub sub: UserId,
    /// Groups from the configured groups claim.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Configured attribute claims (department, clearance, ...), as strings.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Whether the token's `amr` shows multi-factor authentication.
    #[serde(default)]
    pub mfa: bool,
}

/// A target role as IAM describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleInfo {
    /// The role's ARN.
    pub arn: RoleArn,
    /// IAM's unique role id (`AROA...`), used in `aws:userid` for revocation.
    pub role_id: String,
    /// The role's maximum session duration in seconds (3600-43200).
    pub max_session_seconds: u32,
    /// The role's IAM tags.
    pub tags: BTreeMap<String, String>,
}

impl RoleInfo {
    /// Tag naming how many distinct approvals a request needs.
    pub const APPROVALS_TAG: &'static str = "tollgate:approvals";
    /// Tag capping grant duration for this role, in seconds or `2h` form.
    pub const MAX_DURATION_TAG: &'static str = "tollgate:max-duration";

    /// Approvals required: the `tollgate:approvals` tag (1-5), 1 when absent.
    /// A tag that does not parse is a misconfigured role: requests for it are
    /// refused rather than guessed at.
    pub fn approvals_required(&self) -> Result<u8, ValidationError> {
        match self.tags.get(Self::APPROVALS_TAG) {
            None => Ok(1),
            Some(v) => match v.trim().parse::<u8>() {
                Ok(n @ 1..=5) => Ok(n),
                _ => Err(ValidationError::new(
                    "role_arn",
                    format!(
                        "the role's `{}` tag {} is not a number from 1 to 5",
                        Self::APPROVALS_TAG,
                        quote(v)
                    ),
                )),
            },
        }
    }

    /// The longest grant for this role: the lesser of the
    /// `tollgate:max-duration` tag and `ceiling`. A tag that does not parse
    /// refuses requests for the role.
    pub fn max_duration_seconds(&self, ceiling: u32) -> Result<u32, ValidationError> {
        match self.tags.get(Self::MAX_DURATION_TAG) {
            None => Ok(ceiling),
            Some(v) => super::duration::parse_seconds(v)
                .map(|tag| u32::try_from(tag).unwrap_or(u32::MAX).min(ceiling))
                .map_err(|_| {
                    ValidationError::new(
                        "role_arn",
                        format!(
                            "the role's `{}` tag {} is not a duration",
                            Self::MAX_DURATION_TAG,
                            quote(v)
                        ),
                    )
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(tags: &[(&str, &str)]) -> RoleInfo {
        RoleInfo {
            arn: RoleArn::parse("arn:aws:iam::123456789012:role/Prod").unwrap(),
            role_id: "AROAEXAMPLE".into(),
            max_session_seconds: 3600,
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    #[test]
    fn approvals_required_defaults_to_one_and_refuses_bad_tags() {
        assert_eq!(role(&[]).approvals_required(), Ok(1));
        assert_eq!(
            role(&[("tollgate:approvals", "2")]).approvals_required(),
            Ok(2)
        );
        assert_eq!(
            role(&[("tollgate:approvals", " 5 ")]).approvals_required(),
            Ok(5)
        );
        for bad in ["0", "6", "two", ""] {
            assert!(
                role(&[("tollgate:approvals", bad)])
                    .approvals_required()
                    .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn max_duration_is_the_lesser_of_tag_and_ceiling() {
        assert_eq!(role(&[]).max_duration_seconds(43_200), Ok(43_200));
        assert_eq!(
            role(&[("tollgate:max-duration", "2h")]).max_duration_seconds(43_200),
            Ok(7200)
        );
        assert_eq!(
            role(&[("tollgate:max-duration", "7200")]).max_duration_seconds(3600),
            Ok(3600)
        );
        assert!(
            role(&[("tollgate:max-duration", "soon")])
                .max_duration_seconds(3600)
                .is_err()
        );
    }
}

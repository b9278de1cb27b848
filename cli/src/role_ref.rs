//! A role as people type it: a full ARN, or a short form the broker's
//! catalogue resolves (`prod/ProductionOperator`: an account alias or id
//! and the role name; or the name alone when only one account has it).
//! Short forms are looked up in `GET /roles`, so they name only roles the
//! caller may request; an ARN is taken as it is, with no extra call.

use crate::client::Client;
use crate::error::{CliError, Exit};
use serde_json::Value;
use std::fmt;
use tollgate::domain::RoleArn;

/// Roles a short form may match before the listing gives up looking.
const MAX_CANDIDATES: usize = 1000;

/// A role named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleRef {
    /// A full role ARN.
    Arn(RoleArn),
    /// `ACCOUNT/NAME` or `NAME`: resolved through the catalogue.
    Short {
        /// An account alias or id, when given.
        account: Option<String>,
        /// The role name.
        name: String,
    },
}

impl RoleRef {
    /// Parses `s`: anything starting `arn:` must be a valid role ARN; else
    /// `ACCOUNT/NAME` or `NAME` with IAM's name characters.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.starts_with("arn:") {
            return RoleArn::parse(s).map(Self::Arn).map_err(|e| e.message);
        }
        let (account, name) = match s.split_once('/') {
            Some((account, name)) => (Some(account), name),
            None => (None, s),
        };
        let name_ok = (1..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
        let account_ok = account.is_none_or(|a| {
            (1..=32).contains(&a.len())
                && a.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        });
        if !name_ok || !account_ok {
            return Err(format!(
                "`{}` is not a role: give its ARN, ACCOUNT/NAME (an account alias or id and \
                 the role name, like prod/ProductionOperator) or the role name alone",
                crate::output::clean(s)
            ));
        }
        Ok(Self::Short {
            account: account.map(str::to_owned),
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for RoleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Arn(arn) => f.write_str(arn.as_str()),
            Self::Short {
                account: Some(a),
                name,
            } => write!(f, "{a}/{name}"),
            Self::Short {
                account: None,
                name,
            } => f.write_str(name),
        }
    }
}

/// `prod/ProductionOperator`: a listed role's short form (its account's
/// alias, else the account id, and its name).
pub fn short_name(role: &Value) -> String {
    let account = role["account_alias"]
        .as_str()
        .or_else(|| role["account"].as_str())
        .unwrap_or("?");
    format!("{account}/{}", role["name"].as_str().unwrap_or("?"))
}

/// Every role the caller may request, optionally in one account and of one
/// name, from every page of `GET /roles`.
pub async fn list_roles(
    client: &Client,
    account: Option<&str>,
    name: Option<&str>,
    max: usize,
) -> Result<Vec<Value>, CliError> {
    let mut items = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = client.roles_page(account, name, next.as_deref()).await?;
        items.extend(page["items"].as_array().into_iter().flatten().cloned());
        next = page["next_token"].as_str().map(str::to_owned);
        if next.is_none() || items.len() >= max {
            return Ok(items);
        }
    }
}

/// The ARN `role` names: itself when an ARN, else the one catalogued role
/// the caller may request that the short form matches. None matching is
/// `unknown_role` (exit 4); several is `ambiguous_role` (exit 2) listing
/// them.
pub async fn resolve(client: &Client, role: &RoleRef) -> Result<RoleArn, CliError> {
    let (account, name) = match role {
        RoleRef::Arn(arn) => return Ok(arn.clone()),
        RoleRef::Short { account, name } => (account.as_deref(), name.as_str()),
    };
    let found = list_roles(client, account, Some(name), MAX_CANDIDATES).await?;
    pick(role, &found)
}

fn pick(role: &RoleRef, found: &[Value]) -> Result<RoleArn, CliError> {
    match found {
        [] => Err(CliError::new(
            Exit::NotFound,
            "unknown_role",
            format!("no role you may request is called `{role}`"),
        )
        .with_hint("`tollgate roles` lists the roles you may request")),
        [one] => {
            let arn = one["role_arn"].as_str().unwrap_or("");
            RoleArn::parse(arn).map_err(|_| {
                CliError::generic(
                    "unexpected_response",
                    "the broker listed a role whose ARN does not parse",
                )
            })
        }
        many => {
            let candidates: Vec<String> = many
                .iter()
                .map(|r| {
                    format!(
                        "{} ({})",
                        crate::output::clean(&short_name(r)),
                        crate::output::clean(r["role_arn"].as_str().unwrap_or(""))
                    )
                })
                .collect();
            Err(CliError::usage(
                "ambiguous_role",
                format!(
                    "`{role}` matches {} roles: {}",
                    many.len(),
                    candidates.join(", ")
                ),
            )
            .with_hint("name the account too, like ACCOUNT/NAME, or give the role's ARN"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arns_short_forms_and_names_parse_and_anything_else_is_refused() {
        let arn = "arn:aws:iam::444455556666:role/tollgate/ProductionOperator";
        assert_eq!(
            RoleRef::parse(arn).unwrap(),
            RoleRef::Arn(RoleArn::parse(arn).unwrap())
        );
        assert_eq!(
            RoleRef::parse(" prod/ProductionOperator ").unwrap(),
            RoleRef::Short {
                account: Some("prod".into()),
                name: "ProductionOperator".into()
            }
        );
        assert_eq!(
            RoleRef::parse("444455556666/DataAnalyst")
                .unwrap()
                .to_string(),
            "444455556666/DataAnalyst"
        );
        assert_eq!(
            RoleRef::parse("StagingDeveloper").unwrap(),
            RoleRef::Short {
                account: None,
                name: "StagingDeveloper".into()
            }
        );
        for bad in [
            "arn:aws:iam::4444:role/X",
            "",
            "prod/",
            "/Name",
            "a/b/c",
            "Prod/Name",
            "name with space",
            "x*",
            &"n".repeat(65),
        ] {
            let e = RoleRef::parse(bad).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
    }

    #[test]
    fn one_match_is_its_arn_none_is_unknown_and_several_list_the_candidates() {
        let role = RoleRef::parse("Ops").unwrap();
        let a = json!({"role_arn": "arn:aws:iam::111122223333:role/tollgate/Ops",
                       "account": "111122223333", "account_alias": "staging", "name": "Ops"});
        let b = json!({"role_arn": "arn:aws:iam::444455556666:role/tollgate/Ops",
                       "account": "444455556666", "account_alias": null, "name": "Ops"});
        assert_eq!(
            pick(&role, std::slice::from_ref(&a)).unwrap().as_str(),
            "arn:aws:iam::111122223333:role/tollgate/Ops"
        );
        let none = pick(&role, &[]).unwrap_err();
        assert_eq!(
            (none.code.as_str(), none.exit),
            ("unknown_role", Exit::NotFound)
        );
        let two = pick(&role, &[a, b]).unwrap_err();
        assert_eq!(
            (two.code.as_str(), two.exit),
            ("ambiguous_role", Exit::Usage)
        );
        assert_eq!(
            two.message,
            "`Ops` matches 2 roles: staging/Ops (arn:aws:iam::111122223333:role/tollgate/Ops), \
             444455556666/Ops (arn:aws:iam::444455556666:role/tollgate/Ops)"
        );
    }
}

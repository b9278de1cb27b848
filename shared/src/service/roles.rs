//! Discovery: every catalogued role the caller may request, with the terms
//! the policies set for them, in pages. Reads the catalogue (the table,
//! cached briefly) and asks the policies; never IAM.

use crate::BrokerError;
use crate::aws::{AccountSettings, Catalogue};
use crate::domain::{Identity, RoleInfo, Timestamp, quote};
use crate::policy::{Discovery, PolicyEngine, Terms, TermsQuery};
use serde::{Deserialize, Serialize};

/// Default page size of a listing.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page size.
pub const MAX_LIMIT: usize = 100;

/// What discovery reads.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// The role catalogue.
    pub catalogue: &'a Catalogue,
    /// The policies.
    pub policy: &'a PolicyEngine,
    /// Target accounts and their aliases.
    pub accounts: &'a AccountSettings,
    /// The ceiling on any grant.
    pub ceiling_seconds: u32,
}

/// Where a page ends: the last role it holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    /// Its account.
    #[serde(rename = "a")]
    pub account: String,
    /// Its name.
    #[serde(rename = "n")]
    pub name: String,
}

/// One listing's question.
#[derive(Debug, Clone)]
pub struct RolesQuery<'a> {
    /// Who asks.
    pub caller: &'a Identity,
    /// From where, when known.
    pub source_ip: Option<&'a str>,
    /// When.
    pub now: Timestamp,
    /// Only this account: an alias or a target account's id.
    pub account: Option<&'a str>,
    /// Only roles of this name (IAM role names ignore case).
    pub name: Option<&'a str>,
    /// After this role (the previous page's end).
    pub after: Option<Position>,
    /// At most this many roles (1 to [`MAX_LIMIT`]).
    pub limit: usize,
}

/// A role the caller may request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discoverable {
    /// The role as the catalogue holds it.
    pub role: RoleInfo,
    /// Its account's alias, if it has one.
    pub account_alias: Option<String>,
    /// The terms on which the caller may request it.
    pub terms: Terms,
}

/// A page of roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolesPage {
    /// The roles, by account and name.
    pub items: Vec<Discoverable>,
    /// Where the next page starts, when there is one.
    pub next: Option<Position>,
}

/// The catalogued roles `q.caller` may request, after `q.after`, at most
/// `q.limit`. An account filter that names no target account is a 400
/// `unknown_account` listing the aliases.
pub async fn requestable(src: Sources<'_>, q: RolesQuery<'_>) -> Result<RolesPage, BrokerError> {
    let account = match q.account {
        None => None,
        Some(name) => Some(src.accounts.account_named(name).ok_or_else(|| {
            let aliases: Vec<&str> = src.accounts.aliases.keys().map(String::as_str).collect();
            BrokerError::InvalidInput {
                code: "unknown_account",
                message: format!(
                    "{} is not a target account{}",
                    quote(name),
                    if aliases.is_empty() {
                        String::new()
                    } else {
                        format!(" or an alias ({})", aliases.join(", "))
                    }
                ),
            }
        })?),
    };
    let roles = src.catalogue.roles().await?;
    let mut discovery = Discovery::new(
        src.policy,
        TermsQuery {
            principal: q.caller,
            now: q.now,
            source_ip: q.source_ip,
            ceiling_seconds: src.ceiling_seconds,
        },
    );
    let limit = q.limit.clamp(1, MAX_LIMIT);
    let mut items = Vec::new();
    let mut more = false;
    for role in roles.iter() {
        let at = (role.arn.account(), role.arn.name());
        if q.after
            .as_ref()
            .is_some_and(|a| at <= (a.account.as_str(), a.name.as_str()))
            || account.is_some_and(|a| a != role.arn.account())
            || q.name
                .is_some_and(|n| !n.eq_ignore_ascii_case(role.arn.name()))
        {
            continue;
        }
        let Some(terms) = discovery.terms(role) else {
            continue;
        };
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(Discoverable {
            account_alias: src.accounts.alias_of(role.arn.account()).map(str::to_owned),
            role: role.clone(),
            terms,
        });
    }
    let next = more
        .then(|| items.last())
        .flatten()
        .map(|d: &Discoverable| Position {
            account: d.role.arn.account().to_owned(),
            name: d.role.arn.name().to_owned(),
        });
    Ok(RolesPage { items, next })
}

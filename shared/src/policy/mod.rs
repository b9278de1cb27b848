//! Cedar policies: the schema, entities and context built from a verified
//! identity and a role, loading and strict validation, `decide` and `explain`.
//!
//! - `schema`: the `Tollgate` Cedar schema every policy is validated against.
//! - `entities`: `Identity`, `RoleInfo` and the query's context as Cedar values.
//! - `load`: reading `*.cedar` files, policy ids, located errors.
//! - `engine`: the loaded, sliced policy set and `decide`.
//! - `decision`: what `decide` returns, for programs (`to_json`) and people (`explain`).
//! - `duration_limit`: the longest grant and what sets it (ceiling, role tag or policy).
//! - `store`: the stored policy document, set versions, and the last good set kept.
//! - `replay`: past creates put again to the set in force and a proposed one.
//! - `reads`: what each policy reads from the context, found at load time.
//! - `terms`: discovery, the terms on which a caller may request a role.

mod decision;
mod duration_limit;
mod engine;
mod entities;
mod load;
mod reads;
pub mod replay;
mod schema;
pub mod store;
mod terms;

pub use decision::{Decision, PolicyRef};
pub use duration_limit::{DurationLimit, LimitSource, longest_allowed};
pub use engine::PolicyEngine;
pub use entities::{Action, Query, QueryContext};
pub use load::{PolicyError, PolicyProblem};
pub use schema::SCHEMA;
pub use store::{ActivePolicies, PolicyDocument};
pub use terms::{AutoApproval, Discovery, Factor, Limit, Terms, TermsQuery};

#[cfg(test)]
mod tests;

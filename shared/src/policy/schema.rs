//! The `Tollgate` Cedar schema and the entity type and action names it
//! declares, parsed once per engine.

use super::entities::Action;
use super::load::PolicyError;
use cedar_policy::{EntityId, EntityTypeName, EntityUid, Schema};
use std::str::FromStr;
use std::sync::LazyLock;

/// The Cedar schema (Cedar schema syntax) every policy is validated against.
pub const SCHEMA: &str = include_str!("schema.cedarschema");

/// [`SCHEMA`], parsed on first use. It is a constant, and parsing it was
/// two thirds of the time taken to load a small policy set (measured while
/// fuzzing `PolicyEngine::from_sources`); a clone is far cheaper.
static PARSED: LazyLock<Result<Schema, String>> = LazyLock::new(|| {
    Schema::from_cedarschema_str(SCHEMA)
        .map(|(schema, _warnings)| schema)
        .map_err(|e| e.to_string())
});

/// [`SCHEMA`], parsed.
pub(crate) fn parse_schema() -> Result<Schema, PolicyError> {
    PARSED.clone().map_err(PolicyError::Internal)
}

/// Entity type names and action uids, parsed once so that building a request
/// never parses a name again.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub user: EntityTypeName,
    pub group: EntityTypeName,
    pub role: EntityTypeName,
    /// Indexed by [`Action::index`].
    pub actions: [EntityUid; Action::ALL.len()],
}

impl Names {
    pub(crate) fn new() -> Result<Self, PolicyError> {
        let ty = |name: &str| {
            EntityTypeName::from_str(name)
                .map_err(|e| PolicyError::Internal(format!("entity type `{name}`: {e}")))
        };
        let action_type = ty("Tollgate::Action")?;
        let actions = Action::ALL.map(|a| {
            EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(a.as_str()))
        });
        Ok(Self {
            user: ty("Tollgate::User")?,
            group: ty("Tollgate::Group")?,
            role: ty("Tollgate::Role")?,
            actions,
        })
    }

    /// The action uid for `action`.
    pub(crate) fn action(&self, action: Action) -> &EntityUid {
        &self.actions[action.index()]
    }

    /// The action whose uid is `uid`, if it is one of ours.
    pub(crate) fn action_of(&self, uid: &EntityUid) -> Option<Action> {
        Action::ALL.into_iter().find(|a| self.action(*a) == uid)
    }
}

//! The loaded policy set, sliced at load time by action, by principal (where a
//! policy's scope names one user or group) and by role (where it names one
//! role), so that `decide` evaluates only the policies that can apply to a
//! query. Built once per cold start; cheap to clone.

use super::decision::{Decision, PolicyRef};
use super::entities::{self, Action, Query};
use super::load::{self, Loaded, PolicyError};
use super::reads::Reads;
use super::schema::{self, Names};
use super::terms::TermsIndex;
use cedar_policy::{
    ActionConstraint, Authorizer, Context, Effect, Entities, EntityUid, Policy, PolicyId,
    PolicySet, PrincipalConstraint, Request, ResourceConstraint, Schema,
};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// Permit and forbid policies kept apart, so one pass over each tells both
/// which permits and which forbids were satisfied (Cedar's own diagnostics
/// name only the side that decided).
#[derive(Default)]
struct Split {
    permits: PolicySet,
    forbids: PolicySet,
}

impl Split {
    fn add(&mut self, policy: &Policy) -> Result<(), String> {
        let set = match policy.effect() {
            Effect::Permit => &mut self.permits,
            Effect::Forbid => &mut self.forbids,
        };
        set.add(policy.clone()).map_err(|e| e.to_string())
    }
}

/// Policies for one principal key, by the role their scope names.
#[derive(Default)]
struct ByRole {
    /// Scope does not name a single role.
    any: Split,
    /// Scope is `resource == Role::"<arn>"` (or `in`), by ARN.
    role: HashMap<String, Split>,
}

impl ByRole {
    fn split(&mut self, role: Option<&str>) -> &mut Split {
        match role {
            Some(arn) => self.role.entry(arn.to_owned()).or_default(),
            None => &mut self.any,
        }
    }
}

/// The policies that can apply to one action, by the principal their scope names.
#[derive(Default)]
struct ActionSlice {
    /// Scope does not name a single user or group.
    any: ByRole,
    /// Scope is `principal == User::"<sub>"` (or `in`), by subject.
    users: HashMap<String, ByRole>,
    /// Scope is `principal in Group::"<name>"`, by group name.
    groups: HashMap<String, ByRole>,
}

/// The principal a policy's scope pins it to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrincipalKey {
    Any,
    User(String),
    Group(String),
}

struct Inner {
    schema: Schema,
    names: Names,
    authorizer: Authorizer,
    loaded: Loaded,
    /// Indexed by `Action::index`.
    slices: Vec<ActionSlice>,
    /// What the `request` and `auto_approve` policies read, for discovery.
    terms: TermsIndex,
}

/// A validated Cedar policy set, ready to decide. `Clone` shares it.
#[derive(Clone)]
pub struct PolicyEngine {
    inner: Arc<Inner>,
}

impl fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("policies", &self.policy_count())
            .field("files", &self.inner.loaded.files.len())
            .finish_non_exhaustive()
    }
}

impl PolicyEngine {
    /// Loads every `*.cedar` file directly in `dir` (sorted by name, not
    /// recursive) and validates the set strictly against [`SCHEMA`](super::SCHEMA).
    /// Any problem in any file refuses the whole set. An empty directory loads
    /// and denies everything.
    pub fn load_dir(dir: &Path) -> Result<Self, PolicyError> {
        let sources = load::read_dir(dir)?;
        let borrowed: Vec<(&str, &str)> = sources
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        Self::from_sources(&borrowed)
    }

    /// Loads policies from `(name, text)` pairs, as [`PolicyEngine::load_dir`]
    /// does from files; `name` is used in error locations and generated ids.
    pub fn from_sources(sources: &[(&str, &str)]) -> Result<Self, PolicyError> {
        let schema = schema::parse_schema()?;
        let names = Names::new()?;
        let loaded = load::load(sources, &schema)?;
        let slices = slice(&loaded, &names)?;
        let terms = terms_index(&loaded, &names);
        Ok(Self {
            inner: Arc::new(Inner {
                schema,
                names,
                authorizer: Authorizer::new(),
                loaded,
                slices,
                terms,
            }),
        })
    }

    /// How many policies are loaded.
    pub fn policy_count(&self) -> usize {
        self.inner.loaded.order.len()
    }

    /// How many files they came from.
    pub fn file_count(&self) -> usize {
        self.inner.loaded.files.len()
    }

    /// Validator warnings (`file:line:col: message`), e.g. a policy that can
    /// never apply, and a note when no policy is loaded at all.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = self.inner.loaded.warnings.clone();
        if self.policy_count() == 0 {
            warnings.push("no policies are loaded: every request will be denied".to_owned());
        }
        warnings
    }

    /// Every loaded policy, in load order (file, then position in the file).
    pub fn policies(&self) -> Vec<PolicyRef> {
        self.inner
            .loaded
            .order
            .iter()
            .map(|id| self.policy_ref(id))
            .collect()
    }

    /// The whole policy set, as validated (for benchmarks and tools).
    pub fn policy_set(&self) -> &PolicySet {
        &self.inner.loaded.set
    }

    /// The parsed schema.
    pub fn schema(&self) -> &Schema {
        &self.inner.schema
    }

    /// Exactly the Cedar request and entities `decide` evaluates for `q`
    /// (for benchmarks and tools that call Cedar directly).
    pub fn cedar_inputs(&self, q: &Query<'_>) -> Result<(Request, Entities), String> {
        entities::cedar_inputs(q, &self.inner.names, None)
    }

    /// The same, checked against the schema: proof that `decide`'s inputs
    /// are well-typed (tests).
    #[cfg(test)]
    pub(crate) fn cedar_inputs_checked(
        &self,
        q: &Query<'_>,
    ) -> Result<(Request, Entities), String> {
        entities::cedar_inputs(q, &self.inner.names, Some(&self.inner.schema))
    }

    /// What the `request` and `auto_approve` policies read (discovery).
    pub(crate) fn terms_index(&self) -> &TermsIndex {
        &self.inner.terms
    }

    fn policy_ref(&self, id: &PolicyId) -> PolicyRef {
        PolicyRef {
            id: id.to_string(),
            description: self
                .inner
                .loaded
                .meta
                .get(id)
                .and_then(|m| m.description.clone()),
        }
    }

    /// The entities of `q` (the principal, the role, the requester), for
    /// [`PolicyEngine::decide_in`].
    pub(crate) fn entities_of(&self, q: &Query<'_>) -> Result<Entities, String> {
        entities::cedar_entities(q, &self.inner.names, None)
    }

    /// The context of `q`, for [`PolicyEngine::decide_in`].
    pub(crate) fn context_of(&self, q: &Query<'_>) -> Result<Context, String> {
        entities::cedar_context(q, &self.inner.names)
    }

    /// Whether some `permit` policy is satisfied for `q` in `context` over
    /// `entities` (as built for `q`), forbids aside: a necessary condition
    /// for `decide` to allow it, at the cost of the permits alone
    /// (discovery rules roles out with it).
    pub(crate) fn some_permit_in(
        &self,
        q: &Query<'_>,
        context: Context,
        entities: &Entities,
    ) -> bool {
        let inner = &*self.inner;
        let Ok(request) = entities::cedar_request(q, &inner.names, context, None) else {
            return false;
        };
        let Some(slice) = inner.slices.get(q.action.index()) else {
            return false;
        };
        splits(slice, q).into_iter().any(|split| {
            !split.permits.is_empty()
                && inner
                    .authorizer
                    .is_authorized(&request, &split.permits, entities)
                    .diagnostics()
                    .reason()
                    .next()
                    .is_some()
        })
    }

    /// Decides `q`: allowed only if some policy permits, none forbids and
    /// every forbid that could apply evaluated without error.
    /// Input that cannot be put to the policies (say a `source_ip` that is not
    /// an address) is denied, with the reason in `errors`.
    pub fn decide(&self, q: &Query<'_>) -> Decision {
        let inputs = self
            .entities_of(q)
            .and_then(|entities| Ok((self.context_of(q)?, entities)));
        match inputs {
            Ok((context, entities)) => self.decide_in(q, context, &entities),
            Err(e) => {
                let mut decision = self.undecided(q);
                decision.errors.push(e);
                decision
            }
        }
    }

    fn undecided(&self, q: &Query<'_>) -> Decision {
        Decision {
            allowed: false,
            action: q.action,
            principal: q.principal.sub.to_string(),
            role: q.role.arn.to_string(),
            permitted_by: Vec::new(),
            forbidden_by: Vec::new(),
            failed_forbids: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// [`PolicyEngine::decide`] with `q`'s context and entities built
    /// already (discovery's probes share them).
    pub(crate) fn decide_in(
        &self,
        q: &Query<'_>,
        context: Context,
        entities: &Entities,
    ) -> Decision {
        let inner = &*self.inner;
        let mut decision = self.undecided(q);
        let request = match entities::cedar_request(q, &inner.names, context, None) {
            Ok(request) => request,
            Err(e) => {
                decision.errors.push(e);
                return decision;
            }
        };
        let Some(slice) = inner.slices.get(q.action.index()) else {
            return decision;
        };
        let splits = splits(slice, q);
        for split in splits {
            for (set, satisfied, forbids) in [
                (&split.forbids, &mut decision.forbidden_by, true),
                (&split.permits, &mut decision.permitted_by, false),
            ] {
                if set.is_empty() {
                    continue;
                }
                let response = inner.authorizer.is_authorized(&request, set, entities);
                // With one effect per set, the reason is exactly the satisfied policies.
                satisfied.extend(
                    response
                        .diagnostics()
                        .reason()
                        .map(|id| self.policy_ref(id)),
                );
                for error in response.diagnostics().errors() {
                    if forbids {
                        let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = error;
                        decision.failed_forbids.push(self.policy_ref(e.policy_id()));
                    }
                    decision.errors.push(error.to_string());
                }
            }
        }
        decision.permitted_by.sort();
        decision.forbidden_by.sort();
        decision.failed_forbids.sort();
        decision.errors.sort();
        // INVARIANT: a forbid that cannot be evaluated denies (fail closed);
        // Cedar alone would skip it and let a permit through.
        decision.allowed = !decision.permitted_by.is_empty()
            && decision.forbidden_by.is_empty()
            && decision.failed_forbids.is_empty();
        decision
    }
}

/// Every bucket of `slice` that can hold a policy applying to `q`'s
/// principal and role.
fn splits<'s>(slice: &'s ActionSlice, q: &Query<'_>) -> Vec<&'s Split> {
    let mut principals: Vec<&ByRole> = Vec::with_capacity(2 + q.principal.groups.len());
    principals.push(&slice.any);
    principals.extend(slice.users.get(q.principal.sub.as_str()));
    let mut seen: Vec<&str> = Vec::with_capacity(q.principal.groups.len());
    for group in &q.principal.groups {
        if !seen.contains(&group.as_str()) {
            seen.push(group);
            principals.extend(slice.groups.get(group.as_str()));
        }
    }
    let arn = q.role.arn.as_str();
    principals
        .into_iter()
        .flat_map(|by_role| [Some(&by_role.any), by_role.role.get(arn)])
        .flatten()
        .collect()
}

/// The ARN a policy's resource scope pins it to, if any.
fn pinned_role(policy: &Policy, names: &Names) -> Option<String> {
    let uid: EntityUid = match policy.resource_constraint() {
        ResourceConstraint::Eq(uid)
        | ResourceConstraint::In(uid)
        | ResourceConstraint::IsIn(_, uid) => uid,
        ResourceConstraint::Any | ResourceConstraint::Is(_) => return None,
    };
    // `resource in Role::"x"` means `resource == Role::"x"` because roles
    // have no parents (see `entities::role_entity`).
    (uid.type_name() == &names.role).then(|| uid.id().unescaped().to_owned())
}

/// The user or group a policy's principal scope pins it to, if any.
fn pinned_principal(policy: &Policy, names: &Names) -> PrincipalKey {
    let uid: EntityUid = match policy.principal_constraint() {
        PrincipalConstraint::Eq(uid)
        | PrincipalConstraint::In(uid)
        | PrincipalConstraint::IsIn(_, uid) => uid,
        PrincipalConstraint::Any | PrincipalConstraint::Is(_) => return PrincipalKey::Any,
    };
    let id = uid.id().unescaped().to_owned();
    // `principal in User::"u"` means `principal == User::"u"` (users are never
    // parents), and `principal in Group::"g"` means "g is one of the
    // principal's groups" (groups have no parents): see `entities::user_entity`.
    if uid.type_name() == &names.user {
        PrincipalKey::User(id)
    } else if uid.type_name() == &names.group {
        PrincipalKey::Group(id)
    } else {
        PrincipalKey::Any
    }
}

/// The actions a policy's scope names.
fn actions_of(policy: &Policy, names: &Names) -> Vec<Action> {
    match policy.action_constraint() {
        ActionConstraint::Any => Action::ALL.to_vec(),
        ActionConstraint::Eq(uid) => names.action_of(&uid).into_iter().collect(),
        // Each action once, however often the list names it: a policy
        // goes into a slice's set once (found by fuzzing; a repeated
        // entry made loading fail with an internal error).
        ActionConstraint::In(uids) => Action::ALL
            .into_iter()
            .filter(|a| uids.iter().any(|u| names.action_of(u) == Some(*a)))
            .collect(),
    }
}

/// What discovery needs to know of the `request` and `auto_approve` policies.
fn terms_index(loaded: &Loaded, names: &Names) -> TermsIndex {
    let mut index = TermsIndex::default();
    for id in &loaded.order {
        let Some(policy) = loaded.set.policy(id) else {
            continue;
        };
        let actions = actions_of(policy, names);
        if !actions.contains(&Action::Request) && !actions.contains(&Action::AutoApprove) {
            continue;
        }
        index.add(
            id.to_string(),
            pinned_principal(policy, names),
            pinned_role(policy, names),
            policy.effect() == Effect::Permit,
            actions.contains(&Action::Request),
            Reads::of(policy),
        );
    }
    index
}

/// Splits the loaded set by action, pinned principal and pinned role.
fn slice(loaded: &Loaded, names: &Names) -> Result<Vec<ActionSlice>, PolicyError> {
    let mut slices: Vec<ActionSlice> = Action::ALL.iter().map(|_| ActionSlice::default()).collect();
    let internal = |e: String| PolicyError::Internal(format!("slicing the policy set: {e}"));
    for id in &loaded.order {
        let Some(policy) = loaded.set.policy(id) else {
            continue;
        };
        let actions = actions_of(policy, names);
        let principal = pinned_principal(policy, names);
        let role = pinned_role(policy, names);
        for action in actions {
            let Some(slice) = slices.get_mut(action.index()) else {
                continue;
            };
            let by_role = match &principal {
                PrincipalKey::Any => &mut slice.any,
                PrincipalKey::User(sub) => slice.users.entry(sub.clone()).or_default(),
                PrincipalKey::Group(name) => slice.groups.entry(name.clone()).or_default(),
            };
            by_role
                .split(role.as_deref())
                .add(policy)
                .map_err(internal)?;
        }
    }
    Ok(slices)
}

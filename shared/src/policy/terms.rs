//! Discovery's terms: for one caller and one role, whether they may request
//! it and on what terms (auto-approved and up to how long, the longest
//! grant, whether a ticket or MFA is needed, how many approvals), derived
//! from the policies themselves.
//!
//! The policies are probed, not interpreted: the same `decide` that
//! `POST /requests` uses is asked a small set of hypothetical questions —
//! with and without a ticket, at durations where some policy's comparison
//! changes (the literals found by [`super::reads`]; bisection when a policy
//! uses the duration otherwise), with MFA, at the hours and weekdays the
//! policies name, from the networks they name. A condition that cannot be
//! resolved ahead of time shows as "depends on" ([`Factor`]). Roles whose
//! decisions cannot differ (equal tags, account, path and maximum session,
//! when no policy looks at the role's name or pins it) are probed once per
//! listing. Probes are questions, not decisions about a request: they are
//! not logged.

use super::engine::PrincipalKey;
use super::entities::weekday_name;
use super::reads::Reads;
use super::{Action, Decision, PolicyEngine, Query, QueryContext};
use crate::domain::{Identity, MIN_DURATION_SECONDS, RoleInfo, Timestamp};
use cedar_policy::{Context, Entities};
use serde::Serialize;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use time::Weekday;

/// The reason probes give.
const PROBE_REASON: &str = "discovery";
/// The ticket probes give when no policy compares tickets with a literal.
const PROBE_TICKET: &str = "TICKET-1";
/// Addresses probed besides the caller's and those in the ranges policies
/// name: documentation addresses, in no real network.
const OUTSIDE_ADDRESSES: [&str; 2] = ["192.0.2.1", "2001:db8::1"];

/// Something a decision depends on that is not known before the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Factor {
    /// The hour of the day (UTC).
    TimeOfDay,
    /// The day of the week (UTC).
    DayOfWeek,
    /// The date: a policy compares `context.now` with a point in time.
    Date,
    /// The address the request comes from.
    SourceIp,
    /// What the reason says.
    Reason,
}

impl Factor {
    /// For people: `time of day`, ...
    pub const fn describe(self) -> &'static str {
        match self {
            Self::TimeOfDay => "time of day",
            Self::DayOfWeek => "day of week",
            Self::Date => "date",
            Self::SourceIp => "source IP",
            Self::Reason => "the reason given",
        }
    }
}

/// What sets the longest grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Limit {
    /// The broker's ceiling (`TOLLGATE_MAX_DURATION`).
    Ceiling,
    /// The role's `tollgate:max-duration` tag.
    RoleTag,
    /// A policy: the one that forbids just above the limit, or stops
    /// permitting there.
    Policy {
        /// Its id.
        policy: String,
    },
}

/// Requests that become active without a human approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AutoApproval {
    /// Up to this duration.
    pub max_duration_seconds: u32,
    /// Only with a ticket.
    pub ticket_required: bool,
}

/// The terms on which a caller may request a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Terms {
    /// Whether a request made now, as the caller is signed in, from where
    /// they are, would be allowed (at a duration up to the longest, with a
    /// ticket when one is required). When false, the terms are those of the
    /// circumstances that allow it: MFA (`mfa_required`), or another time
    /// or network (`depends_on`).
    pub available_now: bool,
    /// The longest grant the policies and hard limits allow.
    pub max_duration_seconds: u32,
    /// What sets it.
    pub max_duration_limit: Limit,
    /// When a ticket allows a longer grant than none: the longest without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_duration_without_ticket_seconds: Option<u32>,
    /// No request without a ticket is allowed.
    pub ticket_required: bool,
    /// No request is allowed without signing in with MFA.
    pub mfa_required: bool,
    /// Whether, and up to how long, requests are approved automatically.
    pub auto_approve: Option<AutoApproval>,
    /// Approvals a request needs when it is not approved automatically.
    pub approvals_required: u8,
    /// What else the decision depends on, sorted.
    pub depends_on: Vec<Factor>,
}

/// Who asks, when and from where: one listing.
#[derive(Debug, Clone, Copy)]
pub struct TermsQuery<'a> {
    /// The caller.
    pub principal: &'a Identity,
    /// Now.
    pub now: Timestamp,
    /// The caller's address, if known.
    pub source_ip: Option<&'a str>,
    /// The broker's ceiling on any grant.
    pub ceiling_seconds: u32,
}

/// What the `request` and `auto_approve` policies of a set read, by policy,
/// with the principal their scope pins them to: computed once when the set
/// loads.
#[derive(Debug, Default)]
pub(crate) struct TermsIndex {
    policies: Vec<Indexed>,
    by_id: HashMap<String, usize>,
    /// Roles some scope names.
    pinned_roles: BTreeSet<String>,
}

#[derive(Debug)]
struct Indexed {
    principal: PrincipalKey,
    permit: bool,
    /// It applies to `request` (else only to `auto_approve`).
    request: bool,
    reads: Reads,
}

impl TermsIndex {
    /// Adds policy `id`.
    pub(crate) fn add(
        &mut self,
        id: String,
        principal: PrincipalKey,
        role: Option<String>,
        permit: bool,
        request: bool,
        reads: Reads,
    ) {
        self.pinned_roles.extend(role);
        self.by_id.insert(id, self.policies.len());
        self.policies.push(Indexed {
            principal,
            permit,
            request,
            reads,
        });
    }

    /// What the policies that can apply to `who` and pass `keep` read.
    fn scoped(&self, who: &Identity, keep: impl Fn(&Indexed) -> bool) -> Reads {
        let mut out = Reads::default();
        for p in &self.policies {
            let applies = match &p.principal {
                PrincipalKey::Any => true,
                PrincipalKey::User(sub) => sub == who.sub.as_str(),
                PrincipalKey::Group(g) => who.groups.iter().any(|mine| mine == g),
            };
            if applies && keep(p) {
                out.merge(p.reads.clone());
            }
        }
        out
    }

    fn reads_of(&self, id: &str) -> Option<&Reads> {
        self.by_id
            .get(id)
            .and_then(|i| self.policies.get(*i))
            .map(|p| &p.reads)
    }
}

/// Roles whose decisions cannot differ share this key: what the policies
/// that can apply to the caller read of a role, and the tags hard limits
/// are read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Shape {
    arn: Option<String>,
    account: Option<String>,
    path: Option<String>,
    max_session_seconds: Option<u32>,
    tags: BTreeMap<String, String>,
}

/// Which circumstances are worth varying.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Dims {
    time: bool,
    ip: bool,
    mfa: bool,
}

impl Dims {
    fn of(reads: &Reads) -> Self {
        Self {
            time: reads.hour.read || reads.weekday.read || reads.now.read,
            ip: reads.source_ip.read,
            mfa: reads.mfa,
        }
    }

    fn union(self, other: Self) -> Self {
        Self {
            time: self.time || other.time,
            ip: self.ip || other.ip,
            mfa: self.mfa || other.mfa,
        }
    }
}

/// Terms for one caller over many roles: the probe points are worked out
/// once from the policies that can apply to the caller, and roles of the
/// same shape are probed once.
pub struct Discovery<'a> {
    engine: &'a PolicyEngine,
    q: TermsQuery<'a>,
    /// What the policies that can apply to the caller read.
    scoped: Reads,
    /// The durations a `request` decision can change at, and whether one
    /// is used otherwise than compared with a literal.
    request_durations: (BTreeSet<i64>, bool),
    /// The same for `request` and `auto_approve` together.
    grant_durations: (BTreeSet<i64>, bool),
    /// What their permits read.
    permit_dims: Dims,
    /// The caller with MFA flipped.
    flipped: Identity,
    ticket: String,
    /// Index 0 is now; then the time-of-day by day-of-week grid, then dates.
    instants: Vec<Instant>,
    /// Index 0 is the caller's.
    ips: Vec<Option<String>>,
    /// Factors flagged without probing (a policy reads them opaquely).
    flagged: Vec<Factor>,
    memo: HashMap<Shape, Option<Terms>>,
    /// Contexts by circumstances and duration: they do not depend on the
    /// role, so every role's probes share them.
    contexts: RefCell<HashMap<(Circ, u32), Option<Context>>>,
}

impl std::fmt::Debug for Discovery<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("instants", &self.instants.len())
            .field("addresses", &self.ips.len())
            .field("shapes", &self.memo.len())
            .finish_non_exhaustive()
    }
}

/// A probe time and where it sits in the grid.
#[derive(Debug, Clone, Copy)]
struct Instant {
    at: Timestamp,
    /// Day offset and hour in the grid, `None` for date probes.
    cell: Option<(u8, u8)>,
}

impl<'a> Discovery<'a> {
    /// Prepares a listing for `q` over `engine`'s policies.
    pub fn new(engine: &'a PolicyEngine, q: TermsQuery<'a>) -> Self {
        let index = engine.terms_index();
        let scoped = index.scoped(q.principal, |_| true);
        let permit_dims = Dims::of(&index.scoped(q.principal, |p| p.permit));
        let request = index.scoped(q.principal, |p| p.request).duration;
        let mut flipped = q.principal.clone();
        flipped.mfa = !flipped.mfa;
        let ticket = scoped
            .ticket
            .literals
            .iter()
            .next()
            .map_or_else(|| PROBE_TICKET.to_owned(), |t| t.replace('*', "1"));
        let mut flagged = Vec::new();
        if scoped.hour.opaque || scoped.now.opaque {
            flagged.push(Factor::TimeOfDay);
        }
        if scoped.weekday.opaque || scoped.now.opaque {
            flagged.push(Factor::DayOfWeek);
        }
        if scoped.now.opaque {
            flagged.push(Factor::Date);
        }
        if scoped.source_ip.opaque {
            flagged.push(Factor::SourceIp);
        }
        if scoped.reason.read {
            flagged.push(Factor::Reason);
        }
        Self {
            engine,
            request_durations: (request.literals, request.opaque),
            grant_durations: (scoped.duration.literals.clone(), scoped.duration.opaque),
            instants: instants(&scoped, q.now),
            ips: addresses(&scoped, q.source_ip),
            q,
            scoped,
            permit_dims,
            flipped,
            ticket,
            flagged,
            memo: HashMap::new(),
            contexts: RefCell::new(HashMap::new()),
        }
    }

    /// The terms on which the caller may request `role`, or `None` when no
    /// probed circumstance lets them (then it is not theirs to discover).
    pub fn terms(&mut self, role: &RoleInfo) -> Option<Terms> {
        let index = self.engine.terms_index();
        let reads = &self.scoped;
        let arn = role.arn.as_str();
        let shape = Shape {
            arn: (reads.role_identity || index.pinned_roles.contains(arn)).then(|| arn.to_owned()),
            account: reads.role_account.then(|| role.arn.account().to_owned()),
            path: reads.role_path.then(|| role.arn.path().to_owned()),
            max_session_seconds: reads.role_max_session.then_some(role.max_session_seconds),
            tags: role
                .tags
                .iter()
                .filter(|(k, _)| {
                    reads.role_tags_opaque
                        || reads.role_tags.contains(k.as_str())
                        || *k == RoleInfo::APPROVALS_TAG
                        || *k == RoleInfo::MAX_DURATION_TAG
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        if let Some(known) = self.memo.get(&shape) {
            return known.clone();
        }
        let terms = self.probe(role);
        self.memo.insert(shape, terms.clone());
        terms
    }

    /// Distinct role shapes probed so far.
    pub fn shapes_probed(&self) -> usize {
        self.memo.len()
    }

    fn probe(&self, role: &RoleInfo) -> Option<Terms> {
        let hard = role.max_duration_seconds(self.q.ceiling_seconds).ok()?;
        let approvals_required = role.approvals_required().ok()?;
        let mut p = Probe {
            d: self,
            role,
            hard,
            entities: None,
            memo: HashMap::new(),
            permits: HashMap::new(),
        };
        p.entities = self
            .engine
            .entities_of(&p.query(Action::Request, Circ::default(), MIN_DURATION_SECONDS))
            .ok();
        let now = Circ::default();
        let mut depends_on = self.flagged.clone();
        let (base, offer, available_now) = match p.offer(now) {
            Some(offer) => (now, offer, true),
            None => p.elsewhere(&mut depends_on)?,
        };
        let chosen = base.ticket(offer.ticket_required);
        // MFA: needed when the caller lacks it and the offer assumes it, or
        // when they have it and nothing is allowed without it.
        let mfa_required = if self.q.principal.mfa {
            self.scoped.mfa
                && !p.holds(
                    Goal::Request,
                    Circ {
                        flip_mfa: true,
                        ..chosen
                    },
                    MIN_DURATION_SECONDS,
                )
        } else {
            base.flip_mfa
        };
        p.depends(chosen, &offer, &mut depends_on);
        depends_on.sort();
        depends_on.dedup();
        let limit = p.limit(&offer, base);
        Some(Terms {
            available_now,
            max_duration_seconds: offer.max,
            max_duration_limit: limit,
            max_duration_without_ticket_seconds: offer.max_without_ticket,
            ticket_required: offer.ticket_required,
            mfa_required,
            auto_approve: offer.auto,
            approvals_required,
            depends_on,
        })
    }

    /// The hour now, in the grid.
    fn now_hour(&self) -> u8 {
        self.instants
            .first()
            .and_then(|i| i.cell)
            .map_or(0, |c| c.1)
    }

    /// What changing instant `at` from now changes: the hour, the day, both,
    /// or the date.
    fn instant_factors(&self, at: usize) -> Vec<Factor> {
        match self.instants.get(at).and_then(|i| i.cell) {
            Some((0, _)) => vec![Factor::TimeOfDay],
            Some((_, hour)) if hour == self.now_hour() => vec![Factor::DayOfWeek],
            Some(_) => vec![Factor::TimeOfDay, Factor::DayOfWeek],
            None => vec![Factor::Date],
        }
    }
}

/// The circumstances of a probe: indexes into the listing's probe points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Circ {
    ticket: bool,
    flip_mfa: bool,
    at: usize,
    ip: usize,
}

impl Circ {
    fn ticket(self, ticket: bool) -> Self {
        Self { ticket, ..self }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Goal {
    /// `request` is allowed.
    Request,
    /// `request` and `auto_approve` are: the request is active at once.
    Grant,
}

/// What one set of circumstances allows.
#[derive(Debug, Clone)]
struct Offer {
    max: u32,
    max_without_ticket: Option<u32>,
    ticket_required: bool,
    auto: Option<AutoApproval>,
}

/// The probing of one role.
struct Probe<'p, 'a> {
    d: &'p Discovery<'a>,
    role: &'p RoleInfo,
    hard: u32,
    /// The role's and the caller's entities, built once (`None` when they
    /// cannot be: then nothing is allowed).
    entities: Option<Entities>,
    /// Decisions, and whether some permit is satisfied, by question.
    memo: HashMap<(Action, Circ, u32), bool>,
    permits: HashMap<(Action, Circ, u32), bool>,
}

impl Probe<'_, '_> {
    fn query(&self, action: Action, c: Circ, duration: u32) -> Query<'_> {
        let d = self.d;
        Query {
            principal: if c.flip_mfa {
                &d.flipped
            } else {
                d.q.principal
            },
            action,
            role: self.role,
            context: QueryContext {
                duration_seconds: duration,
                reason: PROBE_REASON,
                ticket: c.ticket.then_some(d.ticket.as_str()),
                source_ip: d.ips.get(c.ip).and_then(Option::as_deref),
                now: d.instants.get(c.at).map_or(d.q.now, |i| i.at),
                requester: None,
                approvals_so_far: 0,
                // Terms describe a request made now, not a scheduled grant
                // or an extension.
                starts_at: None,
                extension_seconds: None,
            },
        }
    }

    /// The context of a probe, built once per listing.
    fn context(&self, c: Circ, duration: u32) -> Option<Context> {
        let mut contexts = self.d.contexts.borrow_mut();
        contexts
            .entry((c, duration))
            .or_insert_with(|| {
                self.d
                    .engine
                    .context_of(&self.query(Action::Request, c, duration))
                    .ok()
            })
            .clone()
    }

    fn decide(&self, action: Action, c: Circ, duration: u32) -> Decision {
        let q = self.query(action, c, duration);
        match (self.context(c, duration), &self.entities) {
            (Some(context), Some(entities)) => self.d.engine.decide_in(&q, context, entities),
            _ => self.d.engine.decide(&q),
        }
    }

    /// Whether some permit is satisfied (forbids aside): far cheaper than a
    /// decision when permits are few, and most roles are no caller's.
    fn permitted(&mut self, action: Action, c: Circ, duration: u32) -> bool {
        if let Some(known) = self.permits.get(&(action, c, duration)) {
            return *known;
        }
        let permitted = match (self.context(c, duration), &self.entities) {
            (Some(context), Some(entities)) => {
                self.d
                    .engine
                    .some_permit_in(&self.query(action, c, duration), context, entities)
            }
            _ => false,
        };
        self.permits.insert((action, c, duration), permitted);
        permitted
    }

    fn allowed(&mut self, action: Action, c: Circ, duration: u32) -> bool {
        if let Some(known) = self.memo.get(&(action, c, duration)) {
            return *known;
        }
        let allowed =
            self.permitted(action, c, duration) && self.decide(action, c, duration).allowed;
        self.memo.insert((action, c, duration), allowed);
        allowed
    }

    /// Whether `goal` holds: as `POST /requests` decides, `auto_approve` is
    /// only asked once `request` is allowed.
    fn holds(&mut self, goal: Goal, c: Circ, duration: u32) -> bool {
        self.allowed(Action::Request, c, duration)
            && (goal == Goal::Request || self.allowed(Action::AutoApprove, c, duration))
    }

    /// The durations to try for `goal`, up to `hi`. When the policies
    /// compare the duration only with literals, a decision is the same
    /// between two neighbouring literals: one duration per stretch, the
    /// longest (each literal and the second below it, and `hi`), decides
    /// for the stretch. Otherwise every second.
    fn grid(&self, goal: Goal, hi: u32) -> Grid {
        let (literals, opaque) = match goal {
            Goal::Request => &self.d.request_durations,
            Goal::Grant => &self.d.grant_durations,
        };
        if *opaque {
            return Grid::Range(MIN_DURATION_SECONDS, hi);
        }
        let mut points = BTreeSet::from([hi]);
        for c in literals {
            for v in [c.saturating_sub(1), *c] {
                if let Ok(v) = u32::try_from(v)
                    && (MIN_DURATION_SECONDS..=hi).contains(&v)
                {
                    points.insert(v);
                }
            }
        }
        Grid::Points(points.into_iter().collect())
    }

    /// The longest duration up to `hi` at which `goal` holds in `c`. Exact
    /// with literal comparisons; with other uses of the duration, bisection
    /// from the shortest, exact when the durations allowed are one range.
    fn longest(&mut self, goal: Goal, c: Circ, hi: u32) -> Option<u32> {
        if hi < MIN_DURATION_SECONDS {
            return None;
        }
        match self.grid(goal, hi) {
            Grid::Points(points) => points.into_iter().rev().find(|d| self.holds(goal, c, *d)),
            Grid::Range(mut lo, mut top) => {
                if self.holds(goal, c, top) {
                    return Some(top);
                }
                if !self.holds(goal, c, lo) {
                    return None;
                }
                // INVARIANT: `lo` holds and `top` does not.
                while top - lo > 1 {
                    let mid = lo + (top - lo) / 2;
                    if self.holds(goal, c, mid) {
                        lo = mid;
                    } else {
                        top = mid;
                    }
                }
                Some(lo)
            }
        }
    }

    /// What circumstances `base` (its ticket ignored) allow.
    fn offer(&mut self, base: Circ) -> Option<Offer> {
        let tickets_matter = self.d.scoped.ticket.read;
        let without = self.longest(Goal::Request, base.ticket(false), self.hard);
        let with = if tickets_matter {
            self.longest(Goal::Request, base.ticket(true), self.hard)
        } else {
            without
        };
        let (max, ticket_required, max_without_ticket) = match (without, with) {
            (None, None) => return None,
            (Some(n), Some(w)) if w > n => (w, false, Some(n)),
            (Some(n), _) => (n, false, None),
            (None, Some(w)) => (w, true, None),
        };
        let auto_without = match without {
            Some(n) => self.longest(Goal::Grant, base.ticket(false), n),
            None => None,
        };
        let auto_with = match with {
            Some(w) if tickets_matter => self.longest(Goal::Grant, base.ticket(true), w),
            _ => None,
        };
        let auto = match (auto_without, auto_with) {
            (Some(n), Some(w)) if w > n => Some((w, false)),
            (Some(n), _) => Some((n, false)),
            (None, Some(w)) => Some((w, true)),
            (None, None) => None,
        }
        .map(|(max_duration_seconds, ticket_required)| AutoApproval {
            max_duration_seconds,
            ticket_required,
        });
        Some(Offer {
            max,
            max_without_ticket,
            ticket_required,
            auto,
        })
    }

    /// An offer in other circumstances than now as the caller is: with MFA,
    /// at another probed time, from another probed network. Only what the
    /// policies in the way read is varied: the forbids that refuse now, or,
    /// when nothing permits, the permits that can apply to the caller.
    fn elsewhere(&mut self, depends_on: &mut Vec<Factor>) -> Option<(Circ, Offer, bool)> {
        let d = self.d;
        let now = Circ::default().ticket(d.scoped.ticket.read);
        let mut dims = d.permit_dims;
        let permitted_at = [MIN_DURATION_SECONDS, self.hard]
            .into_iter()
            .find(|duration| self.permitted(Action::Request, now, *duration));
        if let Some(duration) = permitted_at {
            // Permitted but refused: the forbids in the way say what to vary.
            let index = d.engine.terms_index();
            let decision = self.decide(Action::Request, now, duration);
            for forbid in &decision.forbidden_by {
                if let Some(reads) = index.reads_of(&forbid.id) {
                    dims = dims.union(Dims::of(reads));
                }
            }
        }
        let mfa: &[bool] = if dims.mfa && !d.q.principal.mfa {
            &[false, true]
        } else {
            &[false]
        };
        let mut tries: Vec<(Circ, Vec<Factor>)> = Vec::new();
        for &flip_mfa in mfa {
            let base = Circ {
                flip_mfa,
                ..Circ::default()
            };
            if flip_mfa {
                tries.push((base, Vec::new()));
            }
            if dims.time {
                for at in 1..d.instants.len() {
                    tries.push((Circ { at, ..base }, d.instant_factors(at)));
                }
            }
            if dims.ip {
                for ip in 1..d.ips.len() {
                    tries.push((Circ { ip, ..base }, vec![Factor::SourceIp]));
                }
            }
        }
        for (c, factors) in tries {
            if let Some(offer) = self.offer(c) {
                depends_on.extend(factors);
                return Some((c, offer, false));
            }
        }
        None
    }

    /// What the decisions in circumstances `c` depend on among the probed
    /// times (all of them, whatever `c.at`) and networks: whether the
    /// policies satisfied by `request` at the longest grant, or by
    /// `auto_approve` at the shortest, change.
    fn depends(&mut self, c: Circ, offer: &Offer, depends_on: &mut Vec<Factor>) {
        let d = self.d;
        let dims = Dims::of(&d.scoped);
        let satisfied = |p: &Self, c: Circ| {
            let r = p.decide(Action::Request, c, offer.max);
            let a = p.decide(Action::AutoApprove, c, MIN_DURATION_SECONDS);
            (
                r.permitted_by,
                r.forbidden_by,
                a.permitted_by,
                a.forbidden_by,
            )
        };
        if dims.time {
            let mut cells = BTreeMap::new();
            let mut dates = Vec::new();
            for at in 0..d.instants.len() {
                let o = satisfied(self, Circ { at, ..c });
                match d.instants[at].cell {
                    Some(cell) => {
                        cells.insert(cell, o);
                    }
                    None => dates.push(o),
                }
            }
            let varies = |key: fn(&(u8, u8)) -> u8| {
                let mut seen = BTreeMap::new();
                cells
                    .iter()
                    .any(|(cell, o)| seen.entry(key(cell)).or_insert(o) != &o)
            };
            if varies(|(day, _)| *day) {
                depends_on.push(Factor::TimeOfDay);
            }
            if varies(|(_, hour)| *hour) {
                depends_on.push(Factor::DayOfWeek);
            }
            let here = cells.get(&(0, d.now_hour()));
            if dates.iter().any(|o| Some(o) != here) {
                depends_on.push(Factor::Date);
            }
        }
        if dims.ip {
            let here = satisfied(self, c);
            if (0..d.ips.len()).any(|ip| ip != c.ip && satisfied(self, Circ { ip, ..c }) != here) {
                depends_on.push(Factor::SourceIp);
            }
        }
    }

    /// What sets the offer's longest grant.
    fn limit(&mut self, offer: &Offer, base: Circ) -> Limit {
        if offer.max >= self.hard {
            let tagged = self.role.tags.contains_key(RoleInfo::MAX_DURATION_TAG);
            return if tagged && self.hard < self.d.q.ceiling_seconds {
                Limit::RoleTag
            } else {
                Limit::Ceiling
            };
        }
        let c = base.ticket(offer.ticket_required || offer.max_without_ticket.is_some());
        let above = offer.max + 1;
        let below = self.decide(Action::Request, c, offer.max);
        let above = self.decide(Action::Request, c, above);
        let policy = above
            .forbidden_by
            .iter()
            .find(|p| !below.forbidden_by.contains(p))
            .or_else(|| {
                below
                    .permitted_by
                    .iter()
                    .find(|p| !above.permitted_by.contains(p))
            })
            .or_else(|| above.forbidden_by.first())
            .map_or_else(|| "(unnamed)".to_owned(), |p| p.id.clone());
        Limit::Policy { policy }
    }
}

/// Durations to probe.
enum Grid {
    Points(Vec<u32>),
    Range(u32, u32),
}

/// Now (first), then a grid of the hours and weekdays the policies compare
/// with (the hour either side of each, one day no policy names), each at
/// its next occurrence within a week, then the instants around each
/// datetime literal still ahead.
fn instants(reads: &Reads, now: Timestamp) -> Vec<Instant> {
    let t = now.to_offset_date_time();
    let mut hours = BTreeSet::from([t.hour()]);
    if !reads.hour.opaque {
        for c in &reads.hour.literals {
            for h in [c.saturating_sub(1), *c, c.saturating_add(1)] {
                if let Ok(h) = u8::try_from(h)
                    && h < 24
                {
                    hours.insert(h);
                }
            }
        }
    }
    // Day offsets 0..7 from today: the days policies name, and one they do
    // not when today is named.
    let named: Vec<&str> = reads.weekday.literals.iter().map(String::as_str).collect();
    let mut days = BTreeSet::from([0u8]);
    if !reads.weekday.opaque && !named.is_empty() {
        let mut unnamed = None;
        for offset in 1..7u8 {
            let day = weekday_name(weekday_after(t.weekday(), offset));
            if named.contains(&day) {
                days.insert(offset);
            } else if unnamed.is_none() {
                unnamed = Some(offset);
            }
        }
        if named.contains(&weekday_name(t.weekday())) {
            days.extend(unnamed);
        }
    }
    let mut out = vec![Instant {
        at: now,
        cell: Some((0, t.hour())),
    }];
    for &day in &days {
        for &hour in &hours {
            if (day, hour) == (0, t.hour()) {
                continue;
            }
            // The next time it is that hour on that weekday.
            let mut shift =
                i64::from(day) * 86_400 + (i64::from(hour) - i64::from(t.hour())) * 3600;
            if shift < 0 {
                shift += 7 * 86_400;
            }
            out.push(Instant {
                at: now.plus(shift),
                cell: Some((day, hour)),
            });
        }
    }
    if !reads.now.opaque {
        for literal in &reads.now.literals {
            let Some(at) = parse_datetime(literal) else {
                continue;
            };
            for x in [at.plus(-1), at, at.plus(1)] {
                if x > now {
                    out.push(Instant { at: x, cell: None });
                }
            }
        }
    }
    out
}

fn weekday_after(day: Weekday, offset: u8) -> Weekday {
    (0..offset).fold(day, |d, _| d.next())
}

/// A Cedar datetime literal: a date, or a date and time with an offset.
fn parse_datetime(s: &str) -> Option<Timestamp> {
    Timestamp::parse_rfc3339(s).or_else(|| Timestamp::parse_rfc3339(&format!("{s}T00:00:00Z")))
}

/// The caller's address first; then, when a policy reads the address, no
/// address, one in each range the policies name, and two in none.
fn addresses(reads: &Reads, caller: Option<&str>) -> Vec<Option<String>> {
    let mut out = vec![caller.map(str::to_owned)];
    if reads.source_ip.read && !reads.source_ip.opaque {
        let mut add = |a: Option<String>| {
            if !out.contains(&a) {
                out.push(a);
            }
        };
        add(None);
        for range in &reads.source_ip.literals {
            add(Some(range.split('/').next().unwrap_or(range).to_owned()));
        }
        for a in OUTSIDE_ADDRESSES {
            add(Some(a.to_owned()));
        }
    }
    out
}

#[cfg(test)]
mod tests;

// The request form: role, duration, reason and ticket, with what policy
// would decide shown as the requester types (a dry run: nothing stored).
// The role is picked from the roles the requester may ask for (`GET
// /roles`), each with the terms policies set beside it, or typed as an ARN.

import { ApiError } from '../api.js';
import { decisionList, errorSummary, fill, formatDuration, h, markFields, parseDuration } from '../dom.js';

const DRY_RUN_DELAY_MS = 400;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/;

// Where an API refusal belongs on the form.
const FIELD_OF = { role_arn: 'role_arn', unknown_role: 'role_arn', duration_seconds: 'duration', reason: 'reason', ticket: 'ticket' };

function field(id, label, hint, control) {
  control.id = id;
  control.name = id;
  if (hint) {
    control.dataset.hint = `${id}-hint`;
    control.setAttribute('aria-describedby', `${id}-hint`);
  }
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null,
    control);
}

// Roles shown in the picker at once; a filter narrows the rest.
const MAX_SHOWN = 30;

/** The terms policies set for a role, in a few plain words. */
export function termsText(t) {
  const parts = [];
  if (!t.available_now) parts.push('Not available now');
  const auto = t.auto_approve;
  const approvals = `needs ${t.approvals_required} ${t.approvals_required === 1 ? 'approval' : 'approvals'}`;
  if (auto && auto.max_duration_seconds >= t.max_duration_seconds) {
    parts.push(`Approved at once${auto.ticket_required ? ' with a ticket' : ''}`);
  } else if (auto) {
    parts.push(`Approved at once up to ${formatDuration(auto.max_duration_seconds)}${auto.ticket_required ? ' with a ticket' : ''}, longer ${approvals}`);
  } else {
    parts.push(approvals.charAt(0).toUpperCase() + approvals.slice(1));
  }
  parts.push(`up to ${formatDuration(t.max_duration_seconds)}`);
  if (t.ticket_required) parts.push('ticket required');
  if (t.mfa_required) parts.push('sign-in with MFA required');
  if (t.depends_on?.length) parts.push(`depends on ${t.depends_on.map((f) => FACTORS[f] ?? f).join(', ')}`);
  return parts.join(' · ');
}

const FACTORS = { time_of_day: 'time of day', day_of_week: 'day of week', date: 'date', source_ip: 'where you connect from', reason: 'the reason you give' };

/** `prod / ProductionOperator`: the account's alias (or id) and the role name. */
function roleLabel(r) {
  return `${r.account_alias ?? r.account} / ${r.name}`;
}

export function render(ctx) {
  const params = new URLSearchParams(location.search);
  // Other pages link here with `?role=<arn>`.
  const role = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', class: 'wide', value: params.get('role') ?? '' });
  const filter = h('input', { type: 'search', id: 'role-filter', autocomplete: 'off', spellcheck: 'false', class: 'wide', 'aria-describedby': 'role-count' });
  const choices = h('div', { class: 'role-choices', id: 'role-choices' }, h('p', {}, 'Loading the roles you may ask for…'));
  const count = h('p', { class: 'hint', id: 'role-count', 'aria-live': 'polite' });
  const picker = h('fieldset', { class: 'field role-picker', 'aria-describedby': 'role-picker-hint' },
    h('legend', {}, 'Which role'),
    h('p', { class: 'hint', id: 'role-picker-hint' }, 'The roles you may ask for, with what policy says for each.'),
    h('label', { for: 'role-filter' }, 'Find a role'),
    filter, count, choices);
  const duration = h('input', { type: 'text', autocomplete: 'off', class: 'short', value: params.get('duration') ?? '1h' });
  const reason = h('textarea', { rows: '3', class: 'wide' });
  const ticket = h('input', { type: 'text', autocomplete: 'off', class: 'short' });
  const summary = h('div', {});
  const decision = h('div', { id: 'decision', class: 'decision', 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'button' }, 'Ask for access');
  const form = h('form', { novalidate: true },
    summary,
    picker,
    field('role_arn', 'Role ARN', 'Filled in when you pick a role above, or type the ARN of another role', role),
    field('duration', 'For how long', 'For example 1h, 90m or 2h30m', duration),
    field('reason', 'Why you need it', 'Approvers read this; say what you will do', reason),
    field('ticket', 'Ticket (optional)', 'A change or incident reference, for example CHG-1042', ticket),
    h('section', { 'aria-labelledby': 'decision-title' },
      h('h2', { id: 'decision-title' }, 'What policy says'),
      decision),
    submit);
  fill(ctx.main, h('h1', {}, 'Ask for access'), form);
  ctx.ready();

  let roles = [];
  const radios = () => [...choices.querySelectorAll('input[type=radio]')];
  function showChoices() {
    const words = filter.value.trim().toLowerCase();
    const matching = roles.filter((r) => !words || roleLabel(r).toLowerCase().includes(words) || r.role_arn.toLowerCase().includes(words));
    const shown = matching.slice(0, MAX_SHOWN);
    const selected = role.value.trim();
    fill(choices, shown.length
      ? h('ul', { class: 'plain role-list' }, shown.map((r, i) => h('li', { class: 'role-choice' },
        h('input', { type: 'radio', name: 'role_choice', id: `role-choice-${i}`, value: r.role_arn, checked: r.role_arn === selected, 'aria-describedby': `role-terms-${i}` }),
        h('label', { for: `role-choice-${i}` }, roleLabel(r)),
        h('p', { class: 'hint role-terms', id: `role-terms-${i}` }, termsText(r.terms)))))
      : h('p', {}, roles.length ? 'No role you may ask for matches.' : 'There is no role you may ask for. Ask your platform team, or type a role ARN below.'));
    fill(count, matching.length > shown.length
      ? `${matching.length} roles match; the first ${shown.length} are shown. Type more of the name to narrow them.`
      : `${matching.length} ${matching.length === 1 ? 'role' : 'roles'}`);
    describeChoice();
  }
  // The picked role's terms also shape the fields' hints.
  function describeChoice() {
    const picked = roles.find((r) => r.role_arn === role.value.trim());
    const durationHint = form.querySelector('#duration-hint');
    const ticketLabel = form.querySelector('label[for=ticket]');
    fill(durationHint, picked ? `Up to ${formatDuration(picked.terms.max_duration_seconds)} for this role, for example 1h or 90m` : 'For example 1h, 90m or 2h30m');
    fill(ticketLabel, picked?.terms.ticket_required ? 'Ticket (required for this role)' : 'Ticket (optional)');
  }
  choices.addEventListener('change', (e) => {
    if (e.target.name !== 'role_choice') return;
    role.value = e.target.value;
    describeChoice();
  });
  role.addEventListener('input', () => {
    for (const r of radios()) r.checked = r.value === role.value.trim();
    describeChoice();
  });
  filter.addEventListener('input', showChoices);
  // Enter in the filter must not submit the request.
  filter.addEventListener('keydown', (e) => { if (e.key === 'Enter') e.preventDefault(); });
  ctx.api.roles().then((items) => {
    roles = items;
    showChoices();
  }, (e) => {
    fill(choices, h('p', {}, `The roles you may ask for could not be listed (${e.message}). Type the role's ARN below.`));
  });

  function input() {
    const out = {
      role_arn: role.value.trim(),
      duration_seconds: parseDuration(duration.value),
      reason: reason.value.trim(),
    };
    if (ticket.value.trim()) out.ticket = ticket.value.trim();
    return out;
  }

  function problems(i) {
    const p = [];
    if (!i.role_arn) p.push({ field: 'role_arn', message: 'Pick the role you need, or enter its ARN' });
    else if (!ROLE_ARN.test(i.role_arn)) p.push({ field: 'role_arn', message: 'Enter the role as an ARN, like arn:aws:iam::<account>:role/<name>' });
    if (i.duration_seconds === null) p.push({ field: 'duration', message: 'Enter how long you need it, like 1h or 90m' });
    if (!i.reason) p.push({ field: 'reason', message: 'Say why you need it' });
    return p;
  }

  let pending = null;
  let timer = null;
  async function dryRun() {
    const i = input();
    if (problems(i).length) {
      fill(decision, h('p', {}, 'Fill in the role, how long and why to see what policy says.'));
      return;
    }
    pending?.abort();
    const controller = new AbortController();
    pending = controller;
    fill(decision, h('p', {}, 'Checking…'));
    try {
      const d = await ctx.api.dryRun(i, controller.signal);
      if (controller.signal.aborted) return;
      fill(decision, outcome(d));
    } catch (e) {
      if (controller.signal.aborted || e?.name === 'AbortError') return;
      fill(decision, h('p', { class: 'outcome outcome-denied' },
        e instanceof ApiError && e.status === 400 ? `Not valid yet: ${e.message}` : `Policy could not be asked: ${e.message}`));
    }
  }
  form.addEventListener('input', (e) => {
    if (e.target === filter) return;
    clearTimeout(timer);
    timer = setTimeout(dryRun, DRY_RUN_DELAY_MS);
  });
  dryRun();

  let key = crypto.randomUUID();
  form.addEventListener('input', (e) => {
    if (e.target !== filter) key = crypto.randomUUID();
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const i = input();
    const found = problems(i);
    if (found.length) return showProblems(found);
    submit.disabled = true;
    try {
      const created = await ctx.api.create(i, key);
      const note = created.status === 'active'
        ? 'Access granted: policy approved it at once.'
        : 'Request sent. It waits for approval; approvers have been notified.';
      ctx.navigate(`/ui/requests/${created.id}`, note);
    } catch (err) {
      submit.disabled = false;
      if (!(err instanceof ApiError)) throw err;
      const target = FIELD_OF[err.field] ?? FIELD_OF[err.code] ?? null;
      const message = err.code === 'policy_denied'
        ? `Policy refuses this request: ${err.message}. See "What policy says" below.`
        : err.message;
      showProblems([{ field: target, message }]);
    }
  });

  function showProblems(found) {
    markFields(form, found);
    fill(summary, errorSummary(found));
    summary.firstChild.focus();
  }

  return () => {
    clearTimeout(timer);
    pending?.abort();
  };
}

function outcome(d) {
  const words = {
    active: 'Granted at once: policy approves this automatically.',
    pending: `Needs ${d.approvals_required} ${d.approvals_required === 1 ? 'approval' : 'approvals'} before you can use it.`,
    denied: 'Refused: policy does not allow this request as it stands.',
  };
  return [
    h('p', { class: `outcome outcome-${d.outcome}` }, words[d.outcome] ?? d.outcome),
    h('p', {}, longest(d)),
    decisionList(d.decision),
  ];
}

// The longest grant policies allow for this request, and what sets it
// (`duration_limit` of the dry run; null: none as it stands).
function longest(d) {
  const l = d.duration_limit;
  if (!l) return 'No duration is allowed for this request as it stands.';
  const by = {
    policy: `policy ${l.policy}`,
    role_tag: `the role's ${l.tag} tag`,
    ceiling: "the broker's ceiling",
  }[l.source] ?? l.source;
  return `Longest allowed for this request: ${formatDuration(l.seconds)} (set by ${by}).`;
}

// The request form: role, duration, reason and ticket, with what policy
// would decide shown as the requester types (a dry run: nothing stored).

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

export function render(ctx) {
  const params = new URLSearchParams(location.search);
  // The role picker (a later issue) links here with `?role=<arn>`.
  const role = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', class: 'wide', value: params.get('role') ?? '' });
  const duration = h('input', { type: 'text', autocomplete: 'off', class: 'short', value: params.get('duration') ?? '1h' });
  const reason = h('textarea', { rows: '3', class: 'wide' });
  const ticket = h('input', { type: 'text', autocomplete: 'off', class: 'short' });
  const summary = h('div', {});
  const decision = h('div', { id: 'decision', class: 'decision', 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'button' }, 'Ask for access');
  const form = h('form', { novalidate: true },
    summary,
    field('role_arn', 'Role', 'The role\'s ARN, for example arn:aws:iam::<account>:role/tollgate/<name>', role),
    field('duration', 'For how long', 'For example 1h, 90m or 2h30m', duration),
    field('reason', 'Why you need it', 'Approvers read this; say what you will do', reason),
    field('ticket', 'Ticket (optional)', 'A change or incident reference, for example CHG-1042', ticket),
    h('section', { 'aria-labelledby': 'decision-title' },
      h('h2', { id: 'decision-title' }, 'What policy says'),
      decision),
    submit);
  fill(ctx.main, h('h1', {}, 'Ask for access'), form);
  ctx.ready();

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
    if (!i.role_arn) p.push({ field: 'role_arn', message: 'Enter the role you need' });
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
  form.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(dryRun, DRY_RUN_DELAY_MS);
  });
  dryRun();

  let key = crypto.randomUUID();
  form.addEventListener('input', () => {
    key = crypto.randomUUID();
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

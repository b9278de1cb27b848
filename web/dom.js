// Small helpers shared by the pages: building elements (never from HTML
// strings: the Content-Security-Policy requires Trusted Types, so
// `inner HTML` would throw), and formatting times, durations and roles.

/** An element: `h('a', {href: '/ui/'}, 'Home')`. `on*` attributes add listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** `3600` → `1 h`, `5400` → `1 h 30 min`, `45` → `45 s`. */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const parts = [];
  if (days) parts.push(`${days} d`);
  if (hours) parts.push(`${hours} h`);
  if (minutes) parts.push(`${minutes} min`);
  if (!parts.length) parts.push(`${s % 60} s`);
  return parts.join(' ');
}

/**
 * Seconds from text people type: `90` (minutes), `90m`, `1h`, `1h30m`,
 * `2 hours`, `45 min`. Null when it is not a duration.
 */
export function parseDuration(text) {
  const t = String(text).trim().toLowerCase();
  if (!t) return null;
  if (/^\d+$/.test(t)) return Number(t) * 60;
  const units = { d: 86400, day: 86400, days: 86400, h: 3600, hr: 3600, hrs: 3600, hour: 3600, hours: 3600, m: 60, min: 60, mins: 60, minute: 60, minutes: 60, s: 1, sec: 1, secs: 1, second: 1, seconds: 1 };
  const re = /(\d+)\s*([a-z]+)\s*/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(t); m; m = re.exec(t)) {
    const unit = units[m[2]];
    if (!unit) return null;
    total += Number(m[1]) * unit;
    matched = re.lastIndex;
  }
  return matched === t.length && total > 0 ? total : null;
}

/** A `<time>` with the local date and time, the exact instant in `datetime`. */
export function time(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return h('time', { datetime: iso }, d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }));
}

/** `5 min ago`, `just now`. */
export function ago(iso, now = Date.now()) {
  const seconds = (now - new Date(iso).getTime()) / 1000;
  if (seconds < 60) return 'just now';
  return `${formatDuration(seconds - (seconds % 60))} ago`;
}

/** Seconds from now until `iso` (negative when past). */
export function secondsUntil(iso, now = Date.now()) {
  return (new Date(iso).getTime() - now) / 1000;
}

/** The parts of a role ARN: `{account, path, name}`. */
export function roleParts(arn) {
  const m = /^arn:[^:]+:iam::(\d{12}):role(\/(?:[^/]+\/)*)?([^/]+)$/.exec(arn ?? '');
  return m ? { account: m[1], path: m[2] || '/', name: m[3] } : { account: '', path: '', name: arn ?? '' };
}

/** Plain words for a status. */
export const STATUS_WORDS = {
  pending: 'Waiting for approval',
  active: 'Active',
  denied: 'Denied',
  cancelled: 'Cancelled',
  revoked: 'Revoked',
  expired: 'Ended',
  lapsed: 'Not reviewed in time',
};

/** A status tag. */
export function statusTag(status) {
  return h('strong', { class: `tag tag-${status}` }, STATUS_WORDS[status] ?? status);
}

/** A notice box: `kind` is `success` or `error`; focusable so it can be announced. */
export function banner(kind, ...children) {
  return h('div', { class: `banner banner-${kind}`, role: kind === 'error' ? 'alert' : 'status', tabindex: '-1' }, ...children);
}

/**
 * An error summary for the top of a form: a heading and one link per
 * problem that moves focus to its field.
 */
export function errorSummary(problems) {
  const box = h('div', { class: 'error-summary', role: 'alert', tabindex: '-1', 'aria-labelledby': 'error-summary-title' },
    h('h2', { id: 'error-summary-title' }, 'There is a problem'),
    h('ul', {}, problems.map((p) => h('li', {},
      p.field
        ? h('a', { href: `#${p.field}`, onclick: (e) => { e.preventDefault(); document.getElementById(p.field)?.focus(); } }, p.message)
        : p.message))));
  return box;
}

/** Marks fields invalid with their messages (and clears the others). */
export function markFields(form, problems) {
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  for (const el of form.querySelectorAll('.field-error')) el.remove();
  for (const p of problems) {
    const field = p.field && form.querySelector(`#${p.field}`);
    if (!field) continue;
    field.setAttribute('aria-invalid', 'true');
    const id = `${p.field}-error`;
    field.setAttribute('aria-describedby', [field.dataset.hint, id].filter(Boolean).join(' '));
    field.before(h('p', { class: 'field-error', id }, h('span', { class: 'visually-hidden' }, 'Error: '), p.message));
  }
}

/** The explanation of a policy decision: which policies allowed or refused. */
export function decisionList(decision) {
  if (!decision) return null;
  const item = (p) => h('li', {}, h('code', {}, p.id), p.description ? `: ${p.description}` : '');
  const out = [];
  if (decision.forbidden_by?.length) {
    out.push(h('p', {}, 'Refused by:'), h('ul', { class: 'policies' }, decision.forbidden_by.map(item)));
  }
  if (decision.permitted_by?.length) {
    out.push(h('p', {}, decision.forbidden_by?.length ? 'Allowed by (overridden, a refusal always wins):' : 'Allowed by:'),
      h('ul', { class: 'policies' }, decision.permitted_by.map(item)));
  }
  if (!decision.permitted_by?.length && !decision.forbidden_by?.length) {
    out.push(h('p', {}, 'No policy allows it, so it is refused (default deny).'));
  }
  return out;
}

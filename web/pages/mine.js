// The requester's page: their requests, newest first, with status and
// time left, refreshed while the page is open.

import { ApiError } from '../api.js';
import { ago, banner, fill, formatDuration, h, roleParts, secondsUntil, statusTag } from '../dom.js';

const POLL_MS = 15000;

export function render(ctx) {
  const body = h('div', {}, h('p', {}, 'Loading…'));
  const note = ctx.takeFlash();
  fill(ctx.main,
    note ? banner('success', note) : null,
    h('h1', {}, 'Your requests'),
    h('p', {}, h('a', { class: 'button', href: '/ui/requests/new' }, 'Ask for access')),
    body);
  ctx.ready();

  let stopped = false;
  async function refresh() {
    try {
      const items = await ctx.api.mine();
      if (stopped) return;
      items.sort((a, b) => (a.id < b.id ? 1 : -1));
      fill(body, items.length ? table(items) : h('p', {}, 'You have not asked for access yet.'));
    } catch (e) {
      if (!stopped) fill(body, banner('error', e instanceof ApiError ? `Your requests could not be loaded: ${e.message}.` : 'Your requests could not be loaded.'));
    }
  }
  refresh();
  const timer = setInterval(refresh, POLL_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

/** What a request's time looks like: time left, approvals awaited, or when it closed. */
export function timeNote(r) {
  if (r.status === 'active' && r.window_end) {
    const left = secondsUntil(r.window_end);
    const start = r.window_start ? secondsUntil(r.window_start) : -1;
    if (start > 0) return `starts in ${formatDuration(start)}`;
    return left > 0 ? `${formatDuration(left - (left % 60) + 60)} left` : 'ending now';
  }
  if (r.status === 'pending') {
    return `${r.approvals.length} of ${r.approvals_required} approvals`;
  }
  return r.closed_at ? `closed ${ago(r.closed_at)}` : '';
}

function table(items) {
  return h('table', { class: 'list' },
    h('caption', { class: 'visually-hidden' }, 'Your requests, newest first'),
    h('thead', {}, h('tr', {},
      ['Role', 'Account', 'Status', 'Time', 'For', 'Asked'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, items.map((r) => {
      const role = roleParts(r.role_arn);
      return h('tr', {},
        h('td', {}, h('a', { href: `/ui/requests/${r.id}` }, role.name)),
        h('td', {}, role.account),
        h('td', {}, statusTag(r.status)),
        h('td', {}, timeNote(r)),
        h('td', {}, formatDuration(r.duration)),
        h('td', {}, ago(r.created_at)));
    })));
}

// The approver's inbox: pending requests the signed-in user may review
// now, newest first, refreshed while the page is open.

import { ApiError } from '../api.js';
import { ago, banner, fill, formatDuration, h, roleParts } from '../dom.js';

const POLL_MS = 10000;

export function render(ctx) {
  const count = h('p', { class: 'lead', 'aria-live': 'polite', id: 'inbox-count' }, 'Loading…');
  const list = h('div', {});
  const note = ctx.takeFlash();
  fill(ctx.main,
    note ? banner('success', note) : null,
    h('h1', {}, 'Requests to review'),
    count,
    list);
  ctx.ready();

  let shown = null;
  let stopped = false;

  async function refresh() {
    let items;
    try {
      items = await ctx.api.reviewable();
    } catch (e) {
      if (stopped) return;
      fill(count, e instanceof ApiError ? `The list could not be loaded: ${e.message}.` : 'The list could not be loaded.');
      return;
    }
    if (stopped) return;
    // Newest first: ids are ULIDs, which sort by creation time.
    items.sort((a, b) => (a.id < b.id ? 1 : -1));
    ctx.setInboxCount(items.length);
    const ids = items.map((r) => `${r.id}:${r.version}`).join(',');
    if (ids === shown) return;
    shown = ids;
    fill(count, items.length === 0
      ? 'Nothing waits for your review.'
      : `${items.length} ${items.length === 1 ? 'request waits' : 'requests wait'} for your review.`);
    fill(list, items.length === 0 ? null : table(items));
  }

  refresh();
  const timer = setInterval(refresh, POLL_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

function table(items) {
  return h('table', { class: 'list' },
    h('caption', { class: 'visually-hidden' }, 'Pending requests, newest first'),
    h('thead', {}, h('tr', {},
      ['Role', 'Account', 'Requester', 'For', 'Reason', 'Ticket', 'Asked'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, items.map((r) => {
      const role = roleParts(r.role_arn);
      return h('tr', {},
        h('td', {}, h('a', { href: `/ui/requests/${r.id}` }, role.name, h('span', { class: 'visually-hidden' }, ` requested by ${r.requester.sub}`))),
        h('td', {}, role.account),
        h('td', {}, r.requester.sub),
        h('td', {}, formatDuration(r.duration)),
        h('td', { class: 'reason' }, r.reason),
        h('td', {}, r.ticket ?? '–'),
        h('td', {}, ago(r.created_at)));
    })));
}

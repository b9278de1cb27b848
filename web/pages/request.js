// One request, in the order an approver decides: who asks (with their
// groups and claims), which role in which account (with its tags), for how
// long and when, why, the session policy, what the policies say; then
// Approve (which sends the digest of exactly what is shown) or Deny, the
// requester's own actions, and the audit trail.

import { ApiError } from '../api.js';
import {
  banner, decisionList, errorSummary, fill, formatDuration, h, markFields, roleParts, statusTag, time,
} from '../dom.js';
import { timeNote } from './mine.js';

export function render(ctx, id) {
  let stopped = false;
  let timer = null;
  const note = ctx.takeFlash();
  fill(ctx.main, h('p', {}, 'Loading…'));

  async function load(notice = null, focusNotice = false) {
    let req;
    try {
      req = await ctx.api.request(id);
    } catch (e) {
      if (stopped) return;
      fill(ctx.main,
        h('h1', {}, e instanceof ApiError && e.status === 404 ? 'Request not found' : 'This request could not be loaded'),
        h('p', {}, e instanceof ApiError && e.status === 404
          ? 'It does not exist, or you are not allowed to see it.'
          : `${e.message}. Try again in a moment.`),
        h('p', {}, h('a', { href: '/ui/' }, 'Go to your requests')));
      ctx.ready();
      return;
    }
    if (stopped) return;
    draw(req, notice);
    if (focusNotice && ctx.main.querySelector('.banner')) ctx.main.querySelector('.banner').focus();
    else ctx.ready();
  }

  function draw(req, notice) {
    const me = ctx.session.user()?.sub;
    const isRequester = req.requester.sub === me;
    const role = roleParts(req.role_arn);
    const when = h('span', { class: 'time-note' }, timeNote(req));
    clearInterval(timer);
    timer = setInterval(() => fill(when, timeNote(req)), 15000);
    fill(ctx.main,
      notice,
      h('span', { class: 'caption' }, `Request ${req.id}`),
      h('h1', {}, `${req.requester.sub} asks for ${role.name}`),
      h('p', { class: 'status-line' }, statusTag(req.status), ' ', when),
      whoSection(req),
      roleSection(req, role),
      timeSection(req),
      whySection(req),
      policySection(req),
      decideSection(req),
      isRequester ? requesterSection(req) : revokeSection(req),
      historySection(req));
  }

  function whoSection(req) {
    const r = req.requester;
    const tags = Object.entries(r.tags ?? {});
    return section('who', 'Who is asking', dl([
      ['User', r.sub],
      ['Groups', r.groups?.length ? r.groups.join(', ') : 'none'],
      ['Claims', tags.length ? h('ul', { class: 'plain' }, tags.map(([k, v]) => h('li', {}, `${k}: ${v}`))) : 'none'],
      ['Signed in with MFA', r.mfa ? 'yes' : 'no'],
    ]));
  }

  function roleSection(req, role) {
    const info = req.role;
    const tags = Object.entries(info?.tags ?? {}).sort(([a], [b]) => a.localeCompare(b));
    return section('role', 'Which role', dl([
      ['Role', role.name],
      ['Account', role.account],
      ['ARN', h('code', {}, req.role_arn)],
      ['Role tags', info === null || info === undefined
        ? 'IAM no longer describes this role'
        : tags.length
          ? h('table', { class: 'tags' },
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Tag'), h('th', { scope: 'col' }, 'Value'))),
            h('tbody', {}, tags.map(([k, v]) => h('tr', {}, h('td', {}, h('code', {}, k)), h('td', {}, v)))))
          : 'none'],
    ]));
  }

  function timeSection(req) {
    const rows = [['Duration', formatDuration(req.duration)]];
    // Scheduled grants (a later issue) carry `starts_at`.
    rows.push(['Starts', req.starts_at ? time(req.starts_at) : 'when approved']);
    if (req.window_start) rows.push(['Window', h('span', {}, time(req.window_start), ' to ', time(req.window_end))]);
    if (req.status === 'pending') rows.push(['Lapses unless reviewed by', time(req.pending_deadline)]);
    return section('time', 'For how long', dl(rows));
  }

  function whySection(req) {
    return section('why', 'Why', dl([
      ['Reason', h('span', { class: 'reason' }, req.reason)],
      ['Ticket', req.ticket ?? 'none'],
    ]));
  }

  function policySection(req) {
    const sp = req.session_policy;
    const pretty = sp === undefined || sp === null ? null : JSON.stringify(typeof sp === 'string' ? JSON.parse(sp) : sp, null, 2);
    return section('session-policy', 'Session policy',
      pretty
        ? [h('p', {}, 'Credentials are narrowed to this policy:'), h('pre', { class: 'code', tabindex: '0', 'aria-label': 'Session policy JSON' }, pretty)]
        : h('p', {}, 'None: the role\'s own permissions apply, for the length of the grant.'));
  }

  function decideSection(req) {
    const review = req.review ?? {};
    const approvals = req.approvals ?? [];
    const parts = [
      h('p', {}, `Approvals: ${approvals.length} of ${req.approvals_required}.`),
      approvals.length ? h('ul', { class: 'plain' }, approvals.map((a) => h('li', {}, `${a.approver}, `, time(a.at), a.comment ? `: “${a.comment}”` : ''))) : null,
    ];
    if (review.decision) {
      parts.push(h('p', {}, review.allowed ? 'Policies let you review this request.' : 'Policies do not let you approve this request.'));
      parts.push(decisionList(review.decision));
    }
    if (review.allowed) {
      parts.push(approveForm(req), denyForm(req));
    } else if (req.status === 'pending') {
      const why = {
        self_review: 'You asked for this, so someone else must review it.',
        already_approved: 'You have approved this request; it waits for more approvals.',
        policy_denied: review.message ? `${review.message}.` : null,
      }[review.code];
      if (why) parts.push(h('p', { class: 'why-not' }, why));
    }
    return section('decide', 'What the policies say', parts);
  }

  function approveForm(req) {
    const comment = h('input', { type: 'text', id: 'approve-comment', class: 'wide', autocomplete: 'off' });
    const button = h('button', { type: 'submit', class: 'button', id: 'approve' }, 'Approve');
    return h('form', { class: 'decide-form', novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      button.disabled = true;
      try {
        const next = await ctx.api.approve(req.id, req.digest, comment.value.trim() || undefined);
        ctx.refreshInbox();
        const words = next.status === 'active'
          ? `You approved this request. ${req.requester.sub} can use ${roleParts(req.role_arn).name} now.`
          : `You approved this request. It still needs ${next.approvals_required - next.approvals.length} more.`;
        load(banner('success', words), true);
      } catch (err) {
        button.disabled = false;
        refused(err, 'approved');
      }
    } },
    h('h3', {}, 'Approve'),
    h('p', { class: 'hint' }, `You approve exactly what this page shows (digest ${req.digest.slice(0, 12)}…). If anything changed meanwhile, nothing is approved.`),
    h('div', { class: 'field' }, h('label', { for: 'approve-comment' }, 'Comment (optional)'), comment),
    button);
  }

  function denyForm(req) {
    return reasonForm({
      id: 'deny', title: 'Deny', label: 'Why you deny it', button: 'Deny', verb: 'denied',
      missing: 'Say why you deny it; the requester reads this',
      act: (reason) => ctx.api.deny(req.id, reason),
      done: () => {
        ctx.refreshInbox();
        return `You denied this request. ${req.requester.sub} has been told why.`;
      },
    });
  }

  /** A form whose one field is a required reason: deny, revoke. */
  function reasonForm({ id, title, label, button: buttonLabel, verb, missing, act, done }) {
    const reason = h('textarea', { id: `${id}-reason`, rows: '2', class: 'wide' });
    const summary = h('div', {});
    const button = h('button', { type: 'submit', class: 'button button-warning', id }, buttonLabel);
    const form = h('form', { class: 'decide-form', novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      if (!reason.value.trim()) {
        const problems = [{ field: `${id}-reason`, message: missing }];
        markFields(form, problems);
        fill(summary, errorSummary(problems));
        summary.firstChild.focus();
        return;
      }
      button.disabled = true;
      try {
        await act(reason.value.trim());
        load(banner('success', done()), true);
      } catch (err) {
        button.disabled = false;
        refused(err, verb);
      }
    } },
    h('h3', {}, title),
    summary,
    h('div', { class: 'field' }, h('label', { for: `${id}-reason` }, label), reason),
    button);
    return form;
  }

  function requesterSection(req) {
    const parts = [];
    if (req.status === 'pending') {
      parts.push(h('p', {}, 'Approvers have been notified. You can withdraw the request while it waits.'),
        actionButton('Cancel request', 'cancel', () => ctx.api.cancel(req.id), 'You cancelled this request.'));
    }
    if (req.status === 'active') {
      const snippet = `[profile ${roleParts(req.role_arn).name}]\ncredential_process = tollgate credentials --role ${req.role_arn} --format credential-process`;
      parts.push(
        h('p', {}, 'Use it with the AWS CLI and SDKs: add this profile to ~/.aws/config, then run commands with --profile ', h('code', {}, roleParts(req.role_arn).name), '.'),
        h('pre', { class: 'code', tabindex: '0', 'aria-label': 'AWS config profile', id: 'snippet' }, snippet),
        h('p', {}, h('button', { type: 'button', class: 'button button-secondary', onclick: (e) => copy(e.currentTarget, snippet) }, 'Copy the profile')),
        // The AWS console sign-in link (a later issue) goes here.
        revokeSection(req, true));
    }
    return parts.length ? section('use', req.status === 'active' ? 'Use this access' : 'Your request', parts) : null;
  }

  function revokeSection(req, inline = false) {
    if (req.status !== 'active') return null;
    const form = reasonForm({
      id: 'revoke', title: 'End it early', label: 'Why', button: 'Revoke now', verb: 'revoked',
      missing: 'Say why you end it early',
      act: (reason) => ctx.api.revoke(req.id, reason),
      done: () => 'Revoked: credentials already handed out stop working now.',
    });
    return inline ? form : section('revoke', 'End it early', form);
  }

  function actionButton(label, id, act, done) {
    const button = h('button', { type: 'button', class: 'button button-secondary', id, onclick: async () => {
      button.disabled = true;
      try {
        await act();
        load(banner('success', done), true);
      } catch (err) {
        button.disabled = false;
        refused(err, 'changed');
      }
    } }, label);
    return h('p', {}, button);
  }

  function historySection(req) {
    const events = (req.events ?? []).slice().sort((a, b) => a.seq - b.seq);
    return section('history', 'History', h('ol', { class: 'events' }, events.map((ev) => h('li', {},
      time(ev.at), ' ', h('strong', {}, eventWords(ev)), ` by ${ev.actor === 'system' ? 'Tollgate' : ev.actor?.user ?? '?'}`,
      ev.comment ? `: “${ev.comment}”` : '', ev.reason && ev.type !== 'created' ? `: “${ev.reason}”` : ''))));
  }

  /** A refusal, in plain words, at the top of the page. */
  function refused(err, verb) {
    let content;
    if (err instanceof ApiError && err.status === 409) {
      content = [
        h('p', {}, err.code === 'digest_mismatch'
          ? `What is stored differs from what this page showed, so nothing was ${verb}.`
          : `This request changed while you were looking at it (${err.message}), so nothing was ${verb}.`),
        h('p', {}, h('button', { type: 'button', class: 'button button-secondary', onclick: () => load() }, 'Show the request as it is now')),
      ];
    } else if (err instanceof ApiError && err.status === 403) {
      content = [
        h('p', {}, `Not allowed: ${err.message}.`),
        err.explanation ? decisionList(err.explanation) : null,
      ];
    } else {
      content = h('p', {}, err instanceof ApiError ? `That did not work: ${err.message}. Try again.` : 'That did not work. Try again.');
    }
    const box = banner('error', content);
    ctx.main.querySelector('.banner')?.remove();
    ctx.main.prepend(box);
    box.focus();
  }

  load(note ? banner('success', note) : null);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

function section(id, title, ...content) {
  return h('section', { 'aria-labelledby': `${id}-title`, class: 'block' }, h('h2', { id: `${id}-title` }, title), ...content);
}

function dl(rows) {
  return h('dl', { class: 'summary' }, rows.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))));
}

function eventWords(ev) {
  return {
    created: ev.auto_approved ? 'Asked, and approved by policy' : 'Asked',
    approved: ev.window_end ? 'Approved, access granted' : 'Approved',
    denied: 'Denied',
    cancelled: 'Cancelled',
    revoked: 'Revoked',
    credentials_issued: 'Credentials issued',
    expired: 'Ended',
    lapsed: 'Lapsed',
  }[ev.type] ?? ev.type;
}

async function copy(button, text) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = 'Copied';
  } catch {
    button.textContent = 'Select the text above and copy it';
  }
}

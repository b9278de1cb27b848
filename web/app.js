// The console's entry point: signs the user in, draws the navigation, and
// routes `/ui/...` paths to one page module each without reloading the
// page (a reload would forget the in-memory token).

import { createApi } from './api.js';
import { SignInError, createSession, readSettings } from './auth.js';
import { fill, h } from './dom.js';
import * as inbox from './pages/inbox.js';
import * as message from './pages/message.js';
import * as mine from './pages/mine.js';
import * as newRequest from './pages/new.js';
import * as request from './pages/request.js';

const ID = '([0-9A-HJKMNP-TV-Z]{26})';
const ROUTES = [
  [new RegExp('^/ui/?$'), mine],
  [new RegExp('^/ui/requests/?$'), mine],
  [new RegExp('^/ui/requests/new/?$'), newRequest],
  [new RegExp(`^/ui/requests/${ID}/?$`), request],
  [new RegExp('^/ui/inbox/?$'), inbox],
];
// How often the inbox count in the navigation is refreshed.
const INBOX_POLL_MS = 20000;

function start() {
  const main = document.getElementById('main');
  const nav = document.getElementById('nav');
  const settings = readSettings(document);
  const path = location.pathname;

  if (path.replace(/\/$/, '') === '/ui/signed-out') {
    message.signedOut(main);
    focusHeading(main);
    return;
  }
  if (settings.mode !== 'oidc') {
    message.notConfigured(main);
    focusHeading(main);
    return;
  }
  const session = createSession(settings, location);
  const api = createApi(session);
  const app = createApp({ main, nav, session, api });

  const failed = (e) => {
    message.signInFailed(main, e instanceof SignInError ? e.message : 'Signing in did not work. Try again.', () => session.start('/ui/'));
    focusHeading(main);
  };
  if (path === '/ui/callback') {
    session.finish(location.href).then((returnTo) => {
      history.replaceState(null, '', returnTo);
      app.begin();
    }, failed);
  } else {
    session.start(path + location.search).catch(failed);
  }
}

function focusHeading(main) {
  const h1 = main.querySelector('h1');
  if (h1) {
    h1.setAttribute('tabindex', '-1');
    h1.focus();
    document.title = `${h1.textContent} – Tollgate`;
  }
}

function createApp({ main, nav, session, api }) {
  let cleanup = null;
  let flash = null;
  let inboxCount = null;
  const inboxBadge = h('span', { class: 'count', 'aria-hidden': 'true' });
  const inboxLabel = h('span', { class: 'visually-hidden' });

  const ctx = {
    api,
    session,
    main,
    /** Goes to `path` inside the console; `note` is shown on the next page. */
    navigate(path, note = null) {
      flash = note;
      history.pushState(null, '', path);
      render();
    },
    /** The note left by the previous page, once. */
    takeFlash() {
      const note = flash;
      flash = null;
      return note;
    },
    /** Counts the inbox again now (after an approval or denial). */
    refreshInbox() {
      pollInbox();
    },
    setInboxCount(n) {
      inboxCount = n;
      inboxBadge.textContent = n === null ? '' : String(n);
      inboxLabel.textContent = n === null ? '' : ` (${n} waiting)`;
    },
    /** Call after drawing a page: title, focus on the heading. */
    ready() {
      focusHeading(main);
    },
  };

  function drawNav() {
    const who = session.user();
    const link = (href, ...label) => h('a', { href, 'aria-current': currentFor(href) }, ...label);
    fill(nav,
      h('ul', {},
        h('li', {}, link('/ui/', 'My requests')),
        h('li', {}, link('/ui/requests/new', 'Ask for access')),
        h('li', {}, link('/ui/inbox', 'To review', inboxBadge, inboxLabel))),
      h('p', { class: 'who' }, 'Signed in as ', h('strong', {}, who?.sub ?? '?'), ' ',
        h('button', { type: 'button', class: 'button-link', onclick: () => session.signOut() }, 'Sign out')));
  }

  function currentFor(href) {
    const p = location.pathname.replace(/\/$/, '') || '/ui';
    const target = href.replace(/\/$/, '');
    return p === target || (target === '/ui' && p === '/ui/requests') ? 'page' : null;
  }

  function render() {
    if (cleanup) cleanup();
    cleanup = null;
    drawNav();
    const path = location.pathname;
    for (const [re, page] of ROUTES) {
      const m = re.exec(path);
      if (m) {
        main.replaceChildren();
        cleanup = page.render(ctx, ...m.slice(1)) ?? null;
        return;
      }
    }
    message.notFound(main);
    focusHeading(main);
  }

  async function pollInbox() {
    try {
      ctx.setInboxCount((await api.reviewable()).length);
    } catch {
      // The count is a convenience; the inbox page shows errors.
    }
  }

  document.addEventListener('click', (e) => {
    const a = e.target instanceof Element ? e.target.closest('a[href]') : null;
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || !url.pathname.startsWith('/ui/') || a.target) return;
    if (url.pathname.startsWith('/ui/assets/') || (url.hash && url.pathname === location.pathname)) return;
    e.preventDefault();
    ctx.navigate(url.pathname + url.search);
  });
  addEventListener('popstate', render);

  return {
    begin() {
      render();
      pollInbox();
      setInterval(pollInbox, INBOX_POLL_MS);
    },
  };
}

start();

// Pages that only say something: signed out, page not found, sign-in not
// configured, sign-in failed.

import { fill, h } from '../dom.js';

/** After signing out. */
export function signedOut(main) {
  fill(main,
    h('h1', {}, 'You are signed out'),
    h('p', {}, 'Tollgate has forgotten your sign-in in this tab.'),
    h('p', {}, h('a', { class: 'button', href: '/ui/', onclick: (e) => { e.preventDefault(); location.assign('/ui/'); } }, 'Sign in again')));
}

/** A `/ui/...` path that is no page. */
export function notFound(main) {
  fill(main,
    h('h1', {}, 'Page not found'),
    h('p', {}, 'If you typed the address, check it is correct. If you followed a link, the request may have been removed.'),
    h('p', {}, h('a', { href: '/ui/' }, 'Go to your requests')));
}

/** No issuer or client id is configured. */
export function notConfigured(main) {
  fill(main,
    h('h1', {}, 'Sign-in is not set up'),
    h('p', {}, 'This Tollgate has no OpenID Connect client configured for the console, so nobody can sign in here yet.'),
    h('p', {}, 'Whoever runs Tollgate can set it up: see "The web console" in infra/DEPLOY.md. Meanwhile the tollgate command line works as before.'));
}

/** Signing in failed; `retry` starts again. */
export function signInFailed(main, why, retry) {
  fill(main,
    h('h1', {}, 'You are not signed in'),
    h('p', {}, why),
    h('p', {}, h('button', { type: 'button', class: 'button', onclick: retry }, 'Sign in')));
}

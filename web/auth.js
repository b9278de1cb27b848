// Sign-in with OpenID Connect: the authorization code flow with PKCE (S256)
// as a public client, against the issuer the page's meta tags name.
//
// The ID token lives in this module's memory only: never in localStorage,
// sessionStorage or a cookie, so it is gone when the tab closes or reloads
// (the identity provider's own session then signs the user in again without
// a prompt). Only the PKCE verifier, state, nonce and the page to return to
// are kept in sessionStorage, for the length of the redirect: the page is
// unloaded while the identity provider asks who the user is, and nothing in
// memory survives that. They are removed as soon as the callback reads
// them; alone they grant nothing (the code needs the verifier, and the
// verifier needs the code).

const PENDING_KEY = 'tollgate.sign-in';
// Renew this long before the token expires, so no call fails midway.
const EXPIRY_MARGIN_SECONDS = 30;

/** The sign-in settings from the page's meta tags. */
export function readSettings(doc) {
  const meta = (name) => doc.querySelector(`meta[name="tollgate-${name}"]`)?.content ?? '';
  return {
    mode: meta('sign-in'),
    issuer: meta('issuer'),
    clientId: meta('client-id'),
    discovery: meta('discovery'),
  };
}

function base64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

function randomValue() {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

async function challengeOf(verifier) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

/** The claims of a JWT, unverified: the API verifies the signature. */
export function claimsOf(token) {
  const part = token.split('.')[1] ?? '';
  const json = atob(part.replaceAll('-', '+').replaceAll('_', '/'));
  const bytes = Uint8Array.from(json, (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** Why signing in did not work, in words for people. */
export class SignInError extends Error {}

/** A session: the discovery document, the ID token and its claims. */
export function createSession(settings, location) {
  let idToken = null;
  let claims = null;
  let provider = null;

  async function discover() {
    if (provider) return provider;
    const url = new URL(settings.discovery, location.href);
    let response;
    try {
      response = await fetch(url, { headers: { Accept: 'application/json' } });
    } catch {
      throw new SignInError('The sign-in service could not be reached. Check your connection and try again.');
    }
    if (!response.ok) {
      throw new SignInError(`The sign-in service's settings could not be read (HTTP ${response.status}).`);
    }
    const doc = await response.json();
    if (doc.issuer !== settings.issuer) {
      throw new SignInError('The sign-in service does not match the configured issuer; ask whoever runs Tollgate to check its settings.');
    }
    provider = {
      authorize: new URL(doc.authorization_endpoint, url),
      token: new URL(doc.token_endpoint, url),
      endSession: doc.end_session_endpoint ? new URL(doc.end_session_endpoint, url) : null,
    };
    return provider;
  }

  const redirectUri = () => new URL('/ui/callback', location.origin).href;

  return {
    /** The ID token while it is valid, else null. */
    token() {
      if (!idToken || !claims) return null;
      if (claims.exp - EXPIRY_MARGIN_SECONDS <= Date.now() / 1000) return null;
      return idToken;
    },

    /** The signed-in user's claims (sub, groups, ...), or null. */
    user() {
      return claims;
    },

    /** Sends the browser to the identity provider; comes back to `returnTo`. */
    async start(returnTo) {
      const p = await discover();
      const verifier = randomValue();
      const state = randomValue();
      const nonce = randomValue();
      sessionStorage.setItem(PENDING_KEY, JSON.stringify({ verifier, state, nonce, returnTo }));
      const url = new URL(p.authorize);
      url.search = new URLSearchParams({
        response_type: 'code',
        client_id: settings.clientId,
        redirect_uri: redirectUri(),
        scope: 'openid profile email',
        state,
        nonce,
        code_challenge: await challengeOf(verifier),
        code_challenge_method: 'S256',
      }).toString();
      location.assign(url.href);
    },

    /** Completes the sign-in at `/ui/callback`; returns the page to go back to. */
    async finish(callbackUrl) {
      const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) ?? 'null');
      sessionStorage.removeItem(PENDING_KEY);
      const params = new URL(callbackUrl).searchParams;
      if (!pending || params.get('state') !== pending.state) {
        throw new SignInError('This sign-in was not started here, or was already used. Sign in again.');
      }
      if (params.get('error')) {
        throw new SignInError(`The sign-in service refused: ${params.get('error_description') || params.get('error')}.`);
      }
      const p = await discover();
      let response;
      try {
        response = await fetch(p.token, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
          body: new URLSearchParams({
            grant_type: 'authorization_code',
            code: params.get('code') ?? '',
            redirect_uri: redirectUri(),
            client_id: settings.clientId,
            code_verifier: pending.verifier,
          }),
        });
      } catch {
        throw new SignInError('The sign-in service could not be reached. Check your connection and try again.');
      }
      const body = await response.json().catch(() => ({}));
      if (!response.ok || typeof body.id_token !== 'string') {
        throw new SignInError(`The sign-in service did not issue a token${body.error_description ? `: ${body.error_description}` : ''}.`);
      }
      const c = claimsOf(body.id_token);
      const audiences = Array.isArray(c.aud) ? c.aud : [c.aud];
      if (c.iss !== settings.issuer || !audiences.includes(settings.clientId) || c.nonce !== pending.nonce) {
        throw new SignInError('The token from the sign-in service is not for this console. Sign in again.');
      }
      idToken = body.id_token;
      claims = c;
      return typeof pending.returnTo === 'string' && pending.returnTo.startsWith('/ui/') ? pending.returnTo : '/ui/';
    },

    /** Signs in again (the token expired or was refused), back to this page. */
    async renew() {
      idToken = null;
      claims = null;
      await this.start(location.pathname + location.search);
    },

    /** Forgets the token and ends the provider's session where it offers that. */
    async signOut() {
      const hint = idToken;
      idToken = null;
      claims = null;
      const after = new URL('/ui/signed-out', location.origin).href;
      let p = null;
      try {
        p = await discover();
      } catch {
        // Signed out here all the same.
      }
      if (p?.endSession) {
        const url = new URL(p.endSession);
        url.search = new URLSearchParams({
          client_id: settings.clientId,
          post_logout_redirect_uri: after,
          ...(hint ? { id_token_hint: hint } : {}),
        }).toString();
        location.assign(url.href);
      } else {
        location.assign(after);
      }
    },
  };
}

// Every call the console makes to the Tollgate HTTP API: the same routes
// the CLI uses, on this origin, with the signed-in user's ID token.

/** A refusal or failure from the API: status, stable code, message. */
export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `the broker answered HTTP ${status}`);
    this.status = status;
    this.code = error?.code ?? 'unknown';
    this.field = error?.field ?? null;
    this.explanation = error?.explanation ?? null;
  }
}

// Pages of a listing read at most, so a huge history cannot stall the page.
const MAX_PAGES = 5;

/**
 * The API for `session` (its `token()` gives the ID token, or null when it
 * has expired; `renew()` signs in again).
 */
export function createApi(session) {
  async function call(method, path, body, headers = {}, signal = undefined) {
    const token = session.token();
    if (!token) {
      await session.renew();
      throw new ApiError(401, { code: 'unauthenticated', message: 'your sign-in has expired; signing you in again' });
    }
    let response;
    try {
      response = await fetch(path, {
        method,
        signal,
        headers: {
          Accept: 'application/json',
          Authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      if (e?.name === 'AbortError') throw e;
      throw new ApiError(0, { code: 'network', message: 'Tollgate could not be reached; check your connection and try again' });
    }
    const data = await response.json().catch(() => null);
    if (response.status === 401) {
      await session.renew();
    }
    if (!response.ok) throw new ApiError(response.status, data?.error);
    return data;
  }

  async function list(query, path = '/requests') {
    const items = [];
    let next = null;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const params = new URLSearchParams(query);
      if (next) params.set('next_token', next);
      const data = await call('GET', `${path}?${params}`);
      items.push(...data.items);
      next = data.next_token;
      if (!next) break;
    }
    return items;
  }

  const at = (id, action) => `/requests/${encodeURIComponent(id)}/${action}`;

  return {
    /** The caller's own requests, newest first. */
    mine: () => list({ scope: 'mine', limit: '100' }),
    /** The roles the caller may ask for, with the terms policies set. */
    roles: () => list({ limit: '100' }, '/roles'),
    /** Pending requests the caller may review now. */
    reviewable: () => list({ scope: 'reviewable', limit: '100' }),
    /** One request with its role, events and the caller's review decision. */
    request: (id) => call('GET', `/requests/${encodeURIComponent(id)}`),
    /** What policy would decide, nothing stored. */
    dryRun: (input, signal) => call('POST', '/requests?dry_run=true', input, {}, signal),
    /** Asks for access; the key makes a retried click one request. */
    create: (input, idempotencyKey) => call('POST', '/requests', input, { 'Idempotency-Key': idempotencyKey }),
    /** Approves exactly what `digest` covers. */
    approve: (id, digest, comment) => call('POST', at(id, 'approve'), comment ? { digest, comment } : { digest }),
    deny: (id, reason) => call('POST', at(id, 'deny'), { reason }),
    cancel: (id) => call('POST', at(id, 'cancel'), {}),
    revoke: (id, reason) => call('POST', at(id, 'revoke'), { reason }),
  };
}

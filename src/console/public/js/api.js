// Talking to Kiln: the identity provider's token endpoint (password and refresh grants of the cf client, as the
// cf CLI logs in), the CF V3 API and the log-cache read API. Nothing else: the console has no private back door.

const SESSION_KEY = 'kiln.console.session';
const CF_CLIENT = 'Basic ' + btoa('cf:');

/** An error the API answered with; `message` is the CF error's detail. */
export class ApiError extends Error {
  constructor(status, message, title) {
    super(message);
    this.status = status;
    this.title = title;
  }
}

/** The saved login ({username, access_token, refresh_token}) of this browser tab, or null. */
export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? 'null');
  } catch {
    return null;
  }
}

const listeners = new Set();
/** Calls `fn` whenever the login changes (log in, log out, a refresh that failed). */
export function onSessionChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function saveSession(value) {
  if (value) sessionStorage.setItem(SESSION_KEY, JSON.stringify(value));
  else sessionStorage.removeItem(SESSION_KEY);
  for (const fn of listeners) fn(value);
}

async function tokenRequest(form) {
  const res = await fetch('/oauth/token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json', Authorization: CF_CLIENT },
    body: new URLSearchParams(form).toString(),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, body.error_description || body.error || `login failed (${res.status})`, body.error);
  return body;
}

/** Logs in with the password grant; throws an ApiError with the identity provider's message when refused. */
export async function login(username, password) {
  const t = await tokenRequest({ grant_type: 'password', username, password });
  saveSession({ username, access_token: t.access_token, refresh_token: t.refresh_token });
}

export function logout() {
  saveSession(null);
}

let refreshing = null;
/** Trades the refresh token for a new access token once, however many requests found the old one expired. */
function refresh() {
  refreshing ??= (async () => {
    const s = session();
    try {
      if (!s?.refresh_token) throw new Error('no refresh token');
      const t = await tokenRequest({ grant_type: 'refresh_token', refresh_token: s.refresh_token });
      saveSession({ ...s, access_token: t.access_token, refresh_token: t.refresh_token ?? s.refresh_token });
      return true;
    } catch {
      saveSession(null);
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

/** One authenticated request; a 401 refreshes the token and tries once more. Resolves to the parsed body. */
export async function request(method, url, body) {
  for (let attempt = 0; ; attempt++) {
    const s = session();
    if (!s) throw new ApiError(401, 'Not logged in');
    const res = await fetch(url, {
      method,
      headers: { Authorization: `bearer ${s.access_token}`, Accept: 'application/json', 'Content-Type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (res.status === 401 && attempt === 0 && (await refresh())) continue;
    const text = await res.text();
    const parsed = text ? safeJson(text) : undefined;
    if (!res.ok) {
      if (res.status === 401) saveSession(null);
      const err = parsed?.errors?.[0];
      throw new ApiError(res.status, err?.detail ?? parsed?.error ?? `${method} ${url} failed (${res.status})`, err?.title);
    }
    return parsed;
  }
}

function safeJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export const get = (url) => request('GET', url);
export const post = (url, body) => request('POST', url, body);

/** Every resource of a V3 list, following `pagination.next`. */
export async function listAll(url) {
  const out = [];
  let next = url;
  while (next) {
    const page = await get(next);
    out.push(...(page.resources ?? []));
    next = page.pagination?.next?.href ?? null;
  }
  return out;
}

/** A V3 list URL with its query (keys in order, values comma-joined as CF expects). */
export function v3(path, query = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') q.set(k, Array.isArray(v) ? v.join(',') : String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

let root = null;
/** Where log-cache is, from the API's root document (`links.log_cache`). */
async function logCacheBase() {
  root ??= fetch('/', { headers: { Accept: 'application/json' } }).then((r) => r.json());
  const href = (await root).links?.log_cache?.href;
  return href ? new URL(href, location.href).toString().replace(/\/$/, '') : location.origin;
}

/**
 * Follows one app's logs as the cf CLI does: the recent lines first, then repeated reads from the newest
 * timestamp seen (start_time is inclusive, so lines at exactly that timestamp are remembered and dropped).
 */
export class LogFollower {
  constructor(appGuid) {
    this.appGuid = appGuid;
    this.cursor = 0n;
    this.seen = new Set();
  }

  async read(query) {
    const base = await logCacheBase();
    const q = new URLSearchParams({ envelope_types: 'LOG', ...query });
    const body = await get(`${base}/api/v1/read/${encodeURIComponent(this.appGuid)}?${q}`);
    return body?.envelopes?.batch ?? [];
  }

  remember(batch) {
    for (const e of batch) {
      const ts = BigInt(e.timestamp);
      if (ts > this.cursor) {
        this.cursor = ts;
        this.seen = new Set();
      }
      if (ts === this.cursor) this.seen.add(keyOf(e));
    }
  }

  /** The last `limit` lines, oldest first. */
  async recent(limit = 200) {
    const batch = (await this.read({ descending: 'true', limit: String(limit), start_time: '0' })).reverse();
    this.remember(batch);
    return batch.map(toLine);
  }

  /** Lines that arrived since the last call, oldest first, each once. */
  async poll() {
    const batch = await this.read({ start_time: this.cursor.toString(), limit: '1000' });
    const fresh = batch.filter((e) => {
      const ts = BigInt(e.timestamp);
      return ts > this.cursor || (ts === this.cursor && !this.seen.has(keyOf(e)));
    });
    this.remember(fresh);
    return fresh.map(toLine);
  }
}

const keyOf = (e) => [e.timestamp, e.instance_id, e.tags?.source_type, e.log?.type, e.log?.payload].join('\u0000');

const decoder = new TextDecoder();
function toLine(e) {
  const bytes = Uint8Array.from(atob(e.log?.payload ?? ''), (ch) => ch.charCodeAt(0));
  return {
    key: keyOf(e),
    time: new Date(Number(BigInt(e.timestamp) / 1000000n)),
    source: `${e.tags?.source_type ?? 'LOG'}${e.instance_id ? `/${e.instance_id}` : ''}`,
    stream: e.log?.type ?? 'OUT',
    text: decoder.decode(bytes).replace(/\r?\n$/, ''),
  };
}

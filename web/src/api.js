// The dashboard's only way to the server: the HTTP API of the same origin,
// with the key the user logged in with (sessionStorage: gone when the tab
// closes), sent as "Authorization: Bearer KEY". No cookies, no other host.

const KEY = 'posthorn.key';

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set(key) { sessionStorage.setItem(KEY, key); },
  clear() { sessionStorage.removeItem(KEY); },
};

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status; // 0: no answer
    this.code = code;
    this.body = body;
  }
}

let unauthorized = () => {};
// Called when the key stops working (revoked while the page is open).
export function onUnauthorized(fn) { unauthorized = fn; }

// An admin key's choice of account ('' = every account): sent as
// ?account= with the requests that list an account's data.
let scope = '';
export function setScope(account) { scope = account || ''; }
export function getScope() { return scope; }

function url(path, query, scoped) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {}))
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, String(v));
  if (scoped && scope) u.searchParams.set('account', scope);
  return u;
}

// api('/v1/stats', {query: {group: 'hour'}}) -> the JSON answer, or
// throws ApiError with the server's error code and message.
export async function api(path, { method = 'GET', query, body, key, scoped = true } = {}) {
  const headers = { Authorization: `Bearer ${key || session.key || ''}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(url(path, query, scoped), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store', credentials: 'omit', redirect: 'error',
    });
  } catch (e) {
    throw new ApiError(0, 'unreachable', `The server did not answer (${e.message}).`, null);
  }
  const text = await res.text();
  let doc = null;
  try { doc = text ? JSON.parse(text) : null; } catch { doc = null; }
  if (!res.ok) {
    const err = (doc && doc.error) || {};
    if (res.status === 401 && !key) unauthorized();
    throw new ApiError(res.status, err.code || `http_${res.status}`,
      err.message || `${res.status} ${res.statusText}`, doc);
  }
  return doc;
}

// Every page of a listing ({items: [...], next}), up to max items.
export async function apiAll(path, field, { query = {}, max = 1000, scoped = true } = {}) {
  const items = [];
  let after;
  do {
    const doc = await api(path, { query: { ...query, after, limit: Math.min(max, 1000) }, scoped });
    items.push(...(doc[field] || []));
    after = doc.next;
  } while (after && items.length < max);
  return { items: items.slice(0, max), more: Boolean(after) };
}

// GET /metrics (no key): the samples of the Prometheus text format as
// {name: [{labels: {k: v}, value}]}.
export async function metrics() {
  let res;
  try {
    res = await fetch('/metrics', { cache: 'no-store', credentials: 'omit' });
  } catch (e) {
    throw new ApiError(0, 'unreachable', `The server did not answer (${e.message}).`, null);
  }
  if (!res.ok) throw new ApiError(res.status, `http_${res.status}`, res.statusText, null);
  return parseMetrics(await res.text());
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || '').matchAll(LABEL)) labels[l[1]] = l[2];
    (out[m[1]] = out[m[1]] || []).push({ labels, value: Number(m[3]) });
  }
  return out;
}

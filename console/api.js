// chute's public API as the console uses it: the Loki read API, the tail websocket
// and /api/v1/cluster. With a token (kept in sessionStorage, never in the URL), every
// request carries `Authorization: Bearer`, and the tail carries it in a websocket
// subprotocol, since browsers cannot set headers on a websocket.

const TOKEN_KEY = 'chute.token';

export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

export function setToken(value) {
  try {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage refused (private mode): the token lasts as long as the field.
  }
}

/** An answer that was not 2xx: its status and chute's message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function get(path, params = {}, headers = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  let res;
  try {
    res = await fetch(url, { headers, cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, `chute did not answer (${e.message})`);
  }
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!res.ok) {
    let message = (body && (body.message || body.error)) || text || res.statusText;
    if (res.status === 401) message = `${message}. Enter a token above.`;
    throw new ApiError(res.status, message);
  }
  return { body, headers: res.headers };
}

/** `query_range` of a log query: entries with stream labels apart from metadata. */
export async function queryLines(query, startNs, endNs, limit, direction = 'backward', stepSeconds = undefined) {
  const params = { query, start: startNs, end: endNs, limit, direction };
  // A log query ignores the step; a metric query typed into the box is drawn with it.
  if (stepSeconds) params.step = `${stepSeconds}s`;
  const { body, headers } = await get(
    '/loki/api/v1/query_range',
    params,
    { 'X-Loki-Response-Encoding-Flags': 'categorize-labels' },
  );
  return { data: body.data, warnings: body.warnings || [], missing: headers.get('x-chute-missing-shards') };
}

/** `query_range` of a metric query, stepping by `stepSeconds`. */
export async function queryMatrix(query, startNs, endNs, stepSeconds) {
  const { body } = await get('/loki/api/v1/query_range', { query, start: startNs, end: endNs, step: `${stepSeconds}s` });
  return body.data;
}

export async function labelNames(startNs, endNs) {
  return (await get('/loki/api/v1/labels', { start: startNs, end: endNs })).body.data;
}

export async function labelValues(name, startNs, endNs) {
  return (await get(`/loki/api/v1/label/${encodeURIComponent(name)}/values`, { start: startNs, end: endNs })).body.data;
}

export async function cluster() {
  return (await get('/api/v1/cluster')).body;
}

/** The subprotocol the tail offers beside its token; chute answers with it. */
const TAIL_PROTOCOL = 'chute.tail';

function base64url(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Opens a live tail of `query`; `onFrame` gets each frame's JSON. */
export function openTail(query, { startNs, limit, onFrame, onClose, onError }) {
  const url = new URL('/loki/api/v1/tail', location.origin);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('query', query);
  if (startNs) url.searchParams.set('start', startNs);
  if (limit) url.searchParams.set('limit', limit);
  const protocols = [TAIL_PROTOCOL];
  const t = token();
  if (t) protocols.push(`base64url.bearer.chute.${base64url(t)}`);
  const ws = new WebSocket(url, protocols);
  ws.addEventListener('message', (ev) => {
    try {
      onFrame(JSON.parse(ev.data));
    } catch (e) {
      onError?.(e);
    }
  });
  ws.addEventListener('close', (ev) => onClose?.(ev));
  ws.addEventListener('error', () => onError?.(new Error('the tail connection failed')));
  return ws;
}

// Small helpers shared by the console's views: elements, time, numbers, LogQL text.

/** Creates an element with attributes (`class`, `text`, `on*` handlers, others as attributes) and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

/** Nanoseconds (a decimal string, as Loki sends them) to milliseconds. */
export function nsToMs(ns) {
  const s = String(ns);
  return s.length > 6 ? Number(s.slice(0, -6)) + Number('0.' + s.slice(-6).padStart(6, '0')) : Number(s) / 1e6;
}

/** Milliseconds to a nanosecond string for the API. */
export function msToNs(ms) {
  return String(BigInt(Math.round(ms)) * 1000000n);
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Local time with milliseconds: `2026-12-02 10:04:05.123`. */
export function fmtTime(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** A `datetime-local` input value for `ms`. */
export function toLocalInput(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = -1;
  do { v /= 1024; i++; } while (v >= 1024 && i < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function fmtDuration(seconds) {
  if (seconds < 1) return `${(seconds * 1000).toFixed(0)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${(seconds / 60).toFixed(1)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

export function fmtRate(perSecond) {
  if (perSecond >= 1000) return `${(perSecond / 1000).toFixed(1)}k/s`;
  return `${perSecond.toFixed(perSecond < 10 ? 1 : 0)}/s`;
}

/** A LogQL string literal. */
export function quote(s) {
  return JSON.stringify(String(s));
}

/** A stream selector for `labels` (an object), e.g. `{app="x", host="y"}`. */
export function selectorOf(labels) {
  const parts = Object.keys(labels).sort().map((k) => `${k}=${quote(labels[k])}`);
  return `{${parts.join(', ')}}`;
}

/**
 * The query with `name="value"` added: inside its first stream selector when it has
 * one (replacing a matcher of the same label), or as a new selector.
 */
export function addMatcher(query, name, value) {
  const matcher = `${name}=${quote(value)}`;
  const q = query.trim();
  const open = q.indexOf('{');
  const close = open < 0 ? -1 : closingBrace(q, open);
  if (open < 0 || close < 0) return `{${matcher}}${q ? ' ' + q : ''}`;
  const inside = q.slice(open + 1, close).trim();
  const kept = splitMatchers(inside).filter((m) => !new RegExp(`^${name}\\s*(=|!=|=~|!~)`).test(m));
  kept.push(matcher);
  return `${q.slice(0, open)}{${kept.join(', ')}}${q.slice(close + 1)}`;
}

function closingBrace(q, open) {
  let inString = null;
  for (let i = open + 1; i < q.length; i++) {
    const c = q[i];
    if (inString) {
      if (c === '\\' && inString === '"') i++;
      else if (c === inString) inString = null;
    } else if (c === '"' || c === '`') inString = c;
    else if (c === '}') return i;
  }
  return -1;
}

function splitMatchers(inside) {
  const out = [];
  let cur = '';
  let inString = null;
  for (let i = 0; i < inside.length; i++) {
    const c = inside[i];
    if (inString) {
      cur += c;
      if (c === '\\' && inString === '"') cur += inside[++i] ?? '';
      else if (c === inString) inString = null;
    } else if (c === '"' || c === '`') { inString = c; cur += c; }
    else if (c === ',') { if (cur.trim()) out.push(cur.trim()); cur = ''; }
    else cur += c;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

/** The levels chute's `level` label takes, most severe first. */
export const LEVELS = ['critical', 'error', 'warning', 'info', 'debug', 'unknown'];

export function levelOf(labels) {
  const l = labels && labels.level;
  return LEVELS.includes(l) ? l : 'unknown';
}

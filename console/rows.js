// The result list: a virtualized list of log lines, newest first. Only the rows in
// view (and a few around) are in the DOM, so thousands of lines scroll smoothly. A
// row expands to every field of its record, with "show context" and "copy as JSON".

import { h, fmtTime, nsToMs, levelOf } from './util.js';

/** Height of a collapsed row, in pixels (style.css gives `.row-summary` this height). */
const ROW_HEIGHT = 26;
/** Rows rendered beyond each edge of the view. */
const OVERSCAN = 12;

export class RowList {
  /**
   * @param {HTMLElement} viewport the scrolling element
   * @param {{onContext: Function, onCopy: Function}} actions
   */
  constructor(viewport, actions) {
    this.viewport = viewport;
    this.actions = actions;
    this.rows = [];
    this.expanded = new Map(); // row id → measured height
    this.rendered = new Map(); // row id → element
    this.tops = [0];
    this.spacer = h('div', { class: 'spacer', role: 'list', 'aria-label': 'Log lines, newest first' });
    this.viewport.append(this.spacer);
    this.frame = 0;
    this.viewport.addEventListener('scroll', () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(this.viewport);
  }

  /** Replaces every row. */
  setRows(rows) {
    this.rows = rows;
    this.expanded.clear();
    for (const el of this.rendered.values()) el.remove();
    this.rendered.clear();
    this.layout();
    this.viewport.scrollTop = 0;
    this.render();
  }

  /** Adds rows above the others (newer lines), keeping at most `cap`; keeps what is in view in place. */
  prepend(rows, cap) {
    if (!rows.length) return;
    const before = this.viewport.scrollTop;
    this.rows = rows.concat(this.rows);
    if (this.rows.length > cap) {
      for (const r of this.rows.splice(cap)) {
        this.expanded.delete(r.id);
        this.rendered.get(r.id)?.remove();
        this.rendered.delete(r.id);
      }
    }
    this.layout();
    if (before > 0) {
      // Scrolled away from the newest lines: what the reader looks at stays put.
      let added = 0;
      for (const r of rows) added += this.expanded.get(r.id) || ROW_HEIGHT;
      this.viewport.scrollTop = before + added;
    }
    this.render();
  }

  get atTop() {
    return this.viewport.scrollTop < ROW_HEIGHT / 2;
  }

  scrollToTop() {
    this.viewport.scrollTop = 0;
    this.render();
  }

  layout() {
    const tops = new Array(this.rows.length + 1);
    tops[0] = 0;
    for (let i = 0; i < this.rows.length; i++) {
      tops[i + 1] = tops[i] + (this.expanded.get(this.rows[i].id) || ROW_HEIGHT);
    }
    this.tops = tops;
    this.spacer.style.height = `${tops[this.rows.length]}px`;
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  /** The index of the row at `y` pixels from the top. */
  indexAt(y) {
    let lo = 0;
    let hi = this.rows.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.tops[mid + 1] <= y) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  render() {
    const top = this.viewport.scrollTop;
    const bottom = top + this.viewport.clientHeight;
    const first = Math.max(0, this.indexAt(top) - OVERSCAN);
    const last = Math.min(this.rows.length, this.indexAt(bottom) + OVERSCAN + 1);
    const keep = new Set();
    for (let i = first; i < last; i++) {
      const row = this.rows[i];
      keep.add(row.id);
      let el = this.rendered.get(row.id);
      if (!el) {
        el = this.rowElement(row);
        this.rendered.set(row.id, el);
        this.spacer.append(el);
      }
      el.style.top = `${this.tops[i]}px`;
      el.setAttribute('aria-posinset', i + 1);
      el.setAttribute('aria-setsize', this.rows.length);
    }
    for (const [id, el] of this.rendered) {
      if (!keep.has(id)) {
        el.remove();
        this.rendered.delete(id);
      }
    }
    this.measure();
  }

  /** Heights of expanded rows in view: when one changed, lays out again. */
  measure() {
    let changed = false;
    for (const [id, el] of this.rendered) {
      if (!this.expanded.has(id)) continue;
      const height = el.offsetHeight;
      if (height && height !== this.expanded.get(id)) {
        this.expanded.set(id, height);
        changed = true;
      }
    }
    if (changed) {
      this.layout();
      for (let i = 0; i < this.rows.length; i++) {
        const el = this.rendered.get(this.rows[i].id);
        if (el) el.style.top = `${this.tops[i]}px`;
      }
    }
  }

  toggle(row) {
    const el = this.rendered.get(row.id);
    if (this.expanded.has(row.id)) this.expanded.delete(row.id);
    else this.expanded.set(row.id, ROW_HEIGHT);
    if (el) {
      const fresh = this.rowElement(row);
      el.replaceWith(fresh);
      this.rendered.set(row.id, fresh);
      fresh.querySelector('.row-summary').focus();
    }
    this.layout();
    this.render();
  }

  rowElement(row) {
    const open = this.expanded.has(row.id);
    const who = [row.labels.app, row.labels.host].filter(Boolean).join(' @ ');
    const summary = h(
      'button',
      {
        type: 'button',
        class: 'row-summary',
        'aria-expanded': open ? 'true' : 'false',
        onclick: () => this.toggle(row),
      },
      h('time', { class: 'ts', datetime: new Date(row.ms).toISOString() }, fmtTime(row.ms)),
      h('span', { class: `lvl lvl-${row.level}` }, row.level),
      h('span', { class: 'who' }, who),
      h('span', { class: 'msg' }, row.line),
    );
    const el = h('div', { class: `row level-${row.level}${open ? ' open' : ''}`, role: 'listitem', 'data-id': row.id }, summary);
    if (open) el.append(this.details(row));
    return el;
  }

  details(row) {
    const pairs = (title, obj) => {
      const keys = Object.keys(obj || {});
      if (!keys.length) return null;
      return h(
        'div',
        { class: 'fieldset' },
        h('h3', {}, title),
        h('dl', {}, keys.sort().flatMap((k) => [h('dt', {}, k), h('dd', {}, String(obj[k]))])),
      );
    };
    return h(
      'div',
      { class: 'details' },
      h('pre', { class: 'line' }, row.line),
      h(
        'div',
        { class: 'fieldsets' },
        pairs('Time', { local: fmtTime(row.ms), utc: new Date(row.ms).toISOString(), nanoseconds: row.ns }),
        pairs('Labels', row.labels),
        pairs('Structured metadata', row.meta),
        pairs('Parsed', row.parsed),
      ),
      h(
        'div',
        { class: 'actions' },
        h('button', { type: 'button', onclick: () => this.actions.onContext(row) }, 'Show context'),
        h('button', { type: 'button', onclick: () => this.actions.onCopy(row) }, 'Copy as JSON'),
      ),
    );
  }
}

/** A record as JSON, as "copy as JSON" gives it. */
export function rowJson(row) {
  return JSON.stringify(
    {
      timestamp: new Date(row.ms).toISOString(),
      timestamp_ns: row.ns,
      labels: row.labels,
      structured_metadata: row.meta,
      parsed: row.parsed,
      line: row.line,
    },
    null,
    2,
  );
}

let nextId = 0;

/**
 * A row of the list from a Loki stream value: `[ts, line]` or, with categorized
 * labels, `[ts, line, {structuredMetadata, parsed}]`.
 */
export function makeRow(labels, value) {
  const [ns, line, extra] = value;
  return {
    id: ++nextId,
    ns: String(ns),
    ms: nsToMs(ns),
    line,
    labels: labels || {},
    meta: (extra && extra.structuredMetadata) || {},
    parsed: (extra && extra.parsed) || {},
    level: levelOf(labels),
  };
}

/** The rows of a Loki `streams` result, newest first. */
export function rowsOf(streams) {
  const rows = [];
  for (const s of streams || []) for (const v of s.values) rows.push(makeRow(s.stream, v));
  rows.sort((a, b) => (a.ns.length - b.ns.length || (a.ns < b.ns ? -1 : a.ns > b.ns ? 1 : 0)) * -1);
  return rows;
}

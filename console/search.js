// The search view: the query box (with history and examples), the time range,
// the volume histogram, the results, their context, and the live tail. The query,
// the range and live mode live in the URL, so a reload or a shared link gives the
// same view.

import * as api from './api.js';
import { $, h, msToNs, toLocalInput, fmtTime, addMatcher, selectorOf } from './util.js';
import { Histogram, stepFor, volumeQuery } from './histogram.js';
import { RowList, rowsOf, rowJson } from './rows.js';
import { LabelBrowser } from './labels.js';
import { LiveTail } from './tail.js';

const RANGES = { '5m': 5 * 60e3, '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3 };
const HISTORY_KEY = 'chute.history';
const HISTORY_MAX = 20;
/** Lines before and after a record that "show context" shows. */
const CONTEXT_LINES = 10;
/** The labels that make a record's stream for its context (all but `level`). */
const CONTEXT_LABELS = ['tenant', 'host', 'app', 'facility', 'procid', 'msgid'];

export const EXAMPLES = [
  ['Everything of one app', '{app="nginx"}'],
  ['Errors and worse', '{level=~"error|critical"}'],
  ['Lines containing a word', '{host=~"web-.*"} |= "timeout"'],
  ['Not containing', '{app="sshd"} != "Accepted"'],
  ['JSON lines, filtered on a field', '{app="api"} | json | status >= 500'],
  ['logfmt, by duration', '{app="api"} | logfmt | duration > 1s'],
];

export class SearchView {
  constructor(status) {
    this.status = status;
    this.form = $('#query-form');
    this.input = $('#query');
    this.range = $('#range');
    this.from = $('#from');
    this.to = $('#to');
    this.custom = $('#custom-range');
    this.liveButton = $('#live');
    this.limit = $('#limit');
    this.summary = $('#summary');
    this.running = 0;
    this.list = new RowList($('#results'), {
      onContext: (row) => this.context(row),
      onCopy: (row) => this.copy(row),
    });
    this.histogram = new Histogram($('#volume'), (start, end) => this.zoom(start, end));
    this.tail = new LiveTail(this.list, {
      bar: $('#tail-bar'),
      pause: $('#pause'),
      cap: $('#cap'),
      newLines: $('#new-lines'),
      state: $('#tail-state'),
      onStatus: (text, bad) => this.status(text, bad),
    });
    this.labels = new LabelBrowser($('#labels-body'), () => this.rangeNs(), (name, value) => {
      this.input.value = addMatcher(this.input.value, name, value);
      this.input.focus();
    });
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    this.range.addEventListener('change', () => {
      this.custom.hidden = this.range.value !== 'custom';
      if (this.range.value === 'custom' && !this.from.value) {
        const now = Date.now();
        this.from.value = toLocalInput(now - 3600e3);
        this.to.value = toLocalInput(now);
      }
      if (this.range.value !== 'custom') this.submit();
    });
    this.limit.addEventListener('change', () => this.submit());
    this.liveButton.addEventListener('click', () => {
      this.live = !this.live;
      this.submit();
    });
    $('#labels-panel').addEventListener('toggle', (e) => e.target.open && this.labels.open());
    $('#history-panel').addEventListener('toggle', (e) => e.target.open && this.showHistory());
    this.showExamples();
    $('#context-close').addEventListener('click', () => $('#context').close());
  }

  /** Reads the URL into the form and runs what it says. */
  load(params) {
    this.input.value = params.get('query') || '';
    const r = params.get('range') || '1h';
    this.range.value = r in RANGES || r === 'custom' ? r : '1h';
    this.custom.hidden = this.range.value !== 'custom';
    if (this.range.value === 'custom') {
      const from = Date.parse(params.get('from') || '');
      const to = Date.parse(params.get('to') || '');
      this.from.value = Number.isNaN(from) ? '' : toLocalInput(from);
      this.to.value = Number.isNaN(to) ? '' : toLocalInput(to);
    }
    const limit = params.get('limit') || '1000';
    this.limit.value = [...this.limit.options].some((o) => o.value === limit) ? limit : '1000';
    this.live = params.get('live') === '1';
    this.run();
  }

  /** The URL of the view as the form shows it. */
  params() {
    const p = new URLSearchParams();
    if (this.input.value.trim()) p.set('query', this.input.value.trim());
    p.set('range', this.range.value);
    if (this.range.value === 'custom') {
      const [start, end] = this.rangeMs();
      p.set('from', new Date(start).toISOString());
      p.set('to', new Date(end).toISOString());
    }
    if (this.limit.value !== '1000') p.set('limit', this.limit.value);
    if (this.live) p.set('live', '1');
    return p;
  }

  submit() {
    const url = `/?${this.params()}`;
    if (url !== location.pathname + location.search) history.pushState(null, '', url);
    this.run();
  }

  rangeMs() {
    if (this.range.value === 'custom') {
      const from = Date.parse(this.from.value);
      const to = Date.parse(this.to.value);
      const end = Number.isNaN(to) ? Date.now() : to;
      const start = Number.isNaN(from) ? end - 3600e3 : from;
      return [Math.min(start, end - 1000), end];
    }
    const end = Date.now();
    return [end - RANGES[this.range.value], end];
  }

  rangeNs() {
    const [start, end] = this.rangeMs();
    return [msToNs(start), msToNs(end)];
  }

  zoom(start, end) {
    this.range.value = 'custom';
    this.custom.hidden = false;
    this.from.value = toLocalInput(start);
    this.to.value = toLocalInput(end);
    // datetime-local keeps seconds: the zoom is kept to the second.
    this.submit();
  }

  set live(on) {
    this._live = on;
    this.liveButton.setAttribute('aria-pressed', on ? 'true' : 'false');
    this.liveButton.textContent = on ? 'Stop live' : 'Live';
  }

  get live() {
    return this._live;
  }

  async run() {
    const query = this.input.value.trim();
    // Every run, live or not, makes the answers of earlier runs stale.
    const run = ++this.running;
    document.title = query ? `${query} · chute` : 'chute';
    $('#volume').hidden = this.live && query !== '';
    if (!query) {
      this.tail.stop();
      this.list.setRows([]);
      this.histogram.clear('Enter a query to see its volume');
      this.summary.textContent = '';
      this.status('Enter a LogQL query, such as {app="nginx"}, or pick one from the examples or the labels.');
      return;
    }
    this.remember(query);
    if (this.live) {
      this.histogram.clear('Live: the volume shows the chosen range once live mode is off');
      this.summary.textContent = '';
      this.status(`Following ${query}`);
      this.tail.start(query);
      return;
    }
    this.tail.stop();
    const [start, end] = this.rangeMs();
    const startNs = msToNs(start);
    const endNs = msToNs(end);
    const step = stepFor(end - start);
    this.status('Running…');
    $('#results').setAttribute('aria-busy', 'true');
    // The step is the chart's, should the query be a metric query drawn there.
    const lines = api.queryLines(query, startNs, endNs, this.limit.value, 'backward', step);
    // Points at start + step, start + 2 step, ...: each counts the step before it,
    // so the bars tile the range and every line is in one.
    const stepMs = step * 1000;
    const chartEnd = start + Math.max(1, Math.ceil((end - start) / stepMs)) * stepMs;
    const volume = api.queryMatrix(volumeQuery(query, step), msToNs(start + stepMs), msToNs(chartEnd), step);
    volume.catch(() => {}); // Read below, unless the query itself is a metric query.
    try {
      const { data, warnings, missing } = await lines;
      if (run !== this.running) return;
      if (data.resultType !== 'streams') {
        this.list.setRows([]);
        this.status('This is a metric query: its result is drawn above. Run a log query to see lines.');
        this.histogram.draw(data.result, start, end, step);
        this.summary.textContent = '';
        return;
      }
      const rows = rowsOf(data.result);
      this.list.setRows(rows);
      const more = rows.length >= Number(this.limit.value) ? ` (the newest ${rows.length}; raise the limit or narrow the range for more)` : '';
      this.summary.textContent = `${rows.length} lines${more}, ${fmtTime(start)} to ${fmtTime(end)}`;
      const notes = [...warnings];
      if (missing) notes.push(`shards ${missing} did not answer`);
      this.status(notes.length ? `Partial answer: ${notes.join('; ')}` : `${rows.length} lines`, notes.length > 0);
    } catch (e) {
      if (run !== this.running) return;
      this.list.setRows([]);
      this.summary.textContent = '';
      this.status(e.message, true);
    } finally {
      if (run === this.running) $('#results').setAttribute('aria-busy', 'false');
    }
    try {
      const matrix = await volume;
      if (run === this.running) this.histogram.draw(matrix.result, start, chartEnd, step);
    } catch (e) {
      if (run === this.running) this.histogram.clear(`No volume: ${e.message}`);
    }
  }

  /** Lines before and after `row` in its stream (its labels but the level). */
  async context(row) {
    const dialog = $('#context');
    const body = $('#context-body');
    // chute's stream labels only: a live line's labels also hold its metadata.
    const labels = {};
    for (const name of CONTEXT_LABELS) if (row.labels[name]) labels[name] = row.labels[name];
    const selector = selectorOf(labels);
    $('#context-title').textContent = `Context: ${selector}`;
    dialog.showModal();
    if (Object.keys(labels).length === 0) {
      body.replaceChildren(h('p', { class: 'muted' }, 'This line has no stream labels to find its neighbours by.'));
      return;
    }
    body.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
    try {
      const day = 86400e3;
      const [before, after] = await Promise.all([
        api.queryLines(selector, msToNs(row.ms - day), row.ns, CONTEXT_LINES, 'backward'),
        api.queryLines(selector, row.ns, msToNs(row.ms + day), CONTEXT_LINES + 1, 'forward'),
      ]);
      const rows = rowsOf([...before.data.result, ...after.data.result]).reverse();
      const seen = new Set();
      const lines = rows.filter((r) => {
        const key = `${r.ns}\u0000${r.line}`;
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
      });
      if (!lines.some((r) => r.ns === row.ns && r.line === row.line)) lines.push(row);
      lines.sort((a, b) => (a.ns.length - b.ns.length) || (a.ns < b.ns ? -1 : a.ns > b.ns ? 1 : 0));
      body.replaceChildren(
        h('p', { class: 'muted' }, `Up to ${CONTEXT_LINES} lines before and after, oldest first, from the same stream: ${selector} (any level).`),
        h(
          'ol',
          { class: 'context-lines' },
          lines.map((r) =>
            h(
              'li',
              { class: `level-${r.level}${r.ns === row.ns && r.line === row.line ? ' current' : ''}`, 'aria-current': r.ns === row.ns && r.line === row.line ? 'true' : false },
              h('time', { class: 'ts' }, fmtTime(r.ms)),
              ' ',
              h('span', { class: `lvl lvl-${r.level}` }, r.level),
              ' ',
              r.line,
            ),
          ),
        ),
      );
    } catch (e) {
      body.replaceChildren(h('p', { class: 'error', role: 'alert' }, e.message));
    }
  }

  async copy(row) {
    const text = rowJson(row);
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const area = h('textarea', { class: 'offscreen', 'aria-hidden': 'true' });
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand('copy');
      area.remove();
    }
    this.status('Copied the record as JSON');
  }

  history() {
    try {
      const list = JSON.parse(localStorage.getItem(HISTORY_KEY) || '[]');
      return Array.isArray(list) ? list.filter((q) => typeof q === 'string') : [];
    } catch {
      return [];
    }
  }

  remember(query) {
    const list = [query, ...this.history().filter((q) => q !== query)].slice(0, HISTORY_MAX);
    try {
      localStorage.setItem(HISTORY_KEY, JSON.stringify(list));
    } catch {
      // Storage full or refused: history is a convenience.
    }
  }

  showHistory() {
    const list = this.history();
    $('#history-body').replaceChildren(
      list.length
        ? h('ul', { class: 'picks' }, list.map((q) => h('li', {}, h('button', { type: 'button', class: 'pick', onclick: () => this.pick(q) }, q))))
        : h('p', { class: 'muted' }, 'Queries you run appear here.'),
    );
  }

  showExamples() {
    $('#examples-body').replaceChildren(
      h(
        'ul',
        { class: 'picks' },
        EXAMPLES.map(([what, q]) =>
          h('li', {}, h('button', { type: 'button', class: 'pick', onclick: () => this.pick(q) }, h('code', {}, q), h('span', { class: 'muted' }, ` ${what}`))),
        ),
      ),
    );
  }

  pick(query) {
    this.input.value = query;
    for (const d of document.querySelectorAll('.query-tools details')) d.open = false;
    this.submit();
  }
}

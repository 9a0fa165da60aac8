// The cluster page: the nodes (up or down, round trip), the shards and their
// owners, the queue in front of each destination, and this node's ingest and
// write rates over the last minutes, from samples of GET /api/v1/cluster.

import * as api from './api.js';
import { $, h, fmtBytes, fmtDuration, fmtRate } from './util.js';

const POLL_MS = 2000;
/** Samples kept for the rates: five minutes. */
const WINDOW_MS = 5 * 60e3;

/**
 * A node as this one knows it: `self`; `up` or `down` by the last forward to it
 * (its round trip or error); `unknown` when nothing was sent to it yet.
 */
export function nodeState(n) {
  if (n.local) return 'self';
  if (n.up) return 'up';
  return n.last_rtt_ms == null && !n.last_error ? 'unknown' : 'down';
}

export class ClusterView {
  constructor(status) {
    this.status = status;
    this.samples = loadSamples();
    this.timer = 0;
  }

  start() {
    if (this.timer) return;
    const tick = async () => {
      await this.refresh();
      if (this.timer) this.timer = setTimeout(tick, POLL_MS);
    };
    this.timer = setTimeout(tick, 0);
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = 0;
  }

  async refresh() {
    let report;
    try {
      report = await api.cluster();
    } catch (e) {
      this.status(e.message, true);
      $('#cluster-body').setAttribute('aria-busy', 'false');
      return;
    }
    if (report.totals && report.totals.at_ms) {
      // A node that restarted counts from 0 again: its older samples go.
      const last = this.samples[this.samples.length - 1];
      if (last && (last.node !== report.node || report.totals.records_accepted < last.records_accepted)) this.samples = [];
      this.samples.push({ ...report.totals, node: report.node });
      const oldest = report.totals.at_ms - WINDOW_MS;
      while (this.samples.length > 2 && this.samples[0].at_ms < oldest) this.samples.shift();
      saveSamples(this.samples);
    }
    this.render(report);
    const down = report.nodes.filter((n) => nodeState(n) === 'down').map((n) => n.id);
    const quiet = report.nodes.filter((n) => nodeState(n) === 'unknown').map((n) => n.id);
    const notes = [];
    if (down.length) notes.push(`Down: ${down.join(', ')}`);
    if (quiet.length) notes.push(`not contacted yet: ${quiet.join(', ')}`);
    this.status(notes.length ? notes.join('; ') : `All ${report.nodes.length} nodes up`, down.length > 0);
  }

  render(r) {
    const queue = (q) => (q ? `${fmtBytes(q.bytes)} in ${q.batches} batches, oldest ${fmtDuration(q.oldest_age_seconds)}` : '–');
    const state = (up, local) => {
      const text = local ? 'self' : up ? 'up' : 'down';
      return h('span', { class: `state state-${up ? 'up' : 'down'}` }, text);
    };
    const nodeBadge = (n) => {
      const s = nodeState(n);
      const shown = s === 'unknown' ? 'not contacted yet' : s;
      return h('span', { class: `state state-${s === 'self' ? 'up' : s}` }, shown);
    };
    const nodes = table(
      'Nodes',
      ['Node', 'State', 'Round trip', 'Queue to it', 'Dead letters', 'Last error', 'URL'],
      r.nodes.map((n) =>
        h(
          'tr',
          { 'data-node': n.id, 'data-state': nodeState(n) },
          h('th', { scope: 'row' }, n.id),
          h('td', {}, nodeBadge(n)),
          h('td', {}, n.last_rtt_ms == null ? '–' : `${n.last_rtt_ms.toFixed(1)} ms`),
          h('td', {}, queue(n.queue)),
          h('td', {}, String(n.dead_letters || 0)),
          h('td', { class: 'error-text' }, n.last_error || ''),
          h('td', {}, n.url),
        ),
      ),
    );
    const shards = table(
      'Shards',
      ['Shard', 'Owner', 'State', 'Queue to its writer', 'Last error'],
      r.shards.map((s) =>
        h(
          'tr',
          { 'data-shard': s.id },
          h('th', { scope: 'row' }, String(s.id)),
          h('td', {}, s.owner),
          h('td', {}, s.local ? state(s.up !== false, false) : h('span', { class: 'state state-remote' }, 'remote')),
          h('td', {}, queue(s.queue)),
          h('td', { class: 'error-text' }, s.last_error || ''),
        ),
      ),
    );
    $('#cluster-body').replaceChildren(
      h('p', { class: 'muted' }, `This node: ${r.node} · layout ${r.layout} · shard key ${JSON.stringify(r.shard_key)}`),
      h('div', { class: 'rates' }, this.rate('Ingest', 'records_accepted', 'records accepted per second'), this.rate('Writes', 'rows_written', 'rows written to this node’s shards per second')),
      nodes,
      shards,
    );
    $('#cluster-body').setAttribute('aria-busy', 'false');
  }

  /** A sparkline of a counter's rate over the samples, and its latest value. */
  rate(title, key, what) {
    const points = [];
    for (let i = 1; i < this.samples.length; i++) {
      const a = this.samples[i - 1];
      const b = this.samples[i];
      const dt = (b.at_ms - a.at_ms) / 1000;
      if (dt > 0) points.push([b.at_ms, Math.max(0, (b[key] - a[key]) / dt)]);
    }
    const latest = points.length ? points[points.length - 1][1] : null;
    const width = 240;
    const height = 48;
    const SVG = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    svg.setAttribute('width', width);
    svg.setAttribute('height', height);
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', `${title}: ${latest == null ? 'measuring' : fmtRate(latest)} over the last minutes`);
    if (points.length === 1) points.unshift([points[0][0] - POLL_MS, points[0][1]]);
    if (points.length > 1) {
      const t0 = points[0][0];
      const t1 = points[points.length - 1][0];
      const max = Math.max(1, ...points.map((p) => p[1]));
      const d = points
        .map(([t, v], i) => `${i ? 'L' : 'M'}${(((t - t0) / Math.max(1, t1 - t0)) * (width - 2) + 1).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`)
        .join(' ');
      const path = document.createElementNS(SVG, 'path');
      path.setAttribute('d', d);
      path.setAttribute('class', 'spark');
      svg.append(path);
    }
    return h(
      'section',
      { class: 'rate', 'aria-label': title, 'data-rate': key },
      h('h3', {}, title),
      h('p', { class: 'rate-value' }, latest == null ? 'measuring…' : fmtRate(latest)),
      svg,
      h('p', { class: 'muted' }, what),
    );
  }
}

/** The samples are kept for the tab (sessionStorage), so a reload keeps the rates' history. */
const SAMPLES_KEY = 'chute.cluster.samples';

function loadSamples() {
  try {
    const samples = JSON.parse(sessionStorage.getItem(SAMPLES_KEY) || '[]');
    const fresh = Date.now() - WINDOW_MS;
    return Array.isArray(samples) ? samples.filter((s) => s && s.at_ms > fresh) : [];
  } catch {
    return [];
  }
}

function saveSamples(samples) {
  try {
    sessionStorage.setItem(SAMPLES_KEY, JSON.stringify(samples));
  } catch {
    // Storage refused: the rates start again after a reload.
  }
}

function table(caption, headers, rows) {
  return h(
    'table',
    { class: 'grid' },
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows),
  );
}

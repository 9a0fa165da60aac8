// The volume histogram: lines per step by level over the range, as stacked SVG
// bars above the results. Dragging across it selects a time range to zoom into.

import { LEVELS } from './util.js';

const SVG = 'http://www.w3.org/2000/svg';
const HEIGHT = 120;
const AXIS = 18;

function svg(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** Steps the histogram uses, in seconds: about 60 bars over any range. */
const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

export function stepFor(rangeMs) {
  const want = rangeMs / 1000 / 60;
  return STEPS.find((s) => s >= want) || STEPS[STEPS.length - 1];
}

/**
 * The metric query behind the histogram: lines per step by level, over the log
 * query as written (its line filters and stages included).
 */
export function volumeQuery(query, stepSeconds) {
  // A newline first: a query may end in a `# comment`, which would swallow the range.
  return `sum by (level) (count_over_time(${query}\n [${stepSeconds}s]))`;
}

export class Histogram {
  /**
   * @param {HTMLElement} figure where the chart goes
   * @param {(startMs: number, endMs: number) => void} onZoom called with a dragged range
   */
  constructor(figure, onZoom) {
    this.figure = figure;
    this.onZoom = onZoom;
    this.svg = svg('svg', { class: 'histogram', role: 'img', 'aria-label': 'Lines over time by level', height: HEIGHT });
    this.title = svg('title');
    this.svg.append(this.title);
    this.bars = svg('g', { class: 'bars' });
    this.axis = svg('g', { class: 'axis' });
    this.selection = svg('rect', { class: 'selection', y: 0, height: HEIGHT - AXIS, width: 0, visibility: 'hidden' });
    this.svg.append(this.bars, this.axis, this.selection);
    this.legend = document.createElement('ul');
    this.legend.className = 'legend';
    this.legend.setAttribute('aria-label', 'Levels');
    figure.append(this.svg, this.legend);
    this.range = null;
    this.drag = null;
    this.svg.addEventListener('pointerdown', (e) => this.pointerDown(e));
    this.svg.addEventListener('pointermove', (e) => this.pointerMove(e));
    this.svg.addEventListener('pointerup', (e) => this.pointerUp(e));
    new ResizeObserver(() => this.last && this.draw(...this.last)).observe(figure);
  }

  /**
   * Draws `matrix` (Loki's matrix result) over `startMs`..`endMs` in steps of `stepSeconds`.
   */
  draw(matrix, startMs, endMs, stepSeconds) {
    this.last = [matrix, startMs, endMs, stepSeconds];
    this.range = [startMs, endMs];
    const width = Math.max(200, this.figure.clientWidth);
    this.svg.setAttribute('width', width);
    this.svg.setAttribute('viewBox', `0 0 ${width} ${HEIGHT}`);
    this.bars.replaceChildren();
    this.axis.replaceChildren();
    // Per bucket end (ms), per level: count.
    const buckets = new Map();
    const seen = new Set();
    let total = 0;
    for (const series of matrix) {
      const level = LEVELS.includes(series.metric.level) ? series.metric.level : 'unknown';
      for (const [t, v] of series.values) {
        const n = Number(v);
        if (!n) continue;
        seen.add(level);
        total += n;
        const at = Math.round(Number(t) * 1000);
        const b = buckets.get(at) || {};
        b[level] = (b[level] || 0) + n;
        buckets.set(at, b);
      }
    }
    let max = 0;
    for (const b of buckets.values()) max = Math.max(max, Object.values(b).reduce((a, c) => a + c, 0));
    const plot = HEIGHT - AXIS;
    const x = (ms) => ((ms - startMs) / (endMs - startMs)) * width;
    const barWidth = Math.max(1, (stepSeconds * 1000 * width) / (endMs - startMs) - 1);
    for (const [at, b] of buckets) {
      let y = plot;
      for (const level of LEVELS) {
        const n = b[level];
        if (!n) continue;
        const hgt = Math.max(1, (n / max) * (plot - 4));
        y -= hgt;
        const rect = svg('rect', {
          class: `bar lvl-fill-${level}`,
          x: x(at - stepSeconds * 1000).toFixed(1),
          y: y.toFixed(1),
          width: barWidth.toFixed(1),
          height: hgt.toFixed(1),
          'data-level': level,
          'data-count': n,
        });
        const tip = svg('title');
        tip.textContent = `${n} ${level} until ${new Date(at).toLocaleString()}`;
        rect.append(tip);
        this.bars.append(rect);
      }
    }
    this.axis.append(svg('line', { x1: 0, x2: width, y1: plot + 0.5, y2: plot + 0.5, class: 'baseline' }));
    const ticks = Math.max(2, Math.floor(width / 140));
    for (let i = 0; i <= ticks; i++) {
      const ms = startMs + ((endMs - startMs) * i) / ticks;
      const label = svg('text', { x: x(ms), y: HEIGHT - 4, 'text-anchor': i === 0 ? 'start' : i === ticks ? 'end' : 'middle' });
      label.textContent = tickLabel(ms, endMs - startMs);
      this.axis.append(label);
    }
    this.title.textContent = `${total} lines from ${new Date(startMs).toLocaleString()} to ${new Date(endMs).toLocaleString()}; drag to zoom`;
    this.svg.setAttribute('aria-label', this.title.textContent);
    this.legend.replaceChildren(
      ...LEVELS.filter((l) => seen.has(l)).map((l) => {
        const li = document.createElement('li');
        const swatch = document.createElement('span');
        swatch.className = `swatch lvl-bg-${l}`;
        li.append(swatch, l);
        return li;
      }),
    );
  }

  /** An empty chart with a message (a metric error, or live mode). */
  clear(message) {
    this.last = null;
    this.range = null;
    this.bars.replaceChildren();
    this.axis.replaceChildren();
    this.legend.replaceChildren();
    const note = svg('text', { x: 8, y: (HEIGHT - AXIS) / 2, class: 'note' });
    note.textContent = message;
    this.axis.append(note);
    this.title.textContent = message;
    this.svg.setAttribute('aria-label', message);
  }

  xOf(e) {
    const box = this.svg.getBoundingClientRect();
    return Math.min(Math.max(0, e.clientX - box.left), box.width);
  }

  pointerDown(e) {
    if (!this.range || e.button !== 0) return;
    this.drag = { from: this.xOf(e) };
    this.svg.setPointerCapture(e.pointerId);
  }

  pointerMove(e) {
    if (!this.drag) return;
    const to = this.xOf(e);
    this.selection.setAttribute('x', Math.min(this.drag.from, to));
    this.selection.setAttribute('width', Math.abs(to - this.drag.from));
    this.selection.setAttribute('visibility', 'visible');
  }

  pointerUp(e) {
    if (!this.drag) return;
    const from = this.drag.from;
    const to = this.xOf(e);
    this.drag = null;
    this.selection.setAttribute('visibility', 'hidden');
    if (Math.abs(to - from) < 4) return;
    const width = this.svg.getBoundingClientRect().width;
    const [start, end] = this.range;
    const ms = (px) => start + ((end - start) * px) / width;
    this.onZoom(Math.round(ms(Math.min(from, to))), Math.round(ms(Math.max(from, to))));
  }
}

function tickLabel(ms, span) {
  const d = new Date(ms);
  const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: span < 600000 ? '2-digit' : undefined });
  return span > 86400000 * 1.5 ? `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${hm}` : hm;
}

// Live tail: follows the query over the tail websocket, newest lines on top. It
// can be paused (lines wait, up to the cap), keeps at most the chosen number of
// lines, and says how many new lines came while the reader is scrolled away.

import * as api from './api.js';
import { msToNs } from './util.js';
import { rowsOf } from './rows.js';

export class LiveTail {
  /**
   * @param {import('./rows.js').RowList} list
   * @param {{bar: HTMLElement, pause: HTMLButtonElement, cap: HTMLSelectElement,
   *   newLines: HTMLButtonElement, state: HTMLElement, onStatus: Function}} ui
   */
  constructor(list, ui) {
    this.list = list;
    this.ui = ui;
    this.ws = null;
    this.paused = false;
    this.waiting = [];
    this.unseen = 0;
    this.received = 0;
    ui.pause.addEventListener('click', () => this.setPaused(!this.paused));
    ui.newLines.addEventListener('click', () => {
      this.list.scrollToTop();
      this.markSeen();
    });
    list.viewport.addEventListener('scroll', () => {
      if (this.list.atTop) this.markSeen();
    });
  }

  get running() {
    return this.ws !== null;
  }

  get cap() {
    return Number(this.ui.cap.value) || 1000;
  }

  start(query) {
    this.stop();
    this.list.setRows([]);
    this.waiting = [];
    this.received = 0;
    this.markSeen();
    this.setPaused(false);
    this.ui.bar.hidden = false;
    this.setState('connecting…');
    const ws = api.openTail(query, {
      startNs: msToNs(Date.now() - 5 * 60 * 1000),
      limit: 100,
      onFrame: (frame) => this.frame(frame),
      onClose: (ev) => {
        if (this.ws !== ws) return;
        this.ws = null;
        const why = ev.code === 1000 || ev.code === 1001 ? 'closed' : `closed (code ${ev.code})`;
        this.setState(why);
        this.ui.onStatus(`The live tail ${why}. A query with a bad token or syntax is refused before it opens: run it to see why.`, true);
      },
      onError: () => {},
    });
    ws.addEventListener('open', () => this.ws === ws && this.setState('live'));
    this.ws = ws;
  }

  stop() {
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000);
    }
    this.ui.bar.hidden = true;
  }

  frame(frame) {
    const rows = rowsOf(frame.streams);
    this.received += rows.length;
    if (frame.warnings?.length) this.ui.onStatus(frame.warnings.join('; '), true);
    if (frame.dropped_entries?.length) this.ui.onStatus(`chute dropped ${frame.dropped_entries.length}+ lines this page did not read in time`, true);
    if (!rows.length) return;
    if (this.paused) {
      this.waiting = rows.concat(this.waiting).slice(0, this.cap);
      this.setState(`paused, ${this.waiting.length} lines waiting`);
      return;
    }
    const away = !this.list.atTop;
    this.list.prepend(rows, this.cap);
    if (away) {
      this.unseen += rows.length;
      this.ui.newLines.hidden = false;
      this.ui.newLines.textContent = `${this.unseen} new line${this.unseen === 1 ? '' : 's'}`;
    }
    this.setState(`live, ${this.list.rows.length} lines kept`);
  }

  setPaused(paused) {
    this.paused = paused;
    this.ui.pause.textContent = paused ? 'Resume' : 'Pause';
    this.ui.pause.setAttribute('aria-pressed', paused ? 'true' : 'false');
    if (!paused && this.waiting.length) {
      const rows = this.waiting;
      this.waiting = [];
      const away = !this.list.atTop;
      this.list.prepend(rows, this.cap);
      if (away) {
        this.unseen += rows.length;
        this.ui.newLines.hidden = false;
        this.ui.newLines.textContent = `${this.unseen} new lines`;
      }
    }
    if (this.ws) this.setState(paused ? `paused, ${this.waiting.length} lines waiting` : 'live');
  }

  markSeen() {
    this.unseen = 0;
    this.ui.newLines.hidden = true;
  }

  setState(text) {
    this.ui.state.textContent = text;
  }
}

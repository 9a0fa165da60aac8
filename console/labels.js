// The label browser: the labels that have values in the range, then a label's
// values; choosing a value puts `label="value"` into the query's selector.

import * as api from './api.js';
import { h } from './util.js';

export class LabelBrowser {
  /**
   * @param {HTMLElement} panel where the lists go
   * @param {() => [string, string]} range the current range, in nanoseconds
   * @param {(name: string, value: string) => void} onPick
   */
  constructor(panel, range, onPick) {
    this.panel = panel;
    this.range = range;
    this.onPick = onPick;
  }

  async open() {
    this.panel.replaceChildren(h('p', { class: 'muted' }, 'Loading labels…'));
    try {
      const [start, end] = this.range();
      const names = await api.labelNames(start, end);
      const list = h(
        'ul',
        { class: 'chips', 'aria-label': 'Labels' },
        names.map((name) =>
          h('li', {}, h('button', { type: 'button', class: 'chip', 'data-label': name, onclick: () => this.values(name) }, name)),
        ),
      );
      this.panel.replaceChildren(h('h3', {}, 'Labels'), list, h('div', { class: 'values' }));
    } catch (e) {
      this.panel.replaceChildren(h('p', { class: 'error', role: 'alert' }, e.message));
    }
  }

  async values(name) {
    const box = this.panel.querySelector('.values');
    box.replaceChildren(h('p', { class: 'muted' }, `Loading values of ${name}…`));
    try {
      const [start, end] = this.range();
      const values = await api.labelValues(name, start, end);
      box.replaceChildren(
        h('h3', {}, `Values of ${name}`),
        values.length
          ? h(
              'ul',
              { class: 'chips', 'aria-label': `Values of ${name}` },
              values.map((v) =>
                h(
                  'li',
                  {},
                  h('button', { type: 'button', class: 'chip', 'data-value': v, onclick: () => this.onPick(name, v), title: `Add ${name}="${v}" to the query` }, v),
                ),
              ),
            )
          : h('p', { class: 'muted' }, 'No values in this range.'),
      );
    } catch (e) {
      box.replaceChildren(h('p', { class: 'error', role: 'alert' }, e.message));
    }
  }
}

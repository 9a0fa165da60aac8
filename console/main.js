// The console's entry point: picks the view the URL names, keeps the token, and
// binds the keys (`/` focuses the query; Enter in it runs it).

import * as api from './api.js';
import { $ } from './util.js';
import { SearchView } from './search.js';
import { ClusterView } from './cluster.js';

function status(text, bad = false) {
  const el = $('#status');
  el.textContent = text;
  el.classList.toggle('bad', bad);
}

const search = new SearchView(status);
const cluster = new ClusterView(status);

function show() {
  const params = new URLSearchParams(location.search);
  const view = params.get('view') === 'cluster' ? 'cluster' : 'search';
  $('#search-view').hidden = view !== 'search';
  $('#cluster-view').hidden = view !== 'cluster';
  for (const a of document.querySelectorAll('nav a[data-view]')) {
    if (a.dataset.view === view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (view === 'cluster') {
    search.tail.stop();
    document.title = 'Cluster · chute';
    cluster.start();
  } else {
    cluster.stop();
    search.load(params);
  }
}

for (const a of document.querySelectorAll('nav a[data-view]')) {
  a.addEventListener('click', (e) => {
    if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    if (a.getAttribute('href') !== location.pathname + location.search) history.pushState(null, '', a.getAttribute('href'));
    show();
  });
}

window.addEventListener('popstate', show);

const tokenInput = $('#token');
tokenInput.value = api.token();
$('#token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  api.setToken(tokenInput.value.trim());
  status(tokenInput.value.trim() ? 'Token saved for this tab' : 'Token cleared');
  show();
});

document.addEventListener('keydown', (e) => {
  if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t instanceof HTMLElement && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName))) return;
  if ($('#search-view').hidden) return;
  e.preventDefault();
  $('#query').focus();
  $('#query').select();
});

show();
document.documentElement.dataset.ready = 'true';

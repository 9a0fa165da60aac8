// The search view in a real browser: `node search.mjs <base-url> <out-dir> <app>`.
// chute holds 1,200 lines of app `<app>` (`line 0000` oldest to `line 1199`
// newest, every tenth with a field `order`). Prints what it found as JSON; the
// Rust test (tests/it/console.rs) checks it.

import { run, screenshot, visibleMessages, post, axeViolations, coldLoad } from './lib.mjs';

await run(async ({ browser, base, out, rest, result }) => {
  const app = rest[0] || 'console-test';
  const query = `{app="${app}"}`;

  // Page weight and first paint: three cold loads of `/`, each in a fresh context.
  const loads = [];
  for (let i = 0; i < 3; i++) loads.push(await coldLoad(browser, base));
  result.loads = loads;

  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  // Script errors only: a 400 for a bad query is the browser's note, not one.
  page.on('console', (m) => m.type() === 'error' && !m.text().startsWith('Failed to load resource') && errors.push(m.text()));

  // A query from the URL: rows newest first, the histogram drawn.
  await page.goto(`${base}/?query=${encodeURIComponent(query)}&range=1h`);
  await page.waitForSelector('#results .row');
  await page.waitForSelector('#volume rect.bar');
  result.first_rows = (await visibleMessages(page)).slice(0, 5);
  result.summary = await page.textContent('#summary');
  result.rendered_rows = await page.$$eval('#results .row', (r) => r.length);
  result.bars = await page.$$eval('#volume rect.bar', (bars) => {
    const heights = bars.map((b) => Number(b.getAttribute('height')));
    return {
      count: bars.length,
      min_height: Math.min(...heights),
      max_height: Math.max(...heights),
      lines: bars.reduce((a, b) => a + Number(b.dataset.count), 0),
      levels: [...new Set(bars.map((b) => b.dataset.level))],
    };
  });
  result.legend = await page.$$eval('#volume .legend li', (li) => li.map((l) => l.textContent));
  result.input_after_load = await page.inputValue('#query');
  await screenshot(page, out, 'search');

  // 1,000 rows: scrolled to the bottom, the oldest of them is there.
  const scroll = await page.evaluate(async () => {
    const el = document.querySelector('#results');
    const started = performance.now();
    let frames = 0;
    let worst = 0;
    let last = started;
    for (let y = 0; y <= el.scrollHeight; y += 400) {
      el.scrollTop = y;
      await new Promise((r) => requestAnimationFrame(r));
      const now = performance.now();
      worst = Math.max(worst, now - last);
      last = now;
      frames++;
    }
    el.scrollTop = el.scrollHeight;
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    return { frames, worst_frame_ms: worst, total_ms: performance.now() - started, rendered: document.querySelectorAll('#results .row').length };
  });
  result.scroll = scroll;
  result.last_rows = (await visibleMessages(page)).slice(-3);
  await page.evaluate(() => { document.querySelector('#results').scrollTop = 0; });
  await page.waitForTimeout(50);

  // A row expands to its fields; copy as JSON; show context.
  const withField = page.locator('#results .row', { hasText: 'line 1190' }).first();
  await withField.locator('.row-summary').click();
  await page.waitForSelector('#results .row.open .details');
  result.expanded_text = await page.textContent('#results .row.open .details');
  result.expanded_aria = await page.getAttribute('#results .row.open .row-summary', 'aria-expanded');
  await screenshot(page, out, 'expanded');
  await page.click('#results .row.open button:has-text("Copy as JSON")');
  result.copied = JSON.parse(await page.evaluate(() => navigator.clipboard.readText()));
  await page.click('#results .row.open button:has-text("Show context")');
  await page.waitForSelector('#context .context-lines li.current');
  result.context = await page.$$eval('#context .context-lines li', (li) => li.map((l) => ({ current: l.classList.contains('current'), text: l.textContent })));
  await screenshot(page, out, 'context');
  await page.click('#context-close');

  // The label browser puts a matcher into the query.
  await page.fill('#query', '');
  await page.click('#labels-panel summary');
  await page.click('#labels-body button[data-label="app"]');
  await page.click(`#labels-body button[data-value="${app}"]`);
  result.query_from_labels = await page.inputValue('#query');

  // History holds the queries run; an example runs when chosen.
  await page.click('#history-panel summary');
  await page.waitForSelector('#history-body .pick');
  result.history = await page.$$eval('#history-body .pick', (b) => b.map((x) => x.textContent));
  await page.click('#history-panel summary');
  await page.click('#examples-panel summary');
  result.examples = await page.$$eval('#examples-body .pick code', (b) => b.map((x) => x.textContent));
  await page.click('#examples-body .pick >> nth=0');
  await page.waitForFunction(() => new URL(location.href).searchParams.get('query') === '{app="nginx"}');
  result.example_query = await page.inputValue('#query');
  result.examples_closed = !(await page.$eval('#examples-panel', (d) => d.open));

  // A bad query: chute's message, with its place, and no rows.
  await page.fill('#query', '{app="x"} |= ');
  await page.press('#query', 'Enter');
  await page.waitForSelector('#status.bad');
  result.bad_query_status = await page.textContent('#status');
  result.bad_query_rows = await page.$$eval('#results .row', (r) => r.length);

  await page.fill('#query', query);
  await page.press('#query', 'Enter');
  await page.waitForSelector('#results .row');

  // Keyboard: `/` focuses the query, Enter runs it; the URL then names query and range.
  await page.selectOption('#range', '24h');
  await page.waitForSelector('#results .row');
  await page.click('#summary');
  await page.keyboard.press('/');
  result.focused_after_slash = await page.evaluate(() => document.activeElement && document.activeElement.id);
  await page.keyboard.press('End');
  await page.keyboard.type(' |= "line 11"');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => new URL(location.href).searchParams.get('query')?.includes('line 11'));
  await page.waitForFunction(() => document.querySelector('#summary').textContent.startsWith('100 lines'));
  const before = { url: page.url(), query: await page.inputValue('#query'), range: await page.inputValue('#range'), summary: await page.textContent('#summary') };
  await page.reload();
  await page.waitForSelector('html[data-ready="true"]');
  await page.waitForFunction(() => document.querySelector('#summary').textContent.includes('lines'));
  const after = { url: page.url(), query: await page.inputValue('#query'), range: await page.inputValue('#range'), summary: await page.textContent('#summary') };
  result.round_trip = { before, after };

  // Drag across the histogram: a custom range, in the URL.
  await page.fill('#query', query);
  await page.press('#query', 'Enter');
  await page.waitForSelector('#volume rect.bar');
  const box = await page.locator('#volume svg').boundingBox();
  await page.mouse.move(box.x + box.width * 0.9, box.y + 40);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.97, box.y + 40, { steps: 4 });
  await page.mouse.up();
  await page.waitForFunction(() => new URL(location.href).searchParams.get('range') === 'custom');
  result.zoom = { range: await page.inputValue('#range'), from: new URL(page.url()).searchParams.get('from'), to: new URL(page.url()).searchParams.get('to') };

  // Accessibility of the search view with results.
  await page.goto(`${base}/?query=${encodeURIComponent(query)}&range=1h`);
  await page.waitForSelector('#volume rect.bar');
  result.axe_search = await axeViolations(page);

  // Live tail: a line posted after it is switched on appears on top.
  await page.click('#live');
  await page.waitForFunction(() => document.querySelector('#tail-state').textContent.startsWith('live'));
  const marker = `live line ${Date.now()}`;
  await post(base, [{ app, host: 'tail-host', severity: 'warning', message: marker, fields: { request: 'r-1' } }]);
  await page.waitForFunction((m) => [...document.querySelectorAll('#results .row .msg')].some((e) => e.textContent === m), marker, { timeout: 20000 });
  result.live_top = (await visibleMessages(page))[0];
  result.live_marker = marker;
  result.live_url = page.url();
  result.volume_hidden_live = await page.isHidden('#volume');
  await screenshot(page, out, 'live');
  // The context of a live line (its labels hold its metadata too).
  await page.locator('#results .row', { hasText: marker }).locator('.row-summary').click();
  await page.click('#results .row.open button:has-text("Show context")');
  await page.waitForSelector('#context .context-lines li.current, #context .error');
  result.live_context = await page.$$eval('#context .context-lines li.current', (li) => li.map((l) => l.textContent));
  await page.click('#context-close');
  await page.locator('#results .row.open .row-summary').click();
  result.axe_live = await axeViolations(page);

  // Scrolled away from the top, new lines wait above and a button counts them.
  await page.evaluate(() => { document.querySelector('#results').scrollTop = 520; });
  await page.waitForTimeout(100);
  const topBefore = (await visibleMessages(page)).slice(0, 30);
  const scrolledMarker = `while scrolled ${Date.now()}`;
  await post(base, [{ app, host: 'tail-host', message: scrolledMarker }]);
  await page.waitForSelector('#new-lines:not([hidden])', { timeout: 20000 });
  result.new_lines_button = await page.textContent('#new-lines');
  result.kept_in_place = await page.evaluate(() => document.querySelector('#results').scrollTop > 520);
  result.rendered_before_scroll = topBefore.length;
  await page.click('#new-lines');
  await page.waitForFunction(() => document.querySelector('#results').scrollTop === 0);
  result.top_after_new_lines = (await visibleMessages(page))[0];
  result.scrolled_marker = scrolledMarker;
  result.new_lines_hidden_after = await page.isHidden('#new-lines');

  // Paused, a new line waits; resumed, it comes.
  await page.click('#pause');
  result.pause_label = await page.textContent('#pause');
  const pausedMarker = `while paused ${Date.now()}`;
  await post(base, [{ app, host: 'tail-host', message: pausedMarker }]);
  await page.waitForFunction(() => document.querySelector('#tail-state').textContent.includes('1 lines waiting'), null, { timeout: 20000 });
  result.top_while_paused = (await visibleMessages(page))[0];
  await page.click('#pause');
  await page.waitForFunction((m) => [...document.querySelectorAll('#results .row .msg')].some((e) => e.textContent === m), pausedMarker);
  result.top_after_resume = (await visibleMessages(page))[0];
  result.paused_marker = pausedMarker;
  await page.click('#live');

  // The cluster page, and the dark theme.
  await page.click('nav a[data-view="cluster"]');
  await page.waitForSelector('#cluster-body table');
  result.axe_cluster = await axeViolations(page);
  await screenshot(page, out, 'cluster-single');
  const dark = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark' });
  const darkPage = await dark.newPage();
  await darkPage.goto(`${base}/?query=${encodeURIComponent(query)}&range=1h`);
  await darkPage.waitForSelector('#volume rect.bar');
  result.dark_background = await darkPage.evaluate(() => getComputedStyle(document.body).backgroundColor);
  result.axe_dark = await axeViolations(darkPage);
  await screenshot(darkPage, out, 'search-dark');
  await dark.close();

  result.page_errors = errors;
});

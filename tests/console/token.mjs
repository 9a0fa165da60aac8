// The console when chute requires tokens: `node token.mjs <base-url> <out-dir> <token> <app>`.
// Without the token the page says so; with it (typed into the token field, kept in
// sessionStorage) queries and the live tail work.

import { run, screenshot, visibleMessages, post } from './lib.mjs';

await run(async ({ browser, base, out, rest, result }) => {
  const [token, app] = rest;
  const query = `{app="${app}"}`;
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  await page.goto(`${base}/?query=${encodeURIComponent(query)}&range=1h`);
  await page.waitForFunction(() => document.querySelector('#status').textContent.length > 0 && !document.querySelector('#status').textContent.startsWith('Running'));
  result.status_without_token = await page.textContent('#status');
  result.rows_without_token = await page.$$eval('#results .row', (r) => r.length);

  await page.fill('#token', token);
  await page.press('#token', 'Enter');
  await page.waitForSelector('#results .row');
  result.rows_with_token = await visibleMessages(page);
  result.token_in_session = await page.evaluate(() => sessionStorage.getItem('chute.token'));
  result.token_in_url = page.url().includes(token);
  await screenshot(page, out, 'token');

  await page.click('#live');
  await page.waitForFunction(() => document.querySelector('#tail-state').textContent.startsWith('live'), null, { timeout: 15000 });
  const marker = `tail with a token ${Date.now()}`;
  await post(base, [{ app, message: marker }], token);
  await page.waitForFunction((m) => [...document.querySelectorAll('#results .row .msg')].some((e) => e.textContent === m), marker, { timeout: 20000 });
  result.live_marker = marker;
  result.live_top = (await visibleMessages(page))[0];

  // A reload keeps the token (sessionStorage) and the view.
  await page.click('#live');
  await page.reload();
  await page.waitForSelector('#results .row');
  result.rows_after_reload = (await visibleMessages(page)).length;
});

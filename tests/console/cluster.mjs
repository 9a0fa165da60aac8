// The cluster page in a real browser: `node cluster.mjs <base-url> <out-dir> <name>`.
// Prints the state each node shows, the shards and their owners, and the rates.

import { run, screenshot, axeViolations } from './lib.mjs';

await run(async ({ browser, base, out, rest, result }) => {
  const name = rest[0] || 'cluster';
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  await page.goto(`${base}/?view=cluster`);
  await page.waitForSelector('#cluster-body tr[data-node]');
  // Two samples make a rate.
  await page.waitForFunction(() => !document.querySelector('[data-rate="records_accepted"] .rate-value').textContent.startsWith('measuring'), null, { timeout: 15000 });
  result.nodes = await page.$$eval('#cluster-body tr[data-node]', (rows) =>
    Object.fromEntries(rows.map((r) => [r.dataset.node, { state: r.dataset.state, text: r.textContent }])),
  );
  result.shards = await page.$$eval('#cluster-body tr[data-shard]', (rows) =>
    rows.map((r) => ({ id: r.dataset.shard, owner: r.children[1].textContent, state: r.children[2].textContent })),
  );
  result.rates = await page.$$eval('#cluster-body [data-rate]', (rates) =>
    Object.fromEntries(rates.map((r) => [r.dataset.rate, r.querySelector('.rate-value').textContent])),
  );
  result.status = await page.textContent('#status');
  // The samples outlive a reload (sessionStorage): rates at once.
  await page.reload();
  await page.waitForSelector('#cluster-body tr[data-node]');
  result.rate_after_reload = await page.textContent('[data-rate="records_accepted"] .rate-value');
  result.axe = await axeViolations(page);
  await screenshot(page, out, name);
});

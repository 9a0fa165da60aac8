// Page weight and first paint of the console:
// `node measure.mjs <base-url> <out-dir> [loads] [query]`.
// Loads `/` the given number of times (20 by default), each in a fresh browser
// context (a cold cache), and prints the bytes sent (gzipped) and the paint times;
// with a query, also loads `/?query=...` as often and times its first rows and
// its histogram (BENCHMARKS.md records a run).

import { run, coldLoad } from './lib.mjs';

await run(async ({ browser, base, rest, result }) => {
  const n = Number(rest[0] || 20);
  const loads = [];
  for (let i = 0; i < n; i++) loads.push(await coldLoad(browser, base));
  const query = rest[1];
  const searches = [];
  for (let i = 0; query && i < n; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${base}/?query=${encodeURIComponent(query)}&range=1h`);
    await page.waitForSelector('#results .row');
    const rows = await page.evaluate(() => performance.now());
    await page.waitForSelector('#volume rect.bar');
    const chart = await page.evaluate(() => performance.now());
    searches.push({ rows, chart });
    await context.close();
  }
  const stats = (values) => {
    const v = [...values].sort((a, b) => a - b);
    const at = (p) => Math.round(v[Math.min(v.length - 1, Math.floor((v.length - 1) * p))]);
    return { min: at(0), median: at(0.5), p90: at(0.9), max: at(1) };
  };
  const sorted = (k) => loads.map((l) => l[k]).sort((a, b) => a - b);
  const pct = (k, p) => sorted(k)[Math.min(n - 1, Math.floor((n - 1) * p))];
  if (query) {
    result.query = query;
    result.first_rows_ms = stats(searches.map((s) => s.rows));
    result.histogram_ms = stats(searches.map((s) => s.chart));
  }
  Object.assign(result, {
    loads: n,
    files: loads[0].files,
    bytes_gzipped: loads[0].encoded_bytes,
    bytes_on_the_wire_with_headers: loads[0].transfer_bytes,
    bytes_uncompressed: loads[0].decoded_bytes,
    first_contentful_paint_ms: { min: pct('first_contentful_paint_ms', 0), median: pct('first_contentful_paint_ms', 0.5), p90: pct('first_contentful_paint_ms', 0.9), max: pct('first_contentful_paint_ms', 1) },
    dom_content_loaded_ms: { min: pct('dom_content_loaded_ms', 0), median: pct('dom_content_loaded_ms', 0.5), p90: pct('dom_content_loaded_ms', 0.9), max: pct('dom_content_loaded_ms', 1) },
  });
});

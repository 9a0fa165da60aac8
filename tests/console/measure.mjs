// Page weight and first paint of the console: `node measure.mjs <base-url> <out-dir> [loads]`.
// Loads `/` the given number of times (20 by default), each in a fresh browser
// context (a cold cache), and prints the bytes sent (gzipped) and the paint times
// (BENCHMARKS.md records a run).

import { run } from './lib.mjs';

await run(async ({ browser, base, rest, result }) => {
  const n = Number(rest[0] || 20);
  const loads = [];
  for (let i = 0; i < n; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${base}/`);
    await page.waitForSelector('html[data-ready="true"]');
    loads.push(
      await page.evaluate(() => {
        const nav = performance.getEntriesByType('navigation')[0];
        const assets = performance.getEntriesByType('resource').filter((r) => r.name.includes('/console/'));
        const sum = (key) => nav[key] + assets.reduce((a, r) => a + r[key], 0);
        return {
          files: assets.length + 1,
          transfer: sum('transferSize'),
          encoded: sum('encodedBodySize'),
          decoded: sum('decodedBodySize'),
          fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN,
          ready: nav.domContentLoadedEventEnd,
        };
      }),
    );
    await context.close();
  }
  const sorted = (k) => loads.map((l) => l[k]).sort((a, b) => a - b);
  const pct = (k, p) => sorted(k)[Math.min(n - 1, Math.floor((n - 1) * p))];
  Object.assign(result, {
    loads: n,
    files: loads[0].files,
    bytes_gzipped: loads[0].encoded,
    bytes_on_the_wire_with_headers: loads[0].transfer,
    bytes_uncompressed: loads[0].decoded,
    first_contentful_paint_ms: { min: pct('fcp', 0), median: pct('fcp', 0.5), p90: pct('fcp', 0.9), max: pct('fcp', 1) },
    dom_content_loaded_ms: { min: pct('ready', 0), median: pct('ready', 0.5), p90: pct('ready', 0.9), max: pct('ready', 1) },
  });
});

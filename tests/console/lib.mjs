// What the console's browser scenarios share: Chromium, screenshots, the output.

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

/** Debian's Chromium (apt `chromium`), or the one `CHROMIUM` names. */
export function chromiumPath() {
  const candidates = [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(Boolean);
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`no Chromium found (tried ${candidates.join(', ')}): apt-get install chromium`);
  return found;
}

export async function launch() {
  return chromium.launch({ executablePath: chromiumPath(), headless: true, args: ['--disable-gpu', '--disable-dev-shm-usage'] });
}

/** Parses `node <script> <base-url> <out-dir> [args...]`. */
export function args() {
  const [base, out, ...rest] = process.argv.slice(2);
  if (!base || !out) {
    console.error('usage: node <scenario>.mjs <base-url> <out-dir> [args...]');
    process.exit(2);
  }
  mkdirSync(out, { recursive: true });
  return { base: base.replace(/\/$/, ''), out, rest };
}

export async function screenshot(page, out, name) {
  const path = join(out, `${name}.png`);
  await page.screenshot({ path, fullPage: false });
  return path;
}

/** Runs `scenario`, prints its findings as one JSON line, exits 0; on any error prints it and exits 1. */
export async function run(scenario) {
  const { base, out, rest } = args();
  const browser = await launch();
  const result = {};
  try {
    await scenario({ browser, base, out, rest, result });
    writeFileSync(join(out, 'result.json'), JSON.stringify(result, null, 2));
    console.log(JSON.stringify(result));
    await browser.close();
    process.exit(0);
  } catch (e) {
    console.error(e && e.stack ? e.stack : String(e));
    console.log(JSON.stringify({ ...result, error: String(e && e.message ? e.message : e) }));
    await browser.close().catch(() => {});
    process.exit(1);
  }
}

/** The text of the rendered result rows' messages, top to bottom. */
export async function visibleMessages(page) {
  return page.$$eval('#results .row', (rows) =>
    rows
      .map((r) => [parseFloat(r.style.top), r.querySelector('.msg').textContent])
      .sort((a, b) => a[0] - b[0])
      .map((x) => x[1]),
  );
}

/** Posts records to chute's ingest API. */
export async function post(base, records, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${base}/api/v1/logs`, { method: 'POST', headers, body: JSON.stringify(records) });
  if (!res.ok) throw new Error(`POST /api/v1/logs answered ${res.status}: ${await res.text()}`);
}

/** Serious and critical axe-core violations on the page as it is. */
export async function axeViolations(page) {
  const { createRequire } = await import('node:module');
  const require = createRequire(import.meta.url);
  const { readFileSync } = await import('node:fs');
  const source = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  await page.evaluate(source);
  const results = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length, targets: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  return results.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

/**
 * Loads `/` in a fresh browser context (a cold cache) and returns what it cost:
 * files, bytes (on the wire, gzipped, uncompressed) and paint times in ms.
 */
export async function coldLoad(browser, base) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/`);
  await page.waitForSelector('html[data-ready="true"]');
  const load = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const assets = performance.getEntriesByType('resource').filter((r) => r.name.includes('/console/'));
    const sum = (key) => nav[key] + assets.reduce((a, r) => a + r[key], 0);
    const paint = (name) => performance.getEntriesByName(name)[0]?.startTime ?? null;
    return {
      files: assets.length + 1,
      transfer_bytes: sum('transferSize'),
      encoded_bytes: sum('encodedBodySize'),
      decoded_bytes: sum('decodedBodySize'),
      first_paint_ms: paint('first-paint'),
      first_contentful_paint_ms: paint('first-contentful-paint'),
      dom_content_loaded_ms: nav.domContentLoadedEventEnd,
    };
  });
  await context.close();
  return load;
}

// Hostile records are shown as text: `node hostile.mjs <base-url> <out-dir> <app>`.
// chute holds lines of app `<app>` whose message, host and fields carry markup
// and script. Prints what the page shows and whether any of it ran, as JSON.

import { run, screenshot, visibleMessages } from './lib.mjs';

await run(async ({ browser, base, out, rest, result }) => {
  const app = rest[0];
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${base}/?query=${encodeURIComponent(`{app="${app}"}`)}&range=1h`);
  await page.waitForSelector('#results .row');
  // Every row expanded: its fields and labels drawn too.
  for (const row of await page.$$('#results .row')) await row.click();
  await page.waitForTimeout(300);
  result.messages = await visibleMessages(page);
  result.ran = await page.evaluate(() => window.__xss ?? null);
  result.elements = await page.$$eval('#results img, #results script, #results iframe, #results b', (e) => e.length);
  result.text_has_markup = (await page.textContent('#results')).includes('<script>window.__xss=2</script>');
  result.page_errors = errors;
  await screenshot(page, out, 'hostile');
});

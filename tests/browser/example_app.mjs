// The Express example (examples/express-app) in Debian's headless Chromium, as its user would
// use it: sign in, connect a key in Relay's widget, ask, watch the answer stream in. Run by
// tests/tests/examples.rs, which starts Relay, a mock provider and the app, and passes their
// URLs and the expected answer in the environment. Prints one JSON line of what it saw.

import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through cargo test -p relay-tests --test examples`);
  return value;
}

const APP = env('EXAMPLE_URL');
const RELAY = env('RELAY_URL'); // what the browser loads the widget from
const USER = env('END_USER');
const KEY = env('PROVIDER_KEY');
const RLY = env('RELAY_API_KEY'); // only to check it never reaches the browser
const ANSWER = env('EXPECTED_ANSWER');
const LOCAL = new Set([APP, RELAY].map((u) => new URL(u).host));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-default-apps', '--disable-extensions', '--no-default-browser-check'],
});
const external = [];
const toApp = []; // every request the app's own origin received, with its body
const logs = [];
try {
  const context = await browser.newContext({ viewport: { width: 900, height: 1000 }, serviceWorkers: 'block' });
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.protocol === 'http:' && LOCAL.has(url.host)) return route.continue();
    external.push(url.href);
    return route.abort('blockedbyclient');
  });
  context.on('request', (r) => {
    if (r.url().startsWith(APP)) toApp.push(`${r.method()} ${r.url()} ${r.postData() ?? ''}`);
  });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));

  // Sign in (the example's fake sign-in), then the page mounts the widget.
  await page.goto(APP);
  await page.fill('#name', USER);
  await page.click('#sign-in button');
  await page.waitForSelector('#signed-in:not([hidden])');
  assert.equal(await page.textContent('#who'), USER);
  assert.equal(await page.textContent('#keys'), 'none yet');

  let frame;
  for (let i = 0; i < 400 && !frame; i++) {
    frame = page.frames().find((f) => f.url().startsWith(`${RELAY}/widget/frame`));
    if (!frame) await page.waitForTimeout(25);
  }
  assert.ok(frame, 'the widget frame appeared');
  await frame.waitForSelector('#relay-form');
  await frame.click('label[for="relay-p-openai"]');
  await frame.focus('#relay-key');
  await page.keyboard.type(KEY);
  await page.keyboard.press('Enter');
  await frame.waitForSelector('[data-view="success"]');
  const fingerprint = await frame.textContent('#relay-fingerprint');
  await page.waitForFunction((f) => document.getElementById('keys').textContent.endsWith(f), fingerprint);

  // Ask: record every state of the answer as it grows.
  await page.evaluate(() => {
    window.__seen = [];
    new MutationObserver(() => window.__seen.push(document.getElementById('answer').textContent))
      .observe(document.getElementById('answer'), { childList: true, characterData: true, subtree: true });
  });
  await page.fill('#question', 'Write a haiku about keys.');
  await page.click('#ask button');
  await page.waitForSelector('#answer[data-done]');
  const answer = await page.textContent('#answer');
  const seen = await page.evaluate(() => window.__seen.filter((t) => t !== ''));

  // A reload: the app asks Relay which keys this user has (fingerprints only).
  await page.reload();
  await page.waitForSelector('#signed-in:not([hidden])');
  await page.waitForFunction(() => document.getElementById('keys').textContent !== 'none yet');
  const keysAfterReload = await page.textContent('#keys');

  const html = await page.content();
  const everything = [html, logs.join('\n'), toApp.join('\n')].join('\n');
  assert.ok(!everything.includes(KEY), 'the provider key reached the app or the page');
  assert.ok(!everything.includes(RLY), 'the rly- key reached the page');
  assert.deepEqual(external, [], 'the browser tried to reach something outside this machine');
  assert.equal(answer, ANSWER);
  const bad = logs.filter((l) => /Content Security Policy|pageerror|Refused to|Uncaught/i.test(l));
  assert.deepEqual(bad, [], 'no CSP violation or script error');
  console.log(JSON.stringify({ fingerprint, answer, partials: seen.length, keysAfterReload }));
} finally {
  await browser.close();
}

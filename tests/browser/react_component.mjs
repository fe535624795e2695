// @relay/react's <RelayConnect> (sdk/react) in Debian's headless Chromium: a page of React (strict
// mode) with the component mounts Relay's widget, a key is typed into the frame, onSuccess shows
// provider and fingerprint; a new token re-mounts the widget, unmounting removes it. Run by
// tests/tests/react_component.rs, which starts Relay, the mock provider and the page's server.
// Prints one JSON line of what it saw.

import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through cargo test -p relay-tests --test react_component`);
  return value;
}

const PAGE = env('PAGE_URL');
const RELAY = env('RELAY_URL');
const KEY = env('PROVIDER_KEY');
const LOCAL = new Set([PAGE, RELAY].map((u) => new URL(u).host));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-default-apps', '--disable-extensions', '--no-default-browser-check'],
});
const logs = [];
const external = [];
try {
  const context = await browser.newContext({ viewport: { width: 800, height: 900 }, serviceWorkers: 'block' });
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.protocol === 'http:' && LOCAL.has(url.host)) return route.continue();
    external.push(url.href);
    return route.abort('blockedbyclient');
  });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  const widgetFrames = () => page.frames().filter((f) => f.url().startsWith(`${RELAY}/widget/frame`));
  const state = () => page.evaluate(() => ({
    hosts: document.querySelectorAll('#connect > relay-connect').length,
    scripts: document.querySelectorAll('script[src$="/widget.js"]').length,
  }));
  async function theFrame() {
    for (let i = 0; i < 400; i++) {
      const frames = widgetFrames();
      if (frames.length === 1) {
        await frames[0].waitForSelector('#relay-form');
        return frames[0];
      }
      await page.waitForTimeout(25);
    }
    throw new Error(`expected one widget frame, found ${widgetFrames().length}`);
  }

  await page.goto(PAGE);
  let frame = await theFrame();
  // Strict mode mounted, unmounted and mounted again: one widget, one script tag.
  const mounted = await state();
  const frameUrl = new URL(frame.url());
  await frame.click('label[for="relay-p-openai"]');
  await frame.focus('#relay-key');
  await page.keyboard.type(KEY);
  await page.keyboard.press('Enter');
  await frame.waitForSelector('[data-view="success"]');
  const fingerprint = await frame.textContent('#relay-fingerprint');
  await page.waitForFunction(() => document.getElementById('result').textContent !== '');
  const result = await page.textContent('#result');

  // A new registration token: the old widget goes, a fresh form comes.
  await page.click('#swap');
  await page.waitForFunction(() => document.querySelectorAll('#connect > relay-connect').length === 1);
  frame = await theFrame();
  const afterSwap = { ...(await state()), success: (await frame.$('[data-view="success"]')) !== null };

  // Unmount: the component's div, the widget and its frame are gone.
  await page.click('#toggle');
  await page.waitForFunction(() => !document.getElementById('connect'));
  for (let i = 0; i < 100 && widgetFrames().length > 0; i++) await page.waitForTimeout(25);
  const afterUnmount = { ...(await state()), frames: widgetFrames().length };

  // And back: widget.js is not loaded again.
  await page.click('#toggle');
  await theFrame();
  const remounted = await state();

  const errors = await page.textContent('#errors');
  const html = await page.content();
  assert.ok(!html.includes(KEY) && !logs.join('\n').includes(KEY), 'the provider key reached the page');
  assert.deepEqual(external, [], 'the browser tried to reach something outside this machine');
  const bad = logs.filter((l) => /pageerror|Refused to|Uncaught|^error:/i.test(l));
  assert.deepEqual(bad, [], 'no script error');
  console.log(JSON.stringify({
    mounted, theme: frameUrl.searchParams.get('theme'), locale: frameUrl.searchParams.get('locale'),
    fingerprint, result, afterSwap, afterUnmount, remounted, errors,
  }));
} finally {
  await browser.close();
}

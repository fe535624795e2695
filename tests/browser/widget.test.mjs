// The Relay widget and the hosted /connect page in Debian's headless Chromium, driven with
// playwright-core. Run by tests/tests/widget_browser.rs, which spawns Relay (on localhost), a
// mock provider and the host pages (on 127.0.0.1), and passes everything in the environment.
// The browser may fetch nothing but those servers: every other request is aborted and fails
// the run. Screenshots go to ARTIFACTS_DIR; UPDATE_DOC_SCREENSHOTS=1 also copies the ones the
// README shows into docs/screenshots/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through cargo test -p relay-tests --test widget_browser`);
  return value;
}

const RELAY = env('RELAY_URL'); // http://localhost:PORT, what the browser uses
const RELAY_DIRECT = env('RELAY_DIRECT_URL'); // http://127.0.0.1:PORT, for this script's own calls
const HOST = env('HOST_URL'); // an allowed origin
const OTHER_HOST = env('OTHER_HOST_URL'); // a reachable origin the tenant did not allow
const API_KEY = env('RELAY_API_KEY');
const APP_ID = env('APP_ID');
const FLOW_USER = env('FLOW_USER');
const CAP_USER = env('CAP_USER'); // sets their own cap: OpenAI in the widget, Anthropic on /connect
const ANTHROPIC_KEY = env('ANTHROPIC_KEY');
const OPENAI_KEY = env('OPENAI_KEY');
const REJECTED_KEY = env('REJECTED_KEY');
const COMPATIBLE_KEY = env('COMPATIBLE_KEY');
const COMPATIBLE_BASE_URL = env('COMPATIBLE_BASE_URL');
const USED_TOKEN = env('USED_TOKEN');
const EXPIRED_TOKEN = env('EXPIRED_TOKEN');
const ARTIFACTS = env('ARTIFACTS_DIR');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SECRETS = [ANTHROPIC_KEY, OPENAI_KEY, REJECTED_KEY, COMPATIBLE_KEY];

const LOCAL_HOSTS = new Set([RELAY, HOST, OTHER_HOST].map((u) => new URL(u).host));
const external = [];
let browser;

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  // launch() gives the browser a fresh temporary --user-data-dir of its own.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-default-apps', '--disable-extensions', '--no-default-browser-check',
      '--font-render-hinting=none',
    ],
  });
});

after(async () => {
  if (browser) await browser.close();
  assert.deepEqual(external, [], 'the browser tried to reach something outside this machine');
});

// ------------------------------------------------------------------------------------ helpers

async function newPage({ width = 900, height = 860, mobile = false, scale = 2 } = {}) {
  const context = await browser.newContext({
    viewport: { width, height },
    deviceScaleFactor: scale,
    isMobile: mobile,
    hasTouch: mobile,
    locale: 'en-US',
    serviceWorkers: 'block',
  });
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.protocol === 'http:' && LOCAL_HOSTS.has(url.host)) return route.continue();
    external.push(url.href);
    return route.abort('blockedbyclient');
  });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.logs = [];
  page.requestsSeen = [];
  page.on('console', (m) => page.logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => page.logs.push(`pageerror: ${e.message}`));
  context.on('request', (r) => page.requestsSeen.push(`${r.method()} ${r.url()}`));
  return page;
}

function assertCleanConsole(page) {
  const bad = page.logs.filter((l) => /Content Security Policy|pageerror|Refused to|Uncaught/i.test(l));
  assert.deepEqual(bad, [], 'no CSP violation or script error');
}

async function api(method, urlPath, body) {
  const res = await fetch(RELAY_DIRECT + urlPath, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

async function mint(label, provider) {
  const res = await api('POST', '/v1/registration-tokens', provider ? { endUserLabel: label, provider } : { endUserLabel: label });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.registrationToken;
}

function widgetFrame(page) {
  return page.frames().find((f) => f.url().startsWith(`${RELAY}/widget/frame`));
}

async function mount(page, options) {
  await page.evaluate((o) => window.mountWidget(o), { appId: APP_ID, ...options });
  await page.waitForFunction(() => true);
  for (let i = 0; i < 300; i++) {
    const frame = widgetFrame(page);
    if (frame) return frame;
    await page.waitForTimeout(25);
  }
  throw new Error('the widget frame never appeared');
}

/** Lets the frame's height transition finish before a screenshot. */
async function settle(page) {
  await page.waitForTimeout(350);
}

async function shot(page, name, { full = false } = {}) {
  await settle(page);
  const file = path.join(ARTIFACTS, `${name}.png`);
  const options = { path: file, animations: 'disabled', caret: 'hide' };
  if (full) await page.screenshot({ ...options, fullPage: true });
  else await page.locator('main').screenshot(options);
  return file;
}

async function activeId(frame) {
  return frame.evaluate(() => (document.hasFocus() && document.activeElement ? document.activeElement.id : ''));
}

function assertNoSecret(text, what) {
  for (const key of SECRETS) {
    const secret = key.replace(/^(sk-ant-api03-|sk-proj-|sk-)/, '');
    for (const part of [key, secret.slice(0, 12), secret.slice(-12)]) {
      assert.ok(!text.includes(part), `${what} holds part of a key`);
    }
  }
}

// ------------------------------------------------------------------------------------ widget

test('full flow on a hostile page: pick a provider, paste a key, onSuccess gets only the fingerprint', { timeout: 90000 }, async () => {
  const page = await newPage();
  await page.goto(`${HOST}/hostile.html`);
  const token = await mint(FLOW_USER);
  const frame = await mount(page, { registrationToken: token, theme: 'light', locale: 'en' });

  assert.ok(!frame.url().includes(token) && !frame.url().includes('rrt-'), 'the token is not in the frame URL');
  assert.ok(frame.url().includes(`origin=${encodeURIComponent(HOST)}`));
  await frame.waitForSelector('#relay-form');
  await settle(page);
  // The host page's CSS (iframe {display: none !important}, div {border…}) did not reach it.
  const box = await (await frame.frameElement()).boundingBox();
  assert.ok(box && box.width >= 300 && box.height >= 300, `widget frame is laid out: ${JSON.stringify(box)}`);
  assert.equal(await frame.textContent('#relay-title'), 'Connect your API key');
  assert.match(await frame.textContent('.app-name'), /Test App/);
  await shot(page, 'hostile-page-form');

  // Pick a provider: the label, hint and help link follow.
  await frame.click('label[for="relay-p-anthropic"]');
  assert.equal(await frame.isChecked('#relay-p-anthropic'), true);
  assert.equal(await frame.textContent('label[for="relay-key"]'), 'Anthropic API key');
  assert.match(await frame.textContent('#relay-key-hint'), /sk-ant-/);
  assert.equal(await frame.getAttribute('.help', 'href'), 'https://console.anthropic.com/settings/keys');

  // Type the key as real key events (the hostile page listens for them).
  await frame.focus('#relay-key');
  await page.keyboard.type(ANTHROPIC_KEY);
  await frame.waitForSelector('.hint-ok');
  assert.equal(await frame.getAttribute('#relay-key', 'type'), 'password');
  await frame.click('.toggle');
  assert.equal(await frame.getAttribute('#relay-key', 'type'), 'text');
  assert.equal(await frame.getAttribute('.toggle', 'aria-pressed'), 'true');
  assert.equal(await frame.getAttribute('.toggle', 'aria-label'), 'Hide API key');
  await frame.click('.toggle');
  assert.equal(await frame.getAttribute('#relay-key', 'type'), 'password');
  await frame.focus('#relay-key');
  await page.keyboard.press('Enter');

  await frame.waitForSelector('[data-view="success"]');
  const fingerprint = await frame.textContent('#relay-fingerprint');
  assert.equal(fingerprint, `sk-ant-…${ANTHROPIC_KEY.slice(-4)}`);
  assert.equal(await activeId(frame), 'relay-title', 'focus moves to the result');
  await frame.waitForFunction(() => /Key connected/.test(document.getElementById('relay-live').textContent));
  assert.equal(await frame.$('#relay-key'), null, 'the key field is gone');

  await page.waitForFunction(() => window.__relay.successes.length > 0);
  await page.waitForTimeout(300);
  const told = await page.evaluate(() => window.__relay);
  // Exactly the real result: the hostile script's forged success message was ignored.
  assert.deepEqual(told.successes, [{ provider: 'anthropic', fingerprint }]);
  assert.deepEqual(told.events, [['success', { provider: 'anthropic', fingerprint }]]);
  assert.deepEqual(told.errors, []);
  await shot(page, 'hostile-page-success');

  // What the hostile script got.
  const loot = await page.evaluate(() => window.__loot);
  assert.ok(loot.shadowRoots >= 1 && loot.iframes > 0, 'it did reach the closed shadow root and the iframe');
  assert.ok(loot.spoofed, 'it did try to forge a success');
  for (const probe of ['contentDocument:null', 'contentWindow.document threw SecurityError',
    'input value threw SecurityError', 'location threw SecurityError', 'frame src has token:false']) {
    assert.ok(loot.probes.includes(probe), `${probe} in ${JSON.stringify(loot.probes)}`);
  }
  assert.deepEqual(loot.keyEvents, [], 'no keyboard or input event reached the page');
  assert.ok(loot.values.every((v) => v === ''), 'no input value readable from the page');
  assert.ok(loot.messages.some((m) => m.includes('"type":"success"')), 'it saw the public success message');
  assertNoSecret(JSON.stringify(loot), 'the hostile script');
  assertNoSecret(JSON.stringify(told), 'the page');
  assertNoSecret(page.logs.join('\n'), 'the console');
  assertCleanConsole(page);
  await page.context().close();
});

test('rejected and malformed keys, keyboard only', { timeout: 60000 }, async () => {
  const page = await newPage();
  await page.goto(`${HOST}/host.html`);
  const token = await mint('rejected-user');
  const frame = await mount(page, { registrationToken: token });
  await frame.waitForSelector('#relay-form');

  // Tab from the page lands on the provider group; arrows change the provider.
  await page.keyboard.press('Tab');
  assert.equal(await activeId(frame), 'relay-p-openai');
  await page.keyboard.press('ArrowRight');
  assert.equal(await frame.isChecked('#relay-p-anthropic'), true);
  await page.keyboard.press('ArrowLeft');
  assert.equal(await frame.isChecked('#relay-p-openai'), true);
  for (let i = 0; i < 4 && (await activeId(frame)) !== 'relay-key'; i++) await page.keyboard.press('Tab');
  assert.equal(await activeId(frame), 'relay-key');

  // A malformed key is caught before anything is sent.
  const posts = () => page.requestsSeen.filter((r) => r === `POST ${RELAY}/v1/connect`).length;
  await page.keyboard.type('sk-short');
  await page.keyboard.press('Enter');
  await frame.waitForSelector('#relay-key-error:not([hidden])');
  assert.match(await frame.textContent('#relay-key-error'), /doesn’t look like a key from OpenAI/);
  assert.equal(await frame.getAttribute('#relay-key', 'aria-invalid'), 'true');
  assert.equal(await activeId(frame), 'relay-key');
  assert.equal(posts(), 0, 'nothing was sent');
  await shot(page, 'error-format');

  // A well-formed key the provider rejects: the server says so, the field says why.
  await page.keyboard.press('Control+A');
  await page.keyboard.type(REJECTED_KEY);
  assert.equal(await frame.getAttribute('#relay-key', 'aria-invalid'), null, 'typing clears the error');
  await page.keyboard.press('Enter');
  await frame.waitForFunction(() => /didn’t accept/.test(document.getElementById('relay-key-error').textContent));
  assert.equal(await activeId(frame), 'relay-key', 'focus returns to the field');
  await frame.waitForFunction(() => /didn’t accept/.test(document.getElementById('relay-alert').textContent));
  assert.equal(posts(), 1);
  await page.waitForFunction(() => window.__relay.errors.length > 0);
  const told = await page.evaluate(() => window.__relay);
  assert.equal(told.errors[0].code, 'provider_key_rejected');
  assert.equal(told.errors[0].recoverable, true);
  assert.deepEqual(told.successes, []);
  assertNoSecret(JSON.stringify(told), 'the page');
  await shot(page, 'error-rejected');

  // Pasting another provider's key offers to switch.
  await page.keyboard.press('Control+A');
  await page.keyboard.type(`sk-ant-api03-${'x'.repeat(30)}`);
  await frame.waitForSelector('.suggest:not([hidden])');
  await frame.click('.suggest .link-button');
  assert.equal(await frame.isChecked('#relay-p-anthropic'), true);
  await frame.waitForSelector('.hint-ok');
  assertCleanConsole(page);
  await page.context().close();
});

test('the end user\'s own cap: a bad amount stays in the field, $0,05 goes with the key', { timeout: 60000 }, async () => {
  const page = await newPage();
  await page.goto(`${HOST}/host.html`);
  const token = await mint(CAP_USER);
  const frame = await mount(page, { registrationToken: token });
  await frame.waitForSelector('#relay-form');
  const posts = () => page.requestsSeen.filter((r) => r === `POST ${RELAY}/v1/connect`).length;

  // Labelled, described, optional, under the key.
  assert.equal(await frame.textContent('label[for="relay-cap"]'), 'Limit what Test App may spend on this key');
  assert.equal(await frame.getAttribute('#relay-cap', 'inputmode'), 'decimal');
  assert.equal(await frame.getAttribute('#relay-cap', 'aria-describedby'), 'relay-cap-unit relay-cap-hint relay-cap-error');
  assert.equal(await frame.textContent('#relay-cap-unit'), 'In US dollars, per calendar month.');
  assert.equal(await frame.textContent('#relay-cap-hint'), 'Optional. Only you can change it, by connecting your key again.');
  assert.equal(await frame.textContent('.amount'), '$per month');
  assert.equal(await frame.getAttribute('#relay-cap', 'placeholder'), 'No limit');

  // Keyboard: the key, its Show button, then the cap.
  await frame.focus('#relay-key');
  await page.keyboard.type(OPENAI_KEY);
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  assert.equal(await activeId(frame), 'relay-cap');

  // What is not a non-negative amount of dollars and cents is refused here; nothing is sent.
  for (const bad of ['-5', '1,000', 'five', '5.001', '.']) {
    await page.keyboard.press('Control+A');
    await page.keyboard.type(bad);
    await page.keyboard.press('Enter');
    await frame.waitForSelector('#relay-cap-error:not([hidden])');
    assert.equal(await frame.textContent('#relay-cap-error'),
      'Enter an amount in US dollars, like 5 or 12.50, or leave it empty for no limit.', bad);
    assert.equal(await frame.getAttribute('#relay-cap', 'aria-invalid'), 'true');
    assert.equal(await frame.isHidden('#relay-cap-hint'), true);
    assert.equal(await activeId(frame), 'relay-cap', 'focus on the field to fix');
    assert.equal(posts(), 0, `nothing was sent for ${bad}`);
  }
  await frame.waitForFunction(() => /Enter an amount/.test(document.getElementById('relay-alert').textContent));
  await shot(page, 'cap-error');
  await page.keyboard.press('Control+A');
  await page.keyboard.type('5');
  assert.equal(await frame.getAttribute('#relay-cap', 'aria-invalid'), null, 'typing clears the error');
  assert.equal(await frame.isHidden('#relay-cap-error'), true);

  // Relay's own bound (invalid_amount) lands on the same field; the token stays usable.
  await page.keyboard.press('Control+A');
  await page.keyboard.type('2000000000');
  await page.keyboard.press('Enter');
  await frame.waitForSelector('#relay-cap-error:not([hidden])');
  assert.equal(posts(), 1);
  assert.equal(await activeId(frame), 'relay-cap');
  await page.waitForFunction(() => window.__relay.errors.length > 0);
  assert.equal((await page.evaluate(() => window.__relay)).errors[0].code, 'invalid_amount');
  assert.equal((await api('GET', `/v1/connect/${token}`)).status, 200, 'the token is still unused');

  // A comma works as the decimal separator.
  await page.keyboard.press('Control+A');
  await page.keyboard.type('0,05');
  await page.keyboard.press('Enter');
  await frame.waitForSelector('[data-view="success"]');
  assert.equal(posts(), 2);
  assert.equal(await frame.textContent('#relay-cap-summary'), '$0.05 per month');
  assert.match(await frame.textContent('.summary'), /Spending limit\$0\.05 per month/);
  await frame.waitForFunction(() => /Spending limit: \$0\.05 per month\./.test(document.getElementById('relay-live').textContent));
  const told = await page.evaluate(() => window.__relay);
  assert.deepEqual(told.successes, [{ provider: 'openai', fingerprint: `sk-proj-…${OPENAI_KEY.slice(-4)}` }]);
  await shot(page, 'cap-success');

  // The tenant sees the cap with the key.
  const user = await api('GET', `/v1/users/${CAP_USER}`);
  assert.equal(user.status, 200);
  const openai = user.body.providers.find((p) => p.provider === 'openai');
  assert.equal(openai.monthlyCapUsd, 0.05);
  assert.equal(openai.spentThisMonthUsd, 0);
  assertNoSecret(JSON.stringify(told), 'the page');
  assertCleanConsole(page);
  await page.context().close();
});

test('OpenAI-compatible: a base URL field, checked by Relay, and the key stored for that server', { timeout: 60000 }, async () => {
  const page = await newPage();
  await page.goto(`${HOST}/host.html`);
  const token = await mint('compatible-user');
  const frame = await mount(page, { registrationToken: token });
  await frame.waitForSelector('#relay-form');
  assert.equal(await frame.isHidden('#relay-base-url'), true, 'no base URL field for built-in providers');
  await frame.click('label[for="relay-p-openai-compatible"]');
  await frame.waitForSelector('#relay-base-url:visible');
  // A base URL Relay's SSRF policy refuses: the server says so, nothing is stored.
  await frame.fill('#relay-base-url', 'https://169.254.169.254/latest');
  await frame.fill('#relay-key', COMPATIBLE_KEY);
  await frame.press('#relay-key', 'Enter');
  await page.waitForFunction(() => window.__relay.errors.length > 0);
  let told = await page.evaluate(() => window.__relay);
  assert.equal(told.errors[0].code, 'upstream_not_allowed');
  assert.deepEqual(told.successes, []);
  // The operator's allowed server: connected.
  await frame.fill('#relay-base-url', COMPATIBLE_BASE_URL);
  await frame.fill('#relay-key', COMPATIBLE_KEY);
  await frame.press('#relay-key', 'Enter');
  await page.waitForFunction(() => window.__relay.successes.length > 0);
  told = await page.evaluate(() => window.__relay);
  assert.deepEqual(told.successes[0], { provider: 'openai-compatible', fingerprint: '…7f3e' });
  assertNoSecret(JSON.stringify(told), 'the page');
  await shot(page, 'openai-compatible-success');
  const user = await api('GET', '/v1/users/compatible-user');
  assert.equal(user.status, 200);
  assert.equal(user.body.providers[0].provider, 'openai-compatible');
  await page.context().close();
});

for (const [name, token, code, title] of [
  ['error-used', () => USED_TOKEN, 'registration_token_used', 'This link was already used'],
  ['error-expired', () => EXPIRED_TOKEN, 'registration_token_expired', 'This link has expired'],
  ['error-invalid', () => 'rrt-not-a-token', 'registration_token_invalid', 'This link isn’t valid'],
]) {
  test(`${code}: a clear view, and onError`, { timeout: 30000 }, async () => {
    const page = await newPage();
    await page.goto(`${HOST}/host.html`);
    const frame = await mount(page, { registrationToken: token() });
    await frame.waitForSelector(`[data-view="error"][data-code="${code}"]`);
    assert.equal(await frame.textContent('#relay-title'), title);
    assert.equal(await frame.$('#relay-key'), null, 'no form');
    await page.waitForFunction(() => window.__relay.errors.length > 0);
    const told = await page.evaluate(() => window.__relay);
    assert.equal(told.errors[0].code, code);
    assert.equal(told.errors[0].recoverable, false);
    if (name !== 'error-invalid') await shot(page, name);
    assertCleanConsole(page);
    await page.context().close();
  });
}

test('Korean, with the provider locked by the token', { timeout: 30000 }, async () => {
  const page = await newPage();
  await page.goto(`${HOST}/host.html`);
  const token = await mint('ko-user', 'anthropic');
  const frame = await mount(page, { registrationToken: token, locale: 'ko' });
  await frame.waitForSelector('#relay-form');
  assert.equal(await frame.getAttribute('html', 'lang'), 'ko');
  assert.equal(await frame.title(), 'API 키 연결');
  assert.equal(await (await frame.frameElement()).getAttribute('title'), 'API 키 연결 (Relay 보안 입력란)');
  assert.equal(await frame.textContent('#relay-title'), 'API 키 연결');
  assert.equal(await frame.textContent('label[for="relay-key"]'), 'Anthropic API 키');
  assert.equal(await frame.textContent('#relay-submit'), '키 연결');
  assert.match(await frame.textContent('.locked'), /Anthropic.*Test App에서 지정함/);
  assert.equal(await frame.$('fieldset.providers'), null, 'no picker when the token locks the provider');
  assert.equal(await frame.textContent('label[for="relay-cap"]'), 'Test App에서 이 키로 쓸 수 있는 금액 한도');
  assert.equal(await frame.textContent('.amount'), '$/월');
  assert.equal(await frame.getAttribute('#relay-cap', 'placeholder'), '한도 없음');
  await shot(page, 'locale-ko');

  await frame.focus('#relay-key');
  await page.keyboard.type('hello');
  await page.keyboard.press('Enter');
  await frame.waitForSelector('#relay-key-error:not([hidden])');
  assert.match(await frame.textContent('#relay-key-error'), /Anthropic 키 형식이 아닙니다/);
  await shot(page, 'locale-ko-error');
  assertCleanConsole(page);
  await page.context().close();
});

test('dark theme and accent colour', { timeout: 30000 }, async () => {
  const page = await newPage();
  await page.goto(`${HOST}/host.html?dark`);
  const token = await mint('dark-user');
  const frame = await mount(page, { registrationToken: token, theme: 'dark', accentColor: '#7c6cff' });
  await frame.waitForSelector('#relay-form');
  assert.equal(await frame.getAttribute('html', 'data-theme'), 'dark');
  const style = await frame.evaluate(() => ({
    accent: document.documentElement.style.getPropertyValue('--accent'),
    card: getComputedStyle(document.querySelector('.card')).backgroundColor,
    button: getComputedStyle(document.getElementById('relay-submit')).backgroundColor,
    scheme: getComputedStyle(document.documentElement).colorScheme,
  }));
  assert.equal(style.accent, '#7c6cff');
  assert.equal(style.card, 'rgb(23, 26, 33)');
  assert.equal(style.button, 'rgb(124, 108, 255)');
  assert.equal(style.scheme, 'dark');
  await frame.click('label[for="relay-p-google"]');
  await frame.focus('#relay-key');
  await page.keyboard.type('AIzaSy-not-quite-long-enough');
  await shot(page, 'dark');
  assertCleanConsole(page);
  await page.context().close();
});

test('a 360 px phone, and 320 px', { timeout: 30000 }, async () => {
  const page = await newPage({ width: 360, height: 780, mobile: true, scale: 3 });
  await page.goto(`${HOST}/host.html`);
  const token = await mint('phone-user');
  const frame = await mount(page, { registrationToken: token });
  await frame.waitForSelector('#relay-form');
  const layout = () => frame.evaluate(() => ({
    overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    columns: getComputedStyle(document.querySelector('.tiles')).gridTemplateColumns.split(' ').length,
    button: document.getElementById('relay-submit').getBoundingClientRect().height,
    input: parseFloat(getComputedStyle(document.getElementById('relay-key')).fontSize),
    width: document.documentElement.clientWidth,
  }));
  let l = await layout();
  assert.equal(l.overflow, 0, 'no horizontal scrolling');
  assert.equal(l.columns, 2);
  assert.ok(l.button >= 44, 'touch-sized button');
  assert.ok(l.input >= 16, 'no zoom-on-focus on iOS');
  await settle(page);
  const box = await (await frame.frameElement()).boundingBox();
  assert.ok(Math.abs(box.height - (await frame.evaluate(() => document.getElementById('relay').getBoundingClientRect().height))) <= 1,
    'the frame resized its host to its content');
  await shot(page, 'phone-360', { full: true });

  await page.setViewportSize({ width: 320, height: 700 });
  await page.waitForTimeout(300);
  l = await layout();
  assert.ok(l.width <= 300, `the frame follows the page width (${l.width})`);
  assert.equal(l.overflow, 0, 'no horizontal scrolling at 320 px');
  assertCleanConsole(page);
  await page.context().close();
});

test('an origin the tenant did not allow cannot frame the form', { timeout: 30000 }, async () => {
  const page = await newPage();
  await page.goto(`${OTHER_HOST}/host.html`);
  const token = await mint('other-origin-user');
  await page.evaluate((o) => window.mountWidget(o), { appId: APP_ID, registrationToken: token });
  await page.waitForFunction(() => window.__relay.errors.length > 0, null, { timeout: 20000 });
  const told = await page.evaluate(() => window.__relay);
  assert.equal(told.errors[0].code, 'frame_unavailable');
  assert.deepEqual(told.successes, []);
  assert.ok(page.logs.some((l) => /frame-ancestors/.test(l)), 'the browser refused it by frame-ancestors');
  assert.ok(page.logs.some((l) => /Relay: the connect form did not load/.test(l)), 'the developer is told why');
  const frame = widgetFrame(page);
  assert.ok(!frame || !(await frame.$('#relay-form').catch(() => null)), 'no form rendered');
  // The token was never sent anywhere, so it is still unused.
  assert.equal((await api('GET', `/v1/connect/${token}`)).status, 200);
  await shot(page, 'error-origin-not-allowed');
  await page.context().close();
});

// ------------------------------------------------------------------------------------ /connect

test('/connect: result to the React Native and WebKit bridges; the token leaves the address bar', { timeout: 60000 }, async () => {
  const page = await newPage({ width: 390, height: 844, mobile: true, scale: 3 });
  await page.addInitScript(() => {
    window.__bridge = { rn: [], webkit: [] };
    window.ReactNativeWebView = { postMessage: (m) => window.__bridge.rn.push(m) };
    window.webkit = { messageHandlers: { relay: { postMessage: (m) => window.__bridge.webkit.push(m) } } };
  });
  const token = await mint('native-user');
  await page.goto(`${RELAY}/connect?token=${token}&locale=en`);
  await page.waitForSelector('#relay-form');
  assert.ok(!page.url().includes(token) && !page.url().includes('token='), `token gone from ${page.url()}`);
  assert.equal(await page.evaluate(() => location.search), '?locale=en');
  await shot(page, 'connect-page', { full: true });

  assert.equal(await page.isChecked('#relay-p-openai'), true);
  await page.focus('#relay-key');
  await page.keyboard.type(OPENAI_KEY);
  await page.keyboard.press('Enter');
  await page.waitForSelector('[data-view="success"]');
  const fingerprint = `sk-proj-…${OPENAI_KEY.slice(-4)}`;
  assert.equal(await page.textContent('#relay-fingerprint'), fingerprint);
  const bridge = await page.evaluate(() => window.__bridge);
  assert.equal(bridge.rn.length, 1);
  assert.equal(typeof bridge.rn[0], 'string', 'React Native gets a string');
  const expected = { source: 'relay', protocol: 'relay-widget/1', type: 'success', provider: 'openai', fingerprint };
  assert.deepEqual(JSON.parse(bridge.rn[0]), expected);
  assert.deepEqual(bridge.webkit, [expected]);
  assertNoSecret(JSON.stringify(bridge), 'the native bridge');
  await shot(page, 'connect-page-success', { full: true });
  assertCleanConsole(page);
  await page.context().close();
});

test('/connect: the end user\'s own cap, dark, on a 360 px phone', { timeout: 60000 }, async () => {
  const page = await newPage({ width: 360, height: 780, mobile: true, scale: 3 });
  const token = await mint(CAP_USER, 'anthropic');
  await page.goto(`${RELAY}/connect?token=${token}&theme=dark`);
  await page.waitForSelector('#relay-form');
  await page.focus('#relay-key');
  await page.keyboard.type(ANTHROPIC_KEY);
  await page.click('.amount .affix-before');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'relay-cap', 'a click on "$" focuses the amount');
  await page.keyboard.type('2.5');
  const look = await page.evaluate(() => {
    const cap = document.getElementById('relay-cap');
    const wrap = cap.parentElement;
    return {
      overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
      wrapRight: wrap.getBoundingClientRect().right,
      width: document.documentElement.clientWidth,
      font: parseFloat(getComputedStyle(cap).fontSize),
      height: wrap.getBoundingClientRect().height,
      background: getComputedStyle(wrap).backgroundColor,
      text: getComputedStyle(cap).color,
      unit: getComputedStyle(wrap.lastElementChild).color,
    };
  });
  assert.equal(look.overflow, 0, 'no horizontal scrolling');
  assert.ok(look.wrapRight <= look.width, 'the amount field fits');
  assert.ok(look.font >= 16, 'no zoom-on-focus on iOS');
  assert.ok(look.height >= 44, 'touch-sized');
  assert.equal(look.background, 'rgb(23, 26, 33)', 'the dark surface');
  assert.equal(look.text, 'rgb(236, 238, 243)');
  assert.equal(look.unit, 'rgb(162, 170, 186)', 'the unit in the muted colour');
  await shot(page, 'connect-page-cap', { full: true });
  await page.keyboard.press('Enter');
  await page.waitForSelector('[data-view="success"]');
  assert.equal(await page.textContent('#relay-cap-summary'), '$2.50 per month');
  await shot(page, 'connect-page-cap-success', { full: true });
  const user = await api('GET', `/v1/users/${CAP_USER}`);
  const anthropic = user.body.providers.find((p) => p.provider === 'anthropic');
  assert.equal(anthropic.monthlyCapUsd, 2.5);
  assertCleanConsole(page);
  await page.context().close();
});

test('/connect: redirect_uri on an allowed origin gets the result', { timeout: 60000 }, async () => {
  const page = await newPage({ width: 390, height: 844, mobile: true });
  const token = await mint('redirect-user');
  const redirect = `${HOST}/callback.html?from=relay`;
  await page.goto(`${RELAY}/connect?token=${token}&redirect_uri=${encodeURIComponent(redirect)}&state=st-42`);
  await page.waitForSelector('#relay-form');
  await page.focus('#relay-key');
  await page.keyboard.type(OPENAI_KEY);
  await page.keyboard.press('Enter');
  await page.waitForURL((u) => u.href.startsWith(`${HOST}/callback.html`));
  const url = new URL(page.url());
  assert.deepEqual(Object.fromEntries(url.searchParams), {
    from: 'relay', status: 'connected', provider: 'openai', fingerprint: `sk-proj-…${OPENAI_KEY.slice(-4)}`, state: 'st-42',
  });
  assert.ok(!page.url().includes('rrt-'));
  assertNoSecret(page.url(), 'the redirect');

  // A spent token: the page says so, and offers the way back with the error code.
  await page.goto(`${RELAY}/connect?token=${USED_TOKEN}&redirect_uri=${encodeURIComponent(redirect)}&state=st-43`);
  await page.waitForSelector('[data-view="error"][data-code="registration_token_used"]');
  assert.equal(new URL(page.url()).origin, new URL(RELAY).origin, 'no automatic redirect on an error');
  await page.click('button.secondary');
  await page.waitForURL((u) => u.href.startsWith(`${HOST}/callback.html`));
  assert.deepEqual(Object.fromEntries(new URL(page.url()).searchParams), {
    from: 'relay', status: 'error', error: 'registration_token_used', state: 'st-43',
  });
  await page.context().close();
});

test('/connect: a redirect_uri the tenant did not allow is refused, visibly', { timeout: 30000 }, async () => {
  const page = await newPage({ width: 390, height: 844, mobile: true, scale: 3 });
  const token = await mint('evil-redirect-user');
  const redirect = `${OTHER_HOST}/callback.html`;
  await page.goto(`${RELAY}/connect?token=${token}&redirect_uri=${encodeURIComponent(redirect)}`);
  await page.waitForSelector('[data-view="error"][data-code="redirect_uri_not_allowed"]');
  assert.equal(await page.textContent('#relay-title'), 'This link can’t be used');
  assert.equal(await page.$('#relay-key'), null, 'no form: a key must not be taken on this page');
  await page.waitForTimeout(1000);
  assert.ok(page.url().startsWith(`${RELAY}/connect`), 'still on Relay');
  assert.ok(!page.requestsSeen.some((r) => r.includes(OTHER_HOST)), 'nothing went to the refused origin');
  assert.equal((await api('GET', `/v1/connect/${token}`)).status, 200, 'the token is still unused');
  await shot(page, 'connect-redirect-refused', { full: true });
  assertCleanConsole(page);
  await page.context().close();
});

test('/connect in an iframe of an allowed origin: result by postMessage to the parent', { timeout: 60000 }, async () => {
  const page = await newPage();
  await page.goto(`${HOST}/host.html`);
  const token = await mint('parent-user');
  await page.evaluate((src) => {
    window.__parent = [];
    window.addEventListener('message', (e) => window.__parent.push({ origin: e.origin, data: e.data }));
    const frame = document.createElement('iframe');
    frame.src = src;
    frame.style.cssText = 'width:100%;height:640px;border:0';
    document.getElementById('connect').appendChild(frame);
  }, `${RELAY}/connect?token=${token}`);
  let frame;
  for (let i = 0; i < 200 && !frame; i++) {
    frame = page.frames().find((f) => f.url().startsWith(`${RELAY}/connect`));
    if (!frame) await page.waitForTimeout(25);
  }
  assert.ok(frame, 'the connect page loaded in the frame');
  await frame.waitForSelector('#relay-form');
  await frame.focus('#relay-key');
  await page.keyboard.type(OPENAI_KEY);
  await page.keyboard.press('Enter');
  await frame.waitForSelector('[data-view="success"]');
  await page.waitForFunction(() => window.__parent.length > 0);
  const got = await page.evaluate(() => window.__parent);
  assert.equal(got.length, 1);
  assert.equal(got[0].origin, new URL(RELAY).origin);
  assert.equal(got[0].data.type, 'success');
  assert.equal(got[0].data.provider, 'openai');
  assertNoSecret(JSON.stringify(got), 'the parent');
  assertCleanConsole(page);
  await page.context().close();
});

// ------------------------------------------------------------------------------------ strings

test('every string exists in every locale, with the same placeholders', () => {
  const sandbox = { window: {} };
  vm.runInNewContext(fs.readFileSync(path.join(REPO, 'widget/strings.js'), 'utf8'), sandbox);
  const { en, ko } = sandbox.window.RelayStrings;
  assert.deepEqual(Object.keys(ko).sort(), Object.keys(en).sort());
  const holes = (s) => (s.match(/\{\w+\}/g) || []).sort().join(',');
  for (const key of Object.keys(en)) {
    assert.ok(en[key].trim() && ko[key].trim(), `${key} is empty`);
    assert.equal(holes(ko[key]), holes(en[key]), `${key} placeholders`);
    assert.notEqual(ko[key], en[key], `${key} is not translated`);
  }
  // The widget's own few strings (loading, load failure).
  const shell = fs.readFileSync(path.join(REPO, 'widget/widget.js'), 'utf8');
  const block = (lang) => shell.match(new RegExp(`${lang}: \\{([^}]*)\\}`))[1].match(/(\w+):/g).sort();
  assert.deepEqual(block('ko'), block('en'));
});

// ------------------------------------------------------------------------------------ docs

after(() => {
  if (process.env.UPDATE_DOC_SCREENSHOTS !== '1') return;
  const docs = path.join(REPO, 'docs/screenshots');
  fs.mkdirSync(docs, { recursive: true });
  for (const name of ['hostile-page-form', 'hostile-page-success', 'error-rejected', 'error-expired', 'locale-ko',
    'dark', 'phone-360', 'connect-page', 'connect-redirect-refused', 'connect-page-cap']) {
    fs.copyFileSync(path.join(ARTIFACTS, `${name}.png`), path.join(docs, `widget-${name}.png`));
  }
});

// The Relay console in Debian's headless Chromium, as its members use it: accept the owner's
// invite, create, use and revoke an API key, find and erase an end user, invite a viewer (who
// sees no write controls), sign out, and a wrong password. Every page at 360 px, light and dark.
// Run by tests/tests/console_browser.rs, which starts Relay (RELAY_PUBLIC_URL=http://localhost:
// PORT) and a mock provider and passes everything in the environment. The browser may fetch
// nothing but Relay. Screenshots go to ARTIFACTS_DIR; UPDATE_DOC_SCREENSHOTS=1 also copies them
// into docs/screenshots/console-*.png. Prints one JSON line of the steps it passed; no secrets.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through cargo test -p relay-tests --test console_browser`);
  return value;
}

const RELAY = env('RELAY_URL'); // http://localhost:PORT: the public URL, what the browser uses
const DIRECT = env('RELAY_DIRECT_URL'); // http://127.0.0.1:PORT, for this script's own calls
const OWNER_INVITE = env('OWNER_INVITE_URL');
const OWNER_PASSWORD = env('OWNER_PASSWORD');
const VIEWER_PASSWORD = env('VIEWER_PASSWORD');
const RLY = env('RELAY_API_KEY');
const ERASED_USER = env('ERASED_USER');
const ERASED_FINGERPRINT = env('ERASED_FINGERPRINT');
const KEPT_USER = env('KEPT_USER');
const ARTIFACTS = env('ARTIFACTS_DIR');
const OWNER = 'owner@example.com';
const VIEWER = 'viewer@example.com';
const LOCAL = new URL(RELAY).host;

const external = [];
const steps = [];
const shots = [];
const pages = [];

async function call(method, urlPath, { key, cookie } = {}) {
  const headers = {};
  if (key) headers.authorization = `Bearer ${key}`;
  if (cookie) headers.cookie = cookie;
  const res = await fetch(DIRECT + urlPath, { method, headers });
  return { status: res.status, body: await res.json().catch(() => null) };
}

async function newPage(browser) {
  const context = await browser.newContext({
    viewport: { width: 900, height: 700 }, locale: 'en-US', serviceWorkers: 'block', colorScheme: 'light',
  });
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.protocol === 'http:' && url.host === LOCAL) return route.continue();
    external.push(url.href);
    return route.abort('blockedbyclient');
  });
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  page.logs = [];
  page.failures = [];
  page.on('console', (m) => page.logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => page.logs.push(`pageerror: ${e.message}`));
  page.on('response', (r) => { if (r.status() >= 500) page.failures.push(`${r.status()} ${r.url()}`); });
  pages.push(page);
  return page;
}

/** Opens a console page and waits until its script rendered the heading. */
async function open(page, urlPath, heading) {
  await page.goto(RELAY + urlPath);
  await page.waitForSelector(`main h1:text-is("${heading}")`);
}

const AXE = fs.readFileSync(path.join(HERE, 'node_modules/axe-core/axe.min.js'), 'utf8');

/** axe-core's serious and critical violations on the page as it is now (injected by the
 *  driver, so the page's CSP is not bent for it). */
async function accessibility(page, name) {
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.evaluate(AXE);
  const found = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
  assert.deepEqual(found, [], `${name}: no serious or critical accessibility violation`);
}

/** Light and dark screenshots of the whole page (secrets masked), that dark is dark, and
 *  axe-core in both. */
async function shoot(page, name, mask = []) {
  const backgrounds = [];
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    backgrounds.push(await page.evaluate(() => getComputedStyle(document.body).backgroundColor));
    await accessibility(page, `${name} (${scheme})`);
    const file = path.join(ARTIFACTS, `console-${name}-${scheme}.png`);
    await page.screenshot({ path: file, fullPage: true, animations: 'disabled', caret: 'hide', mask: mask.map((s) => page.locator(s)) });
    shots.push(file);
  }
  await page.emulateMedia({ colorScheme: 'light' });
  assert.notEqual(backgrounds[0], backgrounds[1], `${name}: dark differs from light`);
}

/** The next confirm() the page asks is answered yes, and its text kept. */
function acceptNextDialog(page) {
  return new Promise((resolve) => page.once('dialog', async (d) => { const text = d.message(); await d.accept(); resolve(text); }));
}

async function setPassword(page, invite, password) {
  await page.goto(invite);
  await page.waitForSelector('main h1:text-is("Set your password")');
  await page.fill('#password', password);
  await page.fill('#confirm', password);
  await page.click('main form button[type=submit]');
}

async function signedInAs(page, email) {
  await page.waitForURL(`${RELAY}/console/keys`);
  await page.waitForSelector('main h1:text-is("API keys")');
  await page.waitForFunction((e) => document.querySelector('.top .who').textContent.startsWith(e), email);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-default-apps', '--disable-extensions', '--no-default-browser-check', '--font-render-hinting=none'],
});
try {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const owner = await newPage(browser);

  // 1. The owner's invite: set a password, land signed in.
  await owner.goto(OWNER_INVITE);
  await owner.waitForSelector('main h1:text-is("Set your password")');
  await shoot(owner, 'invite');
  await setPassword(owner, OWNER_INVITE, OWNER_PASSWORD);
  await signedInAs(owner, OWNER);
  steps.push('invite');

  // 2. API keys: create (shown once), use it, revoke it (confirmed), it is refused.
  await owner.fill('#key-name', 'ci');
  await owner.click('main form.row button[type=submit]');
  const secret = (await owner.textContent('#new-key', { timeout: 10000 })).trim();
  assert.match(secret, /^rly-/, 'the shown-once panel shows the key');
  await owner.waitForSelector('tr:has(.sub:text-is("ci"))');
  await shoot(owner, 'keys', ['#new-key']);
  const used = await call('GET', '/v1/users/nobody', { key: secret });
  assert.deepEqual([used.status, used.body?.error?.code], [404, 'enduser_not_found'], 'the new key authenticates');
  await owner.click('.secret button.link'); // Done: the secret is gone from the page
  assert.equal(await owner.locator('#new-key').count(), 0);
  const confirmed = acceptNextDialog(owner);
  await owner.click('tr:has(.sub:text-is("ci")) button.danger');
  assert.match(await confirmed, /^Revoke rly-/);
  await owner.waitForSelector('tr:has(.sub:text-is("ci")) td:text-is("revoked")');
  const refused = await call('GET', '/v1/users/nobody', { key: secret });
  assert.equal(refused.status, 401, 'the revoked key is refused');
  steps.push('keys');

  // 3. End users: search by label prefix, provider and fingerprint, erase (confirmed).
  await owner.click('nav a[data-nav="end-users"]');
  await owner.waitForSelector('main h1:text-is("End users")');
  await owner.fill('#prefix', ERASED_USER.slice(0, 3));
  await owner.click('main form[role=search] button[type=submit]');
  await owner.waitForFunction((l) => {
    const labels = [...document.querySelectorAll('main table button.link')].map((b) => b.textContent);
    return labels.length === 1 && labels[0] === l;
  }, ERASED_USER);
  await owner.click(`main table button.link:text-is("${ERASED_USER}")`);
  await owner.waitForSelector(`.details h2:text-is("${ERASED_USER}")`);
  assert.equal(await owner.textContent('.details td:nth-child(1)'), 'openai');
  assert.equal(await owner.textContent('.details td:nth-child(2) code'), ERASED_FINGERPRINT);
  await shoot(owner, 'end-users');
  const erase = acceptNextDialog(owner);
  await owner.click('.details button.danger');
  assert.match(await erase, new RegExp(`^Erase ${ERASED_USER} `));
  await owner.waitForSelector('main p:text-is("No end users found.")');
  await owner.waitForSelector('.details', { state: 'hidden' });
  const gone = await call('GET', `/v1/users/${ERASED_USER}`, { key: RLY });
  assert.deepEqual([gone.status, gone.body?.error?.code], [404, 'enduser_not_found'], 'the API says it is gone');
  steps.push('end-users');

  // 4. Members: invite a viewer; in a second browser they set a password and see no controls.
  await owner.click('nav a[data-nav="members"]');
  await owner.waitForSelector('main h1:text-is("Members")');
  await owner.fill('#invite-email', VIEWER);
  assert.equal(await owner.inputValue('#invite-role'), 'viewer');
  await owner.click('main form.row button[type=submit]');
  const link = (await owner.textContent('.secret code')).trim();
  assert.ok(link.startsWith(`${RELAY}/console/invite/rci_`), 'an invite link to this console');
  await shoot(owner, 'members', ['.secret code']);

  const viewer = await newPage(browser);
  await setPassword(viewer, link, VIEWER_PASSWORD);
  await signedInAs(viewer, VIEWER);
  assert.equal(await viewer.locator('#key-name').count(), 0, 'a viewer has no create form');
  assert.equal(await viewer.locator('main button.danger').count(), 0, 'a viewer has no revoke buttons');
  await viewer.waitForSelector('main p.hint:text-is("Your role can view but not change this.")');
  await viewer.waitForSelector('main table tbody tr'); // but does see the keys
  await open(viewer, '/console/end-users', 'End users');
  await viewer.click(`main table button.link:text-is("${KEPT_USER}")`);
  await viewer.waitForSelector('.details table');
  assert.equal(await viewer.locator('.details button.danger').count(), 0, 'a viewer has no erase button');
  await open(viewer, '/console/members', 'Members');
  await viewer.waitForSelector(`main td:text-is("${OWNER}")`);
  assert.equal(await viewer.locator('#invite-email, main select, main button.danger').count(), 0, 'nor member controls');
  // The API refuses what the page hides, with the page's own session and CSRF token.
  const write = await viewer.evaluate(async () => {
    const me = await (await fetch('/console/api/me')).json();
    const res = await fetch('/console/api/keys', {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-relay-csrf': me.csrfToken }, body: '{}',
    });
    return [res.status, (await res.json()).error.code];
  });
  assert.deepEqual(write, [403, 'console_role_forbidden']);
  await owner.reload();
  await owner.waitForSelector(`main td:text-is("${VIEWER}")`);
  steps.push('members');

  // 5. Sign-out ends the session: the sign-in page, also after a reload; the old cookie is refused.
  const cookies = await owner.context().cookies(RELAY + '/console');
  const session = cookies.find((c) => c.name === 'relay_console');
  assert.ok(session && session.httpOnly && session.sameSite === 'Strict', 'the session cookie is HttpOnly, SameSite=Strict');
  const cookie = `${session.name}=${session.value}`;
  assert.equal((await call('GET', '/console/api/me', { cookie })).status, 200);
  await owner.click('#sign-out');
  await owner.waitForURL(`${RELAY}/console/sign-in?signed-out=1`);
  await owner.waitForSelector('main h1:text-is("Sign in to Relay")');
  await owner.waitForSelector('.status:text-is("You are signed out.")');
  await owner.goto(RELAY + '/console/keys');
  await owner.waitForURL(`${RELAY}/console/sign-in`);
  await owner.waitForSelector('#email');
  assert.ok(await owner.locator('.top').isHidden(), 'signed out: no navigation');
  const after = await call('GET', '/console/api/me', { cookie });
  assert.deepEqual([after.status, after.body?.error?.code], [401, 'console_session_missing']);
  steps.push('sign-out');

  // 6. A wrong password: an error, and still the sign-in page; then the right one.
  await owner.fill('#email', OWNER);
  await owner.fill('#password', 'not the password at all');
  await owner.click('main form button[type=submit]');
  await owner.waitForSelector('.status.error:has-text("The email or password is not correct.")');
  assert.equal(await owner.inputValue('#password'), '', 'the wrong password is cleared');
  await shoot(owner, 'sign-in');
  await owner.fill('#password', OWNER_PASSWORD);
  await owner.click('main form button[type=submit]');
  await signedInAs(owner, OWNER);
  steps.push('wrong-password');

  // 7. 360 px wide: no page scrolls sideways (tables scroll inside their box).
  await owner.setViewportSize({ width: 360, height: 740 });
  for (const [urlPath, heading] of [['/console/keys', 'API keys'], ['/console/end-users', 'End users'],
    ['/console/members', 'Members'], ['/console/sign-in', 'Sign in to Relay']]) {
    await open(owner, urlPath, heading);
    const [scroll, width] = await owner.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    assert.ok(scroll <= width, `${urlPath} at 360 px: ${scroll} px wide`);
  }
  await open(owner, '/console/keys', 'API keys');
  await shoot(owner, 'keys-360');
  steps.push('360px');

  // 8. Nothing went wrong in any page, and nothing left this machine.
  for (const page of pages) {
    const bad = page.logs.filter((l) => /Content Security Policy|pageerror|Refused to|Uncaught/i.test(l)
      || (l.startsWith('error:') && !/Failed to load resource: the server responded with a status of 40[13]/.test(l)));
    assert.deepEqual(bad, [], 'no console error, script error or CSP violation');
    assert.deepEqual(page.failures, [], 'no server error');
    const html = await page.content();
    assert.ok(!html.includes(RLY) && !html.includes(secret), 'no API key left in a page');
  }
  assert.deepEqual(external, [], 'the browser tried to reach something outside this machine');
  steps.push('clean');

  if (process.env.UPDATE_DOC_SCREENSHOTS === '1') {
    const docs = path.join(REPO, 'docs/screenshots');
    for (const file of shots) fs.copyFileSync(file, path.join(docs, path.basename(file)));
  }
  console.log(JSON.stringify({ steps, screenshots: shots.length }));
} finally {
  await browser.close();
}

// Drives every method of Relay's JavaScript SDK (sdk/js, installed here as @relay/sdk) against a
// real Relay, as a developer's backend would. Reads a job from stdin ({base_url, api_key,
// provider_key, user}); prints one JSON object with what each step handed back, which
// tests/tests/sdk_packages.rs checks. Test doubles for retries and timeouts run in-process.
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import OpenAI from 'openai';
import { Relay, RelayError, WebhookVerificationError } from '@relay/sdk';

const job = JSON.parse(await new Promise((resolve) => {
  let data = '';
  process.stdin.on('data', (c) => (data += c));
  process.stdin.on('end', () => resolve(data));
}));
const out = {};

/** A local HTTP server; `handle(req, body, res)` answers. Resolves to its base URL. */
async function serve(handle) {
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => handle(req, Buffer.concat(chunks), res));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.unref();
  return `http://127.0.0.1:${server.address().port}`;
}

const errorOf = async (promise) => {
  try {
    await promise;
    return null;
  } catch (e) {
    return {
      isRelayError: e instanceof RelayError,
      name: e.name, status: e.status, code: e.code, requestId: e.requestId, message: e.message,
      text: String(e), json: JSON.stringify(e),
    };
  }
};

// CommonJS build, through the package's exports map.
const cjs = createRequire(import.meta.url)('@relay/sdk');
out.cjs = {
  relay: typeof cjs.Relay === 'function' && typeof cjs.RelayError === 'function',
  // Its own copy of openai (resolved from sdk/js), so compare by name, not instanceof.
  openai: new cjs.Relay({ key: job.api_key, baseURL: job.base_url }).openai({ user: job.user }).constructor.name === OpenAI.name,
};

// Webhook deliveries land here.
const deliveries = [];
const hookURL = await serve((req, body, res) => {
  deliveries.push({ headers: req.headers, body });
  res.writeHead(204).end();
});

const relay = new Relay({ key: job.api_key, baseURL: job.base_url });
out.relay_json = JSON.stringify(relay);

const hook = await relay.webhooks.create({ url: `${hookURL}/hook`, description: 'sdk test' });
out.webhook_created = { id: hook.id, has_secret: hook.secret.startsWith('whsec_'), url: hook.url };
out.webhook_list = (await relay.webhooks.list()).data.map((e) => e.id);
out.webhook_retrieved = (await relay.webhooks.retrieve(hook.id)).description;

// Registration token -> the widget's connect call -> chat as that user.
const token = await relay.createRegistrationToken({ user: job.user, provider: 'openai', expiresIn: 600 });
out.registration = { prefix: token.registrationToken.slice(0, 4), user: token.endUserLabel, provider: token.provider };
out.described = await relay.registrationTokens.describe(token.registrationToken);
out.other_token_user = (await relay.registrationTokens.create({ user: `${job.user}-2` })).endUserLabel;
const connect = await fetch(`${job.base_url}/v1/connect`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ registrationToken: token.registrationToken, provider: 'openai', apiKey: job.provider_key }),
});
out.connect_status = connect.status;

const client = relay.openai({ user: job.user });
const { data: completion, response } = await client.chat.completions
  .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello' }] })
  .withResponse();
out.chat = { content: completion.choices[0].message.content, request_id: response.headers.get('x-request-id') };
let streamed = '';
const stream = await client.chat.completions.create({
  model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello' }], stream: true,
});
for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? '';
out.stream = streamed;
const free = relay.openai({ user: job.user, paid: false });
out.free_chat = (await free.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }] })).choices[0].message.content;

// Management calls.
out.user = await relay.users.retrieve(job.user);
const session = await relay.createSessionToken({ user: job.user, providers: ['openai'], expiresIn: 300 });
out.session = { user: session.endUserLabel, providers: session.providers, has_token: session.sessionToken.length > 20 };
out.session2 = (await relay.sessionTokens.create({ user: job.user })).providers;
out.revoked = await relay.users.revokeSessions(job.user);
out.revoked2 = await relay.sessionTokens.revoke(job.user);
out.budget_set = await relay.budgets.set('tenant', { limitUsd: 100, period: 'month', alertAt: 0.5 });
out.budget_get = await relay.budgets.retrieve('tenant');
out.budget_del = await relay.budgets.del('tenant');
out.budget_default = (await relay.budgets.set('end-user-default', { limitUsd: 3, period: 'day' })).scope;
out.user_budget_set = await relay.users.budget.set(job.user, { limitUsd: 5, period: 'day' });
out.user_budget_get = await relay.users.budget.retrieve(job.user);
out.user_budget_del = await relay.users.budget.del(job.user);
// Usage is written after the answer; wait for the three calls to be counted.
for (let i = 0; i < 50; i++) {
  out.usage = await relay.usage.retrieve({ user: job.user, groupBy: 'model', from: new Date(Date.now() - 3600_000) });
  if (out.usage.total.requests >= 3) break;
  await new Promise((r) => setTimeout(r, 100));
}

// Errors from Relay itself.
out.not_found = await errorOf(relay.users.retrieve('nobody-here'));
const badKey = 'rly-' + 'x'.repeat(40);
out.bad_key = await errorOf(new Relay({ key: badKey, baseURL: job.base_url, maxRetries: 0 }).users.retrieve(job.user));
out.bad_key_leaks = JSON.stringify(out.bad_key).includes(badKey);
out.bad_request = await errorOf(relay.createRegistrationToken({ user: job.user, expiresIn: 5 }));

// Retries: a double that answers 429 + Retry-After: 1 once, then 200.
let hits = 0;
const flaky = await serve((req, body, res) => {
  hits += 1;
  if (hits === 1) {
    res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json', 'x-relay-request-id': 'req_limited' })
      .end(JSON.stringify({ error: { message: 'slow down', type: 'rate_limit_error', code: 'rate_limit_exceeded', param: null } }));
  } else {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ endUserLabel: 'x', providers: [], paid: true }));
  }
});
let started = Date.now();
const retried = await new Relay({ key: job.api_key, baseURL: flaky }).users.retrieve('x');
out.retry = { hits, waited_ms: Date.now() - started, user: retried.endUserLabel };
// Without retries, the 429 is thrown with Relay's fields.
hits = 0;
out.no_retry = await errorOf(new Relay({ key: job.api_key, baseURL: flaky, maxRetries: 0 }).users.retrieve('x'));
// 5xx is retried too; a Retry-After over a minute is not waited for.
let fives = 0;
const down = await serve((req, body, res) => {
  fives += 1;
  res.writeHead(503, { 'retry-after': fives === 1 ? '0' : '3600', 'content-type': 'application/json' })
    .end(JSON.stringify({ error: { message: 'down', type: 'api_error', code: 'store_unavailable', param: null } }));
});
out.unavailable = await errorOf(new Relay({ key: job.api_key, baseURL: down, maxRetries: 5 }).users.retrieve('x'));
out.unavailable_hits = fives;
// A server that never answers: a timeout, retried, then thrown.
let hangs = 0;
const hang = await serve(() => { hangs += 1; });
started = Date.now();
out.timeout = await errorOf(new Relay({ key: job.api_key, baseURL: hang, timeout: 200, maxRetries: 1 }).users.retrieve('x'));
out.timeout_hits = hangs;

// Webhooks: the key.connected delivery Relay signed, verified; tampered ones refused.
for (let i = 0; i < 100 && deliveries.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
const d = deliveries[0];
const event = await relay.webhooks.verify(d.body, d.headers, hook.secret);
out.webhook_event = { type: event.type, user: event.data.endUserLabel };
const asHeaders = new Headers(Object.entries(d.headers).map(([k, v]) => [k, String(v)]));
out.webhook_event_text = (await relay.webhooks.verify(d.body.toString('utf8'), asHeaders, hook.secret)).type;
const refused = async (body, headers, secret) => {
  try {
    await relay.webhooks.verify(body, headers, secret);
    return 'accepted';
  } catch (e) {
    return e instanceof WebhookVerificationError ? e.message : `other: ${e}`;
  }
};
const tampered = Buffer.from(d.body.toString('utf8').replace(job.user, `${job.user}x`));
out.webhook_tampered = await refused(tampered, d.headers, hook.secret);
out.webhook_wrong_secret = await refused(d.body, d.headers, 'whsec_' + Buffer.alloc(24, 7).toString('base64'));
out.webhook_old = await refused(d.body, { ...d.headers, 'webhook-timestamp': String(Math.floor(Date.now() / 1000) - 3600) }, hook.secret);
out.webhook_unsigned = await refused(d.body, { ...d.headers, 'webhook-signature': undefined }, hook.secret);
out.deliveries = (await relay.webhooks.deliveries(hook.id, { limit: 10 })).data.map((x) => x.type);

// Removing things. After its key is gone, the user's next chat is the OpenAI client's own error,
// with Relay's request id; a revoked rly- key is a RelayError with its status, code and id.
out.key_deleted = await relay.users.deleteKey(job.user, 'openai');
try {
  await relay.openai({ user: job.user, maxRetries: 0 }).chat.completions.create({
    model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }],
  });
  out.chat_after_delete = null;
} catch (e) {
  // By name: the client comes from the SDK's own copy of `openai` here (a linked package), so
  // `instanceof` against this script's copy would not hold.
  out.chat_after_delete = { openaiError: e?.constructor?.name === 'NotFoundError', status: e.status, code: e.code, requestId: e.requestID };
}
out.revoked_key = await errorOf(new Relay({ key: job.revoked_key, baseURL: job.base_url }).users.retrieve(job.user));
out.user_deleted = await relay.users.del(job.user);
out.webhook_deleted = await relay.webhooks.del(hook.id);
process.stdout.write(JSON.stringify(out) + '\n');

// A BYOK app's backend on Relay: a (fake) sign-in, a registration token for the widget, the
// signed-in user's connected keys, and chat in that user's name, streamed to the page as text.
import { fileURLToPath } from 'node:url';
import express from 'express';
import { Relay, RelayError } from '@relay/sdk';

const relay = new Relay(); // RELAY_API_KEY and RELAY_BASE_URL from the environment
const APP_ID = process.env.RELAY_APP_ID; // printed by `relay tenant create`
const MODEL = process.env.MODEL ?? 'gpt-4o-mini';
if (!process.env.RELAY_API_KEY || !APP_ID) {
  console.error('Set RELAY_API_KEY (rly-…) and RELAY_APP_ID (app_…): see README.md');
  process.exit(1);
}

const app = express();
app.use(express.json());
app.use(express.static(fileURLToPath(new URL('./public', import.meta.url))));

// Fake sign-in: a cookie with the user's name. Use your real session here; Relay only needs a
// stable label per user (letters, digits, `_ . - @`).
app.post('/api/sign-in', (req, res) => {
  const name = String(req.body?.name ?? '').trim();
  if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(name)) return res.status(400).json({ error: 'pick a simple user name' });
  res.cookie('demo_user', name, { httpOnly: true, sameSite: 'lax' }).json({ user: name });
});

function signedIn(req, res, next) {
  const match = /(?:^|;\s*)demo_user=([^;]+)/.exec(req.headers.cookie ?? '');
  if (!match) return res.status(401).json({ error: 'sign in first' });
  req.user = decodeURIComponent(match[1]);
  next();
}

// Who is signed in, and which keys they connected (fingerprints only: Relay never returns a key).
app.get('/api/me', signedIn, async (req, res) => {
  try {
    const user = await relay.users.retrieve(req.user);
    res.json({ user: req.user, providers: user.providers.map((p) => `${p.provider} ${p.fingerprint}`) });
  } catch (e) {
    if (e instanceof RelayError && e.code === 'enduser_not_found') return res.json({ user: req.user, providers: [] });
    throw e;
  }
});

// What the page hands the widget: a single-use token for this user, and where Relay is.
app.post('/api/registration-token', signedIn, async (req, res) => {
  const { registrationToken } = await relay.createRegistrationToken({ user: req.user });
  res.json({ registrationToken, appId: APP_ID, relayUrl: process.env.RELAY_PUBLIC_URL ?? relay.baseURL });
});

// Chat as the signed-in user, with their own key, streamed to the page as plain text.
app.post('/api/chat', signedIn, async (req, res) => {
  const openai = relay.openai({ user: req.user });
  let stream;
  try {
    stream = await openai.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: String(req.body?.message ?? '') }],
      stream: true,
    });
  } catch (e) {
    // e.g. 404 enduser_key_missing: the user has not connected a key yet.
    return res.status(e.status ?? 502).json({ error: e.error?.message ?? e.message, code: e.code ?? null });
  }
  res.type('text/plain; charset=utf-8');
  res.on('close', () => stream.controller.abort()); // the page went away: stop the provider call
  try {
    for await (const chunk of stream) res.write(chunk.choices[0]?.delta?.content ?? '');
  } catch (e) {
    if (!res.destroyed) res.write(`\n[error: ${e.message}]`);
  }
  res.end();
});

app.use((err, req, res, _next) => {
  console.error(err instanceof RelayError ? `Relay: ${err.status} ${err.code} (${err.requestId})` : err);
  res.status(500).json({ error: 'something went wrong' });
});

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`Example app on http://127.0.0.1:${server.address().port}`);
});

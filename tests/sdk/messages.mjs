// Drives Relay's /v1/messages with the official @anthropic-ai/sdk Node package, as a backend would.
// Reads a job from stdin ({base_url, api_key, user, request, auth?}); the key goes as x-api-key, or
// as a Bearer token with auth: "bearer". Prints one JSON object: {message, request_id}; for a
// stream also events (types in order) and text (text deltas joined), message being finalMessage();
// or {error} with what the SDK threw.
import Anthropic from '@anthropic-ai/sdk';

const input = await new Promise((resolve) => {
  let data = '';
  process.stdin.on('data', (c) => (data += c));
  process.stdin.on('end', () => resolve(data));
});
const job = JSON.parse(input);
const key = job.auth === 'bearer' ? { authToken: job.api_key, apiKey: null } : { apiKey: job.api_key };
const client = new Anthropic({
  baseURL: job.base_url,
  defaultHeaders: { 'X-Relay-User': job.user },
  maxRetries: 0,
  timeout: 30000,
  ...key,
});

const { stream, ...req } = job.request;
const events = [];
let out;
try {
  if (stream) {
    const s = client.messages.stream(req);
    let text = '';
    s.on('text', (t) => (text += t));
    for await (const event of s) events.push(event.type);
    const message = await s.finalMessage();
    out = { message, events, text, request_id: s.request_id ?? null };
  } else {
    const message = await client.messages.create(req);
    out = { message, request_id: message._request_id ?? null };
  }
} catch (e) {
  if (e instanceof Anthropic.APIError) {
    out = { error: { status: e.status ?? null, message: e.message, type: e.error?.error?.type ?? null, request_id: e.requestID ?? null }, events };
  } else {
    throw e;
  }
}
process.stdout.write(JSON.stringify(out) + '\n');

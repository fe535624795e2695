// Drives Relay's /v1/responses with the official openai Node package, as a backend would. Reads
// jobs from stdin, one JSON object a line ({base_url, api_key, user, request}); prints one JSON
// object a line for each: {response, request_id}; for a stream also events (types in order) and
// text (output text deltas joined), response being finalResponse(); or {error} with what the SDK
// threw or the stream's response.failed event reported. One process runs many jobs.
import OpenAI from 'openai';
import readline from 'node:readline';

async function run(job) {
  const client = new OpenAI({
    baseURL: `${job.base_url}/v1`,
    apiKey: job.api_key,
    defaultHeaders: { 'X-Relay-User': job.user },
    maxRetries: 0,
    timeout: 30000,
  });
  const { stream, ...req } = job.request;
  const events = [];
  try {
    if (!stream) {
      const response = await client.responses.create(req);
      return { response, request_id: response._request_id ?? null };
    }
    const s = client.responses.stream(req);
    let text = '';
    for await (const event of s) {
      events.push(event.type);
      if (event.type === 'response.output_text.delta') text += event.delta;
      if (event.type === 'response.failed') {
        const e = event.response.error;
        return { error: { code: e.code, message: e.message }, events };
      }
    }
    const response = await s.finalResponse();
    return { response, events, text, request_id: s.request_id ?? null };
  } catch (e) {
    if (e instanceof OpenAI.APIError) {
      return { error: { status: e.status ?? null, code: e.code ?? null, message: e.error?.message ?? e.message, request_id: e.requestID ?? null }, events };
    }
    return { error: { status: null, message: String(e?.message ?? e) }, events };
  }
}

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line.trim()) process.stdout.write(JSON.stringify(await run(JSON.parse(line))) + '\n');
}

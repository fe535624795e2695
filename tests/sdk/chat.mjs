// Drives Relay with the official `openai` Node package, as a developer's backend would.
// Reads a job from stdin ({base_url, api_key, user, endpoint, request}); prints one JSON object:
// what the SDK handed back (accumulated over the stream when streaming), or the error it threw.
import OpenAI from 'openai';

const input = await new Promise((resolve) => {
  let data = '';
  process.stdin.on('data', (c) => (data += c));
  process.stdin.on('end', () => resolve(data));
});
const job = JSON.parse(input);
const client = new OpenAI({
  baseURL: `${job.base_url}/v1`,
  apiKey: job.api_key,
  defaultHeaders: { 'X-Relay-User': job.user },
  maxRetries: job.max_retries ?? 0,
  timeout: 30000,
});

async function accumulate(req) {
  const { data: stream, response } = await client.chat.completions.create(req).withResponse();
  const out = { content: null, reasoning_content: null, finish_reason: null, usage: null, chunks: 0 };
  const ids = new Set(), models = new Set(), indexes = new Set();
  const calls = new Map();
  for await (const chunk of stream) {
    out.chunks += 1;
    ids.add(chunk.id);
    models.add(chunk.model);
    if (chunk.usage) out.usage = chunk.usage;
    for (const choice of chunk.choices) {
      indexes.add(choice.index);
      const d = choice.delta ?? {};
      if (d.content) out.content = (out.content ?? '') + d.content;
      if (d.reasoning_content) out.reasoning_content = (out.reasoning_content ?? '') + d.reasoning_content;
      for (const tc of d.tool_calls ?? []) {
        if (!calls.has(tc.index)) calls.set(tc.index, { id: null, name: null, arguments: '' });
        const c = calls.get(tc.index);
        if (tc.id) {
          if (c.id !== null) throw new Error(`tool call ${tc.index} got a second id`);
          c.id = tc.id;
        }
        if (tc.function?.name) {
          if (c.name !== null) throw new Error(`tool call ${tc.index} got a second name`);
          c.name = tc.function.name;
        }
        if (tc.function?.arguments) c.arguments += tc.function.arguments;
      }
      if (choice.finish_reason) out.finish_reason = choice.finish_reason;
    }
  }
  const order = [...calls.keys()].sort((a, b) => a - b);
  out.tool_calls = order.map((i) => calls.get(i));
  out.tool_call_indexes = order;
  out.ids = [...ids].sort();
  out.models = [...models].sort();
  out.indexes = [...indexes].sort();
  out.request_id = response.headers.get('x-request-id');
  return out;
}

async function complete(req) {
  const resp = await client.chat.completions.create(req);
  const choice = resp.choices[0];
  return {
    content: choice.message.content,
    reasoning_content: choice.message.reasoning_content ?? null,
    tool_calls: (choice.message.tool_calls ?? []).map((t) => ({ id: t.id, name: t.function.name, arguments: t.function.arguments })),
    finish_reason: choice.finish_reason,
    usage: resp.usage ?? null,
    request_id: resp._request_id,
    ids: [resp.id],
    models: [resp.model],
  };
}

let out;
try {
  if (job.endpoint === 'embeddings') {
    const resp = await client.embeddings.create(job.request);
    out = { embeddings: resp.data.map((d) => d.embedding), model: resp.model, usage: resp.usage, request_id: resp._request_id };
  } else if (job.request.stream) {
    out = await accumulate(job.request);
  } else {
    out = await complete(job.request);
  }
} catch (e) {
  if (e instanceof OpenAI.APIError) {
    out = { error: { status: e.status ?? null, message: e.message, code: e.code ?? null, type: e.type ?? null, request_id: e.requestID ?? null } };
  } else {
    throw e;
  }
}
process.stdout.write(JSON.stringify(out) + '\n');

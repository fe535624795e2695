// The quickstart of sdk/js/README.md, as it stands there (tests/tests/examples.rs checks both
// match and runs it): `RELAY_API_KEY=rly-… RELAY_BASE_URL=http://localhost:8080 node quickstart.mjs`.
import { Relay } from '@relay/sdk';

// Your rly- key and where Relay runs (e.g. https://relay.example.com).
const relay = new Relay({ key: process.env.RELAY_API_KEY, baseURL: process.env.RELAY_BASE_URL });

// 1. Your backend hands the widget a registration token; the user connects their own key.
const { registrationToken } = await relay.createRegistrationToken({ user: 'jieun_123', provider: 'openai' });

// 2. Then call any model for that user with the official openai package.
const openai = relay.openai({ user: 'jieun_123' });   // a normal OpenAI client
const reply = await openai.chat.completions.create({
  model: 'gpt-4o-mini',
  messages: [{ role: 'user', content: 'Hi' }],
});
console.log(reply.choices[0].message.content);

// 3. Streaming works as it does with OpenAI.
const stream = await openai.chat.completions.create({
  model: 'gpt-4o-mini',
  messages: [{ role: 'user', content: 'Tell me a story' }],
  stream: true,
});
for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta?.content ?? '');
process.stdout.write('\n');

# The quickstart of sdk/python/README.md, as it stands there (tests/tests/examples.rs checks both
# match and runs it): `RELAY_API_KEY=rly-… RELAY_BASE_URL=http://localhost:8080 python3 quickstart.py`.
from relay_sdk import Relay

relay = Relay()  # reads RELAY_API_KEY and RELAY_BASE_URL; or Relay(key="rly-…", base_url="https://…")

# 1. Your backend hands the widget a registration token; the user connects their own key.
token = relay.create_registration_token(user="jieun_123", provider="openai")
print(token["registrationToken"])  # rrt-…, single use

# 2. Then call any model for that user with the official openai package.
client = relay.openai(user="jieun_123")          # an openai.OpenAI
reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
print(reply.choices[0].message.content)

# 3. Streaming works as it does with OpenAI.
stream = client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "Tell me a story"}], stream=True
)
for chunk in stream:
    print(chunk.choices[0].delta.content or "", end="", flush=True)
print()

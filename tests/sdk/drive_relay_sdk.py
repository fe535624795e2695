"""Drives every method of Relay's Python SDK (sdk/python, installed by the test) against a real
Relay, sync and async, as a developer's backend would. Reads a job from stdin ({base_url,
api_key, provider_key, user}); prints one JSON object with what each step handed back, which
tests/tests/sdk_packages.rs checks. Test doubles for retries and timeouts run in threads."""

import asyncio
import base64
import json
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2
import openai

from relay_sdk import AsyncRelay, Relay, RelayError, WebhookVerificationError

job = json.loads(sys.stdin.read())
out = {}


def serve(answer):
    """A local HTTP server; answer(handler, body) answers. Returns its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_any(self):
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            answer(self, body)

        do_GET = do_POST = do_any

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def reply(handler, status, body, headers=None):
    data = json.dumps(body).encode()
    handler.send_response(status)
    for k, v in {"content-type": "application/json", "content-length": str(len(data)), **(headers or {})}.items():
        handler.send_header(k, v)
    handler.end_headers()
    handler.wfile.write(data)


def error_of(call):
    try:
        call()
        return None
    except RelayError as e:
        return {"isRelayError": True, "status": e.status, "code": e.code, "requestId": e.request_id,
                "message": e.message, "text": str(e), "repr": repr(e)}


deliveries = []


def hook_answer(handler, body):
    deliveries.append({"headers": {k.lower(): v for k, v in handler.headers.items()}, "body": body})
    handler.send_response(204)
    handler.end_headers()


hook_url = serve(hook_answer)
user = job["user"]
relay = Relay(key=job["api_key"], base_url=job["base_url"])
out["relay_repr"] = repr(relay)

hook = relay.webhooks.create(url=f"{hook_url}/hook", description="sdk test")
out["webhook_created"] = {"id": hook["id"], "has_secret": hook["secret"].startswith("whsec_"), "url": hook["url"]}
out["webhook_list"] = [e["id"] for e in relay.webhooks.list()["data"]]
out["webhook_retrieved"] = relay.webhooks.retrieve(hook["id"])["description"]

token = relay.create_registration_token(user=user, provider="openai", expires_in=600)
out["registration"] = {"prefix": token["registrationToken"][:4], "user": token["endUserLabel"], "provider": token["provider"]}
out["described"] = relay.registration_tokens.describe(token["registrationToken"])
out["other_token_user"] = relay.registration_tokens.create(user=f"{user}-2")["endUserLabel"]
connect = httpx2.post(
    f"{job['base_url']}/v1/connect",
    json={"registrationToken": token["registrationToken"], "provider": "openai", "apiKey": job["provider_key"]},
)
out["connect_status"] = connect.status_code

client = relay.openai(user=user)
out["openai_type"] = type(client).__name__
raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}])
out["chat"] = {"content": raw.parse().choices[0].message.content, "request_id": raw.headers.get("x-request-id")}
streamed = ""
for chunk in client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}], stream=True
):
    if chunk.choices:
        streamed += chunk.choices[0].delta.content or ""
out["stream"] = streamed
free = relay.openai(user=user, paid=False)
out["free_chat"] = free.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]).choices[0].message.content

out["user"] = relay.users.retrieve(user)
session = relay.create_session_token(user=user, providers=["openai"], expires_in=300)
out["session"] = {"user": session["endUserLabel"], "providers": session["providers"], "has_token": len(session["sessionToken"]) > 20}
out["session2"] = relay.session_tokens.create(user=user)["providers"]
out["revoked"] = relay.users.revoke_sessions(user)
out["revoked2"] = relay.session_tokens.revoke(user)
out["budget_set"] = relay.budgets.set("tenant", limit_usd=100, period="month", alert_at=0.5)
out["budget_get"] = relay.budgets.retrieve("tenant")
out["budget_del"] = relay.budgets.delete("tenant")
out["budget_default"] = relay.budgets.set("end-user-default", limit_usd=3, period="day")["scope"]
out["user_budget_set"] = relay.users.budget.set(user, limit_usd=5, period="day")
out["user_budget_get"] = relay.users.budget.retrieve(user)
out["user_budget_del"] = relay.users.budget.delete(user)
for _ in range(50):
    # Usage is written after the answer; wait for the three calls to be counted.
    out["usage"] = relay.usage.retrieve(user=user, group_by="model", from_=datetime.now(timezone.utc) - timedelta(hours=1))
    if out["usage"]["total"]["requests"] >= 3:
        break
    time.sleep(0.1)

out["not_found"] = error_of(lambda: relay.users.retrieve("nobody-here"))
bad_key = "rly-" + "x" * 40
out["bad_key"] = error_of(lambda: Relay(key=bad_key, base_url=job["base_url"], max_retries=0).users.retrieve(user))
out["bad_key_leaks"] = bad_key in json.dumps(out["bad_key"])
out["bad_request"] = error_of(lambda: relay.create_registration_token(user=user, expires_in=5))

hits = [0]


def flaky_answer(handler, body):
    hits[0] += 1
    if hits[0] == 1:
        reply(handler, 429, {"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded", "param": None}},
              {"retry-after": "1", "x-relay-request-id": "req_limited"})
    else:
        reply(handler, 200, {"endUserLabel": "x", "providers": [], "paid": True})


flaky = serve(flaky_answer)
started = time.monotonic()
retried = Relay(key=job["api_key"], base_url=flaky).users.retrieve("x")
out["retry"] = {"hits": hits[0], "waited_ms": int((time.monotonic() - started) * 1000), "user": retried["endUserLabel"]}
hits[0] = 0
out["no_retry"] = error_of(lambda: Relay(key=job["api_key"], base_url=flaky, max_retries=0).users.retrieve("x"))

fives = [0]


def down_answer(handler, body):
    fives[0] += 1
    reply(handler, 503, {"error": {"message": "down", "type": "api_error", "code": "store_unavailable", "param": None}},
          {"retry-after": "0" if fives[0] == 1 else "3600"})


down = serve(down_answer)
out["unavailable"] = error_of(lambda: Relay(key=job["api_key"], base_url=down, max_retries=5).users.retrieve("x"))
out["unavailable_hits"] = fives[0]
hangs = [0]


def hang_answer(handler, body):
    hangs[0] += 1
    time.sleep(3)


hang = serve(hang_answer)
out["timeout"] = error_of(lambda: Relay(key=job["api_key"], base_url=hang, timeout=0.2, max_retries=1).users.retrieve("x"))
out["timeout_hits"] = hangs[0]

for _ in range(100):
    if deliveries:
        break
    time.sleep(0.1)
d = deliveries[0]
event = relay.webhooks.verify(d["body"], d["headers"], hook["secret"])
out["webhook_event"] = {"type": event["type"], "user": event["data"]["endUserLabel"]}
out["webhook_event_text"] = relay.webhooks.verify(d["body"].decode(), d["headers"], hook["secret"])["type"]


def refused(body, headers, secret):
    try:
        relay.webhooks.verify(body, headers, secret)
        return "accepted"
    except WebhookVerificationError as e:
        return str(e)


out["webhook_tampered"] = refused(d["body"].replace(user.encode(), f"{user}x".encode()), d["headers"], hook["secret"])
out["webhook_wrong_secret"] = refused(d["body"], d["headers"], "whsec_" + base64.b64encode(bytes([7] * 24)).decode())
out["webhook_old"] = refused(d["body"], {**d["headers"], "webhook-timestamp": str(int(time.time()) - 3600)}, hook["secret"])
out["webhook_unsigned"] = refused(d["body"], {k: v for k, v in d["headers"].items() if k != "webhook-signature"}, hook["secret"])
out["deliveries"] = [x["type"] for x in relay.webhooks.deliveries(hook["id"], limit=10)["data"]]


async def async_part():
    """AsyncRelay and async_openai: the same calls, awaited."""
    async with AsyncRelay(key=job["api_key"], base_url=job["base_url"]) as arelay:
        got = {"user": (await arelay.users.retrieve(user))["endUserLabel"]}
        got["token_user"] = (await arelay.create_registration_token(user=f"{user}-async"))["endUserLabel"]
        got["usage"] = (await arelay.usage.retrieve(user=user))["object"]
        try:
            await arelay.users.retrieve("nobody-here")
            got["not_found"] = None
        except RelayError as e:
            got["not_found"] = {"status": e.status, "code": e.code, "requestId": e.request_id}
        aclient = arelay.async_openai(user=user)
        got["openai_type"] = type(aclient).__name__
        resp = await aclient.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
        got["chat"] = resp.choices[0].message.content
        text = ""
        async for chunk in await aclient.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True
        ):
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
        got["stream"] = text
        await aclient.close()
        return got


out["async"] = asyncio.run(async_part())
assert isinstance(client, openai.OpenAI)

out["key_deleted"] = relay.users.delete_key(user, "openai")
try:
    relay.openai(user=user, max_retries=0).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
    )
    out["chat_after_delete"] = None
except openai.APIStatusError as e:
    out["chat_after_delete"] = {"openaiError": True, "status": e.status_code, "code": e.code, "requestId": e.request_id}
out["revoked_key"] = error_of(lambda: Relay(key=job["revoked_key"], base_url=job["base_url"]).users.retrieve(user))
out["user_deleted"] = relay.users.delete(user)
out["webhook_deleted"] = relay.webhooks.delete(hook["id"])
relay.close()
sys.stdout.write(json.dumps(out) + "\n")

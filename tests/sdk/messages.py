"""Drives Relay's /v1/messages with the official `anthropic` Python package, as a backend would.

Reads a job from stdin: {"base_url", "api_key", "user", "request": {...}, "auth"?: "bearer"}. The
key goes as `x-api-key` (the SDK's default) or, with "auth": "bearer", as a Bearer token. Prints
one JSON object: {"message", "request_id"} for a request, plus "events" (the event types in order)
and "text" (the text deltas joined) for a stream, whose "message" is `get_final_message()`; or
{"error"} with what the SDK raised.
"""

import inspect
import json
import sys

import anthropic


def main():
    job = json.load(sys.stdin)
    key = {"auth_token": job["api_key"], "api_key": None} if job.get("auth") == "bearer" else {"api_key": job["api_key"]}
    client = anthropic.Anthropic(base_url=job["base_url"], default_headers={"X-Relay-User": job["user"]},
                                 max_retries=0, timeout=30, **key)
    req = dict(job["request"])
    stream = req.pop("stream", False)
    # Fields this SDK version has no argument for (it dropped some sampling parameters) travel
    # as extra_body, as the SDK documents for such fields.
    accepted = inspect.signature(client.messages.create).parameters
    extra = {k: req.pop(k) for k in list(req) if k not in accepted}
    if extra:
        req["extra_body"] = extra
    events = []
    text = []
    try:
        if stream:
            with client.messages.stream(**req) as s:
                for event in s:
                    events.append(event.type)
                    if event.type == "text":
                        text.append(event.text)
                final = s.get_final_message()
                out = {"message": final.model_dump(mode="json", exclude_none=True), "events": events,
                       "text": "".join(text), "request_id": s.response.headers.get("request-id")}
        else:
            msg = client.messages.create(**req)
            out = {"message": msg.model_dump(mode="json", exclude_none=True), "request_id": msg._request_id}
    except anthropic.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        out = {"error": {"status": e.status_code, "message": e.message, "type": (body.get("error") or {}).get("type"),
                         "request_id": e.request_id}, "events": events}
    except anthropic.APIError as e:
        out = {"error": {"status": None, "message": e.message, "type": None}, "events": events}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

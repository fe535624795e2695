"""Drives Relay's /v1/responses with the official `openai` Python package, as a backend would.

Reads jobs from stdin, one JSON object a line: {"base_url", "api_key", "user", "request": {...}}.
Prints one JSON object a line for each: {"response", "request_id"} for a request, plus "events"
(the event types in order) and "text" (the output text deltas joined) for a stream, whose
"response" is `get_final_response()`; or {"error"} with what the SDK raised or the stream's
`response.failed` / `error` event reported. One process runs many jobs.
"""

import inspect
import json
import sys

import openai


def run(job):
    client = openai.OpenAI(base_url=job["base_url"] + "/v1", api_key=job["api_key"],
                           default_headers={"X-Relay-User": job["user"]}, max_retries=0, timeout=30)
    req = dict(job["request"])
    stream = req.pop("stream", False)
    accepted = inspect.signature(client.responses.create).parameters
    extra = {k: req.pop(k) for k in list(req) if k not in accepted}
    if extra:
        req["extra_body"] = extra
    events, text = [], []
    try:
        if not stream:
            r = client.responses.create(**req)
            return {"response": r.model_dump(mode="json", exclude_none=True, by_alias=True), "request_id": r._request_id}
        with client.responses.stream(**req) as s:
            for event in s:
                events.append(event.type)
                if event.type == "response.output_text.delta":
                    text.append(event.delta)
                elif event.type == "response.failed":
                    e = event.response.error
                    return {"error": {"code": e.code, "message": e.message}, "events": events}
                elif event.type == "error":
                    return {"error": {"code": event.code, "message": event.message}, "events": events}
            final = s.get_final_response()
            return {"response": final.model_dump(mode="json", exclude_none=True, by_alias=True), "events": events,
                    "text": "".join(text), "request_id": s._response.headers.get("x-request-id")}
    except openai.APIStatusError as e:
        return {"error": {"status": e.status_code, "message": e.message, "request_id": e.request_id}, "events": events}
    except openai.APIError as e:
        return {"error": {"status": None, "message": e.message}, "events": events}


def main():
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(run(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()

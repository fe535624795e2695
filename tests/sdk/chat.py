"""Drives Relay with the official `openai` Python package, as a developer's backend would.

Reads a job from stdin: {"base_url", "api_key", "user", "endpoint": "chat"|"embeddings",
"request": {...}, "max_retries"?: 0}. Prints one JSON object: what the SDK handed back (accumulated over the stream
for streaming requests), or the error it raised.
"""

import json
import sys

import openai


def accumulate(stream):
    out = {"content": None, "reasoning_content": None, "tool_calls": [], "finish_reason": None, "usage": None,
           "ids": set(), "models": set(), "indexes": set(), "chunks": 0}
    calls = {}
    for chunk in stream:
        out["chunks"] += 1
        out["ids"].add(chunk.id)
        out["models"].add(chunk.model)
        if chunk.usage is not None:
            out["usage"] = chunk.usage.model_dump(exclude_none=True)
        for choice in chunk.choices:
            out["indexes"].add(choice.index)
            delta = choice.delta
            if delta.content:
                out["content"] = (out["content"] or "") + delta.content
            reasoning = (delta.model_extra or {}).get("reasoning_content")
            if reasoning:
                out["reasoning_content"] = (out["reasoning_content"] or "") + reasoning
            for tc in delta.tool_calls or []:
                call = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": "", "deltas": 0})
                call["deltas"] += 1
                if tc.id:
                    if call["id"] is not None:
                        raise AssertionError(f"tool call {tc.index} got a second id")
                    call["id"] = tc.id
                if tc.function and tc.function.name:
                    if call["name"] is not None:
                        raise AssertionError(f"tool call {tc.index} got a second name")
                    call["name"] = tc.function.name
                if tc.function and tc.function.arguments:
                    call["arguments"] += tc.function.arguments
            if choice.finish_reason:
                out["finish_reason"] = choice.finish_reason
    out["tool_calls"] = [{"id": c["id"], "name": c["name"], "arguments": c["arguments"]} for _, c in sorted(calls.items())]
    out["tool_call_indexes"] = sorted(calls)
    out["request_id"] = stream.response.headers.get("x-request-id")
    for key in ("ids", "models", "indexes"):
        out[key] = sorted(out[key])
    return out


def complete(resp):
    choice = resp.choices[0]
    msg = choice.message
    return {
        "content": msg.content,
        "reasoning_content": (msg.model_extra or {}).get("reasoning_content"),
        "tool_calls": [{"id": t.id, "name": t.function.name, "arguments": t.function.arguments} for t in msg.tool_calls or []],
        "finish_reason": choice.finish_reason,
        "usage": resp.usage.model_dump(exclude_none=True) if resp.usage else None,
        "request_id": resp._request_id,
        "ids": [resp.id],
        "models": [resp.model],
    }


def main():
    job = json.load(sys.stdin)
    client = openai.OpenAI(base_url=job["base_url"] + "/v1", api_key=job["api_key"],
                           default_headers={"X-Relay-User": job["user"]}, max_retries=job.get("max_retries", 0), timeout=30)
    req = job["request"]
    try:
        if job.get("endpoint") == "embeddings":
            resp = client.embeddings.create(**req)
            out = {"embeddings": [d.embedding for d in resp.data], "model": resp.model,
                   "usage": resp.usage.model_dump(), "request_id": resp._request_id}
        elif req.get("stream"):
            out = accumulate(client.chat.completions.create(**req))
        else:
            out = complete(client.chat.completions.create(**req))
    except openai.APIStatusError as e:
        out = {"error": {"status": e.status_code, "message": e.message, "code": e.code, "type": e.type,
                         "request_id": e.request_id}}
    except openai.APIError as e:
        out = {"error": {"status": None, "message": e.message, "code": e.code, "type": e.type}}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

//! Hand-written cases of the Gemini translator: call ids, parameter checks, tools, content parts,
//! finish reasons, stream, error and embedding edge cases. Wire fixtures: tests/tests/translators.rs.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::*;
use crate::providers::unified::{ChatContext, Prepared, SseEvent, StreamItem, StreamTranslator, TranslateError, Usage};

fn is_generated(base: &str) -> bool {
    base.strip_prefix("call_").is_some_and(|r| r.len() == 24 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn item_json(item: StreamItem) -> Value {
    match item {
        StreamItem::Chunk(v) | StreamItem::Error(v) => v,
        other => panic!("a translator only makes chunks and errors, not {other:?}"),
    }
}

fn ctx() -> ChatContext {
    ChatContext { id: "chatcmpl-x".into(), model: "gemini-2.5-flash".into(), created: 1, include_usage: false }
}

fn user(text: &str) -> Value {
    json!({ "role": "user", "content": text })
}

fn param_of(result: Result<Prepared, TranslateError>) -> Option<String> {
    result.expect_err("should be refused").param
}

#[test]
fn call_ids_carry_signatures_reversibly() {
    for sig in ["CiQBVKhc7q+/==", "a", "skip_thought_signature_validator", "x__thought__y", "ü/+="] {
        for base in ["call_abc", "x7k2m9qp", "call_with_underscores_1"] {
            let id = encode_call_id(base, Some(sig));
            assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'), "{id}");
            assert_eq!(decode_call_id(&id), (base, Some(sig.to_owned())));
        }
    }
    assert_eq!(encode_call_id("call_1", None), "call_1");
    assert_eq!(encode_call_id("call_1", Some("")), "call_1");
    assert_eq!(decode_call_id("call_plain"), ("call_plain", None));
    // A suffix that is not ours leaves the id alone.
    assert_eq!(decode_call_id("call_1__thought__%%%"), ("call_1__thought__%%%", None));
    let id = new_call_id();
    assert!(is_generated(&id), "{id}");
    assert_ne!(id, new_call_id());
}

#[test]
fn signature_survives_a_round_trip_through_the_client() {
    let sig = "EvYDCvMDAdHtim/+rY0zPqkr8X3w==";
    let body = json!({ "candidates": [{ "content": { "role": "model", "parts": [
        { "functionCall": { "name": "get_weather", "args": { "city": "Paris" } }, "thoughtSignature": sig },
        { "functionCall": { "name": "get_weather", "args": { "city": "Tokyo" } } },
    ] }, "finishReason": "STOP" }] });
    let completion = chat_response(&body, &ctx()).expect("response");
    let msg = completion["choices"][0]["message"].clone();
    assert_eq!(completion["choices"][0]["finish_reason"], "tool_calls");
    let calls = msg["tool_calls"].as_array().expect("calls").clone();
    let ids: Vec<&str> = calls.iter().map(|c| c["id"].as_str().expect("id")).collect();
    assert!(ids[0].contains(THOUGHT_SEPARATOR) && !ids[1].contains(THOUGHT_SEPARATOR));

    let mut messages = vec![user("weather?"), msg];
    for id in &ids {
        messages.push(json!({ "role": "tool", "tool_call_id": id, "content": "sunny" }));
    }
    let prepared = chat_request(&json!({ "model": "gemini-2.5-flash", "messages": messages }), "gemini-2.5-flash")
        .expect("request");
    let contents = prepared.body["contents"].as_array().expect("contents");
    assert_eq!(contents.len(), 3);
    let model_parts = contents[1]["parts"].as_array().expect("parts");
    assert_eq!(model_parts[0]["thoughtSignature"], sig);
    assert!(model_parts[1].get("thoughtSignature").is_none());
    let base0 = decode_call_id(ids[0]).0;
    assert_eq!(model_parts[0]["functionCall"]["id"], base0);
    let results = contents[2]["parts"].as_array().expect("results");
    assert_eq!(results.len(), 2, "consecutive tool results make one turn");
    assert_eq!(results[0]["functionResponse"]["id"], base0);
    assert_eq!(results[0]["functionResponse"]["name"], "get_weather");
    assert_eq!(results[1]["functionResponse"]["response"], json!({ "result": "sunny" }));
}

#[test]
fn tool_result_without_a_matching_call_names_the_message() {
    let req = json!({ "model": "m", "messages": [
        user("hi"),
        { "role": "assistant", "tool_calls": [{ "id": "call_a", "type": "function", "function": { "name": "f", "arguments": "{}" } }] },
        { "role": "tool", "tool_call_id": "call_a", "content": "ok" },
        { "role": "tool", "tool_call_id": "call_missing", "content": "??" },
    ] });
    let err = chat_request(&req, "gemini-2.5-flash").expect_err("unknown id");
    assert_eq!(err.param.as_deref(), Some("messages[3].tool_call_id"));
    assert!(!err.message.contains("call_missing"), "client values are not echoed");
    // The call must come earlier, not later.
    let req = json!({ "model": "m", "messages": [
        { "role": "tool", "tool_call_id": "call_a", "content": "ok" },
        { "role": "assistant", "tool_calls": [{ "id": "call_a", "type": "function", "function": { "name": "f", "arguments": "{}" } }] },
    ] });
    assert_eq!(param_of(chat_request(&req, "gemini-2.5-flash")).as_deref(), Some("messages[0].tool_call_id"));
}

#[test]
fn tool_arguments_are_parsed() {
    let with_args = |args: &str| {
        json!({ "model": "m", "messages": [user("x"), { "role": "assistant", "content": "Let me check.",
            "tool_calls": [{ "id": "c1", "type": "function", "function": { "name": "f", "arguments": args } }] }] })
    };
    let ok = chat_request(&with_args(""), "gemini-2.5-flash").expect("empty args");
    assert_eq!(ok.body["contents"][1]["parts"][0], json!({ "text": "Let me check." }));
    assert_eq!(ok.body["contents"][1]["parts"][1]["functionCall"]["args"], json!({}));
    assert_eq!(
        param_of(chat_request(&with_args("{\"a\":"), "gemini-2.5-flash")).as_deref(),
        Some("messages[1].tool_calls[0].function.arguments")
    );
    assert_eq!(
        param_of(chat_request(&with_args("[1,2]"), "gemini-2.5-flash")).as_deref(),
        Some("messages[1].tool_calls[0].function.arguments")
    );
}

#[test]
fn messages_alternate_and_system_is_hoisted() {
    let req = json!({ "model": "m", "messages": [
        user("a"), { "role": "system", "content": "s1" }, user("b"),
        { "role": "assistant", "content": "c" }, { "role": "assistant", "content": [{ "type": "text", "text": "d" }] },
        { "role": "developer", "content": "s2" }, { "role": "assistant", "content": "" }, user(""), user("e"),
    ] });
    let p = chat_request(&req, "gemini-2.5-flash").expect("request");
    assert_eq!(p.body["systemInstruction"], json!({ "parts": [{ "text": "s1" }, { "text": "s2" }] }));
    assert_eq!(
        p.body["contents"],
        json!([
            { "role": "user", "parts": [{ "text": "a" }, { "text": "b" }] },
            { "role": "model", "parts": [{ "text": "c" }, { "text": "d" }] },
            { "role": "user", "parts": [{ "text": "e" }] },
        ])
    );
    assert_eq!(p.path, "/v1beta/models/gemini-2.5-flash:generateContent");
}

#[test]
fn tool_results_wrap_json_objects_and_strings() {
    let call = |id: &str| json!({ "id": id, "type": "function", "function": { "name": "f", "arguments": "{}" } });
    let req = json!({ "model": "m", "messages": [
        user("x"), { "role": "assistant", "tool_calls": [call("a"), call("b"), call("c")] },
        { "role": "tool", "tool_call_id": "a", "content": "{\"ok\":true}" },
        { "role": "tool", "tool_call_id": "b", "content": "[1,2]" },
        { "role": "tool", "tool_call_id": "c", "content": [{ "type": "text", "text": "par" }, { "type": "text", "text": "ts" }] },
    ] });
    let p = chat_request(&req, "gemini-2.5-flash").expect("request");
    let parts = &p.body["contents"][2]["parts"];
    assert_eq!(parts[0]["functionResponse"]["response"], json!({ "result": { "ok": true } }));
    assert_eq!(parts[1]["functionResponse"]["response"], json!({ "result": "[1,2]" }));
    assert_eq!(parts[2]["functionResponse"]["response"], json!({ "result": "parts" }));
}

#[test]
fn unsupported_parameters_are_named() {
    let base = |extra: Value| {
        let mut r = json!({ "model": "m", "messages": [user("x")] });
        for (k, v) in extra.as_object().expect("object") {
            r[k] = v.clone();
        }
        r
    };
    for (extra, param) in [
        (json!({ "n": 2 }), "n"),
        (json!({ "logprobs": true }), "logprobs"),
        (json!({ "logit_bias": { "50256": -100 } }), "logit_bias"),
        (json!({ "functions": [] }), "functions"),
        (json!({ "audio": { "voice": "alloy" } }), "audio"),
        (json!({ "top_k": 3 }), "top_k"),
        (json!({ "temperature": "hot" }), "temperature"),
        (json!({ "reasoning_effort": "extreme" }), "reasoning_effort"),
        (json!({ "tool_choice": "required" }), "tool_choice"),
        (json!({ "response_format": { "type": "xml" } }), "response_format.type"),
        (json!({ "tools": [{ "type": "web_search" }] }), "tools[0].type"),
    ] {
        assert_eq!(param_of(chat_request(&base(extra.clone()), "gemini-2.5-flash")).as_deref(), Some(param), "{extra}");
    }
    // Accepted no-ops.
    for extra in
        [json!({ "n": 1 }), json!({ "logprobs": false, "parallel_tool_calls": true, "user": "u", "temperature": null })]
    {
        chat_request(&base(extra), "gemini-2.5-flash").expect("accepted");
    }
    // Zero penalties are not sent; others are.
    let p = chat_request(&base(json!({ "presence_penalty": 0, "frequency_penalty": 0.5 })), "gemini-2.5-flash")
        .expect("ok");
    assert_eq!(p.body["generationConfig"], json!({ "frequencyPenalty": 0.5 }));
    // The model goes into the path: nothing that could change it.
    for model in ["../files", "gemini?alt=x", "a/b", ""] {
        assert_eq!(param_of(chat_request(&base(json!({})), model)).as_deref(), Some("model"), "{model}");
    }
}

#[test]
fn tool_choice_and_schema_cleaning() {
    let tools = json!([
        { "type": "function", "function": { "name": "a", "parameters": { "type": "object", "properties": {
            "$schema": { "type": "string" },
            "nested": { "$schema": "x", "type": "object", "additionalProperties": { "$schema": "y", "type": "string" } },
        } } } },
        { "type": "function", "function": { "name": "b" } },
    ]);
    let req = |choice: Value| json!({ "model": "m", "messages": [user("x")], "tools": tools, "tool_choice": choice });
    let cfg = |choice: Value| chat_request(&req(choice), "gemini-2.5-flash").expect("request").body;
    let body = cfg(json!("auto"));
    assert_eq!(body["toolConfig"], json!({ "functionCallingConfig": { "mode": "AUTO" } }));
    let schema = &body["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"];
    // A property named `$schema` is data, not the dialect marker.
    assert_eq!(schema["properties"]["$schema"], json!({ "type": "string" }));
    assert_eq!(
        schema["properties"]["nested"],
        json!({ "type": "object", "additionalProperties": { "type": "string" } })
    );
    assert_eq!(cfg(json!("none"))["toolConfig"]["functionCallingConfig"]["mode"], "NONE");
    assert_eq!(cfg(json!("required"))["toolConfig"]["functionCallingConfig"]["mode"], "ANY");
    assert_eq!(
        cfg(json!({ "type": "function", "function": { "name": "b" } }))["toolConfig"],
        json!({ "functionCallingConfig": { "mode": "ANY", "allowedFunctionNames": ["b"] } })
    );
    let allowed = cfg(
        json!({ "type": "allowed_tools", "allowed_tools": { "mode": "auto", "tools": [{ "type": "function", "function": { "name": "b" } }] } }),
    );
    assert_eq!(allowed["tools"][0]["functionDeclarations"], json!([{ "name": "b" }]));
    assert_eq!(
        param_of(chat_request(&req(json!({ "type": "function", "function": { "name": "zzz" } })), "gemini-2.5-flash"))
            .as_deref(),
        Some("tool_choice.function.name")
    );
}

#[test]
fn images_and_files() {
    let req = json!({ "model": "m", "messages": [{ "role": "user", "content": [
        { "type": "image_url", "image_url": { "url": "HTTPS://x.test/a.PNG#frag" } },
        { "type": "image_url", "image_url": { "url": "data:image/webp;base64,UklGRg==" } },
        { "type": "input_audio", "input_audio": { "data": "AAAA", "format": "mp3" } },
        { "type": "file", "file": { "file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf" } },
    ] }] });
    let p = chat_request(&req, "gemini-2.5-flash").expect("request");
    assert_eq!(
        p.body["contents"][0]["parts"],
        json!([
            { "fileData": { "mimeType": "image/png", "fileUri": "HTTPS://x.test/a.PNG#frag" } },
            { "inlineData": { "mimeType": "image/webp", "data": "UklGRg==" } },
            { "inlineData": { "mimeType": "audio/mp3", "data": "AAAA" } },
            { "inlineData": { "mimeType": "application/pdf", "data": "JVBERi0=" } },
        ])
    );
    for url in ["ftp://x/a.png", "data:image/png,raw", "file:///etc/passwd"] {
        let req = json!({ "model": "m", "messages": [{ "role": "user", "content": [{ "type": "image_url", "image_url": { "url": url } }] }] });
        assert_eq!(
            param_of(chat_request(&req, "gemini-2.5-flash")).as_deref(),
            Some("messages[0].content[0].image_url.url")
        );
    }
    let req = json!({ "model": "m", "messages": [{ "role": "system", "content": [{ "type": "image_url", "image_url": { "url": "https://x/a.png" } }] }] });
    assert_eq!(param_of(chat_request(&req, "gemini-2.5-flash")).as_deref(), Some("messages[0].content[0].type"));
}

#[test]
fn finish_reasons_and_usage() {
    let resp = |reason: &str| {
        json!({ "candidates": [{ "content": { "role": "model", "parts": [{ "text": "x" }] }, "finishReason": reason }],
                "usageMetadata": { "promptTokenCount": 5, "candidatesTokenCount": 2, "thoughtsTokenCount": 3, "cachedContentTokenCount": 4 } })
    };
    for (reason, want) in [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("LANGUAGE", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("OTHER", "stop"),
    ] {
        let c = chat_response(&resp(reason), &ctx()).expect("response");
        assert_eq!(c["choices"][0]["finish_reason"], want, "{reason}");
        assert_eq!(
            c["usage"],
            Usage { prompt_tokens: 5, completion_tokens: 5, cached_tokens: 4, reasoning_tokens: 3, ..Usage::default() }
                .to_json()
        );
    }
    let blocked = json!({ "promptFeedback": { "blockReason": "SAFETY" } });
    let c = chat_response(&blocked, &ctx()).expect("blocked");
    assert_eq!(c["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(c["choices"][0]["finish_reason"], "content_filter");
    assert!(chat_response(&json!({}), &ctx()).is_err());
    assert!(chat_response(&json!("nope"), &ctx()).is_err());
}

fn event(data: &str) -> SseEvent {
    SseEvent { event: None, data: data.into() }
}

fn chunks(items: Vec<StreamItem>) -> Vec<Value> {
    items.into_iter().map(item_json).collect()
}

#[test]
fn stream_edge_cases() {
    // Nothing at all: role, then stop.
    let mut s = chat_stream(ctx());
    let out = chunks(s.finish());
    assert_eq!(out.len(), 2);
    assert_eq!(out[1]["choices"][0]["finish_reason"], "stop");
    assert!(s.finish().is_empty(), "finish twice sends nothing more");

    // Calls in separate events keep counting; usage is the last seen; no usage chunk unasked.
    let mut s = chat_stream(ctx());
    let fc = |name: &str| {
        format!(
            r#"{{"candidates":[{{"content":{{"role":"model","parts":[{{"functionCall":{{"name":"{name}","args":{{"k":1}}}}}}]}}}}],"usageMetadata":{{"promptTokenCount":3}}}}"#
        )
    };
    let mut out = chunks(s.on_event(&event(&fc("a"))));
    out.extend(chunks(s.on_event(&event(&fc("b")))));
    out.extend(chunks(s.on_event(&event(r#"{"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":4}}"#))));
    out.extend(chunks(s.finish()));
    let indexes: Vec<u64> =
        out.iter().filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0/index").and_then(Value::as_u64)).collect();
    assert_eq!(indexes, [0, 0, 1, 1]);
    assert_eq!(out.last().expect("last")["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(s.usage(), Some(Usage { prompt_tokens: 9, completion_tokens: 4, ..Usage::default() }));
    assert!(out.iter().all(|c| c.get("usage").is_none()));

    // MAX_TOKENS in the stream; then include_usage without any usageMetadata gives zeros.
    let mut s = chat_stream(ChatContext { include_usage: true, ..ctx() });
    let out = chunks(
        s.on_event(&event(r#"{"candidates":[{"content":{"parts":[{"text":"hi"}]},"finishReason":"MAX_TOKENS"}]}"#)),
    );
    assert_eq!(out.last().expect("finish")["choices"][0]["finish_reason"], "length");
    let out = chunks(s.finish());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["usage"], Usage::default().to_json());

    // Garbage mid-stream is an error, and nothing follows it.
    let mut s = chat_stream(ctx());
    assert_eq!(s.on_event(&event(r#"{"candidates":[{"content":{"parts":[{"text":"a"}]}}]}"#)).len(), 2);
    let out = s.on_event(&event("<html>"));
    assert!(matches!(&out[..], [StreamItem::Error(e)] if e["error"]["type"] == "api_error"));
    assert!(s.on_event(&event(r#"{"candidates":[]}"#)).is_empty());
    assert!(s.finish().is_empty());
}

#[test]
fn api_keys_are_redacted_from_error_messages() {
    // Built at run time: no key-shaped literal in the source.
    let key = format!("AIza{}", "Xq7-_".repeat(7));
    let key = key.as_str();
    assert_eq!(key.len(), 39);
    let body = json!({ "error": { "code": 400, "status": "INVALID_ARGUMENT",
        "message": format!("Bad request to https://generativelanguage.googleapis.com/v1beta/models/x?key={key}&alt=sse ({key})") } });
    let err = upstream_error(400, body.to_string().as_bytes());
    assert!(!err.message.contains(key), "{}", err.message);
    assert!(!err.message.contains(&key[..8]), "{}", err.message);
    assert_eq!(err.message.matches("AIza…").count(), 2);
    assert!(err.message.contains("&alt=sse ("));
    // Not a key: too short, or not key characters.
    assert_eq!(redact_api_keys("AIza short"), "AIza short");
    assert_eq!(redact_api_keys("AIzaAIza"), "AIzaAIza");
    assert_eq!(redact_api_keys(&format!("ü{key}ü")), "üAIza…ü");
    assert_eq!(redact_api_keys(&format!("{key}{key}")), "AIza…AIza…");
    // Mid-stream errors go through the same path.
    let mut s = chat_stream(ctx());
    let out = chunks(s.on_event(&event(&body.to_string())));
    assert!(!out[0].to_string().contains(key));
}

#[test]
fn upstream_errors_map_to_openai_types() {
    for (status, google, kind) in [
        (400, "INVALID_ARGUMENT", "invalid_request_error"),
        (400, "FAILED_PRECONDITION", "invalid_request_error"),
        (403, "PERMISSION_DENIED", "permission_error"),
        (401, "UNAUTHENTICATED", "authentication_error"),
        (404, "NOT_FOUND", "not_found_error"),
        (429, "RESOURCE_EXHAUSTED", "rate_limit_error"),
        (500, "INTERNAL", "api_error"),
        (503, "UNAVAILABLE", "overloaded_error"),
        (504, "DEADLINE_EXCEEDED", "api_error"),
    ] {
        let body = json!({ "error": { "code": status, "message": "m", "status": google } }).to_string();
        let e = upstream_error(status, body.as_bytes());
        assert_eq!((e.kind.as_str(), e.code.as_deref()), (kind, Some(google.to_ascii_lowercase().as_str())));
        assert_eq!(e.message, "m");
    }
    // Not Google's JSON: a message of our own, typed by HTTP status, never the raw body.
    let e = upstream_error(502, b"<html>Bad Gateway</html>");
    assert_eq!(e.kind, "api_error");
    assert!(!e.message.contains("html"));
    assert_eq!(upstream_error(429, b"").kind, "rate_limit_error");
    // The array form of non-SSE streams.
    let e = upstream_error(404, br#"[{"error":{"code":404,"message":"models/x is not found","status":"NOT_FOUND"}}]"#);
    assert_eq!(e.kind, "not_found_error");
    assert_eq!(retry_after_seconds(br#"{"error":{"details":[{"retryDelay":"1.2s"}]}}"#), Some(2));
    assert_eq!(retry_after_seconds(b"{}"), None);
}

#[test]
fn embedding_inputs_must_be_text() {
    for input in [json!([1, 2, 3]), json!([[1, 2], [3]]), json!(["ok", 5]), json!([]), json!(7)] {
        let req = json!({ "model": "gemini-embedding-001", "input": input });
        assert_eq!(param_of(embeddings_request(&req, "gemini-embedding-001")).as_deref(), Some("input"), "{input}");
    }
    let req = json!({ "model": "e", "input": "x", "encoding_format": "int8" });
    assert_eq!(param_of(embeddings_request(&req, "gemini-embedding-001")).as_deref(), Some("encoding_format"));
    let req = json!({ "model": "e", "input": "x", "dimensions": 0 });
    assert_eq!(param_of(embeddings_request(&req, "gemini-embedding-001")).as_deref(), Some("dimensions"));
    let p = embeddings_request(&json!({ "model": "e", "input": "x", "user": "u" }), "text-embedding-004").expect("ok");
    assert!(p.body["requests"][0].get("outputDimensionality").is_none());
    // Fewer embeddings than inputs is Gemini's fault, not a silent shift.
    let body = json!({ "embeddings": [{ "values": [0.1] }] });
    assert!(embeddings_response(&body, &json!({ "model": "e", "input": ["a", "b"] })).is_err());
}

#[test]
fn base64_embeddings_are_little_endian_f32() {
    let values = [0.1f64, -2.5, 3.4028234663852886e38, 1e-45, 0.0];
    let body = json!({ "embeddings": [{ "values": values }], "usageMetadata": { "promptTokenCount": 3 } });
    let out =
        embeddings_response(&body, &json!({ "model": "e", "input": "x", "encoding_format": "base64" })).expect("ok");
    let b64 = out["data"][0]["embedding"].as_str().expect("a base64 string");
    let bytes = STANDARD.decode(b64).expect("base64");
    assert_eq!(bytes.len(), values.len() * 4);
    let back: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let want: Vec<f32> = values.iter().map(|v| *v as f32).collect();
    assert_eq!(back, want);
    assert_eq!(&bytes[4..8], &(-2.5f32).to_le_bytes());
    assert_eq!(out["usage"], json!({ "prompt_tokens": 3, "total_tokens": 3 }));
}

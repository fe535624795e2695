//! Hand-written cases of the Anthropic translator: parameter checks, tool and format plans,
//! response, stream and error edge cases. Wire fixtures: tests/tests/translators.rs.

use serde_json::{json, Value};

use super::request::JSON_OBJECT_INSTRUCTION;
use super::tools::RESPONSE_TOOL;
use super::*;
use crate::providers::unified::{ChatContext, SseEvent, StreamItem, StreamTranslator, TranslateError};

fn ctx(model: &str, include_usage: bool) -> ChatContext {
    ChatContext { id: "chatcmpl-test".into(), model: model.into(), created: 1_700_000_000, include_usage }
}

fn item_json(item: StreamItem) -> Value {
    match item {
        StreamItem::Chunk(v) | StreamItem::Error(v) => v,
        other => panic!("a translator only makes chunks and errors, not {other:?}"),
    }
}

// --- request edge cases ------------------------------------------------------------------

fn translate(req: Value) -> Result<Value, TranslateError> {
    chat_request(&req, "claude-sonnet-4-5").map(|p| p.body)
}

fn user(text: &str) -> Value {
    json!({ "role": "user", "content": text })
}

fn param_of(req: Value) -> Option<String> {
    translate(req).expect_err("should be refused").param
}

fn weather_tool() -> Value {
    json!({ "type": "function", "function": { "name": "get_weather", "parameters": { "type": "object", "properties": { "city": { "type": "string" } } } } })
}

#[test]
fn invalid_tool_arguments_name_the_parameter() {
    let req = |args: &str| {
        json!({ "model": "m", "messages": [
            user("hi"),
            { "role": "assistant", "content": null, "tool_calls": [{ "id": "call_1", "type": "function", "function": { "name": "f", "arguments": args } }] },
            { "role": "tool", "tool_call_id": "call_1", "content": "ok" },
        ] })
    };
    let err = translate(req("{\"city\": ")).expect_err("invalid JSON");
    assert_eq!(err.param.as_deref(), Some("messages[1].tool_calls[0].function.arguments"));
    assert!(err.message.contains("not valid JSON"), "{}", err.message);
    assert_eq!(param_of(req("[1, 2]")).as_deref(), Some("messages[1].tool_calls[0].function.arguments"));
    for empty in ["", "  "] {
        let body = translate(req(empty)).expect("empty arguments are no arguments");
        assert_eq!(body["messages"][1]["content"][0]["input"], json!({}));
    }
}

#[test]
fn unsupported_parameters_are_refused_by_name() {
    let base = |k: &str, v: Value| {
        let mut r = json!({ "model": "m", "messages": [user("hi")] });
        r[k] = v;
        r
    };
    assert_eq!(param_of(base("n", json!(2))).as_deref(), Some("n"));
    assert!(translate(base("n", json!(1))).is_ok());
    assert!(translate(base("n", Value::Null)).is_ok());
    assert_eq!(param_of(base("logprobs", json!(true))).as_deref(), Some("logprobs"));
    assert!(translate(base("logprobs", json!(false))).is_ok());
    assert_eq!(param_of(base("top_logprobs", json!(3))).as_deref(), Some("top_logprobs"));
    assert_eq!(param_of(base("frequency_penalty", json!(0.5))).as_deref(), Some("frequency_penalty"));
    assert!(translate(base("presence_penalty", json!(0))).is_ok());
    assert_eq!(param_of(base("logit_bias", json!({ "50256": -100 }))).as_deref(), Some("logit_bias"));
    assert_eq!(param_of(base("modalities", json!(["text", "audio"]))).as_deref(), Some("modalities"));
    assert_eq!(param_of(base("audio", json!({ "voice": "alloy" }))).as_deref(), Some("audio"));
    assert_eq!(param_of(base("functions", json!([]))).as_deref(), Some("functions"));
    assert_eq!(param_of(base("frobnicate", json!(1))).as_deref(), Some("frobnicate"));
    assert_eq!(param_of(base("temperature", json!(1.5))).as_deref(), Some("temperature"));
    assert_eq!(param_of(base("max_tokens", json!(0))).as_deref(), Some("max_tokens"));
    assert_eq!(param_of(base("stop", json!([1]))).as_deref(), Some("stop"));
    assert_eq!(param_of(base("stream", json!("yes"))).as_deref(), Some("stream"));
    // Dropped on purpose: no effect on the answer.
    for (k, v) in
        [("seed", json!(7)), ("store", json!(true)), ("service_tier", json!("auto")), ("metadata", json!({ "a": "b" }))]
    {
        let body = translate(base(k, v)).expect("ignored");
        assert!(body.get(k).is_none() || k == "metadata" && body.get("metadata").is_none());
    }
}

#[test]
fn messages_must_hold_a_conversation() {
    assert_eq!(param_of(json!({ "model": "m", "messages": [] })).as_deref(), Some("messages"));
    assert_eq!(param_of(json!({ "model": "m" })).as_deref(), Some("messages"));
    assert_eq!(
        param_of(json!({ "model": "m", "messages": [{ "role": "system", "content": "be nice" }] })).as_deref(),
        Some("messages")
    );
    assert_eq!(
        param_of(json!({ "model": "m", "messages": [{ "role": "wizard", "content": "x" }] })).as_deref(),
        Some("messages[0].role")
    );
    assert_eq!(
        param_of(json!({ "model": "m", "messages": [{ "role": "function", "name": "f", "content": "x" }] })).as_deref(),
        Some("messages[0].role")
    );
    assert_eq!(
        param_of(json!({ "model": "m", "messages": [{ "role": "user" }] })).as_deref(),
        Some("messages[0].content")
    );
    assert!(translate(json!("not an object")).is_err());
}

#[test]
fn tool_choice_variants() {
    let req = |choice: Value, parallel: Option<bool>| {
        let mut r = json!({ "model": "m", "messages": [user("weather?")], "tools": [weather_tool()] });
        if !choice.is_null() {
            r["tool_choice"] = choice;
        }
        if let Some(p) = parallel {
            r["parallel_tool_calls"] = json!(p);
        }
        translate(r).expect("translates")
    };
    assert_eq!(req(json!("none"), None)["tool_choice"], json!({ "type": "none" }));
    assert_eq!(req(json!("none"), Some(false))["tool_choice"], json!({ "type": "none" }));
    assert_eq!(req(json!("auto"), None)["tool_choice"], json!({ "type": "auto" }));
    assert_eq!(req(json!("required"), None)["tool_choice"], json!({ "type": "any" }));
    assert_eq!(
        req(json!({ "type": "function", "function": { "name": "get_weather" } }), None)["tool_choice"],
        json!({ "type": "tool", "name": "get_weather" })
    );
    assert!(req(Value::Null, None).get("tool_choice").is_none());
    assert!(req(Value::Null, Some(true)).get("tool_choice").is_none());
    assert_eq!(
        req(Value::Null, Some(false))["tool_choice"],
        json!({ "type": "auto", "disable_parallel_tool_use": true })
    );
    assert_eq!(
        req(json!("required"), Some(false))["tool_choice"],
        json!({ "type": "any", "disable_parallel_tool_use": true })
    );

    // Without tools: auto/none say nothing, forcing is an error.
    let bare = |choice: Value| json!({ "model": "m", "messages": [user("hi")], "tool_choice": choice });
    assert!(translate(bare(json!("none"))).expect("fine").get("tool_choice").is_none());
    assert_eq!(param_of(bare(json!("required"))).as_deref(), Some("tool_choice"));
    let mut unknown = json!({ "model": "m", "messages": [user("hi")], "tools": [weather_tool()] });
    unknown["tool_choice"] = json!({ "type": "function", "function": { "name": "nope" } });
    assert_eq!(param_of(unknown).as_deref(), Some("tool_choice"));
    let mut odd = json!({ "model": "m", "messages": [user("hi")], "tools": [weather_tool()] });
    odd["tool_choice"] = json!("sometimes");
    assert_eq!(param_of(odd).as_deref(), Some("tool_choice"));
}

#[test]
fn tools_are_checked() {
    let with_tool = |tool: Value| json!({ "model": "m", "messages": [user("hi")], "tools": [tool] });
    assert_eq!(param_of(with_tool(json!({ "type": "web_search" }))).as_deref(), Some("tools[0].type"));
    assert_eq!(
        param_of(with_tool(json!({ "type": "function", "function": { "name": RESPONSE_TOOL } }))).as_deref(),
        Some("tools[0].function.name")
    );
    assert_eq!(
        param_of(with_tool(
            json!({ "type": "function", "function": { "name": "f", "parameters": { "type": "array" } } })
        ))
        .as_deref(),
        Some("tools[0].function.parameters")
    );
    let body = translate(with_tool(
        json!({ "type": "function", "function": { "name": "f", "parameters": { "properties": { "a": { "type": "string" } } }, "strict": true } }),
    ))
    .expect("translates");
    assert_eq!(
        body["tools"],
        json!([{ "name": "f", "input_schema": { "type": "object", "properties": { "a": { "type": "string" } } } }])
    );
}

#[test]
fn same_role_turns_merge_and_tool_results_come_first() {
    let body = translate(json!({ "model": "m", "messages": [
        user("one"),
        { "role": "user", "content": [{ "type": "text", "text": "two" }] },
        { "role": "assistant", "content": "a" },
        { "role": "assistant", "content": [{ "type": "text", "text": "b" }], "tool_calls": [{ "id": "functions.lookup:0", "type": "function", "function": { "name": "lookup", "arguments": "{\"q\":1}" } }] },
        user("a note before the result"),
        { "role": "tool", "tool_call_id": "functions.lookup:0", "content": "" },
        { "role": "system", "content": "late system" },
    ] }))
    .expect("translates");
    assert_eq!(
        body["messages"],
        json!([
            { "role": "user", "content": [{ "type": "text", "text": "one" }, { "type": "text", "text": "two" }] },
            { "role": "assistant", "content": [
                { "type": "text", "text": "a" },
                { "type": "text", "text": "b" },
                { "type": "tool_use", "id": "functions_lookup_0", "name": "lookup", "input": { "q": 1 } },
            ] },
            { "role": "user", "content": [
                { "type": "tool_result", "tool_use_id": "functions_lookup_0" },
                { "type": "text", "text": "a note before the result" },
            ] },
        ])
    );
    assert_eq!(body["system"], json!([{ "type": "text", "text": "late system" }]));
}

#[test]
fn images_and_files() {
    let with_part = |part: Value| json!({ "model": "m", "messages": [{ "role": "user", "content": [part] }] });
    let image = |url: &str| with_part(json!({ "type": "image_url", "image_url": { "url": url } }));
    let body = translate(image("data:image/jpg;base64,/9j/4AAQ")).expect("jpg");
    assert_eq!(
        body["messages"][0]["content"][0]["source"],
        json!({ "type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ" })
    );
    let body = translate(image("HTTPS://example.com/a.png")).expect("url");
    assert_eq!(
        body["messages"][0]["content"][0]["source"],
        json!({ "type": "url", "url": "HTTPS://example.com/a.png" })
    );
    for bad_url in
        ["data:image/bmp;base64,Qk0=", "data:image/png,rawbytes", "ftp://example.com/a.png", "data:image/png;base64,"]
    {
        assert_eq!(param_of(image(bad_url)).as_deref(), Some("messages[0].content[0].image_url"), "{bad_url}");
    }
    let pdf = with_part(
        json!({ "type": "file", "file": { "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0=" } }),
    );
    assert_eq!(
        translate(pdf).expect("pdf")["messages"][0]["content"][0],
        json!({ "type": "document", "source": { "type": "base64", "media_type": "application/pdf", "data": "JVBERi0=" } })
    );
    assert_eq!(
        param_of(with_part(json!({ "type": "file", "file": { "file_id": "file-abc" } }))).as_deref(),
        Some("messages[0].content[0].file")
    );
    assert_eq!(
        param_of(with_part(json!({ "type": "input_audio", "input_audio": {} }))).as_deref(),
        Some("messages[0].content[0]")
    );
}

#[test]
fn stop_numbers_and_user() {
    let body = translate(json!({ "model": "m", "messages": [user("hi")], "stop": "###", "temperature": 1, "top_k": 5, "safety_identifier": "u-1" }))
        .expect("translates");
    assert_eq!(body["stop_sequences"], json!(["###"]));
    assert_eq!(body["temperature"], json!(1));
    assert_eq!(body["top_k"], json!(5));
    assert_eq!(body["metadata"], json!({ "user_id": "u-1" }));
    assert_eq!(body["max_tokens"], json!(DEFAULT_MAX_TOKENS));
    let body = translate(
        json!({ "model": "m", "messages": [user("hi")], "stop": [], "max_tokens": 10, "max_completion_tokens": 20 }),
    )
    .expect("translates");
    assert!(body.get("stop_sequences").is_none());
    assert_eq!(body["max_tokens"], json!(20));
}

#[test]
fn response_format_with_tools() {
    let schema = json!({ "type": "object", "properties": { "x": { "type": "integer" } } });
    let rf = json!({ "type": "json_schema", "json_schema": { "name": "out", "schema": schema } });
    let mut req = json!({ "model": "m", "messages": [user("hi")], "tools": [weather_tool()], "response_format": rf });
    let body = translate(req.clone()).expect("auto");
    assert_eq!(body["tools"][1]["name"], RESPONSE_TOOL);
    assert_eq!(body["tools"][1]["input_schema"], schema);
    assert_eq!(body["tool_choice"], json!({ "type": "any" }));
    req["tool_choice"] = json!("none");
    let body = translate(req.clone()).expect("none");
    assert_eq!(
        body["tool_choice"],
        json!({ "type": "tool", "name": RESPONSE_TOOL, "disable_parallel_tool_use": true })
    );
    req["tool_choice"] = json!("required");
    let body = translate(req.clone()).expect("required");
    assert_eq!(body["tools"].as_array().map(Vec::len), Some(1), "the client's forced call is the answer");
    assert_eq!(body["tool_choice"], json!({ "type": "any" }));

    let non_object = json!({ "model": "m", "messages": [user("hi")], "response_format": { "type": "json_schema", "json_schema": { "name": "n", "schema": { "type": "array" } } } });
    assert_eq!(param_of(non_object).as_deref(), Some("response_format.json_schema.schema"));
    let no_schema = json!({ "model": "m", "messages": [user("hi")], "response_format": { "type": "json_schema", "json_schema": { "name": "n" } } });
    assert_eq!(translate(no_schema).expect("like json_object")["system"][0]["text"], JSON_OBJECT_INSTRUCTION);
    let text = json!({ "model": "m", "messages": [user("hi")], "response_format": { "type": "text" } });
    assert!(translate(text).expect("text").get("system").is_none());
    let odd = json!({ "model": "m", "messages": [user("hi")], "response_format": { "type": "yaml" } });
    assert_eq!(param_of(odd).as_deref(), Some("response_format.type"));
}

#[test]
fn reasoning_effort_becomes_thinking_where_anthropic_allows_it() {
    let req = |extra: Value| {
        let mut r = json!({ "model": "m", "messages": [user("think")], "reasoning_effort": "high" });
        for (k, v) in extra.as_object().into_iter().flatten() {
            r[k] = v.clone();
        }
        r
    };
    let body = translate(req(json!({}))).expect("no max");
    assert_eq!(body["thinking"], json!({ "type": "enabled", "budget_tokens": 16384 }));
    assert_eq!(body["max_tokens"], json!(DEFAULT_MAX_TOKENS + 16384));
    let body = translate(req(json!({ "max_tokens": 3000 }))).expect("small max");
    assert_eq!(body["thinking"]["budget_tokens"], json!(1500));
    assert_eq!(body["max_tokens"], json!(3000));
    let body = translate(req(json!({ "max_completion_tokens": 1500 }))).expect("smaller max");
    assert_eq!(body["thinking"]["budget_tokens"], json!(1024));
    assert_eq!(param_of(req(json!({ "max_completion_tokens": 1024 }))).as_deref(), Some("max_completion_tokens"));
    assert_eq!(param_of(req(json!({ "temperature": 0.5 }))).as_deref(), Some("temperature"));
    assert!(translate(req(json!({ "temperature": 1 }))).expect("temperature 1").get("temperature").is_none());
    assert_eq!(param_of(req(json!({ "top_p": 0.5 }))).as_deref(), Some("top_p"));
    assert_eq!(param_of(req(json!({ "top_k": 5 }))).as_deref(), Some("top_k"));
    assert_eq!(param_of(req(json!({ "reasoning_effort": "extreme" }))).as_deref(), Some("reasoning_effort"));
    assert!(translate(req(json!({ "reasoning_effort": "none" }))).expect("none").get("thinking").is_none());

    // A forced tool call: no thinking (Anthropic refuses the pair).
    let forced = req(json!({ "tools": [weather_tool()], "tool_choice": "required", "temperature": 0.2 }));
    let body = translate(forced).expect("forced");
    assert!(body.get("thinking").is_none());
    assert_eq!(body["max_tokens"], json!(DEFAULT_MAX_TOKENS));

    // Continuing a tool loop: the signed thinking blocks of that turn are gone, so no thinking.
    let looped = req(json!({ "tools": [weather_tool()], "messages": [
        user("weather?"),
        { "role": "assistant", "tool_calls": [{ "id": "c1", "type": "function", "function": { "name": "get_weather", "arguments": "{}" } }] },
        { "role": "tool", "tool_call_id": "c1", "content": "sunny" },
    ] }));
    assert!(translate(looped).expect("loop").get("thinking").is_none());
}

// --- responses ---------------------------------------------------------------------------

fn respond(body: Value) -> Value {
    chat_response(&body, &ctx("claude-sonnet-4-5", false)).expect("translates")
}

#[test]
fn stop_reasons_map_to_finish_reasons() {
    for (stop, want) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
        ("tool_use", "stop"),
        ("model_context_window_exceeded", "length"),
    ] {
        let got = respond(
            json!({ "type": "message", "content": [{ "type": "text", "text": "x" }], "stop_reason": stop, "usage": {} }),
        );
        assert_eq!(got["choices"][0]["finish_reason"], want, "{stop}");
    }
    // A tool call always means tool_calls, whatever Anthropic says.
    let got = respond(
        json!({ "content": [{ "type": "tool_use", "id": "t", "name": "f", "input": {} }], "stop_reason": "max_tokens" }),
    );
    assert_eq!(got["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(got["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{}");
}

#[test]
fn response_content_shapes() {
    let got = respond(json!({ "content": [
        { "type": "thinking", "thinking": "hmm", "signature": "sig" },
        { "type": "redacted_thinking", "data": "opaque" },
        { "type": "text", "text": "Hel" },
        { "type": "text", "text": "lo" },
    ], "stop_reason": "end_turn", "usage": { "input_tokens": 3, "output_tokens": 4 } }));
    let m = &got["choices"][0]["message"];
    assert_eq!(m["content"], "Hello");
    assert_eq!(m["reasoning_content"], "hmm");
    assert!(m.get("tool_calls").is_none());
    assert_eq!(got["usage"]["total_tokens"], 7);

    let got = respond(json!({ "content": [], "stop_reason": "end_turn" }));
    assert_eq!(got["choices"][0]["message"]["content"], Value::Null);
    assert!(got["choices"][0]["message"].get("reasoning_content").is_none());

    // Only the first response-format call is the answer.
    let got = respond(json!({ "content": [
        { "type": "tool_use", "id": "a", "name": RESPONSE_TOOL, "input": { "x": 1 } },
        { "type": "tool_use", "id": "b", "name": RESPONSE_TOOL, "input": { "x": 2 } },
    ], "stop_reason": "tool_use" }));
    assert_eq!(got["choices"][0]["message"]["content"], "{\"x\":1}");
    assert_eq!(got["choices"][0]["finish_reason"], "stop");
}

#[test]
fn malformed_responses_are_errors() {
    let c = ctx("m", false);
    assert!(chat_response(&json!({ "type": "error", "error": { "type": "api_error", "message": "x" } }), &c).is_err());
    assert!(chat_response(&json!({ "id": "msg" }), &c).is_err());
    assert!(chat_response(&json!([1, 2]), &c).is_err());
    assert!(chat_response(&json!({ "content": [{ "type": "text" }] }), &c).is_err());
}

// --- streams -----------------------------------------------------------------------------

fn ev(data: Value) -> SseEvent {
    SseEvent { event: data["type"].as_str().map(str::to_owned), data: data.to_string() }
}

fn start(input: u64) -> SseEvent {
    ev(
        json!({ "type": "message_start", "message": { "id": "msg_1", "content": [], "usage": { "input_tokens": input, "output_tokens": 1 } } }),
    )
}

fn chunks(items: Vec<StreamItem>) -> Vec<Value> {
    items.into_iter().map(item_json).collect()
}

fn deltas(items: &[Value]) -> Vec<Value> {
    items.iter().map(|c| c["choices"][0]["delta"].clone()).collect()
}

#[test]
fn truncated_stream_finishes_without_inventing_a_reason() {
    let mut s = chat_stream(ctx("m", true));
    let mut out = chunks(s.on_event(&start(5)));
    out.extend(chunks(s.on_event(&ev(json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "tool_use", "id": "t1", "name": "f", "input": {} } })))));
    out.extend(chunks(s.finish()));
    assert_eq!(
        deltas(&out),
        vec![
            json!({ "role": "assistant", "content": "" }),
            json!({ "tool_calls": [{ "index": 0, "id": "t1", "type": "function", "function": { "name": "f", "arguments": "" } }] }),
            json!({ "tool_calls": [{ "index": 0, "function": { "arguments": "{}" } }] }),
            json!({}),
            Value::Null,
        ]
    );
    assert_eq!(out[3]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(out[4]["usage"]["prompt_tokens"], 5);
    assert!(s.finish().is_empty(), "finish twice adds nothing");

    // A message_delta was seen: its reason stands.
    let mut s = chat_stream(ctx("m", false));
    s.on_event(&start(5));
    s.on_event(&ev(
        json!({ "type": "message_delta", "delta": { "stop_reason": "max_tokens" }, "usage": { "output_tokens": 9 } }),
    ));
    let out = chunks(s.finish());
    assert_eq!(out.len(), 1, "no usage chunk unless asked for");
    assert_eq!(out[0]["choices"][0]["finish_reason"], "length");
    assert_eq!(s.usage().map(|u| (u.prompt_tokens, u.completion_tokens)), Some((5, 9)));

    // Nothing at all: an error, not an empty answer.
    let mut s = chat_stream(ctx("m", false));
    let out = s.finish();
    assert!(matches!(out.as_slice(), [StreamItem::Error(_)]));
    assert_eq!(s.usage(), None);
}

#[test]
fn stream_errors_end_the_stream() {
    let mut s = chat_stream(ctx("m", false));
    s.on_event(&start(1));
    let out = chunks(s.on_event(&SseEvent {
        event: Some("error".into()),
        data: "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"Internal server error\"}}".into(),
    }));
    assert_eq!(
        out,
        vec![
            json!({ "error": { "message": "Internal server error", "type": "api_error", "param": null, "code": null } })
        ]
    );
    assert!(s
        .on_event(&ev(
            json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "late" } })
        ))
        .is_empty());

    let mut s = chat_stream(ctx("m", false));
    let out = s.on_event(&SseEvent { event: Some("message_start".into()), data: "{not json".into() });
    assert!(matches!(out.as_slice(), [StreamItem::Error(_)]));

    // After message_stop nothing more goes out.
    let mut s = chat_stream(ctx("m", false));
    s.on_event(&start(1));
    assert_eq!(s.on_event(&ev(json!({ "type": "message_stop" }))).len(), 1);
    assert!(s.on_event(&ev(json!({ "type": "message_stop" }))).is_empty());
    assert!(s.finish().is_empty());
}

#[test]
fn stream_edge_deltas() {
    let mut s = chat_stream(ctx("m", false));
    let mut out = Vec::new();
    for e in [
        start(1),
        ev(json!({ "type": "ping" })),
        ev(json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } })),
        ev(json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": "" } })),
        ev(json!({ "type": "content_block_delta", "index": 7, "delta": { "type": "text_delta", "text": "orphan" } })),
        ev(json!({ "type": "content_block_stop", "index": 0 })),
        ev(
            json!({ "type": "content_block_start", "index": 1, "content_block": { "type": "tool_use", "id": "t", "name": "f", "input": { "a": 1 } } }),
        ),
        ev(json!({ "type": "content_block_stop", "index": 1 })),
        ev(
            json!({ "type": "content_block_start", "index": 2, "content_block": { "type": "tool_use", "id": "r1", "name": RESPONSE_TOOL, "input": {} } }),
        ),
        ev(json!({ "type": "content_block_stop", "index": 2 })),
        ev(
            json!({ "type": "content_block_start", "index": 3, "content_block": { "type": "tool_use", "id": "r2", "name": RESPONSE_TOOL, "input": {} } }),
        ),
        ev(
            json!({ "type": "content_block_delta", "index": 3, "delta": { "type": "input_json_delta", "partial_json": "{\"x\":2}" } }),
        ),
        ev(json!({ "type": "content_block_stop", "index": 3 })),
        ev(json!({ "type": "some_future_event" })),
        ev(json!({ "type": "message_delta", "delta": { "stop_reason": "tool_use" }, "usage": { "output_tokens": 3 } })),
        ev(json!({ "type": "message_stop" })),
    ] {
        out.extend(chunks(s.on_event(&e)));
    }
    assert_eq!(
        deltas(&out),
        vec![
            json!({ "role": "assistant", "content": "" }),
            json!({ "tool_calls": [{ "index": 0, "id": "t", "type": "function", "function": { "name": "f", "arguments": "" } }] }),
            json!({ "tool_calls": [{ "index": 0, "function": { "arguments": "{\"a\":1}" } }] }),
            json!({ "content": "{}" }),
            json!({}),
        ]
    );
    assert_eq!(out[4]["choices"][0]["finish_reason"], "tool_calls");
}

// --- errors ------------------------------------------------------------------------------

#[test]
fn upstream_errors_map_to_openai_types() {
    let body = |t: &str| {
        format!("{{\"type\":\"error\",\"error\":{{\"type\":\"{t}\",\"message\":\"m\"}},\"request_id\":\"req_1\"}}")
    };
    for (status, t, kind, code) in [
        (400, "invalid_request_error", "invalid_request_error", None),
        (401, "authentication_error", "authentication_error", None),
        (402, "billing_error", "insufficient_quota", Some("insufficient_quota")),
        (403, "permission_error", "permission_error", None),
        (404, "not_found_error", "not_found_error", None),
        (413, "request_too_large", "invalid_request_error", Some("request_too_large")),
        (429, "rate_limit_error", "rate_limit_error", Some("rate_limit_exceeded")),
        (500, "api_error", "api_error", None),
        (504, "timeout_error", "api_error", Some("timeout")),
        (529, "overloaded_error", "overloaded_error", Some("overloaded")),
        (418, "teapot_error", "teapot_error", None),
    ] {
        let e = upstream_error(status, body(t).as_bytes());
        assert_eq!((e.kind.as_str(), e.code.as_deref(), e.message.as_str(), e.param), (kind, code, "m", None), "{t}");
    }
}

#[test]
fn unreadable_error_bodies_fall_back_to_the_status() {
    let e = upstream_error(529, b"<html>Service Unavailable</html>");
    assert_eq!(e.kind, "overloaded_error");
    assert_eq!(e.code.as_deref(), Some("overloaded"));
    assert_eq!(e.message, "Anthropic answered HTTP 529 without an error message.");
    let e = upstream_error(502, b"");
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        ("api_error", "Anthropic answered HTTP 502 without an error message.")
    );
    let e = upstream_error(401, br#"{"error":"bad key"}"#);
    assert_eq!((e.kind.as_str(), e.message.as_str()), ("authentication_error", "bad key"));
    let e = upstream_error(429, br#"{"error":{"type":"rate_limit_error","message":"  "}}"#);
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        ("rate_limit_error", "Anthropic answered HTTP 429 without an error message.")
    );
}

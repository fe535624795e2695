//! The provider wire scenarios of tests/fixtures (tests/fixtures/README.md) and what every suite
//! replaying them shares: loading, random stream cuts, SDK-style accumulation, stream invariants.

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use relay::providers::google::THOUGHT_SEPARATOR;
use relay::providers::unified::{ChatContext, StreamItem, StreamTranslator, Usage};
use relay::sse::SseParser;
use serde_json::{json, Value};

/// One directory of tests/fixtures/<provider>/.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// `<provider>/<directory>`, for messages.
    pub name: String,
    /// `openai_request.json`: what the client sends Relay.
    pub request: Value,
    /// `upstream_request.json`: `{"path", "body"}` Relay must send the provider.
    pub upstream_request: Value,
    /// `upstream_response.json`: `{"status", "headers", "body"}`, for a non-streaming answer.
    pub upstream_response: Option<Value>,
    /// `upstream_stream.sse`: the raw SSE the provider streams.
    pub upstream_stream: Option<Vec<u8>>,
    /// `expected.json`: what the client must end up with.
    pub expected: Value,
}

impl Scenario {
    /// The client calls `/v1/embeddings` (the request has `input`), not chat completions.
    pub fn is_embeddings(&self) -> bool {
        self.request.get("input").is_some()
    }

    /// The model the client asked for, which is also the upstream model in every fixture.
    pub fn model(&self) -> &str {
        self.request["model"].as_str().unwrap_or_else(|| panic!("{}: the request names no model", self.name))
    }
}

pub fn fixtures_dir(provider: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(provider)
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One scenario; panics on a missing or unreadable file.
pub fn scenario(provider: &str, dir_name: &str) -> Scenario {
    let dir = fixtures_dir(provider).join(dir_name);
    let optional = |file: &str| dir.join(file).exists().then(|| dir.join(file));
    let s = Scenario {
        name: format!("{provider}/{dir_name}"),
        request: read_json(&dir.join("openai_request.json")),
        upstream_request: read_json(&dir.join("upstream_request.json")),
        upstream_response: optional("upstream_response.json").map(|p| read_json(&p)),
        upstream_stream: optional("upstream_stream.sse")
            .map(|p| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))),
        expected: read_json(&dir.join("expected.json")),
    };
    assert!(
        s.upstream_response.is_some() || s.upstream_stream.is_some(),
        "{}: needs upstream_response.json or upstream_stream.sse",
        s.name
    );
    let embeds_upstream = s.upstream_request["path"].as_str().is_some_and(|p| p.contains("embed"));
    assert_eq!(s.is_embeddings(), embeds_upstream, "{}: an embeddings request goes to an embeddings path", s.name);
    s
}

/// Every scenario of `provider`, in directory name order.
pub fn scenarios(provider: &str) -> Vec<Scenario> {
    let dir = fixtures_dir(provider);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_dir())
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .collect();
    names.sort();
    names.iter().map(|n| scenario(provider, n)).collect()
}

/// A `body` of a fixture as the provider sent it: a string is raw text, anything else JSON.
pub fn raw_body(body: &Value) -> Vec<u8> {
    match body {
        Value::String(raw) => raw.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    }
}

/// The context `expected.json` assumes: id `chatcmpl-test`, created 1700000000.
pub fn chat_context(request: &Value) -> ChatContext {
    ChatContext {
        id: "chatcmpl-test".into(),
        model: request["model"].as_str().expect("model").into(),
        created: 1_700_000_000,
        include_usage: request.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false),
    }
}

/// Where to cut a stream of `len` bytes: not at all, between every two bytes, and 25 seeded random
/// sets of 1 to 40 cuts (seeded, so a failure can be replayed).
pub fn cut_patterns(len: usize) -> Vec<(String, Vec<usize>)> {
    let mut patterns = vec![("whole".to_owned(), Vec::new()), ("byte by byte".to_owned(), (1..len).collect())];
    for seed in 0..25u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut cuts: Vec<usize> = (0..rng.gen_range(1..=40)).map(|_| rng.gen_range(0..=len)).collect();
        cuts.sort_unstable();
        patterns.push((format!("random cuts (seed {seed})"), cuts));
    }
    patterns
}

/// Feeds `sse`, cut at `cuts`, through Relay's SSE parser into `translator`, as the gateway does:
/// `finish` only when no error came. Returns every item as JSON (an error as `{"error": …}`) and
/// the translator's own usage; fails if anything comes after an error.
pub fn replay(
    translator: &mut dyn StreamTranslator,
    sse: &[u8],
    cuts: &[usize],
) -> Result<(Vec<Value>, Option<Usage>), String> {
    fn take(items: Vec<StreamItem>, out: &mut Vec<Value>, errored: &mut bool) -> Result<(), String> {
        for item in items {
            if *errored {
                return Err(format!("output after the error: {item:?}"));
            }
            out.push(match item {
                StreamItem::Chunk(v) => v,
                StreamItem::Error(v) => {
                    *errored = true;
                    v
                }
                other => return Err(format!("a translator makes chunks and errors only, not {other:?}")),
            });
        }
        Ok(())
    }
    let mut parser = SseParser::new();
    let (mut out, mut errored) = (Vec::new(), false);
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&sse.len())) {
        for event in parser.push(&sse[start..cut]) {
            take(translator.on_event(&event), &mut out, &mut errored)?;
        }
        start = cut;
    }
    if let Some(event) = parser.finish() {
        take(translator.on_event(&event), &mut out, &mut errored)?;
    }
    if !errored {
        take(translator.finish(), &mut out, &mut errored)?;
    }
    Ok((out, translator.usage()))
}

/// What an SDK's stream accumulator yields from `chunks` (README: "accumulated"): content and
/// reasoning concatenated (null when none came), tool calls by index with their id and name and
/// concatenated arguments, the last finish reason, the usage chunk's usage.
pub fn accumulate(chunks: &[Value]) -> Value {
    let mut content: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut calls: Vec<Value> = Vec::new();
    let mut finish_reason = Value::Null;
    let mut usage = Value::Null;
    for c in chunks {
        if let Some(u) = c.get("usage") {
            usage = u.clone();
        }
        // Errors and the usage chunk have no choice.
        let Some(choice) = c.pointer("/choices/0") else { continue };
        let delta = &choice["delta"];
        if let Some(t) = delta["content"].as_str() {
            content.get_or_insert_with(String::new).push_str(t);
        }
        if let Some(t) = delta["reasoning_content"].as_str() {
            reasoning.get_or_insert_with(String::new).push_str(t);
        }
        for tc in delta["tool_calls"].as_array().into_iter().flatten() {
            let i = usize::try_from(tc["index"].as_u64().expect("tool call index")).expect("small index");
            while calls.len() <= i {
                calls.push(json!({ "id": null, "name": null, "arguments": "" }));
            }
            if let Some(id) = tc.get("id") {
                calls[i]["id"] = id.clone();
            }
            if let Some(name) = tc["function"].get("name") {
                calls[i]["name"] = name.clone();
            }
            let args = format!(
                "{}{}",
                calls[i]["arguments"].as_str().unwrap_or(""),
                tc["function"]["arguments"].as_str().unwrap_or("")
            );
            calls[i]["arguments"] = json!(args);
        }
        if !choice["finish_reason"].is_null() {
            finish_reason = choice["finish_reason"].clone();
        }
    }
    json!({ "content": content, "reasoning_content": reasoning, "tool_calls": calls, "finish_reason": finish_reason, "usage": usage })
}

/// The same shape as [`accumulate`], from a non-streaming `chat.completion`.
pub fn accumulated_from_completion(c: &Value) -> Value {
    let m = &c["choices"][0]["message"];
    let calls: Vec<Value> = m["tool_calls"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| json!({"id": t["id"], "name": t["function"]["name"], "arguments": t["function"]["arguments"]}))
                .collect()
        })
        .unwrap_or_default();
    json!({"content": m["content"], "reasoning_content": m.get("reasoning_content").cloned().unwrap_or(Value::Null),
           "tool_calls": calls, "finish_reason": c["choices"][0]["finish_reason"], "usage": c["usage"]})
}

/// What every stream must look like: the role chunk first; an error only as the last item; every
/// choice with a delta object that carries something (text, reasoning, tool calls), except the
/// role chunk and a finish chunk; a tool call's id and name once, in its first delta.
pub fn stream_invariants(chunks: &[Value]) -> Result<(), String> {
    let mut calls_seen = std::collections::BTreeSet::new();
    for (i, c) in chunks.iter().enumerate() {
        if c.get("error").is_some() {
            if i + 1 != chunks.len() {
                return Err(format!("chunk {i} is an error but not the last item"));
            }
            continue;
        }
        let Some(choice) = c.pointer("/choices/0") else { continue };
        let delta = choice["delta"].as_object().ok_or(format!("chunk {i} has no delta object"))?;
        if i == 0 && choice["delta"] != json!({ "role": "assistant", "content": "" }) {
            return Err(format!("the first chunk is not the role chunk: {c}"));
        }
        let has_payload = delta.iter().any(|(k, v)| match k.as_str() {
            "content" | "reasoning_content" => v.as_str().is_some_and(|s| !s.is_empty()),
            "tool_calls" => v.as_array().is_some_and(|a| !a.is_empty()),
            _ => false,
        });
        if !(delta.contains_key("role") || !choice["finish_reason"].is_null() || has_payload) {
            return Err(format!("chunk {i} has an empty delta: {c}"));
        }
        for tc in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            let first = calls_seen.insert(tc["index"].as_u64().ok_or(format!("chunk {i}: a tool call without index"))?);
            let (id, name) = (tc.get("id").is_some(), tc.pointer("/function/name").is_some());
            if (first && !(id && name)) || (!first && (id || name)) {
                return Err(format!("chunk {i}: a tool call's id and name come once, in its first delta: {c}"));
            }
        }
    }
    Ok(())
}

fn is_generated(base: &str) -> bool {
    base.strip_prefix("call_").is_some_and(|r| r.len() == 24 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Relay-generated tool call ids (`call_` + 24 random letters and digits) are random: each distinct
/// one becomes `call_GENERATED_<n>`, in order of first appearance, keeping any thought-signature
/// suffix (README: "Generated tool call ids"). Ids a provider supplied stay as they are.
pub fn normalize_generated_ids(mut v: Value) -> Value {
    fn walk(v: &mut Value, seen: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Array(calls)) = map.get_mut("tool_calls") {
                    for call in calls {
                        let Some(id) = call.get("id").and_then(Value::as_str) else { continue };
                        let (base, suffix) = match id.split_once(THOUGHT_SEPARATOR) {
                            Some((b, s)) => (b.to_owned(), format!("{THOUGHT_SEPARATOR}{s}")),
                            None => (id.to_owned(), String::new()),
                        };
                        if is_generated(&base) {
                            let n = match seen.iter().position(|s| *s == base) {
                                Some(p) => p + 1,
                                None => {
                                    seen.push(base);
                                    seen.len()
                                }
                            };
                            call["id"] = format!("call_GENERATED_{n}{suffix}").into();
                        }
                    }
                }
                for (_, child) in map.iter_mut() {
                    walk(child, seen);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|x| walk(x, seen)),
            _ => {}
        }
    }
    walk(&mut v, &mut Vec::new());
    v
}

/// `Ok` when equal; otherwise both sides, pretty-printed.
pub fn same(what: &str, got: &Value, want: &Value) -> Result<(), String> {
    if got == want {
        return Ok(());
    }
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    Err(format!("{what} differs\n--- got\n{}\n--- want\n{}", pretty(got), pretty(want)))
}

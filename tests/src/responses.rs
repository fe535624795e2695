//! The `/v1/responses` scenarios of tests/fixtures/responses (README there) and what the suites
//! replaying them share: loading, and an accumulator of Responses events as the openai SDKs keep one.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::fixtures::read_json;

/// One directory of tests/fixtures/responses/, named `<provider>_<scenario>`.
#[derive(Debug, Clone)]
pub struct ResponsesScenario {
    pub name: String,
    pub dir: PathBuf,
    /// The provider the model routes to.
    pub provider: String,
    /// `request.json`: what the client sends to `/v1/responses`.
    pub request: Value,
    pub upstream_response: Option<Value>,
    pub upstream_stream: Option<Vec<u8>>,
    /// `expected.json`: `{"response"}`, or `{"error"}` (`code`, `message`) for an error mid-stream.
    pub expected: Value,
}

impl ResponsesScenario {
    pub fn model(&self) -> &str {
        self.request["model"].as_str().expect("model")
    }

    /// What must be equal between two responses: every field but the ids and time Relay makes
    /// (for OpenAI's own answers, everything), read as the SDKs read it.
    pub fn comparable(&self, r: &Value) -> Value {
        // Absent and null are the same to the SDKs (and Python's dump leaves nulls out).
        #[allow(clippy::cast_possible_truncation)]
        fn without_nulls(v: &mut Value) {
            match v {
                Value::Object(o) => {
                    o.retain(|_, x| !x.is_null());
                    o.values_mut().for_each(without_nulls);
                }
                Value::Array(a) => a.iter_mut().for_each(without_nulls),
                // 1.0 and 1 are one number to JSON (Node writes the second).
                Value::Number(n) if n.is_f64() && n.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() < 1e15) => {
                    *v = json!(n.as_f64().unwrap_or_default() as i64)
                }
                _ => {}
            }
        }
        let mut r = r.clone();
        without_nulls(&mut r);
        // An SDK-side convenience, not on the wire.
        r.as_object_mut().map(|o| o.remove("output_text"));
        if self.provider == "openai" {
            return r;
        }
        r["id"] = json!(r["id"].as_str().is_some_and(|i| i.starts_with("resp_")));
        r["created_at"] = json!(r["created_at"].as_f64().is_some_and(|t| t > 1.7e9));
        for item in r["output"].as_array_mut().into_iter().flatten() {
            let prefix = match item["type"].as_str() {
                Some("message") => "msg_",
                Some("function_call") => "fc_",
                _ => "rs_",
            };
            item["id"] = json!(item["id"].as_str().is_some_and(|i| i.starts_with(prefix)));
        }
        r
    }
}

pub fn scenarios() -> Vec<ResponsesScenario> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("responses");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            let name = dir.file_name().and_then(|n| n.to_str()).expect("name").to_owned();
            let provider = name.split('_').next().expect("provider prefix").to_owned();
            let optional = |f: &str| dir.join(f).exists().then(|| dir.join(f));
            ResponsesScenario {
                provider,
                request: read_json(&dir.join("request.json")),
                upstream_response: optional("upstream_response.json").map(|p| read_json(&p)),
                upstream_stream: optional("upstream_stream.sse").map(|p| std::fs::read(p).expect("sse")),
                expected: optional("expected.json").map(|p| read_json(&p)).unwrap_or(Value::Null),
                name: format!("responses/{name}"),
                dir,
            }
        })
        .collect()
}

/// The Responses events in SSE `frames` (see `messages::frames`) -> the response they build, as
/// the openai SDKs accumulate it, checking the sequence on the way: numbers 0, 1, 2, … ; items
/// added in order before their parts and deltas; every item done before `response.completed`,
/// whose output must be the items as done. `Err` with the `error` or `response.failed` event
/// that ended the stream (nothing may follow it).
pub fn accumulate_events(frames: &[Value]) -> Result<Value, Value> {
    let mut response = Value::Null;
    let mut items: Vec<Value> = Vec::new();
    let mut done: HashMap<usize, Value> = HashMap::new();
    let mut finished = false;
    for (i, f) in frames.iter().enumerate() {
        let d = &f["data"];
        let kind = d["type"].as_str().unwrap_or_default();
        assert_eq!(f["event"], d["type"], "the event name is the data's type: {f}");
        assert!(!finished, "nothing after the response ends: {f}");
        if let Some(seq) = d["sequence_number"].as_u64() {
            assert_eq!(seq, i as u64, "sequence numbers count from 0: {f}");
        } else {
            assert!(kind == "error", "a sequence number on every event: {f}");
        }
        let index = d["output_index"].as_u64().map(|n| n as usize);
        let item = |items: &mut Vec<Value>| -> usize {
            let index = index.expect("output_index");
            assert!(index < items.len(), "an event for an item not added: {f}");
            assert_eq!(items[index]["id"], d["item_id"], "item_id matches the item: {f}");
            assert!(!done.contains_key(&index), "an event after the item was done: {f}");
            index
        };
        match kind {
            "response.created" => {
                assert_eq!(i, 0, "response.created comes first");
                response = d["response"].clone();
            }
            "response.in_progress" => assert_eq!(d["response"]["id"], response["id"]),
            "response.output_item.added" => {
                assert_eq!(index, Some(items.len()), "items are added in order: {f}");
                items.push(d["item"].clone());
            }
            "response.content_part.added" => {
                let k = item(&mut items);
                let parts = items[k]["content"].as_array_mut().expect("content");
                assert_eq!(d["content_index"].as_u64(), Some(parts.len() as u64), "{f}");
                parts.push(d["part"].clone());
            }
            "response.output_text.delta" => {
                let k = item(&mut items);
                let c = d["content_index"].as_u64().expect("content_index") as usize;
                let text = &mut items[k]["content"][c]["text"];
                *text =
                    json!(format!("{}{}", text.as_str().expect("a text part"), d["delta"].as_str().expect("delta")));
            }
            "response.reasoning_summary_part.added" => {
                let k = item(&mut items);
                items[k]["summary"].as_array_mut().expect("summary").push(d["part"].clone());
            }
            "response.reasoning_summary_text.delta" => {
                let k = item(&mut items);
                let s = d["summary_index"].as_u64().expect("summary_index") as usize;
                let text = &mut items[k]["summary"][s]["text"];
                *text =
                    json!(format!("{}{}", text.as_str().expect("a summary part"), d["delta"].as_str().expect("delta")));
            }
            "response.function_call_arguments.delta" => {
                let k = item(&mut items);
                let a = &mut items[k]["arguments"];
                *a = json!(format!("{}{}", a.as_str().expect("arguments"), d["delta"].as_str().expect("delta")));
            }
            "response.output_text.done" => {
                let k = item(&mut items);
                let c = d["content_index"].as_u64().expect("content_index") as usize;
                assert_eq!(items[k]["content"][c]["text"], d["text"], "the done text is the deltas: {f}");
            }
            "response.function_call_arguments.done" => {
                let k = item(&mut items);
                assert_eq!(items[k]["arguments"], d["arguments"], "the done arguments are the deltas: {f}");
            }
            "response.reasoning_summary_text.done" => {
                let k = item(&mut items);
                let s = d["summary_index"].as_u64().expect("summary_index") as usize;
                assert_eq!(items[k]["summary"][s]["text"], d["text"], "{f}");
            }
            "response.content_part.done" | "response.reasoning_summary_part.done" => {
                item(&mut items);
            }
            "response.output_item.done" => {
                let k = index.expect("output_index");
                assert!(k < items.len() && !done.contains_key(&k), "done once, after added: {f}");
                assert_eq!(d["item"]["id"], items[k]["id"], "{f}");
                done.insert(k, d["item"].clone());
            }
            "response.completed" | "response.incomplete" => {
                assert_eq!(d["response"]["id"], response["id"], "one response id: {f}");
                assert_eq!(done.len(), items.len(), "every item done before the end: {f}");
                let as_done: Vec<Value> = (0..items.len()).map(|k| done[&k].clone()).collect();
                assert_eq!(d["response"]["output"], json!(as_done), "the final output is the items as done");
                response = d["response"].clone();
                finished = true;
            }
            "response.failed" | "error" => {
                assert_eq!(i + 1, frames.len(), "the error event is the last: {f}");
                return Err(d.clone());
            }
            other => panic!("unexpected event {other}: {f}"),
        }
    }
    assert!(finished, "the stream ends with response.completed");
    Ok(response)
}

/// The error an `error` or `response.failed` event reports: `{code, message}`.
pub fn reported_error(event: &Value) -> Value {
    let e = if event["type"] == "response.failed" { &event["response"]["error"] } else { event };
    json!({ "code": e["code"], "message": e["message"] })
}

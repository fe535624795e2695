//! The translators on every provider wire fixture (tests/fixtures), as data: the upstream request,
//! the completion or error, and each stream under many random cuts, exactly as expected.

use relay::providers::unified::{ChatContext, Prepared, StreamTranslator, TranslateError, UpstreamError};
use relay::providers::{anthropic, google};
use relay_tests::fixtures::{self, Scenario};
use serde_json::{json, Value};

type Request = fn(&Value, &str) -> Result<Prepared, TranslateError>;
type EmbeddingsResponse = fn(&Value, &Value) -> Result<Value, TranslateError>;
type RetryAfter = fn(&[u8]) -> Option<u64>;

/// A provider's translator, by its public functions.
struct Translator {
    chat_request: Request,
    chat_response: fn(&Value, &ChatContext) -> Result<Value, TranslateError>,
    chat_stream: fn(ChatContext) -> Box<dyn StreamTranslator>,
    upstream_error: fn(u16, &[u8]) -> UpstreamError,
    /// Whether a prepared request asks the provider for a stream.
    streams: fn(&Prepared) -> bool,
    embeddings: Option<(Request, EmbeddingsResponse)>,
    retry_after_seconds: Option<RetryAfter>,
}

const ANTHROPIC: Translator = Translator {
    chat_request: anthropic::chat_request,
    chat_response: anthropic::chat_response,
    chat_stream: |ctx| Box::new(anthropic::chat_stream(ctx)),
    upstream_error: anthropic::upstream_error,
    streams: |p| p.body.get("stream").and_then(Value::as_bool).unwrap_or(false),
    embeddings: None,
    retry_after_seconds: None,
};

const GOOGLE: Translator = Translator {
    chat_request: google::chat_request,
    chat_response: google::chat_response,
    chat_stream: |ctx| Box::new(google::chat_stream(ctx)),
    upstream_error: google::upstream_error,
    streams: |p| p.path.contains(":streamGenerateContent?alt=sse"),
    embeddings: Some((google::embeddings_request, google::embeddings_response)),
    retry_after_seconds: Some(google::retry_after_seconds),
};

fn check(s: &Scenario, t: &Translator) -> Result<(), String> {
    let req = &s.request;
    let embeddings = s.is_embeddings();
    let prepared = match (&t.embeddings, embeddings) {
        (Some((request, _)), true) => request(req, s.model()),
        (None, true) => return Err("an embeddings scenario for a provider without embeddings".into()),
        (_, false) => (t.chat_request)(req, s.model()),
    }
    .map_err(|e| format!("request translation failed: {e:?}"))?;
    fixtures::same("upstream request", &json!({ "path": prepared.path, "body": prepared.body }), &s.upstream_request)?;
    let asked = req["stream"].as_bool().unwrap_or(false);
    fixtures::same("upstream stream flag", &json!((t.streams)(&prepared)), &json!(asked))?;

    let ctx = fixtures::chat_context(req);
    if let Some(resp) = &s.upstream_response {
        let status = resp["status"].as_u64().and_then(|s| u16::try_from(s).ok()).ok_or("no status")?;
        fixtures::same("status", &json!(status), &s.expected["status"])?;
        let body = &resp["body"];
        if (200..300).contains(&status) {
            if let (Some((_, response)), true) = (&t.embeddings, embeddings) {
                let got = response(body, req).map_err(|e| format!("{e:?}"))?;
                fixtures::same("embeddings response", &got, &s.expected["response"])?;
            } else {
                let got = (t.chat_response)(body, &ctx).map_err(|e| format!("{e:?}"))?;
                fixtures::same("completion", &fixtures::normalize_generated_ids(got), &s.expected["completion"])?;
            }
        } else {
            let bytes = fixtures::raw_body(body);
            let got = (t.upstream_error)(status, &bytes).to_json();
            fixtures::same("error", &got["error"], &s.expected["error"])?;
            if let Some(secs) = s.expected.get("retry_after") {
                let read = t.retry_after_seconds.ok_or("retry_after expected from a provider without it")?;
                fixtures::same("retry_after", &json!(read(&bytes)), secs)?;
            }
        }
    }

    if let Some(sse) = &s.upstream_stream {
        fixtures::same("status", &json!(200), &s.expected["status"])?;
        let want = &s.expected["chunks"];
        fixtures::stream_invariants(want.as_array().ok_or("expected.json has no chunks")?)
            .map_err(|e| format!("expected chunks: {e}"))?;
        for (cuts_name, cuts) in fixtures::cut_patterns(sse.len()) {
            let mut translator = (t.chat_stream)(ctx.clone());
            let (got, usage) =
                fixtures::replay(translator.as_mut(), sse, &cuts).map_err(|e| format!("{cuts_name}: {e}"))?;
            let got = fixtures::normalize_generated_ids(Value::Array(got));
            fixtures::same(&format!("chunks, {cuts_name}"), &got, want)?;
            if let Some(acc) = s.expected.get("accumulated") {
                let got = got.as_array().map(Vec::as_slice).unwrap_or_default();
                fixtures::same(&format!("accumulated, {cuts_name}"), &fixtures::accumulate(got), acc)?;
                if !acc["usage"].is_null() {
                    fixtures::same(
                        &format!("usage(), {cuts_name}"),
                        &json!(usage.map(|u| u.to_json())),
                        &acc["usage"],
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// Checks every scenario of `provider` (all of them, then reports every failure), and that the
/// scenarios the README names are there.
fn check_all(provider: &str, t: &Translator, required: &[&str]) {
    let scenarios = fixtures::scenarios(provider);
    for name in required {
        let full = format!("{provider}/{name}");
        assert!(scenarios.iter().any(|s| s.name == full), "missing scenario {full}");
    }
    let failures: Vec<String> =
        scenarios.iter().filter_map(|s| check(s, t).err().map(|e| format!("[{}] {e}", s.name))).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn anthropic_fixtures_translate_exactly() {
    check_all(
        "anthropic",
        &ANTHROPIC,
        &[
            "text",
            "text_stream",
            "thinking_stream",
            "parallel_tool_calls_stream",
            "tool_call_no_arguments_stream",
            "cache_usage",
            "cache_usage_stream",
            "overloaded_mid_stream",
            "status_529_before_output",
            "status_429_before_output",
            "request_translation",
            "max_tokens_default",
            "json_object_response",
        ],
    );
}

#[test]
fn google_fixtures_translate_exactly() {
    check_all(
        "google",
        &GOOGLE,
        &[
            "text",
            "text_stream",
            "thinking_stream",
            "parallel_tool_calls_stream",
            "tool_call_no_arguments",
            "multi_turn_tools_request",
            "cache_usage",
            "safety_blocked",
            "prompt_blocked_stream",
            "error_mid_stream",
            "status_429_before_output",
            "status_400_before_output",
            "status_400_api_key_invalid",
            "request_translation",
            "embeddings",
            "embeddings_base64",
        ],
    );
}

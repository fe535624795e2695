//! What calls cost: every usage record priced at the table's prices times the usage the (mock)
//! provider reported, cache and reasoning tokens included, streamed and not; OpenRouter's own
//! figure; `RELAY_PRICING_FILE`; unpriced calls counted apart; `GET /v1/usage` in USD.
//!
//! Expected costs are written out from the prices in pricing/prices.json, so a change of the
//! table or of the formula shows here.

use std::time::Duration;

use relay::pricing::Prices;
use relay::store::UsageEvent;
use relay_tests::app::{spawn_app_with, SpawnOptions};
use relay_tests::fixtures::{self, Scenario};
use relay_tests::mock::Reply;
use relay_tests::{spawn_app, Backend, TestApp};
use serde_json::{json, Value};

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(relay_tests::Backend::Postgres).await } )* }
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(relay_tests::Backend::Sqlite).await } )* }
    };
}

both_backends!(
    openai_cost_with_cache_and_reasoning,
    anthropic_cost_with_cache_reads_and_writes,
    gemini_cost_with_thinking,
    openrouter_reported_cost_wins,
    pricing_file_extends_and_replaces,
    usage_api_reports_cost_and_groups_by_end_user,
);

async fn chat(app: &TestApp, user: &str, body: &Value) -> (u16, String) {
    let res = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.api_key)
        .header("x-relay-user", user)
        .json(body)
        .send()
        .await
        .expect("send");
    let status = res.status().as_u16();
    (status, res.text().await.expect("body"))
}

/// The tenant's first `n` usage events, oldest first, once they are all written.
async fn events(app: &TestApp, n: usize) -> Vec<UsageEvent> {
    for _ in 0..200 {
        let got = app.store.list_usage_events(app.tenant_id, 100).await.expect("store");
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("fewer than {n} usage events were written");
}

fn openai_answer(model: &str, usage: Value) -> Reply {
    Reply::Json {
        status: 200,
        headers: vec![],
        body: json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                     "usage": usage}),
    }
}

fn openai_stream(model: &str, usage: Value) -> Reply {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let usage_chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [], "usage": usage});
    let events = [
        chunk(json!({"role": "assistant", "content": "o"}), Value::Null),
        chunk(json!({"content": "k"}), json!("stop")),
        usage_chunk,
    ];
    let mut text: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    text.push_str("data: [DONE]\n\n");
    Reply::Sse { headers: vec![], text, max_piece: 40, delay: Duration::from_millis(2) }
}

fn hi(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

/// The mock answers as the scenario's provider did.
fn script(app: &TestApp, s: &Scenario) {
    if let Some(sse) = &s.upstream_stream {
        let text = String::from_utf8(sse.clone()).expect("sse is text");
        app.mock.reply(Reply::Sse { headers: vec![], text, max_piece: 48, delay: Duration::from_millis(2) });
    } else {
        let r = s.upstream_response.as_ref().expect("upstream_response.json");
        let status = u16::try_from(r["status"].as_u64().expect("status")).expect("u16");
        app.mock.reply(Reply::Json { status, headers: vec![], body: r["body"].clone() });
    }
}

async fn replay(app: &TestApp, user: &str, provider: &str, scenario: &str) -> UsageEvent {
    let s = fixtures::scenario(provider, scenario);
    script(app, &s);
    let before = app.store.list_usage_events(app.tenant_id, 100).await.expect("store").len();
    let (status, body) = chat(app, user, &s.request).await;
    assert_eq!(status, 200, "{}: {body}", s.name);
    events(app, before + 1).await.pop().expect("an event")
}

async fn openai_cost_with_cache_and_reasoning(backend: Backend) {
    let app = spawn_app(backend).await;
    app.connect_new_key("ann", "openai").await;
    let usage = json!({"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
                       "prompt_tokens_details": {"cached_tokens": 1000},
                       "completion_tokens_details": {"reasoning_tokens": 200}});
    // gpt-4o: $2.50 input, $1.25 cached input, $10 output (reasoning too), per million:
    // 200 × 2.50 + 1000 × 1.25 + 100 × 10 + 200 × 10 = 4750 µUSD. The dated snapshot finds gpt-4o.
    let want = 4_750_000;
    app.mock.reply(openai_answer("gpt-4o-2024-08-06", usage.clone()));
    let (status, body) = chat(&app, "ann", &hi("gpt-4o-2024-08-06", false)).await;
    assert_eq!(status, 200, "{body}");
    // The client's usage object is the provider's, unchanged.
    let answer: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(answer["usage"], usage);
    app.mock.reply(openai_stream("gpt-4o-2024-08-06", usage));
    let (status, body) = chat(&app, "ann", &hi("gpt-4o-2024-08-06", true)).await;
    assert_eq!(status, 200);
    assert!(!body.contains("\"usage\""), "the usage chunk Relay asked for is not passed on: {body}");
    let got = events(&app, 2).await;
    for e in &got {
        assert_eq!(e.cost_nanos, Some(want), "{e:?}");
        assert_eq!(
            (e.prompt_tokens, e.completion_tokens, e.cached_tokens, e.cache_write_tokens, e.reasoning_tokens),
            (Some(1200), Some(300), Some(1000), Some(0), Some(200))
        );
    }

    // Embeddings: text-embedding-3-small, $0.02 per million input tokens: 1500 tokens, 30 µUSD.
    app.mock.reply(Reply::Json {
        status: 200,
        headers: vec![],
        body: json!({"object": "list", "model": "text-embedding-3-small",
                     "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                     "usage": {"prompt_tokens": 1500, "total_tokens": 1500}}),
    });
    let res = app
        .client
        .post(app.url("/v1/embeddings"))
        .bearer_auth(&app.api_key)
        .header("x-relay-user", "ann")
        .json(&json!({"model": "text-embedding-3-small", "input": "hello"}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    let e = events(&app, 3).await.pop().expect("event");
    assert_eq!((e.endpoint.as_str(), e.prompt_tokens, e.cost_nanos), ("/v1/embeddings", Some(1500), Some(30_000)));
}

async fn anthropic_cost_with_cache_reads_and_writes(backend: Backend) {
    let app = spawn_app(backend).await;
    app.connect_new_key("ann", "anthropic").await;
    // claude-sonnet-4-5: $3 input, $3.75 cache write, $0.30 cache read, $15 output, per million;
    // the fixtures report 21 input, 188 cache creation, 1930 cache read and 24 output tokens:
    // 21 × 3 + 188 × 3.75 + 1930 × 0.30 + 24 × 15 = 1707 µUSD.
    for scenario in ["cache_usage", "cache_usage_stream"] {
        let e = replay(&app, "ann", "anthropic", scenario).await;
        assert_eq!(e.cost_nanos, Some(1_707_000), "{scenario}: {e:?}");
        assert_eq!((e.prompt_tokens, e.cached_tokens, e.cache_write_tokens), (Some(2139), Some(1930), Some(188)));
        assert_eq!(e.completion_tokens, Some(24));
    }

    // A stream cut short records what it reported so far: message_start's input and cache
    // tokens and its one output token.
    let s = fixtures::scenario("anthropic", "cache_usage_stream");
    let sse = String::from_utf8(s.upstream_stream.clone().expect("stream")).expect("text");
    let cut = sse.find("event: message_delta").expect("a message_delta");
    app.mock.reply(Reply::Sse {
        headers: vec![],
        text: sse[..cut].to_owned(),
        max_piece: 48,
        delay: Duration::from_millis(2),
    });
    let (status, _) = chat(&app, "ann", &s.request).await;
    assert_eq!(status, 200);
    let e = events(&app, 3).await.pop().expect("event");
    assert_eq!(e.completion_tokens, Some(1));
    assert_eq!(e.cost_nanos, Some(1_347_000 + 15_000), "{e:?}");
}

async fn gemini_cost_with_thinking(backend: Backend) {
    let app = spawn_app(backend).await;
    app.connect_new_key("ann", "google").await;
    // gemini-2.5-flash: $0.30 input, $2.50 output (thinking included), per million.
    // `text`: 19 prompt, 10 candidates + 28 thoughts: 19 × 0.30 + 38 × 2.50 = 100.7 µUSD.
    let e = replay(&app, "ann", "google", "text").await;
    assert_eq!((e.completion_tokens, e.reasoning_tokens, e.cost_nanos), (Some(38), Some(28), Some(100_700)));
    // `thinking_stream`: 14 prompt, 8 candidates + 96 thoughts: 14 × 0.30 + 104 × 2.50 = 264.2 µUSD.
    let e = replay(&app, "ann", "google", "thinking_stream").await;
    assert_eq!((e.completion_tokens, e.reasoning_tokens, e.cost_nanos), (Some(104), Some(96), Some(264_200)));
}

async fn openrouter_reported_cost_wins(backend: Backend) {
    let app = spawn_app(backend).await;
    app.connect_new_key("ann", "openrouter").await;
    let usage = json!({"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100, "cost": 0.0042,
                       "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 100}});
    app.mock.reply(openai_answer("openai/gpt-4o", usage.clone()));
    assert_eq!(chat(&app, "ann", &hi("openrouter/openai/gpt-4o", false)).await.0, 200);
    app.mock.reply(openai_stream("openai/gpt-4o", usage));
    assert_eq!(chat(&app, "ann", &hi("openrouter/openai/gpt-4o", true)).await.0, 200);
    // Without a reported cost, the vendor's own price: gpt-4o, 1000 × 2.50 + 100 × 10 = 3500 µUSD.
    app.mock.reply(openai_answer("openai/gpt-4o", json!({"prompt_tokens": 1000, "completion_tokens": 100})));
    assert_eq!(chat(&app, "ann", &hi("openrouter/openai/gpt-4o", false)).await.0, 200);
    let got = events(&app, 3).await;
    let costs: Vec<_> = got.iter().map(|e| e.cost_nanos).collect();
    assert_eq!(costs, vec![Some(4_200_000), Some(4_200_000), Some(3_500_000)]);
    assert_eq!(got[0].cache_write_tokens, Some(100));
}

/// A pricing file, removed when dropped.
struct PricingFile(std::path::PathBuf);

impl PricingFile {
    fn new(body: &Value) -> Self {
        let path = std::env::temp_dir().join(format!("relay-pricing-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&path, body.to_string()).expect("write pricing file");
        Self(path)
    }
}

impl Drop for PricingFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn mini_at(input: f64, output: f64) -> Value {
    json!({"provider": "openai", "model": "gpt-4o-mini", "input": input, "output": output,
           "date": "2026-12-01", "source": "https://example.com/our-contract"})
}

async fn pricing_file_extends_and_replaces(backend: Backend) {
    let usage = json!({"prompt_tokens": 1000, "completion_tokens": 100});
    for replace in [false, true] {
        let file = PricingFile::new(&json!({"replace": replace, "models": [mini_at(1.0, 2.0)]}));
        let prices = Prices::load(Some(&file.0)).expect("the file loads");
        let app = spawn_app_with(backend, SpawnOptions { prices, ..SpawnOptions::default() }).await;
        app.connect_new_key("ann", "openai").await;
        app.mock.reply(openai_answer("gpt-4o-mini", usage.clone()));
        assert_eq!(chat(&app, "ann", &hi("gpt-4o-mini", false)).await.0, 200);
        assert_eq!(chat(&app, "ann", &hi("gpt-4o", false)).await.0, 200);
        let got = events(&app, 2).await;
        // The file's gpt-4o-mini: 1000 × 1 + 100 × 2 = 1200 µUSD.
        assert_eq!(got[0].cost_nanos, Some(1_200_000), "replace: {replace}");
        // gpt-4o keeps the built-in price when extended (1000 × 2.50 + 100 × 10), and has none
        // when the table was replaced: null, and counted apart.
        let want = if replace { None } else { Some(3_500_000) };
        assert_eq!(got[1].cost_nanos, want, "replace: {replace}");
        let body: Value = usage_report(&app, "groupBy=model").await;
        assert_eq!(body["total"]["unpricedCalls"], u64::from(replace));
        let metrics = app.client.get(app.url("/metrics")).send().await.expect("scrape").text().await.expect("text");
        assert_eq!(metrics.contains("relay_unpriced_calls_total{provider=\"openai\"} 1"), replace, "{metrics}");
    }

    // A bad file stops the server at startup, naming the entry.
    let file = PricingFile::new(&json!({"models": [mini_at(1.0, 2.0), mini_at(-1.0, 2.0)]}));
    let data = std::env::temp_dir().join(format!("relay-data-{}", uuid::Uuid::new_v4()));
    let path = file.0.display().to_string();
    let (status, _, stderr) = relay_tests::process::run_cli(
        &["serve", "--listen", "127.0.0.1:0"],
        &[("RELAY_PRICING_FILE", path.as_str()), ("RELAY_DATA_DIR", &data.display().to_string())],
        None,
    );
    let _ = std::fs::remove_dir_all(&data);
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains(&path) && stderr.contains("models[1] (openai/gpt-4o-mini)"), "{stderr}");
    assert!(stderr.contains("input must be a non-negative number"), "{stderr}");
}

async fn usage_report(app: &TestApp, query: &str) -> Value {
    let res =
        app.client.get(app.url(&format!("/v1/usage?{query}"))).bearer_auth(&app.api_key).send().await.expect("send");
    assert_eq!(res.status(), 200);
    res.json().await.expect("json")
}

fn group<'a>(body: &'a Value, key: &str) -> &'a Value {
    body["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|g| g["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {body}"))
}

fn usd(v: &Value) -> f64 {
    v["costUsd"].as_f64().unwrap_or_else(|| panic!("costUsd is a number in {v}"))
}

fn assert_usd(got: f64, want: f64) {
    assert!((got - want).abs() < 1e-12, "{got} USD, expected {want}");
}

async fn usage_api_reports_cost_and_groups_by_end_user(backend: Backend) {
    let app = spawn_app(backend).await;
    app.connect_new_key("ann", "openai").await;
    app.connect_new_key("ben", "openai").await;
    app.connect_new_key("ben", "anthropic").await;
    // ann: two gpt-4o calls at 3500 µUSD each.
    let usage = json!({"prompt_tokens": 1000, "completion_tokens": 100});
    app.mock.reply(openai_answer("gpt-4o", usage.clone()));
    assert_eq!(chat(&app, "ann", &hi("gpt-4o", false)).await.0, 200);
    app.mock.reply(openai_stream("gpt-4o", usage));
    assert_eq!(chat(&app, "ann", &hi("gpt-4o", true)).await.0, 200);
    // ben: the Anthropic cache fixture (1707 µUSD), a model without a price, and an error.
    replay(&app, "ben", "anthropic", "cache_usage").await;
    app.mock.reply(openai_answer("gpt-unpriced", json!({"prompt_tokens": 10, "completion_tokens": 1})));
    assert_eq!(chat(&app, "ben", &hi("gpt-unpriced", false)).await.0, 200);
    app.mock.reply(Reply::Json { status: 429, headers: vec![], body: json!({"error": {"message": "slow down"}}) });
    assert_eq!(chat(&app, "ben", &hi("gpt-4o", false)).await.0, 429);
    events(&app, 5).await;

    let body = usage_report(&app, "groupBy=endUser").await;
    assert_eq!(body["groupBy"], "endUser");
    assert_usd(usd(&body["total"]), 0.008707);
    assert_eq!(body["total"]["unpricedCalls"], 1);
    let (ann, ben) = (group(&body, "ann"), group(&body, "ben"));
    assert_usd(usd(ann), 0.007);
    assert_eq!((ann["requests"].as_u64(), ann["unpricedCalls"].as_u64()), (Some(2), Some(0)));
    assert_usd(usd(ben), 0.001707);
    assert_eq!(
        (ben["requests"].as_u64(), ben["errors"].as_u64(), ben["unpricedCalls"].as_u64()),
        (Some(3), Some(1), Some(1))
    );

    let body = usage_report(&app, "groupBy=model").await;
    assert_usd(usd(group(&body, "gpt-4o")), 0.007);
    assert_usd(usd(group(&body, "claude-sonnet-4-5")), 0.001707);
    assert_usd(usd(group(&body, "gpt-unpriced")), 0.0);
    assert_eq!(group(&body, "gpt-unpriced")["unpricedCalls"], 1);
    let body = usage_report(&app, "groupBy=provider&endUserLabel=ben").await;
    assert_usd(usd(&body["total"]), 0.001707);
    assert_usd(usd(group(&body, "anthropic")), 0.001707);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_usd(usd(group(&usage_report(&app, "").await, &today)), 0.008707);

    let metrics = app.client.get(app.url("/metrics")).send().await.expect("scrape").text().await.expect("text");
    assert!(metrics.contains("relay_cost_usd_total{provider=\"openai\"} 0.007"), "{metrics}");
    assert!(metrics.contains("relay_cost_usd_total{provider=\"anthropic\"} 0.001707"), "{metrics}");
    assert!(metrics.contains("relay_unpriced_calls_total{provider=\"openai\"} 1"), "{metrics}");

    // An erased user's events are gone, and so is their group.
    assert!(app.delete_user("ann").await.status().is_success());
    let body = usage_report(&app, "groupBy=endUser").await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1), "{body}");
    assert_usd(usd(&body["total"]), 0.001707);
}

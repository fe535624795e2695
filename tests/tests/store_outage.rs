//! PostgreSQL stopped for 5 s under steady traffic: every call answers within 2 s (from the cache,
//! or 503 `store_unavailable`), `/api/ready` says so, Relay recovers without a restart, and every
//! call that succeeded is in the usage records afterwards.
//!
//! This file restarts the machine's PostgreSQL (cargo runs test binaries one at a time; this one
//! has one test), and starts it again even when the test fails.

use std::process::Command;
use std::time::{Duration, Instant};

use relay_tests::app::{spawn_app_with, SpawnOptions, TestApp};
use relay_tests::mock::Reply;
use relay_tests::Backend;
use serde_json::{json, Value};

const BOUND: Duration = Duration::from_secs(2);

fn cluster(action: &str) {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("/etc/postgresql")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
        .expect("a PostgreSQL cluster");
    let status = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", action])
        .status()
        .expect("pg_ctlcluster");
    assert!(status.success(), "pg_ctlcluster {action}");
}

/// Starts PostgreSQL again when dropped, whatever happened.
struct Outage;

impl Outage {
    fn begin() -> Self {
        cluster("stop");
        Outage
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        cluster("start");
    }
}

async fn timed(req: reqwest::RequestBuilder) -> (u16, Value, Duration) {
    let started = Instant::now();
    let res = req.timeout(Duration::from_secs(10)).send().await.expect("an answer, not a hang");
    let status = res.status().as_u16();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, body, started.elapsed())
}

fn chat(app: &TestApp) -> reqwest::RequestBuilder {
    app.client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.api_key)
        .header("x-relay-user", "ann")
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_fails_fast_recovers_alone_and_loses_no_usage() {
    let options = SpawnOptions { cache_ttl: Duration::from_secs(120), ..Default::default() };
    let app = spawn_app_with(Backend::Postgres, options).await;
    app.mock.reply(Reply::Json {
        status: 200,
        headers: vec![],
        body: json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}),
    });
    app.connect_new_key("ann", "openai").await;
    let mut succeeded = 0;
    for _ in 0..3 {
        assert_eq!(timed(chat(&app)).await.0, 200);
        succeeded += 1;
    }

    let outage = Outage::begin();
    let stopped = Instant::now();
    let (mut cached, mut refused) = (0, 0);
    while stopped.elapsed() < Duration::from_secs(5) {
        // A call whose key, user and sealed key are cached is still served; its usage waits.
        let (status, body, took) = timed(chat(&app)).await;
        assert!(took < BOUND, "a chat call took {took:?} during the outage");
        match status {
            200 => cached += 1,
            503 => {
                assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
                refused += 1;
            }
            other => panic!("chat during the outage: {other} {body}"),
        }
        // What needs the database fails fast with 503.
        let (status, body, took) = timed(app.client.get(app.url("/v1/users/ann")).bearer_auth(&app.api_key)).await;
        assert!(took < BOUND, "a read took {took:?} during the outage");
        assert_eq!((status, body["error"]["code"].as_str()), (503, Some("store_unavailable")), "{body}");
        let (status, _, took) = timed(app.client.get(app.url("/api/ready"))).await;
        assert!(took < BOUND && status == 503, "ready: {status} after {took:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    succeeded += cached;
    drop(outage);
    let restarted = Instant::now();

    // Back without restarting Relay: within 2 s of PostgreSQL accepting connections again.
    let usage = loop {
        let (status, body, _) = timed(app.client.get(app.url("/v1/usage")).bearer_auth(&app.api_key)).await;
        if status == 200 {
            break body;
        }
        assert!(restarted.elapsed() < BOUND, "still {status} {body} {:?} after the restart", restarted.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let recovered = restarted.elapsed();
    assert_eq!(timed(chat(&app)).await.0, 200);
    succeeded += 1;
    eprintln!(
        "outage: {cached} calls served from the cache, {refused} refused with 503; usage API back {recovered:?} \
         after the restart; {succeeded} calls succeeded in all"
    );
    let usage = if usage["total"]["requests"].as_u64() == Some(succeeded - 1) {
        // The call just made is in the next read.
        timed(app.client.get(app.url("/v1/usage")).bearer_auth(&app.api_key)).await.1
    } else {
        usage
    };
    assert_eq!(usage["total"]["requests"].as_u64(), Some(succeeded), "every call that succeeded was recorded: {usage}");
    assert!(cached > 0, "calls with everything cached were served during the outage");
}

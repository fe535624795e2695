//! `/relay/{provider}/…`: the stored key injected the provider's way, client credentials
//! dropped, traversal refused, bodies byte for byte both ways, headers filtered both ways,
//! 413 over the limit, and the upstream cancelled when the client leaves.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::RngCore;
use relay_tests::app::assert_error;
use relay_tests::mock::Reply;
use relay_tests::{spawn_app, Backend, TestApp};
use serde_json::json;

fn relay(app: &TestApp, method: reqwest::Method, path: &str, user: &str) -> reqwest::RequestBuilder {
    app.client.request(method, app.url(&format!("/relay{path}"))).bearer_auth(&app.api_key).header("x-relay-user", user)
}

/// Sends a request line exactly as written (no client-side normalisation); returns the status.
fn raw_status(app: &TestApp, target: &str) -> u16 {
    let addr = app.address.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(
        s,
        "POST {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nX-Relay-User: u\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
        app.api_key
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_injected_the_providers_way_and_client_credentials_dropped() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut keys = std::collections::HashMap::new();
    for p in ["openai", "anthropic", "google", "groq", "mistral", "openrouter"] {
        keys.insert(p, app.connect_new_key("u", p).await);
    }
    app.mock.reply(Reply::Json { status: 200, headers: vec![], body: json!({"ok": true}) });
    let cases = [
        ("openai", "/v1/chat/completions", ""),
        ("anthropic", "/v1/messages", ""),
        ("google", "/v1beta/models/gemini-2.5-flash:generateContent", "?alt=sse&key=AIzaLeakedInUrl"),
        ("groq", "/v1/chat/completions", ""),
        ("mistral", "/v1/chat/completions", ""),
        ("openrouter", "/v1/chat/completions", ""),
    ];
    for (provider, path, query) in cases {
        let res = relay(&app, reqwest::Method::POST, &format!("/{provider}{path}{query}"), "u")
            .header("x-api-key", "attacker-x-api-key")
            .header("x-goog-api-key", "attacker-goog-key")
            .header("cookie", "session=abc")
            .header("anthropic-beta", "prompt-caching-2024-07-31")
            .json(&json!({"model": "m", "messages": []}))
            .send()
            .await
            .expect("send");
        assert_eq!(res.status(), 200, "{provider}");
        let seen = app.mock.last_post();
        assert_eq!(seen.path, path, "{provider}: path");
        let key = &keys[provider];
        let auth = seen.header("authorization");
        match provider {
            "anthropic" => {
                assert_eq!(seen.header("x-api-key"), Some(key.as_str()));
                assert_eq!(auth, None);
                assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
                assert_eq!(
                    seen.header("anthropic-beta"),
                    Some("prompt-caching-2024-07-31"),
                    "allowed headers go through"
                );
            }
            "google" => {
                assert_eq!(seen.header("x-goog-api-key"), Some(key.as_str()));
                assert_eq!(auth, None);
                assert_eq!(seen.query, "alt=sse", "a key in the URL is removed");
            }
            _ => {
                assert_eq!(auth, Some(format!("Bearer {key}").as_str()), "{provider}");
                assert_eq!(seen.header("x-api-key"), None);
            }
        }
        assert!(
            seen.headers.iter().all(|(_, v)| !v.contains("attacker-")),
            "{provider}: no client credential header goes through"
        );
        assert_eq!(seen.header("cookie"), None, "{provider}: unlisted headers stay behind");
        assert_eq!(seen.header("x-relay-user"), None);
        assert!(seen.headers.iter().all(|(_, v)| !v.contains(&app.api_key)), "{provider}: the rly- key never leaves");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_and_unlisted_paths_are_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    app.connect_new_key("u", "openai").await;
    app.mock.reply(Reply::Json { status: 200, headers: vec![], body: json!({"ok": true}) });
    let bad = [
        "/relay/openai/v1/../admin",
        "/relay/openai/v1/chat/../../admin",
        "/relay/openai/v1/%2e%2e/admin",
        "/relay/openai/v1/%2E%2E/%2E%2E/v1/organization/users",
        "/relay/openai/v1/.%2e/admin",
        "/relay/openai/v1/%252e%252e/admin",
        "/relay/openai/v1%2fchat%2fcompletions",
        "/relay/openai/v1//chat/completions",
        "/relay/openai/v1/chat/completions%00",
        "/relay/openai/v1/organization/users",
        "/relay/openai/v1/chat/completions/../../files",
    ];
    for target in bad {
        let app = &app;
        let status = tokio::task::block_in_place(|| raw_status(app, target));
        assert!(status == 400 || status == 403 || status == 404, "{target} -> {status}");
    }
    assert!(app.mock.requests().iter().all(|r| r.method != "POST"), "nothing reached the provider");
    // The plain path works over the same raw client.
    assert_eq!(tokio::task::block_in_place(|| raw_status(&app, "/relay/openai/v1/chat/completions")), 200);
    let res = relay(&app, reqwest::Method::POST, "/nope/v1/chat/completions", "u").send().await.expect("send");
    assert_error(res, 404, "provider_unknown").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_and_binary_are_identical_byte_for_byte_both_ways() {
    let app = spawn_app(Backend::Sqlite).await;
    app.connect_new_key("u", "openai").await;
    let sse = "event: response.created\ndata: {\"type\":\"response.created\"}\n\n: comment\r\ndata: {\"delta\":\"héllo\"}\n\ndata: [DONE]\n\n";
    app.mock.reply(Reply::Sse {
        headers: vec![("x-request-id".into(), "req_up".into())],
        text: sse.into(),
        max_piece: 5,
        delay: Duration::from_millis(2),
    });
    let res = relay(&app, reqwest::Method::POST, "/openai/v1/responses", "u")
        .json(&json!({"stream": true}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(res.headers()["x-upstream-request-id"], "req_up");
    assert_eq!(res.bytes().await.expect("bytes").as_ref(), sse.as_bytes());

    // Binary up (an audio upload) and binary down (speech), invalid UTF-8 included.
    let mut upload = vec![0u8; 200_000];
    rand::thread_rng().fill_bytes(&mut upload);
    let mut audio = vec![0u8; 150_000];
    rand::thread_rng().fill_bytes(&mut audio);
    app.mock.reply(Reply::Raw {
        status: 200,
        headers: vec![("content-type".into(), "audio/mpeg".into()), ("set-cookie".into(), "x=1".into())],
        body: audio.clone(),
        max_piece: 7000,
        delay: Duration::from_millis(1),
    });
    let res = relay(&app, reqwest::Method::POST, "/openai/v1/audio/transcriptions", "u")
        .header("content-type", "multipart/form-data; boundary=xyz")
        .body(upload.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "audio/mpeg");
    assert!(res.headers().get("set-cookie").is_none());
    assert_eq!(res.bytes().await.expect("bytes").as_ref(), audio.as_slice());
    let seen = app.mock.last_post();
    assert_eq!(seen.body, upload, "the upload arrived unchanged");
    assert_eq!(seen.header("content-type"), Some("multipart/form-data; boundary=xyz"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_status_limits_and_cancellation() {
    let app = spawn_app(Backend::Sqlite).await;
    app.connect_new_key("u", "anthropic").await;
    app.mock.reply(Reply::Json {
        status: 429,
        headers: vec![
            ("retry-after".into(), "12".into()),
            ("anthropic-ratelimit-requests-remaining".into(), "0".into()),
        ],
        body: json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}),
    });
    let res =
        relay(&app, reqwest::Method::POST, "/anthropic/v1/messages", "u").json(&json!({})).send().await.expect("send");
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "12");
    assert_eq!(res.headers()["anthropic-ratelimit-requests-remaining"], "0");
    assert_eq!(
        res.json::<serde_json::Value>().await.expect("json")["error"]["message"],
        "slow down",
        "the body is the provider's"
    );

    // Over the limit (1 MiB in tests): 413, with or without a declared length.
    let big = vec![b'a'; 1024 * 1024 + 1];
    let res =
        relay(&app, reqwest::Method::POST, "/anthropic/v1/messages", "u").body(big.clone()).send().await.expect("send");
    assert_error(res, 413, "request_too_large").await;
    let chunks =
        futures::stream::iter(big.chunks(64 * 1024).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>());
    let res = relay(&app, reqwest::Method::POST, "/anthropic/v1/messages", "u")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 413);

    // A client that leaves: the provider's stream is cut within a second.
    app.mock.reply(Reply::Sse {
        headers: vec![],
        text: "data: {\"x\":1}\n\n".repeat(600),
        max_piece: 16,
        delay: Duration::from_millis(100),
    });
    let res = relay(&app, reqwest::Method::POST, "/anthropic/v1/messages", "u")
        .json(&json!({"stream": true}))
        .send()
        .await
        .expect("send");
    let mut stream = res.bytes_stream();
    stream.next().await.expect("first bytes").expect("ok");
    let left = Instant::now();
    drop(stream);
    for _ in 0..100 {
        if let Some(end) = app.mock.stream_ends().last() {
            assert!(!end.completed);
            assert!(end.at.duration_since(left) < Duration::from_secs(1));
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the upstream was not cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_required() {
    let app = spawn_app(Backend::Sqlite).await;
    app.connect_new_key("u", "openai").await;
    let res =
        app.client.post(app.url("/relay/openai/v1/chat/completions")).json(&json!({})).send().await.expect("send");
    assert_error(res, 401, "relay_key_missing").await;
    let res = app
        .client
        .post(app.url("/relay/openai/v1/chat/completions"))
        .bearer_auth(&app.api_key)
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    assert_error(res, 400, "missing_end_user").await;
    let res = relay(&app, reqwest::Method::POST, "/groq/v1/chat/completions", "u")
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    assert_error(res, 404, "enduser_key_missing").await;
}

async fn session_token(app: &TestApp, label: &str, providers: Option<serde_json::Value>) -> String {
    let mut body = json!({"endUserLabel": label});
    if let Some(p) = providers {
        body["providers"] = p;
    }
    let res = app
        .client
        .post(app.url("/v1/session-tokens"))
        .bearer_auth(&app.api_key)
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 201);
    res.json::<serde_json::Value>().await.expect("json")["sessionToken"].as_str().expect("token").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_relay_with_a_session_token_for_their_own_user_only() {
    let app = spawn_app(Backend::Postgres).await;
    let key_a = app.connect_new_key("alice", "openai").await;
    let key_b = app.connect_new_key("bob", "openai").await;
    app.store
        .update_tenant_settings(
            app.tenant_id,
            &relay::store::TenantSettings {
                byok_flow_enabled: false,
                allowed_origins: vec!["https://app.example.com".into()],
                ..Default::default()
            },
        )
        .await
        .expect("settings");
    app.mock.reply(Reply::Json { status: 200, headers: vec![], body: json!({"ok": true}) });
    let token = session_token(&app, "alice", None).await;
    let browser = |token: &str, origin: &str| {
        app.client
            .post(app.url("/relay/openai/v1/chat/completions"))
            .header("x-relay-token", token)
            .header("origin", origin)
            .json(&json!({"model": "gpt-4o", "messages": []}))
            .send()
    };

    // A preflight from the app's origin is answered; the call then goes out with alice's key.
    let pre = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/relay/openai/v1/chat/completions"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-relay-token,content-type")
        .send()
        .await
        .expect("preflight");
    assert!(pre.status().is_success(), "preflight: {}", pre.status());
    assert_eq!(pre.headers()["access-control-allow-origin"], "https://app.example.com");
    let res = browser(&token, "https://app.example.com").await.expect("send");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example.com");
    let seen = app.mock.last_post();
    assert_eq!(seen.header("authorization"), Some(format!("Bearer {key_a}").as_str()));
    assert!(seen.headers.iter().all(|(_, v)| !v.contains(&key_b) && !v.contains(&token)));
    // The token names the user: an X-Relay-User header cannot redirect it to bob.
    let res = app
        .client
        .post(app.url("/relay/openai/v1/chat/completions"))
        .header("x-relay-token", &token)
        .header("x-relay-user", "bob")
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    assert_eq!(app.mock.last_post().header("authorization"), Some(format!("Bearer {key_a}").as_str()));

    // Another origin is refused.
    assert_error(browser(&token, "https://evil.example").await.expect("send"), 403, "origin_not_allowed").await;
    // A token scoped to other providers cannot reach this one.
    let scoped = session_token(&app, "alice", Some(json!(["anthropic"]))).await;
    assert_error(browser(&scoped, "https://app.example.com").await.expect("send"), 403, "provider_not_allowed").await;
    // Revoked: refused at once.
    let res = app
        .client
        .post(app.url("/v1/users/alice/sessions/revoke"))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    assert_error(browser(&token, "https://app.example.com").await.expect("send"), 401, "session_token_revoked").await;
    // Garbage is not a token.
    assert_error(browser("not-a-token", "https://app.example.com").await.expect("send"), 401, "session_token_invalid")
        .await;
}

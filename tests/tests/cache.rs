//! `relay serve` remembers what every request reads (its key, the end user, the sealed provider
//! key, the tenant's settings) for `RELAY_CACHE_TTL`. What a request changes on this node counts
//! at once; what changes elsewhere (the CLI, another node) is announced on PostgreSQL and counts
//! within a second on every node, however long the time to live.

use std::time::Duration;

use relay_tests::app::{assert_error, spawn_app_with, SpawnOptions, TestApp};
use relay_tests::mock::Reply;
use relay_tests::process::run_cli;
use relay_tests::Backend;
use serde_json::json;

async fn cached_app(backend: Backend, ttl: Duration) -> TestApp {
    let app = spawn_app_with(backend, SpawnOptions { cache_ttl: ttl, ..SpawnOptions::default() }).await;
    app.mock.reply(Reply::Json {
        status: 200,
        headers: vec![],
        body: json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}),
    });
    app
}

async fn chat(app: &TestApp, user: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.api_key)
        .header("x-relay-user", user)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("send")
}

async fn writes_here_count_at_once(backend: Backend) {
    let app = cached_app(backend, Duration::from_secs(600)).await;
    let first = app.connect_new_key("u", "openai").await;
    assert_eq!(chat(&app, "u").await.status(), 200);
    assert_eq!(app.mock.last_post().header("authorization"), Some(format!("Bearer {first}").as_str()));

    // A new key replaces the cached one at once.
    let second = app.connect_new_key("u", "openai").await;
    assert_eq!(chat(&app, "u").await.status(), 200);
    assert_eq!(app.mock.last_post().header("authorization"), Some(format!("Bearer {second}").as_str()));

    // The tier follows the header, and GET shows it, through the cache.
    let paid = |app: &TestApp| {
        let req = app.client.get(app.url("/v1/users/u")).bearer_auth(&app.api_key);
        async move { req.send().await.expect("send").json::<serde_json::Value>().await.expect("json")["paid"].clone() }
    };
    let res = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.api_key)
        .header("x-relay-user", "u")
        .header("x-relay-paid", "false")
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    assert_eq!(paid(&app).await, false);

    // Removing the key, then erasing the user, count at once.
    assert!(app.delete_key("u", "openai").await.status().is_success());
    assert_error(chat(&app, "u").await, 404, "enduser_key_missing").await;
    app.connect_new_key("u", "openai").await;
    assert_eq!(chat(&app, "u").await.status(), 200);
    assert!(app.delete_user("u").await.status().is_success());
    assert_error(chat(&app, "u").await, 404, "enduser_key_missing").await;
    // A new user under the same label gets their own key, not the erased user's cached one.
    let third = app.connect_new_key("u", "openai").await;
    assert_eq!(chat(&app, "u").await.status(), 200);
    assert_eq!(app.mock.last_post().header("authorization"), Some(format!("Bearer {third}").as_str()));
}

/// Reads through the cache are answered from memory: a change made behind its back (straight in
/// the database) is not seen until the time to live is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_served_from_memory_within_the_ttl() {
    let app = spawn_app_with(Backend::Sqlite, SpawnOptions::default()).await;
    let ttl = Duration::from_millis(800);
    let cached: relay::store::DynStore =
        std::sync::Arc::new(relay::store::cached::CachedStore::new(app.store.clone(), ttl));
    let now = chrono::Utc::now();
    let user = app.store.upsert_end_user(app.tenant_id, "m", now).await.expect("user");
    assert!(cached.get_end_user(app.tenant_id, "m").await.expect("read").expect("user").paid);
    app.store.set_end_user_paid(app.tenant_id, user.id, false).await.expect("write behind");
    assert!(cached.get_end_user(app.tenant_id, "m").await.expect("read").expect("user").paid, "served from memory");
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert!(!cached.get_end_user(app.tenant_id, "m").await.expect("read").expect("user").paid, "read again");
    // A write through the cache counts at once.
    cached.set_end_user_paid(app.tenant_id, user.id, true).await.expect("write through");
    assert!(cached.get_end_user(app.tenant_id, "m").await.expect("read").expect("user").paid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_writes_here_count_at_once() {
    writes_here_count_at_once(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_here_count_at_once() {
    writes_here_count_at_once(Backend::Sqlite).await;
}

/// Polls `refused` every 10 ms until it says so; how long that took, at most `limit`.
async fn until<F, Fut>(limit: Duration, mut refused: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    loop {
        if refused().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "still accepted after {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A key revoked from the CLI (another process) stops working within a second, with a time to
/// live of ten minutes: the CLI's write is announced to the server's cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_from_the_cli_stops_within_a_second() {
    let app = cached_app(Backend::Postgres, Duration::from_secs(600)).await;
    let get = || app.client.get(app.url("/v1/users/nobody")).bearer_auth(&app.api_key).send();
    assert_eq!(get().await.expect("send").status(), 404, "the key is good (and now cached)");
    let metrics = app.client.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("relay_cache_channel_up 1"), "listening for changes");

    let public_id = app.api_key.trim_start_matches("rly-")[..12].to_owned();
    let tenant = app.tenant_id.to_string();
    let env = [("DATABASE_URL", app.db.url.as_str()), ("RELAY_MASTER_KEYS", app.master_keys.as_str())];
    let (status, _, stderr) = run_cli(&["apikey", "revoke", "--tenant", &tenant, &public_id], &env, None);
    assert!(status.success(), "{stderr}");
    let took = until(Duration::from_secs(1), || async { get().await.expect("send").status() == 401 }).await;
    eprintln!("revoked from the CLI: refused by the server {took:?} after the CLI returned");
    assert_error(get().await.expect("send"), 401, "relay_key_revoked").await;
}

/// Two `relay serve` nodes on one PostgreSQL with a ten-minute cache: an end user erased through
/// node B's API, and a key removed, are refused by node A within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_on_one_node_count_on_the_other_within_a_second() {
    use relay_tests::process::ServerProcess;
    use relay_tests::{MockProvider, TestDb};
    let db = TestDb::new(Backend::Postgres).await;
    let mock = MockProvider::start().await;
    mock.answer_every_request(Some(Reply::Json {
        status: 200,
        headers: vec![],
        body: json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}),
    }));
    let master = run_cli(&["kek", "generate"], &[], None).1.trim().to_owned();
    let env_owned: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), db.url.clone()),
        ("RELAY_MASTER_KEYS".into(), master),
        ("RELAY_UPSTREAM_OPENAI".into(), mock.url.clone()),
        ("RELAY_CACHE_TTL".into(), "600".into()),
    ];
    let env: Vec<(&str, &str)> = env_owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let created: serde_json::Value =
        serde_json::from_str(&run_cli(&["tenant", "create", "--name", "T", "--json"], &env, None).1).expect("json");
    let rly = created["apiKey"].as_str().expect("key").to_owned();
    let (a, b) = (ServerProcess::start(&env, None), ServerProcess::start(&env, None));
    let client = reqwest::Client::new();
    for label in ["ann", "bob"] {
        let token = b.registration_token(&client, &rly, label).await;
        let key = relay_tests::fake_keys::for_provider("openai");
        let body = json!({"registrationToken": token, "provider": "openai", "apiKey": key});
        let res = client.post(b.url("/v1/connect")).json(&body).send().await.expect("send");
        assert_eq!(res.status(), 200);
    }
    let chat = |user: &'static str| {
        client
            .post(a.url("/v1/chat/completions"))
            .bearer_auth(&rly)
            .header("x-relay-user", user)
            .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    // Node A has read (and cached) both users and their keys.
    for user in ["ann", "bob"] {
        assert_eq!(chat(user).await.expect("send").status(), 200);
    }

    let res = client.delete(b.url("/v1/users/ann")).bearer_auth(&rly).send().await.expect("erase");
    assert_eq!(res.status(), 200);
    let erased = until(Duration::from_secs(1), || async { chat("ann").await.expect("send").status() == 404 }).await;
    let res = client.delete(b.url("/v1/users/bob/keys/openai")).bearer_auth(&rly).send().await.expect("remove");
    assert_eq!(res.status(), 200);
    let removed = until(Duration::from_secs(1), || async { chat("bob").await.expect("send").status() == 404 }).await;
    eprintln!("erased on node B: refused by node A after {erased:?}; key removed: after {removed:?}");
    drop((a, b));
}

//! Signed webhooks end to end: every delivery verified by the `standardwebhooks` Python library
//! (tests/sdk/webhook_receiver.py), the events Relay emits today with their data, retries with
//! one `webhook-id`, a restart mid-backoff, subscriptions, the SSRF policy at creation, and the
//! secret kept out of every listing, log and row.

use std::time::Duration;

use base64::Engine as _;
use relay_tests::app::{assert_error, spawn_app_with, SpawnOptions, TestApp};
use relay_tests::process::{run_cli, ServerProcess};
use relay_tests::receiver::Receiver;
use relay_tests::{Backend, TestDb};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

fn seconds(list: &[u64]) -> Vec<Duration> {
    list.iter().map(|s| Duration::from_secs(*s)).collect()
}

async fn spawn(backend: Backend, schedule: &[u64]) -> TestApp {
    spawn_app_with(backend, SpawnOptions { webhook_retry_schedule: seconds(schedule), ..Default::default() }).await
}

async fn post_endpoint(client: &reqwest::Client, base: &str, api_key: &str, body: &Value) -> reqwest::Response {
    client.post(format!("{base}/v1/webhook-endpoints")).bearer_auth(api_key).json(body).send().await.expect("request")
}

/// Creates an endpoint, asserted; returns (id, secret).
async fn create_endpoint(client: &reqwest::Client, base: &str, api_key: &str, body: &Value) -> (String, String) {
    let res = post_endpoint(client, base, api_key, body).await;
    assert_eq!(res.status(), 201, "create endpoint");
    assert_eq!(res.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let v: Value = res.json().await.expect("json");
    (v["id"].as_str().expect("id").to_owned(), v["secret"].as_str().expect("secret").to_owned())
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let res = app.client.get(app.url(path)).bearer_auth(&app.api_key).send().await.expect("request");
    assert_eq!(res.status(), 200, "GET {path}");
    res.json().await.expect("json")
}

/// Polls an endpoint's deliveries until `done` says they are as expected.
async fn deliveries_until(app: &TestApp, endpoint: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let v = get_json(app, &format!("/v1/webhook-endpoints/{endpoint}/deliveries")).await;
        let list = v["data"].as_array().expect("data").clone();
        if done(&list) {
            return list;
        }
        assert!(std::time::Instant::now() < deadline, "deliveries never got there: {list:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Erases a fresh end user, which emits `user.erased`.
async fn erase_user(app: &TestApp, label: &str) {
    app.store.upsert_end_user(app.tenant_id, label, chrono::Utc::now()).await.expect("end user");
    assert_eq!(app.delete_user(label).await.status(), 200);
}

#[tokio::test]
async fn key_and_user_events_arrive_signed_with_their_data_and_only_where_subscribed() {
    let app = spawn(Backend::Postgres, &[1, 1]).await;
    let mut receiver = Receiver::start();
    let mut bystander = Receiver::start();
    let body = json!({ "url": receiver.url(), "description": "all events" });
    let (endpoint, secret) = create_endpoint(&app.client, &app.address, &app.api_key, &body).await;
    let body = json!({ "url": bystander.url(), "events": ["budget.exceeded", "key.invalid"] });
    let (other_endpoint, other_secret) = create_endpoint(&app.client, &app.address, &app.api_key, &body).await;
    let raw = secret.strip_prefix("whsec_").expect("whsec_ prefix");
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(raw).expect("base64").len(), 24);
    assert_ne!(secret, other_secret);
    receiver.configure(&secret, 0, 500);
    bystander.configure(&other_secret, 0, 500);

    let key = app.connect_new_key("alice", "openai").await;
    let user = get_json(&app, "/v1/users/alice").await;
    let fingerprint = user["providers"][0]["fingerprint"].as_str().expect("fingerprint").to_owned();
    assert_eq!(app.delete_key("alice", "openai").await.status(), 200);
    assert_eq!(app.delete_user("alice").await.status(), 200);

    let got = receiver.wait_for(3, WAIT).await;
    for r in &got {
        assert_eq!(r["verified"], true, "standardwebhooks verified it: {r}");
        assert_eq!(r["answered"], 204);
        assert!(r["id"].as_str().is_some_and(|id| id.starts_with("msg_")), "{r}");
        assert_eq!(r["contentType"], "application/json");
        assert!(r["userAgent"].as_str().is_some_and(|ua| ua.starts_with("Relay-Webhooks/")), "{r}");
        let at = r["payload"]["timestamp"].as_str().expect("timestamp");
        chrono::DateTime::parse_from_rfc3339(at).expect("RFC 3339 timestamp");
        assert!(!r["body"].as_str().unwrap_or_default().contains(&key), "no key in {r}");
    }
    let events: Vec<(&Value, &Value)> = got.iter().map(|r| (&r["payload"]["type"], &r["payload"]["data"])).collect();
    let key_data = json!({ "endUserLabel": "alice", "provider": "openai", "fingerprint": fingerprint });
    assert_eq!(
        events,
        vec![
            (&json!("key.connected"), &key_data),
            (&json!("key.removed"), &key_data),
            (&json!("user.erased"), &json!({ "endUserLabel": "alice" })),
        ],
        "in order, with their data"
    );
    let ids: std::collections::HashSet<&str> = got.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids.len(), 3, "one id per event");

    let shown =
        deliveries_until(&app, &endpoint, |l| l.len() == 3 && l.iter().all(|d| d["status"] == "delivered")).await;
    assert_eq!(shown[0]["type"], "user.erased", "newest first");
    for d in &shown {
        assert_eq!((&d["attempts"], &d["lastStatus"], &d["lastError"]), (&json!(1), &json!(204), &Value::Null));
        assert!(d["lastAttemptAt"].is_string() && d["nextAttemptAt"].is_null(), "{d}");
        assert!(ids.contains(d["eventId"].as_str().expect("event id")));
    }
    let none = get_json(&app, &format!("/v1/webhook-endpoints/{other_endpoint}/deliveries")).await;
    assert_eq!(none["data"], json!([]), "subscribed to other events: none of these");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(bystander.requests().is_empty(), "nothing reached the other endpoint");

    // Listings show the endpoint, never a secret; nor does the database hold one in the clear.
    let list = get_json(&app, "/v1/webhook-endpoints").await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(list["data"][0]["id"], endpoint.as_str());
    assert_eq!(list["data"][0]["events"], Value::Null, "all events");
    assert_eq!(list["data"][1]["events"], json!(["budget.exceeded", "key.invalid"]));
    let one = get_json(&app, &format!("/v1/webhook-endpoints/{endpoint}")).await;
    assert_eq!((&one["url"], &one["description"]), (&json!(receiver.url()), &json!("all events")));
    for shown in [list.to_string(), one.to_string()] {
        assert!(!shown.contains(raw) && !shown.contains("secret"), "no secret in {shown}");
    }
    let dump = app.db.dump().await;
    assert!(!dump.windows(raw.len()).any(|w| w == raw.as_bytes()), "the secret is stored sealed only");

    let metrics = app.client.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("relay_webhook_deliveries_total{outcome=\"delivered\"} 3"), "{metrics}");
    assert!(metrics.contains("relay_webhook_outbox_pending"), "{metrics}");
    let audit = app.store.list_audit(Some(app.tenant_id), 50).await.expect("audit");
    assert_eq!(audit.iter().filter(|e| e.action == "webhook_endpoint.create").count(), 2);
}

#[tokio::test]
async fn a_receiver_failing_three_times_gets_the_event_once_it_acknowledges_with_the_same_id() {
    let app = spawn(Backend::Sqlite, &[1, 1, 1, 1, 1]).await;
    let mut receiver = Receiver::start();
    let (endpoint, secret) =
        create_endpoint(&app.client, &app.address, &app.api_key, &json!({ "url": receiver.url() })).await;
    receiver.configure(&secret, 3, 503);
    erase_user(&app, "bob").await;

    let got = receiver.wait_for(4, WAIT).await;
    assert_eq!(got.iter().map(|r| r["answered"].as_u64()).collect::<Vec<_>>(), [503, 503, 503, 204].map(Some));
    assert!(got.iter().all(|r| r["verified"] == true), "every attempt verifies: {got:#?}");
    assert!(got.iter().all(|r| r["id"] == got[0]["id"]), "one webhook-id on every attempt");
    assert!(got.iter().all(|r| r["body"] == got[0]["body"]), "the same body on every attempt");
    let stamps: Vec<i64> =
        got.iter().map(|r| r["timestamp"].as_str().and_then(|t| t.parse().ok()).expect("ts")).collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "each attempt signs its own time: {stamps:?}");

    let shown = deliveries_until(&app, &endpoint, |l| l.first().is_some_and(|d| d["status"] == "delivered")).await;
    assert_eq!((&shown[0]["attempts"], &shown[0]["lastStatus"]), (&json!(4), &json!(204)));
    assert_eq!(shown[0]["eventId"], got[0]["id"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.requests().len(), 4, "nothing after the acknowledgement");
    let metrics = app.client.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("relay_webhook_deliveries_total{outcome=\"retry\"} 3"), "{metrics}");
}

#[tokio::test]
async fn retries_run_out_and_redirects_are_not_followed() {
    let app = spawn(Backend::Sqlite, &[1]).await;
    let mut receiver = Receiver::start();
    let (endpoint, secret) =
        create_endpoint(&app.client, &app.address, &app.api_key, &json!({ "url": receiver.url() })).await;
    receiver.configure(&secret, 100, 307);
    erase_user(&app, "carol").await;

    let shown = deliveries_until(&app, &endpoint, |l| l.first().is_some_and(|d| d["status"] == "failed")).await;
    let d = &shown[0];
    assert_eq!((&d["attempts"], &d["lastStatus"], &d["nextAttemptAt"]), (&json!(2), &json!(307), &Value::Null));
    assert!(d["lastError"].as_str().is_some_and(|e| e.contains("redirects are not followed")), "{d}");
    assert_eq!(receiver.requests().len(), 2, "the first attempt and one retry");
    let metrics = app.client.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("relay_webhook_deliveries_total{outcome=\"failed\"} 1"), "{metrics}");
}

#[tokio::test]
async fn endpoints_are_checked_at_creation_and_belong_to_their_tenant() {
    let app = spawn(Backend::Sqlite, &[1]).await;
    let refused = [
        ("https://169.254.169.254/latest", "upstream_not_allowed"),
        ("https://10.0.0.7/hook", "upstream_not_allowed"),
        ("https://localhost/hook", "upstream_not_allowed"),
        ("http://[::1]:8080/hook", "upstream_not_allowed"),
        ("http://hooks.example.com/hook", "upstream_not_https"),
        ("https://user:pw@hooks.example.com/hook", "invalid_upstream_url"),
        ("not a url", "invalid_upstream_url"),
    ];
    for (url, code) in refused {
        let res = post_endpoint(&app.client, &app.address, &app.api_key, &json!({ "url": url })).await;
        let body = assert_error(res, 400, code).await;
        assert_eq!(body["error"]["param"], "url", "{url}");
    }
    let res = post_endpoint(
        &app.client,
        &app.address,
        &app.api_key,
        &json!({ "url": "http://127.0.0.1:9/hook", "events": ["key.connected", "key.exploded", "budget.gone"] }),
    )
    .await;
    let body = assert_error(res, 400, "webhook_event_unknown").await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("key.exploded") && message.contains("budget.gone"), "{message}");
    assert!(!message.contains("key.connected,") || message.contains("Known"), "{message}");
    let res =
        post_endpoint(&app.client, &app.address, &app.api_key, &json!({ "url": "http://127.0.0.1:9/h", "events": [] }))
            .await;
    assert_error(res, 400, "webhook_events_empty").await;
    let res = app.client.get(app.url("/v1/webhook-endpoints")).send().await.expect("request");
    assert_error(res, 401, "relay_key_missing").await;

    // Another tenant sees none of it.
    let body = json!({ "url": "http://127.0.0.1:9/hook", "events": ["user.erased"] });
    let (endpoint, _) = create_endpoint(&app.client, &app.address, &app.api_key, &body).await;
    let (_, other_key) = app.other_tenant().await;
    for path in [format!("/v1/webhook-endpoints/{endpoint}"), format!("/v1/webhook-endpoints/{endpoint}/deliveries")] {
        let res = app.client.get(app.url(&path)).bearer_auth(&other_key).send().await.expect("request");
        assert_error(res, 404, "webhook_endpoint_not_found").await;
    }
    let res = app.client.get(app.url("/v1/webhook-endpoints")).bearer_auth(&other_key).send().await.expect("request");
    assert_eq!(res.json::<Value>().await.expect("json")["data"], json!([]));
    let delete = |key: String| {
        let req = app.client.delete(app.url(&format!("/v1/webhook-endpoints/{endpoint}"))).bearer_auth(key);
        async move { req.send().await.expect("request") }
    };
    assert_error(delete(other_key).await, 404, "webhook_endpoint_not_found").await;
    let res = delete(app.api_key.clone()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.expect("json"), json!({ "id": endpoint, "deleted": true }));
    assert_error(delete(app.api_key.clone()).await, 404, "webhook_endpoint_not_found").await;
    let res = app.client.get(app.url("/v1/webhook-endpoints/not-a-uuid")).bearer_auth(&app.api_key).send().await;
    assert_error(res.expect("request"), 404, "webhook_endpoint_not_found").await;
    let audit = app.store.list_audit(Some(app.tenant_id), 50).await.expect("audit");
    assert!(audit.iter().any(|e| e.action == "webhook_endpoint.delete"
        && e.target.as_deref() == Some(&format!("webhook_endpoint:{endpoint}"))));
}

fn as_refs(owned: &[(String, String)]) -> Vec<(&str, &str)> {
    owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// `relay serve` is stopped while a delivery waits for its retry, the master key is rotated, and
/// a new `relay serve` on the same database delivers it: the outbox is the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_backoff_loses_nothing() {
    let db = TestDb::new(Backend::Postgres).await;
    let v1 = run_cli(&["kek", "generate"], &[], None).1.trim().to_owned();
    let mut env_owned: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), db.url.clone()),
        ("RELAY_MASTER_KEYS".into(), v1.clone()),
        ("RELAY_ALLOW_UPSTREAM_HOSTS".into(), "127.0.0.1".into()),
        ("RELAY_WEBHOOK_RETRY_SCHEDULE".into(), "3".into()),
    ];
    let owned = env_owned.clone();
    let created: Value =
        serde_json::from_str(&run_cli(&["tenant", "create", "--name", "T", "--json"], &as_refs(&owned), None).1)
            .expect("json");
    let rly = created["apiKey"].as_str().expect("key").to_owned();

    let mut receiver = Receiver::start();
    let mut first = ServerProcess::start(&as_refs(&owned), None);
    let client = reqwest::Client::new();
    let (endpoint, secret) = create_endpoint(&client, &first.address, &rly, &json!({ "url": receiver.url() })).await;
    receiver.configure(&secret, 1, 500);
    let store = relay::store::connect(&relay::store::DatabaseUrl::parse(&db.url).expect("url")).await.expect("store");
    let tenant_id: uuid::Uuid = created["tenantId"].as_str().and_then(|t| t.parse().ok()).expect("tenant id");
    store.upsert_end_user(tenant_id, "dave", chrono::Utc::now()).await.expect("end user");
    let res = client.delete(first.url("/v1/users/dave")).bearer_auth(&rly).send().await.expect("request");
    assert_eq!(res.status(), 200);

    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!((&got[0]["answered"], &got[0]["verified"]), (&json!(500), &json!(true)));
    first.signal("TERM");
    assert!(first.wait_exit(Duration::from_secs(20)).is_some_and(|s| s.success()), "relay stopped");
    let first_logs = first.logs();
    drop(first);
    let endpoint_id: uuid::Uuid = endpoint.parse().expect("uuid");
    let waiting = store.list_webhook_deliveries(tenant_id, endpoint_id, 10).await.expect("deliveries");
    assert_eq!(waiting.len(), 1);
    assert_eq!((waiting[0].status.as_str(), waiting[0].attempts), ("pending", 1), "stopped mid-backoff");
    assert!(waiting[0].next_attempt_at.is_some());

    // A new master key meanwhile: the secret is re-wrapped under it, and still signs.
    let v2 = relay::vault::LocalKeyring::generate_entry(2).expose_secret().to_owned();
    env_owned[1].1 = format!("{v2},{v1}");
    let owned = env_owned.clone();
    let (status, out, err) = run_cli(&["kek", "rotate", "--json"], &as_refs(&owned), None);
    assert!(status.success(), "{out} {err}");
    let report: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(report["webhookSecrets"], json!({ "rewrapped": 1, "failed": 0 }));

    let second = ServerProcess::start(&as_refs(&owned), None);
    let got = receiver.wait_for(2, WAIT).await;
    assert_eq!((&got[1]["answered"], &got[1]["verified"]), (&json!(204), &json!(true)), "{got:#?}");
    assert_eq!(got[1]["id"], got[0]["id"], "the same event, the same webhook-id");
    assert_eq!(got[1]["payload"]["type"], "user.erased");
    let shown = loop {
        let d = store.list_webhook_deliveries(tenant_id, endpoint_id, 10).await.expect("deliveries");
        if d[0].status.as_str() == "delivered" {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(shown[0].attempts, 2);
    let raw = secret.strip_prefix("whsec_").expect("prefix");
    for logs in [first_logs, second.logs()] {
        assert!(logs.contains("webhook attempt"), "attempts are logged");
        assert!(!logs.contains(raw), "the secret is never logged");
    }
}

/// Keys stored and deleted through the byok flow (a session token) emit the same events; and a
/// URL the policy refuses is refused again at delivery, whatever the row says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_byok_flow_emits_too_and_every_delivery_checks_the_url_again() {
    let app = spawn(Backend::Sqlite, &[600]).await;
    let mut receiver = Receiver::start();
    let (_, secret) = create_endpoint(&app.client, &app.address, &app.api_key, &json!({ "url": receiver.url() })).await;
    receiver.configure(&secret, 0, 500);
    let settings = relay::store::TenantSettings { byok_flow_enabled: true, ..Default::default() };
    assert!(app.store.update_tenant_settings(app.tenant_id, &settings).await.expect("store"));
    app.store.upsert_end_user(app.tenant_id, "erin", chrono::Utc::now()).await.expect("end user");
    let res = app
        .client
        .post(app.url("/v1/session-tokens"))
        .bearer_auth(&app.api_key)
        .json(&json!({ "endUserLabel": "erin" }))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 201, "session token");
    let token = res.json::<Value>().await.expect("json")["sessionToken"].as_str().expect("token").to_owned();
    let key = relay_tests::fake_keys::for_provider("groq");
    app.mock.accept(&key);
    let res = app
        .client
        .post(app.url("/keys/groq"))
        .header("x-relay-token", &token)
        .json(&json!({ "key": key }))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200, "store a key with the session token");
    let fingerprint = res.json::<Value>().await.expect("json")["fingerprint"].clone();
    let res = app.client.delete(app.url("/keys/groq")).header("x-relay-token", &token).send().await.expect("request");
    assert_eq!(res.status(), 200);

    let got = receiver.wait_for(2, WAIT).await;
    let data = json!({ "endUserLabel": "erin", "provider": "groq", "fingerprint": fingerprint });
    assert_eq!((&got[0]["payload"]["type"], &got[0]["payload"]["data"]), (&json!("key.connected"), &data));
    assert_eq!((&got[1]["payload"]["type"], &got[1]["payload"]["data"]), (&json!("key.removed"), &data));
    assert!(got.iter().all(|r| r["verified"] == true));

    // A row with a forbidden URL (written before a policy change, say) is never connected to.
    let rogue = relay::store::WebhookEndpoint {
        id: uuid::Uuid::new_v4(),
        tenant_id: app.tenant_id,
        url: "https://169.254.169.254/latest/meta-data".into(),
        events: None,
        description: None,
        sealed_secret: relay::vault::SealedKey { kek_version: 1, wrapped_dek: vec![0; 60], ciphertext: vec![0; 60] },
        created_at: chrono::Utc::now(),
    };
    app.store.insert_webhook_endpoint(&rogue).await.expect("store");
    assert_eq!(app.delete_user("erin").await.status(), 200);
    // `attempts` counts from the claim; `lastError` is written when the attempt ends.
    let ended = |l: &[Value]| l.first().is_some_and(|d| d["attempts"] == 1 && d["lastError"].is_string());
    let shown = deliveries_until(&app, &rogue.id.to_string(), ended).await;
    assert_eq!((&shown[0]["status"], &shown[0]["lastStatus"]), (&json!("pending"), &Value::Null), "retried later");
    let error = shown[0]["lastError"].as_str().unwrap_or_default();
    assert!(error.contains("not allowed") && error.contains("metadata"), "{error}");
    receiver.wait_for(3, WAIT).await;
}

/// An endpoint that does not answer within 10 s is retried like one that fails.
#[tokio::test]
async fn an_attempt_without_an_answer_within_ten_seconds_is_retried() {
    let app = spawn(Backend::Sqlite, &[1]).await;
    let mut receiver = Receiver::start();
    let (endpoint, secret) =
        create_endpoint(&app.client, &app.address, &app.api_key, &json!({ "url": receiver.url() })).await;
    receiver.configure_hanging(&secret, 1);
    erase_user(&app, "frank").await;
    let shown = deliveries_until(&app, &endpoint, |l| {
        l.first().is_some_and(|d| d["attempts"] == 1 && d["lastError"].is_string())
    })
    .await;
    assert_eq!(shown[0]["lastError"], "no answer within 10 s");
    assert_eq!((&shown[0]["status"], &shown[0]["lastStatus"]), (&json!("pending"), &Value::Null));
    let shown = deliveries_until(&app, &endpoint, |l| l.first().is_some_and(|d| d["status"] == "delivered")).await;
    assert_eq!((&shown[0]["attempts"], &shown[0]["lastStatus"]), (&json!(2), &json!(204)));
}

/// Two `relay serve` nodes on one PostgreSQL, both emitting: every event arrives once, and the
/// endpoint never has two attempts in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_deliver_each_event_once_and_one_at_a_time() {
    let db = TestDb::new(Backend::Postgres).await;
    let master = run_cli(&["kek", "generate"], &[], None).1.trim().to_owned();
    let owned: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), db.url.clone()),
        ("RELAY_MASTER_KEYS".into(), master),
        ("RELAY_ALLOW_UPSTREAM_HOSTS".into(), "127.0.0.1".into()),
    ];
    let env = as_refs(&owned);
    let created: Value =
        serde_json::from_str(&run_cli(&["tenant", "create", "--name", "T", "--json"], &env, None).1).expect("json");
    let rly = created["apiKey"].as_str().expect("key").to_owned();
    let tenant_id: uuid::Uuid = created["tenantId"].as_str().and_then(|t| t.parse().ok()).expect("tenant id");
    let nodes = [ServerProcess::start(&env, None), ServerProcess::start(&env, None)];
    let client = reqwest::Client::new();
    let mut receiver = Receiver::start();
    let (_, secret) = create_endpoint(&client, &nodes[0].address, &rly, &json!({ "url": receiver.url() })).await;
    receiver.configure_slow(&secret, 150);

    let store = relay::store::connect(&relay::store::DatabaseUrl::parse(&db.url).expect("url")).await.expect("store");
    let erasures = (0..12).map(|i| {
        let (client, store, rly) = (client.clone(), store.clone(), rly.clone());
        let node = nodes[i % 2].address.clone();
        async move {
            let label = format!("user_{i}");
            store.upsert_end_user(tenant_id, &label, chrono::Utc::now()).await.expect("end user");
            let res =
                client.delete(format!("{node}/v1/users/{label}")).bearer_auth(&rly).send().await.expect("request");
            assert_eq!(res.status(), 200);
        }
    });
    futures::future::join_all(erasures).await;

    let got = receiver.wait_for(12, WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got_after = receiver.requests();
    assert_eq!(got_after.len(), 12, "no event twice: {got_after:#?}");
    let labels: std::collections::HashSet<&str> =
        got.iter().filter_map(|r| r["payload"]["data"]["endUserLabel"].as_str()).collect();
    assert_eq!(labels.len(), 12, "every event once");
    assert!(got.iter().all(|r| r["verified"] == true && r["answered"] == 204));
    assert!(got.iter().all(|r| r["inflight"] == 1), "one attempt at a time: {got:#?}");
    // Which node sends is a race (a node that just finished an attempt claims the next at once);
    // both woke for their own events and tried.
    let attempts: usize = nodes.iter().map(|n| n.logs().matches("webhook attempt").count()).sum();
    assert_eq!(attempts, 12, "one attempt per event across the nodes");
}

/// The events other parts of Relay raise: `budget.threshold` and `budget.exceeded` once per
/// budget and period as spend crosses them, and `key.invalid` with a link that lets the end user
/// connect a new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_and_key_health_events_arrive_once_with_their_data() {
    use relay_tests::mock::Reply;
    let app = spawn(Backend::Postgres, &[1, 1]).await;
    let mut receiver = Receiver::start();
    let body = json!({ "url": receiver.url(), "events": ["budget.threshold", "budget.exceeded", "key.invalid"] });
    let (_, secret) = create_endpoint(&app.client, &app.address, &app.api_key, &body).await;
    receiver.configure(&secret, 0, 500);
    app.connect_new_key("ann", "openai").await;
    let completion = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000}});
    app.mock.reply(Reply::Json { status: 200, headers: vec![], body: completion });
    let chat = || {
        app.client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&app.api_key)
            .header("x-relay-user", "ann")
            .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    // gpt-4o-mini at $0.15 / $0.60 per million: $0.00075 a call. Three calls fit in $0.00225;
    // the second crosses half of it, the third spends it.
    let res = app
        .client
        .put(app.url("/v1/users/ann/budget"))
        .bearer_auth(&app.api_key)
        .json(&json!({"limitUsd": 0.00225, "period": "month", "alertAt": 0.5}))
        .send()
        .await
        .expect("budget");
    assert_eq!(res.status(), 200);
    for _ in 0..3 {
        assert_eq!(chat().await.expect("chat").status(), 200);
    }
    assert_eq!(chat().await.expect("chat").status(), 402);
    let got = receiver.wait_for(2, WAIT).await;
    let types: Vec<&str> = got.iter().filter_map(|r| r["payload"]["type"].as_str()).collect();
    assert_eq!(types, ["budget.threshold", "budget.exceeded"], "each once: {got:#?}");
    for r in &got {
        assert_eq!(r["verified"], true);
        let data = &r["payload"]["data"];
        assert_eq!((data["budget"].as_str(), data["endUserLabel"].as_str()), (Some("end_user"), Some("ann")), "{data}");
        assert_eq!((data["limitUsd"].as_f64(), data["period"].as_str()), (Some(0.00225), Some("month")), "{data}");
    }
    assert_eq!(got[0]["payload"]["data"]["spentUsd"].as_f64(), Some(0.0015));
    assert_eq!(got[1]["payload"]["data"]["spentUsd"].as_f64(), Some(0.00225));

    // The provider refuses the key: key.invalid, once, with a link that connects a new one.
    app.mock.reply(Reply::Json {
        status: 401,
        headers: vec![],
        body: json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}),
    });
    let res =
        app.client.delete(app.url("/v1/users/ann/budget")).bearer_auth(&app.api_key).send().await.expect("delete");
    assert_eq!(res.status(), 200);
    assert_eq!(chat().await.expect("chat").status(), 401);
    assert_eq!(chat().await.expect("chat").status(), 403, "refused at once from now on");
    let got = receiver.wait_for(3, WAIT).await;
    let invalid = &got[2]["payload"];
    assert_eq!(invalid["type"], "key.invalid");
    let data = &invalid["data"];
    assert_eq!((data["endUserLabel"].as_str(), data["provider"].as_str()), (Some("ann"), Some("openai")));
    assert!(data["reason"].as_str().is_some_and(|r| r.contains("401")), "{data}");
    let link = data["reconnectUrl"].as_str().expect("reconnectUrl");
    let token = link.strip_prefix("/connect?token=").expect("a connect link");
    let fresh = relay_tests::fake_keys::for_provider("openai");
    app.mock.reply(Reply::Json { status: 200, headers: vec![], body: json!({"object": "list", "data": []}) });
    app.mock.accept(&fresh);
    assert_eq!(app.connect(token, "openai", &fresh).await.status(), 200, "the link connects a new key");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.requests().iter().filter(|r| r["payload"]["type"] == "key.invalid").count(), 1, "once");
}

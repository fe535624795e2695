//! Budgets and the end user's own cap: the store's budgets and spend counters on both backends,
//! the budget routes, and calls refused with 402 once a limit is spent.

use chrono::{DateTime, Utc};
use relay::domain::money::{Period, Usd};
use relay::store::{Budget, BudgetScope, DatabaseUrl, DynStore, SpendAlert, SpendKey, SpendSubject, UsageEvent};
use relay_tests::app::assert_error;
use relay_tests::mock::Reply;
use relay_tests::{spawn_app, Backend, TestApp, TestDb};
use serde_json::{json, Value};
use uuid::Uuid;

async fn store(backend: Backend) -> (DynStore, TestDb) {
    let db = TestDb::new(backend).await;
    let url = DatabaseUrl::parse(&db.url).expect("url");
    let store = relay::store::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    (store, db)
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("time")
}

fn usd(dollars: f64) -> Usd {
    Usd::from_dollars(dollars).expect("amount")
}

fn event(
    tenant_id: Uuid,
    end_user_id: Uuid,
    provider: &str,
    cost: Option<f64>,
    created_at: DateTime<Utc>,
) -> UsageEvent {
    UsageEvent {
        id: Uuid::new_v4(),
        tenant_id,
        end_user_id: Some(end_user_id),
        api_key_id: None,
        provider: provider.into(),
        model: "gpt-4o-mini".into(),
        endpoint: "/v1/chat/completions".into(),
        status: 200,
        paid: true,
        prompt_tokens: Some(10),
        completion_tokens: Some(5),
        cached_tokens: None,
        cache_write_tokens: None,
        reasoning_tokens: None,
        latency_ms: 3,
        ttft_ms: None,
        created_at,
        cost_nanos: cost.map(|c| usd(c).nanos()),
    }
}

fn counter(subject: SpendSubject, period: Period, when: DateTime<Utc>) -> SpendKey {
    SpendKey { subject, period, start: period.start(when) }
}

async fn budgets_and_spend(backend: Backend) {
    let (store, _db) = store(backend).await;
    let (tenant, _) = relay::tenants::create_tenant(&store, "Budgets", "t").await.expect("tenant");
    let (other, _) = relay::tenants::create_tenant(&store, "Other", "o").await.expect("tenant");
    let now = at("2026-12-03T10:00:00Z");
    let ann = store.upsert_end_user(tenant.id, "ann", now).await.expect("user");
    let bob = store.upsert_end_user(tenant.id, "bob", now).await.expect("user");

    // Budgets: create, replace (created_at kept), read what applies to one user, delete.
    let budget = |scope, dollars, period| Budget {
        tenant_id: tenant.id,
        scope,
        limit: usd(dollars),
        period,
        alert_at_bps: 8000,
        created_at: now,
        updated_at: now,
    };
    store.put_budget(&budget(BudgetScope::Tenant, 100.0, Period::Month)).await.expect("put");
    store.put_budget(&budget(BudgetScope::EndUserDefault, 1.0, Period::Day)).await.expect("put");
    store.put_budget(&budget(BudgetScope::EndUser(bob.id), 3.0, Period::Month)).await.expect("put");
    let later = at("2026-12-03T11:00:00Z");
    let replaced = store
        .put_budget(&Budget { updated_at: later, created_at: later, ..budget(BudgetScope::Tenant, 50.0, Period::Day) })
        .await
        .expect("replace");
    assert_eq!(
        (replaced.limit, replaced.period, replaced.created_at, replaced.updated_at),
        (usd(50.0), Period::Day, now, later)
    );
    let scopes = |list: Vec<Budget>| {
        let mut s: Vec<String> = list.into_iter().map(|b| b.scope.subject()).collect();
        s.sort();
        s
    };
    assert_eq!(scopes(store.budgets_for(tenant.id, Some(ann.id)).await.expect("read")), ["end_user_default", "tenant"]);
    assert_eq!(
        scopes(store.budgets_for(tenant.id, Some(bob.id)).await.expect("read")),
        [format!("end_user:{}", bob.id), "end_user_default".into(), "tenant".into()]
    );
    assert!(store.budgets_for(other.id, Some(ann.id)).await.expect("read").is_empty(), "budgets stay in their tenant");
    assert!(store.delete_budget(tenant.id, BudgetScope::EndUserDefault).await.expect("delete"));
    assert!(!store.delete_budget(tenant.id, BudgetScope::EndUserDefault).await.expect("delete again"));

    // Spend: every priced event counts for its tenant and user (day, month) and key (month);
    // unpriced events count nothing; batches add up.
    let yesterday = at("2026-12-02T23:59:59Z");
    store
        .insert_usage_events(&[
            event(tenant.id, ann.id, "openai", Some(0.25), now),
            event(tenant.id, ann.id, "anthropic", Some(0.5), now),
            event(tenant.id, ann.id, "openai", None, now),
            event(tenant.id, bob.id, "openai", Some(1.0), yesterday),
        ])
        .await
        .expect("insert");
    store.insert_usage_events(&[event(tenant.id, ann.id, "openai", Some(0.125), now)]).await.expect("insert");
    let keys = [
        counter(SpendSubject::Tenant, Period::Day, now),
        counter(SpendSubject::Tenant, Period::Month, now),
        counter(SpendSubject::EndUser(ann.id), Period::Day, now),
        counter(SpendSubject::EndUser(ann.id), Period::Month, now),
        counter(SpendSubject::Key { end_user_id: ann.id, provider: "openai".into() }, Period::Month, now),
        counter(SpendSubject::Key { end_user_id: ann.id, provider: "anthropic".into() }, Period::Month, now),
        counter(SpendSubject::EndUser(bob.id), Period::Day, now),
        counter(SpendSubject::EndUser(bob.id), Period::Day, yesterday),
    ];
    let spent = store.spend(tenant.id, &keys).await.expect("spend");
    let want = [0.875, 1.875, 0.875, 0.875, 0.375, 0.5, 0.0, 1.0].map(usd);
    assert_eq!(spent, want);
    assert_eq!(store.spend(other.id, &keys[..2]).await.expect("spend"), [Usd::ZERO, Usd::ZERO]);

    // Alerts fire once per counter and period.
    let ann_day = &keys[2];
    assert!(store.mark_spend_alert(tenant.id, ann_day, SpendAlert::Threshold).await.expect("mark"));
    assert!(!store.mark_spend_alert(tenant.id, ann_day, SpendAlert::Threshold).await.expect("mark again"));
    assert!(store.mark_spend_alert(tenant.id, ann_day, SpendAlert::Exceeded).await.expect("mark"));

    // Erasing an end user takes their budget and counters with them.
    store.delete_end_user(tenant.id, "bob").await.expect("erase");
    assert_eq!(scopes(store.budgets_for(tenant.id, Some(bob.id)).await.expect("read")), ["tenant"]);
    assert_eq!(store.spend(tenant.id, &keys[7..]).await.expect("spend"), [Usd::ZERO]);
    assert_eq!(store.spend(tenant.id, &keys[1..2]).await.expect("spend"), [usd(1.875)], "the tenant's spend stays");
}

#[tokio::test]
async fn postgres_budgets_and_spend() {
    budgets_and_spend(Backend::Postgres).await;
}

#[tokio::test]
async fn sqlite_budgets_and_spend() {
    budgets_and_spend(Backend::Sqlite).await;
}

async fn send(app: &TestApp, method: reqwest::Method, path: &str, body: Option<Value>) -> reqwest::Response {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(&app.api_key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.expect("request")
}

#[tokio::test]
async fn budgets_are_set_read_and_deleted_through_the_api() {
    use reqwest::Method;
    let app = spawn_app(Backend::Sqlite).await;

    let res = send(&app, Method::PUT, "/v1/budgets/tenant", Some(json!({"limitUsd": 25, "period": "month"}))).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["scope"], "tenant");
    assert_eq!(body["limitUsd"], 25.0);
    assert_eq!(body["alertAt"], 0.8);
    assert_eq!(body["spentUsd"], 0.0);
    let resets: DateTime<Utc> = body["resetsAt"].as_str().expect("resetsAt").parse().expect("time");
    assert_eq!(resets, Period::Month.next_start(Utc::now()));

    let res = send(
        &app,
        Method::PUT,
        "/v1/budgets/end-user-default",
        Some(json!({"limitUsd": 0.5, "period": "day", "alertAt": 0.5})),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(
        (body["scope"].as_str(), body["alertAt"].as_f64(), body.get("spentUsd")),
        (Some("end_user_default"), Some(0.5), None)
    );

    // An end user's budget can be set before they exist.
    let res =
        send(&app, Method::PUT, "/v1/users/new%20user/budget", Some(json!({"limitUsd": 2, "period": "day"}))).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!((body["scope"].as_str(), body["endUserLabel"].as_str()), (Some("end_user"), Some("new user")));
    let res = send(&app, Method::GET, "/v1/users/new%20user/budget", None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.expect("json")["limitUsd"], 2.0);

    for (body, code) in [
        (json!({"limitUsd": -1, "period": "day"}), "invalid_amount"),
        (json!({"limitUsd": 1, "period": "week"}), "invalid_period"),
        (json!({"limitUsd": 1, "period": "day", "alertAt": 1.5}), "invalid_alert_at"),
        (json!({"limitUsd": 1, "period": "day", "extra": true}), "invalid_request_body"),
    ] {
        let res = send(&app, Method::PUT, "/v1/budgets/tenant", Some(body)).await;
        assert_error(res, 400, code).await;
    }
    assert_error(send(&app, Method::GET, "/v1/budgets/everyone", None).await, 404, "budget_scope_unknown").await;

    let res = send(&app, Method::DELETE, "/v1/budgets/tenant", None).await;
    assert_eq!(res.status(), 200);
    assert_error(send(&app, Method::GET, "/v1/budgets/tenant", None).await, 404, "budget_not_found").await;
    assert_error(send(&app, Method::DELETE, "/v1/budgets/tenant", None).await, 404, "budget_not_found").await;
    assert_error(send(&app, Method::GET, "/v1/users/nobody/budget", None).await, 404, "enduser_not_found").await;

    // Another tenant sees none of it.
    let (_, other_key) = app.other_tenant().await;
    let res =
        app.client.get(app.url("/v1/budgets/end-user-default")).bearer_auth(other_key).send().await.expect("request");
    assert_error(res, 404, "budget_not_found").await;
}

/// A chat completion for `gpt-4o-mini` reporting 1,000 prompt and 1,000 completion tokens,
/// written in pieces `delay` apart.
fn priced_reply(delay: std::time::Duration) -> Reply {
    let body = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                      "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                      "usage": {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000}});
    Reply::Raw {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
        max_piece: 64,
        delay,
    }
}

async fn chat_at(client: &reqwest::Client, base: &str, rly: &str, user: &str) -> reqwest::Response {
    client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(rly)
        .header("x-relay-user", user)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("send")
}

async fn put_budget_at(client: &reqwest::Client, base: &str, rly: &str, path: &str, limit: f64) -> Value {
    let res = client
        .put(format!("{base}{path}"))
        .bearer_auth(rly)
        .json(&json!({"limitUsd": limit, "period": "day"}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    res.json().await.expect("json")
}

fn refusals(metrics: &str, budget: &str) -> u64 {
    let line = format!("relay_budget_refusals_total{{budget=\"{budget}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&line)).map_or(0, |v| v.trim().parse().expect("count"))
}

/// Moves every day counter one day into the past, as midnight UTC would.
async fn a_day_passes(db: &TestDb) {
    use sqlx::Connection;
    match db.backend {
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.expect("connect");
            sqlx::query("UPDATE spend SET period_start = period_start - interval '1 day' WHERE period = 'day'")
                .execute(&mut c)
                .await
                .expect("update");
        }
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.expect("connect");
            sqlx::query("UPDATE spend SET period_start = period_start - 86400000 WHERE period = 'day'")
                .execute(&mut c)
                .await
                .expect("update");
        }
    }
}

async fn budgets_refuse_calls_once_spent(backend: Backend) {
    let app = spawn_app(backend).await;
    let (base, rly, client) = (app.address.clone(), app.api_key.clone(), app.client.clone());
    app.connect_new_key("ann", "openai").await;
    app.connect_new_key("bob", "openai").await;
    app.mock.reply(priced_reply(std::time::Duration::from_millis(5)));

    // One call, priced from the table: what the rest of the test counts in.
    put_budget_at(&client, &base, &rly, "/v1/users/ann/budget", 1000.0).await;
    assert_eq!(chat_at(&client, &base, &rly, "ann").await.status(), 200);
    let spent =
        put_budget_at(&client, &base, &rly, "/v1/users/ann/budget", 1000.0).await["spentUsd"].as_f64().expect("spent");
    assert!(spent > 0.0, "the call cost something: {spent}");

    // Ann may spend three calls a day: two more go through, the next is refused before the
    // provider is called.
    put_budget_at(&client, &base, &rly, "/v1/users/ann/budget", spent * 3.0).await;
    for _ in 0..2 {
        assert_eq!(chat_at(&client, &base, &rly, "ann").await.status(), 200);
    }
    let sent = app.mock.requests().len();
    let res = chat_at(&client, &base, &rly, "ann").await;
    assert!(res.headers().contains_key("x-relay-request-id"));
    let body = assert_error(res, 402, "budget_exceeded").await;
    assert_eq!(body["error"]["type"], "insufficient_quota");
    let message = body["error"]["message"].as_str().expect("message");
    let tomorrow = Period::Day.next_start(Utc::now()).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert!(message.contains("daily budget") && message.contains(&tomorrow), "{message}");
    assert_eq!(app.mock.requests().len(), sent, "a refused call never reaches the provider");

    // The official SDK, left to its default retries, raises at once.
    let metrics = |app: &TestApp| {
        let (client, url) = (app.client.clone(), app.url("/metrics"));
        async move { client.get(url).send().await.expect("metrics").text().await.expect("text") }
    };
    let before = refusals(&metrics(&app).await, "end_user");
    let job = json!({"base_url": base, "api_key": rly, "user": "ann", "max_retries": 2,
                     "request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}});
    let got = relay_tests::sdk::run(relay_tests::sdk::Sdk::Python, job).await;
    assert_eq!(
        (got["error"]["status"].as_u64(), got["error"]["code"].as_str()),
        (Some(402), Some("budget_exceeded")),
        "{got}"
    );
    assert_eq!(refusals(&metrics(&app).await, "end_user"), before + 1, "the SDK did not retry");

    // Bob has no budget; a tenant-wide budget that is spent stops him too.
    assert_eq!(chat_at(&client, &base, &rly, "bob").await.status(), 200);
    put_budget_at(&client, &base, &rly, "/v1/budgets/tenant", spent * 4.0).await;
    let body = assert_error(chat_at(&client, &base, &rly, "bob").await, 402, "budget_exceeded").await;
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("Your app's daily budget"), "{body}");

    // A new period lets calls through again.
    a_day_passes(&app.db).await;
    assert_eq!(chat_at(&client, &base, &rly, "bob").await.status(), 200);
    assert_eq!(chat_at(&client, &base, &rly, "ann").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_budgets_refuse_calls_once_spent() {
    budgets_refuse_calls_once_spent(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_budgets_refuse_calls_once_spent() {
    budgets_refuse_calls_once_spent(Backend::Sqlite).await;
}

/// Two `relay serve` processes on one PostgreSQL: 20 calls, four at a time across both nodes,
/// against a budget that allows five; at most the calls in flight (four) overshoot it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_hold_one_budget() {
    use futures::StreamExt;
    use relay_tests::process::{run_cli, ServerProcess};
    use relay_tests::MockProvider;

    const IN_FLIGHT: usize = 4;
    let db = TestDb::new(Backend::Postgres).await;
    let mock = MockProvider::start().await;
    mock.answer_every_request(Some(priced_reply(std::time::Duration::from_millis(20))));
    let master = run_cli(&["kek", "generate"], &[], None).1.trim().to_owned();
    let env_owned: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), db.url.clone()),
        ("RELAY_MASTER_KEYS".into(), master),
        ("RELAY_UPSTREAM_OPENAI".into(), mock.url.clone()),
        ("RELAY_ALLOW_UPSTREAM_HOSTS".into(), "127.0.0.1".into()),
        ("RELAY_RATE_LIMIT_REGISTRATION".into(), "off".into()),
    ];
    let env: Vec<(&str, &str)> = env_owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let created: Value =
        serde_json::from_str(&run_cli(&["tenant", "create", "--name", "T", "--json"], &env, None).1).expect("json");
    let rly = created["apiKey"].as_str().expect("key").to_owned();
    let a = ServerProcess::start(&env, None);
    let b = ServerProcess::start(&env, None);
    let client = reqwest::Client::new();

    let token = a.registration_token(&client, &rly, "ann").await;
    let key = relay_tests::fake_keys::for_provider("openai");
    let res = client
        .post(a.url("/v1/connect"))
        .json(&json!({"registrationToken": token, "provider": "openai", "apiKey": key}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap_or_default());

    let base_a = a.url("");
    put_budget_at(&client, &base_a, &rly, "/v1/users/ann/budget", 1000.0).await;
    assert_eq!(chat_at(&client, &base_a, &rly, "ann").await.status(), 200);
    let one = put_budget_at(&client, &base_a, &rly, "/v1/users/ann/budget", 1000.0).await["spentUsd"]
        .as_f64()
        .expect("spent");
    assert!(one > 0.0);
    put_budget_at(&client, &base_a, &rly, "/v1/users/ann/budget", one * 6.0).await;

    let bases = [a.url(""), b.url("")];
    let statuses: Vec<u16> = futures::stream::iter(0..20)
        .map(|i| {
            let (client, base, rly) = (client.clone(), bases[i % 2].clone(), rly.clone());
            async move { chat_at(&client, &base, &rly, "ann").await.status().as_u16() }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 402).count();
    assert_eq!(ok + refused, 20, "{statuses:?}");
    eprintln!("two nodes, {IN_FLIGHT} calls in flight: {ok} of 20 went through against a budget for 5");
    assert!((5..=5 + IN_FLIGHT).contains(&ok), "5 allowed, at most {IN_FLIGHT} more in flight: {ok} went through");
    let spent = put_budget_at(&client, &b.url(""), &rly, "/v1/users/ann/budget", one * 6.0).await["spentUsd"]
        .as_f64()
        .expect("spent");
    assert!((spent / one - (1 + ok) as f64).abs() < 1e-6, "every call that went through was counted once: {spent}");
    drop((a, b));
}

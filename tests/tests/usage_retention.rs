//! Usage under retention: `GET /v1/usage` answers the same from daily roll-ups (whole days) as
//! from raw events (parts of days), and pruning removes old events and spend counters while the
//! roll-ups stay and still add up; ended console sessions go in the same round.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use relay::domain::money::Period;
use relay::retention::Retention;
use relay::store::{SpendKey, SpendSubject, UsageEvent};
use relay_tests::{spawn_app, Backend, TestApp};
use serde_json::Value;
use uuid::Uuid;

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(relay_tests::Backend::Postgres).await } )* }
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(relay_tests::Backend::Sqlite).await } )* }
    };
}

both_backends!(
    rollups_answer_as_raw_events_do,
    pruning_keeps_rollups_that_add_up,
    migration_backfills_rollups,
    pruning_deletes_ended_console_sessions,
);

#[allow(clippy::too_many_arguments)]
fn event(
    tenant_id: Uuid,
    end_user_id: Option<Uuid>,
    provider: &str,
    model: &str,
    status: u16,
    tokens: Option<(u64, u64)>,
    cost_nanos: Option<i64>,
    latency_ms: u64,
    created_at: DateTime<Utc>,
) -> UsageEvent {
    UsageEvent {
        id: Uuid::new_v4(),
        tenant_id,
        end_user_id,
        api_key_id: None,
        provider: provider.into(),
        model: model.into(),
        endpoint: "chat".into(),
        status,
        paid: true,
        prompt_tokens: tokens.map(|t| t.0),
        completion_tokens: tokens.map(|t| t.1),
        cached_tokens: tokens.map(|_| 1),
        cache_write_tokens: None,
        reasoning_tokens: None,
        cost_nanos,
        latency_ms,
        ttft_ms: None,
        created_at,
    }
}

/// A varied workload over `days` days from `first_day`: three end users and none, two
/// providers, errors, unpriced calls, spread-out latencies; never on a midnight.
async fn workload(app: &TestApp, first_day: DateTime<Utc>, days: i64) -> (Vec<UsageEvent>, BTreeMap<Uuid, String>) {
    let mut users = BTreeMap::new();
    for label in ["ann", "ben", "cyd"] {
        let u = app.store.upsert_end_user(app.tenant_id, label, Utc::now()).await.expect("user");
        users.insert(u.id, label.to_owned());
    }
    let ids: Vec<Uuid> = users.keys().copied().collect();
    let mut events = Vec::new();
    for i in 0..(days * 40) {
        let at = first_day + chrono::Duration::minutes(i * 36 + 7);
        let user = if i % 5 == 4 { None } else { Some(ids[(i % 3) as usize]) };
        let (provider, model) = if i % 4 == 0 { ("anthropic", "claude-haiku-4-5") } else { ("openai", "gpt-4o-mini") };
        let status = if i % 7 == 0 { 429 } else { 200 };
        let tokens = (status == 200).then_some((10 + (i as u64 % 13), 3 + (i as u64 % 5)));
        let cost = tokens.filter(|_| i % 6 != 0).map(|(p, c)| (p * 150 + c * 600) as i64);
        let latency = 50 + (i as u64 * 7919) % 1000;
        events.push(event(app.tenant_id, user, provider, model, status, tokens, cost, latency, at));
    }
    // Small batches: most add to roll-up rows an earlier batch created.
    for batch in events.chunks(7) {
        app.store.insert_usage_batch(batch).await.expect("insert");
    }
    (events, users)
}

async fn report(app: &TestApp, from: DateTime<Utc>, to: DateTime<Utc>, extra: &str) -> Value {
    let query = format!(
        "from={}&to={}{extra}",
        from.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        to.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    let res = app
        .client
        .get(app.url(&format!("/v1/usage?{}", query.replace('+', "%2B"))))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    res.json().await.expect("json")
}

fn nearest_rank(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A bucket as the report computed it before roll-ups, straight from the events.
fn expected_bucket(key: &str, events: &[&UsageEvent]) -> Value {
    let mut latencies: Vec<u64> = events.iter().map(|e| e.latency_ms).collect();
    latencies.sort_unstable();
    let cost: i64 = events.iter().filter_map(|e| e.cost_nanos).sum();
    serde_json::json!({
        "key": key,
        "requests": events.len(),
        "errors": events.iter().filter(|e| e.status == 0 || e.status >= 400).count(),
        "promptTokens": events.iter().filter_map(|e| e.prompt_tokens).sum::<u64>(),
        "completionTokens": events.iter().filter_map(|e| e.completion_tokens).sum::<u64>(),
        "costUsd": cost as f64 / 1e9,
        "unpricedCalls": events.iter().filter(|e| e.cost_nanos.is_none() && e.prompt_tokens.is_some()).count(),
        "latencyMs": {"p50": nearest_rank(&latencies, 0.5), "p95": nearest_rank(&latencies, 0.95)},
    })
}

fn expected(
    events: &[UsageEvent],
    users: &BTreeMap<Uuid, String>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    group: &str,
) -> (Value, Value) {
    let mut groups: BTreeMap<String, Vec<&UsageEvent>> = BTreeMap::new();
    let mut all = Vec::new();
    for e in events.iter().filter(|e| e.created_at >= from && e.created_at < to) {
        let key = match group {
            "day" => e.created_at.format("%Y-%m-%d").to_string(),
            "model" => e.model.clone(),
            "provider" => e.provider.clone(),
            _ => match e.end_user_id.and_then(|id| users.get(&id)) {
                Some(label) => label.clone(),
                None => continue,
            },
        };
        groups.entry(key).or_default().push(e);
        all.push(e);
    }
    let data: Vec<Value> = groups.iter().map(|(k, v)| expected_bucket(k, v)).collect();
    (expected_bucket("total", &all), Value::Array(data))
}

async fn rollups_answer_as_raw_events_do(backend: Backend) {
    let app = spawn_app(backend).await;
    let first_day = Period::Day.start(Utc::now()) - chrono::Duration::days(6);
    let (events, users) = workload(&app, first_day, 4).await;
    let day = |n: i64| first_day + chrono::Duration::days(n);
    let ms = chrono::Duration::milliseconds(1);
    for group in ["day", "model", "provider", "endUser"] {
        let extra = format!("&groupBy={group}");
        // Whole days (roll-ups only), whole days with a partial day at either end (both), and
        // parts of one day (raw events only): each exactly as computed from the events.
        for (from, to) in [
            (day(0), day(4)),
            (day(0) + ms, day(4) - ms),
            (day(1) + chrono::Duration::hours(5), day(3) + chrono::Duration::hours(7)),
            (day(2) + chrono::Duration::hours(3), day(2) + chrono::Duration::hours(21)),
        ] {
            let body = report(&app, from, to, &extra).await;
            let (total, data) = expected(&events, &users, from, to, group);
            assert_eq!(body["total"], total, "total, {group}, {from} .. {to}");
            assert_eq!(body["data"], data, "data, {group}, {from} .. {to}");
        }
    }
    // One end user, through roll-ups and raw events alike.
    let ann = users.iter().find(|(_, l)| *l == "ann").map(|(id, _)| *id).expect("ann");
    let mine: Vec<UsageEvent> = events.iter().filter(|e| e.end_user_id == Some(ann)).cloned().collect();
    for (from, to) in [(day(0), day(4)), (day(0) + chrono::Duration::hours(13), day(4) - ms)] {
        let body = report(&app, from, to, "&groupBy=model&endUserLabel=ann").await;
        let (total, data) = expected(&mine, &users, from, to, "model");
        assert_eq!((&body["total"], &body["data"]), (&total, &data));
    }
    // Erasing an end user takes their usage, roll-ups included.
    assert_eq!(app.delete_user("ben").await.status(), 200);
    let left: Vec<UsageEvent> = events
        .iter()
        .filter(|e| users.get(&e.end_user_id.unwrap_or_default()).is_none_or(|l| l != "ben"))
        .cloned()
        .collect();
    let body = report(&app, day(0), day(4), "&groupBy=endUser").await;
    let (total, data) = expected(&left, &users, day(0), day(4), "endUser");
    assert_eq!((&body["total"], &body["data"]), (&total, &data));
}

async fn pruning_keeps_rollups_that_add_up(backend: Backend) {
    let app = spawn_app(backend).await;
    let now = Utc::now();
    let today = Period::Day.start(now);
    let old = today - chrono::Duration::days(200);
    let older_than_raw = today - chrono::Duration::days(120);
    let recent = today - chrono::Duration::days(1);
    let user = app.store.upsert_end_user(app.tenant_id, "ann", now).await.expect("user");
    let mut events = Vec::new();
    for (n, day) in [old, older_than_raw, recent].into_iter().enumerate() {
        for i in 0..7u64 {
            let at = day + chrono::Duration::hours(1 + i as i64);
            let user = (i % 2 == 0).then_some(user.id);
            events.push(event(
                app.tenant_id,
                user,
                "openai",
                "gpt-4o-mini",
                200,
                Some((10 + i, 2)),
                Some(1_000 * (n as i64 + 1)),
                100 + i,
                at,
            ));
        }
    }
    app.store.insert_usage_batch(&events).await.expect("insert");
    let old_month = SpendKey { subject: SpendSubject::Tenant, period: Period::Month, start: Period::Month.start(old) };
    let old_day = SpendKey { subject: SpendSubject::EndUser(user.id), period: Period::Day, start: old };
    let recent_day = SpendKey { subject: SpendSubject::Tenant, period: Period::Day, start: recent };
    let spent =
        app.store.spend(app.tenant_id, &[old_month.clone(), old_day.clone(), recent_day.clone()]).await.expect("spend");
    assert!(spent.iter().all(|s| s.nanos() > 0), "{spent:?}");

    let before: Value = report(&app, old, today, "&groupBy=day").await;
    let metrics = relay::metrics::Metrics::new().expect("metrics");
    // Batches of 3 rows: several statements per table.
    let retention = Retention::new(90, 0).expect("retention");
    let pruned = relay::retention::prune(&app.store, &metrics, retention, now, 3, Duration::ZERO).await;
    assert_eq!(pruned.usage_events, 14, "{pruned:?}");
    assert_eq!(pruned.usage_daily, 0);
    assert!(pruned.spend >= 2, "{pruned:?}");
    let kept = app.store.list_usage_events(app.tenant_id, 100).await.expect("events");
    assert_eq!(kept.len(), 7);
    assert!(kept.iter().all(|e| e.created_at >= recent));
    assert!(metrics.render().contains("relay_usage_pruned_rows_total{table=\"usage_events\"} 14"));

    // The roll-ups still answer for the pruned days, with the same sums (latency percentiles
    // need the raw events: none are left for those days).
    let after: Value = report(&app, old, today, "&groupBy=day").await;
    let sums = ["requests", "errors", "promptTokens", "completionTokens", "costUsd", "unpricedCalls"];
    for field in sums {
        assert_eq!(after["total"][field], before["total"][field], "{field}");
    }
    let days = after["data"].as_array().expect("data");
    assert_eq!(days.len(), 3);
    for (bucket, before) in days.iter().zip(before["data"].as_array().expect("data")) {
        for field in sums {
            assert_eq!(bucket[field], before[field], "{field} of {}", bucket["key"]);
        }
        assert_eq!(bucket["requests"], 7);
    }
    let total_cost: i64 = events.iter().filter_map(|e| e.cost_nanos).sum();
    assert_eq!(after["total"]["costUsd"].as_f64(), Some(total_cost as f64 / 1e9));
    let body = report(&app, old, today, "&groupBy=endUser").await;
    assert_eq!(body["total"]["requests"], 12, "ann's calls on three days, from roll-ups and raw events");

    // Spend counters of past periods are gone; the current ones stay.
    let spent = app.store.spend(app.tenant_id, &[old_month, old_day, recent_day]).await.expect("spend");
    assert_eq!(spent.iter().map(|s| s.nanos()).collect::<Vec<_>>()[..2], [0, 0]);
    assert_eq!(spent[2].nanos(), 7 * 3_000);

    // Roll-ups go after their own retention; a second round finds nothing more to do.
    let retention = Retention::new(90, 150).expect("retention");
    let pruned = relay::retention::prune(&app.store, &metrics, retention, now, 3, Duration::ZERO).await;
    assert_eq!((pruned.usage_events, pruned.usage_daily), (0, 2), "{pruned:?}");
    let body = report(&app, old, today, "&groupBy=day").await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["total"]["requests"], 14);
}

/// Migration 0009 back-fills the roll-ups from the events stored before it: run on events whose
/// roll-ups are gone, its INSERT restores the same report.
async fn migration_backfills_rollups(backend: Backend) {
    let app = spawn_app(backend).await;
    let first_day = Period::Day.start(Utc::now()) - chrono::Duration::days(5);
    workload(&app, first_day, 3).await;
    let (from, to) = (first_day, first_day + chrono::Duration::days(3));
    let before = report(&app, from, to, "&groupBy=endUser").await;
    let before_by_day = report(&app, from, to, "&groupBy=day").await;
    assert_eq!(before_by_day["total"]["requests"], 120);
    let migration = match backend {
        Backend::Postgres => include_str!("../../migrations/postgres/0009_usage_retention.sql"),
        Backend::Sqlite => include_str!("../../migrations/sqlite/0009_usage_retention.sql"),
    };
    let backfill = &migration[migration.find("INSERT INTO usage_daily").expect("the back-fill")..];
    let run = |statement: &'static str| {
        let url = app.db.url.clone();
        async move {
            match backend {
                Backend::Postgres => {
                    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
                    sqlx::query(statement).execute(&pool).await.expect("statement");
                }
                Backend::Sqlite => {
                    let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
                    sqlx::query(statement).execute(&pool).await.expect("statement");
                }
            }
        }
    };
    run("DELETE FROM usage_daily").await;
    let emptied = report(&app, from, to, "&groupBy=endUser").await;
    assert_eq!(emptied["total"]["requests"], 0, "whole days come from the roll-ups only");
    run(backfill).await;
    assert_eq!(report(&app, from, to, "&groupBy=endUser").await, before);
    assert_eq!(report(&app, from, to, "&groupBy=day").await, before_by_day);
}

/// The hourly round deletes console sessions past their idle end (30 minutes) and keeps live ones.
async fn pruning_deletes_ended_console_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = relay::console::Email::parse("member@example.com").expect("email");
    let password = secrecy::SecretString::from("a long enough passphrase");
    let role = Some((app.tenant_id, relay::store::console::Role::Viewer));
    relay::console::create_account(&app.store, &email, password, false, role).await.expect("account");
    let res = app
        .client
        .post(app.url("/console/api/sign-in"))
        .json(&serde_json::json!({"email": "member@example.com", "password": "a long enough passphrase"}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("pair").to_owned();
    let me = || app.client.get(app.url("/console/api/me")).header("cookie", &cookie).send();

    let metrics = relay::metrics::Metrics::new().expect("metrics");
    let retention = Retention::default();
    let pruned = relay::retention::prune(&app.store, &metrics, retention, Utc::now(), 3, Duration::ZERO).await;
    assert_eq!(pruned.console_sessions, 0, "a live session stays");
    assert_eq!(me().await.expect("send").status(), 200);

    let later = Utc::now() + chrono::Duration::minutes(31);
    let pruned = relay::retention::prune(&app.store, &metrics, retention, later, 3, Duration::ZERO).await;
    assert_eq!(pruned.console_sessions, 1, "{pruned:?}");
    assert!(metrics.render().contains("relay_usage_pruned_rows_total{table=\"console_sessions\"} 1"));
    assert_eq!(me().await.expect("send").status(), 401);
}

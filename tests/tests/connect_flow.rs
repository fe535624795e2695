//! The developer-backend and widget flow over HTTP, on PostgreSQL and SQLite: registration token
//! → describe → connect (checked by the mock provider) → user view → deletion; the token is
//! single-use even under 100 concurrent redemptions.

use relay_tests::app::{assert_error, spawn_app, TestApp};
use relay_tests::{fake_keys, Backend};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(relay_tests::Backend::Postgres).await } )* }
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(relay_tests::Backend::Sqlite).await } )* }
    };
}

both_backends!(
    full_flow,
    each_provider_gets_its_key_its_way,
    concurrent_redemptions_exactly_one_wins,
    rejected_key_is_not_stored_and_token_stays_usable,
    provider_down_stores_nothing,
    provider_lock_is_enforced,
    deleting_a_user_erases_everything,
    tenants_are_isolated,
);

async fn full_flow(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = fake_keys::for_provider("anthropic");
    app.mock.accept(&key);

    let res = app.create_registration_token(&json!({"endUserLabel": "ana@example.com", "provider": "anthropic"})).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.expect("json");
    let token = created["registrationToken"].as_str().expect("token").to_owned();
    assert!(token.starts_with("rrt-"));
    assert_eq!(created["endUserLabel"], "ana@example.com");
    assert_eq!(created["provider"], "anthropic");
    let expires: chrono::DateTime<chrono::Utc> =
        created["expiresAt"].as_str().expect("expiresAt").parse().expect("rfc3339");
    let ttl = expires - chrono::Utc::now();
    assert!(ttl > chrono::Duration::minutes(14) && ttl <= chrono::Duration::minutes(15), "default TTL is 15 min");

    // Describing the token does not use it.
    for _ in 0..2 {
        let res = app.describe_token(&token).await;
        assert_eq!(res.status(), 200);
        let d: Value = res.json().await.expect("json");
        assert_eq!(d["provider"], "anthropic");
        assert_eq!(d["providers"], json!(["anthropic"]));
        assert_eq!(d["appName"], "Test App");
    }

    let res = app.connect(&token, "anthropic", &format!("  {key}\n")).await;
    assert_eq!(res.status(), 200, "pasted keys are trimmed");
    let body = res.text().await.expect("body");
    assert!(!body.contains(&key));
    let done: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(done["provider"], "anthropic");
    let fingerprint = done["fingerprint"].as_str().expect("fingerprint").to_owned();
    assert_eq!(fingerprint, format!("sk-ant-…{}", &key[key.len() - 4..]));

    let res = app.get_user("ana@example.com").await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.expect("body");
    assert!(!body.contains(&key), "the user view never holds the key");
    let user: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(user["endUserLabel"], "ana@example.com");
    assert_eq!(user["paid"], true);
    let providers = user["providers"].as_array().expect("providers");
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0]["provider"], "anthropic");
    assert_eq!(providers[0]["fingerprint"], fingerprint.as_str());
    assert!(providers[0]["createdAt"].is_string());
    assert!(providers[0]["lastUsedAt"].is_null());

    // The stored key opens to exactly what was pasted (trimmed), for this user only.
    let (_, opened) = keys(&app)
        .open(&app.end_user("ana@example.com").await, relay::providers::ProviderId::Anthropic)
        .await
        .expect("open");
    assert_eq!(opened.expose_secret(), key);

    // The token is spent.
    assert_error(app.connect(&token, "anthropic", &key).await, 410, "registration_token_used").await;
    assert_error(app.describe_token(&token).await, 410, "registration_token_used").await;

    // Removing the key.
    let res = app.delete_key("ana@example.com", "anthropic").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.expect("json")["deleted"], true);
    let user: Value = app.get_user("ana@example.com").await.json().await.expect("json");
    assert_eq!(user["providers"], json!([]));
    assert_error(app.delete_key("ana@example.com", "anthropic").await, 404, "enduser_key_missing").await;

    let audit = app.store.list_audit(Some(app.tenant_id), 50).await.expect("audit");
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"provider_key.connect") && actions.contains(&"provider_key.delete"), "{actions:?}");
    assert!(
        audit.iter().all(|e| !e.target.as_deref().unwrap_or("").contains("ana@")),
        "audit targets are ids, not labels"
    );
}

fn keys(app: &TestApp) -> relay::keys::KeyService {
    let vault = relay::vault::Vault::new(std::sync::Arc::new(
        relay::vault::LocalKeyring::parse(&secrecy::SecretString::from(app.master_keys.clone())).expect("keyring"),
    ));
    let upstreams = relay::upstream::Upstreams::new(&Default::default(), &Default::default()).expect("upstreams");
    relay::keys::KeyService::new(app.store.clone(), vault, upstreams, false)
}

async fn each_provider_gets_its_key_its_way(backend: Backend) {
    let app = spawn_app(backend).await;
    for provider in ["openai", "anthropic", "google", "groq", "mistral", "openrouter"] {
        let key = app.connect_new_key(&format!("user-{provider}"), provider).await;
        let seen = app.mock.requests();
        let check = seen.last().expect("the provider was asked");
        assert_eq!(check.method, "GET");
        match provider {
            "anthropic" => {
                assert_eq!(check.header("x-api-key"), Some(key.as_str()));
                assert!(check.header("anthropic-version").is_some());
                assert_eq!(check.path, "/v1/models");
            }
            "google" => {
                assert_eq!(check.header("x-goog-api-key"), Some(key.as_str()));
                assert_eq!(check.path, "/v1beta/models");
            }
            _ => assert_eq!(check.header("authorization"), Some(format!("Bearer {key}").as_str())),
        }
        match provider {
            "openrouter" => assert_eq!(check.path, "/v1/key"),
            "openai" | "groq" | "mistral" => assert_eq!(check.path, "/v1/models"),
            _ => {}
        }
        assert!(!check.query.contains(&key) && !check.path.contains(&key), "a key never goes into a URL");
        // No other credential header goes along.
        let credential_headers = ["authorization", "x-api-key", "x-goog-api-key"];
        let present = credential_headers.iter().filter(|h| check.header(h).is_some()).count();
        assert_eq!(present, 1, "exactly one credential header for {provider}");
    }
}

async fn concurrent_redemptions_exactly_one_wins(backend: Backend) {
    let app = std::sync::Arc::new(spawn_app(backend).await);
    let token = app.registration_token("racer", None).await;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let app = app.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let key = fake_keys::for_provider("openai");
            app.mock.accept(&key);
            let res = app.connect(&token, "openai", &key).await;
            let status = res.status().as_u16();
            let body: Value = res.json().await.expect("json");
            (status, key, body)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (status, key, body) = t.await.expect("task");
        match status {
            200 => winners.push((key, body)),
            410 => assert_eq!(body["error"]["code"], "registration_token_used"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one redemption succeeds");
    let (winning_key, body) = &winners[0];
    let user = app.end_user("racer").await;
    let stored = app.store.list_provider_keys(user.id).await.expect("list");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].fingerprint, body["fingerprint"].as_str().expect("fp"));
    let (_, opened) = keys(&app).open(&user, relay::providers::ProviderId::OpenAi).await.expect("open");
    assert_eq!(opened.expose_secret(), winning_key, "the stored key is the winner's");
}

async fn rejected_key_is_not_stored_and_token_stays_usable(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.registration_token("bob", None).await;
    let bad = fake_keys::for_provider("groq");
    let body = assert_error(app.connect(&token, "groq", &bad).await, 400, "provider_key_rejected").await;
    assert_eq!(body["error"]["param"], "apiKey");
    assert!(!body.to_string().contains(&bad));
    let user = app.end_user("bob").await;
    assert!(app.store.list_provider_keys(user.id).await.expect("list").is_empty());

    let malformed = "sk-definitely-not-a-groq-key";
    let body = assert_error(app.connect(&token, "groq", malformed).await, 400, "provider_key_malformed").await;
    assert!(!body.to_string().contains(malformed), "errors never quote the key");

    let good = fake_keys::for_provider("groq");
    app.mock.accept(&good);
    assert_eq!(app.connect(&token, "groq", &good).await.status(), 200, "the token survived the rejections");
}

async fn provider_down_stores_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.registration_token("carol", None).await;
    let key = fake_keys::for_provider("mistral");
    app.mock.accept(&key);
    for status in [500, 503, 429] {
        app.mock.fail_with(Some(status));
        assert_error(app.connect(&token, "mistral", &key).await, 502, "provider_unavailable").await;
    }
    app.mock.fail_with(None);
    let user = app.end_user("carol").await;
    assert!(app.store.list_provider_keys(user.id).await.expect("list").is_empty());
    assert_eq!(app.connect(&token, "mistral", &key).await.status(), 200);
}

async fn provider_lock_is_enforced(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.registration_token("dan", Some("google")).await;
    let key = fake_keys::for_provider("openai");
    app.mock.accept(&key);
    let body = assert_error(app.connect(&token, "openai", &key).await, 400, "provider_mismatch").await;
    assert_eq!(body["error"]["param"], "provider");
    let gkey = fake_keys::for_provider("google");
    app.mock.accept(&gkey);
    assert_eq!(app.connect(&token, "google", &gkey).await.status(), 200);
}

async fn deleting_a_user_erases_everything(backend: Backend) {
    let app = spawn_app(backend).await;
    app.connect_new_key("erin", "openai").await;
    app.connect_new_key("erin", "anthropic").await;
    let pending = app.registration_token("erin", None).await;
    let user = app.end_user("erin").await;

    let res = app.delete_user("erin").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.expect("json"), json!({"endUserLabel": "erin", "deleted": true}));
    assert_error(app.get_user("erin").await, 404, "enduser_not_found").await;
    assert!(app.store.list_provider_keys(user.id).await.expect("list").is_empty());
    assert_error(app.describe_token(&pending).await, 404, "registration_token_invalid").await;
    let key = fake_keys::for_provider("openai");
    app.mock.accept(&key);
    assert_error(app.connect(&pending, "openai", &key).await, 404, "registration_token_invalid").await;
    assert_error(app.delete_user("erin").await, 404, "enduser_not_found").await;
}

async fn tenants_are_isolated(backend: Backend) {
    let app = spawn_app(backend).await;
    app.connect_new_key("shared-label", "openai").await;
    let (_other_id, other_key) = app.other_tenant().await;
    // The other tenant does not see, and cannot delete, this tenant's user.
    assert_error(app.get_user_as(&other_key, "shared-label").await, 404, "enduser_not_found").await;
    let res =
        app.client.delete(app.url("/v1/users/shared-label")).bearer_auth(&other_key).send().await.expect("request");
    assert_error(res, 404, "enduser_not_found").await;
    // The same label in the other tenant is another person.
    let res = app.create_registration_token_as(&other_key, &json!({"endUserLabel": "shared-label"})).await;
    assert_eq!(res.status(), 201);
    let theirs: Value = app.get_user_as(&other_key, "shared-label").await.json().await.expect("json");
    assert_eq!(theirs["providers"], json!([]));
    let ours: Value = app.get_user("shared-label").await.json().await.expect("json");
    assert_eq!(ours["providers"].as_array().map(Vec::len), Some(1));
}

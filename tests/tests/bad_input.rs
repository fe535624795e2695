//! Bad input, table-tested: every case gets an OpenAI-shaped error with the right status, a
//! stable code and a server-made request id, and changes nothing stored.

use relay::auth::tokens::{append_checksum, generate_api_key, generate_registration_token};
use relay::store::NewRegistrationToken;
use relay_tests::app::{assert_error, spawn_app_with, SpawnOptions, TestApp};
use relay_tests::{fake_keys, Backend};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(relay_tests::Backend::Postgres).await } )* }
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(relay_tests::Backend::Sqlite).await } )* }
    };
}

both_backends!(developer_keys, registration_token_bodies, connect_bodies, user_routes, routing_errors);

const BODY_LIMIT: usize = 16 * 1024;

async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, SpawnOptions { max_body_bytes: BODY_LIMIT, ..SpawnOptions::default() }).await
}

async fn developer_keys(backend: Backend) {
    let app = app(backend).await;
    let url = app.url("/v1/registration-tokens");
    let body = json!({"endUserLabel": "x"});
    let send = |auth: Option<String>| {
        let mut req = app.client.post(&url).json(&body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };

    assert_error(send(None).await.expect("send"), 401, "relay_key_missing").await;
    assert_error(send(Some("Bearer ".into())).await.expect("send"), 401, "relay_key_missing").await;
    assert_error(send(Some(format!("Basic {}", app.api_key))).await.expect("send"), 401, "relay_key_invalid").await;
    assert_error(send(Some("Bearer rly-nonsense".into())).await.expect("send"), 401, "relay_key_invalid").await;
    assert_error(send(Some("Bearer sk-proj-abc".into())).await.expect("send"), 401, "relay_key_invalid").await;

    // Well-formed keys that were never issued, or the right public id with a wrong secret.
    let (never_issued, _) = generate_api_key();
    assert_error(
        send(Some(format!("Bearer {}", never_issued.expose_secret()))).await.expect("send"),
        401,
        "relay_key_invalid",
    )
    .await;
    let real = &app.api_key;
    let forged = append_checksum(&format!("{}{}", &real[..16], "A".repeat(44)));
    assert_error(send(Some(format!("Bearer {forged}"))).await.expect("send"), 401, "relay_key_invalid").await;
    // A typo breaks the checksum.
    let mut typo = real.clone().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");
    assert_error(send(Some(format!("Bearer {typo}"))).await.expect("send"), 401, "relay_key_invalid").await;

    // A registration token is not a developer key.
    let token = app.registration_token("x", None).await;
    assert_error(send(Some(format!("Bearer {token}"))).await.expect("send"), 401, "relay_key_invalid").await;

    // Revoked keys stop working at once.
    let extra = relay::tenants::create_api_key(&app.store, app.tenant_id, Some("extra"), "test").await.expect("key");
    let extra_key = extra.secret.expose_secret().to_owned();
    assert_eq!(send(Some(format!("Bearer {extra_key}"))).await.expect("send").status(), 201);
    assert!(relay::tenants::revoke_api_key(&app.store, app.tenant_id, &extra.record.public_id, "test")
        .await
        .expect("revoke"));
    assert_error(send(Some(format!("Bearer {extra_key}"))).await.expect("send"), 401, "relay_key_revoked").await;
    // The tenant's other key is unaffected.
    assert_eq!(send(Some(format!("Bearer {}", app.api_key))).await.expect("send").status(), 201);

    // A client-sent request id is not trusted.
    let res = app
        .client
        .post(&url)
        .header("x-request-id", "attacker-chosen")
        .header("x-relay-request-id", "attacker-chosen")
        .json(&body)
        .send()
        .await
        .expect("send");
    let id = res.headers().get("x-relay-request-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(id.starts_with("req_") && id != "attacker-chosen");
}

async fn registration_token_bodies(backend: Backend) {
    let app = app(backend).await;
    app.connect_new_key("existing", "openai").await;

    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (json!({}), 400, "invalid_request_body", None),
        (json!({"endUserLabel": ""}), 400, "invalid_end_user_label", Some("endUserLabel")),
        (json!({"endUserLabel": "x".repeat(129)}), 400, "invalid_end_user_label", Some("endUserLabel")),
        (json!({"endUserLabel": "line\nbreak"}), 400, "invalid_end_user_label", Some("endUserLabel")),
        (json!({"endUserLabel": "nul\u{0}byte"}), 400, "invalid_end_user_label", Some("endUserLabel")),
        (json!({"endUserLabel": "bidi\u{202E}flip"}), 400, "invalid_end_user_label", Some("endUserLabel")),
        (json!({"endUserLabel": " padded"}), 400, "invalid_end_user_label", Some("endUserLabel")),
        (json!({"endUserLabel": 42}), 400, "invalid_request_body", None),
        (json!({"endUserLabel": "ok", "expiresIn": "echo-me-not"}), 400, "invalid_request_body", None),
        (json!({"endUserLabel": "ok", "provider": "openai-but-not"}), 400, "provider_unknown", Some("provider")),
        (json!({"endUserLabel": "ok", "provider": "OpenAI"}), 400, "provider_unknown", Some("provider")),
        (json!({"endUserLabel": "ok", "expiresIn": 0}), 400, "invalid_expires_in", Some("expiresIn")),
        (json!({"endUserLabel": "ok", "expiresIn": 86401}), 400, "invalid_expires_in", Some("expiresIn")),
        (json!({"endUserLabel": "ok", "expiresIn": -5}), 400, "invalid_expires_in", Some("expiresIn")),
        (json!({"endUserLabel": "ok", "expires_in": 60}), 400, "invalid_request_body", None),
        (json!(["endUserLabel"]), 400, "invalid_request_body", None),
    ];
    for (body, status, code, param) in cases {
        let res = app.create_registration_token(&body).await;
        let err = assert_error(res, status, code).await;
        assert!(!err.to_string().contains("echo-me-not"), "client strings are not echoed: {err}");
        if let Some(p) = param {
            assert_eq!(err["error"]["param"], p, "param for {body}");
        }
    }

    let raw = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/v1/registration-tokens"))
            .bearer_auth(&app.api_key)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_error(raw("{\"endUserLabel\": ", "application/json").await.expect("send"), 400, "invalid_json").await;
    assert_error(raw("", "application/json").await.expect("send"), 400, "invalid_json").await;
    assert_error(
        raw("endUserLabel=x", "application/x-www-form-urlencoded").await.expect("send"),
        415,
        "unsupported_media_type",
    )
    .await;
    let huge = json!({"endUserLabel": "x", "pad": "y".repeat(BODY_LIMIT)});
    assert_error(app.create_registration_token(&huge).await, 413, "request_too_large").await;

    // The limits' edges are accepted.
    for body in [
        json!({"endUserLabel": "x".repeat(128)}),
        json!({"endUserLabel": "y", "expiresIn": 86400}),
        json!({"endUserLabel": "z", "expiresIn": 60}),
    ] {
        assert_eq!(app.create_registration_token(&body).await.status(), 201, "{body}");
    }
    // No rejected request left an end user (or anything else) behind; the existing one is intact.
    for label in ["ok", "", " padded", "line\nbreak"] {
        assert!(app.store.get_end_user(app.tenant_id, label).await.expect("store").is_none(), "{label:?} half-written");
    }
    let user: Value = app.get_user("existing").await.json().await.expect("json");
    assert_eq!(user["providers"].as_array().map(Vec::len), Some(1));
}

async fn connect_bodies(backend: Backend) {
    let app = app(backend).await;
    let key = fake_keys::for_provider("openai");
    app.mock.accept(&key);
    let token = app.registration_token("frank", None).await;

    // Tokens that are not valid.
    let (never_issued, _) = generate_registration_token();
    for bad in [
        never_issued.expose_secret().to_owned(),
        "rrt-short".into(),
        String::new(),
        app.api_key.clone(),
        token.to_uppercase(),
    ] {
        assert_error(app.connect(&bad, "openai", &key).await, 404, "registration_token_invalid").await;
    }

    // Expired: stored with an expiry in the past.
    let (expired, hash) = generate_registration_token();
    let user = app.end_user("frank").await;
    let now = chrono::Utc::now();
    app.store
        .insert_registration_token(&NewRegistrationToken {
            id: uuid::Uuid::new_v4(),
            tenant_id: app.tenant_id,
            end_user_id: user.id,
            token_hash: hash.0,
            provider: None,
            created_at: now - chrono::Duration::minutes(20),
            expires_at: now - chrono::Duration::minutes(5),
        })
        .await
        .expect("insert");
    assert_error(app.connect(expired.expose_secret(), "openai", &key).await, 410, "registration_token_expired").await;
    assert_error(app.describe_token(expired.expose_secret()).await, 410, "registration_token_expired").await;

    // Provider and key problems; the token survives all of them.
    assert_error(app.connect(&token, "azure", &key).await, 400, "provider_unknown").await;
    assert_error(app.connect(&token, "", &key).await, 400, "provider_unknown").await;
    for malformed in [
        "",
        "   ",
        "sk-",
        "not a key at all",
        "sk-ant-api03-looks-like-anthropic-key",
        &"s".repeat(600),
        "sk-proj-abc\u{0}def-ghijklmnopqrst",
    ] {
        let err = assert_error(app.connect(&token, "openai", malformed).await, 400, "provider_key_malformed").await;
        assert_eq!(err["error"]["param"], "apiKey");
        if malformed.trim().len() > 3 {
            // Compared as the message text (serialising would escape the NUL).
            let message = err["error"]["message"].as_str().expect("message");
            assert!(!message.contains(malformed.trim()), "the key is not echoed");
        }
    }
    let res = app
        .client
        .post(app.url("/v1/connect"))
        .json(&json!({"registrationToken": token, "provider": "openai"}))
        .send()
        .await
        .expect("send");
    assert_error(res, 400, "invalid_request_body").await;
    let res = app
        .client
        .post(app.url("/v1/connect"))
        .json(&json!({"registrationToken": token, "provider": "openai", "apiKey": key, "extra": 1}))
        .send()
        .await
        .expect("send");
    assert_error(res, 400, "invalid_request_body").await;
    // A wrongly typed field does not echo the key back in the error.
    let res = app
        .client
        .post(app.url("/v1/connect"))
        .json(&json!({"registrationToken": token, "provider": key, "apiKey": 5}))
        .send()
        .await
        .expect("send");
    let err = assert_error(res, 400, "invalid_request_body").await;
    assert!(!err.to_string().contains(&key));

    assert!(app.store.list_provider_keys(user.id).await.expect("list").is_empty(), "nothing was stored");
    assert_eq!(app.connect(&token, "openai", &key).await.status(), 200, "the token still works");
}

async fn user_routes(backend: Backend) {
    let app = app(backend).await;
    app.connect_new_key("grace", "google").await;
    assert_error(app.get_user("nobody").await, 404, "enduser_not_found").await;
    assert_error(app.get_user("bad\nlabel").await, 400, "invalid_end_user_label").await;
    assert_error(app.get_user(&"x".repeat(129)).await, 400, "invalid_end_user_label").await;
    assert_error(app.delete_key("grace", "azure").await, 400, "provider_unknown").await;
    assert_error(app.delete_key("grace", "openai").await, 404, "enduser_key_missing").await;
    assert_error(app.delete_key("nobody", "google").await, 404, "enduser_not_found").await;
    let user: Value = app.get_user("grace").await.json().await.expect("json");
    assert_eq!(user["providers"].as_array().map(Vec::len), Some(1), "nothing was removed by the failures");
}

async fn routing_errors(backend: Backend) {
    let app = app(backend).await;
    let res = app.client.get(app.url("/v1/nothing-here")).bearer_auth(&app.api_key).send().await.expect("send");
    assert_error(res, 404, "unknown_route").await;
    let res = app.client.get(app.url("/v1/registration-tokens")).bearer_auth(&app.api_key).send().await.expect("send");
    assert_error(res, 405, "method_not_allowed").await;
    // Deny by default: an unknown route without a key learns nothing.
    let res = app.client.get(app.url("/v1/nothing-here")).send().await.expect("send");
    assert_error(res, 401, "relay_key_missing").await;
    let res = app.client.get(app.url("/api/health")).send().await.expect("send");
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-relay-request-id"));
    let res = app.client.get(app.url("/api/ready")).send().await.expect("send");
    assert_eq!(res.status(), 200);
}

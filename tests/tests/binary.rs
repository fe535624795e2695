//! The real `relay` binary: the README's one command on the embedded default, refusal to start
//! without a usable master key, and the whole operator + developer flow on PostgreSQL and SQLite
//! with every log line, response and stored byte searched for secrets.

use std::os::unix::fs::PermissionsExt;

use relay_tests::process::{run_cli, ServerProcess};
use relay_tests::{fake_keys, Backend, MockProvider, TestDb};
use serde_json::{json, Value};

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("relay-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

struct RemoveOnDrop(std::path::PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn relay_serve_with_no_configuration_runs_embedded() {
    let dir = temp_dir();
    let _cleanup = RemoveOnDrop(dir.clone());
    let server = ServerProcess::start(&[], Some(&dir));
    let res = reqwest::get(server.url("/api/health")).await.expect("health");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let ready: Value = reqwest::get(server.url("/api/ready")).await.expect("ready").json().await.expect("json");
    assert_eq!(ready["database"], "sqlite");

    let data = dir.join("relay-data");
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&dir.join("relay-data/master.key")), 0o600, "generated master key is owner-only");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("relay.db")), 0o600);
    let logs = server.logs();
    assert!(logs.contains("DEVELOPMENT SETUP"), "says loudly that this is a development setup");
    let master = std::fs::read_to_string(data.join("master.key")).expect("read key");
    let master_b64 = master.trim().split_once(':').map(|(_, k)| k.to_owned()).expect("v1:<base64>");
    assert!(!logs.contains(&master_b64), "the master key is never logged");
    drop(server);

    // A second start reuses the same key and data.
    let server = ServerProcess::start(&[], Some(&dir));
    assert_eq!(reqwest::get(server.url("/api/health")).await.expect("health").status(), 200);
    assert_eq!(std::fs::read_to_string(data.join("master.key")).expect("read key"), master);

    // The container health check (Dockerfile, docker-compose.yml): ready → 0, nothing there → 1.
    let listen = server.address.trim_start_matches("http://").replace("127.0.0.1", "0.0.0.0");
    let (status, _, err) = run_cli(&["healthcheck"], &[("RELAY_LISTEN", listen.as_str())], None);
    assert!(status.success(), "{err}");
    drop(server);
    let (status, _, err) = run_cli(&["healthcheck"], &[("RELAY_LISTEN", listen.as_str())], None);
    assert!(!status.success() && err.contains("did not answer"), "{err}");
}

#[test]
fn refuses_to_start_without_a_usable_master_key() {
    let dir = temp_dir();
    let _cleanup = RemoveOnDrop(dir.clone());
    let db = format!("sqlite://{}", dir.join("relay.db").display());
    let short = "v1:c2hvcnQta2V5";
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("DATABASE_URL", db.as_str())],
        vec![("DATABASE_URL", db.as_str()), ("RELAY_MASTER_KEYS", short)],
        vec![("DATABASE_URL", db.as_str()), ("RELAY_MASTER_KEYS", "not-a-key")],
        vec![("DATABASE_URL", db.as_str()), ("RELAY_MASTER_KEY_FILE", "/nonexistent/master.key")],
    ];
    for env in cases {
        let (status, _out, err) = run_cli(&["serve", "--listen", "127.0.0.1:0"], &env, Some(&dir));
        assert!(!status.success(), "must not start with {env:?}");
        assert!(err.contains("relay kek generate"), "says how to generate a key: {err}");
        assert!(!err.contains("c2hvcnQta2V5"), "does not echo the key material");
    }
    let (status, _, err) = run_cli(&["serve"], &[("DATABASE_URL", "mysql://x")], Some(&dir));
    assert!(!status.success());
    assert!(err.contains("DATABASE_URL must start with"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_and_developer_flow_leaks_no_secret_postgres() {
    operator_and_developer_flow(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_and_developer_flow_leaks_no_secret_sqlite() {
    operator_and_developer_flow(Backend::Sqlite).await;
}

/// Runs through the flow, collecting everything a leak could land in.
async fn operator_and_developer_flow(backend: Backend) {
    let db = TestDb::new(backend).await;
    let mock = MockProvider::start().await;
    let master = {
        let (status, out, err) = run_cli(&["kek", "generate"], &[], None);
        assert!(status.success(), "{err}");
        out.trim().to_owned()
    };
    assert!(master.starts_with("v1:"));
    let upstream_env: Vec<(String, String)> = ["OPENAI", "ANTHROPIC", "GOOGLE", "GROQ", "MISTRAL", "OPENROUTER"]
        .iter()
        .map(|p| (format!("RELAY_UPSTREAM_{p}"), mock.url.clone()))
        .collect();
    let mut env: Vec<(&str, &str)> = vec![("DATABASE_URL", db.url.as_str()), ("RELAY_MASTER_KEYS", master.as_str())];
    env.extend(upstream_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));

    let mut seen = String::new();
    let mut cli = |args: &[&str]| {
        let (status, out, err) = run_cli(args, &env, None);
        assert!(status.success(), "relay {args:?} failed: {err}");
        seen.push_str(&out);
        seen.push_str(&err);
        out
    };

    let out = cli(&["migrate"]);
    assert!(out.contains("Migrations applied"));
    let created: Value =
        serde_json::from_str(&cli(&["tenant", "create", "--name", "Acme Notes", "--json"])).expect("json");
    let tenant_id = created["tenantId"].as_str().expect("tenant id").to_owned();
    let rly = created["apiKey"].as_str().expect("api key").to_owned();
    assert!(rly.starts_with("rly-"));
    let second: Value =
        serde_json::from_str(&cli(&["apikey", "create", "--tenant", &tenant_id, "--name", "ci", "--json"]))
            .expect("json");
    let second_key = second["apiKey"].as_str().expect("key").to_owned();
    let listed: Value =
        serde_json::from_str(&cli(&["apikey", "list", "--tenant", &tenant_id, "--json"])).expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    let listed_text = listed.to_string();
    assert!(!listed_text.contains(&rly) && !listed_text.contains(&second_key), "list never shows secrets");
    assert_eq!(listed[1]["display"], format!("rly-…{}", &second_key[second_key.len() - 4..]));

    let server = ServerProcess::start(&env, None);
    let client = reqwest::Client::new();
    let mut responses = String::new();
    let record = |res: reqwest::Response| async {
        let status = res.status();
        let headers = format!("{:?}", res.headers());
        let body = res.text().await.expect("body");
        (status, headers, body)
    };

    // Developer backend: a registration token for an end user.
    let (status, h, body) = record(
        client
            .post(server.url("/v1/registration-tokens"))
            .bearer_auth(&rly)
            .json(&json!({"endUserLabel": "user_42", "expiresIn": 600}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let token =
        serde_json::from_str::<Value>(&body).expect("json")["registrationToken"].as_str().expect("t").to_owned();
    responses.push_str(&h);

    // The widget: describe, then connect with a key the mock provider accepts.
    let key = fake_keys::for_provider("google");
    mock.accept(&key);
    let (status, h, body) =
        record(client.get(server.url(&format!("/v1/connect/{token}"))).send().await.expect("send")).await;
    assert_eq!(status, 200, "{body}");
    responses.push_str(&h);
    responses.push_str(&body);
    // A rejected key first: logs must not carry it either.
    let rejected = fake_keys::for_provider("google");
    let (status, h, body) = record(
        client
            .post(server.url("/v1/connect"))
            .json(&json!({"registrationToken": token, "provider": "google", "apiKey": rejected}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    responses.push_str(&h);
    responses.push_str(&body);
    let (status, h, body) = record(
        client
            .post(server.url("/v1/connect"))
            .json(&json!({"registrationToken": token, "provider": "google", "apiKey": key}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    responses.push_str(&h);
    responses.push_str(&body);

    // The developer sees the provider and fingerprint, never the key.
    let (status, h, body) =
        record(client.get(server.url("/v1/users/user_42")).bearer_auth(&rly).send().await.expect("send")).await;
    assert_eq!(status, 200);
    let user: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(user["providers"][0]["provider"], "google");
    assert_eq!(user["providers"][0]["fingerprint"], format!("AIza…{}", &key[key.len() - 4..]));
    responses.push_str(&h);
    responses.push_str(&body);

    // Revoking the second key through the CLI takes effect on the running server once what it
    // read of the key expires (RELAY_CACHE_TTL, 2 s by default).
    let (status, ..) =
        record(client.get(server.url("/v1/users/user_42")).bearer_auth(&second_key).send().await.expect("send")).await;
    assert_eq!(status, 200);
    let second_id = second["id"].as_str().expect("id").to_owned();
    cli(&["apikey", "revoke", "--tenant", &tenant_id, &second_id]);
    let revoked_at = std::time::Instant::now();
    let (status, h, body) = loop {
        let answer =
            record(client.get(server.url("/v1/users/user_42")).bearer_auth(&second_key).send().await.expect("send"))
                .await;
        if answer.0 != 200 || revoked_at.elapsed() > std::time::Duration::from_secs(4) {
            break answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(revoked_at.elapsed() < std::time::Duration::from_millis(3500), "revoked within the cache's 2 s");
    assert_eq!(status, 401);
    assert!(body.contains("relay_key_revoked"));
    responses.push_str(&h);
    responses.push_str(&body);

    // Rotation through the CLI while the server runs; the server, given both keys, still opens.
    let v2 = {
        let (status, out, _) = run_cli(&["kek", "generate", "--version", "2"], &[], None);
        assert!(status.success());
        out.trim().to_owned()
    };
    let both = format!("{v2},{master}");
    let mut rotate_env: Vec<(&str, &str)> = env.iter().filter(|(k, _)| *k != "RELAY_MASTER_KEYS").copied().collect();
    rotate_env.push(("RELAY_MASTER_KEYS", &both));
    let (status, out, err) = run_cli(&["kek", "rotate", "--json"], &rotate_env, None);
    assert!(status.success(), "{err}");
    let report: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["rewrapped"], 1);
    assert_eq!(report["kekVersion"], 2);

    let logs = server.logs();
    let stored = db.dump().await;
    let stored = String::from_utf8_lossy(&stored);
    let rly_secret = &rly[16..60];
    let secrets: Vec<(&str, &str)> = vec![
        ("provider key", key.as_str()),
        ("rejected provider key", rejected.as_str()),
        ("provider key body", &key[4..]),
        ("rly- key", rly.as_str()),
        ("rly- secret part", rly_secret),
        ("second rly- key", second_key.as_str()),
        ("registration token", token.as_str()),
        ("registration token body", &token[4..]),
        ("master key", master.split_once(':').map(|(_, k)| k).expect("b64")),
        ("new master key", v2.split_once(':').map(|(_, k)| k).expect("b64")),
    ];
    for (what, secret) in &secrets {
        assert!(!logs.contains(secret), "{what} appears in the server log");
        assert!(!responses.contains(secret), "{what} appears in a response");
        assert!(!stored.contains(secret), "{what} is stored in plaintext");
    }
    // The CLI printed the rly- keys once each (that is its job) and nothing else secret.
    for (what, secret) in &secrets[..3] {
        assert!(!seen.contains(secret), "{what} appears in CLI output");
    }
    assert!(logs.lines().count() > 10, "the server did log (JSON lines)");
    for line in logs.lines().filter(|l| l.starts_with('{')) {
        serde_json::from_str::<Value>(line).expect("every structured log line is JSON");
    }
    assert!(logs.contains("\"request_id\":\"req_"), "access logs carry the request id");
}

//! Master keys in AWS KMS, against moto's KMS emulator and real `relay` processes on one
//! PostgreSQL: keys sealed under KMS, moved local → KMS → local by `relay kek rotate` while a node
//! serves, and a KMS that refuses or hangs answered with clear errors that lose nothing.

use std::time::Instant;

use relay_tests::app::assert_error;
use relay_tests::kms::KmsEmulator;
use relay_tests::mock::Reply;
use relay_tests::process::{run_cli, ServerProcess};
use relay_tests::{Backend, MockProvider, TestDb};
use serde_json::{json, Value};

struct Setup {
    db: TestDb,
    mock: MockProvider,
    kms: KmsEmulator,
    client: reqwest::Client,
}

impl Setup {
    async fn new() -> Self {
        let (db, mock, kms) =
            (TestDb::new(Backend::Postgres).await, MockProvider::start().await, KmsEmulator::start().await);
        mock.answer_every_request(Some(Reply::Json {
            status: 200,
            headers: vec![],
            body: json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}),
        }));
        Self { db, mock, kms, client: reqwest::Client::new() }
    }

    /// The environment of a `relay` process with these master keys (`RELAY_MASTER_KEYS`, or
    /// `RELAY_KMS_KEY_ID` when `kms_only`).
    fn env(&self, keys: &str, kms_only: bool) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), self.db.url.clone()),
            ((if kms_only { "RELAY_KMS_KEY_ID" } else { "RELAY_MASTER_KEYS" }).into(), keys.to_owned()),
            ("RELAY_UPSTREAM_OPENAI".into(), self.mock.url.clone()),
            ("RELAY_RATE_LIMIT_REGISTRATION".into(), "off".into()),
        ];
        env.extend(self.kms.env());
        env
    }

    /// Connects a new key for `label` through the registration-token flow: the answer, and the
    /// `authorization` the provider will see for it.
    async fn connect(&self, node: &ServerProcess, rly: &str, label: &str) -> (reqwest::Response, String) {
        let token = node.registration_token(&self.client, rly, label).await;
        let key = relay_tests::fake_keys::for_provider("openai");
        self.mock.accept(&key);
        let body = json!({"registrationToken": token, "provider": "openai", "apiKey": key});
        (self.client.post(node.url("/v1/connect")).json(&body).send().await.expect("send"), format!("Bearer {key}"))
    }

    /// Connects a key for `label` and returns it.
    async fn connect_ok(&self, node: &ServerProcess, rly: &str, label: &str) -> String {
        let (res, auth) = self.connect(node, rly, label).await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap_or_default());
        auth
    }

    async fn chat(&self, node: &ServerProcess, rly: &str, label: &str) -> reqwest::Response {
        self.client
            .post(node.url("/v1/chat/completions"))
            .bearer_auth(rly)
            .header("x-relay-user", label)
            .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .expect("send")
    }

    /// A chat for `label` on `node` reaches the provider with exactly `auth` (the user's key).
    async fn assert_opens(&self, node: &ServerProcess, rly: &str, label: &str, auth: &str) {
        let res = self.chat(node, rly, label).await;
        assert_eq!(res.status(), 200, "{label}: {}", res.text().await.unwrap_or_default());
        assert_eq!(self.mock.last_post().header("authorization"), Some(auth), "{label}'s own key");
    }

    /// Stored provider keys per master key version.
    async fn versions(&self) -> Vec<(i32, i64)> {
        let pool = sqlx::PgPool::connect(&self.db.url).await.expect("connect");
        let rows: Vec<(i32, i64)> =
            sqlx::query_as("SELECT kek_version, count(*) FROM provider_keys GROUP BY kek_version ORDER BY kek_version")
                .fetch_all(&pool)
                .await
                .expect("query");
        pool.close().await;
        rows
    }
}

fn borrowed(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn generate(version: u32) -> String {
    run_cli(&["kek", "generate", "--version", &version.to_string()], &[], None).1.trim().to_owned()
}

/// `relay kek rotate --json` with `env`: its report.
fn rotate(env: &[(String, String)]) -> Value {
    let (status, out, err) = run_cli(&["kek", "rotate", "--json"], &borrowed(env), None);
    assert!(status.success(), "rotate failed:\n{err}");
    serde_json::from_str(&out).expect("rotate --json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_move_from_local_to_kms_and_back_while_a_node_serves() {
    let s = Setup::new().await;
    let kms_key = s.kms.create_key().await;
    let (v1, v3) = (generate(1), generate(3));

    // Five keys sealed under a local master key.
    let local_env = s.env(&v1, false);
    let created: Value =
        serde_json::from_str(&run_cli(&["tenant", "create", "--name", "T", "--json"], &borrowed(&local_env), None).1)
            .expect("json");
    let rly = created["apiKey"].as_str().expect("key").to_owned();
    let local_node = ServerProcess::start(&borrowed(&local_env), None);
    let mut users = Vec::new();
    for i in 0..5 {
        let label = format!("user-{i}");
        let auth = s.connect_ok(&local_node, &rly, &label).await;
        users.push((label, auth));
    }
    assert_eq!(s.versions().await, vec![(1, 5)]);

    // KMS becomes the newest master key; a node with both serves throughout the move, and a key
    // connected now is sealed under KMS at once.
    let both_env = s.env(&format!("v2:aws-kms:{kms_key},{v1}"), false);
    let mut traced = both_env.clone();
    traced.push(("RUST_LOG".into(), "trace,sqlx=info".into()));
    let serving = ServerProcess::start(&borrowed(&traced), None);
    let auth = s.connect_ok(&serving, &rly, "user-kms").await;
    users.push(("user-kms".into(), auth));
    assert_eq!(s.versions().await, vec![(1, 5), (2, 1)]);
    for (label, auth) in &users {
        s.assert_opens(&serving, &rly, label, auth).await;
    }

    let report = rotate(&both_env);
    assert_eq!((report["kekVersion"].as_u64(), report["rewrapped"].as_u64()), (Some(2), Some(5)), "{report}");
    assert_eq!(report["failed"], 0);
    assert_eq!(report["sessionSigningKeys"]["failed"], 0);
    assert_eq!(s.versions().await, vec![(2, 6)]);
    for (label, auth) in &users {
        s.assert_opens(&serving, &rly, label, auth).await;
    }
    // The keys are in KMS now: a node with only the old local key cannot open them.
    let refused = s.chat(&local_node, &rly, "user-0").await;
    assert_error(refused, 500, "master_key_unavailable").await;

    // And out again, to a new local master key; a node without KMS opens every key.
    let back_env = s.env(&format!("{v3},v2:aws-kms:{kms_key},{v1}"), false);
    let report = rotate(&back_env);
    assert_eq!((report["kekVersion"].as_u64(), report["rewrapped"].as_u64()), (Some(3), Some(6)), "{report}");
    assert_eq!(s.versions().await, vec![(3, 6)]);
    let mut local_only: Vec<(String, String)> =
        s.env(&v3, false).into_iter().filter(|(k, _)| !k.starts_with("AWS_")).collect();
    local_only.push(("RELAY_CACHE_TTL".into(), "0".into()));
    let after = ServerProcess::start(&borrowed(&local_only), None);
    for (label, auth) in &users {
        s.assert_opens(&after, &rly, label, auth).await;
    }
    // Even at trace level, the AWS SDK's logs hold no data key, credential or provider key.
    let logs = serving.logs();
    assert!(logs.contains("aws_smithy_runtime"), "the SDK did log");
    assert!(!logs.contains("Plaintext") && !logs.contains(relay_tests::kms::SECRET_ACCESS_KEY));
    for (_, auth) in &users {
        assert!(!logs.contains(auth.trim_start_matches("Bearer ")));
    }
    drop((local_node, serving, after));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_that_refuses_or_hangs_gets_a_clear_error_and_loses_nothing() {
    let s = Setup::new().await;
    let (key_a, key_b) = (s.kms.create_key().await, s.kms.create_key().await);

    // RELAY_KMS_KEY_ID alone: KMS holds the only master key.
    let env_a = s.env(&key_a, true);
    let created: Value =
        serde_json::from_str(&run_cli(&["tenant", "create", "--name", "T", "--json"], &borrowed(&env_a), None).1)
            .expect("json");
    let rly = created["apiKey"].as_str().expect("key").to_owned();
    let node = ServerProcess::start(&borrowed(&env_a), None);
    let ann = s.connect_ok(&node, &rly, "ann").await;
    s.assert_opens(&node, &rly, "ann", &ann).await;
    let bob = s.connect_ok(&node, &rly, "bob").await;
    assert_eq!(s.versions().await, vec![(1, 2)]);

    // A node given another KMS key as v1: KMS refuses to unwrap what it needs at start (the
    // session-token signing key), so it does not start, and says why. Nothing stored changes.
    let (status, _, err) = run_cli(&["serve", "--listen", "127.0.0.1:0"], &borrowed(&s.env(&key_b, true)), None);
    assert!(!status.success());
    assert!(err.contains("refused") && err.contains("AccessDeniedException"), "{err}");
    s.assert_opens(&node, &rly, "ann", &ann).await;

    // A rotation that KMS refuses stops with a clear error and moves nothing.
    let v2 = generate(2);
    let refused_env = s.env(&format!("{v2},v1:aws-kms:{key_b}"), false);
    let (status, _, err) = run_cli(&["kek", "rotate", "--json"], &borrowed(&refused_env), None);
    assert!(!status.success());
    assert!(err.contains("master_key_unavailable") && err.contains("AccessDeniedException"), "{err}");
    assert_eq!(s.versions().await, vec![(1, 2)]);

    // KMS hangs. Keys this node opened in the last minutes still open (their data keys are
    // cached); one it has not opened, and a new connect, fail within the KMS timeout with 503
    // and Retry-After, and nothing is stored.
    s.kms.pause();
    s.assert_opens(&node, &rly, "ann", &ann).await;
    let started = Instant::now();
    let res = s.chat(&node, &rly, "bob").await;
    let took = started.elapsed();
    assert_eq!(res.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    assert_error(res, 503, "master_key_unavailable").await;
    assert_error(s.connect(&node, &rly, "cat").await.0, 503, "master_key_unavailable").await;
    eprintln!("KMS hanging: a call needing it answered 503 after {took:?}");
    assert_eq!(s.versions().await, vec![(1, 2)]);

    // KMS is back: no restart needed.
    s.kms.resume();
    s.assert_opens(&node, &rly, "bob", &bob).await;
    let cat = s.connect_ok(&node, &rly, "cat").await;
    s.assert_opens(&node, &rly, "cat", &cat).await;
    let res = s.client.get(node.url("/v1/users/cat")).bearer_auth(&rly).send().await.expect("send");
    assert_eq!(res.status(), 200);
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_key_that_does_not_exist_stops_the_server_at_start() {
    let s = Setup::new().await;
    let env = s.env("alias/not-there", true);
    let (status, _, err) = run_cli(&["serve", "--listen", "127.0.0.1:0"], &borrowed(&env), None);
    assert!(!status.success());
    assert!(err.contains("The master keys are not usable") && err.contains("NotFoundException"), "{err}");

    // And a configuration that names KMS both ways is refused with the way out.
    let mut both = s.env(&generate(1), false);
    both.push(("RELAY_KMS_KEY_ID".into(), "alias/x".into()));
    let (status, _, err) = run_cli(&["serve", "--listen", "127.0.0.1:0"], &borrowed(&both), None);
    assert!(!status.success());
    assert!(err.contains("v2:aws-kms:"), "{err}");
}

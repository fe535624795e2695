//! `spawn_app`: Relay built in-process on port 0 against a fresh database and a mock provider,
//! with a tenant and its API key ready, plus typed request helpers.

use std::collections::HashMap;
use std::time::Duration;

use relay::config::{Config, StoreConfig};
use relay::providers::ProviderId;
use relay::startup::Application;
use relay::store::{DatabaseUrl, DynStore};
use relay::vault::{LocalKeyring, MasterKeys};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::{Backend, MockProvider, TestDb};

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub store: DynStore,
    pub mock: MockProvider,
    pub tenant_id: uuid::Uuid,
    pub api_key: String,
    /// `RELAY_MASTER_KEYS` for this app, to run the CLI against the same data.
    pub master_keys: String,
    // Last: dropped after everything that holds connections to it.
    pub db: TestDb,
}

pub struct SpawnOptions {
    pub verify_provider_keys: bool,
    pub max_body_bytes: usize,
    pub idle_timeout: Duration,
    /// Trusted proxies of the byok flow.
    pub browser: relay::browser::BrowserConfig,
    /// Default: only the per-IP registration limit (10/min), so tests that send many requests
    /// are not limited; the rate-limit tests set their own.
    pub limits: relay::ratelimit::Limits,
    pub redis: Option<relay::config::RedisConfig>,
    /// Zero by default: tests change the database from the CLI and expect it to count at once.
    pub cache_ttl: Duration,
    /// How long Relay waits for a provider's response headers (30 s by default).
    pub first_byte_timeout: Duration,
    /// The body deadline and connection cap (the server's defaults).
    pub client_limits: relay::client_limits::ClientLimits,
    /// The price table (the built-in one by default).
    pub prices: relay::pricing::Prices,
    /// Delays between webhook attempts (the server's default unless a test sets short ones).
    pub webhook_retry_schedule: Vec<Duration>,
}

/// No limits but the server's default for anonymous registrations.
pub fn test_limits() -> relay::ratelimit::Limits {
    use relay::ratelimit::{Limit, Limits};
    Limits {
        api_key: Limit::Off,
        end_user: Limit::Off,
        free_end_user: Limit::Off,
        registration: Limits::default().registration,
        connect: Limit::Off,
    }
}

impl Default for SpawnOptions {
    fn default() -> Self {
        Self {
            verify_provider_keys: true,
            max_body_bytes: 64 * 1024,
            idle_timeout: Duration::from_secs(30),
            browser: Default::default(),
            limits: test_limits(),
            redis: None,
            cache_ttl: Duration::ZERO,
            first_byte_timeout: Duration::from_secs(30),
            client_limits: Default::default(),
            prices: relay::pricing::Prices::builtin(),
            webhook_retry_schedule: relay::webhooks::DEFAULT_RETRY_SCHEDULE.to_vec(),
        }
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, SpawnOptions::default()).await
}

pub async fn spawn_app_with(backend: Backend, options: SpawnOptions) -> TestApp {
    let db = TestDb::new(backend).await;
    let mock = MockProvider::start().await;
    let master_keys = LocalKeyring::generate_entry(1).expose_secret().to_owned();
    let database = DatabaseUrl::parse(&db.url).expect("database url");
    let store = relay::store::connect(&database).await.expect("open store");
    store.migrate().await.expect("migrate");
    let upstreams: HashMap<ProviderId, String> = ProviderId::ALL.into_iter().map(|p| (p, mock.url.clone())).collect();
    let config = Config {
        listen: "127.0.0.1:0".into(),
        store: StoreConfig {
            database,
            keyring: MasterKeys::parse(&SecretString::from(master_keys.clone())).expect("keyring"),
            embedded: false,
        },
        public_url: None,
        verify_provider_keys: options.verify_provider_keys,
        max_body_bytes: options.max_body_bytes,
        max_relay_body_bytes: 1024 * 1024,
        upstream_timeouts: relay::upstream::UpstreamTimeouts {
            connect: Duration::from_secs(5),
            key_check: Duration::from_secs(5),
            first_byte: options.first_byte_timeout,
            idle: options.idle_timeout,
        },
        workers: Some(2),
        browser: options.browser,
        limits: options.limits,
        redis: options.redis,
        cache_ttl: options.cache_ttl,
        metrics_listen: None,
        shutdown_timeout_secs: 5,
        client_limits: options.client_limits,
        // The mock provider listens on loopback: allow it, as an operator would a LAN server.
        upstream_policy: relay::ssrf::UpstreamPolicy::new(vec!["127.0.0.1".into()], false),
        upstreams,
        prices: std::sync::Arc::new(options.prices),
        webhook_retry_schedule: options.webhook_retry_schedule,
        retention: relay::retention::Retention::default(),
    };
    let app = Application::build_with_store(config, store.clone()).await.expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());

    let (tenant, key) = relay::tenants::create_tenant(&store, "Test App", "test").await.expect("tenant");
    TestApp {
        address,
        client: reqwest::Client::new(),
        store,
        mock,
        tenant_id: tenant.id,
        api_key: key.secret.expose_secret().to_owned(),
        master_keys,
        db,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A second tenant with its own key, for isolation tests.
    pub async fn other_tenant(&self) -> (uuid::Uuid, String) {
        let (t, k) = relay::tenants::create_tenant(&self.store, "Other App", "test").await.expect("tenant");
        (t.id, k.secret.expose_secret().to_owned())
    }

    pub async fn create_registration_token_as(&self, api_key: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/registration-tokens"))
            .bearer_auth(api_key)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn create_registration_token(&self, body: &Value) -> reqwest::Response {
        self.create_registration_token_as(&self.api_key, body).await
    }

    /// A registration token for `label`, asserted to be created.
    pub async fn registration_token(&self, label: &str, provider: Option<&str>) -> String {
        let mut body = json!({ "endUserLabel": label });
        if let Some(p) = provider {
            body["provider"] = json!(p);
        }
        let res = self.create_registration_token(&body).await;
        assert_eq!(res.status(), 201, "creating a registration token");
        let v: Value = res.json().await.expect("json");
        v["registrationToken"].as_str().expect("token").to_owned()
    }

    pub async fn describe_token(&self, token: &str) -> reqwest::Response {
        self.client.get(self.url(&format!("/v1/connect/{token}"))).send().await.expect("request")
    }

    pub async fn connect(&self, token: &str, provider: &str, api_key: &str) -> reqwest::Response {
        self.client
            .post(self.url("/v1/connect"))
            .json(&json!({ "registrationToken": token, "provider": provider, "apiKey": api_key }))
            .send()
            .await
            .expect("request")
    }

    /// Connects a fresh fake key for `label` and returns it; the mock accepts it.
    pub async fn connect_new_key(&self, label: &str, provider: &str) -> String {
        let key = crate::fake_keys::for_provider(provider);
        self.mock.accept(&key);
        let token = self.registration_token(label, None).await;
        let res = self.connect(&token, provider, &key).await;
        assert_eq!(res.status(), 200, "connect: {}", res.text().await.unwrap_or_default());
        key
    }

    pub async fn get_user_as(&self, api_key: &str, label: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/v1/users/{}", encode(label))))
            .bearer_auth(api_key)
            .send()
            .await
            .expect("request")
    }

    pub async fn get_user(&self, label: &str) -> reqwest::Response {
        self.get_user_as(&self.api_key, label).await
    }

    pub async fn delete_key(&self, label: &str, provider: &str) -> reqwest::Response {
        self.client
            .delete(self.url(&format!("/v1/users/{}/keys/{provider}", encode(label))))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete_user(&self, label: &str) -> reqwest::Response {
        self.client
            .delete(self.url(&format!("/v1/users/{}", encode(label))))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .expect("request")
    }

    /// The end user, straight from the store.
    pub async fn end_user(&self, label: &str) -> relay::store::EndUser {
        self.store.get_end_user(self.tenant_id, label).await.expect("store").expect("end user exists")
    }
}

/// Percent-encodes a path segment.
pub fn encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Asserts an OpenAI-shaped error with this status and code, and a server-made request id.
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "status for expected code {code}");
    let id = res.headers().get("x-relay-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let compat = res.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert!(id.as_deref().is_some_and(|i| i.starts_with("req_")), "request id present");
    assert_eq!(id, compat, "x-request-id mirrors x-relay-request-id");
    let body: Value = res.json().await.expect("error body is JSON");
    assert_eq!(body["error"]["code"], code, "error code in {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "message in {body}");
    assert!(body["error"]["type"].as_str().is_some(), "type in {body}");
    assert!(body["error"].get("param").is_some(), "param key in {body}");
    body
}

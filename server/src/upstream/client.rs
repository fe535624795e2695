//! Where each provider's API is and the HTTP clients that reach it: the client for the built-in
//! providers, the SSRF-guarded one for `openai-compatible` servers (both per worker thread);
//! targets and key checks.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::error::ApiError;
use crate::keys::{KeyCheck, KeyCheckError, KeyVerifier};
use crate::providers::ProviderId;
use crate::ssrf::{self, CheckedUrl, SsrfError, UpstreamPolicy};

/// How long Relay waits on a provider. None of them caps a healthy long stream: `idle` is the
/// longest gap between two chunks, not a total.
#[derive(Debug, Clone)]
pub struct UpstreamTimeouts {
    pub connect: Duration,
    pub key_check: Duration,
    /// Until the response headers (for non-streaming calls, again for the whole answer).
    pub first_byte: Duration,
    pub idle: Duration,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            key_check: Duration::from_secs(15),
            first_byte: Duration::from_secs(600),
            idle: Duration::from_secs(120),
        }
    }
}

/// Where each provider's API is, and the HTTP clients Relay calls them with.
#[derive(Clone)]
pub struct Upstreams {
    /// Names this configuration's clients in each thread's `CLIENTS`.
    id: u64,
    base_urls: HashMap<ProviderId, String>,
    timeouts: UpstreamTimeouts,
    /// For `openai-compatible` base URLs: checked by the policy at store time and at every
    /// connection (the client's resolver), no redirects, no proxy.
    policy: Arc<UpstreamPolicy>,
    /// Built when the configuration is, to fail at startup; a thread whose own build fails uses them.
    fallback: Clients,
}

/// The two clients: plain for the built-in providers, guarded for `openai-compatible` servers.
#[derive(Clone)]
struct Clients {
    plain: reqwest::Client,
    guarded: reqwest::Client,
}

impl Clients {
    fn build(timeouts: &UpstreamTimeouts, policy: &Arc<UpstreamPolicy>) -> Result<Self, reqwest::Error> {
        let plain = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("relay/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let guarded = ssrf::client(policy.clone(), Arc::new(ssrf::SystemLookup), timeouts.connect)?;
        Ok(Self { plain, guarded })
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// reqwest runs each connection on the runtime that opened it, and actix-web runs one
    /// runtime per worker thread. With clients shared by every worker, a stream on worker A
    /// could ride a pooled connection opened on worker B, and break when B stops first (graceful
    /// shutdown stops a worker as soon as it has no connection of its own). So each thread calls
    /// providers with clients of its own, built from the same configuration.
    static CLIENTS: RefCell<HashMap<u64, Clients>> = RefCell::new(HashMap::new());
}

/// Where one call goes, and with which client.
pub struct Target {
    pub url: String,
    pub client: reqwest::Client,
}

impl Upstreams {
    pub fn new(overrides: &HashMap<ProviderId, String>, timeouts: &UpstreamTimeouts) -> Result<Self, reqwest::Error> {
        let base_urls = ProviderId::ALL
            .into_iter()
            .map(|p| {
                let url = overrides.get(&p).map(String::as_str).unwrap_or(p.default_base_url());
                (p, url.trim_end_matches('/').to_owned())
            })
            .collect();
        let policy = Arc::new(UpstreamPolicy::new(Vec::new(), false));
        let fallback = Clients::build(timeouts, &policy)?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Ok(Self { id, base_urls, timeouts: timeouts.clone(), policy, fallback })
    }

    /// Replaces the SSRF policy (from `RELAY_ALLOW_UPSTREAM_HOSTS` / `RELAY_ALLOW_PRIVATE_UPSTREAMS`).
    pub fn with_policy(mut self, policy: UpstreamPolicy) -> Result<Self, reqwest::Error> {
        self.policy = Arc::new(policy);
        self.fallback = Clients::build(&self.timeouts, &self.policy)?;
        self.id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Ok(self)
    }

    /// This thread's client for this configuration (both built on first use): the guarded one
    /// for an `openai-compatible` server.
    fn client(&self, guarded: bool) -> reqwest::Client {
        CLIENTS.with(|all| {
            let mut all = all.borrow_mut();
            let clients = all.entry(self.id).or_insert_with(|| {
                Clients::build(&self.timeouts, &self.policy).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "could not build this thread's upstream clients; sharing the first ones");
                    self.fallback.clone()
                })
            });
            if guarded { clients.guarded.clone() } else { clients.plain.clone() }
        })
    }

    pub fn timeouts(&self) -> &UpstreamTimeouts {
        &self.timeouts
    }

    /// A stored `openai-compatible` base URL, checked against the policy again now.
    pub fn check_stored(&self, stored: &str) -> Result<CheckedUrl, ApiError> {
        ssrf::check_base_url(&self.policy, stored)
            .map_err(|e| ApiError::forbidden(e.code(), format!("The stored base URL is no longer allowed: {e}.")))
    }

    /// The URL for `path` (already percent-encoded) and `query`: below the provider's API root,
    /// or for `openai-compatible` below the key's own server, whose base URL names the API
    /// version (so a dialect's `/v1/…` path loses its `/v1`).
    pub fn target(
        &self,
        provider: ProviderId,
        base: Option<&CheckedUrl>,
        path: &str,
        query: Option<&str>,
    ) -> Result<Target, ApiError> {
        match base {
            Some(base) => {
                let rest = path.strip_prefix("/v1").filter(|r| r.is_empty() || r.starts_with('/')).unwrap_or(path);
                let url = base
                    .join(rest, query)
                    .map_err(|e| ApiError::forbidden(e.code(), format!("This path cannot be relayed: {e}.")))?;
                Ok(Target { url: url.to_string(), client: self.client(true) })
            }
            None => {
                let root = self.base_urls.get(&provider).map(String::as_str).unwrap_or(provider.default_base_url());
                let mut url = format!("{root}{path}");
                if let Some(q) = query.filter(|q| !q.is_empty()) {
                    url.push('?');
                    url.push_str(q);
                }
                Ok(Target { url, client: self.client(false) })
            }
        }
    }
}

#[async_trait]
impl KeyVerifier for Upstreams {
    fn check_base_url(&self, raw: &str) -> Result<CheckedUrl, SsrfError> {
        ssrf::check_base_url(&self.policy, raw)
    }

    /// One cheap authenticated GET (a model or key listing): 2xx accepts, 401/403 rejects.
    async fn check_key(
        &self,
        provider: ProviderId,
        base: Option<&CheckedUrl>,
        key: &SecretString,
    ) -> Result<KeyCheck, KeyCheckError> {
        let target =
            self.target(provider, base, provider.def().key_check_path, None).map_err(|_| KeyCheckError::BadKey)?;
        let headers = provider.auth_headers(key).map_err(|_| KeyCheckError::BadKey)?;
        let res =
            target.client.get(target.url).headers(headers).timeout(self.timeouts.key_check).send().await.map_err(
                |e| match SsrfError::find(&e) {
                    Some(refused) => KeyCheckError::Refused { code: refused.code(), reason: refused.to_string() },
                    None => KeyCheckError::Unreachable(e.without_url()),
                },
            )?;
        match res.status().as_u16() {
            200..=299 => Ok(KeyCheck::Accepted),
            401 | 403 => Ok(KeyCheck::Rejected),
            other => Err(KeyCheckError::Unexpected(other)),
        }
    }
}

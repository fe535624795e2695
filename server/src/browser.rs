//! What browsers may do. CORS: the browser-facing routes (`/users`, `/keys…`, `/v1/connect…`,
//! `/relay/…`) answer only origins a tenant allows; every other route ignores `Origin` and never
//! sends CORS headers. And who the client is, behind trusted proxies, for per-IP limits.
//!
//! A preflight carries no credentials, so it is allowed when ANY tenant allows its origin (an
//! in-memory set, refreshed from the store). The actual request carries a session or
//! registration token, and its origin is then checked against THAT tenant's list
//! (`check_origin`), 403 `origin_not_allowed` otherwise.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix_cors::Cors;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{ACCESS_CONTROL_REQUEST_METHOD, ORIGIN};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use ipnet::IpNet;
use uuid::Uuid;

use crate::error::ApiError;
use crate::store::{DynStore, TenantSettings};

/// Request headers a page may send to the browser-facing routes: Relay's own, and those the
/// providers' official browser SDKs send through `/relay`.
pub const ALLOWED_HEADERS: &[&str] = &[
    "content-type",
    "x-relay-token",
    "authorization",
    "x-relay-user",
    "x-relay-base-url",
    "anthropic-version",
    "anthropic-beta",
    "anthropic-dangerous-direct-browser-access",
    "openai-organization",
    "openai-project",
    "x-stainless-arch",
    "x-stainless-lang",
    "x-stainless-os",
    "x-stainless-package-version",
    "x-stainless-retry-count",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-timeout",
];

/// Response headers a page may read.
pub const EXPOSED_HEADERS: &[&str] = &[
    "x-relay-request-id",
    "x-request-id",
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
];

/// How long browsers may cache a preflight answer.
const PREFLIGHT_MAX_AGE_SECS: usize = 600;
/// How long the set of known origins is trusted before it is read again.
const ORIGINS_FRESH_FOR: Duration = Duration::from_secs(30);
/// An unknown origin re-reads the set at most this often, so a newly allowed origin works
/// within a second while a flood of foreign origins costs one query a second at most.
const ORIGINS_MISS_REFRESH: Duration = Duration::from_secs(1);

/// The routes a browser calls, and the only ones that answer with CORS headers.
pub fn is_browser_path(path: &str) -> bool {
    path == "/users"
        || path == "/keys"
        || path.starts_with("/keys/")
        || path == "/v1/connect"
        || path.starts_with("/v1/connect/")
        || path.starts_with("/relay/")
}

/// `relay serve` settings for the browser flow.
#[derive(Debug, Clone, Default)]
pub struct BrowserConfig {
    /// Proxies whose `X-Forwarded-For` is believed; the peer address is used otherwise.
    pub trusted_proxies: Vec<IpNet>,
}

/// Parses `RELAY_TRUSTED_PROXIES`: IPs or CIDRs, separated by commas or spaces.
pub fn parse_trusted_proxies(raw: &str) -> Result<Vec<IpNet>, String> {
    raw.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s:?} is not an IP address or CIDR range"))
        })
        .collect()
}

/// The browser side of the app state: known origins and who the client is.
pub struct BrowserAccess {
    origins: Arc<OriginCache>,
    trusted_proxies: Vec<IpNet>,
}

impl BrowserAccess {
    pub fn new(store: DynStore, config: &BrowserConfig, public_url: Option<&str>) -> Self {
        // Relay's own pages (the hosted connect page) call the browser routes from its origin.
        let public_origin = public_url
            .and_then(|u| url::Url::parse(u).ok())
            .map(|u| u.origin().ascii_serialization())
            .filter(|o| o != "null");
        Self {
            origins: Arc::new(OriginCache {
                store,
                public_origin,
                state: RwLock::new(CacheState { origins: HashSet::new(), loaded_at: None }),
                refresh: tokio::sync::Mutex::new(()),
            }),
            trusted_proxies: config.trusted_proxies.clone(),
        }
    }

    /// The CORS middleware. Answers preflights the gate let through; on actual requests adds the
    /// headers for known origins on browser routes only.
    pub fn cors(&self) -> Cors {
        let origins = self.origins.clone();
        Cors::default()
            .allowed_origin_fn(move |origin, head| {
                is_browser_path(head.uri.path()) && origin.to_str().is_ok_and(|o| origins.contains(o))
            })
            .allowed_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allowed_headers(ALLOWED_HEADERS.iter().copied())
            .expose_headers(EXPOSED_HEADERS.iter().copied())
            .max_age(PREFLIGHT_MAX_AGE_SECS)
    }

    /// The client's address: the peer, or, when the peer is a trusted proxy, the rightmost
    /// `X-Forwarded-For` hop that is not a trusted proxy.
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip().to_canonical();
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let mut last = peer;
        let hops: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>().map(|ip| ip.to_canonical()) else { break };
            if !self.is_trusted(ip) {
                return Some(ip);
            }
            last = ip;
        }
        Some(last)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// The identity a per-IP limit counts against: the address, or for IPv6 its /64 (one
    /// client usually holds a whole /64). Hashed by the limiter before it is stored.
    pub fn limiter_identity(ip: IpAddr) -> Vec<u8> {
        match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets()[..8].to_vec(),
        }
    }
}

struct CacheState {
    origins: HashSet<String>,
    loaded_at: Option<Instant>,
}

/// Every origin any tenant allows, read from the store now and then.
struct OriginCache {
    store: DynStore,
    public_origin: Option<String>,
    state: RwLock<CacheState>,
    refresh: tokio::sync::Mutex<()>,
}

impl OriginCache {
    fn contains(&self, origin: &str) -> bool {
        self.public_origin.as_deref() == Some(origin)
            || self.state.read().map(|s| s.origins.contains(origin)).unwrap_or(false)
    }

    fn age(&self) -> Option<Duration> {
        self.state.read().ok().and_then(|s| s.loaded_at.map(|t| t.elapsed()))
    }

    /// Whether some tenant allows `origin`, reading the store again when the set is stale or
    /// (at most once a second) when the origin is not in it.
    async fn allowed_somewhere(&self, origin: &str) -> bool {
        let hit = self.contains(origin);
        let age = self.age();
        let stale = age.is_none_or(|a| a > ORIGINS_FRESH_FOR);
        if stale || (!hit && age.is_none_or(|a| a > ORIGINS_MISS_REFRESH)) {
            self.refresh().await;
        }
        self.contains(origin)
    }

    async fn refresh(&self) {
        let _one_at_a_time = self.refresh.lock().await;
        if self.age().is_some_and(|a| a <= ORIGINS_MISS_REFRESH) {
            return; // another request just did it
        }
        match self.store.list_allowed_origins().await {
            Ok(list) => {
                if let Ok(mut state) = self.state.write() {
                    *state = CacheState { origins: list.into_iter().collect(), loaded_at: Some(Instant::now()) };
                }
            }
            Err(e) => tracing::warn!(error = ?e, "could not read the allowed origins; keeping the previous set"),
        }
    }
}

pub fn origin_not_allowed() -> ApiError {
    ApiError::forbidden(
        "origin_not_allowed",
        "This origin may not call Relay for this app. The operator can allow it with `relay tenant update --allowed-origin`.",
    )
}

/// Runs outside the CORS middleware: refreshes the origin set when needed and answers what CORS
/// must refuse with our own error body (403 `origin_not_allowed`) instead of actix-cors' text:
/// a preflight to a non-browser route or from an origin no tenant allows, and an actual request
/// to a browser route from such an origin. Requests without `Origin` (servers, curl) pass.
pub async fn gate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if let Some(origin) = req.headers().get(ORIGIN) {
        let origin = origin.to_str().unwrap_or("").to_owned();
        let preflight = req.method() == Method::OPTIONS && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD);
        let browser = is_browser_path(req.path());
        if preflight || browser {
            let known = match req.app_data::<web::Data<BrowserAccess>>() {
                Some(_) if browser && is_same_origin(req.request()) => true,
                Some(access) if browser => access.origins.allowed_somewhere(&origin).await,
                _ => false,
            };
            if !known {
                return Ok(req.into_response(HttpResponse::from_error(origin_not_allowed())));
            }
        }
    }
    next.call(req).await.map(ServiceResponse::map_into_boxed_body)
}

/// A request from one of Relay's own pages (the widget's frame, `/connect`), which POST with
/// their own origin: the browser says so in `Sec-Fetch-Site` (which a page cannot set), or
/// `Origin` is this server's own scheme and host (browsers without `Sec-Fetch-*`).
pub fn is_same_origin(req: &HttpRequest) -> bool {
    let Some(origin) = req.headers().get(ORIGIN).and_then(|v| v.to_str().ok()) else { return false };
    if req.headers().get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"same-origin") {
        return true;
    }
    let info = req.connection_info();
    origin == format!("{}://{}", info.scheme(), info.host())
}

impl BrowserAccess {
    /// Checks the request's `Origin` (if any) against the tenant's allowed origins.
    pub async fn check_origin(&self, tenant_id: Uuid, req: &HttpRequest) -> Result<(), ApiError> {
        let Some(origin) = req.headers().get(ORIGIN) else { return Ok(()) };
        if is_same_origin(req) {
            return Ok(());
        }
        let origin = origin.to_str().map_err(|_| origin_not_allowed())?;
        if self.origins.public_origin.as_deref() == Some(origin) {
            return Ok(());
        }
        let settings = self.origins.store.get_tenant_settings(tenant_id).await?.unwrap_or_default();
        self.check_origin_with(&settings, req)
    }

    /// `check_origin` with the tenant's settings already at hand.
    pub fn check_origin_with(&self, settings: &TenantSettings, req: &HttpRequest) -> Result<(), ApiError> {
        let Some(origin) = req.headers().get(ORIGIN) else { return Ok(()) };
        if is_same_origin(req) {
            return Ok(());
        }
        let origin = origin.to_str().map_err(|_| origin_not_allowed())?;
        let public = self.origins.public_origin.as_deref() == Some(origin);
        if public || settings.allowed_origins.iter().any(|o| o == origin) {
            Ok(())
        } else {
            Err(origin_not_allowed())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_paths() {
        for p in ["/users", "/keys", "/keys/openai", "/v1/connect", "/v1/connect/rrt-x", "/relay/openai/v1/models"] {
            assert!(is_browser_path(p), "{p}");
        }
        for p in ["/v1/users/x", "/v1/chat/completions", "/usersx", "/keysx", "/api/health", "/v1/session-tokens"] {
            assert!(!is_browser_path(p), "{p}");
        }
    }

    #[test]
    fn trusted_proxies() {
        let list = parse_trusted_proxies("10.0.0.0/8, 127.0.0.1 ::1").expect("parses");
        assert_eq!(list.len(), 3);
        assert!(list[1].contains(&"127.0.0.1".parse::<IpAddr>().expect("ip")));
        assert!(parse_trusted_proxies("10.0.0.0/33").is_err());
        assert!(parse_trusted_proxies("proxy.internal").is_err());
        assert_eq!(parse_trusted_proxies("").expect("empty"), vec![]);
    }
}

//! Rate limits: GCRA (the generic cell rate algorithm) per `rly-` key, per end user (paid and
//! free tiers apart), per client IP on the public registration and connect routes, and per
//! account and per client IP on the console's sign-in.
//!
//! A limit is a rate, `count/period`, with a burst of `count`: a fresh client may send `count`
//! requests at once, then one more every `period / count`. GCRA keeps a single number per
//! client, the theoretical arrival time (TAT) of its next request.
//!
//! Limiter keys are SHA-256 hashes of the scope and the identity (an api-key id, a tenant and
//! end-user label, an IP address), never raw tokens or labels. With `RELAY_REDIS_URL` set, the
//! TATs live in Redis and one Lua script reads and updates them atomically on Redis's clock, so
//! every relay node shares one limit. If Redis fails mid-flight, each node falls back to its own
//! in-memory limiter (logged, counted) rather than refusing traffic.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::HttpRequest;
use sha2::{Digest, Sha256};

use crate::browser::BrowserAccess;
pub use crate::domain::limits::{Limit, Limits, Rate};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// What a limit is on; also the `scope` label of `relay_rate_limited_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    ApiKey,
    EndUser {
        paid: bool,
    },
    Registration,
    Connect,
    /// Console sign-in attempts for one email address (known or not).
    ConsoleAccount,
    /// Console sign-in attempts from one client address.
    ConsoleAddress,
}

impl Scope {
    pub fn label(self) -> &'static str {
        match self {
            Scope::ApiKey => "api_key",
            Scope::EndUser { paid: true } => "end_user",
            Scope::EndUser { paid: false } => "end_user_free",
            Scope::Registration => "ip_registration",
            Scope::Connect => "ip_connect",
            Scope::ConsoleAccount => "console_account",
            Scope::ConsoleAddress => "ip_console",
        }
    }

    fn subject(self) -> &'static str {
        match self {
            Scope::ApiKey => "this Relay API key",
            Scope::EndUser { paid: true } => "this end user",
            Scope::EndUser { paid: false } => "this end user on the free tier",
            Scope::Registration => "registrations from this address",
            Scope::Connect => "key connections from this address",
            Scope::ConsoleAccount => "sign-ins to this account",
            Scope::ConsoleAddress => "sign-ins from this address",
        }
    }
}

/// The answer of one limit for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub scope: Scope,
    pub allowed: bool,
    pub limit: u32,
    /// Requests that could be sent right now after this one.
    pub remaining: u32,
    /// Until the limit is back to a full burst.
    pub reset: Duration,
    /// Refused: until one more request would be allowed.
    pub retry_after: Duration,
    pub period: Duration,
}

impl Decision {
    /// Of two decisions on one request, the one to report: a refusal, else the fewer remaining.
    pub fn tighter(self, other: Decision) -> Decision {
        match (self.allowed, other.allowed) {
            (false, true) => self,
            (true, false) => other,
            _ if other.remaining < self.remaining => other,
            _ if other.remaining == self.remaining && other.reset > self.reset => other,
            _ => self,
        }
    }

    /// OpenAI's `x-ratelimit-*-requests` headers, and on a refusal `Retry-After` (whole seconds,
    /// rounded up) and `retry-after-ms`, which the official SDKs wait for before retrying.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        fn put(headers: &mut HeaderMap, name: &'static str, value: String) {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        }
        put(headers, "x-ratelimit-limit-requests", self.limit.to_string());
        put(headers, "x-ratelimit-remaining-requests", self.remaining.to_string());
        put(headers, "x-ratelimit-reset-requests", go_duration(self.reset));
        if !self.allowed {
            headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_secs(self.retry_after)));
            put(headers, "retry-after-ms", self.retry_after.as_millis().max(1).to_string());
        }
    }

    /// The 429 answer for a refusal, in OpenAI's error shape, with the headers above.
    pub fn error(&self) -> ApiError {
        let secs = retry_after_secs(self.retry_after);
        let mut err = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "rate_limit_exceeded",
            format!(
                "Rate limit reached for {}: {} requests per {}. Try again in {secs} second{}.",
                self.scope.subject(),
                self.limit,
                period_words(self.period),
                if secs == 1 { "" } else { "s" },
            ),
        );
        let mut headers = HeaderMap::new();
        self.write_headers(&mut headers);
        for (name, value) in headers {
            err = err.header(name, value);
        }
        err
    }
}

fn retry_after_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

fn period_words(d: Duration) -> String {
    match d.as_secs() {
        1 => "second".into(),
        60 => "minute".into(),
        3600 => "hour".into(),
        86_400 => "day".into(),
        s => format!("{s} seconds"),
    }
}

/// A duration as OpenAI writes it in `x-ratelimit-reset-*`: `20ms`, `1.5s`, `6m0s`, `1h2m3s`.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let frac = d.subsec_millis();
    let s = if frac == 0 || secs >= 60 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

/// One GCRA step. `tat` is the stored theoretical arrival time (µs, any epoch shared with
/// `now`). Returns the decision's numbers and, when allowed, the TAT to store.
fn gcra(tat: Option<u64>, now: u64, rate: Rate) -> (bool, u32, Duration, Duration, Option<u64>) {
    let t = rate.interval_micros();
    let burst = u64::from(rate.count.get());
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat.saturating_add(t);
    let allow_at = new_tat.saturating_sub(t.saturating_mul(burst));
    if now < allow_at {
        let retry = Duration::from_micros(allow_at - now);
        return (false, 0, Duration::from_micros(tat - now), retry, None);
    }
    let remaining = u32::try_from((now - allow_at) / t).unwrap_or(u32::MAX).min(rate.count.get() - 1);
    (true, remaining, Duration::from_micros(new_tat - now), Duration::ZERO, Some(new_tat))
}

/// The most clients the in-memory limiter tracks. Past it, those whose limit has fully recovered
/// are forgotten (nothing is lost), then, if still full, those nearest recovery: forgetting a
/// client grants it the cells it had not yet earned back, and theirs are the fewest.
pub const MEMORY_MAX_KEYS: usize = 100_000;

/// Per-process limiter state.
struct Memory {
    epoch: Instant,
    max: usize,
    gauge: prometheus::IntGauge,
    cells: Mutex<HashMap<[u8; 32], u64>>,
}

impl Memory {
    fn new(max: usize, gauge: prometheus::IntGauge) -> Self {
        Self { epoch: Instant::now(), max: max.max(1), gauge, cells: Mutex::new(HashMap::new()) }
    }

    fn len(&self) -> usize {
        self.cells.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    fn now(&self) -> u64 {
        // Offset by a day so "now" is never near zero (a TAT of 0 reads as "no state").
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX).saturating_add(86_400_000_000)
    }

    fn check(&self, key: &[u8; 32], rate: Rate) -> (bool, u32, Duration, Duration) {
        let now = self.now();
        let mut tats = self.cells.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (allowed, remaining, reset, retry, store) = gcra(tats.get(key).copied(), now, rate);
        if let Some(tat) = store {
            if tats.len() >= self.max && !tats.contains_key(key) {
                tats.retain(|_, tat| *tat > now);
                // All still limited: a quarter goes at once, so this scan is rare.
                if tats.len() >= self.max {
                    let keep = self.max - self.max.div_ceil(4);
                    let mut all: Vec<u64> = tats.values().copied().collect();
                    let cut = all.len() - keep - 1;
                    let (_, last_gone, _) = all.select_nth_unstable(cut);
                    let last_gone = *last_gone;
                    tats.retain(|_, tat| *tat > last_gone);
                }
            }
            tats.insert(*key, tat);
            self.gauge.set(i64::try_from(tats.len()).unwrap_or(i64::MAX));
        }
        (allowed, remaining, reset, retry)
    }
}

/// The same step as `gcra`, in Redis, on Redis's clock. Returns {allowed, remaining, reset µs,
/// retry µs}. Numbers stay below 2^53 (µs since 1970), exact in Lua's doubles.
const GCRA_LUA: &str = r"
local t = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + t
local allow_at = new_tat - t * burst
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
local remaining = math.floor((now - allow_at) / t)
if remaining > burst - 1 then remaining = burst - 1 end
return {1, remaining, new_tat - now, 0}
";

/// How long a limiter check may wait on Redis before this node decides alone.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// At most one "Redis failed" warning per this interval.
const REDIS_WARN_EVERY: Duration = Duration::from_secs(10);

struct Redis {
    conn: redis::aio::ConnectionManager,
    script: redis::Script,
    prefix: String,
    last_warning: AtomicU64,
    started: Instant,
}

impl Redis {
    async fn check(&self, key: &[u8; 32], rate: Rate) -> Result<(bool, u32, Duration, Duration), String> {
        let mut conn = self.conn.clone();
        let name = format!("{}{}", self.prefix, hex(key));
        let mut invocation = self.script.key(name);
        invocation.arg(rate.interval_micros()).arg(rate.count.get());
        let call = invocation.invoke_async::<Vec<i64>>(&mut conn);
        let out = match tokio::time::timeout(REDIS_TIMEOUT, call).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => return Err(format!("{:?}", e.kind())),
            Err(_) => return Err("timed out".into()),
        };
        let [allowed, remaining, reset, retry] = out[..] else {
            return Err(format!("unexpected script answer of {} values", out.len()));
        };
        let micros = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        Ok((allowed == 1, u32::try_from(remaining).unwrap_or(0), micros(reset), micros(retry)))
    }

    fn warn(&self, error: &str) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_warning.load(Ordering::Relaxed);
        let every = u64::try_from(REDIS_WARN_EVERY.as_millis()).unwrap_or(u64::MAX);
        if (last == 0 || now.saturating_sub(last) >= every)
            && self.last_warning.compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(error, "Redis rate limiter failed; limiting on this node alone until it answers again");
        }
    }
}

/// The limiter every route uses.
pub struct RateLimiter {
    pub defaults: Limits,
    memory: Memory,
    redis: Option<Redis>,
    metrics: Arc<Metrics>,
}

/// A URL for messages and logs: scheme, host, port and path only. User, password and query
/// (where `redis+unix://…?pass=` and some proxies carry credentials) are left out.
pub fn redacted_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(u) => {
            let host = u.host_str().unwrap_or_default();
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{host}{port}{}", u.scheme(), u.path())
        }
        Err(_) => "(unparseable URL)".into(),
    }
}

impl RateLimiter {
    /// In-memory limits for this process only.
    pub fn in_memory(defaults: Limits, metrics: Arc<Metrics>) -> Self {
        let gauge = metrics.map_entries.with_label_values(&["rate_limit"]);
        Self { defaults, memory: Memory::new(MEMORY_MAX_KEYS, gauge), redis: None, metrics }
    }

    /// Tracks at most `max_keys` clients in memory (default `MEMORY_MAX_KEYS`).
    pub fn with_memory_bound(mut self, max_keys: usize) -> Self {
        self.memory = Memory::new(max_keys, self.memory.gauge.clone());
        self
    }

    /// Clients the in-memory limiter tracks now.
    pub fn memory_len(&self) -> usize {
        self.memory.len()
    }

    /// Limits shared by every node on the same Redis. Fails when Redis does not answer now,
    /// so a typo in `RELAY_REDIS_URL` stops the server instead of silently splitting limits.
    pub async fn with_redis(defaults: Limits, metrics: Arc<Metrics>, url: &str, prefix: &str) -> anyhow::Result<Self> {
        let shown = redacted_url(url);
        let client = redis::Client::open(url)
            .map_err(|_| anyhow::anyhow!("RELAY_REDIS_URL ({shown}) is not a Redis URL (redis://host:6379)"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        let mut conn = tokio::time::timeout(
            Duration::from_secs(10),
            redis::aio::ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| anyhow::anyhow!("Redis at {shown} (RELAY_REDIS_URL) did not answer within 10 s"))?
        .map_err(|e| anyhow::anyhow!("Redis at {shown} (RELAY_REDIS_URL) refused the connection: {e}"))?;
        let script = redis::Script::new(GCRA_LUA);
        script.prepare_invoke().load_async(&mut conn).await.map_err(|e| {
            anyhow::anyhow!("Redis at {shown} (RELAY_REDIS_URL) could not load the limiter script: {e}")
        })?;
        let redis =
            Redis { conn, script, prefix: prefix.to_owned(), last_warning: AtomicU64::new(0), started: Instant::now() };
        let gauge = metrics.map_entries.with_label_values(&["rate_limit"]);
        Ok(Self { defaults, memory: Memory::new(MEMORY_MAX_KEYS, gauge), redis: Some(redis), metrics })
    }

    pub fn shared(&self) -> bool {
        self.redis.is_some()
    }

    /// Counts one request against `rate` for `identity` in `scope`.
    pub async fn check(&self, scope: Scope, identity: &[u8], rate: Rate) -> Decision {
        let key = limiter_key(scope, identity, rate);
        let (allowed, remaining, reset, retry_after) = match &self.redis {
            Some(redis) => match redis.check(&key, rate).await {
                Ok(out) => out,
                Err(e) => {
                    redis.warn(&e);
                    self.metrics.rate_limit_backend_errors.inc();
                    self.memory.check(&key, rate)
                }
            },
            None => self.memory.check(&key, rate),
        };
        if !allowed {
            self.metrics.rate_limited.with_label_values(&[scope.label()]).inc();
        }
        Decision { scope, allowed, limit: rate.count.get(), remaining, reset, retry_after, period: rate.period }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The key a client's state is stored under: a hash of the scope, the identity and the rate
/// (a tenant that changes its limit starts its clients afresh instead of carrying over a
/// schedule computed for another rate).
fn limiter_key(scope: Scope, identity: &[u8], rate: Rate) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"relay-ratelimit\0");
    h.update(scope.label().as_bytes());
    h.update([0]);
    h.update(rate.count.get().to_be_bytes());
    h.update(rate.interval_micros().to_be_bytes());
    h.update(identity);
    h.finalize().into()
}

/// Request extension: the tightest limit decision so far, written as headers on the answer.
#[derive(Debug, Clone, Copy)]
pub struct Applied(pub Decision);

/// Records `decision` on the request (for the response headers) and turns a refusal into 429.
pub fn apply(req: &actix_web::HttpRequest, decision: Decision) -> Result<(), ApiError> {
    use actix_web::HttpMessage;
    let mut ext = req.extensions_mut();
    let merged = match ext.get::<Applied>() {
        Some(Applied(prev)) => prev.tighter(decision),
        None => decision,
    };
    ext.insert(Applied(merged));
    if decision.allowed {
        Ok(())
    } else {
        Err(decision.error())
    }
}

/// Counts a call to a public route (`Registration` or `Connect`) against the client's address.
pub async fn admit_ip(
    req: &HttpRequest,
    limiter: &RateLimiter,
    browser: &BrowserAccess,
    scope: Scope,
) -> Result<(), ApiError> {
    let limit = match scope {
        Scope::Registration => limiter.defaults.registration,
        _ => limiter.defaults.connect,
    };
    let Some(rate) = limit.rate() else { return Ok(()) };
    let ip = browser.client_ip(req).unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let decision = limiter.check(scope, &BrowserAccess::limiter_identity(ip), rate).await;
    apply(req, decision)
}

/// `*` (any run of characters) and `?` (one character) globs, ASCII case-insensitive, for the
/// free-tier model allowlist.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    let t: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                backtrack = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match backtrack {
                Some((bp, bt)) => {
                    pi = bp + 1;
                    ti = bt + 1;
                    backtrack = Some((bp, bt + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Checks a glob list entry: printable, no spaces, at most 200 characters.
pub fn valid_model_pattern(p: &str) -> bool {
    !p.is_empty() && p.len() <= 200 && p.chars().all(|c| c.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Rate {
        s.parse().expect("rate")
    }

    #[test]
    fn rates_parse_and_print() {
        assert_eq!(r("600/min").to_string(), "600/min");
        assert_eq!(r(" 10 / S ").to_string(), "10/s");
        assert_eq!(r("5/hour").period, Duration::from_secs(3600));
        assert_eq!(r("1/day").to_string(), "1/day");
        for bad in ["", "0/min", "-1/min", "10", "10/fortnight", "x/min", "10/"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
        assert_eq!("off".parse::<Limit>(), Ok(Limit::Off));
        assert_eq!("3/s".parse::<Limit>().map(|l| l.to_string()), Ok("3/s".into()));
    }

    #[test]
    fn gcra_allows_a_burst_then_one_per_interval() {
        let rate = r("3/s");
        let mut tat = None;
        let now = 10_000_000;
        for want_remaining in [2, 1, 0] {
            let (ok, remaining, _, _, store) = gcra(tat, now, rate);
            assert!(ok);
            assert_eq!(remaining, want_remaining);
            tat = store;
        }
        let (ok, remaining, reset, retry, store) = gcra(tat, now, rate);
        assert!(!ok && remaining == 0 && store.is_none());
        assert_eq!(retry, Duration::from_micros(333_333));
        assert_eq!(reset, Duration::from_micros(999_999));
        // One interval later exactly one more fits.
        let later = now + 333_333;
        let (ok, remaining, _, _, store) = gcra(tat, later, rate);
        assert!(ok && remaining == 0);
        assert!(!gcra(store, later, rate).0);
        // After a full period of quiet, the whole burst is back.
        let (ok, remaining, ..) = gcra(store, later + 1_000_000, rate);
        assert!(ok && remaining == 2);
    }

    #[test]
    fn decisions_pick_the_tighter() {
        let d = |allowed, remaining| Decision {
            scope: Scope::ApiKey,
            allowed,
            limit: 10,
            remaining,
            reset: Duration::from_secs(1),
            retry_after: Duration::ZERO,
            period: Duration::from_secs(1),
        };
        assert_eq!(d(true, 5).tighter(d(true, 2)).remaining, 2);
        assert_eq!(d(true, 2).tighter(d(true, 5)).remaining, 2);
        assert!(!d(true, 0).tighter(d(false, 0)).allowed);
        assert!(!d(false, 0).tighter(d(true, 0)).allowed);
    }

    #[test]
    fn durations_read_like_openais() {
        assert_eq!(go_duration(Duration::from_millis(20)), "20ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_secs(360)), "6m0s");
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
    }

    #[test]
    fn headers_on_a_refusal() {
        let d = Decision {
            scope: Scope::EndUser { paid: false },
            allowed: false,
            limit: 20,
            remaining: 0,
            reset: Duration::from_secs(60),
            retry_after: Duration::from_millis(2100),
            period: Duration::from_secs(60),
        };
        let mut h = HeaderMap::new();
        d.write_headers(&mut h);
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(get("retry-after").as_deref(), Some("3"));
        assert_eq!(get("retry-after-ms").as_deref(), Some("2100"));
        assert_eq!(get("x-ratelimit-limit-requests").as_deref(), Some("20"));
        assert_eq!(get("x-ratelimit-remaining-requests").as_deref(), Some("0"));
        assert_eq!(get("x-ratelimit-reset-requests").as_deref(), Some("1m0s"));
        let e = d.error();
        assert_eq!(e.status_code_u16(), 429);
        assert_eq!(e.code(), "rate_limit_exceeded");
        assert!(e.message().contains("free tier") && e.message().contains("20 requests per minute"), "{}", e.message());
    }

    #[test]
    fn memory_limiter_forgets_recovered_clients() {
        let m = Memory::new(MEMORY_MAX_KEYS, prometheus::IntGauge::new("g", "g").expect("gauge"));
        let rate = r("2/s");
        assert!(m.check(&[1; 32], rate).0);
        assert!(m.check(&[1; 32], rate).0);
        assert!(!m.check(&[1; 32], rate).0);
        assert!(m.check(&[2; 32], rate).0, "another client has its own limit");
    }

    #[test]
    fn urls_in_messages_carry_no_credentials() {
        assert_eq!(redacted_url("redis://user:hunter2@cache.internal:6380/2"), "redis://cache.internal:6380/2");
        assert_eq!(redacted_url("redis+unix:///run/redis.sock?pass=hunter2&db=1"), "redis+unix:///run/redis.sock");
        assert_eq!(redacted_url("https://tok:secret@proxy.example/v1?key=abc"), "https://proxy.example/v1");
        assert_eq!(redacted_url("not a url"), "(unparseable URL)");
    }

    #[test]
    fn globs() {
        assert!(glob_matches("gpt-4o-mini", "gpt-4o-mini"));
        assert!(glob_matches("gpt-4o-mini", "GPT-4o-Mini"));
        assert!(!glob_matches("gpt-4o-mini", "gpt-4o-mini-2024"));
        assert!(glob_matches("claude-haiku-*", "claude-haiku-4-5"));
        assert!(glob_matches("claude-*-haiku*", "claude-3-5-haiku-latest"));
        assert!(!glob_matches("claude-haiku-*", "claude-sonnet-4"));
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("gemini-?.?-flash", "gemini-2.5-flash"));
        assert!(!glob_matches("gemini-?.?-flash", "gemini-2.5-pro"));
        assert!(glob_matches("a*b*c", "aXXbYYc"));
        assert!(!glob_matches("a*b*c", "aXXbYY"));
        assert!(valid_model_pattern("claude-haiku-*"));
        assert!(!valid_model_pattern("has space"));
        assert!(!valid_model_pattern(""));
    }
}

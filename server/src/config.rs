//! Configuration: flags with environment fallbacks (and `.env`). With no `DATABASE_URL`, Relay
//! runs embedded: SQLite and a generated master key in `./relay-data/`. Anywhere else a master
//! key must be given, and a missing or malformed one stops the server.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use secrecy::SecretString;

use crate::providers::ProviderId;
use crate::store::DatabaseUrl;
use crate::vault::{LocalKeyring, MasterKeys};

const GENERATE_HINT: &str = "Generate one with `relay kek generate` (or: echo \"v1:$(openssl rand -base64 32)\") \
and pass it as RELAY_MASTER_KEYS=v1:<base64> or in a file named by RELAY_MASTER_KEY_FILE, \
or keep it in AWS KMS with RELAY_KMS_KEY_ID=<key id, ARN or alias>.";

/// Where data and master keys come from; shared by every command that touches the store.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// postgres://… for production; sqlite:PATH for a file; unset: embedded SQLite in --data-dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Directory of the embedded default (SQLite database and generated master key).
    #[arg(long, env = "RELAY_DATA_DIR", default_value = "relay-data")]
    pub data_dir: PathBuf,
    /// File holding master keys, one `v<N>:<base64 32 bytes>` (or `v<N>:aws-kms:<key id>`) per
    /// line, newest first.
    #[arg(long, env = "RELAY_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// An AWS KMS key (id, ARN or alias) as the only master key, v1. To move keys between KMS and
    /// local master keys, list both in RELAY_MASTER_KEYS instead (`v2:aws-kms:<key id>,v1:…`).
    #[arg(long, env = "RELAY_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,
}

/// Everything the store and vault need, resolved.
pub struct StoreConfig {
    pub database: DatabaseUrl,
    pub keyring: MasterKeys,
    pub embedded: bool,
}

impl StoreArgs {
    /// Resolves the database and master keys. Master keys come only from the environment
    /// (`RELAY_MASTER_KEYS`) or a file, never from a flag that `ps` would show.
    pub fn resolve(&self) -> anyhow::Result<StoreConfig> {
        let env_keys = std::env::var("RELAY_MASTER_KEYS").ok().filter(|s| !s.trim().is_empty());
        let explicit_keys = match (&env_keys, &self.master_key_file) {
            (Some(_), Some(_)) => bail!("Set either RELAY_MASTER_KEYS or RELAY_MASTER_KEY_FILE, not both."),
            (Some(k), None) => Some((SecretString::from(k.clone()), "RELAY_MASTER_KEYS".to_owned())),
            (None, Some(path)) => Some((read_key_file(path)?, path.display().to_string())),
            (None, None) => None,
        };
        let explicit_keys = match (explicit_keys, self.kms_key_id.as_deref().map(str::trim).filter(|k| !k.is_empty())) {
            (Some((_, from)), Some(_)) => bail!(
                "Set either RELAY_KMS_KEY_ID or master keys in {from}, not both. To use local master keys and \
                 AWS KMS side by side (while `relay kek rotate` moves keys between them), list the KMS key among \
                 the master keys with a version of its own: v2:aws-kms:<key id>,v1:<base64>."
            ),
            (None, Some(key_id)) => {
                let keys = MasterKeys::aws_kms(key_id)
                    .map_err(|_| anyhow::anyhow!("RELAY_KMS_KEY_ID is not a KMS key id, ARN or alias."))?;
                Some(Keys::Parsed(keys))
            }
            (Some((spec, from)), None) => Some(Keys::Spec(spec, from)),
            (None, None) => None,
        };
        let parse = |keys: Keys| match keys {
            Keys::Parsed(keys) => Ok(keys),
            Keys::Spec(spec, from) => MasterKeys::parse(&spec)
                .with_context(|| format!("The master key in {from} is not usable. {GENERATE_HINT}")),
        };

        match &self.database_url {
            Some(url) => {
                let database = DatabaseUrl::parse(url).map_err(anyhow::Error::msg)?;
                let Some(keys) = explicit_keys else {
                    bail!("No master key is configured. DATABASE_URL is set, so Relay will not invent one. {GENERATE_HINT}");
                };
                Ok(StoreConfig { database, keyring: parse(keys)?, embedded: false })
            }
            None => {
                ensure_private_dir(&self.data_dir)?;
                let database = DatabaseUrl::Sqlite(self.data_dir.join("relay.db"));
                let path = self.data_dir.join("master.key");
                let keyring = match explicit_keys {
                    Some(Keys::Parsed(_)) if path.exists() => bail!(
                        "{} holds the master key this data directory's keys are sealed under. To move them \
                         to AWS KMS, list both in RELAY_MASTER_KEYS (v2:aws-kms:<key id>,<the file's v1 entry>) \
                         and run `relay kek rotate`.",
                        path.display()
                    ),
                    Some(keys) => parse(keys)?,
                    None => {
                        if !path.exists() {
                            write_new_key_file(&path)?;
                        }
                        parse(Keys::Spec(read_key_file(&path)?, path.display().to_string()))?
                    }
                };
                Ok(StoreConfig { database, keyring, embedded: true })
            }
        }
    }
}

/// Master keys as configured, before they are parsed.
enum Keys {
    Spec(SecretString, String),
    Parsed(MasterKeys),
}

fn read_key_file(path: &Path) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("Could not read the master key file {}. {GENERATE_HINT}", path.display()))?;
    Ok(SecretString::from(text))
}

fn ensure_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("Could not create the data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("Could not restrict {}", dir.display()))?;
    }
    Ok(())
}

/// Creates the embedded default's master key file, readable by its owner only (0600).
fn write_new_key_file(path: &Path) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| format!("Could not create {}", path.display()))?;
    let entry = LocalKeyring::generate_entry(1);
    writeln!(file, "{}", secrecy::ExposeSecret::expose_secret(&entry))?;
    file.sync_all()?;
    Ok(())
}

/// `relay serve` settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on.
    #[arg(long, env = "RELAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// The URL clients reach this server at (used in links it hands out).
    #[arg(long, env = "RELAY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Check a key with its provider before storing it.
    #[arg(long, env = "RELAY_VERIFY_PROVIDER_KEYS", default_value_t = true, action = clap::ArgAction::Set)]
    pub verify_provider_keys: bool,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "RELAY_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Largest request body relayed through /relay/{provider}/…, in bytes.
    #[arg(long, env = "RELAY_MAX_RELAY_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_relay_body_bytes: usize,
    /// Seconds to wait for a provider when checking a key.
    #[arg(long, env = "RELAY_KEY_CHECK_TIMEOUT", default_value_t = 15)]
    pub key_check_timeout_secs: u64,
    /// Seconds to wait for a provider's first response byte (a whole non-streaming answer).
    #[arg(long, env = "RELAY_UPSTREAM_FIRST_BYTE_TIMEOUT", default_value_t = 600)]
    pub upstream_first_byte_timeout_secs: u64,
    /// Longest silence, in seconds, between two chunks of a provider's stream.
    #[arg(long, env = "RELAY_UPSTREAM_IDLE_TIMEOUT", default_value_t = 120)]
    pub upstream_idle_timeout_secs: u64,
    /// Seconds to wait for a TCP/TLS connection to a provider.
    #[arg(long, env = "RELAY_UPSTREAM_CONNECT_TIMEOUT", default_value_t = 10)]
    pub upstream_connect_timeout_secs: u64,
    /// Serve /metrics on this address instead of the main listener (e.g. 127.0.0.1:9090).
    #[arg(long, env = "RELAY_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Seconds a client has to send a request's whole body (counted from its head); later, 408
    /// and the connection is closed.
    #[arg(long, env = "RELAY_BODY_TIMEOUT", default_value_t = 60)]
    pub body_timeout_secs: u64,
    /// Client connections open at once, over all workers; more wait in the listen backlog.
    #[arg(long, env = "RELAY_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Seconds in-flight requests and streams may take to finish after SIGTERM/SIGINT.
    #[arg(long, env = "RELAY_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,
    /// Requests per `rly-` key (`<count>/<s|min|hour|day>`, or `off`); a tenant may override.
    #[arg(long, env = "RELAY_RATE_LIMIT_KEY", default_value = "100/s")]
    pub rate_limit_key: crate::ratelimit::Limit,
    /// Provider calls per end user on the paid tier; a tenant may override.
    #[arg(long, env = "RELAY_RATE_LIMIT_USER", default_value = "120/min")]
    pub rate_limit_user: crate::ratelimit::Limit,
    /// Provider calls per end user on the free tier (`X-Relay-Paid: false`); a tenant may override.
    #[arg(long, env = "RELAY_RATE_LIMIT_FREE_USER", default_value = "20/min")]
    pub rate_limit_free_user: crate::ratelimit::Limit,
    /// Anonymous byok-flow registrations (POST /users) per client IP.
    #[arg(long, env = "RELAY_RATE_LIMIT_REGISTRATION", default_value = "10/min")]
    pub rate_limit_registration: crate::ratelimit::Limit,
    /// Key-connect calls (GET /v1/connect/{token}, POST /v1/connect) per client IP.
    #[arg(long, env = "RELAY_RATE_LIMIT_CONNECT", default_value = "30/min")]
    pub rate_limit_connect: crate::ratelimit::Limit,
    /// Redis shared by every relay node for rate limits (`redis://host:6379`); in memory without.
    #[arg(long, env = "RELAY_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of Relay's keys in Redis.
    #[arg(long, env = "RELAY_REDIS_PREFIX", default_value = "relay:rl:")]
    pub redis_prefix: String,
    /// Seconds a node trusts what it read of a Relay key, an end user, a sealed provider key or a
    /// tenant's settings before reading it again (0: every request reads the database). A key
    /// revoked, or a user erased, on another node stops working here within this time.
    #[arg(long, env = "RELAY_CACHE_TTL", default_value_t = 2)]
    pub cache_ttl_secs: u64,
    /// Proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For names the client.
    #[arg(long, env = "RELAY_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "RELAY_WORKERS")]
    pub workers: Option<usize>,
    /// A JSON price table that extends the built-in one (an entry for the same provider and
    /// model replaces it), or replaces it whole with `"replace": true`.
    #[arg(long, env = "RELAY_PRICING_FILE")]
    pub pricing_file: Option<PathBuf>,
    /// Webhook retry delays in seconds after each failed attempt, comma-separated (default
    /// 5,300,1800,7200,18000,36000,36000: over 24 h); after the last the delivery is failed.
    #[arg(long, env = "RELAY_WEBHOOK_RETRY_SCHEDULE")]
    pub webhook_retry_schedule: Option<String>,
    /// Days raw usage events are kept (0: forever). Older days are still reported, from the
    /// daily roll-ups.
    #[arg(long, env = "RELAY_USAGE_RETENTION_DAYS", default_value_t = crate::retention::DEFAULT_USAGE_RETENTION_DAYS)]
    pub usage_retention_days: u32,
    /// Days the daily usage roll-ups are kept (0: forever); at least RELAY_USAGE_RETENTION_DAYS.
    #[arg(long, env = "RELAY_USAGE_ROLLUP_RETENTION_DAYS", default_value_t = 0)]
    pub usage_rollup_retention_days: u32,
    /// Log format on stderr.
    #[arg(long, env = "RELAY_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: crate::telemetry::LogFormat,
}

/// Where rate-limit state is shared.
#[derive(Clone)]
pub struct RedisConfig {
    /// May carry a password: never printed as it is.
    pub url: SecretString,
    pub prefix: String,
}

/// The server's configuration, resolved and ready for `Application::build`.
pub struct Config {
    pub listen: String,
    pub store: StoreConfig,
    pub public_url: Option<String>,
    pub verify_provider_keys: bool,
    pub max_body_bytes: usize,
    pub max_relay_body_bytes: usize,
    pub upstream_timeouts: crate::upstream::UpstreamTimeouts,
    pub workers: Option<usize>,
    /// Browser flow: trusted proxies.
    pub browser: crate::browser::BrowserConfig,
    /// Default rate limits (tenants may override some).
    pub limits: crate::ratelimit::Limits,
    /// Shared rate-limit state for several nodes; in memory when `None`.
    pub redis: Option<RedisConfig>,
    /// How long a node trusts what it read of keys, end users and tenant settings (zero: not at all).
    pub cache_ttl: Duration,
    pub metrics_listen: Option<String>,
    pub shutdown_timeout_secs: u64,
    /// What one client may take: a body deadline, a connection cap.
    pub client_limits: crate::client_limits::ClientLimits,
    /// Where `openai-compatible` keys may send requests (RELAY_ALLOW_UPSTREAM_HOSTS,
    /// RELAY_ALLOW_PRIVATE_UPSTREAMS).
    pub upstream_policy: crate::ssrf::UpstreamPolicy,
    /// `RELAY_UPSTREAM_<PROVIDER>` overrides.
    pub upstreams: HashMap<ProviderId, String>,
    /// The price table (built in, or as `RELAY_PRICING_FILE` extended or replaced it).
    pub prices: std::sync::Arc<crate::pricing::Prices>,
    /// Delays between webhook attempts (`RELAY_WEBHOOK_RETRY_SCHEDULE`).
    pub webhook_retry_schedule: Vec<Duration>,
    /// How long usage events and their roll-ups are kept.
    pub retention: crate::retention::Retention,
}

impl Config {
    pub fn from_args(args: &ServeArgs) -> anyhow::Result<Self> {
        Ok(Self {
            listen: args.listen.clone(),
            store: args.store.resolve()?,
            public_url: args.public_url.clone(),
            verify_provider_keys: args.verify_provider_keys,
            max_body_bytes: args.max_body_bytes,
            max_relay_body_bytes: args.max_relay_body_bytes,
            upstream_timeouts: crate::upstream::UpstreamTimeouts {
                connect: Duration::from_secs(args.upstream_connect_timeout_secs),
                key_check: Duration::from_secs(args.key_check_timeout_secs),
                first_byte: Duration::from_secs(args.upstream_first_byte_timeout_secs),
                idle: Duration::from_secs(args.upstream_idle_timeout_secs),
            },
            workers: args.workers,
            limits: crate::ratelimit::Limits {
                api_key: args.rate_limit_key,
                end_user: args.rate_limit_user,
                free_end_user: args.rate_limit_free_user,
                registration: args.rate_limit_registration,
                connect: args.rate_limit_connect,
            },
            redis: args
                .redis_url
                .as_ref()
                .map(|url| RedisConfig { url: SecretString::from(url.clone()), prefix: args.redis_prefix.clone() }),
            cache_ttl: Duration::from_secs(args.cache_ttl_secs),
            browser: crate::browser::BrowserConfig {
                trusted_proxies: crate::browser::parse_trusted_proxies(&args.trusted_proxies)
                    .map_err(|e| anyhow::anyhow!("RELAY_TRUSTED_PROXIES: {e}"))?,
            },
            metrics_listen: args.metrics_listen.clone(),
            shutdown_timeout_secs: args.shutdown_timeout_secs,
            client_limits: crate::client_limits::ClientLimits {
                body_timeout: Duration::from_secs(args.body_timeout_secs.max(1)),
                max_connections: args.max_connections.max(1),
            },
            upstream_policy: crate::ssrf::UpstreamPolicy::from_env()?,
            upstreams: upstreams_from_env()?,
            prices: std::sync::Arc::new(crate::pricing::Prices::load(args.pricing_file.as_deref())?),
            webhook_retry_schedule: match &args.webhook_retry_schedule {
                Some(raw) => crate::webhooks::parse_retry_schedule(raw)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", crate::webhooks::ENV_RETRY_SCHEDULE))?,
                None => crate::webhooks::DEFAULT_RETRY_SCHEDULE.to_vec(),
            },
            retention: crate::retention::Retention::new(args.usage_retention_days, args.usage_rollup_retention_days)
                .map_err(anyhow::Error::msg)?,
        })
    }
}

pub fn upstreams_from_env() -> anyhow::Result<HashMap<ProviderId, String>> {
    let mut out = HashMap::new();
    for p in ProviderId::ALL {
        if let Ok(url) = std::env::var(p.env_var()) {
            let url = url.trim().to_owned();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("{} must be an http:// or https:// URL", p.env_var());
            }
            out.insert(p, url);
        }
    }
    Ok(out)
}

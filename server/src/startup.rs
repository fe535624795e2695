//! Builds the server: opens the store, runs migrations, assembles the vault and the HTTP app,
//! binds the listener. Tests bind port 0 and read the port back.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use crate::auth::session::SessionService;
use crate::browser::{self, BrowserAccess};
use crate::budgets::Budgets;
use crate::client_limits;
use crate::config::Config;
use crate::console::Console;
use crate::error::{json_error, ApiError};
use crate::keys::KeyService;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::routes::ServerSettings;
use crate::store::{self, DynStore, Store};
use crate::upstream::{Upstream, Upstreams};
use crate::usage_log::UsageLog;
use crate::vault::Vault;
use crate::webhooks::Webhooks;
use crate::{auth, routes, telemetry};

/// Small writes (an SSE chunk, a short JSON answer) leave at once instead of waiting for the
/// client's delayed acknowledgement (Nagle's algorithm).
fn no_delay(connection: &dyn std::any::Any, _: &mut actix_web::dev::Extensions) {
    if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    }
}

/// The separate metrics listener's one route.
async fn metrics_only(metrics: web::Data<Metrics>) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(metrics.render())
}

/// The services handlers and middleware take, each registered on its own.
#[derive(Clone)]
struct Services {
    store: web::Data<dyn Store>,
    keys: web::Data<KeyService>,
    sessions: web::Data<SessionService>,
    browser: web::Data<BrowserAccess>,
    limiter: web::Data<RateLimiter>,
    usage: web::Data<UsageLog>,
    metrics: web::Data<Metrics>,
    upstream: web::Data<Upstream>,
    settings: web::Data<ServerSettings>,
    webhooks: web::Data<Webhooks>,
    console: web::Data<Console>,
}

impl Services {
    fn register<T>(&self, app: App<T>) -> App<T>
    where
        T: actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Error = actix_web::Error,
            InitError = (),
        >,
    {
        app.app_data(self.store.clone())
            .app_data(self.keys.clone())
            .app_data(self.sessions.clone())
            .app_data(self.browser.clone())
            .app_data(self.limiter.clone())
            .app_data(self.usage.clone())
            .app_data(self.metrics.clone())
            .app_data(self.upstream.clone())
            .app_data(self.settings.clone())
            .app_data(self.webhooks.clone())
            .app_data(self.console.clone())
    }
}

pub struct Application {
    usage: UsageLog,
    /// The webhook delivery worker, stopped when the server is.
    webhook_worker: tokio::task::JoinHandle<()>,
    /// The usage retention task, stopped when the server is.
    retention: tokio::task::JoinHandle<()>,
    port: u16,
    metrics_port: Option<u16>,
    server: Server,
    metrics_server: Option<Server>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = store::connect(&config.store.database).await?;
        store.migrate().await?;
        Self::build_with_store(config, store).await
    }

    pub async fn build_with_store(config: Config, store: DynStore) -> anyhow::Result<Self> {
        // What every request reads (its key, end user, sealed provider key, tenant settings) is
        // remembered for a moment; see store/cached.rs.
        let metrics = Arc::new(Metrics::new()?);
        let store: DynStore = if config.cache_ttl.is_zero() {
            store
        } else {
            let cached = Arc::new(store::cached::CachedStore::new(store, config.cache_ttl).with_metrics(&metrics));
            cached.clone().follow(metrics.clone());
            cached
        };
        let vault = Vault::new(config.store.keyring.into_source().await.context("The master keys are not usable")?);
        let webhook_policy = config.upstream_policy.clone();
        let timeouts = config.upstream_timeouts;
        let upstreams = Upstreams::new(&config.upstreams, &timeouts)?.with_policy(config.upstream_policy)?;
        let keys = KeyService::new(store.clone(), vault, upstreams.clone(), config.verify_provider_keys)
            .with_metrics(&metrics);
        let sessions = SessionService::load(store.clone(), keys.vault()).await?;
        let browser = BrowserAccess::new(store.clone(), &config.browser, config.public_url.as_deref());
        let console = Console::new(store.clone(), config.public_url.as_deref());
        let limiter = match &config.redis {
            Some(redis) => {
                use secrecy::ExposeSecret;
                RateLimiter::with_redis(config.limits, metrics.clone(), redis.url.expose_secret(), &redis.prefix)
                    .await?
            }
            None => RateLimiter::in_memory(config.limits, metrics.clone()),
        };
        // Webhook endpoints are under the same SSRF policy (and allow-list) as upstreams.
        let webhooks = Webhooks::new(
            store.clone(),
            keys.vault().clone(),
            metrics.clone(),
            webhook_policy,
            config.webhook_retry_schedule,
            config.public_url.clone(),
        )?;
        let webhook_worker = webhooks.start();
        let retention = crate::retention::start(store.clone(), metrics.clone(), config.retention);
        let budgets = Budgets::new(store.clone(), metrics.clone(), webhooks.clone());
        let usage = UsageLog::start(store.clone(), budgets.clone(), metrics.clone());
        let upstream = Upstream::new(
            upstreams,
            keys.clone(),
            budgets,
            webhooks.clone(),
            metrics.clone(),
            usage.clone(),
            config.prices.clone(),
        );
        // Each handler takes the services it uses (`web::Data<…>`), nothing else.
        let services = Services {
            store: web::Data::from(store),
            keys: web::Data::new(keys),
            sessions: web::Data::new(sessions),
            browser: web::Data::new(browser),
            limiter: web::Data::new(limiter),
            usage: web::Data::new(usage.clone()),
            metrics: web::Data::from(metrics),
            upstream: web::Data::new(upstream),
            settings: web::Data::new(ServerSettings {
                max_relay_body_bytes: config.max_relay_body_bytes,
                metrics_elsewhere: config.metrics_listen.is_some(),
            }),
            webhooks: web::Data::new(webhooks),
            console: web::Data::new(console),
        };
        let metrics_server = match &config.metrics_listen {
            Some(addr) => {
                let metrics = services.metrics.clone();
                let server = HttpServer::new(move || {
                    App::new().app_data(metrics.clone()).route("/metrics", web::get().to(metrics_only))
                })
                .on_connect(no_delay)
                .workers(1)
                .disable_signals()
                .bind(addr)?;
                let port = server.addrs().first().map(|a| a.port());
                Some((server.run(), port))
            }
            None => None,
        };

        let listener = TcpListener::bind(&config.listen)?;
        let port = listener.local_addr()?.port();
        let max_body = config.max_body_bytes;
        let client_limits = web::Data::new(config.client_limits);
        let workers = config.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        let server = HttpServer::new(move || {
            let cors = services.browser.cors();
            services
                .register(App::new())
                .app_data(web::JsonConfig::default().limit(max_body).error_handler(|err, _req| json_error(err).into()))
                .app_data(web::PayloadConfig::default().limit(max_body))
                .app_data(client_limits.clone())
                .app_data(web::QueryConfig::default().error_handler(|err, _req| {
                    ApiError::invalid_request("invalid_query", format!("The query string is not valid: {err}")).into()
                }))
                .app_data(web::PathConfig::default().error_handler(|err, _req| {
                    ApiError::invalid_request("invalid_path", format!("The URL path is not valid: {err}")).into()
                }))
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
                .wrap(from_fn(auth::authenticate))
                .wrap(cors)
                .wrap(from_fn(browser::gate))
                .wrap(from_fn(client_limits::body_deadline))
                .wrap(from_fn(telemetry::request_context))
        })
        .on_connect(no_delay)
        .listen(listener)?
        .shutdown_timeout(config.shutdown_timeout_secs)
        // The request head (line and headers); the body has `client_limits::body_deadline`.
        .client_request_timeout(Duration::from_secs(30))
        .workers(workers)
        .max_connections(config.client_limits.per_worker(workers));
        let (metrics_server, metrics_port) = match metrics_server {
            Some((s, p)) => (Some(s), p),
            None => (None, None),
        };
        Ok(Self { usage, webhook_worker, retention, port, metrics_port, server: server.run(), metrics_server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the separate metrics listener, when there is one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// Serves until SIGTERM/SIGINT: the main server stops accepting, lets in-flight requests
    /// and streams finish (up to the shutdown timeout), then the metrics listener stops too.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = match self.metrics_server {
            None => self.server.await,
            Some(metrics) => {
                let metrics_handle = metrics.handle();
                let metrics_task = tokio::spawn(metrics);
                let result = self.server.await;
                metrics_handle.stop(true).await;
                let _ = metrics_task.await;
                result
            }
        };
        // An attempt cut short here is claimed again when its lease ends (at least once).
        self.webhook_worker.abort();
        self.retention.abort();
        // The last calls' usage events, before the process exits.
        if let Err(e) = self.usage.flush().await {
            tracing::error!(error = ?e, "usage events not written at shutdown: the database does not answer");
        }
        result
    }
}

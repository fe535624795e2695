//! Builds the server: opens the store, runs migrations, assembles the vault and the HTTP app,
//! binds the listener. Tests bind port 0 and read the port back.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::config::Config;
use crate::error::{json_error, ApiError};
use crate::keys::KeyService;
use crate::providers::Upstreams;
use crate::store::{self, DynStore};
use crate::vault::Vault;
use crate::{auth, routes, telemetry};

/// What every handler can reach.
pub struct AppState {
    pub store: DynStore,
    pub keys: KeyService,
    pub public_url: Option<String>,
    pub max_relay_body_bytes: usize,
}

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = store::connect(&config.store.database).await?;
        store.migrate().await?;
        Self::build_with_store(config, store).await
    }

    pub async fn build_with_store(config: Config, store: DynStore) -> anyhow::Result<Self> {
        let vault = Vault::new(Arc::new(config.store.keyring));
        let timeouts = config.upstream_timeouts;
        let upstreams = Upstreams::new(&config.upstreams, &timeouts)?;
        let keys = KeyService::new(store.clone(), vault, upstreams, config.verify_provider_keys, timeouts.key_check);
        let state = web::Data::new(AppState {
            store,
            keys,
            public_url: config.public_url,
            max_relay_body_bytes: config.max_relay_body_bytes,
        });

        let listener = TcpListener::bind(&config.listen)?;
        let port = listener.local_addr()?.port();
        let max_body = config.max_body_bytes;
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::JsonConfig::default().limit(max_body).error_handler(|err, _req| json_error(err).into()))
                .app_data(web::PayloadConfig::default().limit(max_body))
                .app_data(web::PathConfig::default().error_handler(|err, _req| {
                    ApiError::invalid_request("invalid_path", format!("The URL path is not valid: {err}")).into()
                }))
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
                .wrap(from_fn(auth::authenticate))
                .wrap(from_fn(telemetry::request_context))
        })
        .listen(listener)?
        .shutdown_timeout(30)
        .client_request_timeout(Duration::from_secs(30));
        if let Some(workers) = config.workers {
            server = server.workers(workers);
        }
        Ok(Self { port, server: server.run() })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

//! Liveness and readiness.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok", "version": "0.1.0"}))]
pub struct Health {
    /// Always `ok`.
    status: &'static str,
    /// The server's version.
    version: &'static str,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ready", "database": "postgres"}))]
pub struct Ready {
    /// Always `ready`.
    status: &'static str,
    /// The store backend: `postgres` or `sqlite`.
    database: &'static str,
}

/// Liveness
///
/// Answers while the process runs; checks nothing else.
#[utoipa::path(
    get,
    path = "/api/health",
    tag = "operations",
    operation_id = "health",
    responses((status = 200, description = "The server is up.", body = Health))
)]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok", version: env!("CARGO_PKG_VERSION") })
}

/// Readiness
///
/// Answers 200 when the database answers, 503 when it does not.
#[utoipa::path(
    get,
    path = "/api/ready",
    tag = "operations",
    operation_id = "ready",
    responses(
        (status = 200, description = "The database answers.", body = Ready),
        (status = 503, description = "The database does not answer (`store_unavailable`, with `Retry-After`).", body = ErrorBody),
    )
)]
pub async fn ready(store: web::Data<dyn Store>) -> Result<HttpResponse, ApiError> {
    store.ping().await.map_err(ApiError::unavailable)?;
    Ok(HttpResponse::Ok().json(Ready { status: "ready", database: store.backend() }))
}

/// Prometheus metrics
///
/// Prometheus text exposition format. Served here unless `RELAY_METRICS_LISTEN` moves it to its
/// own address, in which case this route answers 404.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text format (version 0.0.4).", content_type = "text/plain; version=0.0.4", body = String,
         example = "# TYPE relay_http_requests_total counter\nrelay_http_requests_total{method=\"GET\",route=\"/api/health\",status=\"200\"} 1\n"),
        (status = 404, description = "Metrics are served on the separate metrics listener (`unknown_route`).", body = ErrorBody),
    )
)]
pub async fn metrics(
    metrics: web::Data<Metrics>,
    settings: web::Data<super::ServerSettings>,
) -> Result<HttpResponse, ApiError> {
    if settings.metrics_elsewhere {
        return Err(ApiError::not_found("unknown_route", "Metrics are served on the metrics listener."));
    }
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(metrics.render()))
}

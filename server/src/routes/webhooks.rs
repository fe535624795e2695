//! Webhook endpoints as their tenant manages them (`/v1/webhook-endpoints`): create (the secret
//! is shown once), list, get, delete, and each endpoint's recent deliveries.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::TenantAuth;
use crate::error::{ApiError, ErrorBody};
use crate::store::{Store, WebhookDelivery, WebhookEndpoint};
use crate::webhooks::{EventType, NewEndpoint, Webhooks};

const DEFAULT_DELIVERIES: u32 = 50;
const MAX_DELIVERIES: u32 = 200;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://app.example.com/hooks/relay", "events": ["key.connected", "key.removed"], "description": "production"}))]
pub struct CreateEndpointBody {
    /// Where to POST events: https (plain http only for a host on the operator's allow-list),
    /// under the same SSRF policy as upstreams; no credentials, query or fragment.
    url: String,
    /// The event types to receive; omit for every type (also ones added later).
    #[schema(value_type = Option<Vec<EventType>>)]
    events: Option<Vec<String>>,
    /// A note for yourself (at most 256 characters).
    description: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = WebhookEndpoint, example = json!({"id": "6f1c2d9e-8a4b-4c3d-9e2f-1a2b3c4d5e6f", "url": "https://app.example.com/hooks/relay", "events": ["key.connected"], "description": null, "createdAt": "2026-01-01T12:00:00Z"}))]
pub struct EndpointView {
    #[schema(value_type = String, example = "6f1c2d9e-8a4b-4c3d-9e2f-1a2b3c4d5e6f")]
    id: uuid::Uuid,
    url: String,
    /// The event types it receives; null: every type.
    #[schema(value_type = Option<Vec<EventType>>, required = true)]
    events: Option<Vec<String>>,
    #[schema(required = true)]
    description: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<WebhookEndpoint> for EndpointView {
    fn from(e: WebhookEndpoint) -> Self {
        Self { id: e.id, url: e.url, events: e.events, description: e.description, created_at: e.created_at }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = WebhookEndpointCreated)]
pub struct CreatedView {
    #[serde(flatten)]
    endpoint: EndpointView,
    /// The signing secret (`whsec_…`), shown this once: verify deliveries with it.
    secret: String,
}

#[derive(Serialize, ToSchema)]
#[schema(as = WebhookEndpointList)]
pub struct EndpointList {
    data: Vec<EndpointView>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = WebhookDelivery, example = json!({"eventId": "msg_2b0c7e4f9a1d4e6b8c3f5a7d9e1b3c5f", "type": "key.connected", "status": "pending", "attempts": 2, "lastStatus": 500, "lastError": "HTTP 500", "lastAttemptAt": "2026-01-01T12:00:05Z", "nextAttemptAt": "2026-01-01T12:05:05Z", "createdAt": "2026-01-01T12:00:00Z"}))]
pub struct DeliveryView {
    /// The event's id, the `webhook-id` header of every attempt.
    event_id: String,
    #[serde(rename = "type")]
    #[schema(value_type = EventType)]
    kind: String,
    /// `pending` (waiting for an attempt or a retry), `delivered` or `failed` (retries used up).
    #[schema(value_type = String, example = "pending")]
    status: &'static str,
    attempts: u32,
    /// The HTTP status of the last attempt, if the endpoint answered.
    #[schema(required = true)]
    last_status: Option<u16>,
    /// Why the last attempt failed (`HTTP 500`, `no answer within 10 s`, …).
    #[schema(required = true)]
    last_error: Option<String>,
    #[schema(required = true)]
    last_attempt_at: Option<DateTime<Utc>>,
    /// When the next attempt is due; null once delivered or failed.
    #[schema(required = true)]
    next_attempt_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl From<WebhookDelivery> for DeliveryView {
    fn from(d: WebhookDelivery) -> Self {
        Self {
            event_id: d.event_id,
            kind: d.event_type,
            status: d.status.as_str(),
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error,
            last_attempt_at: d.last_attempt_at,
            next_attempt_at: d.next_attempt_at,
            created_at: d.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(as = WebhookDeliveryList)]
pub struct DeliveryList {
    data: Vec<DeliveryView>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// How many, newest first (default 50, at most 200).
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = WebhookEndpointDeleted, example = json!({"id": "6f1c2d9e-8a4b-4c3d-9e2f-1a2b3c4d5e6f", "deleted": true}))]
pub struct Deleted {
    #[schema(value_type = String, example = "6f1c2d9e-8a4b-4c3d-9e2f-1a2b3c4d5e6f")]
    id: uuid::Uuid,
    /// Always true.
    deleted: bool,
}

/// Create a webhook endpoint
///
/// Relay POSTs the chosen events to `url`, signed per Standard Webhooks (`webhook-id`,
/// `webhook-timestamp`, `webhook-signature`). The answer holds the signing secret, shown once.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints",
    tag = "developer",
    operation_id = "createWebhookEndpoint",
    security(("relay_key" = [])),
    request_body = CreateEndpointBody,
    responses(
        (status = 201, description = "The endpoint, with its secret (shown this once).", body = CreatedView),
        (status = 400, description = "A URL the SSRF policy refuses (`upstream_not_https`, `upstream_not_allowed`, `invalid_upstream_url`, `upstream_unresolvable`), unknown event types (`webhook_event_unknown`), an empty `events` (`webhook_events_empty`), or too many endpoints (`webhook_endpoint_limit`).", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked Relay key.", body = ErrorBody),
    )
)]
pub async fn create(
    auth: TenantAuth,
    store: web::Data<dyn Store>,
    webhooks: web::Data<Webhooks>,
    body: web::Json<CreateEndpointBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let new = NewEndpoint { url: body.url, events: body.events, description: body.description };
    let (endpoint, secret) = webhooks.create_endpoint(auth.tenant_id, new).await?;
    audit(&**store, auth, "webhook_endpoint.create", endpoint.id).await;
    let created = CreatedView { endpoint: endpoint.into(), secret: secret.expose_secret().to_owned() };
    Ok(HttpResponse::Created().insert_header(("cache-control", "no-store")).json(created))
}

/// List webhook endpoints
///
/// Oldest first; never the secrets.
#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints",
    tag = "developer",
    operation_id = "listWebhookEndpoints",
    security(("relay_key" = [])),
    responses(
        (status = 200, description = "Your app's endpoints.", body = EndpointList),
        (status = 401, description = "Missing, invalid or revoked Relay key.", body = ErrorBody),
    )
)]
pub async fn list(auth: TenantAuth, webhooks: web::Data<Webhooks>) -> Result<HttpResponse, ApiError> {
    let data = webhooks.list_endpoints(auth.tenant_id).await?.into_iter().map(EndpointView::from).collect();
    Ok(HttpResponse::Ok().json(EndpointList { data }))
}

/// Get a webhook endpoint
#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints/{id}",
    tag = "developer",
    operation_id = "getWebhookEndpoint",
    security(("relay_key" = [])),
    params(("id" = String, Path, description = "The endpoint's id.")),
    responses(
        (status = 200, description = "The endpoint (without its secret).", body = EndpointView),
        (status = 401, description = "Missing, invalid or revoked Relay key.", body = ErrorBody),
        (status = 404, description = "No such endpoint in your app (`webhook_endpoint_not_found`).", body = ErrorBody),
    )
)]
pub async fn get(
    auth: TenantAuth,
    webhooks: web::Data<Webhooks>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = webhooks.get_endpoint(auth.tenant_id, &path).await?;
    Ok(HttpResponse::Ok().json(EndpointView::from(endpoint)))
}

/// Delete a webhook endpoint
///
/// Its pending deliveries are dropped with it.
#[utoipa::path(
    delete,
    path = "/v1/webhook-endpoints/{id}",
    tag = "developer",
    operation_id = "deleteWebhookEndpoint",
    security(("relay_key" = [])),
    params(("id" = String, Path, description = "The endpoint's id.")),
    responses(
        (status = 200, description = "The endpoint was deleted.", body = Deleted),
        (status = 401, description = "Missing, invalid or revoked Relay key.", body = ErrorBody),
        (status = 404, description = "No such endpoint in your app (`webhook_endpoint_not_found`).", body = ErrorBody),
    )
)]
pub async fn delete(
    auth: TenantAuth,
    store: web::Data<dyn Store>,
    webhooks: web::Data<Webhooks>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = webhooks.delete_endpoint(auth.tenant_id, &path).await?;
    audit(&**store, auth, "webhook_endpoint.delete", id).await;
    Ok(HttpResponse::Ok().json(Deleted { id, deleted: true }))
}

/// List an endpoint's deliveries
///
/// The most recent deliveries, newest first: status, attempts and the last attempt's outcome.
#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints/{id}/deliveries",
    tag = "developer",
    operation_id = "listWebhookDeliveries",
    security(("relay_key" = [])),
    params(("id" = String, Path, description = "The endpoint's id."), DeliveriesQuery),
    responses(
        (status = 200, description = "Recent deliveries.", body = DeliveryList),
        (status = 400, description = "Invalid query string (`invalid_query`).", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked Relay key.", body = ErrorBody),
        (status = 404, description = "No such endpoint in your app (`webhook_endpoint_not_found`).", body = ErrorBody),
    )
)]
pub async fn deliveries(
    auth: TenantAuth,
    webhooks: web::Data<Webhooks>,
    path: web::Path<String>,
    query: web::Query<DeliveriesQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_DELIVERIES).clamp(1, MAX_DELIVERIES);
    let data = webhooks.deliveries(auth.tenant_id, &path, limit).await?.into_iter().map(DeliveryView::from).collect();
    Ok(HttpResponse::Ok().json(DeliveryList { data }))
}

async fn audit(store: &dyn Store, auth: TenantAuth, action: &str, id: uuid::Uuid) {
    let actor = format!("api_key:{}", auth.api_key_id);
    crate::audit::record(store, Some(auth.tenant_id), &actor, action, Some(format!("webhook_endpoint:{id}"))).await;
}

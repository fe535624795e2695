//! HTTP routes, one file per resource. Handlers parse input into domain types, call one service,
//! and shape the answer; the logic lives in the services.

// Visible to the crate for `openapi::ApiDoc`, which lists every handler.
pub(crate) mod budgets;
pub(crate) mod byok;
pub(crate) mod connect;
pub(crate) mod console_keys;
pub(crate) mod console_members;
pub(crate) mod console_pages;
pub(crate) mod console_session;
pub(crate) mod console_users;
pub(crate) mod health;
pub(crate) mod messages;
pub(crate) mod registration_tokens;
pub(crate) mod relay;
pub(crate) mod responses;
pub(crate) mod session_tokens;
pub(crate) mod unified;
pub(crate) mod usage;
pub(crate) mod users;
pub(crate) mod webhooks;
pub mod widget;

use actix_web::{web, HttpRequest};

use crate::error::{for_bare_status, ApiError};

/// What some routes need of the server's configuration.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// The raw passthrough's body limit.
    pub max_relay_body_bytes: usize,
    /// `/metrics` is served on its own listener instead of this one.
    pub metrics_elsewhere: bool,
}

/// Chat requests carry images and long histories: they get a larger limit than the JSON API.
pub const MAX_UNIFIED_BODY: usize = 32 * 1024 * 1024;

/// Every route here must be documented in `openapi::ApiDoc` (its tests read this function).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/health").route(web::get().to(health::health)))
        .service(resource("/api/ready").route(web::get().to(health::ready)))
        .service(resource("/metrics").route(web::get().to(health::metrics)))
        .service(resource("/openapi.json").route(web::get().to(crate::openapi::openapi_json)))
        .service(resource("/v1/registration-tokens").route(web::post().to(registration_tokens::create)))
        .service(resource("/v1/connect").route(web::post().to(connect::connect)))
        .service(resource("/v1/connect/{token}").route(web::get().to(connect::describe)))
        .service(resource("/widget.js").route(web::get().to(widget::widget_js)))
        .service(resource("/widget/frame").route(web::get().to(widget::frame)))
        .service(resource("/widget/{asset}").route(web::get().to(widget::asset)))
        .service(resource("/connect").route(web::get().to(widget::connect_page)))
        .service(resource("/v1/users/{label}").route(web::get().to(users::get)).route(web::delete().to(users::delete)))
        .service(
            resource("/v1/budgets/{scope}")
                .route(web::put().to(budgets::put_tenant))
                .route(web::get().to(budgets::get_tenant))
                .route(web::delete().to(budgets::delete_tenant)),
        )
        .service(
            resource("/v1/users/{label}/budget")
                .route(web::put().to(budgets::put_user))
                .route(web::get().to(budgets::get_user))
                .route(web::delete().to(budgets::delete_user)),
        )
        .service(resource("/v1/users/{label}/keys/{provider}").route(web::delete().to(users::delete_key)))
        .service(resource("/v1/session-tokens").route(web::post().to(session_tokens::create)))
        .service(resource("/v1/users/{label}/sessions/revoke").route(web::post().to(session_tokens::revoke)))
        .service(resource("/users").route(web::post().to(byok::register)))
        .service(resource("/keys").route(web::get().to(byok::list_keys)))
        .service(
            resource("/keys/{provider}")
                .route(web::post().to(byok::store_key))
                .route(web::delete().to(byok::delete_key)),
        )
        .service(
            resource("/v1/chat/completions")
                .app_data(web::PayloadConfig::new(MAX_UNIFIED_BODY))
                .route(web::post().to(unified::chat_completions)),
        )
        .service(
            resource("/v1/embeddings")
                .app_data(web::PayloadConfig::new(MAX_UNIFIED_BODY))
                .route(web::post().to(unified::embeddings)),
        )
        .service(
            resource("/v1/messages")
                .app_data(web::PayloadConfig::new(MAX_UNIFIED_BODY))
                .route(web::post().to(messages::messages)),
        )
        .service(
            resource("/v1/responses")
                .app_data(web::PayloadConfig::new(MAX_UNIFIED_BODY))
                .route(web::post().to(responses::responses)),
        )
        .service(resource("/v1/models").route(web::get().to(unified::models)))
        .service(resource("/v1/usage").route(web::get().to(usage::usage)))
        .service(
            resource("/v1/webhook-endpoints")
                .route(web::post().to(webhooks::create))
                .route(web::get().to(webhooks::list)),
        )
        .service(
            resource("/v1/webhook-endpoints/{id}")
                .route(web::get().to(webhooks::get))
                .route(web::delete().to(webhooks::delete)),
        )
        .service(resource("/v1/webhook-endpoints/{id}/deliveries").route(web::get().to(webhooks::deliveries)))
        .service(resource("/console/api/sign-in").route(web::post().to(console_session::sign_in)))
        .service(resource("/console/api/sign-out").route(web::post().to(console_session::sign_out)))
        .service(resource("/console/api/me").route(web::get().to(console_session::me)))
        .service(resource("/console/api/password").route(web::post().to(console_session::change_password)))
        .service(resource("/console/api/invites/accept").route(web::post().to(console_session::accept_invite)))
        .service(
            resource("/console/api/keys")
                .route(web::get().to(console_keys::list))
                .route(web::post().to(console_keys::create)),
        )
        .service(resource("/console/api/keys/{id}").route(web::delete().to(console_keys::revoke)))
        .service(resource("/console/api/end-users").route(web::get().to(console_users::search)))
        .service(
            resource("/console/api/end-users/{label}")
                .route(web::get().to(console_users::get))
                .route(web::delete().to(console_users::erase)),
        )
        .service(resource("/console/api/members").route(web::get().to(console_members::list)))
        .service(resource("/console/api/members/invites").route(web::post().to(console_members::invite)))
        .service(
            resource("/console/api/members/{account_id}")
                .route(web::patch().to(console_members::change_role))
                .route(web::delete().to(console_members::remove)),
        )
        .service(resource("/console").route(web::get().to(console_pages::home)))
        .service(resource("/console/assets/{asset}").route(web::get().to(console_pages::asset)))
        .service(resource("/console/invite/{token}").route(web::get().to(console_pages::invite)))
        .service(resource("/console/{page}").route(web::get().to(console_pages::page)))
        .service(web::resource("/relay/{provider}/{tail:.*}").to(relay::relay));
}

/// A resource that answers 405 to methods it has no route for (instead of inheriting the app's
/// 404 default service).
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn method_not_allowed(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(for_bare_status(actix_web::http::StatusCode::METHOD_NOT_ALLOWED, req.method().as_str(), req.path()))
}

pub async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(for_bare_status(actix_web::http::StatusCode::NOT_FOUND, req.method().as_str(), req.path()))
}

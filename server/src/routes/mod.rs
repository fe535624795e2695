//! HTTP routes, one file per resource. Handlers parse input into domain types, call one service,
//! and shape the answer; the logic lives in the services.

mod connect;
mod health;
mod registration_tokens;
mod users;

use actix_web::{web, HttpRequest};

use crate::error::{for_bare_status, ApiError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/health", web::get().to(health::health))
        .route("/api/ready", web::get().to(health::ready))
        .route("/v1/registration-tokens", web::post().to(registration_tokens::create))
        .route("/v1/connect", web::post().to(connect::connect))
        .route("/v1/connect/{token}", web::get().to(connect::describe))
        .service(
            web::resource("/v1/users/{label}").route(web::get().to(users::get)).route(web::delete().to(users::delete)),
        )
        .route("/v1/users/{label}/keys/{provider}", web::delete().to(users::delete_key));
}

pub async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(for_bare_status(actix_web::http::StatusCode::NOT_FOUND, req.method().as_str(), req.path()))
}

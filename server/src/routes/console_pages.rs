//! The console's pages: one HTML shell for every page (the script renders the page the path
//! names) and its script, styles and strings, embedded from `console/`. No CDN, no inline code.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::widget::{content_security_policy, AssetQuery, PageAssets};
use crate::error::{ApiError, ErrorBody};

const SHELL: &str = include_str!("../../../console/page.html");

/// The pages the shell renders (the first path segment after `/console/`).
const PAGES: &[&str] = &["sign-in", "keys", "end-users", "members"];

fn assets() -> &'static PageAssets {
    static ASSETS: OnceLock<PageAssets> = OnceLock::new();
    ASSETS.get_or_init(|| {
        PageAssets::new(
            include_str!("../../../console/app.js"),
            include_str!("../../../console/app.css"),
            include_str!("../../../console/strings.js"),
        )
    })
}

fn shell() -> HttpResponse {
    let html = assets().fill(SHELL);
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, content_security_policy(&[])))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("cross-origin-opener-policy", "same-origin"))
        .insert_header(("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()"))
        .body(html)
}

/// The console
#[utoipa::path(
    get,
    path = "/console",
    tag = "console",
    operation_id = "consolePage",
    summary = "The console (its home page)",
    responses((status = 200, description = "The HTML page.", content_type = "text/html; charset=utf-8", body = String))
)]
pub async fn home() -> HttpResponse {
    shell()
}

/// A console page
#[utoipa::path(
    get,
    path = "/console/{page}",
    tag = "console",
    operation_id = "consoleNamedPage",
    summary = "A console page",
    params(("page" = String, Path, description = "`sign-in`, `keys`, `end-users` or `members`.")),
    responses(
        (status = 200, description = "The HTML page.", content_type = "text/html; charset=utf-8", body = String),
        (status = 404, description = "No such page (`unknown_route`).", body = ErrorBody),
    )
)]
pub async fn page(req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    if !PAGES.contains(&name.as_str()) {
        return Err(crate::error::for_bare_status(StatusCode::NOT_FOUND, "GET", req.path()));
    }
    Ok(shell())
}

/// The invite page
#[utoipa::path(
    get,
    path = "/console/invite/{token}",
    tag = "console",
    operation_id = "consoleInvitePage",
    summary = "The page of an invite link",
    description = "Where the invitee sets a password. The token stays in the page (the page sends it to \
`POST /console/api/invites/accept`); the page sends no referrer.",
    params(("token" = String, Path, description = "The invite token.")),
    responses((status = 200, description = "The HTML page.", content_type = "text/html; charset=utf-8", body = String))
)]
pub async fn invite(_token: web::Path<String>) -> HttpResponse {
    shell()
}

/// The console's assets
#[utoipa::path(
    get,
    path = "/console/assets/{asset}",
    tag = "console",
    operation_id = "consoleAsset",
    summary = "The console's script, styles and strings",
    params(
        ("asset" = String, Path, description = "`app.js`, `app.css` or `strings.js`."),
        AssetQuery,
        ("If-None-Match" = Option<String>, Header, description = "A previous `ETag`."),
    ),
    responses(
        (status = 200, description = "The asset.", content(
            (String = "text/javascript; charset=utf-8"),
            (String = "text/css; charset=utf-8"),
        )),
        (status = 304, description = "Not modified (`If-None-Match` matched)."),
        (status = 404, description = "No such asset (`unknown_route`).", body = ErrorBody),
    )
)]
pub async fn asset(
    req: HttpRequest,
    name: web::Path<String>,
    query: web::Query<AssetQuery>,
) -> Result<HttpResponse, ApiError> {
    assets().serve(&req, &name, query.v.as_deref())
}

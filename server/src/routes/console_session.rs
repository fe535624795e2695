//! The console's own session: sign in, sign out, who am I (with the CSRF token), change the
//! password, and accept an invite. The logic is in `console`; these shape HTTP.

use actix_web::http::header::{CACHE_CONTROL, SET_COOKIE};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::console::{check_same_origin, set_cookie, ConsoleAuth};
use crate::browser::BrowserAccess;
use crate::console::{csrf_token, Console, ConsoleUser};
use crate::error::{ApiError, ErrorBody};
use crate::ratelimit::RateLimiter;
use crate::store::console::Role;
use crate::store::Store;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignInRequest {
    #[schema(example = "owner@example.com")]
    email: String,
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleTenant {
    #[schema(value_type = String)]
    id: Uuid,
    name: String,
    /// The member's role in this tenant.
    role: Role,
}

/// Who is signed in, and the CSRF token the page sends back in `x-relay-csrf`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    #[schema(value_type = String)]
    account_id: Uuid,
    email: String,
    /// A console operator (manages the server; operator pages come later).
    operator: bool,
    /// The tenant this session acts in; null for an operator who is no tenant's member.
    #[schema(required = true)]
    tenant: Option<ConsoleTenant>,
    /// Send it as `x-relay-csrf` with every state-changing console call.
    csrf_token: String,
    /// The session's absolute end (it also ends after 30 minutes without a request).
    session_expires_at: DateTime<Utc>,
}

pub(crate) fn address(req: &HttpRequest, browser: &BrowserAccess) -> Option<String> {
    browser.client_ip(req).map(|ip| ip.to_string())
}

async fn me_view(store: &dyn Store, user: &ConsoleUser, csrf: String) -> Result<Me, ApiError> {
    let tenant = match user.tenant {
        Some((id, role)) => store.get_tenant(id).await?.map(|t| ConsoleTenant { id, name: t.name, role }),
        None => None,
    };
    Ok(Me {
        account_id: user.account_id,
        email: user.email.clone(),
        operator: user.operator,
        tenant,
        csrf_token: csrf,
        session_expires_at: user.session_expires_at,
    })
}

/// Sign in to the console
///
/// Opens a session (cookie `relay_console`: HttpOnly, SameSite=Strict, Path=/console) in the
/// account's first tenant. Throttled per account and per client address; an unknown email gets
/// the same answer as a wrong password.
#[utoipa::path(
    post,
    path = "/console/api/sign-in",
    tag = "console",
    operation_id = "consoleSignIn",
    request_body = SignInRequest,
    responses(
        (status = 200, description = "Signed in; the cookie is set.", body = Me,
         headers(("set-cookie" = String, description = "`relay_console=…; Path=/console; HttpOnly; SameSite=Strict[; Secure]`"))),
        (status = 400, description = "The body is not valid JSON of this shape.", body = ErrorBody),
        (status = 401, description = "The email or password is not correct (`console_sign_in_failed`).", body = ErrorBody),
        (status = 403, description = "Sent from another site (`console_cross_site`).", body = ErrorBody),
    )
)]
pub async fn sign_in(
    req: HttpRequest,
    console: web::Data<Console>,
    limiter: web::Data<RateLimiter>,
    browser: web::Data<BrowserAccess>,
    body: web::Json<SignInRequest>,
) -> Result<HttpResponse, ApiError> {
    check_same_origin(&req, &console)?;
    let SignInRequest { email, password } = body.into_inner();
    let signed = console.sign_in(&limiter, &email, password, browser.client_ip(&req)).await?;
    let token = signed.token.expose_secret();
    let me = me_view(&**console.store(), &signed.user, csrf_token(token)).await?;
    Ok(HttpResponse::Ok()
        .insert_header((SET_COOKIE, set_cookie(&console, Some(token))))
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(me))
}

/// Sign out
///
/// Ends this session (server-side) and clears the cookie.
#[utoipa::path(
    post,
    path = "/console/api/sign-out",
    tag = "console",
    operation_id = "consoleSignOut",
    security(("console_session" = [])),
    params(("x-relay-csrf" = String, Header, description = "The CSRF token from `me` or sign-in.")),
    responses(
        (status = 204, description = "Signed out; the cookie is cleared."),
        (status = 401, description = "No live session (`console_session_missing`).", body = ErrorBody),
        (status = 403, description = "No valid CSRF token (`console_csrf_invalid`) or sent from another site (`console_cross_site`).", body = ErrorBody),
    )
)]
pub async fn sign_out(
    req: HttpRequest,
    auth: ConsoleAuth,
    console: web::Data<Console>,
    browser: web::Data<BrowserAccess>,
) -> Result<HttpResponse, ApiError> {
    console.sign_out(auth.token(), &auth.user, address(&req, &browser)).await?;
    Ok(HttpResponse::NoContent().insert_header((SET_COOKIE, set_cookie(&console, None))).finish())
}

/// Who is signed in
///
/// The account, its tenant and role, and the session's CSRF token.
#[utoipa::path(
    get,
    path = "/console/api/me",
    tag = "console",
    operation_id = "consoleMe",
    security(("console_session" = [])),
    responses(
        (status = 200, description = "The signed-in member.", body = Me),
        (status = 401, description = "No live session (`console_session_missing`).", body = ErrorBody),
    )
)]
pub async fn me(auth: ConsoleAuth, store: web::Data<dyn Store>) -> Result<HttpResponse, ApiError> {
    let me = me_view(&**store, &auth.user, auth.csrf()).await?;
    Ok(HttpResponse::Ok().insert_header((CACHE_CONTROL, "no-store")).json(me))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordChange {
    #[schema(value_type = String, format = Password)]
    current_password: SecretString,
    /// At least 12 characters.
    #[schema(value_type = String, format = Password)]
    new_password: SecretString,
}

/// Change the password
///
/// Every session of the account ends, this one included: sign in again.
#[utoipa::path(
    post,
    path = "/console/api/password",
    tag = "console",
    operation_id = "consoleChangePassword",
    security(("console_session" = [])),
    params(("x-relay-csrf" = String, Header, description = "The CSRF token from `me` or sign-in.")),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed; every session of the account has ended."),
        (status = 400, description = "The new password is too weak (`password_too_weak`) or the body is not valid.", body = ErrorBody),
        (status = 401, description = "No live session (`console_session_missing`).", body = ErrorBody),
        (status = 403, description = "Wrong current password (`console_password_wrong`), no valid CSRF token, or sent from another site.", body = ErrorBody),
    )
)]
pub async fn change_password(
    req: HttpRequest,
    auth: ConsoleAuth,
    console: web::Data<Console>,
    browser: web::Data<BrowserAccess>,
    body: web::Json<PasswordChange>,
) -> Result<HttpResponse, ApiError> {
    let PasswordChange { current_password, new_password } = body.into_inner();
    console.change_password(&auth.user, current_password, new_password, address(&req, &browser)).await?;
    Ok(HttpResponse::NoContent().insert_header((SET_COOKIE, set_cookie(&console, None))).finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceptInvite {
    /// The token from the invite link (`/console/invite/<token>`).
    #[schema(value_type = String)]
    token: SecretString,
    /// A new account's password (at least 12 characters), or an existing account's own.
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedInvite {
    /// Sign in with this email.
    email: String,
    tenant_name: String,
}

/// Accept an invite
///
/// Sets the password of the invited email's new account (an existing account gives its own
/// password instead) and joins the tenant with the invite's role. One use; 7 days.
#[utoipa::path(
    post,
    path = "/console/api/invites/accept",
    tag = "console",
    operation_id = "consoleAcceptInvite",
    request_body = AcceptInvite,
    responses(
        (status = 200, description = "Accepted: sign in now.", body = AcceptedInvite),
        (status = 400, description = "The password is too weak (`password_too_weak`) or the body is not valid.", body = ErrorBody),
        (status = 403, description = "Wrong password for an existing account (`console_password_wrong`), or sent from another site.", body = ErrorBody),
        (status = 404, description = "No such invite (`invite_not_found`).", body = ErrorBody),
        (status = 410, description = "Used (`invite_used`) or expired (`invite_expired`).", body = ErrorBody),
    )
)]
pub async fn accept_invite(
    req: HttpRequest,
    console: web::Data<Console>,
    limiter: web::Data<RateLimiter>,
    browser: web::Data<BrowserAccess>,
    body: web::Json<AcceptInvite>,
) -> Result<HttpResponse, ApiError> {
    check_same_origin(&req, &console)?;
    let AcceptInvite { token, password } = body.into_inner();
    let (email, tenant_name) =
        console.accept_invite(&limiter, token.expose_secret(), password, address(&req, &browser)).await?;
    Ok(HttpResponse::Ok().json(AcceptedInvite { email, tenant_name }))
}

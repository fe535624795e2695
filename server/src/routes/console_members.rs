//! The console's members page: who may manage the tenant, inviting someone (a one-time link),
//! changing a member's role and removing one. Owners change; admins and viewers read.

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::console::ConsoleAuth;
use crate::browser::BrowserAccess;
use crate::console::{invite_url, Console, Email};
use crate::error::{ApiError, ErrorBody};
use crate::store::console::{Member, Role};
use crate::store::Store;

use super::console_session::address;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConsoleMember)]
pub struct MemberView {
    #[schema(value_type = String)]
    account_id: Uuid,
    email: String,
    role: Role,
    created_at: DateTime<Utc>,
}

impl From<Member> for MemberView {
    fn from(m: Member) -> Self {
        Self { account_id: m.account_id, email: m.email, role: m.role, created_at: m.created_at }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(as = ConsoleMemberList)]
pub struct MemberList {
    data: Vec<MemberView>,
}

/// List members
#[utoipa::path(
    get,
    path = "/console/api/members",
    tag = "console",
    operation_id = "consoleListMembers",
    security(("console_session" = [])),
    responses(
        (status = 200, description = "The tenant's members, by email.", body = MemberList),
        (status = 401, description = "No live session (`console_session_missing`).", body = ErrorBody),
        (status = 403, description = "No tenant (`console_no_tenant`).", body = ErrorBody),
    )
)]
pub async fn list(auth: ConsoleAuth, store: web::Data<dyn Store>) -> Result<HttpResponse, ApiError> {
    let tenant_id = auth.user.tenant_with(Role::Viewer)?;
    let data = store.console().list_members(tenant_id).await?.into_iter().map(MemberView::from).collect();
    Ok(HttpResponse::Ok().json(MemberList { data }))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = ConsoleInviteRequest)]
pub struct InviteRequest {
    #[schema(example = "colleague@example.com")]
    email: String,
    role: Role,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConsoleInvite)]
pub struct InviteView {
    email: String,
    role: Role,
    /// The one-time link (7 days) to pass on to the invitee; shown this once.
    invite_url: String,
    expires_at: DateTime<Utc>,
}

/// Invite a member
///
/// A one-time link, valid for 7 days, where the invitee sets a password (or, with an account
/// already, gives theirs) and joins with `role`. Relay sends no email: pass the link on.
#[utoipa::path(
    post,
    path = "/console/api/members/invites",
    tag = "console",
    operation_id = "consoleInviteMember",
    security(("console_session" = [])),
    params(("x-relay-csrf" = String, Header, description = "The CSRF token from `me` or sign-in.")),
    request_body = InviteRequest,
    responses(
        (status = 201, description = "The invite; its link is shown once.", body = InviteView),
        (status = 400, description = "Not an email address (`email_invalid`) or the body is not valid.", body = ErrorBody),
        (status = 401, description = "No live session (`console_session_missing`).", body = ErrorBody),
        (status = 403, description = "Not an owner (`console_role_forbidden`), no valid CSRF token, or sent from another site.", body = ErrorBody),
    )
)]
pub async fn invite(
    req: HttpRequest,
    auth: ConsoleAuth,
    console: web::Data<Console>,
    browser: web::Data<BrowserAccess>,
    body: web::Json<InviteRequest>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = auth.user.tenant_with(Role::Owner)?;
    let InviteRequest { email, role } = body.into_inner();
    let email = Email::parse(&email)?;
    let created = console.invite(tenant_id, &email, role, &auth.user.actor(), address(&req, &browser)).await?;
    let origin = match console.public_origin() {
        Some(o) => o.to_owned(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    };
    Ok(HttpResponse::Created().insert_header((CACHE_CONTROL, "no-store")).json(InviteView {
        invite_url: invite_url(&origin, &created.token),
        email: created.email,
        role: created.role,
        expires_at: created.expires_at,
    }))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = ConsoleRoleChange)]
pub struct RoleChange {
    role: Role,
}

fn member_not_found() -> ApiError {
    ApiError::not_found("member_not_found", "No member with this account id in your tenant.")
}

fn last_owner() -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::CONFLICT,
        "invalid_request_error",
        "last_owner",
        "A tenant keeps at least one owner: make someone else owner first.",
    )
}

/// Change a member's role
#[utoipa::path(
    patch,
    path = "/console/api/members/{account_id}",
    tag = "console",
    operation_id = "consoleChangeMemberRole",
    security(("console_session" = [])),
    params(
        ("account_id" = String, Path, description = "The member's account id."),
        ("x-relay-csrf" = String, Header, description = "The CSRF token from `me` or sign-in."),
    ),
    request_body = RoleChange,
    responses(
        (status = 200, description = "The member with the new role.", body = MemberView),
        (status = 400, description = "The body or id is not valid.", body = ErrorBody),
        (status = 401, description = "No live session (`console_session_missing`).", body = ErrorBody),
        (status = 403, description = "Not an owner (`console_role_forbidden`), no valid CSRF token, or sent from another site.", body = ErrorBody),
        (status = 404, description = "No such member in this tenant (`member_not_found`).", body = ErrorBody),
        (status = 409, description = "It would leave the tenant without an owner (`last_owner`).", body = ErrorBody),
    )
)]
pub async fn change_role(
    req: HttpRequest,
    auth: ConsoleAuth,
    store: web::Data<dyn Store>,
    browser: web::Data<BrowserAccess>,
    path: web::Path<Uuid>,
    body: web::Json<RoleChange>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = auth.user.tenant_with(Role::Owner)?;
    let account_id = path.into_inner();
    let role = body.into_inner().role;
    let console = store.console();
    let current = console.role_in(account_id, tenant_id).await?.ok_or_else(member_not_found)?;
    if current == Role::Owner && role != Role::Owner && console.count_owners(tenant_id).await? <= 1 {
        return Err(last_owner());
    }
    if !console.set_member_role(tenant_id, account_id, role).await? {
        return Err(member_not_found());
    }
    let target = Some(format!("account:{account_id} role:{role}"));
    let addr = address(&req, &browser);
    crate::audit::record_from(&**store, Some(tenant_id), &auth.user.actor(), "console.member_role", target, addr).await;
    let member = console
        .list_members(tenant_id)
        .await?
        .into_iter()
        .find(|m| m.account_id == account_id)
        .ok_or_else(member_not_found)?;
    Ok(HttpResponse::Ok().json(MemberView::from(member)))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConsoleRemovedMember)]
pub struct Removed {
    #[schema(value_type = String)]
    account_id: Uuid,
    /// Always true.
    removed: bool,
}

/// Remove a member
///
/// Their sessions in this tenant end at once.
#[utoipa::path(
    delete,
    path = "/console/api/members/{account_id}",
    tag = "console",
    operation_id = "consoleRemoveMember",
    security(("console_session" = [])),
    params(
        ("account_id" = String, Path, description = "The member's account id."),
        ("x-relay-csrf" = String, Header, description = "The CSRF token from `me` or sign-in."),
    ),
    responses(
        (status = 200, description = "Removed.", body = Removed),
        (status = 400, description = "The id is not valid.", body = ErrorBody),
        (status = 401, description = "No live session (`console_session_missing`).", body = ErrorBody),
        (status = 403, description = "Not an owner (`console_role_forbidden`), no valid CSRF token, or sent from another site.", body = ErrorBody),
        (status = 404, description = "No such member in this tenant (`member_not_found`).", body = ErrorBody),
        (status = 409, description = "It would leave the tenant without an owner (`last_owner`).", body = ErrorBody),
    )
)]
pub async fn remove(
    req: HttpRequest,
    auth: ConsoleAuth,
    store: web::Data<dyn Store>,
    browser: web::Data<BrowserAccess>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = auth.user.tenant_with(Role::Owner)?;
    let account_id = path.into_inner();
    let console = store.console();
    let current = console.role_in(account_id, tenant_id).await?.ok_or_else(member_not_found)?;
    if current == Role::Owner && console.count_owners(tenant_id).await? <= 1 {
        return Err(last_owner());
    }
    if !console.remove_member(tenant_id, account_id).await? {
        return Err(member_not_found());
    }
    let target = Some(format!("account:{account_id}"));
    let addr = address(&req, &browser);
    crate::audit::record_from(&**store, Some(tenant_id), &auth.user.actor(), "console.member_remove", target, addr)
        .await;
    Ok(HttpResponse::Ok().json(Removed { account_id, removed: true }))
}

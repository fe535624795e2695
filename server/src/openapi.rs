//! The OpenAPI 3.1 document of Relay's HTTP API, built by utoipa from the handlers' annotations:
//! served at `GET /openapi.json`, printed by `relay openapi`, committed as `openapi/openapi.json`.

use actix_web::HttpResponse;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Object, Ref, RefOr, Type};
use utoipa::{Modify, OpenApi};

use crate::error::ApiError;
use crate::routes;

/// The command that regenerates the committed document.
pub const REGENERATE: &str = "cargo run -q -p relay -- openapi > openapi/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Relay",
        description = "A self-hosted, multi-tenant vault and relay for bring-your-own-key AI apps. \
Errors use OpenAI's shape, `{\"error\": {\"message\", \"type\", \"param\", \"code\"}}`, with a precise \
status; every answer carries `x-relay-request-id` (and the same value in `x-request-id`).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        routes::health::health,
        routes::health::ready,
        routes::health::metrics,
        openapi_json,
        routes::registration_tokens::create,
        routes::session_tokens::create,
        routes::session_tokens::revoke,
        routes::users::get,
        routes::users::delete,
        routes::users::delete_key,
        routes::budgets::put_tenant,
        routes::budgets::get_tenant,
        routes::budgets::delete_tenant,
        routes::budgets::put_user,
        routes::budgets::get_user,
        routes::budgets::delete_user,
        routes::usage::usage,
        routes::webhooks::create,
        routes::webhooks::list,
        routes::webhooks::get,
        routes::webhooks::delete,
        routes::webhooks::deliveries,
        routes::unified::chat_completions,
        routes::unified::embeddings,
        routes::unified::models,
        routes::messages::messages,
        routes::responses::responses,
        routes::connect::describe,
        routes::connect::connect,
        routes::widget::widget_js,
        routes::widget::frame,
        routes::widget::asset,
        routes::widget::connect_page,
        routes::relay::relay,
        routes::byok::register,
        routes::byok::list_keys,
        routes::byok::store_key,
        routes::byok::delete_key,
        routes::console_session::sign_in,
        routes::console_session::sign_out,
        routes::console_session::me,
        routes::console_session::change_password,
        routes::console_session::accept_invite,
        routes::console_keys::list,
        routes::console_keys::create,
        routes::console_keys::revoke,
        routes::console_users::search,
        routes::console_users::get,
        routes::console_users::erase,
        routes::console_members::list,
        routes::console_members::invite,
        routes::console_members::change_role,
        routes::console_members::remove,
        routes::console_pages::home,
        routes::console_pages::page,
        routes::console_pages::invite,
        routes::console_pages::asset,
    ),
    modifiers(&SecuritySchemes, &RateLimitResponses, &RequestIdHeaders),
    tags(
        (name = "developer", description = "The developer's backend, with `Authorization: Bearer rly-…`."),
        (name = "unified", description = "OpenAI's API for every provider, for the end user named in `X-Relay-User`."),
        (name = "passthrough", description = "The raw, byok-relay compatible passthrough to each provider's own API."),
        (name = "widget", description = "The key-connect widget and the routes it calls with a registration token."),
        (name = "byok-flow", description = "The byok-relay flow for browser-only apps (per tenant, off by default)."),
        (name = "operations", description = "Health, readiness, metrics and this document."),
        (name = "console", description = "The console's pages and JSON API, for tenant members signed in with the `relay_console` session cookie. State-changing calls need the session's CSRF token in `x-relay-csrf` and must come from the console's own origin."),
    )
)]
pub struct ApiDoc;

/// `relay_key` (the developer's `rly-` key) and `session_token` (`x-relay-token`).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "relay_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("rly-…")
                    .description(Some(
                        "The developer's secret Relay API key, `rly-…`, from `relay tenant create` or `relay apikey create`. \
Backend use only.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "relay_key_header",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-api-key",
                "The same `rly-…` key in `x-api-key`, as the official Anthropic SDKs send it (`POST /v1/messages` only).",
            ))),
        );
        components.add_security_scheme(
            "console_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::console::COOKIE,
                "The console's session cookie, set by `POST /console/api/sign-in` (HttpOnly, SameSite=Strict, Path=/console).",
            ))),
        );
        components.add_security_scheme(
            "session_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::auth::session::SESSION_HEADER,
                "A short-lived session token for one end user's browser, from `POST /v1/session-tokens` or \
`POST /users`.",
            ))),
        );
    }
}

/// Every answer, errors included, carries the request id (two headers, defined once in
/// `components.headers`).
struct RequestIdHeaders;

impl Modify for RequestIdHeaders {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let string = || RefOr::T(utoipa::openapi::schema::Schema::Object(Object::with_type(Type::String)));
        let headers = [
            ("x-relay-request-id", "RequestId", "The request id (`req_…`); quote it to the operator."),
            ("x-request-id", "RequestIdCompat", "The same id, where the official OpenAI SDKs read it (`_request_id`)."),
        ];
        let components = openapi.components.get_or_insert_with(Default::default);
        for (_, component, description) in headers {
            let header = HeaderBuilder::new().schema(Some(string())).description(Some(description)).build();
            components.headers.insert(component.into(), RefOr::T(header));
        }
        for item in openapi.paths.paths.values_mut() {
            let operations =
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch, &mut item.head];
            for operation in operations.into_iter().flatten() {
                for response in operation.responses.responses.values_mut() {
                    if let RefOr::T(response) = response {
                        for (name, component, _) in headers {
                            let reference = Ref::new(format!("#/components/headers/{component}"));
                            response.headers.insert(name.into(), RefOr::Ref(reference));
                        }
                    }
                }
            }
        }
    }
}

/// Every operation behind a rate limit (all that take a Relay key, and the per-address limited
/// public ones) documents its 429 and the headers that come with it.
struct RateLimitResponses;

/// Public operations limited per client address.
const IP_LIMITED: &[&str] =
    &["registerAnonymousUser", "describeRegistrationToken", "connectKey", "consoleSignIn", "consoleAcceptInvite"];

impl Modify for RateLimitResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::content::ContentBuilder;
        use utoipa::openapi::response::ResponseBuilder;
        let string = || RefOr::T(utoipa::openapi::schema::Schema::Object(Object::with_type(Type::String)));
        let integer = || RefOr::T(utoipa::openapi::schema::Schema::Object(Object::with_type(Type::Integer)));
        let headers = [
            ("retry-after", integer(), "Seconds until one more request is allowed (rounded up)."),
            ("retry-after-ms", integer(), "The same in milliseconds; the official SDKs prefer it."),
            ("x-ratelimit-limit-requests", integer(), "The limit's burst: requests allowed at once."),
            ("x-ratelimit-remaining-requests", integer(), "Requests left now (0 on a 429)."),
            ("x-ratelimit-reset-requests", string(), "Until the limit is full again, as in `1.5s` or `6m0s`."),
        ];
        let error = <crate::error::ErrorBody as utoipa::ToSchema>::name();
        let anthropic_error = <routes::messages::AnthropicError as utoipa::ToSchema>::name();
        for item in openapi.paths.paths.values_mut() {
            let operations =
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch, &mut item.head];
            for operation in operations.into_iter().flatten() {
                // Relay-key operations (the passthrough also with a session token); the
                // byok-flow key routes (session token only) have no limit of their own.
                let secured = serde_json::to_string(&operation.security).is_ok_and(|s| s.contains("\"relay_key\""));
                let ip_limited = operation.operation_id.as_deref().is_some_and(|id| IP_LIMITED.contains(&id));
                if !(secured || ip_limited) {
                    continue;
                }
                // The Messages API answers errors in Anthropic's shape.
                let shape =
                    if operation.operation_id.as_deref() == Some("createMessage") { &anthropic_error } else { &error };
                let mut response = ResponseBuilder::new()
                    .description("Over a rate limit (`rate_limit_exceeded`): per Relay key, per end user and tier, or per client address.")
                    .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name(shape.clone()))).build());
                for (name, schema, description) in &headers {
                    response = response.header(
                        *name,
                        HeaderBuilder::new().schema(Some(schema.clone())).description(Some(*description)).build(),
                    );
                }
                operation.responses.responses.insert("429".into(), RefOr::T(response.build()));
            }
        }
    }
}

/// The document, with this build's version.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.servers = None;
    unique_operation_ids(&mut doc);
    doc
}

/// The passthrough is one handler for five methods, and utoipa gives each the one
/// `operation_id`; OpenAPI wants every id unique (type generators fail otherwise), so an id used
/// more than once gets its method appended: `relayGet`, `relayPost`…
fn unique_operation_ids(doc: &mut utoipa::openapi::OpenApi) {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for item in doc.paths.paths.values() {
        for op in [&item.get, &item.put, &item.post, &item.delete, &item.patch, &item.head].into_iter().flatten() {
            if let Some(id) = &op.operation_id {
                *seen.entry(id.clone()).or_default() += 1;
            }
        }
    }
    for item in doc.paths.paths.values_mut() {
        let ops = [
            ("Get", &mut item.get),
            ("Put", &mut item.put),
            ("Post", &mut item.post),
            ("Delete", &mut item.delete),
            ("Patch", &mut item.patch),
            ("Head", &mut item.head),
        ];
        for (method, op) in ops {
            if let Some(op) = op.as_mut() {
                if let Some(id) = op.operation_id.as_mut().filter(|id| seen.get(id.as_str()).is_some_and(|n| *n > 1)) {
                    id.push_str(method);
                }
            }
        }
    }
}

/// The document as pretty JSON with a trailing newline: the bytes of `openapi/openapi.json`.
pub fn to_pretty_json() -> Result<String, serde_json::Error> {
    let mut json = serde_json::to_string_pretty(&document())?;
    json.push('\n');
    Ok(json)
}

/// The OpenAPI document
///
/// This document: OpenAPI 3.1, generated from the server's code.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json", body = serde_json::Value))
)]
pub async fn openapi_json() -> Result<HttpResponse, ApiError> {
    let body = to_pretty_json().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type("application/json").body(body))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::document;
    use crate::auth::is_public;

    /// `(METHOD, /path/{param})` for every route `routes::configure` registers, read from its
    /// source: a resource without a method guard (`web::resource(..).to(..)`) answers any
    /// method and must document at least GET and POST.
    fn registered_routes() -> BTreeSet<(String, String)> {
        let source = include_str!("routes/mod.rs");
        let body = source
            .split_once("pub fn configure(")
            .and_then(|(_, rest)| rest.split_once("\n}\n"))
            .map(|(body, _)| body)
            .expect("routes/mod.rs has a configure function");
        let mut out = BTreeSet::new();
        for service in body.split(".service(").skip(1) {
            let pattern = service
                .split_once("resource(\"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(pattern, _)| pattern)
                .expect("every service is a resource with a literal pattern");
            let path = openapi_path(pattern);
            let methods: Vec<&str> = ["get", "post", "put", "patch", "delete", "head"]
                .into_iter()
                .filter(|m| service.contains(&format!("web::{m}()")))
                .collect();
            let methods = if methods.is_empty() { vec!["get", "post"] } else { methods };
            for m in methods {
                out.insert((m.to_uppercase(), path.clone()));
            }
        }
        out
    }

    /// `/relay/{provider}/{tail:.*}` -> `/relay/{provider}/{path}`: actix's regex tail is the
    /// provider API path in the document.
    fn openapi_path(pattern: &str) -> String {
        pattern.replace("{tail:.*}", "{path}")
    }

    fn documented() -> BTreeSet<(String, String)> {
        let doc = serde_json::to_value(document()).expect("document serialises");
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if ["get", "post", "put", "patch", "delete", "head"].contains(&method.as_str()) {
                    out.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_exists() {
        let registered = registered_routes();
        assert!(registered.len() > 20, "parsed too few routes from routes/mod.rs: {registered:?}");
        let documented = documented();
        let missing: Vec<_> = registered.difference(&documented).collect();
        assert!(missing.is_empty(), "routes without #[utoipa::path] in openapi::ApiDoc: {missing:?}");
        let registered_paths: BTreeSet<_> = registered.iter().map(|(_, p)| p.clone()).collect();
        let phantom: Vec<_> = documented.iter().filter(|(_, p)| !registered_paths.contains(p)).collect();
        assert!(phantom.is_empty(), "documented routes that routes::configure does not register: {phantom:?}");
    }

    #[test]
    fn public_routes_have_no_security_and_the_others_do() {
        let doc = serde_json::to_value(document()).expect("document serialises");
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                // A concrete request path: every `{param}` becomes one segment.
                let concrete = path
                    .split('/')
                    .map(|seg| if seg.starts_with('{') { "x" } else { seg })
                    .collect::<Vec<_>>()
                    .join("/");
                let public = is_public(&method.to_uppercase(), &concrete);
                let secured = op.get("security").and_then(|s| s.as_array()).is_some_and(|s| !s.is_empty());
                if path.starts_with("/keys") {
                    // Public to the developer-key check; the handler requires a session token.
                    assert!(public && secured, "{method} {path}: session-token route");
                } else if crate::auth::console::is_console_path(path) {
                    // The console authenticates with its session cookie, never a developer key.
                    let open = path.starts_with("/console/api/sign-in")
                        || path.starts_with("/console/api/invites/accept")
                        || !path.starts_with("/console/api/");
                    assert!(!is_public(&method.to_uppercase(), &concrete), "{method} {path}: not in PUBLIC_ROUTES");
                    assert_eq!(secured, !open, "{method} {path}: console_session security");
                } else {
                    assert_eq!(public, !secured, "{method} {path}: public {public}, documented security {secured}");
                }
            }
        }
    }

    #[test]
    fn document_is_openapi_3_1_with_version_and_no_servers() {
        let doc = serde_json::to_value(document()).expect("document serialises");
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "{}", doc["openapi"]);
        assert_eq!(doc["info"]["title"], "Relay");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(doc.get("servers").is_none());
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["relay_key"]["scheme"], "bearer");
        assert_eq!(schemes["session_token"]["in"], "header");
        assert_eq!(schemes["session_token"]["name"], "x-relay-token");
    }
}

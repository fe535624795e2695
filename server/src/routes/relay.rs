//! `/relay/{provider}/{path…}`, any method: the raw passthrough (byok-relay compatible).

use actix_web::{web, FromRequest, HttpRequest, HttpResponse};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::providers::{accepted_providers, ProviderId};
use crate::upstream::Upstream;

/// Backend calls carry `Bearer rly-…` + `X-Relay-User` (checked by the auth middleware);
/// browser calls carry a session token in `x-relay-token`, which names the end user itself.
#[utoipa::path(
    method(get, post, put, patch, delete),
    path = "/relay/{provider}/{path}",
    tag = "passthrough",
    operation_id = "relay",
    summary = "Raw passthrough (any method)",
    description = "Forwards the request (any method) to the provider's own API at `path`, injecting the \
end user's stored key the way that provider wants it, and streams the answer back byte for byte. \
Client credentials are never forwarded; only allow-listed paths and headers pass. Credentials: \
`Authorization: Bearer rly-…` with `X-Relay-User` (backend), or a session token in `x-relay-token` (browser). \
An error answer of the provider keeps its status and body, with the stored key masked in it.",
    security(("relay_key" = []), ("session_token" = [])),
    params(
        ("provider" = ProviderId, Path, description = "The provider whose API to call."),
        ("path" = String, Path, allow_reserved, description = "The provider's API path, may contain `/` (for example `v1/chat/completions`). Only the provider's allow-listed paths are forwarded.", example = "v1/models"),
        ("X-Relay-User" = Option<String>, Header, description = "With a Relay key: the end user whose key to use (required then). Ignored with a session token.", example = "user_123"),
        ("x-relay-base-url" = Option<String>, Header, description = "`openai-compatible` only: if sent, it must name the server the key was stored for."),
    ),
    request_body(description = "Any body the provider accepts, forwarded unchanged (up to the relay body limit).", content(
        (Value = "application/json"),
        ("multipart/form-data"),
        ("application/octet-stream"),
    )),
    responses(
        (status = 200, description = "The provider's answer, unchanged (JSON, an SSE stream, audio, …).", content(
            (Value = "application/json"),
            (String = "text/event-stream"),
            ("application/octet-stream"),
        )),
        (status = 400, description = "A path that cannot be relayed (`path_not_allowed`), missing `X-Relay-User`, or the provider's own 400.", body = PassthroughError),
        (status = 401, description = "Missing or invalid Relay key or session token, or the provider rejected the stored key.", body = PassthroughError),
        (status = 403, description = "A path Relay does not forward to this provider (`path_not_allowed`), a provider the session token does not cover (`provider_not_allowed`), or a stored key the provider refused before (`enduser_key_invalid`: the end user must connect a new one).", body = PassthroughError),
        (status = 404, description = "Unknown provider (`provider_unknown`), or the end user has no key for it (`enduser_key_missing`).", body = PassthroughError),
        (status = 413, description = "The body is larger than the relay limit.", body = PassthroughError),
        (status = 502, description = "The provider could not be reached (`upstream_unavailable`) or answered with a redirect (`upstream_redirect`).", body = PassthroughError),
        (status = 504, description = "The provider did not answer in time.", body = PassthroughError),
        (status = "default", description = "Any other answer of the provider, unchanged."),
    )
)]
pub async fn relay(
    req: HttpRequest,
    RelayProvider(provider): RelayProvider,
    caller: Caller,
    upstream: web::Data<Upstream>,
    settings: web::Data<super::ServerSettings>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // Also checked by `upstream`; here first, so a token for other providers learns nothing of paths.
    caller.may_use(provider)?;
    // The raw, still-encoded path after /relay/{provider}: checked and normalised by the passthrough.
    let prefix_len = "/relay/".len() + provider.as_str().len();
    let tail = req.uri().path().get(prefix_len..).unwrap_or("").to_owned();
    let limit = settings.max_relay_body_bytes;
    crate::passthrough::forward(&upstream, &req, caller, provider, &tail, body, limit).await
}

/// The `{provider}` of the path, known before anything else is looked at (an unknown one is
/// 404 whoever asks).
pub struct RelayProvider(ProviderId);

impl FromRequest for RelayProvider {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(req.match_info().get("provider").unwrap_or("").parse().map(RelayProvider).map_err(|_| {
            ApiError::not_found(
                "provider_unknown",
                format!("Unknown provider. Accepted providers: {}.", accepted_providers()),
            )
        }))
    }
}

/// The passthrough's error answers: Relay's own are in OpenAI's error shape (`Error`); an
/// error the provider answered passes through unchanged, in the provider's own shape.
pub struct PassthroughError;

impl utoipa::PartialSchema for PassthroughError {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Ref, SchemaType};
        AnyOfBuilder::new()
            .item(Ref::from_schema_name(<ErrorBody as utoipa::ToSchema>::name()))
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::AnyValue)
                    .description(Some("The provider's own error body.")),
            )
            .description(Some("Relay's error (OpenAI's shape), or the provider's error answer unchanged."))
            .into()
    }
}

impl utoipa::ToSchema for PassthroughError {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        schemas.push((<ErrorBody as utoipa::ToSchema>::name().into(), <ErrorBody as utoipa::PartialSchema>::schema()));
        <ErrorBody as utoipa::ToSchema>::schemas(schemas);
    }
}

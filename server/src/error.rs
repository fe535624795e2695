//! The one error type every route answers with, rendered in OpenAI's error shape.
//! Clients get a precise, safe message and a stable `code`; the cause chain goes to the log only.

use std::borrow::Cow;
use std::fmt;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// An error a client sees. Build it with the constructors; never put a secret in `message`.
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    message: Cow<'static, str>,
    param: Option<Cow<'static, str>>,
    headers: Vec<(HeaderName, HeaderValue)>,
    source: Option<anyhow::Error>,
}

/// OpenAI's error shape, which every error answer of Relay's has.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(
    as = Error,
    example = json!({"error": {"message": "No API key provided. Send your Relay key as 'Authorization: Bearer rly-...'.", "type": "authentication_error", "param": null, "code": "relay_key_missing"}})
)]
pub struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorObject)]
pub struct ErrorDetail<'a> {
    /// What went wrong, for a human. Never contains a key or token.
    message: &'a str,
    /// The error class: `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `not_found_error`, `rate_limit_error`, `upstream_error`, `api_error`, or a provider's own.
    #[serde(rename = "type")]
    kind: &'a str,
    /// The request field, header or parameter the error is about.
    #[schema(required = true)]
    param: Option<&'a str>,
    /// A stable, machine-readable code (`relay_key_missing`, `enduser_not_found`, …). Null only
    /// when a provider's error had none.
    #[schema(value_type = Option<String>, required = true)]
    code: &'a str,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self { status, kind, code, message: message.into(), param: None, headers: Vec::new(), source: None }
    }

    /// 400 `invalid_request_error`.
    pub fn invalid_request(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", code, message)
    }

    /// 401 `authentication_error`.
    pub fn unauthenticated(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", code, message)
    }

    /// 403 `permission_error`.
    pub fn forbidden(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", code, message)
    }

    /// 404 `not_found_error`.
    pub fn not_found(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found_error", code, message)
    }

    /// 410 for things that existed and are gone for good (used or expired tokens).
    pub fn gone(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::GONE, "invalid_request_error", code, message)
    }

    /// 502 when the provider could not be reached or answered nonsense.
    pub fn bad_gateway(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "upstream_error", code, message)
    }

    /// 500 with a generic message; the cause is logged with the request id, never shown.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "internal_error",
            "The server had an error while processing your request. Quote the x-relay-request-id header if you contact the operator.",
        );
        e.source = Some(source.into());
        e
    }

    /// 503 `store_unavailable` when the database does not answer, with `Retry-After: 1`: the
    /// request did nothing, and Relay recovers by itself when the database is back.
    pub fn unavailable(source: impl Into<anyhow::Error>) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "store_unavailable",
            "Relay's database is not answering; nothing was changed. Try again shortly.",
        )
        .header(HeaderName::from_static("retry-after"), HeaderValue::from_static("1"));
        e.source = Some(source.into());
        e
    }

    /// Names the request field the error is about.
    pub fn param(mut self, param: impl Into<Cow<'static, str>>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Adds a response header, e.g. `Retry-After` or `Allow`.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Keeps a cause for the log without showing it to the client.
    pub fn with_source(mut self, source: impl Into<anyhow::Error>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub fn status_code_u16(&self) -> u16 {
        self.status.as_u16()
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The JSON body alone, for places that build a response by hand.
    pub fn body_json(&self) -> String {
        let body = ErrorBody {
            error: ErrorDetail {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        };
        serde_json::to_string(&body).unwrap_or_else(|_| {
            r#"{"error":{"message":"error","type":"api_error","param":null,"code":"internal_error"}}"#.to_owned()
        })
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)?;
        if let Some(source) = &self.source {
            write!(f, "\nCaused by: {source:#}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, error = ?self, "request failed");
        } else if let Some(source) = &self.source {
            tracing::info!(code = self.code, cause = %format!("{source:#}"), "request rejected");
        }
        let mut res = HttpResponse::build(self.status);
        res.content_type("application/json");
        for (name, value) in &self.headers {
            res.insert_header((name.clone(), value.clone()));
        }
        res.body(self.body_json())
    }
}

/// Maps actix's JSON extractor failures onto precise statuses and codes.
pub fn json_error(err: actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError as J;
    match &err {
        J::OverflowKnownLength { limit, .. } | J::Overflow { limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("The request body is larger than the limit of {limit} bytes."),
        ),
        J::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            "unsupported_media_type",
            "The request body must be JSON, sent with Content-Type: application/json.",
        ),
        J::Deserialize(e) if e.is_data() => ApiError::invalid_request(
            "invalid_request_body",
            format!("The request body is not valid for this endpoint: {}", redact_quoted(&e.to_string())),
        ),
        J::Deserialize(_) | J::Serialize(_) => {
            ApiError::invalid_request("invalid_json", "The request body is not valid JSON.")
        }
        _ => ApiError::invalid_request("invalid_request_body", "The request body could not be read."),
    }
}

/// serde quotes offending string values ("invalid type: string \"…\""); a value could be a
/// secret pasted in the wrong field, so only field names (in backticks) survive.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        if c == '"' {
            if !inside {
                out.push_str("\"…\"");
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

/// The error body for a status that no handler produced (unknown route, wrong method, ...).
pub fn for_bare_status(status: StatusCode, method: &str, path_pattern: &str) -> ApiError {
    match status {
        StatusCode::NOT_FOUND => ApiError::not_found(
            "unknown_route",
            format!("Unknown route: {method} {path_pattern}. See /openapi.json for the routes Relay serves."),
        ),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "invalid_request_error",
            "method_not_allowed",
            format!("{method} is not allowed on this route."),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            "invalid_request_error",
            "request_too_large",
            "The request body is larger than the limit.",
        ),
        s if s.is_server_error() => {
            ApiError::new(s, "api_error", "internal_error", "The server had an error while processing your request.")
        }
        s => ApiError::new(
            s,
            "invalid_request_error",
            "invalid_request",
            s.canonical_reason().unwrap_or("The request was rejected.").to_owned(),
        ),
    }
}

//! Logging and request ids. Every request gets a server-made id (a client's own `x-request-id`
//! is not trusted), a span carrying it, one access-log line, and the id on the response.
//! Logs name the route pattern, never the raw path: paths can hold tokens and end-user labels.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::error;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-relay-request-id");
pub const COMPAT_REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn new_request_id() -> String {
    format!("req_{}", uuid::Uuid::new_v4().simple())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Installs the global subscriber: JSON lines or human text on stderr. `RUST_LOG` filters.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Pretty => builder.with_target(false).try_init(),
    };
}

/// Outermost middleware: request id, span, access log, and OpenAI-shaped bodies for errors that
/// no handler produced (unknown route, wrong method, actix extractor failures).
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = new_request_id();
    let method = req.method().clone();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route, tenant_id = tracing::field::Empty);
    req.extensions_mut().insert(RequestId(id.clone()));
    let metrics = req.app_data::<actix_web::web::Data<crate::metrics::Metrics>>().cloned();
    let started = Instant::now();

    let result = next.call(req).instrument(span.clone()).await;
    let finish = |res: HttpResponse| finish_response(res, &id, method.as_str(), &route);
    let (status, outcome) = match result {
        Ok(res) => {
            let (req, res) = res.map_into_boxed_body().into_parts();
            let res = finish(res);
            (res.status(), Ok(ServiceResponse::new(req, res)))
        }
        // Inner services answer errors as responses; this only catches a middleware failure.
        // The request is gone by now, so the finished response travels inside the error.
        Err(e) => {
            let res = finish(e.error_response());
            (res.status(), Err(actix_web::error::InternalError::from_response(e.to_string(), res).into()))
        }
    };
    if let Some(m) = metrics {
        let status = status.as_u16().to_string();
        m.http_requests.with_label_values(&[route.as_str(), method.as_str(), status.as_str()]).inc();
        m.http_duration.with_label_values(&[route.as_str()]).observe(started.elapsed().as_secs_f64());
    }
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(status = status.as_u16(), latency_ms, "request finished"));
    outcome
}

/// Gives bare error statuses an OpenAI-shaped body and stamps the request id.
fn finish_response(res: HttpResponse, id: &str, method: &str, route: &str) -> HttpResponse {
    let mut res = if (res.status().is_client_error() || res.status().is_server_error()) && !is_json(&res) {
        let api = error::for_bare_status(res.status(), method, route);
        let mut new = HttpResponse::build(res.status());
        new.content_type("application/json");
        for (name, value) in res.headers() {
            if name != CONTENT_TYPE && name != actix_web::http::header::CONTENT_LENGTH {
                new.append_header((name.clone(), value.clone()));
            }
        }
        new.body(api.body_json())
    } else {
        res
    };
    let anthropic = ANTHROPIC_SHAPED_ROUTES.contains(&route);
    if anthropic {
        res = anthropic_shaped(res);
    }
    if let Ok(value) = HeaderValue::from_str(id) {
        res.headers_mut().insert(REQUEST_ID_HEADER, value.clone());
        res.headers_mut().insert(COMPAT_REQUEST_ID_HEADER, value.clone());
        if anthropic {
            res.headers_mut().insert(ANTHROPIC_REQUEST_ID_HEADER, value);
        }
    }
    res
}

/// Routes of Anthropic's API: errors in Anthropic's shape, the request id also where the
/// Anthropic SDKs read it (`request-id`).
const ANTHROPIC_SHAPED_ROUTES: &[&str] = &["/v1/messages"];
const ANTHROPIC_REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("request-id");

/// An OpenAI-shaped error answer (Relay's own, or a translated provider's) in Anthropic's shape,
/// status and headers kept. Anthropic's own errors and successful answers pass untouched.
fn anthropic_shaped(res: HttpResponse) -> HttpResponse {
    if !(res.status().is_client_error() || res.status().is_server_error()) || !is_json(&res) {
        return res;
    }
    let status = res.status().as_u16();
    let (res, body) = res.into_parts();
    let bytes = match body.try_into_bytes() {
        Ok(bytes) => bytes,
        Err(body) => return res.set_body(body),
    };
    let reshaped = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .filter(|v| v["type"] != "error")
        .and_then(|v| crate::providers::messages::anthropic_error(&v, Some(status)));
    match reshaped {
        Some(v) => res.set_body(BoxBody::new(v.to_string())),
        None => res.set_body(BoxBody::new(bytes)),
    }
}

fn is_json(res: &HttpResponse) -> bool {
    res.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"))
}

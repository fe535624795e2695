//! `/relay/{provider}/{path…}`: the provider's own API, with the end user's key injected.
//! Paths are checked against the provider's allowlist after decoding and normalising; headers
//! pass through allowlists both ways; bodies stream both ways byte for byte (error answers are
//! read, to be masked); a client that leaves drops the upstream request with it.

mod path;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;

pub use path::{normalise_path, PathError};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::providers::{self, ProviderId};
use crate::upstream::Upstream;

/// Request headers a client may send on to the provider. Credentials are never among them:
/// Relay sets the provider's own.
const REQUEST_HEADERS: &[&str] = &[
    "content-type",
    "accept",
    "anthropic-version",
    "anthropic-beta",
    "openai-organization",
    "openai-project",
    "openai-beta",
    "idempotency-key",
];

pub async fn forward(
    upstream: &Upstream,
    req: &HttpRequest,
    caller: Caller,
    provider: ProviderId,
    raw_tail: &str,
    body: web::Payload,
    max_body: usize,
) -> Result<HttpResponse, ApiError> {
    let path = normalise_path(raw_tail).map_err(|e| {
        ApiError::invalid_request("path_not_allowed", format!("This path cannot be relayed: {e}.")).param("path")
    })?;
    if !providers::passthrough_allowed(provider, &path) {
        return Err(ApiError::forbidden(
            "path_not_allowed",
            format!(
                "Relay does not forward this path to {provider}. Allowed: {}.",
                provider.def().passthrough_paths.join(", ")
            ),
        ));
    }
    if req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > max_body)
    {
        return Err(too_large(max_body));
    }
    // A free-tier caller with a model allowlist: the model named in the path (Gemini) or in the
    // JSON body must be allowed, so the body is read here (it is small) instead of streamed.
    let (buffered, body) = match caller.free_models.is_some() {
        true => (Some(check_free_tier_body(&caller, &path, body, max_body).await?), None),
        false => (None, Some(body)),
    };

    let query = path::filtered_query(req.query_string());
    let usage = Some(("", format!("/relay/{provider}{path}")));
    let mut call = upstream.open(&caller, provider, &path::encode_path(&path), Some(&query), usage).await?;
    // openai-compatible: a base URL the client names must be the server the key was stored for.
    if let (Some(base), Some(claimed)) = (call.stored_base(), req.headers().get("x-relay-base-url")) {
        if !claimed.to_str().is_ok_and(|c| upstream.same_server(c, base)) {
            return Err(ApiError::forbidden(
                "base_url_mismatch",
                "x-relay-base-url does not match the server this key was stored for.",
            ));
        }
    }
    for name in REQUEST_HEADERS {
        if let Some(value) = req.headers().get(*name) {
            if value.as_bytes().iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                return Err(ApiError::invalid_request(
                    "invalid_header",
                    format!("The {name} header holds a control character."),
                ));
            }
            if let (Ok(n), Ok(v)) = (
                reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                reqwest::header::HeaderValue::from_bytes(value.as_bytes()),
            ) {
                call.header(n, v);
            }
        }
    }
    if let Some(len) =
        req.headers().get("content-length").and_then(|v| reqwest::header::HeaderValue::from_bytes(v.as_bytes()).ok())
    {
        call.header(reqwest::header::CONTENT_LENGTH, len);
    }
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| ApiError::invalid_request("invalid_method", "Unsupported HTTP method."))?;
    let has_body = req.headers().contains_key("content-length") || req.headers().contains_key("transfer-encoding");
    let upload = match buffered {
        Some(Buffered { bytes, had_body }) => had_body.then(|| reqwest::Body::from(bytes)),
        None => {
            let over_limit = Arc::new(AtomicBool::new(false));
            call.watch_upload(over_limit.clone(), max_body);
            body.filter(|_| has_body).map(|body| upload_stream(body, max_body, over_limit))
        }
    };

    let mut sent = call.send(method, upload, "passthrough").await?;
    sent.recorder.first_token();
    if !sent.is_success() {
        return Ok(sent.raw_error_answer().await);
    }
    let mut out = sent.answer();
    let (watched, recorder, _) = sent.watch();
    Ok(out.streaming(watched.into_bytes(recorder)))
}

/// The body streams up as it arrives, through a channel: actix's payload stays on this worker,
/// reqwest's body may move between threads. Over the limit, the upload is cut and `over_limit`
/// set.
fn upload_stream(mut body: web::Payload, max_body: usize, over_limit: Arc<AtomicBool>) -> reqwest::Body {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    actix_web::rt::spawn(async move {
        let mut seen = 0usize;
        while let Some(chunk) = body.next().await {
            let item = match chunk {
                Ok(b) => {
                    seen += b.len();
                    if seen > max_body {
                        over_limit.store(true, Ordering::Relaxed);
                        let _ = tx.send(Err(std::io::Error::other("request body over the limit"))).await;
                        return;
                    }
                    Ok(b)
                }
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            if tx.send(item).await.is_err() {
                return;
            }
        }
    });
    reqwest::Body::wrap_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// A request body read whole for the free-tier model check.
struct Buffered {
    bytes: Bytes,
    had_body: bool,
}

/// The models a passthrough request names: `models/{model}:verb` in the path (Gemini) and the
/// body's `model` field.
async fn check_free_tier_body(
    caller: &Caller,
    path: &str,
    mut body: web::Payload,
    max_body: usize,
) -> Result<Buffered, ApiError> {
    let mut buf = bytes::BytesMut::new();
    let mut had_body = false;
    while let Some(chunk) = body.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::invalid_request("invalid_body", format!("The body could not be read: {e}.")))?;
        had_body = true;
        if buf.len() + chunk.len() > max_body {
            return Err(too_large(max_body));
        }
        buf.extend_from_slice(&chunk);
    }
    let in_path =
        path.split('/').find_map(|seg| seg.split_once(':').map(|(m, _)| m)).filter(|_| path.contains("/models/"));
    if let Some(model) = in_path {
        caller.check_model(&[model])?;
    }
    let in_body = match serde_json::from_slice::<Value>(&buf) {
        Ok(Value::Object(map)) => map.get("model").map(|m| m.as_str().unwrap_or_default().to_owned()),
        _ => None,
    };
    match in_body {
        Some(name) => caller.check_model(&[&name, name.split_once('/').map_or(&name, |(_, m)| m)])?,
        // A body Relay cannot read a model from (a form upload, JSON without `model`, which the
        // provider would answer with its default model) could call any model: refused.
        None if had_body && in_path.is_none() => {
            return Err(ApiError::forbidden(
                "model_not_allowed",
                "On this app's free tier a request must name its model in a JSON `model` field.",
            )
            .param("model"))
        }
        None => {}
    }
    Ok(Buffered { bytes: buf.freeze(), had_body })
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request_error",
        "request_too_large",
        format!("The request body is larger than the limit of {max} bytes."),
    )
}

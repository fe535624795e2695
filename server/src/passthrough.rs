//! `/relay/{provider}/{path…}`: the provider's own API, with the end user's key injected.
//! Paths are checked against a per-provider allowlist after decoding and normalising; headers
//! pass through allowlists both ways; bodies stream both ways byte for byte; a client that
//! leaves drops the upstream request with it.

use std::time::Instant;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;

use crate::error::ApiError;
use crate::gateway::{self, Caller};
use crate::providers::ProviderId;
use crate::startup::AppState;

/// Paths each provider may be reached at, below its base URL. `*` at the end stands for one
/// or more further segments.
fn allowed_paths(provider: ProviderId) -> &'static [&'static str] {
    match provider {
        ProviderId::OpenAi => &[
            "/v1/chat/completions",
            "/v1/completions",
            "/v1/embeddings",
            "/v1/responses",
            "/v1/responses/*",
            "/v1/models",
            "/v1/models/*",
            "/v1/moderations",
            "/v1/images/generations",
            "/v1/audio/speech",
            "/v1/audio/transcriptions",
            "/v1/audio/translations",
        ],
        ProviderId::Anthropic => &["/v1/messages", "/v1/messages/count_tokens", "/v1/models", "/v1/models/*"],
        ProviderId::Google => &["/v1beta/models", "/v1beta/models/*", "/v1/models", "/v1/models/*"],
        ProviderId::Groq => &[
            "/v1/chat/completions",
            "/v1/embeddings",
            "/v1/models",
            "/v1/models/*",
            "/v1/audio/transcriptions",
            "/v1/audio/translations",
        ],
        ProviderId::Mistral => &[
            "/v1/chat/completions",
            "/v1/fim/completions",
            "/v1/embeddings",
            "/v1/moderations",
            "/v1/models",
            "/v1/models/*",
        ],
        ProviderId::OpenRouter => {
            &["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/v1/key"]
        }
        // Below the server's own base URL, which already names the API version.
        ProviderId::OpenAiCompatible => &["/chat/completions", "/completions", "/embeddings", "/models", "/responses"],
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("the path is not valid percent-encoded UTF-8")]
    Encoding,
    #[error("the path may not contain '.' or '..' segments, empty segments, backslashes or control characters")]
    Traversal,
    #[error("the path may not contain an encoded slash")]
    EncodedSlash,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes and normalises the path as the provider would see it, refusing anything that could
/// mean something else after another round of decoding or normalising.
pub fn normalise_path(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let (h, l) = (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex));
            let (Some(h), Some(l)) = (h, l) else { return Err(PathError::Encoding) };
            let b = h * 16 + l;
            if b == b'/' {
                return Err(PathError::EncodedSlash);
            }
            // A second layer of encoding would let `%252e%252e` become `..` upstream.
            if b == b'%' {
                return Err(PathError::Encoding);
            }
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8(out).map_err(|_| PathError::Encoding)?;
    if decoded.chars().any(|c| c.is_control() || c == '\\') {
        return Err(PathError::Traversal);
    }
    let path = decoded.strip_prefix('/').unwrap_or(&decoded);
    for segment in path.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(PathError::Traversal);
        }
    }
    Ok(format!("/{path}"))
}

pub fn path_allowed(provider: ProviderId, path: &str) -> bool {
    allowed_paths(provider).iter().any(|pattern| match pattern.strip_suffix("/*") {
        Some(prefix) => path.strip_prefix(prefix).is_some_and(|rest| rest.len() > 1 && rest.starts_with('/')),
        None => path == *pattern,
    })
}

/// Re-encodes a normalised path for the upstream URL: only characters that cannot stand in a
/// path are escaped.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"/-._~:@!$&'()*+,;=".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

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

/// Response headers passed back besides the rate-limit family.
fn response_header_allowed(name: &str) -> bool {
    matches!(name, "content-type" | "content-disposition" | "retry-after" | "retry-after-ms" | "openai-processing-ms")
        || name.starts_with("x-ratelimit-")
        || name.starts_with("anthropic-ratelimit-")
}

/// Query parameters are passed on, except a Google `key`: keys never travel in URLs.
fn filtered_query(query: &str) -> String {
    query.split('&').filter(|p| !p.is_empty() && !p.starts_with("key=")).collect::<Vec<_>>().join("&")
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
        crate::ratelimit::check_free_model(caller, &[model])?;
    }
    let in_body = match serde_json::from_slice::<Value>(&buf) {
        Ok(Value::Object(map)) => map.get("model").map(|m| m.as_str().unwrap_or_default().to_owned()),
        _ => None,
    };
    match in_body {
        Some(name) => {
            crate::ratelimit::check_free_model(caller, &[&name, name.split_once('/').map_or(&name, |(_, m)| m)])?
        }
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

pub async fn forward(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    provider: ProviderId,
    raw_tail: &str,
    body: web::Payload,
    max_body: usize,
) -> Result<HttpResponse, ApiError> {
    let path = normalise_path(raw_tail).map_err(|e| {
        ApiError::invalid_request("path_not_allowed", format!("This path cannot be relayed: {e}.")).param("path")
    })?;
    if !path_allowed(provider, &path) {
        return Err(ApiError::forbidden(
            "path_not_allowed",
            format!("Relay does not forward this path to {provider}. Allowed: {}.", allowed_paths(provider).join(", ")),
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

    let (row, key) =
        state.keys.open(&caller.end_user, provider).await.inspect_err(|e| gateway::count_decrypt_failure(&state, e))?;
    let mut headers = provider.auth_headers(&key).map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    drop(key);
    state.keys.touch(&row).await;
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
                headers.insert(n, v);
            }
        }
    }

    let query = filtered_query(req.query_string());
    let upstreams = state.keys.upstreams();
    let (url, client) = match row.base_url.as_deref() {
        // openai-compatible: the server the key was stored for, checked again now; a base URL
        // the client names must be that one. The guarded client checks every resolved address.
        Some(stored) => {
            let base = upstreams.check_base_url(stored).map_err(|e| {
                ApiError::forbidden(e.code(), format!("The stored base URL is no longer allowed: {e}."))
            })?;
            if let Some(claimed) = req.headers().get("x-relay-base-url") {
                let same = claimed
                    .to_str()
                    .ok()
                    .and_then(|c| upstreams.check_base_url(c).ok())
                    .is_some_and(|c| c.to_string() == base.to_string());
                if !same {
                    return Err(ApiError::forbidden(
                        "base_url_mismatch",
                        "x-relay-base-url does not match the server this key was stored for.",
                    ));
                }
            }
            let url = base
                .join(&encode_path(&path), (!query.is_empty()).then_some(query.as_str()))
                .map_err(|e| ApiError::forbidden(e.code(), format!("This path cannot be relayed: {e}.")))?;
            (url.to_string(), upstreams.guarded_client().clone())
        }
        None => {
            let mut url = format!("{}{}", upstreams.base_url(provider), encode_path(&path));
            if !query.is_empty() {
                url.push('?');
                url.push_str(&query);
            }
            (url, upstreams.client().clone())
        }
    };
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| ApiError::invalid_request("invalid_method", "Unsupported HTTP method."))?;

    // The body streams up as it arrives, through a channel: actix's payload stays on this
    // worker, reqwest's body may move between threads. Over the limit, the upload is cut.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let over_limit = std::rc::Rc::new(std::cell::Cell::new(false));
    let flag = over_limit.clone();
    let body = match buffered {
        Some(Buffered { bytes, had_body }) => {
            if had_body {
                let _ = tx.try_send(Ok(bytes));
            }
            None
        }
        None => body,
    };
    actix_web::rt::spawn(async move {
        let Some(mut body) = body else { return };
        let mut seen = 0usize;
        while let Some(chunk) = body.next().await {
            let item = match chunk {
                Ok(b) => {
                    seen += b.len();
                    if seen > max_body {
                        flag.set(true);
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
    let has_body = req.headers().contains_key("content-length") || req.headers().contains_key("transfer-encoding");
    if let Some(len) =
        req.headers().get("content-length").and_then(|v| reqwest::header::HeaderValue::from_bytes(v.as_bytes()).ok())
    {
        headers.insert(reqwest::header::CONTENT_LENGTH, len);
    }
    let upload = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let started = Instant::now();
    let timeouts = state.keys.upstreams().timeouts().clone();
    let mut request = client.request(method, url).headers(headers);
    if has_body {
        request = request.body(upload);
    }
    let send = request.send();
    let res = match tokio::time::timeout(timeouts.first_byte, send).await {
        Ok(Ok(res)) => res,
        Ok(Err(_)) if over_limit.get() => return Err(too_large(max_body)),
        Ok(Err(e)) => {
            if let Some(refused) = crate::ssrf::SsrfError::find(&e) {
                return Err(ApiError::forbidden(refused.code(), format!("Relay will not connect there: {refused}.")));
            }
            return Err(ApiError::bad_gateway("upstream_unavailable", format!("{provider} could not be reached."))
                .with_source(e.without_url()));
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_error",
                "upstream_timeout",
                format!("{provider} did not answer in time."),
            ))
        }
    };
    let ttfb = started.elapsed();
    let status = res.status().as_u16();
    state.metrics.upstream_requests.with_label_values(&[provider.as_str(), "passthrough", &status.to_string()]).inc();
    state.metrics.upstream_ttfb.with_label_values(&[provider.as_str()]).observe(ttfb.as_secs_f64());
    gateway::record_passthrough(&state, &caller, provider, &path, status, started);

    let mut out = HttpResponse::build(StatusCode::from_u16(res.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY));
    for (name, value) in res.headers() {
        if response_header_allowed(name.as_str()) {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_ref()), HeaderValue::from_bytes(value.as_bytes())) {
                out.append_header((n, v));
            }
        }
    }
    if let Some(id) = ["x-request-id", "request-id"].iter().find_map(|n| res.headers().get(*n)) {
        if let Ok(v) = HeaderValue::from_bytes(id.as_bytes()) {
            out.insert_header((HeaderName::from_static("x-upstream-request-id"), v));
        }
    }
    let idle = timeouts.idle;
    let stream = res.bytes_stream();
    let body = futures::stream::unfold(stream, move |mut s| async move {
        match tokio::time::timeout(idle, s.next()).await {
            Ok(Some(Ok(b))) => Some((Ok::<_, actix_web::Error>(b), s)),
            Ok(Some(Err(e))) => Some((Err(actix_web::error::ErrorBadGateway(e.without_url())), s)),
            Ok(None) | Err(_) => None,
        }
    });
    Ok(out.streaming(body))
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request_error",
        "request_too_large",
        format!("The request body is larger than the limit of {max} bytes."),
    )
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_encoding_tricks_are_refused() {
        for bad in [
            "/v1/../admin",
            "/v1/./chat/completions",
            "/v1/%2e%2e/admin",
            "/v1/%2E%2E/admin",
            "/v1/.%2e/admin",
            "/v1/%252e%252e/admin",
            "/v1%2fchat/completions",
            "/v1//chat/completions",
            "/v1/chat\\completions",
            "/v1/chat/completions%00",
            "/v1/chat/%0d%0acompletions",
            "/v1/%zz",
            "/v1/%c3%28",
        ] {
            assert!(normalise_path(bad).is_err(), "{bad}");
        }
        assert_eq!(normalise_path("/v1/chat/completions").as_deref(), Ok("/v1/chat/completions"));
        assert_eq!(
            normalise_path("/v1beta/models/gemini-2.5-flash:streamGenerateContent").as_deref(),
            Ok("/v1beta/models/gemini-2.5-flash:streamGenerateContent")
        );
        assert_eq!(normalise_path("/v1/%63hat/completions").as_deref(), Ok("/v1/chat/completions"));
    }

    #[test]
    fn allowlists() {
        assert!(path_allowed(ProviderId::OpenAi, "/v1/chat/completions"));
        assert!(path_allowed(ProviderId::OpenAi, "/v1/responses/resp_123"));
        assert!(!path_allowed(ProviderId::OpenAi, "/v1/responses/"));
        assert!(!path_allowed(ProviderId::OpenAi, "/v1/organization/users"));
        assert!(!path_allowed(ProviderId::OpenAi, "/v1/chat/completionsX"));
        assert!(path_allowed(ProviderId::Anthropic, "/v1/messages"));
        assert!(!path_allowed(ProviderId::Anthropic, "/v1/chat/completions"));
        assert!(path_allowed(ProviderId::Google, "/v1beta/models/gemini-2.5-flash:generateContent"));
        assert!(!path_allowed(ProviderId::Google, "/v1beta/files"));
    }

    #[test]
    fn google_keys_never_travel_in_the_query() {
        assert_eq!(filtered_query("alt=sse&key=AIzaXYZ"), "alt=sse");
        assert_eq!(filtered_query("key=x"), "");
        assert_eq!(filtered_query("pageSize=5"), "pageSize=5");
    }
}

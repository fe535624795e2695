//! What one client may take of the server: a deadline to send a request's whole body, after
//! which it gets 408 `request_timeout` and its connection is closed (a slow-body client cannot
//! hold a connection, a file descriptor and a worker's attention for long), and the cap on
//! connections the listener applies (`startup`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use bytes::Bytes;
use futures::Stream;

use crate::error::ApiError;

/// The limits, as configured (`RELAY_BODY_TIMEOUT`, `RELAY_MAX_CONNECTIONS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// From the request's head being read to its body's last byte.
    pub body_timeout: Duration,
    /// Connections open at once, over all workers.
    pub max_connections: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self { body_timeout: Duration::from_secs(60), max_connections: 10_000 }
    }
}

impl ClientLimits {
    /// The cap for each of `workers` workers (actix counts connections per worker).
    pub fn per_worker(&self, workers: usize) -> usize {
        self.max_connections.div_ceil(workers.max(1)).max(1)
    }
}

/// How the body of one request went.
#[derive(Default)]
struct BodyState {
    timed_out: AtomicBool,
    finished: AtomicBool,
}

/// The request's payload with a deadline: past it, the stream ends with a timeout error.
struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    state: Arc<BodyState>,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.state.finished.load(Ordering::Relaxed) || self.state.timed_out.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(None) => {
                self.state.finished.store(true, Ordering::Relaxed);
                Poll::Ready(None)
            }
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            Poll::Pending => match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.state.timed_out.store(true, Ordering::Relaxed);
                    let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "request body deadline");
                    Poll::Ready(Some(Err(PayloadError::Io(e))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// Middleware: gives every request body a deadline. A request whose body did not arrive in time
/// is answered 408 `request_timeout`, whatever its handler made of the broken body; any answer
/// given before the body was read to its end closes the connection, so an unread body cannot
/// keep it open.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let limit = req.app_data::<actix_web::web::Data<ClientLimits>>().map(|l| l.body_timeout);
    let headers = req.headers();
    let has_body =
        headers.get(CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0") || headers.contains_key(TRANSFER_ENCODING);
    let Some(limit) = limit.filter(|_| has_body) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let state = Arc::new(BodyState::default());
    let inner = req.take_payload();
    let timed = Deadline { inner, sleep: Box::pin(tokio::time::sleep(limit)), state: state.clone() };
    req.set_payload(Payload::Stream { payload: Box::pin(timed) });
    let result = next.call(req).await;
    if state.timed_out.load(Ordering::Relaxed) {
        let err = ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "request_timeout",
            format!("The request body did not arrive within {} s.", limit.as_secs()),
        );
        let Ok(res) = result else { return Err(err.into()) };
        let mut answer = actix_web::ResponseError::error_response(&err);
        answer.head_mut().set_connection_type(actix_web::http::ConnectionType::Close);
        return Ok(res.into_response(answer));
    }
    let mut res = result?.map_into_boxed_body();
    if !state.finished.load(Ordering::Relaxed) {
        res.response_mut().head_mut().set_connection_type(actix_web::http::ConnectionType::Close);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_shared_by_the_workers() {
        let limits = ClientLimits { max_connections: 10_000, ..Default::default() };
        assert_eq!(limits.per_worker(4), 2_500);
        assert_eq!(limits.per_worker(3), 3_334);
        assert_eq!(limits.per_worker(0), 10_000);
        assert_eq!(ClientLimits { max_connections: 1, ..Default::default() }.per_worker(8), 1);
    }
}

//! Watching an upstream body as it streams: one process-wide ticker (not a timer per stream)
//! wakes every open stream four times a second to notice silence, for keep-alives and idle timeouts.

use std::pin::Pin;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::watch;

/// How often the ticker ticks: the resolution of keep-alives and idle timeouts.
pub const TICK: Duration = Duration::from_millis(250);

/// The ticker's channel. Its thread sleeps and bumps a counter; receivers are woken by it on
/// whatever runtime they run (every actix worker, every test server).
fn ticks() -> watch::Receiver<u64> {
    static TICKER: OnceLock<watch::Receiver<u64>> = OnceLock::new();
    TICKER
        .get_or_init(|| {
            let (tx, rx) = watch::channel(0u64);
            let spawned = std::thread::Builder::new().name("relay-ticker".into()).spawn(move || loop {
                std::thread::sleep(TICK);
                tx.send_modify(|n| *n = n.wrapping_add(1));
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start the stream ticker; idle streams are not timed out");
            }
            rx
        })
        .clone()
}

/// What the upstream did next.
pub enum Next {
    Data(Bytes),
    /// A tick passed with nothing from the upstream (time to say something to the client?).
    Tick,
    /// The upstream has been silent for longer than the idle timeout.
    Idle,
    Broken(reqwest::Error),
    End,
}

/// An upstream body with its silence measured.
pub struct Watched {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    ticks: watch::Receiver<u64>,
    idle: Duration,
    last_data: Instant,
}

impl Watched {
    pub fn new(res: reqwest::Response, idle: Duration) -> Self {
        let mut ticks = ticks();
        ticks.mark_unchanged();
        Self { body: Box::pin(res.bytes_stream()), ticks, idle, last_data: Instant::now() }
    }

    /// Waits for the next piece of the body or the next tick, whichever comes first. Both
    /// waits are cancel-safe: a tick loses no upstream bytes.
    pub async fn next(&mut self) -> Next {
        tokio::select! {
            biased;
            item = self.body.next() => match item {
                Some(Ok(bytes)) => {
                    self.last_data = Instant::now();
                    Next::Data(bytes)
                }
                Some(Err(e)) => Next::Broken(e),
                None => Next::End,
            },
            _ = self.ticks.changed() => {
                if self.last_data.elapsed() >= self.idle { Next::Idle } else { Next::Tick }
            }
        }
    }

    /// The body as bytes, ended when the upstream goes idle and failed when it breaks: for the
    /// raw passthrough, which adds nothing of its own to a body. `guard` lives as long as the
    /// stream (a usage recorder, a gauge).
    pub fn into_bytes<G: 'static>(self, guard: G) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
        futures::stream::unfold((self, guard), |(mut w, guard)| async move {
            loop {
                match w.next().await {
                    Next::Data(b) => return Some((Ok(b), (w, guard))),
                    Next::Tick => continue,
                    Next::Broken(e) => {
                        return Some((Err(actix_web::error::ErrorBadGateway(e.without_url())), (w, guard)))
                    }
                    Next::Idle | Next::End => return None,
                }
            }
        })
    }
}

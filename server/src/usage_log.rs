//! Usage events are written in batches, off the request path: each finished call hands its
//! event to one writer task, which stores what has gathered every `FLUSH_EVERY` (or every
//! `BATCH` events) in one transaction. `flush` waits until everything handed over so far is
//! stored: the usage API calls it before it reads (a node answers with its own latest calls),
//! and the server calls it on shutdown.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::store::{DynStore, UsageEvent};

/// The longest an event waits before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// The most events written in one transaction.
const BATCH: usize = 512;

enum Message {
    Event(Box<UsageEvent>),
    Flush(oneshot::Sender<()>),
}

/// The handle every request holds (cheap to clone).
#[derive(Clone)]
pub struct UsageLog {
    tx: mpsc::UnboundedSender<Message>,
}

impl UsageLog {
    /// Starts the writer task on the current runtime.
    pub fn start(store: DynStore) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(store, rx));
        Self { tx }
    }

    /// Queues one event; never waits.
    pub fn record(&self, event: UsageEvent) {
        if self.tx.send(Message::Event(Box::new(event))).is_err() {
            tracing::warn!("the usage writer has stopped; a usage event was not recorded");
        }
    }

    /// Waits until every event queued before this call is stored (or failed to be, logged).
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Message::Flush(ack)).is_ok() {
            let _ = done.await;
        }
    }
}

async fn writer(store: DynStore, mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut events: Vec<UsageEvent> = Vec::with_capacity(BATCH);
    let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        // Wait for the first message of a batch, then gather for a little while.
        let Some(first) = rx.recv().await else { break };
        let mut closed = false;
        match first {
            Message::Event(e) => events.push(*e),
            Message::Flush(ack) => acks.push(ack),
        }
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        while acks.is_empty() && events.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Message::Event(e))) => events.push(*e),
                Ok(Some(Message::Flush(ack))) => acks.push(ack),
                Ok(None) => {
                    closed = true;
                    break;
                }
                Err(_) => break,
            }
        }
        write(&store, &mut events).await;
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
        if closed {
            break;
        }
    }
    write(&store, &mut events).await;
}

async fn write(store: &DynStore, events: &mut Vec<UsageEvent>) {
    if events.is_empty() {
        return;
    }
    if let Err(e) = store.insert_usage_events(events).await {
        tracing::warn!(error = ?e, "could not record some usage events");
    }
    events.clear();
}

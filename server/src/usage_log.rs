//! Usage events are written in batches, off the request path: a finished call only pushes its
//! event onto a list (no task is woken), and one writer task stores the list every
//! `FLUSH_EVERY` in one transaction. `flush` stores everything pushed so far before it returns:
//! the usage API calls it before it reads (a node answers with its own latest calls), and the
//! server calls it on shutdown. A call a budget applies to is stored at once (`record_now`), and
//! after each write the budgets see what was spent (`Budgets::after_stored`).

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::budgets::Budgets;
use crate::store::{DynStore, UsageEvent};

/// The longest an event waits before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

struct Inner {
    pending: Mutex<Vec<UsageEvent>>,
    /// One writer at a time, so events are stored in the order they were pushed.
    writing: tokio::sync::Mutex<()>,
    store: DynStore,
    budgets: Budgets,
}

/// The handle every request holds (cheap to clone).
#[derive(Clone)]
pub struct UsageLog {
    inner: Arc<Inner>,
}

impl UsageLog {
    /// Starts the writer task on the current runtime; it ends when the last handle is dropped.
    pub fn start(store: DynStore, budgets: Budgets) -> Self {
        let inner =
            Arc::new(Inner { pending: Mutex::new(Vec::new()), writing: tokio::sync::Mutex::new(()), store, budgets });
        tokio::spawn(writer(Arc::downgrade(&inner)));
        Self { inner }
    }

    /// Queues one event; never waits.
    pub fn record(&self, event: UsageEvent) {
        self.inner.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(event);
    }

    /// Queues one event and has it stored now, in the background (a budget applies to it).
    pub fn record_now(&self, event: UsageEvent) {
        self.record(event);
        let inner = self.inner.clone();
        tokio::spawn(async move { flush(&inner).await });
    }

    /// Queues one event and returns once it is stored (with everything queued before it).
    pub async fn store(&self, event: UsageEvent) {
        self.record(event);
        flush(&self.inner).await;
    }

    /// Stores every event queued before this call (failures are logged).
    pub async fn flush(&self) {
        flush(&self.inner).await;
    }
}

async fn flush(inner: &Inner) {
    let _one_writer = inner.writing.lock().await;
    let events = std::mem::take(&mut *inner.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    if events.is_empty() {
        return;
    }
    if let Err(e) = inner.store.insert_usage_events(&events).await {
        tracing::warn!(error = ?e, "could not record some usage events");
    }
    if events.iter().any(|e| e.cost_nanos.is_some()) {
        inner.budgets.after_stored(&events).await;
    }
}

async fn writer(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        flush(&inner).await;
    }
}

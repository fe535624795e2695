//! Usage events are written in batches, off the request path: a finished call only pushes its
//! event onto a list (no task is woken), and one writer task stores the list every
//! `FLUSH_EVERY` in one transaction. `flush` stores everything pushed so far before it returns:
//! the usage API calls it before it reads (a node answers with its own latest calls), and the
//! server calls it on shutdown. A call a budget applies to is stored at once (`record_now`), and
//! after each write the budgets see what was spent (`Budgets::after_stored`). While the database
//! does not answer, events wait here (at most `MAX_PENDING`) and are written when it is back.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::budgets::Budgets;
use crate::metrics::Metrics;
use crate::store::{DynStore, StoreError, UsageEvent};

/// The longest an event waits before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Events kept while the database is away; past it the oldest are dropped (and counted).
const MAX_PENDING: usize = 200_000;

/// After a write the database did not answer, how long before the next try: meanwhile a
/// caller's flush fails at once instead of waiting for the database again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

struct Inner {
    pending: Mutex<Vec<UsageEvent>>,
    /// One writer at a time, so events are stored in the order they were pushed.
    writing: tokio::sync::Mutex<()>,
    store: DynStore,
    budgets: Budgets,
    metrics: Arc<Metrics>,
    /// `relay_memory_map_entries{map="usage_pending"}`: events not yet written.
    pending_gauge: prometheus::IntGauge,
    /// Set when the database did not answer: no write is tried before this time.
    retry_at: Mutex<Option<std::time::Instant>>,
}

/// The handle every request holds (cheap to clone).
#[derive(Clone)]
pub struct UsageLog {
    inner: Arc<Inner>,
}

impl UsageLog {
    /// Starts the writer task on the current runtime; it ends when the last handle is dropped.
    pub fn start(store: DynStore, budgets: Budgets, metrics: Arc<Metrics>) -> Self {
        let inner = Arc::new(Inner {
            pending: Mutex::new(Vec::new()),
            writing: tokio::sync::Mutex::new(()),
            store,
            budgets,
            pending_gauge: metrics.map_entries.with_label_values(&["usage_pending"]),
            metrics,
            retry_at: Mutex::new(None),
        });
        tokio::spawn(writer(Arc::downgrade(&inner)));
        Self { inner }
    }

    /// Queues one event; never waits.
    pub fn record(&self, event: UsageEvent) {
        let mut pending = self.inner.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pending.push(event);
        self.inner.pending_gauge.set(i64::try_from(pending.len()).unwrap_or(i64::MAX));
    }

    /// Queues one event and has it stored now, in the background (a budget applies to it).
    pub fn record_now(&self, event: UsageEvent) {
        self.record(event);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let _ = flush(&inner).await;
        });
    }

    /// Queues one event and returns once it is stored (with everything queued before it), or
    /// kept for later when the database does not answer.
    pub async fn store(&self, event: UsageEvent) {
        self.record(event);
        let _ = flush(&self.inner).await;
    }

    /// Stores every event queued before this call (failures are logged). An error when the
    /// database did not answer: the events wait for the next try, and a caller that was about to
    /// read the database can fail at once instead of waiting for it a second time.
    pub async fn flush(&self) -> Result<(), StoreError> {
        flush(&self.inner).await
    }
}

/// What to write now: everything queued, unless the database was away a moment ago (then an
/// error at once, and the events wait for the writer's next try).
fn due(inner: &Inner) -> Result<Vec<UsageEvent>, StoreError> {
    let mut pending = inner.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let mut retry_at = inner.retry_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if retry_at.is_some_and(|at| std::time::Instant::now() < at) {
        return Err(StoreError::Database(sqlx::Error::PoolTimedOut));
    }
    *retry_at = None;
    inner.pending_gauge.set(0);
    Ok(std::mem::take(&mut *pending))
}

async fn flush(inner: &Inner) -> Result<(), StoreError> {
    let _one_writer = inner.writing.lock().await;
    let events = due(inner)?;
    if events.is_empty() {
        return Ok(());
    }
    let (retry, away) = write(&inner.store, &events).await;
    if away.is_some() {
        *inner.retry_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(std::time::Instant::now() + RETRY_AFTER);
    }
    let stored: Vec<UsageEvent> = if retry.is_empty() {
        events
    } else {
        let waiting: std::collections::HashSet<uuid::Uuid> = retry.iter().map(|e| e.id).collect();
        keep(inner, retry);
        events.into_iter().filter(|e| !waiting.contains(&e.id)).collect()
    };
    if stored.iter().any(|e| e.cost_nanos.is_some()) {
        inner.budgets.after_stored(&stored).await;
    }
    away.map_or(Ok(()), Err)
}

/// Writes `events` in one transaction; returns those to try again and why (the database did not
/// answer). An event that cannot be stored at all (its end user was erased meanwhile) is logged
/// and lost.
async fn write(store: &DynStore, events: &[UsageEvent]) -> (Vec<UsageEvent>, Option<StoreError>) {
    match store.insert_usage_batch(events).await {
        Ok(()) => (Vec::new(), None),
        Err(e) if e.is_unavailable() => {
            tracing::warn!(error = ?e, events = events.len(), "the database does not answer: usage events wait in memory");
            (events.to_vec(), Some(e))
        }
        Err(_) => {
            let (mut retry, mut away) = (Vec::new(), None);
            for event in events {
                match store.insert_usage_event(event).await {
                    Ok(()) => {}
                    Err(e) if e.is_unavailable() => {
                        retry.push(event.clone());
                        away.get_or_insert(e);
                    }
                    Err(e) => tracing::warn!(error = ?e, "could not record a usage event"),
                }
            }
            (retry, away)
        }
    }
}

/// Puts `retry` back in front of what was queued meanwhile, dropping the oldest past the bound.
fn keep(inner: &Inner, mut retry: Vec<UsageEvent>) {
    let mut pending = inner.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    retry.append(&mut pending);
    let over = retry.len().saturating_sub(MAX_PENDING);
    if over > 0 {
        retry.drain(..over);
        inner.metrics.usage_events_dropped.inc_by(over as u64);
        tracing::error!(dropped = over, "usage events dropped: the database has been away too long");
    }
    *pending = retry;
    inner.pending_gauge.set(i64::try_from(pending.len()).unwrap_or(i64::MAX));
}

async fn writer(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let _ = flush(&inner).await;
    }
}

//! Retention: a background task deletes usage events past `RELAY_USAGE_RETENTION_DAYS`, daily
//! roll-ups past `RELAY_USAGE_ROLLUP_RETENTION_DAYS`, spend counters no budget reads any more and
//! console sessions that have ended.
//!
//! Deletes run in small batches (one short statement each, a pause between), so the writers of
//! new usage never wait long on them; several nodes may prune at once (a row one deletes, the
//! others skip). Errors are logged and the next round tries again.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Months, Utc};

use crate::domain::money::Period;
use crate::metrics::Metrics;
use crate::store::{DynStore, Pruned, Result};

/// Raw usage events are kept 90 days by default: long enough to settle a billing dispute over
/// the last few invoices with every call's detail; the daily roll-ups answer for older days.
pub const DEFAULT_USAGE_RETENTION_DAYS: u32 = 90;
/// Rows one statement deletes.
pub const BATCH: u32 = 5_000;
/// Between two batches, so other writers get the table.
const PAUSE: Duration = Duration::from_millis(200);
/// How often a node prunes.
const EVERY: Duration = Duration::from_secs(3600);
/// The first round waits this long after start: a fleet that restarts at once does not prune
/// while it warms up.
const FIRST_AFTER: Duration = Duration::from_secs(60);

/// How long usage is kept; 0 days: forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Raw usage events (`usage_events`), in days.
    pub usage_days: u32,
    /// Daily roll-ups (`usage_daily`), in days; at least `usage_days` when both are set.
    pub rollup_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self { usage_days: DEFAULT_USAGE_RETENTION_DAYS, rollup_days: 0 }
    }
}

impl Retention {
    /// Checks that roll-ups outlive the events they sum (else old days would vanish from reports
    /// before their detail does).
    pub fn new(usage_days: u32, rollup_days: u32) -> std::result::Result<Self, String> {
        if rollup_days != 0 && (usage_days == 0 || rollup_days < usage_days) {
            return Err(format!(
                "RELAY_USAGE_ROLLUP_RETENTION_DAYS ({rollup_days}) must be 0 (forever) or at least \
                 RELAY_USAGE_RETENTION_DAYS ({usage_days}, 0 = forever)"
            ));
        }
        Ok(Self { usage_days, rollup_days })
    }
}

/// Starts the pruning task on the current runtime (first round a minute after start).
pub fn start(store: DynStore, metrics: Arc<Metrics>, retention: Retention) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(FIRST_AFTER).await;
        loop {
            let pruned = prune(&store, &metrics, retention, Utc::now(), BATCH, PAUSE).await;
            if pruned != Pruned::default() {
                tracing::info!(
                    usage_events = pruned.usage_events,
                    usage_daily = pruned.usage_daily,
                    spend = pruned.spend,
                    console_sessions = pruned.console_sessions,
                    "pruned expired usage and sessions"
                );
            }
            tokio::time::sleep(EVERY).await;
        }
    })
}

/// One round: deletes everything expired at `now`, `batch` rows a statement with `pause`
/// between, and counts it in `relay_usage_pruned_rows_total`. A table whose delete fails is
/// logged and left for the next round.
pub async fn prune(
    store: &DynStore,
    metrics: &Metrics,
    retention: Retention,
    now: DateTime<Utc>,
    batch: u32,
    pause: Duration,
) -> Pruned {
    let mut pruned = Pruned::default();
    if let Some(before) = cutoff(now, retention.usage_days) {
        pruned.usage_events =
            in_batches("usage_events", metrics, batch, pause, || store.prune_usage_events(before, batch)).await;
    }
    if let Some(before) = cutoff(now, retention.rollup_days) {
        pruned.usage_daily =
            in_batches("usage_daily", metrics, batch, pause, || store.prune_usage_rollups(before, batch)).await;
    }
    let (days_before, months_before) = spend_cutoffs(now);
    pruned.spend =
        in_batches("spend", metrics, batch, pause, || store.prune_spend(days_before, months_before, batch)).await;
    // Ended sessions already fail to authenticate; this only keeps the table small (one
    // statement: a few hours of sign-ins at most).
    match store.console().prune_sessions(now, now - crate::console::IDLE).await {
        Ok(n) => {
            pruned.console_sessions = n;
            metrics.usage_pruned_rows.with_label_values(&["console_sessions"]).inc_by(n);
        }
        Err(e) => tracing::warn!(error = ?e, "could not prune ended console sessions; trying again next round"),
    }
    pruned
}

/// Midnight UTC `days` days before `now`'s day (whole days are kept); `None` for 0 (forever).
fn cutoff(now: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
    (days > 0).then(|| Period::Day.start(now) - chrono::Duration::days(i64::from(days)))
}

/// Budgets read only the current day's and month's counters. The previous period is kept too,
/// for a node whose clock is a little behind at midnight: days before yesterday and months
/// before last month go.
fn spend_cutoffs(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let today = Period::Day.start(now);
    let this_month = Period::Month.start(now);
    let last_month = this_month.checked_sub_months(Months::new(1)).unwrap_or(this_month);
    (today - chrono::Duration::days(1), last_month)
}

async fn in_batches<F, Fut>(table: &'static str, metrics: &Metrics, batch: u32, pause: Duration, mut delete: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64>>,
{
    let mut total = 0;
    loop {
        match delete().await {
            Ok(n) => {
                total += n;
                metrics.usage_pruned_rows.with_label_values(&[table]).inc_by(n);
                if n < u64::from(batch) {
                    return total;
                }
            }
            Err(e) => {
                tracing::warn!(error = ?e, table, "could not prune expired rows; trying again next round");
                return total;
            }
        }
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn roll_ups_outlive_events() {
        assert!(Retention::new(90, 0).is_ok());
        assert!(Retention::new(90, 400).is_ok());
        assert!(Retention::new(0, 0).is_ok());
        assert!(Retention::new(90, 30).is_err());
        assert!(Retention::new(0, 400).is_err());
    }

    #[test]
    fn cutoffs_keep_whole_days_and_the_previous_period() {
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 0, 30, 0).single().expect("time");
        assert_eq!(cutoff(now, 0), None);
        assert_eq!(cutoff(now, 1), Utc.with_ymd_and_hms(2026, 2, 28, 0, 0, 0).single());
        let (days, months) = spend_cutoffs(now);
        assert_eq!(days, Utc.with_ymd_and_hms(2026, 2, 28, 0, 0, 0).single().expect("time"));
        assert_eq!(months, Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).single().expect("time"));
    }
}

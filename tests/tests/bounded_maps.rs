//! Every in-memory map that grows with traffic stays within its bound when fed far more
//! distinct keys than it holds, and reports its size (`relay_memory_map_entries`).

use std::sync::Arc;
use std::time::Duration;

use relay::metrics::Metrics;
use relay::ratelimit::{Limit, RateLimiter, Scope};
use relay::store::cached::TtlMap;

fn gauge(metrics: &Metrics, map: &str) -> i64 {
    let line = format!("relay_memory_map_entries{{map=\"{map}\"}} ");
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no gauge for {map}"))
}

#[test]
fn a_ttl_map_of_fresh_entries_stays_within_its_bound() {
    let metrics = Metrics::new().expect("metrics");
    let mut map = TtlMap::bounded(Duration::from_secs(3600), 1_000);
    map.set_gauge(metrics.map_entries.with_label_values(&["test"]));
    for i in 0..50_000u32 {
        map.insert(i, i);
        assert!(map.len() <= 1_000, "{} entries after {i} inserts", map.len());
    }
    assert!(map.len() >= 750, "a full map evicts a quarter, not everything: {}", map.len());
    assert_eq!(gauge(&metrics, "test"), i64::try_from(map.len()).expect("len"));
    // The newest entries are the ones kept.
    assert_eq!(map.get(&49_999), Some(49_999));
    assert_eq!(map.get(&0), None);
}

#[test]
fn a_ttl_map_drops_expired_entries_first() {
    let map = TtlMap::bounded(Duration::ZERO, 10);
    for i in 0..1_000u32 {
        map.insert(i, ());
    }
    assert!(map.len() <= 10);
}

#[tokio::test]
async fn the_in_memory_rate_limiter_stays_within_its_bound_and_keeps_limiting_busy_clients() {
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let limits = relay_tests::app::test_limits();
    let limiter = RateLimiter::in_memory(limits, metrics.clone()).with_memory_bound(1_000);
    let rate = "5/hour".parse::<Limit>().expect("limit").rate().expect("a rate");
    // A busy client uses its whole burst, and is refused.
    for _ in 0..5 {
        assert!(limiter.check(Scope::ApiKey, b"busy", rate).await.allowed);
    }
    assert!(!limiter.check(Scope::ApiKey, b"busy", rate).await.allowed);
    // A flood of distinct clients, one call each (none recovers within the test).
    for i in 0..20_000u32 {
        limiter.check(Scope::Connect, &i.to_be_bytes(), rate).await;
        assert!(limiter.memory_len() <= 1_000, "{} clients after {i}", limiter.memory_len());
    }
    assert_eq!(gauge(&metrics, "rate_limit"), i64::try_from(limiter.memory_len()).expect("len"));
    // The flood evicted the clients nearest recovery, not the one that spent its burst.
    assert!(!limiter.check(Scope::ApiKey, b"busy", rate).await.allowed);
}

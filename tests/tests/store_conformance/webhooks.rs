//! Conformance checks of the webhook outbox (included by store_conformance.rs): endpoints,
//! enqueueing by subscription, and the claim: per endpoint its oldest due delivery, one at a
//! time, never the same delivery to two claimers.

use std::collections::{HashMap, HashSet};

use relay::store::{AttemptResult, ClaimedDelivery, DeliveryStatus, DynStore, NewWebhookEvent, WebhookEndpoint};
use relay::vault::SealedKey;
use uuid::Uuid;

use super::{t, tenant};

fn endpoint(tenant_id: Uuid, events: Option<&[&str]>, at: i64) -> WebhookEndpoint {
    WebhookEndpoint {
        id: Uuid::new_v4(),
        tenant_id,
        url: format!("https://hooks.example.com/{}", Uuid::new_v4().simple()),
        events: events.map(|e| e.iter().map(|s| (*s).to_owned()).collect()),
        description: Some("test".into()),
        sealed_secret: SealedKey { kek_version: 1, wrapped_dek: vec![1, 2, 3], ciphertext: vec![4, 5, 6] },
        created_at: t(at),
    }
}

fn event(tenant_id: Uuid, kind: &str, at: i64) -> NewWebhookEvent {
    NewWebhookEvent {
        id: format!("msg_{}", Uuid::new_v4().simple()),
        tenant_id,
        event_type: kind.to_owned(),
        payload: format!(r#"{{"type":"{kind}","timestamp":"x","data":{{}}}}"#),
        created_at: t(at),
    }
}

fn done(status: DeliveryStatus, at: i64, next: Option<i64>) -> AttemptResult {
    AttemptResult {
        status,
        at: t(at),
        http_status: Some(if status == DeliveryStatus::Delivered { 204 } else { 500 }),
        error: (status != DeliveryStatus::Delivered).then(|| "HTTP 500".to_owned()),
        next_attempt_at: next.map(t),
    }
}

pub async fn check_webhook_outbox(store: DynStore) -> anyhow::Result<()> {
    let acme = tenant(&store, "Acme", t(0)).await?;
    let other = tenant(&store, "Globex", t(0)).await?;
    let all = endpoint(acme.id, None, 1);
    let budget_only = endpoint(acme.id, Some(&["budget.exceeded"]), 2);
    store.insert_webhook_endpoint(&all).await?;
    store.insert_webhook_endpoint(&budget_only).await?;
    assert_eq!(store.list_webhook_endpoints(acme.id).await?, vec![all.clone(), budget_only.clone()], "oldest first");
    assert_eq!(store.get_webhook_endpoint(acme.id, budget_only.id).await?, Some(budget_only.clone()));
    assert_eq!(store.get_webhook_endpoint(other.id, budget_only.id).await?, None, "not across tenants");
    assert!(!store.delete_webhook_endpoint(other.id, all.id).await?, "not across tenants");
    assert_eq!(store.webhook_endpoints_not_on_version(1).await?, vec![]);
    assert_eq!(store.webhook_endpoints_not_on_version(2).await?.len(), 2);

    // Deliveries go to subscribed endpoints only; with none, nothing is stored.
    let erased = event(acme.id, "user.erased", 10);
    let exceeded = event(acme.id, "budget.exceeded", 11);
    assert_eq!(store.enqueue_webhook_event(&erased).await?, 1);
    assert_eq!(store.enqueue_webhook_event(&exceeded).await?, 2);
    assert_eq!(store.enqueue_webhook_event(&event(other.id, "user.erased", 12)).await?, 0);
    assert_eq!(store.count_pending_webhook_deliveries().await?, 3);

    // Per endpoint its oldest due delivery, attempt counted, the lease held.
    let lease = 60_000;
    let first = store.claim_webhook_deliveries(t(100), t(100 + lease), 10).await?;
    let by_endpoint: HashMap<Uuid, &ClaimedDelivery> = first.iter().map(|d| (d.endpoint_id, d)).collect();
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(by_endpoint[&all.id].event_id, erased.id, "oldest first");
    assert_eq!(by_endpoint[&budget_only.id].event_id, exceeded.id);
    let claimed = by_endpoint[&all.id];
    assert_eq!((claimed.attempts, claimed.tenant_id, claimed.url.as_str()), (1, acme.id, all.url.as_str()));
    assert_eq!((claimed.event_type.as_str(), claimed.payload.as_str()), ("user.erased", erased.payload.as_str()));
    assert_eq!(claimed.sealed_secret, all.sealed_secret);
    assert!(store.claim_webhook_deliveries(t(200), t(200 + lease), 10).await?.is_empty(), "both endpoints busy");
    assert!(store.claim_webhook_deliveries(t(0), t(lease), 10).await?.is_empty(), "nothing due yet");

    // A failed attempt waits for its retry; the endpoint's next due delivery goes meanwhile.
    store.finish_webhook_attempt(claimed.id, &done(DeliveryStatus::Pending, 300, Some(5_300))).await?;
    let next = store.claim_webhook_deliveries(t(400), t(400 + lease), 10).await?;
    assert_eq!(
        next.iter().map(|d| (d.endpoint_id, d.event_id.as_str())).collect::<Vec<_>>(),
        vec![(all.id, exceeded.id.as_str())]
    );
    store.finish_webhook_attempt(next[0].id, &done(DeliveryStatus::Delivered, 500, None)).await?;

    // The retry, once due; and a lease that ran out (a node died mid-attempt) is claimed again.
    let later = store.claim_webhook_deliveries(t(lease + 200), t(2 * lease + 200), 10).await?;
    let mut got: Vec<(Uuid, &str, u32)> =
        later.iter().map(|d| (d.endpoint_id, d.event_id.as_str(), d.attempts)).collect();
    got.sort();
    let mut want = vec![(all.id, erased.id.as_str(), 2), (budget_only.id, exceeded.id.as_str(), 2)];
    want.sort();
    assert_eq!(got, want);
    for d in &later {
        store.finish_webhook_attempt(d.id, &done(DeliveryStatus::Failed, lease + 300, None)).await?;
    }
    assert_eq!(store.count_pending_webhook_deliveries().await?, 0);
    assert!(store.claim_webhook_deliveries(t(10 * lease), t(11 * lease), 10).await?.is_empty(), "done is done");

    // The deliveries API: newest first, the last attempt's outcome.
    let shown = store.list_webhook_deliveries(acme.id, all.id, 10).await?;
    assert_eq!(
        shown.iter().map(|d| d.event_id.as_str()).collect::<Vec<_>>(),
        vec![exceeded.id.as_str(), erased.id.as_str()]
    );
    assert_eq!((shown[0].status, shown[0].attempts, shown[0].last_status), (DeliveryStatus::Delivered, 1, Some(204)));
    assert_eq!((shown[1].status, shown[1].attempts, shown[1].last_status), (DeliveryStatus::Failed, 2, Some(500)));
    assert_eq!(shown[1].last_error.as_deref(), Some("HTTP 500"));
    assert_eq!((shown[1].last_attempt_at, shown[1].next_attempt_at), (Some(t(lease + 300)), None));
    assert_eq!((shown[1].event_type.as_str(), shown[1].created_at), ("user.erased", t(10)));
    assert_eq!(store.list_webhook_deliveries(acme.id, all.id, 1).await?.len(), 1, "limit");
    assert!(store.list_webhook_deliveries(other.id, all.id, 10).await?.is_empty(), "not across tenants");

    // Old events that wait for nothing are pruned with their deliveries; pending ones stay.
    let waiting = event(acme.id, "budget.exceeded", lease);
    assert_eq!(store.enqueue_webhook_event(&waiting).await?, 2);
    assert_eq!(store.prune_webhook_events(t(11)).await?, 1, "only events created before");
    assert_eq!(store.list_webhook_deliveries(acme.id, all.id, 10).await?.len(), 2);
    assert_eq!(store.prune_webhook_events(t(100 * lease)).await?, 1, "the pending one stays");
    let left = store.list_webhook_deliveries(acme.id, all.id, 10).await?;
    assert_eq!(left.iter().map(|d| d.event_id.as_str()).collect::<Vec<_>>(), vec![waiting.id.as_str()]);
    assert_eq!(store.count_pending_webhook_deliveries().await?, 2);

    // Deleting an endpoint drops its deliveries.
    assert!(store.delete_webhook_endpoint(acme.id, all.id).await?);
    assert!(store.list_webhook_deliveries(acme.id, all.id, 10).await?.is_empty());
    assert_eq!(store.list_webhook_endpoints(acme.id).await?, vec![budget_only]);
    Ok(())
}

/// Many claimers at once, round after round until every delivery is done: no delivery is handed
/// out twice, an endpoint never has two leased at once, and each endpoint's go oldest first.
pub async fn check_webhook_concurrent_claims(store: DynStore) -> anyhow::Result<()> {
    let acme = tenant(&store, "Acme", t(0)).await?;
    let mut endpoints = Vec::new();
    for i in 0..5 {
        let e = endpoint(acme.id, None, i);
        store.insert_webhook_endpoint(&e).await?;
        endpoints.push(e.id);
    }
    for (i, kind) in ["key.connected", "key.removed", "user.erased", "key.invalid"].iter().enumerate() {
        let at = i64::try_from(i)? + 10;
        assert_eq!(store.enqueue_webhook_event(&event(acme.id, kind, at)).await?, 5);
    }
    let mut seen = HashSet::new();
    let mut order: HashMap<Uuid, Vec<i64>> = HashMap::new();
    for round in 0..4 {
        let now = 1_000 + round * 10;
        let claimers = (0..8).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_webhook_deliveries(t(now), t(now + 60_000), 3).await })
        });
        let mut claimed = Vec::new();
        for c in claimers {
            claimed.extend(c.await??);
        }
        let endpoints_now: HashSet<Uuid> = claimed.iter().map(|d| d.endpoint_id).collect();
        assert_eq!(endpoints_now.len(), claimed.len(), "one leased delivery per endpoint (round {round})");
        assert_eq!(claimed.len(), 5, "every endpoint has one due (round {round})");
        for d in &claimed {
            assert!(seen.insert(d.id), "delivery {} handed out twice", d.id);
            order.entry(d.endpoint_id).or_default().push(d.id);
            assert_eq!(d.attempts, 1);
        }
        for d in &claimed {
            store.finish_webhook_attempt(d.id, &done(DeliveryStatus::Delivered, now + 1, None)).await?;
        }
    }
    assert_eq!(seen.len(), 20);
    for ids in order.values() {
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first per endpoint: {ids:?}");
    }
    assert!(store.claim_webhook_deliveries(t(5_000), t(65_000), 10).await?.is_empty());
    Ok(())
}

/// Nodes whose clocks differ see different deliveries due: one sees an endpoint's retry (older),
/// another only its newer delivery. Claiming at once, they still lease one per endpoint: a claim
/// skips endpoints with a leased delivery, and on PostgreSQL claims take turns (an advisory
/// lock), since two statements started together would not see each other's leases.
pub async fn check_webhook_claims_with_skewed_clocks(store: DynStore) -> anyhow::Result<()> {
    for round in 0..6 {
        let acme = tenant(&store, "Acme", t(0)).await?;
        for i in 0..20 {
            store.insert_webhook_endpoint(&endpoint(acme.id, None, i)).await?;
        }
        // Each endpoint: an older delivery waiting for its retry at 2 000, a newer one due.
        assert_eq!(store.enqueue_webhook_event(&event(acme.id, "key.connected", 10)).await?, 20);
        let first = store.claim_webhook_deliveries(t(100), t(60_100), 40).await?;
        assert_eq!(first.len(), 20);
        for d in &first {
            store.finish_webhook_attempt(d.id, &done(DeliveryStatus::Pending, 200, Some(2_000))).await?;
        }
        assert_eq!(store.enqueue_webhook_event(&event(acme.id, "key.removed", 20)).await?, 20);
        // Connections open before the race, so the claims overlap.
        let warm = (0..16).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.ping().await })
        });
        for w in warm.collect::<Vec<_>>() {
            w.await??;
        }
        let claimers = (0..16).map(|i| {
            let store = store.clone();
            let now = if i % 2 == 0 { 1_500 } else { 2_500 };
            tokio::spawn(async move { store.claim_webhook_deliveries(t(now), t(now + 60_000), 2).await })
        });
        let mut claimed = Vec::new();
        for c in claimers {
            claimed.extend(c.await??);
        }
        let endpoints: HashSet<Uuid> = claimed.iter().map(|d| d.endpoint_id).collect();
        assert_eq!(endpoints.len(), claimed.len(), "two leased on one endpoint (round {round}): {claimed:?}");
        // Everything done before the next round.
        loop {
            let rest = store.claim_webhook_deliveries(t(1_000_000), t(1_060_000), 100).await?;
            if rest.is_empty() && store.count_pending_webhook_deliveries().await? == 0 {
                break;
            }
            for d in &rest {
                store.finish_webhook_attempt(d.id, &done(DeliveryStatus::Delivered, 0, None)).await?;
            }
            if rest.is_empty() {
                // Leased by this round's claimers: release them.
                for d in &claimed {
                    store.finish_webhook_attempt(d.id, &done(DeliveryStatus::Delivered, 0, None)).await?;
                }
            }
        }
    }
    Ok(())
}

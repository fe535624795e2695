//! Usage batches leave no prepared statement behind, on PostgreSQL and SQLite: a batch's text
//! depends on its number of rows, and one kept per row count made Relay's memory grow (#18).

use chrono::Utc;
use relay::store::{PgStore, SqliteStore, Store, Tenant, UsageEvent};
use relay::tenants::generate_app_id;
use relay_tests::{Backend, TestDb};
use sqlx::Connection;
use uuid::Uuid;

fn event(tenant_id: Uuid) -> UsageEvent {
    UsageEvent {
        id: Uuid::new_v4(),
        tenant_id,
        end_user_id: None,
        api_key_id: None,
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        endpoint: "/v1/chat/completions".into(),
        status: 200,
        paid: false,
        prompt_tokens: Some(3),
        completion_tokens: Some(1),
        cached_tokens: None,
        cache_write_tokens: None,
        reasoning_tokens: None,
        cost_nanos: Some(1_234),
        latency_ms: 12,
        ttft_ms: None,
        created_at: Utc::now(),
    }
}

/// Batch sizes tried. Without the fix each left one more statement prepared on some connection
/// (28 of 40 on both databases); with it, the batches' transaction adds a few at most.
const SIZES: usize = 40;

/// A migrated store with a tenant; then `batches` inserts batches of 1..=SIZES rows.
async fn tenant(store: &dyn Store) -> anyhow::Result<Uuid> {
    store.migrate().await?;
    let tenant = Tenant { id: Uuid::new_v4(), name: "Acme".into(), app_id: generate_app_id(), created_at: Utc::now() };
    store.create_tenant(&tenant).await?;
    Ok(tenant.id)
}

async fn batches(store: &dyn Store, tenant_id: Uuid) -> anyhow::Result<()> {
    for rows in 1..=SIZES {
        let batch: Vec<UsageEvent> = (0..rows).map(|_| event(tenant_id)).collect();
        store.insert_usage_batch(&batch).await?;
    }
    Ok(())
}

/// The statements every pooled connection keeps prepared.
async fn kept<DB: sqlx::Database + sqlx::database::HasStatementCache>(pool: &sqlx::Pool<DB>) -> anyhow::Result<usize> {
    let mut held = Vec::new();
    let mut kept = 0;
    for _ in 0..pool.size() {
        let conn = pool.acquire().await?;
        kept += conn.cached_statements_size();
        held.push(conn);
    }
    Ok(kept)
}

#[tokio::test]
async fn sqlite_usage_batches_are_not_kept_prepared() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Sqlite).await;
    let path = db.sqlite_dir().map(|d| d.join("relay.db")).ok_or_else(|| anyhow::anyhow!("no SQLite dir"))?;
    let store = SqliteStore::open(&path).await?;
    let tenant_id = tenant(&store).await?;
    let before = kept(store.pool()).await?;
    batches(&store, tenant_id).await?;
    let added = kept(store.pool()).await?.saturating_sub(before);
    assert!(added < SIZES / 4, "{added} more statements kept prepared after batches of {SIZES} sizes");
    Ok(())
}

#[tokio::test]
async fn postgres_usage_batches_are_not_kept_prepared() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Postgres).await;
    let store = PgStore::connect(&db.url).await?;
    let tenant_id = tenant(&store).await?;
    let before = kept(store.pool()).await?;
    batches(&store, tenant_id).await?;
    let added = kept(store.pool()).await?.saturating_sub(before);
    assert!(added < SIZES / 4, "{added} more statements kept prepared after batches of {SIZES} sizes");
    Ok(())
}

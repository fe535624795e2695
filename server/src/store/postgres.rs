//! The PostgreSQL store, for production and several relay nodes sharing one database: opens the
//! pool. Queries: sql.rs; types: dialect.rs.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::Postgres;

use super::sql::SqlStore;
use super::Result;

/// How long a query waits for a connection (and so for a database that is away).
const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(1500);

/// The store on PostgreSQL (`connect`, then `Store`).
pub type PgStore = SqlStore<Postgres>;

impl SqlStore<Postgres> {
    pub async fn connect(url: &str) -> Result<Self> {
        let pool =
            // No liveness ping before each lend (a round trip per query): a connection the
            // server closed fails its query and is replaced by the pool. A database that does
            // not answer fails a call within the acquire timeout (503 `store_unavailable`),
            // never hangs it.
            PgPoolOptions::new()
                .max_connections(32)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .test_before_acquire(false)
                .connect(url)
                .await?;
        Ok(Self::new(pool))
    }
}

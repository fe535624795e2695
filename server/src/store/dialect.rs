//! Where PostgreSQL and SQLite differ for the store, in one place: how ids, times and key versions
//! are stored (`Dialect`, one impl per database), and reading a row's columns either way (`Fields`).

use std::fmt::Display;
use std::future::Future;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::postgres::{PgConnection, PgQueryResult};
use sqlx::sqlite::{SqliteConnection, SqliteQueryResult};
use sqlx::{ColumnIndex, Database, Decode, Encode, Postgres, QueryBuilder, Row, Sqlite, Type, ValueRef};
use uuid::Uuid;

use super::{Result, StoreError};
use crate::vault::KekVersion;

/// What the shared queries (`sql.rs`) need to know of a database beyond the SQL both speak.
/// Statements use `$1`-style placeholders, which both accept, and no casts: PostgreSQL learns a
/// parameter's type from the value bound to it.
pub trait Dialect: Database {
    /// What `Store::backend` says.
    const BACKEND: &'static str;
    /// The schema, oldest migration first.
    const MIGRATIONS: &'static [(i64, &'static str, &'static str)];
    /// Run first in the transaction that claims webhook deliveries, so that claims from several
    /// nodes take turns (PostgreSQL: a transaction-scoped advisory lock). `None` where the
    /// database already runs one writer at a time (SQLite).
    const CLAIM_LOCK: Option<&'static str>;
    /// Announces a change to every node (`Change`, bound as text); `None`: one node, no need.
    const NOTIFY: Option<&'static str>;
    /// `created_at`'s UTC day as `YYYY-MM-DD` text.
    const DAY_TEXT: &'static str;

    /// Follows the announced changes (see `Store::follow_changes`).
    fn follow_changes(pool: &sqlx::Pool<Self>, seen: super::ChangeSink) -> impl Future<Output = Result<()>> + Send;

    /// An id as bound to a statement.
    type Id: for<'q> Encode<'q, Self> + Type<Self> + Send;
    /// An id as read from a row (borrowed from it where that saves a copy).
    type StoredId<'r>: Decode<'r, Self> + Type<Self>;
    /// A time, as bound and as read.
    type Time: for<'q> Encode<'q, Self> + for<'r> Decode<'r, Self> + Type<Self> + Send;
    /// The `kek_version` column, as bound and as read.
    type Kek: for<'q> Encode<'q, Self>
        + for<'r> Decode<'r, Self>
        + Type<Self>
        + Send
        + Copy
        + Display
        + TryFrom<KekVersion>
        + TryInto<KekVersion>;

    fn id(id: Uuid) -> Self::Id;
    fn parse_id(stored: Self::StoredId<'_>, column: &str) -> Result<Uuid>;
    fn time(t: DateTime<Utc>) -> Self::Time;
    fn parse_time(stored: Self::Time) -> Result<DateTime<Utc>>;
    /// Rows a statement changed (sqlx has no accessor common to all databases).
    fn rows_affected(done: &Self::QueryResult) -> u64;
    /// Runs what `insert` built. Generic code cannot run `insert.build()` itself: the query
    /// borrows the builder for its arguments' whole lifetime, and only a concrete arguments type
    /// lets the compiler shorten that borrow.
    ///
    /// Not kept prepared: a built statement's text changes with its number of rows, and sqlx's
    /// per-connection statement cache kept one prepared statement per row count (up to 100 per
    /// connection, tens to hundreds of KiB each in SQLite): Relay's memory grew for as long as new
    /// batch sizes came, and was never given back.
    fn execute_built<'c, 'q>(
        conn: &'c mut Self::Connection,
        insert: QueryBuilder<'q, Self>,
    ) -> impl Future<Output = sqlx::Result<Self::QueryResult>> + Send;
}

/// PostgreSQL has the types: UUID, TIMESTAMPTZ, and a 4-byte INTEGER for key versions.
impl Dialect for Postgres {
    const BACKEND: &'static str = "postgres";
    const MIGRATIONS: &'static [(i64, &'static str, &'static str)] = &[
        (1, "initial", include_str!("../../../migrations/postgres/0001_initial.sql")),
        (2, "sessions", include_str!("../../../migrations/postgres/0002_sessions.sql")),
        (3, "base_url", include_str!("../../../migrations/postgres/0003_base_url.sql")),
        (4, "limits", include_str!("../../../migrations/postgres/0004_limits.sql")),
        (5, "cost", include_str!("../../../migrations/postgres/0005_cost.sql")),
        (6, "webhooks", include_str!("../../../migrations/postgres/0006_webhooks.sql")),
        (7, "key_health", include_str!("../../../migrations/postgres/0007_key_health.sql")),
        (8, "budgets", include_str!("../../../migrations/postgres/0008_budgets.sql")),
        (9, "usage_retention", include_str!("../../../migrations/postgres/0009_usage_retention.sql")),
        (10, "console", include_str!("../../../migrations/postgres/0010_console.sql")),
    ];

    const CLAIM_LOCK: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(7245001)");
    const NOTIFY: Option<&'static str> = Some("SELECT pg_notify('relay_cache', $1)");
    const DAY_TEXT: &'static str = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')";

    async fn follow_changes(pool: &sqlx::Pool<Postgres>, seen: super::ChangeSink) -> Result<()> {
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen("relay_cache").await?;
        seen(None);
        loop {
            match listener.try_recv().await? {
                Some(n) => {
                    if let Some(change) = super::Change::parse(n.payload()) {
                        seen(Some(change));
                    }
                }
                // The connection dropped: the caller follows again once it can, and then forgets
                // everything (what was announced meanwhile is lost).
                None => {
                    let lost = std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "change channel lost");
                    return Err(sqlx::Error::Io(lost).into());
                }
            }
        }
    }

    type Id = Uuid;
    type StoredId<'r> = Uuid;
    type Time = DateTime<Utc>;
    type Kek = i32;

    fn id(id: Uuid) -> Uuid {
        id
    }

    fn parse_id(stored: Uuid, _column: &str) -> Result<Uuid> {
        Ok(stored)
    }

    fn time(t: DateTime<Utc>) -> DateTime<Utc> {
        t
    }

    fn parse_time(stored: DateTime<Utc>) -> Result<DateTime<Utc>> {
        Ok(stored)
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    async fn execute_built(
        conn: &mut PgConnection,
        mut insert: QueryBuilder<'_, Postgres>,
    ) -> sqlx::Result<PgQueryResult> {
        insert.build().persistent(false).execute(conn).await
    }
}

/// SQLite stores ids as UUID text, times as Unix milliseconds, and key versions in its 8-byte
/// INTEGER.
impl Dialect for Sqlite {
    const BACKEND: &'static str = "sqlite";
    const MIGRATIONS: &'static [(i64, &'static str, &'static str)] = &[
        (1, "initial", include_str!("../../../migrations/sqlite/0001_initial.sql")),
        (2, "sessions", include_str!("../../../migrations/sqlite/0002_sessions.sql")),
        (3, "base_url", include_str!("../../../migrations/sqlite/0003_base_url.sql")),
        (4, "limits", include_str!("../../../migrations/sqlite/0004_limits.sql")),
        (5, "cost", include_str!("../../../migrations/sqlite/0005_cost.sql")),
        (6, "webhooks", include_str!("../../../migrations/sqlite/0006_webhooks.sql")),
        (7, "key_health", include_str!("../../../migrations/sqlite/0007_key_health.sql")),
        (8, "budgets", include_str!("../../../migrations/sqlite/0008_budgets.sql")),
        (9, "usage_retention", include_str!("../../../migrations/sqlite/0009_usage_retention.sql")),
        (10, "console", include_str!("../../../migrations/sqlite/0010_console.sql")),
    ];

    const CLAIM_LOCK: Option<&'static str> = None;
    const NOTIFY: Option<&'static str> = None;
    const DAY_TEXT: &'static str = "strftime('%Y-%m-%d', created_at / 1000, 'unixepoch')";

    async fn follow_changes(_pool: &sqlx::Pool<Sqlite>, _seen: super::ChangeSink) -> Result<()> {
        Ok(())
    }

    type Id = String;
    type StoredId<'r> = &'r str;
    type Time = i64;
    type Kek = i64;

    fn id(id: Uuid) -> String {
        id.to_string()
    }

    fn parse_id(stored: &str, column: &str) -> Result<Uuid> {
        Uuid::from_str(stored).map_err(|_| StoreError::Corrupt(format!("bad uuid in {column}")))
    }

    fn time(t: DateTime<Utc>) -> i64 {
        t.timestamp_millis()
    }

    fn parse_time(ms: i64) -> Result<DateTime<Utc>> {
        Utc.timestamp_millis_opt(ms).single().ok_or_else(|| StoreError::Corrupt(format!("bad timestamp {ms}")))
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    async fn execute_built(
        conn: &mut SqliteConnection,
        mut insert: QueryBuilder<'_, Sqlite>,
    ) -> sqlx::Result<SqliteQueryResult> {
        insert.build().persistent(false).execute(conn).await
    }
}

/// A key version as the database's `kek_version` column holds it.
pub fn kek<DB: Dialect>(v: KekVersion) -> Result<DB::Kek> {
    DB::Kek::try_from(v).map_err(|_| StoreError::Corrupt(format!("kek version {v} out of range")))
}

/// A result row's columns as Relay's types, whichever database it came from.
pub trait Fields {
    fn text(&self, column: &str) -> Result<String>;
    fn opt_text(&self, column: &str) -> Result<Option<String>>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>>;
    fn flag(&self, column: &str) -> Result<bool>;
    fn i32(&self, column: &str) -> Result<i32>;
    fn i64(&self, column: &str) -> Result<i64>;
    fn opt_i64(&self, column: &str) -> Result<Option<i64>>;
    fn uuid(&self, column: &str) -> Result<Uuid>;
    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>>;
    fn time(&self, column: &str) -> Result<DateTime<Utc>>;
    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>>;
    fn kek_version(&self, column: &str) -> Result<KekVersion>;
    fn is_null(&self, column: &str) -> Result<bool>;
}

impl<R> Fields for R
where
    R: Row,
    R::Database: Dialect,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, column: &str) -> Result<String> {
        Ok(self.try_get(column)?)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.try_get(column)?)
    }

    fn bytes(&self, column: &str) -> Result<Vec<u8>> {
        Ok(self.try_get(column)?)
    }

    fn flag(&self, column: &str) -> Result<bool> {
        Ok(self.try_get(column)?)
    }

    fn i32(&self, column: &str) -> Result<i32> {
        Ok(self.try_get(column)?)
    }

    fn i64(&self, column: &str) -> Result<i64> {
        Ok(self.try_get(column)?)
    }

    fn opt_i64(&self, column: &str) -> Result<Option<i64>> {
        Ok(self.try_get(column)?)
    }

    fn uuid(&self, column: &str) -> Result<Uuid> {
        R::Database::parse_id(self.try_get(column)?, column)
    }

    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>> {
        let stored: Option<<R::Database as Dialect>::StoredId<'_>> = self.try_get(column)?;
        stored.map(|s| R::Database::parse_id(s, column)).transpose()
    }

    fn time(&self, column: &str) -> Result<DateTime<Utc>> {
        R::Database::parse_time(self.try_get(column)?)
    }

    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>> {
        let stored: Option<<R::Database as Dialect>::Time> = self.try_get(column)?;
        stored.map(R::Database::parse_time).transpose()
    }

    fn kek_version(&self, column: &str) -> Result<KekVersion> {
        let v: <R::Database as Dialect>::Kek = self.try_get(column)?;
        v.try_into().map_err(|_| StoreError::Corrupt(format!("bad kek_version {v}")))
    }

    fn is_null(&self, column: &str) -> Result<bool> {
        Ok(self.try_get_raw(column)?.is_null())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_versions_beyond_a_postgres_integer_are_refused_not_wrapped() {
        assert!(matches!(kek::<Postgres>(KekVersion::MAX), Err(StoreError::Corrupt(_))));
        assert_eq!(kek::<Postgres>(7).ok(), Some(7));
        assert_eq!(kek::<Sqlite>(KekVersion::MAX).ok(), Some(i64::from(KekVersion::MAX)));
    }

    #[test]
    fn sqlite_stores_milliseconds_and_uuid_text() {
        let t = DateTime::from_timestamp_millis(1_700_000_000_123).expect("a valid time");
        assert_eq!(Sqlite::time(t), 1_700_000_000_123);
        assert_eq!(Sqlite::parse_time(Sqlite::time(t)).ok(), Some(t));
        assert!(matches!(Sqlite::parse_time(i64::MAX), Err(StoreError::Corrupt(_))));

        let id = Uuid::new_v4();
        assert_eq!(Sqlite::id(id), id.hyphenated().to_string());
        assert_eq!(Sqlite::parse_id(&Sqlite::id(id), "id").ok(), Some(id));
        assert!(matches!(Sqlite::parse_id("not-a-uuid", "id"), Err(StoreError::Corrupt(m)) if m == "bad uuid in id"));
    }
}

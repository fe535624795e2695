//! A database per test: a new PostgreSQL database on the local server, or a SQLite file in a new
//! temporary directory. Dropping the `TestDb` drops the database (even when the test panicked).

use std::path::PathBuf;

use sqlx::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

pub struct TestDb {
    pub backend: Backend,
    /// The `DATABASE_URL` for Relay.
    pub url: String,
    pg_name: Option<String>,
    dir: Option<PathBuf>,
}

/// The server's maintenance database; `RELAY_TEST_PG_URL` overrides it.
pub fn pg_admin_url() -> String {
    std::env::var("RELAY_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The same server, another database (the admin URL names a database: `.../postgres`).
fn pg_url_for(db: &str) -> String {
    let admin = pg_admin_url();
    let base = admin.rsplit_once('/').map(|(base, _)| base).unwrap_or(&admin);
    format!("{base}/{db}")
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Postgres => {
                let name = format!("relay_test_{id}");
                let mut conn =
                    sqlx::PgConnection::connect(&pg_admin_url()).await.expect("connect to the PostgreSQL test server");
                sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let _ = conn.close().await;
                Self { backend, url: pg_url_for(&name), pg_name: Some(name), dir: None }
            }
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("relay-test-{id}"));
                std::fs::create_dir_all(&dir).expect("create temp dir");
                let url = format!("sqlite://{}", dir.join("relay.db").display());
                Self { backend, url, pg_name: None, dir: Some(dir) }
            }
        }
    }

    /// The SQLite directory (database, WAL and shared-memory files).
    pub fn sqlite_dir(&self) -> Option<&PathBuf> {
        self.dir.as_ref()
    }

    /// Every byte of data the database holds, for "no plaintext secret stored" checks: the
    /// SQLite files as they are on disk, or every row of every PostgreSQL table as text.
    pub async fn dump(&self) -> Vec<u8> {
        match self.backend {
            Backend::Sqlite => {
                let mut out = Vec::new();
                let dir = self.dir.as_ref().expect("sqlite dir");
                for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
                    out.extend(std::fs::read(entry.path()).unwrap_or_default());
                }
                out
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.expect("connect");
                let tables: Vec<(String,)> =
                    sqlx::query_as("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
                        .fetch_all(&mut conn)
                        .await
                        .expect("list tables");
                let mut out = Vec::new();
                for (t,) in tables {
                    let rows: Vec<(String,)> = sqlx::query_as(&format!("SELECT t::text FROM \"{t}\" t"))
                        .fetch_all(&mut conn)
                        .await
                        .expect("dump table");
                    for (r,) in rows {
                        out.extend(r.into_bytes());
                        out.push(b'\n');
                    }
                }
                out
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(name) = self.pg_name.take() {
            // Drop runs outside any runtime we may block: use a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async move {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&pg_admin_url()).await {
                        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

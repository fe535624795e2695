//! Relay under test: a fresh database (a new PostgreSQL database, or an SQLite file in a temp
//! directory), `relay tenant create`, `relay serve` as a child process pointed at the mock, and
//! the tenant's keys connected through the HTTP API. Everything is removed again on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Value};

use crate::client::{Conn, Expect, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Db {
    Postgres,
    Sqlite,
}

impl Db {
    pub fn label(self) -> &'static str {
        match self {
            Db::Postgres => "PostgreSQL",
            Db::Sqlite => "SQLite",
        }
    }
}

pub fn random_token(n: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(n).map(char::from).collect()
}

/// A running Relay with one tenant, one end user and that user's OpenAI and Anthropic keys.
pub struct RelayUnderTest {
    pub addr: SocketAddr,
    pub pid: u32,
    pub api_key: String,
    pub user: String,
    /// The provider keys the end user connected (the direct path uses the same ones).
    pub openai_key: String,
    pub anthropic_key: String,
    child: Option<Child>,
    dir: PathBuf,
    pg: Option<(String, String)>,
}

impl RelayUnderTest {
    /// `pg_admin_url` is where to create (and later drop) the PostgreSQL database.
    pub async fn start(bin: &Path, db: Db, pg_admin_url: &str, mock_url: &str) -> anyhow::Result<Self> {
        let tag = random_token(10).to_lowercase();
        let dir = std::env::temp_dir().join(format!("relay-bench-{tag}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let mut me = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            pid: 0,
            api_key: String::new(),
            user: "bench_user".into(),
            openai_key: format!("sk-proj-{}", random_token(48)),
            anthropic_key: format!("sk-ant-api03-{}", random_token(48)),
            child: None,
            dir: dir.clone(),
            pg: None,
        };
        let database_url = match db {
            Db::Postgres => {
                let name = format!("relay_bench_{tag}");
                psql(pg_admin_url, &format!("CREATE DATABASE {name}"))?;
                me.pg = Some((pg_admin_url.to_owned(), name.clone()));
                let base =
                    pg_admin_url.rsplit_once('/').map(|(b, _)| b).context("the PostgreSQL URL has no database")?;
                format!("{base}/{name}")
            }
            Db::Sqlite => format!("sqlite:{}", dir.join("relay.db").display()),
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        me.addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut master = [0u8; 32];
        rand::thread_rng().fill(&mut master);
        let env: Vec<(&str, String)> = vec![
            ("DATABASE_URL", database_url),
            ("RELAY_MASTER_KEYS", format!("v1:{}", base64::engine::general_purpose::STANDARD.encode(master))),
            ("RELAY_LISTEN", me.addr.to_string()),
            ("RELAY_UPSTREAM_OPENAI", mock_url.to_owned()),
            ("RELAY_UPSTREAM_ANTHROPIC", mock_url.to_owned()),
            ("RELAY_ALLOW_UPSTREAM_HOSTS", "127.0.0.1".into()),
            ("RUST_LOG", "warn".into()),
            // The limiter runs on the full path, with limits far above what the load reaches.
            ("RELAY_RATE_LIMIT_KEY", "10000000/s".into()),
            ("RELAY_RATE_LIMIT_USER", "10000000/s".into()),
            ("RELAY_LOG_FORMAT", "json".into()),
            ("RELAY_SHUTDOWN_TIMEOUT", "2".into()),
        ];
        let command = |args: &[&str], log: &str| -> anyhow::Result<Command> {
            let mut c = Command::new(bin);
            c.args(args).current_dir(&dir).env_remove("RELAY_MASTER_KEY_FILE").envs(env.iter().map(|(k, v)| (k, v)));
            // Relay reads `.env` from its working directory: the temp dir has none.
            let log = std::fs::File::create(dir.join(log))?;
            c.stdin(Stdio::null()).stderr(log);
            Ok(c)
        };

        let out = command(&["tenant", "create", "--name", "bench", "--json"], "tenant.log")?
            .output()
            .with_context(|| format!("run {} tenant create", bin.display()))?;
        if !out.status.success() {
            bail!("relay tenant create failed: {}", read_log(&dir.join("tenant.log")));
        }
        let created: Value = serde_json::from_slice(&out.stdout).context("relay tenant create --json output")?;
        me.api_key = created.get("apiKey").and_then(Value::as_str).context("no apiKey in tenant create")?.to_owned();

        let mut serve = command(&["serve"], "relay.log")?;
        serve.stdout(Stdio::null());
        let child = serve.spawn().with_context(|| format!("start {} serve", bin.display()))?;
        me.pid = child.id();
        me.child = Some(child);
        me.wait_ready().await?;
        me.connect_keys().await?;
        Ok(me)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let health = Target {
            addr: self.addr,
            method: hyper::Method::GET,
            path: "/api/health".into(),
            headers: vec![],
            body: bytes::Bytes::new(),
            expect: Expect::OpenAiChat,
        };
        let started = Instant::now();
        loop {
            if let Some(child) = &mut self.child {
                if let Some(status) = child.try_wait()? {
                    bail!("relay serve exited ({status}): {}", read_log(&self.dir.join("relay.log")));
                }
            }
            let mut conn = Conn::new(self.addr);
            if conn.send(&health).await.is_ok() {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("relay serve did not answer /api/health within 60 s: {}", read_log(&self.dir.join("relay.log")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Registration token, then `POST /v1/connect`, for OpenAI and then Anthropic.
    async fn connect_keys(&self) -> anyhow::Result<()> {
        for (provider, key) in [("openai", &self.openai_key), ("anthropic", &self.anthropic_key)] {
            let token = post(
                self.addr,
                "/v1/registration-tokens",
                &json!({"endUserLabel": self.user, "provider": provider}),
                Some(&self.api_key),
                201,
            )
            .await?;
            let token = token.get("registrationToken").and_then(Value::as_str).context("no registrationToken")?;
            post(
                self.addr,
                "/v1/connect",
                &json!({"registrationToken": token, "provider": provider, "apiKey": key}),
                None,
                200,
            )
            .await
            .with_context(|| format!("connect the {provider} key"))?;
        }
        Ok(())
    }

    /// Relay's process and, on PostgreSQL, the server processes of its database connections.
    pub fn probe(&self) -> crate::sys::Probe {
        let db_pids = self.pg.as_ref().map(|(admin, name)| {
            psql(
                admin,
                &format!("SELECT pid FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"),
            )
            .map(|out| out.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
        });
        crate::sys::Probe { relay_pid: self.pid, db_pids }
    }

    pub fn log(&self) -> String {
        read_log(&self.dir.join("relay.log"))
    }

    /// Stops Relay (SIGTERM through `kill`, then SIGKILL) and removes its database.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        if let Some((admin, name)) = self.pg.take() {
            let _ = psql(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for RelayUnderTest {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A setup call on a fresh connection: JSON in, the expected status, JSON out.
async fn post(addr: SocketAddr, path: &str, body: &Value, bearer: Option<&str>, want: u16) -> anyhow::Result<Value> {
    let req = hyper::Request::builder()
        .method(hyper::Method::POST)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json");
    let req = match bearer {
        Some(key) => req.header("authorization", format!("Bearer {key}")),
        None => req,
    };
    let req = req.body(http_body_util::Full::new(bytes::Bytes::from(body.to_string())))?;
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let res = sender.send_request(req).await?;
    let status = res.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(res.into_body()).await?.to_bytes();
    if status != want {
        bail!("POST {path}: HTTP {status}: {}", String::from_utf8_lossy(&bytes));
    }
    Ok(serde_json::from_slice(&bytes)?)
}

pub fn psql(admin_url: &str, sql: &str) -> anyhow::Result<String> {
    let out = Command::new("psql")
        .arg(admin_url)
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .context("run psql (is the PostgreSQL client installed?)")?;
    if !out.status.success() {
        bail!("psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn read_log(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

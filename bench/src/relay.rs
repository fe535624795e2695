//! Relay under test: a fresh database (a new PostgreSQL database, or an SQLite file in a temp
//! directory), `relay tenant create`, `relay serve` as a child process pointed at the mock (more
//! nodes on the same database on request), and the tenant's keys connected through the HTTP API.
//! Everything is removed again on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Value};

use crate::client::{Conn, Expect, Failure, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
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
/// `addr` and `pid` are the first node's; `others` the nodes added on the same database.
pub struct RelayUnderTest {
    pub addr: SocketAddr,
    pub pid: u32,
    pub api_key: String,
    pub user: String,
    /// The provider keys the end user connected (the direct path uses the same ones).
    pub openai_key: String,
    pub anthropic_key: String,
    pub others: Vec<Node>,
    child: Option<Child>,
    dir: PathBuf,
    pg: Option<(String, String)>,
    bin: PathBuf,
    env: Vec<(&'static str, String)>,
}

/// Another `relay serve` on the same database and master key.
pub struct Node {
    pub addr: SocketAddr,
    pub pid: u32,
    child: Option<Child>,
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
            others: Vec::new(),
            child: None,
            dir: dir.clone(),
            pg: None,
            bin: bin.to_owned(),
            env: Vec::new(),
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
        me.addr = free_addr()?;
        let mut master = [0u8; 32];
        rand::thread_rng().fill(&mut master);
        me.env = vec![
            ("DATABASE_URL", database_url),
            ("RELAY_MASTER_KEYS", format!("v1:{}", base64::engine::general_purpose::STANDARD.encode(master))),
            ("RELAY_UPSTREAM_OPENAI", mock_url.to_owned()),
            ("RELAY_UPSTREAM_ANTHROPIC", mock_url.to_owned()),
            ("RELAY_ALLOW_UPSTREAM_HOSTS", "127.0.0.1".into()),
            ("RUST_LOG", "warn".into()),
            // The limiter runs on the full path, with limits far above what the load reaches.
            ("RELAY_RATE_LIMIT_KEY", "10000000/s".into()),
            ("RELAY_RATE_LIMIT_USER", "10000000/s".into()),
            ("RELAY_RATE_LIMIT_REGISTRATION", "10000000/s".into()),
            ("RELAY_RATE_LIMIT_CONNECT", "10000000/s".into()),
            ("RELAY_LOG_FORMAT", "json".into()),
            ("RELAY_SHUTDOWN_TIMEOUT", "2".into()),
        ];
        let out = me
            .command(&["tenant", "create", "--name", "bench", "--json"], "tenant.log")?
            .output()
            .with_context(|| format!("run {} tenant create", bin.display()))?;
        if !out.status.success() {
            bail!("relay tenant create failed: {}", read_log(&dir.join("tenant.log")));
        }
        let created: Value = serde_json::from_slice(&out.stdout).context("relay tenant create --json output")?;
        me.api_key = created.get("apiKey").and_then(Value::as_str).context("no apiKey in tenant create")?.to_owned();

        let child = me.serve(me.addr, "relay.log")?;
        me.pid = child.id();
        me.child = Some(child);
        me.wait_ready(me.addr, "relay.log").await?;
        me.connect_keys().await?;
        Ok(me)
    }

    /// A `relay` command with this Relay's environment, its stderr to `log` in the temp dir.
    fn command(&self, args: &[&str], log: &str) -> anyhow::Result<Command> {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .current_dir(&self.dir)
            .env_remove("RELAY_MASTER_KEY_FILE")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        // Relay reads `.env` from its working directory: the temp dir has none.
        let log = std::fs::File::create(self.dir.join(log))?;
        c.stdin(Stdio::null()).stderr(log);
        Ok(c)
    }

    fn serve(&self, addr: SocketAddr, log: &str) -> anyhow::Result<Child> {
        let mut serve = self.command(&["serve"], log)?;
        serve.env("RELAY_LISTEN", addr.to_string()).stdout(Stdio::null());
        serve.spawn().with_context(|| format!("start {} serve", self.bin.display()))
    }

    /// Starts one more node on the same database and master key, and waits until it answers.
    pub async fn add_node(&mut self) -> anyhow::Result<&Node> {
        let addr = free_addr()?;
        let log = format!("relay-{}.log", self.others.len() + 2);
        let child = self.serve(addr, &log)?;
        self.others.push(Node { addr, pid: child.id(), child: Some(child) });
        self.wait_ready(addr, &log).await?;
        self.others.last().context("the node just added")
    }

    async fn wait_ready(&mut self, addr: SocketAddr, log: &str) -> anyhow::Result<()> {
        let health = Target {
            addr,
            method: hyper::Method::GET,
            path: "/api/health".into(),
            headers: vec![],
            body: bytes::Bytes::new(),
            expect: Expect::OpenAiChat,
        };
        let started = Instant::now();
        loop {
            let child = if addr == self.addr {
                self.child.as_mut()
            } else {
                self.others.iter_mut().find(|n| n.addr == addr).and_then(|n| n.child.as_mut())
            };
            if let Some(child) = child {
                if let Some(status) = child.try_wait()? {
                    bail!("relay serve exited ({status}): {}", read_log(&self.dir.join(log)));
                }
            }
            let mut conn = Conn::new(addr);
            if conn.send(&health).await.is_ok() {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("relay serve did not answer /api/health within 60 s: {}", read_log(&self.dir.join(log)));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Registration token, then `POST /v1/connect`, for OpenAI and then Anthropic.
    async fn connect_keys(&self) -> anyhow::Result<()> {
        for (provider, key) in [("openai", &self.openai_key), ("anthropic", &self.anthropic_key)] {
            connect_key(self.addr, &self.api_key, &self.user, provider, key)
                .await
                .map_err(|f| anyhow::anyhow!("connect the {provider} key: {}", f.detail()))?;
        }
        Ok(())
    }

    /// Relay's process and, on PostgreSQL, the server processes of its database connections.
    pub fn probe(&self) -> crate::sys::Probe {
        self.probe_of(self.pid)
    }

    /// A node's process and, on PostgreSQL, the server processes of every node's connections.
    pub fn probe_of(&self, pid: u32) -> crate::sys::Probe {
        let db_pids = self.pg.as_ref().map(|(admin, name)| {
            psql(
                admin,
                &format!("SELECT pid FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"),
            )
            .map(|out| out.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
        });
        crate::sys::Probe { relay_pid: pid, db_pids }
    }

    pub fn log(&self) -> String {
        read_log(&self.dir.join("relay.log"))
    }

    /// Stops every node (SIGTERM through `kill`, then SIGKILL) and removes the database.
    pub fn stop(&mut self) {
        for child in self.others.iter_mut().filter_map(|n| n.child.take()).chain(self.child.take()) {
            terminate(child);
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

fn terminate(mut child: Child) {
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

fn free_addr() -> anyhow::Result<SocketAddr> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Connects `key` for `user` as the widget does: a registration token (with the tenant's
/// `rly-` key), then `POST /v1/connect` with it.
pub async fn connect_key(
    addr: SocketAddr,
    api_key: &str,
    user: &str,
    provider: &str,
    key: &str,
) -> Result<(), Failure> {
    let token =
        post(addr, "/v1/registration-tokens", &json!({"endUserLabel": user, "provider": provider}), Some(api_key), 201)
            .await?;
    let token = token
        .get("registrationToken")
        .and_then(Value::as_str)
        .ok_or_else(|| Failure::Malformed("no registrationToken".into()))?;
    post(addr, "/v1/connect", &json!({"registrationToken": token, "provider": provider, "apiKey": key}), None, 200)
        .await?;
    Ok(())
}

/// A setup call on a fresh connection: JSON in, the expected status, JSON out.
async fn post(addr: SocketAddr, path: &str, body: &Value, bearer: Option<&str>, want: u16) -> Result<Value, Failure> {
    let transport = |e: &dyn std::fmt::Display| Failure::Transport(format!("POST {path}: {e}"));
    let req = hyper::Request::builder()
        .method(hyper::Method::POST)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json");
    let req = match bearer {
        Some(key) => req.header("authorization", format!("Bearer {key}")),
        None => req,
    };
    let req = req
        .body(http_body_util::Full::new(bytes::Bytes::from(body.to_string())))
        .map_err(|e| Failure::Malformed(format!("POST {path}: {e}")))?;
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| Failure::Connect(e.to_string()))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(|e| transport(&e))?;
    tokio::spawn(connection);
    let res = sender.send_request(req).await.map_err(|e| transport(&e))?;
    let status = res.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(res.into_body()).await.map_err(|e| transport(&e))?.to_bytes();
    if status != want {
        return Err(Failure::status(status, &bytes));
    }
    serde_json::from_slice(&bytes).map_err(|e| Failure::Malformed(format!("POST {path}: {e}")))
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

//! The real `relay` binary, for CLI tests and tests that read what the server logs.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Path of the `relay` binary built by `cargo build -p relay` (scripts/test does that first).
pub fn relay_bin() -> PathBuf {
    if let Ok(p) = std::env::var("RELAY_BIN") {
        return p.into();
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug/relay");
    assert!(bin.exists(), "{} is missing: run `cargo build -p relay` first (scripts/test does)", bin.display());
    bin
}

/// Runs `relay <args>` to completion with exactly `env` (plus PATH), returning (status, stdout, stderr).
/// Without `cwd`, it runs in the system's temp directory, where no `.env` adds to `env`.
pub fn run_cli(
    args: &[&str],
    env: &[(&str, &str)],
    cwd: Option<&std::path::Path>,
) -> (std::process::ExitStatus, String, String) {
    let mut cmd = Command::new(relay_bin());
    cmd.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.current_dir(cwd.map_or_else(std::env::temp_dir, std::path::Path::to_path_buf));
    let out = cmd.output().expect("run relay");
    (out.status, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `relay serve` as a child process on a free port, with its stderr captured.
pub struct ServerProcess {
    child: Child,
    pub address: String,
    logs: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// Starts `relay serve --listen 127.0.0.1:0` with JSON logs and waits for it to listen.
    pub fn start(env: &[(&str, &str)], cwd: Option<&std::path::Path>) -> Self {
        Self::start_on("127.0.0.1:0", env, cwd)
    }

    /// Like `start`, on `listen` (for a server whose `RELAY_PUBLIC_URL` must name its port).
    pub fn start_on(listen: &str, env: &[(&str, &str)], cwd: Option<&std::path::Path>) -> Self {
        let mut cmd = Command::new(relay_bin());
        cmd.args(["serve", "--listen", listen, "--log-format", "json"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "debug,sqlx=debug,hyper=info,h2=info,rustls=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.current_dir(cwd.map_or_else(std::env::temp_dir, std::path::Path::to_path_buf));
        let mut child = cmd.spawn().expect("spawn relay serve");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<u16>();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if v["message"] == "relay is listening" {
                        if let Some(port) = v["port"].as_u64() {
                            let _ = tx.send(u16::try_from(port).unwrap_or(0));
                        }
                    }
                }
                let mut l = sink.lock().expect("lock");
                l.push_str(&line);
                l.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            if let Ok(port) = rx.recv_timeout(Duration::from_millis(100)) {
                break port;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("relay serve exited with {status}:\n{}", logs.lock().expect("lock"));
            }
            assert!(Instant::now() < deadline, "relay serve did not start:\n{}", logs.lock().expect("lock"));
        };
        Self { child, address: format!("http://127.0.0.1:{port}"), logs }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A registration token for `label`, created with the tenant's `rly` key.
    pub async fn registration_token(&self, client: &reqwest::Client, rly: &str, label: &str) -> String {
        let res = client
            .post(self.url("/v1/registration-tokens"))
            .bearer_auth(rly)
            .json(&serde_json::json!({ "endUserLabel": label }))
            .send()
            .await
            .expect("send");
        assert_eq!(res.status(), 201, "registration token for {label}");
        let body: serde_json::Value = res.json().await.expect("json");
        body["registrationToken"].as_str().expect("registrationToken").to_owned()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (TERM, INT) with the system's `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status().expect("kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Everything the server wrote to stderr so far.
    pub fn logs(&self) -> String {
        self.logs.lock().expect("lock").clone()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

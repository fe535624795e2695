//! Runs the driver scripts in tests/sdk against a Relay: the official `openai` SDKs on the unified
//! API (`chat`), `anthropic` on `/v1/messages` (`messages`), and Relay's own SDKs in sdk/.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sdk {
    Python,
    Node,
}

pub const ALL: [Sdk; 2] = [Sdk::Python, Sdk::Node];

pub fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sdk")
}

/// Runs one job through the `openai` SDK in a blocking thread; returns what the driver printed.
pub async fn run(sdk: Sdk, job: Value) -> Value {
    run_driver(sdk, "chat", "openai", job).await
}

/// Runs one `/v1/messages` job through the `anthropic` SDK (tests/sdk/messages.py, .mjs).
pub async fn run_messages(sdk: Sdk, job: Value) -> Value {
    run_driver(sdk, "messages", "@anthropic-ai/sdk", job).await
}

async fn run_driver(sdk: Sdk, driver: &'static str, node_package: &'static str, job: Value) -> Value {
    tokio::task::spawn_blocking(move || {
        let dir = sdk_dir();
        let mut cmd = match sdk {
            Sdk::Python => {
                let mut c = Command::new("python3");
                c.arg(dir.join(format!("{driver}.py")));
                c
            }
            Sdk::Node => {
                let installed = dir.join("node_modules").join(node_package).exists();
                assert!(installed, "run `npm ci` in tests/sdk (scripts/test does)");
                let mut c = Command::new("node");
                c.arg(dir.join(format!("{driver}.mjs")));
                c
            }
        };
        cmd.current_dir(&dir);
        drive(cmd, &job, &format!("{sdk:?}"))
    })
    .await
    .expect("join")
}

/// Runs a driver to completion (blocking): writes `job` to its stdin, parses what it printed.
pub fn drive(mut cmd: Command, job: &Value, what: &str) -> Value {
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start the driver");
    child.stdin.take().expect("stdin").write_all(job.to_string().as_bytes()).expect("write job");
    let out = child.wait_with_output().expect("driver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{what} driver failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{what} driver printed no JSON ({e}): {stdout}"))
}

/// A driver that stays up for many jobs (tests/sdk/responses.py, .mjs): one JSON job a line in,
/// one JSON answer a line out, so a suite starts each SDK once.
pub struct Session {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
    what: String,
}

impl Session {
    pub fn start(sdk: Sdk, driver: &str, node_package: &str) -> Self {
        let dir = sdk_dir();
        let mut cmd = match sdk {
            Sdk::Python => {
                let mut c = Command::new("python3");
                c.arg(dir.join(format!("{driver}.py")));
                c
            }
            Sdk::Node => {
                assert!(
                    dir.join("node_modules").join(node_package).exists(),
                    "run `npm ci` in tests/sdk (scripts/test does)"
                );
                let mut c = Command::new("node");
                c.arg(dir.join(format!("{driver}.mjs")));
                c
            }
        };
        let mut child = cmd
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the driver");
        let out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        Self { child, out, what: format!("{sdk:?} {driver}") }
    }

    /// Runs one job; blocks the thread (call it from a multi-threaded runtime).
    pub fn run(&mut self, job: &Value) -> Value {
        use std::io::BufRead;
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{job}").and_then(|_| stdin.flush()).expect("write job");
        let mut line = String::new();
        tokio::task::block_in_place(|| self.out.read_line(&mut line)).expect("read answer");
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{} printed no JSON ({e}): {line}", self.what))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

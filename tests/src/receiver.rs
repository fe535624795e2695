//! A webhook receiver for tests: tests/sdk/webhook_receiver.py, which verifies every delivery
//! with the `standardwebhooks` library and reports each request as a JSON line.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub struct Receiver {
    child: Child,
    stdin: Option<ChildStdin>,
    pub port: u16,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    /// Starts the receiver and waits until it listens.
    pub fn start() -> Self {
        let script = crate::sdk::sdk_dir().join("webhook_receiver.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the webhook receiver");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().expect("lock").push(v);
                }
            }
        });
        let stdin = child.stdin.take();
        let mut receiver = Self { child, stdin, port: 0, lines };
        let hello = receiver.wait_line(|v| v.get("port").is_some(), "the receiver's port");
        receiver.port = u16::try_from(hello["port"].as_u64().expect("port")).expect("port");
        receiver
    }

    /// `http://127.0.0.1:<port>/hook`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Hands over the endpoint's secret; the first `fail_first` requests get `fail_status`.
    pub fn configure(&mut self, secret: &str, fail_first: u32, fail_status: u16) {
        self.configure_with(json!({ "secret": secret, "failFirst": fail_first, "failStatus": fail_status }));
    }

    /// Hands over the endpoint's secret; the first `hang_first` requests are answered after 15 s.
    pub fn configure_hanging(&mut self, secret: &str, hang_first: u32) {
        self.configure_with(json!({ "secret": secret, "hangFirst": hang_first }));
    }

    /// Hands over the endpoint's secret; every request is answered (204) after `delay_ms`.
    pub fn configure_slow(&mut self, secret: &str, delay_ms: u64) {
        self.configure_with(json!({ "secret": secret, "delayMs": delay_ms }));
    }

    fn configure_with(&mut self, line: Value) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("configure the receiver");
        stdin.flush().expect("flush");
        self.wait_line(|v| v.get("ready").is_some(), "the receiver to be ready");
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Value> {
        self.lines.lock().expect("lock").iter().filter(|v| v.get("attempt").is_some()).cloned().collect()
    }

    /// Waits (up to `limit`) until `n` requests arrived; returns them.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "expected {n} webhook requests within {limit:?}, got {got:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn wait_line(&self, pick: impl Fn(&Value) -> bool, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(v) = self.lines.lock().expect("lock").iter().find(|v| pick(v)) {
                return v.clone();
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

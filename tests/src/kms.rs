//! A local AWS KMS for the KMS master-key tests: moto's server (PyPI `moto[server]`, installed by
//! scripts/test) as a child process on a free port, with the AWS environment that points at it.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// moto routes a request to a service by the credential scope of its signature; it does not
/// check the signature itself.
const AUTHORIZATION: &str =
    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=0";

/// The AWS secret key the tests use: distinct, so a test can look for it in logs.
pub const SECRET_ACCESS_KEY: &str = "relay-test-aws-secret-Zq8v3Lr";

pub struct KmsEmulator {
    child: Child,
    pub url: String,
}

impl KmsEmulator {
    /// Starts moto's server and waits until it answers.
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto's server (pip install -r tests/kms/requirements.txt; scripts/test does)");
        let emulator = Self { child, url: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if emulator.call("ListKeys", &json!({})).await.is_ok() {
                return emulator;
            }
            assert!(Instant::now() < deadline, "moto's server did not start on port {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn call(&self, action: &str, body: &Value) -> reqwest::Result<Value> {
        reqwest::Client::new()
            .post(&self.url)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", format!("TrentService.{action}"))
            .header("authorization", AUTHORIZATION)
            .json(body)
            .timeout(Duration::from_secs(5))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }

    /// A new symmetric KMS key; its id.
    pub async fn create_key(&self) -> String {
        let created = self.call("CreateKey", &json!({"Description": "relay test"})).await.expect("CreateKey");
        created["KeyMetadata"]["KeyId"].as_str().expect("key id").to_owned()
    }

    /// The AWS environment a `relay` process needs to use this KMS.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.url.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Freezes the emulator (SIGSTOP): connections are accepted and never answered, as when
    /// KMS hangs or the network to it drops packets.
    pub fn pause(&self) {
        assert!(self.signal("STOP"), "kill -STOP failed");
    }

    /// Lets a paused emulator go on (SIGCONT); its keys are as they were.
    pub fn resume(&self) {
        assert!(self.signal("CONT"), "kill -CONT failed");
    }

    fn signal(&self, name: &str) -> bool {
        Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for KmsEmulator {
    fn drop(&mut self) {
        self.signal("CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

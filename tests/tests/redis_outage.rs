//! Redis lost and back under two `relay serve` nodes that share their rate limits through it:
//! while it is gone each node limits on its own and no call fails or hangs; when it is back the
//! nodes share one limit again, with no restart.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use relay_tests::process::{run_cli, ServerProcess};
use relay_tests::{Backend, MockProvider, TestDb};
use serde_json::Value;

/// A Redis of this test's own on a free port, so stopping it touches no other test.
struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    /// Gone at once, as when its host dies: SIGKILL, nothing flushed.
    fn kill(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Eight calls alternating between the nodes with a fresh `rly-` key limited to 6 a minute:
/// their statuses, and the slowest answer.
async fn eight_calls(client: &reqwest::Client, nodes: [&ServerProcess; 2], rly: &str) -> (Vec<u16>, Duration) {
    let mut statuses = Vec::new();
    let mut slowest = Duration::ZERO;
    for i in 0..8 {
        let started = Instant::now();
        let res = client.get(nodes[i % 2].url("/v1/users/nobody")).bearer_auth(rly).send().await.expect("send");
        slowest = slowest.max(started.elapsed());
        statuses.push(res.status().as_u16());
    }
    (statuses, slowest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_limit_alone_while_redis_is_gone_and_share_again_when_it_is_back() {
    let db = TestDb::new(Backend::Postgres).await;
    let mock = MockProvider::start().await;
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let redis = OwnRedis::start(port);
    let master = run_cli(&["kek", "generate"], &[], None).1.trim().to_owned();
    let env_owned: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), db.url.clone()),
        ("RELAY_MASTER_KEYS".into(), master),
        ("RELAY_UPSTREAM_OPENAI".into(), mock.url.clone()),
        ("RELAY_REDIS_URL".into(), format!("redis://127.0.0.1:{}", redis.port)),
        ("RELAY_RATE_LIMIT_KEY".into(), "6/min".into()),
    ];
    let env: Vec<(&str, &str)> = env_owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let created: Value =
        serde_json::from_str(&run_cli(&["tenant", "create", "--name", "T", "--json"], &env, None).1).expect("json");
    let tenant = created["tenantId"].as_str().or(created["id"].as_str()).expect("tenant id").to_owned();
    let new_key = || {
        let out = run_cli(&["apikey", "create", "--tenant", &tenant, "--json"], &env, None).1;
        serde_json::from_str::<Value>(&out).expect("json")["apiKey"].as_str().expect("key").to_owned()
    };
    let (a, b) = (ServerProcess::start(&env, None), ServerProcess::start(&env, None));
    let client = reqwest::Client::new();

    let (shared, _) = eight_calls(&client, [&a, &b], &new_key()).await;
    assert_eq!(shared, [404, 404, 404, 404, 404, 404, 429, 429], "6 a minute across both nodes");

    // Redis dies. Every call is still answered, quickly, and each node allows its own 6.
    let port = redis.kill();
    let (alone, slowest) = eight_calls(&client, [&a, &b], &new_key()).await;
    assert_eq!(alone, [404; 8], "each node limits alone: 4 calls each are within its own 6");
    let (more, _) = eight_calls(&client, [&a, &b], &new_key()).await;
    assert_eq!(more.iter().filter(|s| **s == 429).count(), 0);
    eprintln!("Redis gone: slowest answer {slowest:?}");
    assert!(slowest < Duration::from_secs(2), "no call waits on a dead Redis: {slowest:?}");
    for node in [&a, &b] {
        assert!(node.logs().contains("limiting on this node alone"), "the fallback is logged");
        let metrics = client.get(node.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
        let errors = metrics
            .lines()
            .find_map(|l| l.strip_prefix("relay_rate_limit_backend_errors_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        assert!(errors >= 1.0, "counted in relay_rate_limit_backend_errors_total");
    }

    // Redis is back (empty, on the same address): the nodes reconnect by themselves and share one
    // limit again.
    let _redis = OwnRedis::start(port);
    let back = Instant::now();
    let deadline = back + Duration::from_secs(20);
    loop {
        let (statuses, _) = eight_calls(&client, [&a, &b], &new_key()).await;
        if statuses == [404, 404, 404, 404, 404, 404, 429, 429] {
            eprintln!("Redis back: limits shared again after {:?}", back.elapsed());
            break;
        }
        assert!(Instant::now() < deadline, "the nodes did not share limits again: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop((a, b));
}

//! Clients that try to hold the server: slow bodies are cut at the body deadline (408, connection
//! closed) while other calls keep being answered; and the process keeps no core dumps.

use std::time::{Duration, Instant};

use relay::client_limits::ClientLimits;
use relay_tests::app::{spawn_app_with, SpawnOptions};
use relay_tests::Backend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SLOW: usize = 2_000;
const DEADLINE: Duration = Duration::from_secs(2);

/// Sends a request head announcing a 1,000-byte body, then one byte every 500 ms until the
/// server closes the connection; returns what the server answered and when it closed.
async fn slow_body(addr: String) -> (Vec<u8>, Instant) {
    let mut stream = loop {
        match TcpStream::connect(&addr).await {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let head =
        "POST /v1/connect HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{";
    stream.write_all(head.as_bytes()).await.expect("head");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return (answer, Instant::now()),
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            },
            () = tokio::time::sleep(Duration::from_millis(500)) => {
                if stream.write_all(b" ").await.is_err() {
                    // Closed on the server's side; read what it said.
                    let _ = tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut answer)).await;
                    return (answer, Instant::now());
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_are_cut_at_the_deadline_and_others_are_served_meanwhile() {
    let limits = ClientLimits { body_timeout: DEADLINE, ..Default::default() };
    let app = spawn_app_with(Backend::Sqlite, SpawnOptions { client_limits: limits, ..Default::default() }).await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let started = Instant::now();
    let slow: Vec<_> = (0..SLOW).map(|_| tokio::spawn(slow_body(addr.clone()))).collect();

    // Meanwhile, ordinary calls are answered, and at once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..10 {
        let t = Instant::now();
        let res = app.client.get(app.url("/v1/users/nobody")).bearer_auth(&app.api_key).send().await.expect("call");
        assert_eq!(res.status(), 404);
        assert!(t.elapsed() < Duration::from_secs(1), "answered in {:?}", t.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut latest = started;
    let mut timed_out = 0;
    for task in slow {
        let (answer, closed) = task.await.expect("slow client");
        latest = latest.max(closed);
        let text = String::from_utf8_lossy(&answer);
        if text.starts_with("HTTP/1.1 408") {
            assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
            assert!(text.to_ascii_lowercase().contains("x-relay-request-id"), "{text}");
            timed_out += 1;
        }
    }
    // Every connection closed within the deadline and a margin for 2,000 of them to be opened
    // and answered on a 2-core machine.
    let took = latest - started;
    assert!(took < DEADLINE + Duration::from_secs(6), "the last slow connection closed after {took:?}");
    assert!(timed_out > SLOW * 9 / 10, "{timed_out} of {SLOW} got the 408 answer");
    eprintln!("{SLOW} slow-body connections closed within {took:?}; {timed_out} read the 408");

    // A request whose body came in time is unaffected.
    let res = app.create_registration_token(&serde_json::json!({"endUserLabel": "u"})).await;
    assert_eq!(res.status(), 201);
}

#[test]
fn the_server_process_keeps_no_core_dumps() {
    use relay_tests::process::ServerProcess;
    let dir = tempdir();
    let env = [("RELAY_DATA_DIR", dir.as_str())];
    let server = ServerProcess::start(&env, None);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).expect("limits");
    let core = limits.lines().find(|l| l.starts_with("Max core file size")).expect("core limit");
    let values: Vec<&str> = core.split_whitespace().skip(4).take(2).collect();
    assert_eq!(values, ["0", "0"], "{core}");
    assert!(server.logs().contains("core dumps are off"), "{}", server.logs());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> String {
    let dir = std::env::temp_dir().join(format!("relay-core-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir.display().to_string()
}

/// What the HTTP parser answers before any Relay code runs (the README says so): a status and
/// no body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parser_errors_are_answered_by_actix_with_a_bare_status() {
    let app = spawn_app_with(Backend::Sqlite, SpawnOptions::default()).await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let raw = |request: Vec<u8>| {
        let addr = addr.clone();
        async move {
            let mut stream = TcpStream::connect(&addr).await.expect("connect");
            stream.write_all(&request).await.expect("write");
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
            String::from_utf8_lossy(&answer).into_owned()
        }
    };
    let bad_line = raw(b"GET /api/health HTTP/9.9\r\nHost: x\r\n\r\n".to_vec()).await;
    assert!(bad_line.starts_with("HTTP/1.1 400"), "{bad_line}");
    let big = format!("GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(140 * 1024));
    let too_large = raw(big.into_bytes()).await;
    assert!(too_large.starts_with("HTTP/1.1 431"), "{too_large}");
}

//! The OpenAPI document: what `GET /openapi.json` serves is the committed openapi/openapi.json,
//! every documented route is served, and a bounded schemathesis run against a live Relay finds
//! no 5xx and no answer that breaks the document's schemas.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use relay_tests::mock::Reply;
use relay_tests::{spawn_app, Backend};
use serde_json::{json, Value};

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json")
}

/// Where the first difference between two JSON values is, as a JSON pointer.
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => {
                    first_difference(p, q, &format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")))
                }
                _ => Some(format!("{at}/{k}")),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (p, q))| first_difference(p, q, &format!("{at}/{i}")))
        }
        _ => (a != b).then(|| if at.is_empty() { "/".to_owned() } else { at.to_owned() }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_document_is_the_committed_one() {
    let app = spawn_app(Backend::Sqlite).await;
    let res = app.client.get(app.url("/openapi.json")).send().await.expect("request");
    assert_eq!(res.status(), 200, "GET /openapi.json is public");
    assert!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json")),
        "served as JSON"
    );
    let served: Value = res.json().await.expect("the document is JSON");
    assert!(served["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "OpenAPI 3.1: {}", served["openapi"]);

    let path = committed_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{} is missing ({e}); generate it with `{}`", path.display(), relay::openapi::REGENERATE)
    });
    let committed: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!("{} is not JSON ({e}); regenerate it with `{}`", path.display(), relay::openapi::REGENERATE)
    });
    if let Some(at) = first_difference(&served, &committed, "") {
        panic!(
            "openapi/openapi.json is out of date with the code (first difference at {at}).\n\
             Regenerate it with `{}` and commit it.",
            relay::openapi::REGENERATE
        );
    }
}

/// A concrete request path for a documented path: each `{param}` gets a value the route matches.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg {
            "{asset}" => "app.js",
            "{provider}" => "openai",
            "{scope}" => "tenant",
            "{page}" => "keys",
            "{path}" => "v1/models",
            s if s.starts_with('{') => "x",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc: Value = serde_json::to_value(relay::openapi::document()).expect("document");
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            let Ok(m) = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()) else { continue };
            // With a key: without one, an unmounted protected route would answer 401, not 404.
            let res = app
                .client
                .request(m, app.url(&concrete(path)))
                .bearer_auth(&app.api_key)
                .header("x-relay-user", "u")
                .send()
                .await
                .expect("request");
            let status = res.status().as_u16();
            let body = res.text().await.unwrap_or_default();
            assert!(
                !(status == 404 && body.contains("\"unknown_route\"")) && status != 405,
                "{method} {path} is documented but not served: {status} {body}"
            );
            checked += 1;
        }
    }
    assert!(checked > 25, "only {checked} operations checked");
}

/// Found by schemathesis on PostgreSQL, which refuses text with a NUL byte with an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_bytes_in_an_app_id_are_no_server_error() {
    let app = spawn_app(Backend::Postgres).await;
    let res = app
        .client
        .get(app.url("/widget/frame?app=app_a%00b&origin=https%3A%2F%2Fx.example"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200, "an unknown app renders the frame's error page");
}

/// The bounded schemathesis run. Pinned in tests/api/requirements.txt; scripts/test installs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_or_schema_violation() {
    let app = spawn_app(Backend::Postgres).await;
    // An end user with an OpenAI key the mock accepts: model listings and passthrough GETs reach
    // the mock and succeed; POSTs to the provider get the provider's 400 in OpenAI's shape.
    let user = "schemathesis-user";
    app.connect_new_key(user, "openai").await;
    app.mock.reply(Reply::Json {
        status: 400,
        headers: vec![],
        body: json!({"error": {"message": "mock: invalid request", "type": "invalid_request_error", "param": null, "code": "mock_invalid"}}),
    });

    let schema = app.url("/openapi.json");
    let auth = format!("Authorization: Bearer {}", app.api_key);
    let relay_user = format!("X-Relay-User: {user}");
    let address = app.address.clone();
    let report_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/schemathesis");
    std::fs::create_dir_all(&report_dir).expect("report dir");
    let log_path = report_dir.join("output.txt");
    let (status, output) = tokio::task::spawn_blocking(move || {
        // To a file, not a pipe: a long report would fill the pipe and stall the run.
        let log = std::fs::File::create(&log_path).expect("schemathesis log");
        let mut cmd = Command::new("python3");
        // Its crash cache (.schemathesis/) lands in the working directory: keep it under target/.
        cmd.current_dir(&report_dir)
            .args(["-m", "schemathesis.cli", "run", &schema, "--url", &address])
            .args(["--checks", "not_a_server_error,response_schema_conformance"])
            .args(["--phases", "examples,coverage,fuzzing", "--max-examples", "25", "--seed", "20260101"])
            // One worker: Python 3.11's ast module (which hypothesis uses to describe strategies)
            // is not safe to use from two threads at once.
            .args(["--generation-database", "none", "--workers", "1", "--request-timeout", "10"])
            .args(["--header", &auth, "--header", &relay_user])
            .args(["--no-color", "--report", "junit", "--report-dir"])
            .arg(&report_dir)
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log));
        let mut child = cmd
            .spawn()
            .expect("run schemathesis: `python3 -m pip install -r tests/api/requirements.txt` (scripts/test does)");
        // A hard bound on the whole run, whatever the generator does.
        let started = Instant::now();
        let limit = Duration::from_secs(100);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for schemathesis") {
                break Some(status);
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        // Hypothesis quotes whole source files in some tracebacks: keep the report readable.
        let text: Vec<String> = text
            .lines()
            .map(|l| {
                if l.len() > 500 {
                    format!("{}… [{} bytes]", l.chars().take(300).collect::<String>(), l.len())
                } else {
                    l.to_owned()
                }
            })
            .collect();
        (status, text.join("\n"))
    })
    .await
    .expect("join");
    let Some(status) = status else {
        panic!("schemathesis ran over its 100 s bound:\n{output}");
    };
    assert!(status.success(), "schemathesis found problems (or ran over its time bound):\n{output}");
}

/// Every operation has an id of its own, as OpenAPI requires and type generators (the JS SDK's
/// openapi-typescript) depend on.
#[test]
fn operation_ids_are_unique() {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(committed_path()).expect("read")).expect("json");
    let mut ids: Vec<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().expect("path item").values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "an operationId is used twice");
    assert!(ids.contains(&"relayGet") && ids.contains(&"relayPost"));
}

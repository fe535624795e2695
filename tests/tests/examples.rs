//! The examples/ a developer copies, run the way they would run them: against a real `relay serve`
//! with a mock provider, the Express app in Chromium, the FastAPI app over HTTP, the quickstarts
//! (from the packed tarball and the wheel, installed in clean folders).

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use relay_tests::mock::Reply;
use relay_tests::process::{run_cli, ServerProcess};
use relay_tests::{fake_keys, Backend, MockProvider, TestDb};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
/// What the mock answers without streaming, and what it streams, in pieces, with delays.
const ANSWER: &str = "Hello from the mock";
const STREAMED: [&str; 5] = ["Keys ", "rest in ", "the vault; ", "answers ", "stream in."];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A real `relay serve` on SQLite with the mock as OpenAI, and a tenant made with the CLI.
struct Stack {
    server: ServerProcess,
    mock: MockProvider,
    env: Vec<(String, String)>,
    rly: String,
    tenant_id: String,
    app_id: String,
    client: reqwest::Client,
    _db: TestDb,
}

impl Stack {
    async fn start() -> Self {
        let db = TestDb::new(Backend::Sqlite).await;
        let mock = MockProvider::start().await;
        let master = run_cli(&["kek", "generate"], &[], None).1.trim().to_owned();
        let env: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), db.url.clone()),
            ("RELAY_MASTER_KEYS".into(), master),
            ("RELAY_UPSTREAM_OPENAI".into(), mock.url.clone()),
            // The test changes the tenant's origins with the CLI while the server runs.
            ("RELAY_CACHE_TTL".into(), "0".into()),
        ];
        let created = run_cli(&["tenant", "create", "--name", "Notes AI", "--json"], &as_refs(&env), None);
        assert!(created.0.success(), "tenant create: {}", created.2);
        let created: Value = serde_json::from_str(&created.1).expect("json");
        let server = ServerProcess::start(&as_refs(&env), None);
        script_chat(&mock);
        Self {
            server,
            mock,
            env,
            rly: created["apiKey"].as_str().expect("apiKey").to_owned(),
            tenant_id: created["tenantId"].as_str().expect("tenantId").to_owned(),
            app_id: created["appId"].as_str().expect("appId").to_owned(),
            client: reqwest::Client::new(),
            _db: db,
        }
    }

    fn allow_origin(&self, origin: &str) {
        let args = ["tenant", "update", "--id", &self.tenant_id, "--allowed-origin", origin];
        let (status, _, stderr) = run_cli(&args, &as_refs(&self.env), None);
        assert!(status.success(), "tenant update: {stderr}");
    }

    /// Connects a fresh key the mock accepts with `token`, as the widget does.
    async fn connect(&self, token: &str) -> String {
        let key = fake_keys::for_provider("openai");
        self.mock.accept(&key);
        let res = self
            .client
            .post(self.server.url("/v1/connect"))
            .json(&json!({"registrationToken": token, "provider": "openai", "apiKey": key}))
            .send()
            .await
            .expect("send");
        assert_eq!(res.status(), 200, "connect: {}", res.text().await.unwrap_or_default());
        key
    }

    fn assert_no_secret_logged(&self, key: &str) {
        let logs = self.server.logs();
        assert!(!logs.contains(key) && !logs.contains(&self.rly), "Relay logged a secret");
    }
}

fn as_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn script_chat(mock: &MockProvider) {
    let completion = json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
    });
    mock.reply(Reply::Json { status: 200, headers: vec![], body: completion });
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut text = String::new();
    for (i, piece) in STREAMED.iter().enumerate() {
        let delta = if i == 0 { json!({"role": "assistant", "content": piece}) } else { json!({"content": piece}) };
        text.push_str(&format!("data: {}\n\n", chunk(delta, Value::Null)));
    }
    text.push_str(&format!("data: {}\n\ndata: [DONE]\n\n", chunk(json!({}), json!("stop"))));
    mock.reply_to_streams(Reply::Sse { headers: vec![], text, max_piece: 64, delay: Duration::from_millis(40) });
}

/// An example's process, its output collected; killed when dropped.
struct App {
    child: Child,
    output: Arc<Mutex<String>>,
}

impl App {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
        let output = Arc::new(Mutex::new(String::new()));
        let pipes: [Box<dyn Read + Send>; 2] =
            [Box::new(child.stdout.take().expect("stdout")), Box::new(child.stderr.take().expect("stderr"))];
        for pipe in pipes {
            let sink = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut out = sink.lock().expect("lock");
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        Self { child, output }
    }

    fn output(&self) -> String {
        self.output.lock().expect("lock").clone()
    }

    /// Waits until the output has a line for which `find` says something.
    fn wait_for<T>(&mut self, what: &str, find: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(found) = self.output().lines().find_map(&find) {
                return found;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the example exited with {status} before {what}:\n{}", self.output());
            }
            assert!(Instant::now() < deadline, "no {what} within a minute:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node_modules(dir: &std::path::Path) {
    assert!(dir.join("node_modules").exists(), "run `npm ci` in {} (scripts/test does)", dir.display());
}

/// sdk/js's dist/, built once for this test binary from the working tree.
fn build_js_sdk() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let js = repo().join("sdk/js");
        node_modules(&js);
        let status = Command::new("node").arg("scripts/build.mjs").current_dir(&js).status().expect("node");
        assert!(status.success(), "npm run build in sdk/js failed");
    });
}

/// `pip install ./sdk/python` into a folder of this binary's own, once; the folder for PYTHONPATH.
fn python_sdk() -> PathBuf {
    static TARGET: OnceLock<PathBuf> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("examples-python-sdk");
            let _ = std::fs::remove_dir_all(&target);
            let status = Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"])
                .args(["--no-build-isolation", "--target"])
                .arg(&target)
                .arg(repo().join("sdk/python"))
                .env("PIP_ROOT_USER_ACTION", "ignore")
                .status()
                .expect("pip");
            assert!(status.success(), "pip install ./sdk/python failed");
            target
        })
        .clone()
}

/// Runs a command to completion off the async runtime; its stdout, after asserting success.
async fn run_to_end(mut cmd: Command, what: &'static str) -> String {
    let out =
        tokio::task::spawn_blocking(move || cmd.stdin(Stdio::null()).output().expect("spawn")).await.expect("join");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed ({}):\n{stdout}\n{stderr}", out.status);
    stdout.into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_express_example_in_chromium() {
    assert!(std::path::Path::new(CHROMIUM).exists(), "{CHROMIUM} is missing (scripts/test installs it)");
    let browser = repo().join("tests/browser");
    node_modules(&browser);
    let dir = repo().join("examples/express-app");
    node_modules(&dir);
    build_js_sdk();
    let stack = Stack::start().await;

    // `npm start`, as its README says, with the values `relay tenant create` printed. The
    // browser reaches Relay as `localhost`, the app as 127.0.0.1: two sites, as in production.
    let relay_for_browser = stack.server.address.replace("127.0.0.1", "localhost");
    let mut cmd = Command::new("npm");
    cmd.args(["start", "--silent"])
        .current_dir(&dir)
        .env("RELAY_API_KEY", &stack.rly)
        .env("RELAY_APP_ID", &stack.app_id)
        .env("RELAY_BASE_URL", &stack.server.address)
        .env("RELAY_PUBLIC_URL", &relay_for_browser)
        .env("PORT", "0");
    let mut app = App::spawn(cmd);
    let url = app.wait_for("its address", |l| l.strip_prefix("Example app on ").map(str::to_owned));
    stack.allow_origin(&url);

    let key = fake_keys::for_provider("openai");
    stack.mock.accept(&key);
    let mut node = Command::new("node");
    node.arg("example_app.mjs")
        .current_dir(&browser)
        .env("EXAMPLE_URL", &url)
        .env("RELAY_URL", &relay_for_browser)
        .env("END_USER", "jieun_123")
        .env("PROVIDER_KEY", &key)
        .env("RELAY_API_KEY", &stack.rly)
        .env("EXPECTED_ANSWER", STREAMED.concat())
        .env("CHROMIUM", CHROMIUM);
    let run = tokio::time::timeout(Duration::from_secs(180), run_to_end(node, "the browser run"));
    let seen: Value = serde_json::from_str(run.await.expect("the browser run ends within 3 minutes").trim())
        .expect("the browser script prints JSON");

    let fingerprint = format!("sk-proj-…{}", &key[key.len() - 4..]);
    assert_eq!(seen["fingerprint"], fingerprint.as_str(), "{seen}");
    assert_eq!(seen["answer"], STREAMED.concat());
    assert!(seen["partials"].as_u64().is_some_and(|n| n >= 2), "the answer arrived in pieces: {seen}");
    assert_eq!(seen["keysAfterReload"], format!("openai {fingerprint}"), "GET /api/me after a reload");

    // The pasted key is the one that went upstream, in the signed-in user's name.
    let chat = stack.mock.last_post();
    assert_eq!(chat.header("authorization"), Some(format!("Bearer {key}").as_str()));
    assert_eq!(chat.json()["stream"], true);
    let output = app.output();
    assert!(!output.contains(&key) && !output.contains(&stack.rly), "the example logged a secret:\n{output}");
    stack.assert_no_secret_logged(&key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fastapi_example_over_http() {
    let stack = Stack::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", &port.to_string()])
        .current_dir(repo().join("examples/fastapi-app"))
        .env("PYTHONPATH", python_sdk())
        .env("RELAY_API_KEY", &stack.rly)
        .env("RELAY_APP_ID", &stack.app_id)
        .env("RELAY_BASE_URL", &stack.server.address);
    let mut app = App::spawn(cmd);
    app.wait_for("uvicorn's start", |l| l.contains("Application startup complete").then_some(()));
    let url = format!("http://127.0.0.1:{port}");
    let post = |path: &str, user: &str, body: Value| {
        stack.client.post(format!("{url}{path}")).header("x-demo-user", user).json(&body).send()
    };

    // Before any key: Relay's error comes through as the app's JSON.
    let res = post("/api/chat", "minho_456", json!({"message": "Hi"})).await.expect("send");
    let status = res.status();
    let body: Value = res.json().await.expect("json");
    assert_eq!((status.as_u16(), &body["code"]), (404, &json!("enduser_key_missing")), "{body}");

    let res = post("/api/registration-token", "minho_456", json!({})).await.expect("send");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["appId"], stack.app_id.as_str());
    let token = body["registrationToken"].as_str().expect("token");
    assert!(token.starts_with("rrt-"), "{body}");
    let key = stack.connect(token).await;

    let res = post("/api/chat", "minho_456", json!({"message": "Write a haiku about keys."})).await.expect("send");
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().is_ok_and(|t| t.starts_with("text/plain")));
    let mut pieces = Vec::new();
    let mut stream = res.bytes_stream();
    while let Some(piece) = stream.next().await {
        pieces.push(piece.expect("body"));
    }
    let text: String = pieces.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    assert_eq!(text, STREAMED.concat());
    assert!(pieces.len() >= 2, "streamed, not buffered: {} piece(s)", pieces.len());
    let chat = stack.mock.last_post();
    assert_eq!(chat.header("authorization"), Some(format!("Bearer {key}").as_str()));
    let output = app.output();
    assert!(!output.contains(&key) && !output.contains(&stack.rly), "the example logged a secret:\n{output}");
    stack.assert_no_secret_logged(&key);
}

/// Both quickstarts must be what their README shows, character for character.
fn readme_block(readme: &str, lang: &str) -> String {
    let text = std::fs::read_to_string(repo().join(readme)).expect("README");
    let quickstart = &text[text.find("## Quickstart").expect("a Quickstart section")..];
    let start = quickstart.find(&format!("```{lang}\n")).expect("a code block") + lang.len() + 4;
    quickstart[start..start + quickstart[start..].find("```").expect("its end")].to_owned()
}

/// A clean folder of the test's own, outside the source tree.
fn clean_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// Runs `cmd` to completion, asserting success; its stdout.
fn succeed(cmd: &mut Command, what: &str) -> String {
    let out = cmd.env("PIP_ROOT_USER_ACTION", "ignore").output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The JS quickstart in a clean folder, with the tarball `npm pack` makes of sdk/js (and the
/// quickstart's `openai`) installed there, as a developer would install the published package.
fn packed_js_quickstart() -> PathBuf {
    let dir = clean_dir("quickstart-packed-js");
    // Built once for this binary (the Express test uses the same dist/), so `prepack` is skipped.
    build_js_sdk();
    let packed = succeed(
        Command::new("npm")
            .args(["pack", "--silent", "--ignore-scripts", "--pack-destination"])
            .arg(&dir)
            .current_dir(repo().join("sdk/js")),
        "npm pack in sdk/js",
    );
    let tarball = dir.join(packed.trim().lines().last().expect("the tarball's name"));
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("examples/quickstart/package.json")).expect("package.json"),
    )
    .expect("json");
    let openai = format!("openai@{}", manifest["dependencies"]["openai"].as_str().expect("openai's version"));
    std::fs::write(dir.join("package.json"), r#"{"private": true, "type": "module"}"#).expect("write");
    succeed(
        Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefer-offline", &openai])
            .arg(&tarball)
            .current_dir(&dir),
        "npm install of the packed SDK",
    );
    std::fs::copy(repo().join("examples/quickstart/quickstart.mjs"), dir.join("quickstart.mjs")).expect("copy");
    dir
}

/// The Python quickstart in a clean folder, with the wheel built from sdk/python installed in
/// `site/` there. Returns (folder, site).
fn wheel_python_quickstart() -> (PathBuf, PathBuf) {
    let dir = clean_dir("quickstart-wheel-py");
    let (dist, site) = (dir.join("dist"), dir.join("site"));
    succeed(
        Command::new("python3")
            .args(["-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps", "--no-build-isolation"])
            .arg("--wheel-dir")
            .arg(&dist)
            .arg(repo().join("sdk/python")),
        "pip wheel ./sdk/python",
    );
    let wheel = std::fs::read_dir(&dist)
        .expect("dist")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .expect("a wheel");
    succeed(
        Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "--target"])
            .arg(&site)
            .arg(&wheel),
        "pip install of the wheel",
    );
    std::fs::copy(repo().join("examples/quickstart/quickstart.py"), dir.join("quickstart.py")).expect("copy");
    (dir, site)
}

/// The quickstart's user, with a key connected (as the widget would after step 1).
async fn quickstart_stack() -> (Stack, String) {
    let stack = Stack::start().await;
    let token = stack.server.registration_token(&stack.client, &stack.rly, "jieun_123").await;
    let key = stack.connect(&token).await;
    (stack, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_quickstart_runs_as_written() {
    let dir = repo().join("examples/quickstart");
    let file = std::fs::read_to_string(dir.join("quickstart.mjs")).expect("quickstart.mjs");
    assert!(file.ends_with(&readme_block("sdk/js/README.md", "ts")), "quickstart.mjs is sdk/js/README.md's");
    let packed = tokio::task::spawn_blocking(packed_js_quickstart).await.expect("join");
    let (stack, key) = quickstart_stack().await;
    let mut cmd = Command::new("node");
    cmd.arg("quickstart.mjs")
        .current_dir(&packed)
        .env("RELAY_API_KEY", &stack.rly)
        .env("RELAY_BASE_URL", &stack.server.address);
    let out = run_to_end(cmd, "node quickstart.mjs").await;
    assert_eq!(out, format!("{ANSWER}\n{}\n", STREAMED.concat()));
    assert_eq!(stack.mock.last_post().header("authorization"), Some(format!("Bearer {key}").as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_quickstart_runs_as_written() {
    let dir = repo().join("examples/quickstart");
    let file = std::fs::read_to_string(dir.join("quickstart.py")).expect("quickstart.py");
    assert!(file.ends_with(&readme_block("sdk/python/README.md", "python")), "quickstart.py is the README's");
    let (installed, site) = tokio::task::spawn_blocking(wheel_python_quickstart).await.expect("join");
    let (stack, key) = quickstart_stack().await;
    let mut cmd = Command::new("python3");
    cmd.arg("quickstart.py")
        .current_dir(&installed)
        .env("PYTHONPATH", site)
        .env("RELAY_API_KEY", &stack.rly)
        .env("RELAY_BASE_URL", &stack.server.address);
    let out = run_to_end(cmd, "python3 quickstart.py").await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("rrt-"), "the registration token: {out}");
    assert_eq!(&lines[1..], [ANSWER, STREAMED.concat().as_str()]);
    assert_eq!(stack.mock.last_post().header("authorization"), Some(format!("Bearer {key}").as_str()));
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn docs_link_only_to_files_in_the_repository() {
    let root = repo().canonicalize().expect("repo");
    let mut pages = vec![
        root.join("README.md"),
        root.join("sdk/js/README.md"),
        root.join("sdk/python/README.md"),
        root.join("sdk/react/README.md"),
    ];
    for dir in ["docs", "examples", "examples/express-app", "examples/fastapi-app"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("dir").map_while(Result::ok) {
            if entry.path().extension().is_some_and(|e| e == "md") {
                pages.push(entry.path());
            }
        }
    }
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).expect("page");
        let targets = text.split("](").skip(1).filter_map(|rest| rest.split_once(')').map(|(t, _)| t.to_owned()));
        for target in targets.filter(|t| !t.contains(char::is_whitespace)) {
            if target.starts_with("https://") || target.starts_with("http://") {
                continue; // the web: a standard, a provider's site
            }
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() { page.clone() } else { page.parent().expect("dir").join(path) };
            let file = file.canonicalize().unwrap_or_else(|_| panic!("{}: {target} does not exist", page.display()));
            assert!(file.starts_with(&root), "{}: {target} points outside the repository", page.display());
            if !fragment.is_empty() && file.extension().is_some_and(|e| e == "md") {
                let headings = std::fs::read_to_string(&file).expect("target");
                let found = headings
                    .lines()
                    .filter_map(|l| l.strip_prefix('#'))
                    .any(|h| anchor(h.trim_start_matches('#')) == fragment);
                assert!(found, "{}: no heading for #{fragment} in {}", page.display(), file.display());
            }
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} links found");
}

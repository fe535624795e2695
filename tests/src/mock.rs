//! A mock upstream that answers the providers' key-check calls the way they do: the key in the
//! provider's header (Bearer, `x-api-key`, `x-goog-api-key`), 200 for a key it accepts, 401 for
//! any other. It records what it received so tests can check how keys were presented.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    accepted: Mutex<HashSet<String>>,
    requests: Mutex<Vec<Recorded>>,
    fail_with: Mutex<Option<u16>>,
}

pub struct MockProvider {
    pub url: String,
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
}

fn presented_key(req: &HttpRequest) -> Option<String> {
    let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    h("authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned))
        .or_else(|| h("x-api-key"))
        .or_else(|| h("x-goog-api-key"))
}

async fn handle(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let recorded = Recorded {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
    };
    state.requests.lock().expect("lock").push(recorded);
    if let Some(code) = *state.fail_with.lock().expect("lock") {
        let status = actix_web::http::StatusCode::from_u16(code).expect("status");
        return HttpResponse::build(status)
            .json(serde_json::json!({"error": {"message": "mock failure", "type": "server_error"}}));
    }
    let accepted = presented_key(&req).is_some_and(|k| state.accepted.lock().expect("lock").contains(&k));
    if accepted {
        HttpResponse::Ok()
            .json(serde_json::json!({"object": "list", "data": [{"id": "mock-model", "object": "model"}]}))
    } else {
        HttpResponse::Unauthorized()
            .json(serde_json::json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}))
    }
}

impl MockProvider {
    pub async fn start() -> Self {
        let state = Arc::new(State::default());
        let data = web::Data::from(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind mock");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(handle)))
            .workers(1)
            .disable_signals()
            .listen(listener)
            .expect("listen")
            .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { url: format!("http://127.0.0.1:{port}"), state, handle }
    }

    /// Makes the mock accept `key` from now on.
    pub fn accept(&self, key: &str) {
        self.state.accepted.lock().expect("lock").insert(key.to_owned());
    }

    /// Answers every request with `status` (None: back to normal).
    pub fn fail_with(&self, status: Option<u16>) {
        *self.state.fail_with.lock().expect("lock") = status;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("lock").clone()
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        drop(handle.stop(false));
    }
}

//! The console's JSON API and its rules: invites and Argon2id passwords, sessions (sign-out and a
//! password change end them), CSRF and cross-site refusals, roles, tenant scoping (another
//! tenant's ids answer 404), sign-in throttling without account enumeration, and a real `relay`
//! process whose logs carry no password, cookie or CSRF token.

use relay::console::{create_account, Console, Email};
use relay::store::console::Role;
use relay_tests::app::{assert_error, spawn_app, TestApp};
use relay_tests::process::{run_cli, ServerProcess};
use relay_tests::{Backend, TestDb};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

const PASSWORD: &str = "a long enough passphrase";

/// A signed-in console client: the session cookie and the CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

async fn sign_in(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/console/api/sign-in"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("send")
}

async fn session(app: &TestApp, email: &str, password: &str) -> Session {
    let res = sign_in(app, email, password).await;
    assert_eq!(res.status(), 200, "sign in as {email}");
    let set = res.headers().get("set-cookie").and_then(|v| v.to_str().ok()).expect("set-cookie").to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/console"), "{set}");
    assert!(set.contains("Secure"), "Secure without a plain-http localhost public URL: {set}");
    let cookie = set.split(';').next().expect("pair").to_owned();
    let me: Value = res.json().await.expect("json");
    Session { cookie, csrf: me["csrfToken"].as_str().expect("csrf").to_owned() }
}

/// A request with the session's cookie and CSRF token, as the console page sends it.
fn call(app: &TestApp, s: &Session, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(&format!("/console/api{path}")))
        .header("cookie", &s.cookie)
        .header("x-relay-csrf", &s.csrf)
        .header("origin", app.address.clone())
        .header("sec-fetch-site", "same-origin")
}

async fn account(app: &TestApp, email: &str, tenant: uuid::Uuid, role: Role) {
    let email = Email::parse(email).expect("email");
    create_account(&app.store, &email, SecretString::from(PASSWORD), false, Some((tenant, role)))
        .await
        .expect("account");
}

async fn flow(backend: Backend) {
    let app = spawn_app(backend).await;
    use reqwest::Method;

    // The operator's invite; the owner sets a password on it (once).
    let console = Console::new(app.store.clone(), None);
    let owner_email = Email::parse("Owner@Example.com").expect("email");
    let invite = console.invite(app.tenant_id, &owner_email, Role::Owner, "operator", None).await.expect("invite");
    let token = invite.token.expose_secret().to_owned();
    let accept = |password: &'static str| {
        app.client.post(app.url("/console/api/invites/accept")).json(&json!({ "token": token, "password": password }))
    };
    assert_error(accept("short").send().await.expect("send"), 400, "password_too_weak").await;
    let res = accept(PASSWORD).send().await.expect("send");
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.expect("json")["email"], "owner@example.com");
    assert_error(accept(PASSWORD).send().await.expect("send"), 410, "invite_used").await;
    let stored = app.store.console().find_account_by_email("owner@example.com").await.expect("store").expect("row");
    assert!(stored.password_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "PHC string on the row");
    assert!(!stored.password_hash.contains(PASSWORD));

    let owner = session(&app, "owner@example.com", PASSWORD).await;
    let me: Value = call(&app, &owner, Method::GET, "/me").send().await.expect("send").json().await.expect("json");
    assert_eq!(me["tenant"]["role"], "owner");
    assert_eq!(me["tenant"]["id"], app.tenant_id.to_string());

    // CSRF: no token, a wrong token, another site's Origin or Sec-Fetch-Site, a form post.
    let keys = app.url("/console/api/keys");
    let no_token = app.client.post(&keys).header("cookie", &owner.cookie).json(&json!({})).send().await.expect("send");
    assert_error(no_token, 403, "console_csrf_invalid").await;
    let wrong =
        app.client.post(&keys).header("cookie", &owner.cookie).header("x-relay-csrf", "x".repeat(43)).json(&json!({}));
    assert_error(wrong.send().await.expect("send"), 403, "console_csrf_invalid").await;
    let with_token = || app.client.post(&keys).header("cookie", &owner.cookie).header("x-relay-csrf", &owner.csrf);
    let foreign = with_token().header("origin", "https://evil.example").json(&json!({}));
    assert_error(foreign.send().await.expect("send"), 403, "console_cross_site").await;
    let site = with_token().header("sec-fetch-site", "cross-site").json(&json!({}));
    assert_error(site.send().await.expect("send"), 403, "console_cross_site").await;
    let form = app
        .client
        .post(&keys)
        .header("cookie", &owner.cookie)
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=x")
        .send()
        .await
        .expect("send");
    assert_error(form, 403, "console_cross_site").await;
    let signin_elsewhere = app
        .client
        .post(app.url("/console/api/sign-in"))
        .header("origin", "https://evil.example")
        .json(&json!({ "email": "owner@example.com", "password": PASSWORD }))
        .send()
        .await
        .expect("send");
    assert_error(signin_elsewhere, 403, "console_cross_site").await;
    assert_eq!(app.store.list_api_keys(app.tenant_id).await.expect("keys").len(), 1, "nothing was created");

    // Create a key; it works; revoke it; the next call is refused.
    let res = call(&app, &owner, Method::POST, "/keys").json(&json!({ "name": "ci" })).send().await.expect("send");
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.expect("json");
    let secret = created["apiKey"].as_str().expect("apiKey").to_owned();
    let key_id = created["id"].as_str().expect("id").to_owned();
    let probe = || app.client.get(app.url("/v1/users/x")).bearer_auth(&secret).send();
    assert_error(probe().await.expect("send"), 404, "enduser_not_found").await;
    let listed: Value =
        call(&app, &owner, Method::GET, "/keys").send().await.expect("send").json().await.expect("json");
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(2));
    assert!(!listed.to_string().contains(&secret), "the list never shows a secret");
    let res = call(&app, &owner, Method::DELETE, &format!("/keys/{key_id}")).send().await.expect("send");
    assert_eq!(res.status(), 200);
    assert_error(probe().await.expect("send"), 401, "relay_key_revoked").await;

    // End users: search, details, erase.
    app.connect_new_key("alice_1", "openai").await;
    app.connect_new_key("alice_2", "openai").await;
    app.connect_new_key("bob", "openai").await;
    let page: Value = call(&app, &owner, Method::GET, "/end-users?prefix=alice&limit=1")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(page["data"][0]["label"], "alice_1");
    assert_eq!(page["next"], "alice_1");
    let page: Value = call(&app, &owner, Method::GET, "/end-users?prefix=alice&after=alice_1")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["data"][0]["label"], "alice_2");
    assert!(page["next"].is_null());
    let user: Value =
        call(&app, &owner, Method::GET, "/end-users/bob").send().await.expect("send").json().await.expect("json");
    assert_eq!(user["providers"][0]["provider"], "openai");
    assert_eq!(user["providers"][0]["status"], "ok");
    assert!(user["providers"][0]["fingerprint"].as_str().is_some_and(|f| f.contains('…')));

    // Roles: a viewer reads but changes nothing.
    account(&app, "viewer@example.com", app.tenant_id, Role::Viewer).await;
    let viewer = session(&app, "viewer@example.com", PASSWORD).await;
    assert_eq!(call(&app, &viewer, Method::GET, "/keys").send().await.expect("send").status(), 200);
    let refused = [
        call(&app, &viewer, Method::POST, "/keys").json(&json!({})),
        call(&app, &viewer, Method::DELETE, &format!("/keys/{key_id}")),
        call(&app, &viewer, Method::DELETE, "/end-users/bob"),
        call(&app, &viewer, Method::POST, "/members/invites").json(&json!({"email": "x@example.com", "role": "owner"})),
        call(&app, &viewer, Method::PATCH, &format!("/members/{}", stored.id)).json(&json!({"role": "viewer"})),
        call(&app, &viewer, Method::DELETE, &format!("/members/{}", stored.id)),
    ];
    for req in refused {
        assert_error(req.send().await.expect("send"), 403, "console_role_forbidden").await;
    }
    assert!(app.store.get_end_user(app.tenant_id, "bob").await.expect("store").is_some());

    // Tenant scoping: another tenant's key, end user and member answer 404.
    let (other, _) = app.other_tenant().await;
    let other_key = relay::tenants::create_api_key(&app.store, other, None, "test").await.expect("key");
    app.store.upsert_end_user(other, "carol", chrono::Utc::now()).await.expect("user");
    account(&app, "other@example.com", other, Role::Owner).await;
    let other_account =
        app.store.console().find_account_by_email("other@example.com").await.expect("store").expect("row");
    let r = call(&app, &owner, Method::DELETE, &format!("/keys/{}", other_key.record.public_id));
    assert_error(r.send().await.expect("send"), 404, "api_key_not_found").await;
    assert_error(
        call(&app, &owner, Method::GET, "/end-users/carol").send().await.expect("send"),
        404,
        "enduser_not_found",
    )
    .await;
    assert_error(
        call(&app, &owner, Method::DELETE, "/end-users/carol").send().await.expect("send"),
        404,
        "enduser_not_found",
    )
    .await;
    let search: Value =
        call(&app, &owner, Method::GET, "/end-users?prefix=c").send().await.expect("send").json().await.expect("json");
    assert_eq!(search["data"], json!([]));
    let path = format!("/members/{}", other_account.id);
    let r = call(&app, &owner, Method::PATCH, &path).json(&json!({"role": "viewer"}));
    assert_error(r.send().await.expect("send"), 404, "member_not_found").await;
    assert_error(call(&app, &owner, Method::DELETE, &path).send().await.expect("send"), 404, "member_not_found").await;
    assert!(app.store.get_end_user(other, "carol").await.expect("store").is_some());
    assert!(app
        .store
        .find_api_key(&other_key.record.public_id)
        .await
        .expect("store")
        .expect("key")
        .revoked_at
        .is_none());

    // Members: invite (link shown once), the last owner stays, erase as owner.
    let res = call(&app, &owner, Method::POST, "/members/invites")
        .json(&json!({"email": "new@example.com", "role": "admin"}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 201);
    let inv: Value = res.json().await.expect("json");
    assert!(inv["inviteUrl"].as_str().is_some_and(|u| u.starts_with(&format!("{}/console/invite/rci_", app.address))));
    let r = call(&app, &owner, Method::PATCH, &format!("/members/{}", stored.id)).json(&json!({"role": "admin"}));
    assert_error(r.send().await.expect("send"), 409, "last_owner").await;
    let erased = call(&app, &owner, Method::DELETE, "/end-users/bob").send().await.expect("send");
    assert_eq!(erased.status(), 200);
    assert!(app.store.get_end_user(app.tenant_id, "bob").await.expect("store").is_none());

    // Removing a member ends their sessions.
    let viewer_account =
        app.store.console().find_account_by_email("viewer@example.com").await.expect("store").expect("row");
    let r = call(&app, &owner, Method::DELETE, &format!("/members/{}", viewer_account.id));
    assert_eq!(r.send().await.expect("send").status(), 200);
    assert_error(call(&app, &viewer, Method::GET, "/keys").send().await.expect("send"), 401, "console_session_missing")
        .await;

    // Every action is in the audit log, with who and from where.
    let audit = app.store.list_audit(Some(app.tenant_id), 100).await.expect("audit");
    let owner_actor = format!("account:{}", stored.id);
    for action in ["console.sign_in", "api_key.create", "api_key.revoke", "end_user.delete", "console.invite"] {
        let entry = audit.iter().find(|e| e.action == action && e.actor == owner_actor);
        let entry = entry.unwrap_or_else(|| panic!("{action} by the owner in {audit:?}"));
        assert_eq!(entry.address.as_deref(), Some("127.0.0.1"), "{action}");
    }

    // A password change ends every session of the account; sign-out ends this one.
    let second = session(&app, "owner@example.com", PASSWORD).await;
    let res = call(&app, &owner, Method::POST, "/password")
        .json(&json!({"currentPassword": PASSWORD, "newPassword": "another long passphrase"}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 204);
    for s in [&owner, &second] {
        assert_error(call(&app, s, Method::GET, "/me").send().await.expect("send"), 401, "console_session_missing")
            .await;
    }
    assert_error(sign_in(&app, "owner@example.com", PASSWORD).await, 401, "console_sign_in_failed").await;
    let third = session(&app, "owner@example.com", "another long passphrase").await;
    assert_eq!(call(&app, &third, Method::POST, "/sign-out").send().await.expect("send").status(), 204);
    assert_error(call(&app, &third, Method::GET, "/me").send().await.expect("send"), 401, "console_session_missing")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_rules_sqlite() {
    flow(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_rules_postgres() {
    flow(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_throttled_and_does_not_tell_which_accounts_exist() {
    let app = spawn_app(Backend::Sqlite).await;
    account(&app, "known@example.com", app.tenant_id, Role::Admin).await;
    let body = |res: reqwest::Response| async move {
        let status = res.status().as_u16();
        let v: Value = res.json().await.expect("json");
        (status, v)
    };
    let unknown = body(sign_in(&app, "nobody@example.com", "wrong password!").await).await;
    let wrong = body(sign_in(&app, "known@example.com", "wrong password!").await).await;
    assert_eq!(unknown, wrong, "an unknown email and a wrong password get the same answer");
    assert_eq!(wrong.0, 401);
    assert_eq!(wrong.1["error"]["code"], "console_sign_in_failed");
    // 10 attempts per account in 15 minutes (one spent above).
    for _ in 0..9 {
        assert_eq!(sign_in(&app, "known@example.com", "wrong password!").await.status(), 401);
    }
    let res = sign_in(&app, "known@example.com", PASSWORD).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_error(res, 429, "rate_limit_exceeded").await;
    // Another account from the same address is not locked out by that.
    assert_eq!(sign_in(&app, "nobody2@example.com", "wrong password!").await.status(), 401);
}

/// The real binary at debug log level: sign in, create a key, sign out; the log holds no
/// password, session cookie, CSRF token or rly- key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_cookie_or_csrf_token_in_the_logs() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (status, master, err) = run_cli(&["kek", "generate"], &[], None);
    assert!(status.success(), "{err}");
    let master = master.trim().to_owned();
    let env = [("DATABASE_URL", db.url.as_str()), ("RELAY_MASTER_KEYS", master.as_str())];
    let (status, out, err) =
        run_cli(&["tenant", "create", "--name", "Logs", "--owner-email", "o@example.com", "--json"], &env, None);
    assert!(status.success(), "{err}");
    let created: Value = serde_json::from_str(&out).expect("json");
    let invite = created["ownerInviteUrl"].as_str().expect("invite url").to_owned();
    assert!(invite.starts_with("http://localhost:8080/console/invite/rci_"), "{invite}");
    let token = invite.rsplit('/').next().expect("token").to_owned();

    let server = ServerProcess::start(&env, None);
    let client = reqwest::Client::new();
    let res = client
        .post(server.url("/console/api/invites/accept"))
        .json(&json!({"token": token, "password": PASSWORD}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    let res = client
        .post(server.url("/console/api/sign-in"))
        .json(&json!({"email": "o@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("pair").to_owned();
    let csrf = res.json::<Value>().await.expect("json")["csrfToken"].as_str().expect("csrf").to_owned();
    let res = client
        .post(server.url("/console/api/keys"))
        .header("cookie", &cookie)
        .header("x-relay-csrf", &csrf)
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 201);
    let rly = res.json::<Value>().await.expect("json")["apiKey"].as_str().expect("key").to_owned();
    let res = client.post(server.url("/console/api/sign-out")).header("cookie", &cookie).header("x-relay-csrf", &csrf);
    assert_eq!(res.send().await.expect("send").status(), 204);
    let session_token = cookie.split_once('=').expect("pair").1.to_owned();
    let logs = server.logs();
    assert!(logs.contains("/console/api/sign-in"), "the requests were logged");
    for (what, secret) in [
        ("password", PASSWORD),
        ("session token", session_token.as_str()),
        ("CSRF token", csrf.as_str()),
        ("invite token", token.as_str()),
        ("rly- key", rly.as_str()),
    ] {
        assert!(!logs.contains(secret), "{what} appears in the server log");
    }
    let stored = String::from_utf8_lossy(&db.dump().await).into_owned();
    for (what, secret) in
        [("password", PASSWORD), ("session token", session_token.as_str()), ("invite", token.as_str())]
    {
        assert!(!stored.contains(secret), "{what} stored in plaintext");
    }
}

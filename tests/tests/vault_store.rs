//! The vault against real stores, on PostgreSQL and SQLite: bytes altered or copied in the
//! database do not open, rotation re-wraps every key while keys are connected and opened, and
//! `relay kek rotate` does the same from the command line (or changes nothing when it cannot).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix_web::ResponseError;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use relay::keys::KeyService;
use relay::providers::ProviderId;
use relay::store::{DatabaseUrl, DynStore, EndUser, StoredProviderKey};
use relay::upstream::{UpstreamTimeouts, Upstreams};
use relay::vault::{LocalKeyring, SealContext, Vault, VaultError};
use relay_tests::process::run_cli;
use relay_tests::{fake_keys, spawn_app, Backend, TestApp, TestDb};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use sqlx::Connection;
use uuid::Uuid;

/// `check_x => postgres_x, sqlite_x;` makes one test per backend. Multi-threaded, so rotation
/// and requests really run at the same time.
macro_rules! both_backends {
    ($($check:ident => $pg:ident, $lite:ident;)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $pg() {
                $check(Backend::Postgres).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $lite() {
                $check(Backend::Sqlite).await
            }
        )*
    };
}

both_backends! {
    check_tampered_bytes_do_not_open => postgres_tampered_bytes_do_not_open, sqlite_tampered_bytes_do_not_open;
    check_unknown_kek_version => postgres_unknown_kek_version, sqlite_unknown_kek_version;
    check_copied_bytes_do_not_open => postgres_copied_bytes_do_not_open, sqlite_copied_bytes_do_not_open;
    check_rotation_while_serving => postgres_rotation_while_serving, sqlite_rotation_while_serving;
    check_cli_kek_rotate => postgres_cli_kek_rotate, sqlite_cli_kek_rotate;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// A key service over the app's store with its own keyring, as `relay kek rotate` builds one.
fn key_service(store: &DynStore, master_keys: &str) -> KeyService {
    let ring = LocalKeyring::parse(&SecretString::from(master_keys.to_owned())).expect("valid keyring");
    let upstreams = Upstreams::new(&HashMap::new(), &UpstreamTimeouts::default()).expect("upstreams");
    KeyService::new(store.clone(), Vault::new(Arc::new(ring)), upstreams, false)
}

/// The app's keyring with a new v2 key in front: `v2:<new>,v1:<app's>`.
fn with_v2(app: &TestApp) -> String {
    format!("{},{}", LocalKeyring::generate_entry(2).expose_secret(), app.master_keys)
}

/// The plaintext `keys` opens for this end user, or the error code.
async fn open(keys: &KeyService, user: &EndUser, provider: ProviderId) -> Result<String, &'static str> {
    match keys.open(user, provider).await {
        Ok((_, secret)) => Ok(secret.expose_secret().to_owned()),
        Err(e) => Err(e.code()),
    }
}

/// Asserts that opening fails as undecryptable: a 500 with a stable code, not a panic.
async fn assert_undecryptable(keys: &KeyService, user: &EndUser, provider: ProviderId, why: &str) {
    assert_open_fails(keys, user, provider, "provider_key_undecryptable", why).await;
}

/// Asserts that opening fails because the key's master key version is not configured.
async fn assert_kek_missing(keys: &KeyService, user: &EndUser, provider: ProviderId, why: &str) {
    assert_open_fails(keys, user, provider, "master_key_unavailable", why).await;
}

async fn assert_open_fails(keys: &KeyService, user: &EndUser, provider: ProviderId, code: &str, why: &str) {
    let err = keys.open(user, provider).await.expect_err(why);
    assert_eq!(err.code(), code, "{why}: {err:?}");
    assert_eq!(err.status_code().as_u16(), 500, "{why}");
}

async fn row(store: &DynStore, user: &EndUser, provider: &str) -> StoredProviderKey {
    store.get_provider_key(user.id, provider).await.expect("store").expect("a stored key")
}

/// Every stored provider key row (KEK versions start at 1).
async fn all_rows(store: &DynStore) -> Vec<StoredProviderKey> {
    store.provider_keys_not_on_version(0, None, 100_000).await.expect("store")
}

/// Plain SQL on the app's database, bypassing the store.
enum Raw {
    Pg(sqlx::PgConnection),
    Lite(sqlx::SqliteConnection),
}

impl Raw {
    async fn connect(db: &TestDb) -> Self {
        match DatabaseUrl::parse(&db.url).expect("database url") {
            DatabaseUrl::Postgres(url) => Raw::Pg(sqlx::PgConnection::connect(&url).await.expect("connect")),
            DatabaseUrl::Sqlite(path) => {
                let options =
                    sqlx::sqlite::SqliteConnectOptions::new().filename(path).busy_timeout(Duration::from_secs(30));
                Raw::Lite(sqlx::SqliteConnection::connect_with(&options).await.expect("connect"))
            }
        }
    }

    /// Overwrites the sealed columns of one row; asserts that the row exists.
    async fn set_sealed(&mut self, id: Uuid, kek_version: i64, wrapped_dek: &[u8], ciphertext: &[u8]) {
        let done = match self {
            Raw::Pg(c) => sqlx::query(
                "UPDATE provider_keys SET kek_version = $2, wrapped_dek = $3, ciphertext = $4 WHERE id = $1",
            )
            .bind(id)
            .bind(i32::try_from(kek_version).expect("fits an INTEGER"))
            .bind(wrapped_dek)
            .bind(ciphertext)
            .execute(c)
            .await
            .expect("update")
            .rows_affected(),
            Raw::Lite(c) => sqlx::query(
                "UPDATE provider_keys SET kek_version = ?2, wrapped_dek = ?3, ciphertext = ?4 WHERE id = ?1",
            )
            .bind(id.to_string())
            .bind(kek_version)
            .bind(wrapped_dek)
            .bind(ciphertext)
            .execute(c)
            .await
            .expect("update")
            .rows_affected(),
        };
        assert_eq!(done, 1, "row {id} exists");
    }

    /// Moves one row (same id and bytes) to another owner and provider.
    async fn set_owner(&mut self, id: Uuid, tenant_id: Uuid, end_user_id: Uuid, provider: &str) {
        let done = match self {
            Raw::Pg(c) => {
                sqlx::query("UPDATE provider_keys SET tenant_id = $2, end_user_id = $3, provider = $4 WHERE id = $1")
                    .bind(id)
                    .bind(tenant_id)
                    .bind(end_user_id)
                    .bind(provider)
                    .execute(c)
                    .await
                    .expect("update")
                    .rows_affected()
            }
            Raw::Lite(c) => {
                sqlx::query("UPDATE provider_keys SET tenant_id = ?2, end_user_id = ?3, provider = ?4 WHERE id = ?1")
                    .bind(id.to_string())
                    .bind(tenant_id.to_string())
                    .bind(end_user_id.to_string())
                    .bind(provider)
                    .execute(c)
                    .await
                    .expect("update")
                    .rows_affected()
            }
        };
        assert_eq!(done, 1, "row {id} exists");
    }

    async fn restore(&mut self, original: &StoredProviderKey) {
        let s = &original.sealed;
        self.set_sealed(original.id, i64::from(s.kek_version), &s.wrapped_dek, &s.ciphertext).await;
        self.set_owner(original.id, original.tenant_id, original.end_user_id, &original.provider).await;
    }
}

/// Byte positions worth flipping: the nonce, the middle of the body, the tag at the end.
fn positions(len: usize) -> [usize; 3] {
    assert!(len > 2, "sealed data is never this short");
    [0, len / 2, len - 1]
}

/// A seed for this run: `RELAY_TEST_SEED` replays one; failures print it.
fn seed() -> u64 {
    std::env::var("RELAY_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random)
}

/// Runs a blocking `relay` invocation without stalling the runtime the app's pools run on.
async fn relay_cli(args: &[&str], env: &[(&str, &str)]) -> (std::process::ExitStatus, String, String) {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        // A directory without a .env file, so only `env` configures the command.
        run_cli(&args, &env, Some(&std::env::temp_dir()))
    })
    .await
    .expect("run relay")
}

// ---------------------------------------------------------------------------------------------
// a. Tampering

async fn check_tampered_bytes_do_not_open(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice_key = app.connect_new_key("alice", "openai").await;
    let bob_key = app.connect_new_key("bob", "openai").await;
    let (alice, bob) = (app.end_user("alice").await, app.end_user("bob").await);
    let keys = key_service(&app.store, &app.master_keys);
    assert_eq!(open(&keys, &alice, ProviderId::OpenAi).await, Ok(alice_key.clone()));

    let original = row(&app.store, &alice, "openai").await;
    let s = &original.sealed;
    let version = i64::from(s.kek_version);
    let mut raw = Raw::connect(&app.db).await;

    for i in positions(s.wrapped_dek.len()) {
        for mask in [0x01u8, 0x80] {
            let mut wrapped = s.wrapped_dek.clone();
            wrapped[i] ^= mask;
            raw.set_sealed(original.id, version, &wrapped, &s.ciphertext).await;
            assert_undecryptable(&keys, &alice, ProviderId::OpenAi, &format!("wrapped_dek[{i}] ^= {mask:#x}")).await;
            assert_eq!(open(&keys, &bob, ProviderId::OpenAi).await, Ok(bob_key.clone()), "bob's key still opens");
        }
    }
    for i in positions(s.ciphertext.len()) {
        for mask in [0x01u8, 0x80] {
            let mut ciphertext = s.ciphertext.clone();
            ciphertext[i] ^= mask;
            raw.set_sealed(original.id, version, &s.wrapped_dek, &ciphertext).await;
            assert_undecryptable(&keys, &alice, ProviderId::OpenAi, &format!("ciphertext[{i}] ^= {mask:#x}")).await;
            assert_eq!(open(&keys, &bob, ProviderId::OpenAi).await, Ok(bob_key.clone()), "bob's key still opens");
        }
    }
    // Truncated or emptied columns: still an error, never a panic.
    raw.set_sealed(original.id, version, &s.wrapped_dek, &s.ciphertext[..10]).await;
    assert_undecryptable(&keys, &alice, ProviderId::OpenAi, "truncated ciphertext").await;
    raw.set_sealed(original.id, version, &[], &s.ciphertext).await;
    assert_undecryptable(&keys, &alice, ProviderId::OpenAi, "empty wrapped_dek").await;
    raw.set_sealed(original.id, version, &s.wrapped_dek, &[]).await;
    assert_undecryptable(&keys, &alice, ProviderId::OpenAi, "empty ciphertext").await;

    // Put back, it opens again: the failures were the altered bytes, nothing else.
    raw.restore(&original).await;
    assert_eq!(open(&keys, &alice, ProviderId::OpenAi).await, Ok(alice_key));
    assert_eq!(open(&keys, &bob, ProviderId::OpenAi).await, Ok(bob_key));
}

async fn check_unknown_kek_version(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice_key = app.connect_new_key("alice", "openai").await;
    let bob_key = app.connect_new_key("bob", "openai").await;
    let (alice, bob) = (app.end_user("alice").await, app.end_user("bob").await);
    let keys = key_service(&app.store, &app.master_keys);
    let original = row(&app.store, &alice, "openai").await;
    let s = &original.sealed;
    assert_eq!(s.kek_version, 1);
    let mut raw = Raw::connect(&app.db).await;

    raw.set_sealed(original.id, 7, &s.wrapped_dek, &s.ciphertext).await;
    // An operator problem, said as one: not "ask the user to reconnect" (that would overwrite a
    // key that is still recoverable once the master key is configured).
    let err = keys.open(&alice, ProviderId::OpenAi).await.expect_err("kek_version 7 is not configured");
    assert_eq!(err.code(), "master_key_unavailable", "{err:?}");
    assert_eq!(err.status_code().as_u16(), 500);
    // The vault says which version is missing (that is what the server logs).
    let stored = row(&app.store, &alice, "openai").await;
    let ctx =
        SealContext { tenant_id: alice.tenant_id, end_user_id: alice.id, provider: "openai", record_id: stored.id };
    let err = keys.vault().open(&ctx, &stored.sealed).await.expect_err("v7 is not configured");
    assert_eq!(err, VaultError::UnknownKekVersion(7));
    assert!(err.to_string().contains("v7"), "the message names the version: {err}");
    assert_eq!(open(&keys, &bob, ProviderId::OpenAi).await, Ok(bob_key.clone()), "bob's key still opens");

    // A configured version that is not the one the data key was wrapped under: does not open.
    let both = key_service(&app.store, &with_v2(&app));
    raw.set_sealed(original.id, 2, &s.wrapped_dek, &s.ciphertext).await;
    assert_undecryptable(&both, &alice, ProviderId::OpenAi, "labelled v2, wrapped under v1").await;

    // Rotation reports the row as failed and leaves it (and only it) as it was.
    raw.set_sealed(original.id, 7, &s.wrapped_dek, &s.ciphertext).await;
    let report = both.rotate().await.expect("rotation runs");
    assert_eq!((report.rewrapped, report.failed), (1, 1), "{report:?}");
    assert_eq!(row(&app.store, &alice, "openai").await.sealed.kek_version, 7);
    assert_eq!(open(&both, &bob, ProviderId::OpenAi).await, Ok(bob_key));

    // An impossible stored version is reported as an error too, not a panic.
    raw.set_sealed(original.id, -1, &s.wrapped_dek, &s.ciphertext).await;
    let err = keys.open(&alice, ProviderId::OpenAi).await.expect_err("negative version");
    assert_eq!(err.status_code().as_u16(), 500, "{err:?}");

    raw.restore(&original).await;
    assert_eq!(open(&keys, &alice, ProviderId::OpenAi).await, Ok(alice_key));
}

// ---------------------------------------------------------------------------------------------
// b. Copying

async fn check_copied_bytes_do_not_open(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice_key = app.connect_new_key("alice", "openai").await;
    let bob_key = app.connect_new_key("bob", "openai").await;
    let (alice, bob) = (app.end_user("alice").await, app.end_user("bob").await);
    // Dave exists but has not connected a key yet.
    let _ = app.registration_token("dave", None).await;
    let dave = app.end_user("dave").await;

    // Another tenant with an end user of the same label, and one without a key.
    let (other_tenant, other_api_key) = app.other_tenant().await;
    let other_key = fake_keys::for_provider("openai");
    app.mock.accept(&other_key);
    let res = app.create_registration_token_as(&other_api_key, &json!({ "endUserLabel": "alice" })).await;
    assert_eq!(res.status(), 201, "token as the other tenant");
    let token: Value = res.json().await.expect("json");
    let res = app.connect(token["registrationToken"].as_str().expect("token"), "openai", &other_key).await;
    assert_eq!(res.status(), 200, "connect as the other tenant's alice");
    let res = app.create_registration_token_as(&other_api_key, &json!({ "endUserLabel": "erin" })).await;
    assert_eq!(res.status(), 201);
    let get = |label: &'static str| {
        let store = app.store.clone();
        async move { store.get_end_user(other_tenant, label).await.expect("store").expect("other tenant's user") }
    };
    let (other_alice, erin) = (get("alice").await, get("erin").await);
    assert_ne!(other_alice.id, alice.id);

    let keys = key_service(&app.store, &app.master_keys);
    let alice_row = row(&app.store, &alice, "openai").await;
    let bob_row = row(&app.store, &bob, "openai").await;
    let other_row = row(&app.store, &other_alice, "openai").await;
    let a = &alice_row.sealed;
    let version = i64::from(a.kek_version);
    let mut raw = Raw::connect(&app.db).await;

    // Alice's bytes onto bob's row (same tenant).
    raw.set_sealed(bob_row.id, version, &a.wrapped_dek, &a.ciphertext).await;
    assert_undecryptable(&keys, &bob, ProviderId::OpenAi, "alice's bytes on bob's row").await;
    assert_eq!(open(&keys, &alice, ProviderId::OpenAi).await, Ok(alice_key.clone()), "the original still opens");
    // Half copies: alice's data key with bob's ciphertext, and the reverse.
    raw.set_sealed(bob_row.id, version, &a.wrapped_dek, &bob_row.sealed.ciphertext).await;
    assert_undecryptable(&keys, &bob, ProviderId::OpenAi, "alice's wrapped_dek on bob's row").await;
    raw.set_sealed(bob_row.id, version, &bob_row.sealed.wrapped_dek, &a.ciphertext).await;
    assert_undecryptable(&keys, &bob, ProviderId::OpenAi, "alice's ciphertext on bob's row").await;
    raw.restore(&bob_row).await;
    assert_eq!(open(&keys, &bob, ProviderId::OpenAi).await, Ok(bob_key));

    // Alice's bytes onto the other tenant's alice: same label, same provider, same master key.
    raw.set_sealed(other_row.id, version, &a.wrapped_dek, &a.ciphertext).await;
    assert_undecryptable(&keys, &other_alice, ProviderId::OpenAi, "alice's bytes in another tenant").await;
    assert_eq!(open(&keys, &alice, ProviderId::OpenAi).await, Ok(alice_key.clone()), "the original still opens");
    raw.restore(&other_row).await;
    assert_eq!(open(&keys, &other_alice, ProviderId::OpenAi).await, Ok(other_key));

    // The whole row, record id included, moved to another owner or provider.
    raw.set_owner(alice_row.id, alice.tenant_id, dave.id, "openai").await;
    assert_undecryptable(&keys, &dave, ProviderId::OpenAi, "alice's row moved to dave").await;
    raw.set_owner(alice_row.id, other_tenant, erin.id, "openai").await;
    assert_undecryptable(&keys, &erin, ProviderId::OpenAi, "alice's row moved to another tenant").await;
    raw.set_owner(alice_row.id, alice.tenant_id, alice.id, "groq").await;
    assert_undecryptable(&keys, &alice, ProviderId::Groq, "alice's openai row relabelled groq").await;

    raw.restore(&alice_row).await;
    assert_eq!(open(&keys, &alice, ProviderId::OpenAi).await, Ok(alice_key));
}

// ---------------------------------------------------------------------------------------------
// c. Rotation while serving

const WORKERS: usize = 4;
const OPS_PER_WORKER: usize = 12;
const ROUNDS: usize = 3;

/// What a worker did to the labels it owns: the expected plaintext (None: deleted), and which
/// labels that existed when the round began it replaced or deleted.
struct WorkerOutcome {
    expected: BTreeMap<String, Option<String>>,
    touched: HashSet<String>,
}

/// Connects a fresh key for `label` through `keys` (the v2-aware service), as the connect page
/// of an upgraded server would; returns the plaintext.
async fn connect_via(app: &TestApp, keys: &KeyService, label: &str) -> String {
    let token = app.registration_token(label, None).await;
    let key = fake_keys::for_provider("openai");
    keys.connect(&token, "openai", &SecretString::from(key.clone()), None, None).await.expect("connect");
    key
}

/// One worker: seeded random opens, new connects, replacements and deletions, on its own labels
/// only, so what each open must return is known.
async fn worker(
    app: Arc<TestApp>,
    keys: KeyService,
    mut mine: BTreeMap<String, Option<String>>,
    mut rng: StdRng,
    tag: String,
) -> WorkerOutcome {
    let existing: HashSet<String> = mine.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k.clone()).collect();
    let mut touched = HashSet::new();
    let mut fresh = 0;
    for _ in 0..OPS_PER_WORKER {
        let live: Vec<String> = mine.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k.clone()).collect();
        let roll = rng.gen_range(0..100);
        if roll < 25 || live.is_empty() {
            let label = format!("{tag}-new-{fresh}");
            fresh += 1;
            let key = connect_via(&app, &keys, &label).await;
            mine.insert(label, Some(key));
            continue;
        }
        let label = live[rng.gen_range(0..live.len())].clone();
        let user = app.end_user(&label).await;
        if roll < 75 {
            let want = mine[&label].clone().expect("live");
            assert_eq!(open(&keys, &user, ProviderId::OpenAi).await, Ok(want), "{tag}: open {label} during rotation");
        } else if roll < 92 {
            let key = connect_via(&app, &keys, &label).await;
            mine.insert(label.clone(), Some(key));
            if existing.contains(&label) {
                touched.insert(label);
            }
        } else {
            let res = app.delete_key(&label, "openai").await;
            assert_eq!(res.status(), 200, "{tag}: delete {label}");
            mine.insert(label.clone(), None);
            if existing.contains(&label) {
                touched.insert(label);
            }
        }
        if rng.gen_bool(0.3) {
            tokio::task::yield_now().await;
        }
    }
    WorkerOutcome { expected: mine, touched }
}

async fn check_rotation_while_serving(backend: Backend) {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let app = Arc::new(spawn_app(backend).await);
    let v2_keys = key_service(&app.store, &with_v2(&app));
    let v1_keys = key_service(&app.store, &app.master_keys);

    // label -> plaintext (None once deleted); every key is openai.
    let mut expected: BTreeMap<String, Option<String>> = BTreeMap::new();
    for i in 0..30 {
        let label = format!("user-{i}");
        let key = app.connect_new_key(&label, "openai").await;
        expected.insert(label, Some(key));
    }

    for round in 0..ROUNDS {
        if round > 0 {
            // Keys connected through a server that still runs on v1 alone.
            for i in 0..8 {
                let label = format!("r{round}-v1-{i}");
                let key = app.connect_new_key(&label, "openai").await;
                expected.insert(label, Some(key));
            }
        }
        let before: HashMap<Uuid, StoredProviderKey> =
            all_rows(&app.store).await.into_iter().map(|r| (r.id, r)).collect();
        let on_v1 = before.values().filter(|r| r.sealed.kek_version == 1).count() as u64;
        assert!(on_v1 >= 8, "seed {seed} round {round}: something to rotate");

        // Two rotations (say, two operators) and the workers, all at once.
        let rotations: Vec<_> = (0..2)
            .map(|_| {
                let keys = v2_keys.clone();
                let delay = Duration::from_millis(rng.gen_range(0..20));
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    keys.rotate().await
                })
            })
            .collect();
        let mut shares: Vec<BTreeMap<String, Option<String>>> = vec![BTreeMap::new(); WORKERS];
        for (label, key) in &expected {
            shares[rng.gen_range(0..WORKERS)].insert(label.clone(), key.clone());
        }
        let workers: Vec<_> = shares
            .into_iter()
            .enumerate()
            .map(|(w, mine)| {
                let worker_rng = StdRng::seed_from_u64(rng.gen());
                tokio::spawn(worker(app.clone(), v2_keys.clone(), mine, worker_rng, format!("r{round}w{w}")))
            })
            .collect();

        let mut touched = 0;
        for handle in workers {
            let outcome = handle.await.unwrap_or_else(|e| panic!("seed {seed} round {round}: worker failed: {e}"));
            touched += outcome.touched.len() as u64;
            expected.extend(outcome.expected);
        }
        let mut rewrapped = 0;
        for handle in rotations {
            let report = handle.await.expect("rotation task").expect("rotation");
            assert_eq!(report.failed, 0, "seed {seed} round {round}: {report:?}");
            rewrapped += report.rewrapped;
        }
        // Each v1 row is re-wrapped at most once; only rows replaced or deleted meanwhile may be missed.
        assert!(rewrapped <= on_v1, "seed {seed} round {round}: {rewrapped} re-wraps of {on_v1} rows");
        assert!(rewrapped + touched >= on_v1, "seed {seed} round {round}: {rewrapped} + {touched} < {on_v1}");

        // Every row is on v2, every key opens with its plaintext, deleted ones are gone.
        let rows = all_rows(&app.store).await;
        let versions: Vec<_> = rows.iter().filter(|r| r.sealed.kek_version != 2).map(|r| r.id).collect();
        assert!(versions.is_empty(), "seed {seed} round {round}: rows left off v2: {versions:?}");
        assert_eq!(rows.len(), expected.values().filter(|v| v.is_some()).count(), "seed {seed} round {round}");
        for (label, key) in &expected {
            let user = app.end_user(label).await;
            let got = open(&v2_keys, &user, ProviderId::OpenAi).await;
            match key {
                Some(key) => assert_eq!(got.as_ref(), Ok(key), "seed {seed} round {round}: {label}"),
                None => assert_eq!(got, Err("enduser_key_missing"), "seed {seed} round {round}: {label}"),
            }
        }
        // Rows that survived the round untouched kept their id and ciphertext: only the DEK moved.
        for r in &rows {
            if let Some(old) = before.get(&r.id) {
                assert_eq!(r.sealed.ciphertext, old.sealed.ciphertext, "seed {seed}: ciphertext of {}", r.id);
            }
        }
        // Without v2 the keys no longer open: they really were re-wrapped.
        let (label, _) = expected.iter().find(|(_, v)| v.is_some()).expect("a live key");
        assert_kek_missing(&v1_keys, &app.end_user(label).await, ProviderId::OpenAi, "v1 alone after rotation").await;
    }
}

// ---------------------------------------------------------------------------------------------
// d. The CLI

async fn check_cli_kek_rotate(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut expected = Vec::new();
    for (label, provider) in [("alice", "openai"), ("alice", "anthropic"), ("bob", "openai"), ("carol", "groq")] {
        expected.push((label, provider, app.connect_new_key(label, provider).await));
    }
    let mut before = all_rows(&app.store).await;
    before.sort_by_key(|r| r.id);
    assert_eq!(before.len(), 4);
    assert!(before.iter().all(|r| r.sealed.kek_version == 1));

    // Only an unknown key: every row fails, the command says so and exits non-zero, nothing changes.
    let v3 = LocalKeyring::generate_entry(3);
    let env = [("DATABASE_URL", app.db.url.as_str()), ("RELAY_MASTER_KEYS", v3.expose_secret())];
    let (status, stdout, stderr) = relay_cli(&["kek", "rotate", "--json"], &env).await;
    assert!(!status.success(), "v3 alone must fail: {stdout} {stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).expect("JSON report even on failure");
    let signing = json!({ "rewrapped": 0, "failed": 1 });
    let want = json!({ "kekVersion": 3, "rewrapped": 0, "skipped": 0, "failed": 4, "sessionSigningKeys": signing,
        "webhookSecrets": { "rewrapped": 0, "failed": 0 } });
    assert_eq!(report, want, "{stderr}");
    assert!(stderr.contains("could not be re-wrapped"), "the error says what happened: {stderr}");
    assert!(stderr.contains("master key v1"), "the log names the missing master key version: {stderr}");
    let mut unchanged = all_rows(&app.store).await;
    unchanged.sort_by_key(|r| r.id);
    assert_eq!(unchanged, before, "a failed rotation alters no row");

    // v2 in front of v1: everything is re-wrapped, exit 0.
    let spec = with_v2(&app);
    let env = [("DATABASE_URL", app.db.url.as_str()), ("RELAY_MASTER_KEYS", spec.as_str())];
    let (status, stdout, stderr) = relay_cli(&["kek", "rotate", "--json"], &env).await;
    assert!(status.success(), "rotation failed: {stdout} {stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).expect("JSON report");
    let signing = json!({ "rewrapped": 1, "failed": 0 });
    let want = json!({ "kekVersion": 2, "rewrapped": 4, "skipped": 0, "failed": 0, "sessionSigningKeys": signing,
        "webhookSecrets": { "rewrapped": 0, "failed": 0 } });
    assert_eq!(report, want);

    let mut after = all_rows(&app.store).await;
    after.sort_by_key(|r| r.id);
    assert_eq!(after.len(), before.len());
    for (new, old) in after.iter().zip(&before) {
        assert_eq!(new.sealed.kek_version, 2);
        assert_eq!((new.id, &new.sealed.ciphertext), (old.id, &old.sealed.ciphertext), "only the DEK is re-wrapped");
        assert_ne!(new.sealed.wrapped_dek, old.sealed.wrapped_dek);
    }
    let v2_keys = key_service(&app.store, &spec);
    let v1_keys = key_service(&app.store, &app.master_keys);
    for (label, provider, key) in &expected {
        let user = app.end_user(label).await;
        let provider: ProviderId = provider.parse().expect("provider");
        assert_eq!(open(&v2_keys, &user, provider).await.as_ref(), Ok(key), "{label} {provider}");
        assert_kek_missing(&v1_keys, &user, provider, "v1 alone after rotation").await;
    }
    let audit = app.store.list_audit(None, 1).await.expect("audit");
    assert_eq!(audit[0].action, "kek.rotate");
    assert_eq!(audit[0].target.as_deref(), Some("v2 rewrapped:4 failed:0"));

    // Running it again finds nothing to do.
    let (status, stdout, stderr) = relay_cli(&["kek", "rotate", "--json"], &env).await;
    assert!(status.success(), "{stdout} {stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).expect("JSON report");
    assert_eq!(report["rewrapped"], 0);
    assert_eq!(report["failed"], 0);
}

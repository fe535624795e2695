//! The `Store` conformance suite: every check runs against PostgreSQL and SQLite, each on a fresh
//! database, so both backends keep exactly the same contract.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use relay::auth::session::{signing_key_context, SIGNING_KEY_NAME};
use relay::domain::key_health::{KeyHealth, KeyStatus};
use relay::providers::{self, ProviderId};
use relay::store::{
    ApiKeyRecord, AuditEvent, DatabaseUrl, DynStore, NewRegistrationToken, ProviderKeySummary, RedeemError,
    RegistrationTokenInfo, SessionSigningKey, StoredProviderKey, Tenant, TenantSettings,
};
use relay::tenants::generate_app_id;
use relay::vault::{LocalKeyring, SealContext, Vault, VaultError};
use relay_tests::{fake_keys, Backend, TestDb};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

/// Opens a store on a fresh database, migrates it and runs `check`; the database is dropped after.
async fn run<F, Fut>(backend: Backend, check: F) -> anyhow::Result<()>
where
    F: FnOnce(DynStore) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let db = TestDb::new(backend).await;
    let url = DatabaseUrl::parse(&db.url).map_err(anyhow::Error::msg)?;
    let store = relay::store::connect(&url).await?;
    store.migrate().await?;
    let expected = match backend {
        Backend::Postgres => "postgres",
        Backend::Sqlite => "sqlite",
    };
    assert_eq!(store.backend(), expected);
    let result = check(store).await;
    // The store (and its pool) is gone by now: drop the database last.
    drop(db);
    result
}

/// `check_x => postgres_x, sqlite_x;` makes one test per backend.
macro_rules! conformance {
    ($($check:ident => $pg:ident, $lite:ident;)*) => {
        $(
            #[tokio::test]
            async fn $pg() -> anyhow::Result<()> {
                run(Backend::Postgres, $check).await
            }

            #[tokio::test]
            async fn $lite() -> anyhow::Result<()> {
                run(Backend::Sqlite, $check).await
            }
        )*
    };
}

/// Every check, handed to `$m`.
macro_rules! all_checks {
    ($m:ident) => {
        $m! {
            check_tenants => postgres_tenants, sqlite_tenants;
            check_api_keys => postgres_api_keys, sqlite_api_keys;
            check_end_users => postgres_end_users, sqlite_end_users;
            check_concurrent_upserts => postgres_concurrent_upserts, sqlite_concurrent_upserts;
            check_registration_tokens => postgres_registration_tokens, sqlite_registration_tokens;
            check_redeem_for_another_end_user => postgres_redeem_for_another_end_user, sqlite_redeem_for_another_end_user;
            check_concurrent_redeem => postgres_concurrent_redeem, sqlite_concurrent_redeem;
            check_provider_keys => postgres_provider_keys, sqlite_provider_keys;
            check_delete_end_user_cascades => postgres_delete_end_user_cascades, sqlite_delete_end_user_cascades;
            check_rotation_paging => postgres_rotation_paging, sqlite_rotation_paging;
            check_rewrap_compare_and_set => postgres_rewrap_compare_and_set, sqlite_rewrap_compare_and_set;
            check_audit => postgres_audit, sqlite_audit;
            check_migrate_twice => postgres_migrate_twice, sqlite_migrate_twice;
            check_timestamps_round_trip => postgres_timestamps_round_trip, sqlite_timestamps_round_trip;
            check_tenant_settings => postgres_tenant_settings, sqlite_tenant_settings;
            check_session_generations => postgres_session_generations, sqlite_session_generations;
            check_upsert_provider_key => postgres_upsert_provider_key, sqlite_upsert_provider_key;
            check_signing_key_insert_race => postgres_signing_key_insert_race, sqlite_signing_key_insert_race;
            check_signing_key_rewrap => postgres_signing_key_rewrap, sqlite_signing_key_rewrap;
            check_migration_backfills_app_ids => postgres_migration_backfills_app_ids, sqlite_migration_backfills_app_ids;
            check_usage_batches => postgres_usage_batches, sqlite_usage_batches;
            check_usage_cost => postgres_usage_cost, sqlite_usage_cost;
            check_provider_key_health => postgres_provider_key_health, sqlite_provider_key_health;
            check_webhook_outbox => postgres_webhook_outbox, sqlite_webhook_outbox;
            check_webhook_concurrent_claims => postgres_webhook_concurrent_claims, sqlite_webhook_concurrent_claims;
            check_webhook_claims_with_skewed_clocks => postgres_webhook_claims_with_skewed_clocks, sqlite_webhook_claims_with_skewed_clocks;
            check_console => postgres_console, sqlite_console;
        }
    };
}

all_checks!(conformance);

#[path = "store_conformance/console.rs"]
mod console_checks;
use console_checks::check_console;

#[path = "store_conformance/webhooks.rs"]
mod webhook_checks;
use webhook_checks::{check_webhook_claims_with_skewed_clocks, check_webhook_concurrent_claims, check_webhook_outbox};

/// The same contract through the caching store `relay serve` puts in front of the database: a
/// write through it must never leave a stale read behind.
mod through_the_cache {
    use super::*;

    async fn run<F, Fut>(backend: Backend, check: F) -> anyhow::Result<()>
    where
        F: FnOnce(DynStore) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        super::run(backend, |store| {
            let cached: DynStore =
                Arc::new(relay::store::cached::CachedStore::new(store, std::time::Duration::from_secs(600)));
            check(cached)
        })
        .await
    }

    all_checks!(conformance);
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A fixed instant with whole milliseconds (both backends keep at least those), plus `ms`.
fn t(ms: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 2, 29, 12, 34, 56).single().expect("valid date")
        + Duration::milliseconds(789)
        + Duration::milliseconds(ms)
}

fn minutes(n: i64) -> i64 {
    n * 60_000
}

fn vault(spec: &str) -> Vault {
    Vault::new(Arc::new(LocalKeyring::parse(&SecretString::from(spec.to_owned())).expect("valid keyring")))
}

/// A v1 vault, and a v2 vault that still knows that v1 key (the keyring after adding v2).
fn vaults() -> (Vault, Vault) {
    let v1 = LocalKeyring::generate_entry(1);
    let v2 = LocalKeyring::generate_entry(2);
    (vault(v1.expose_secret()), vault(&format!("{},{}", v2.expose_secret(), v1.expose_secret())))
}

async fn tenant(store: &DynStore, name: &str, created_at: DateTime<Utc>) -> anyhow::Result<Tenant> {
    let tenant = Tenant { id: Uuid::new_v4(), name: name.to_owned(), app_id: generate_app_id(), created_at };
    store.create_tenant(&tenant).await?;
    Ok(tenant)
}

fn api_key(tenant_id: Uuid, created_at: DateTime<Utc>) -> ApiKeyRecord {
    let public_id = Uuid::new_v4().simple().to_string()[..12].to_owned();
    ApiKeyRecord {
        id: Uuid::new_v4(),
        tenant_id,
        public_id,
        secret_hash: rand::random::<[u8; 32]>().to_vec(),
        last4: "Ab3d".into(),
        name: Some("backend".into()),
        created_at,
        revoked_at: None,
    }
}

fn token(tenant_id: Uuid, end_user_id: Uuid, created_at: DateTime<Utc>, ttl_ms: i64) -> NewRegistrationToken {
    NewRegistrationToken {
        id: Uuid::new_v4(),
        tenant_id,
        end_user_id,
        token_hash: rand::random(),
        provider: None,
        created_at,
        expires_at: created_at + Duration::milliseconds(ttl_ms),
    }
}

/// A provider key row sealed by a real vault, and its plaintext.
async fn sealed_row(
    vault: &Vault,
    tenant_id: Uuid,
    end_user_id: Uuid,
    provider: ProviderId,
    created_at: DateTime<Utc>,
) -> anyhow::Result<(StoredProviderKey, String)> {
    let plaintext = fake_keys::for_provider(provider.as_str());
    let id = Uuid::new_v4();
    let ctx = SealContext { tenant_id, end_user_id, provider: provider.as_str(), record_id: id };
    let sealed = vault.seal(&ctx, &SecretString::from(plaintext.clone())).await?;
    let row = StoredProviderKey {
        id,
        tenant_id,
        end_user_id,
        provider: provider.as_str().to_owned(),
        fingerprint: providers::fingerprint(provider, &plaintext),
        sealed,
        created_at,
        last_used_at: None,
        base_url: None,
        monthly_cap: None,
        health: KeyHealth::default(),
    };
    Ok((row, plaintext))
}

/// Opens a stored row with its own context.
async fn open(vault: &Vault, row: &StoredProviderKey) -> Result<String, VaultError> {
    let ctx = SealContext {
        tenant_id: row.tenant_id,
        end_user_id: row.end_user_id,
        provider: &row.provider,
        record_id: row.id,
    };
    vault.open(&ctx, &row.sealed).await.map(|s| s.expose_secret().to_owned())
}

/// Stores `row` for its end user through a fresh registration token, as connecting does.
async fn store_key(store: &DynStore, row: &StoredProviderKey, now: DateTime<Utc>) -> anyhow::Result<()> {
    let tok = token(row.tenant_id, row.end_user_id, now, minutes(15));
    store.insert_registration_token(&tok).await?;
    let redeemed = store.redeem_registration_token(&tok.token_hash, now, row).await?;
    assert_eq!(redeemed, Ok(()), "redeeming a fresh token");
    Ok(())
}

/// Every stored provider key row (KEK versions start at 1, so none is on version 0).
async fn all_keys(store: &DynStore) -> anyhow::Result<Vec<StoredProviderKey>> {
    Ok(store.provider_keys_not_on_version(0, None, 10_000).await?)
}

fn summary(row: &StoredProviderKey) -> ProviderKeySummary {
    ProviderKeySummary {
        provider: row.provider.clone(),
        fingerprint: row.fingerprint.clone(),
        created_at: row.created_at,
        last_used_at: row.last_used_at,
        monthly_cap: row.monthly_cap,
        health: row.health.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Checks

async fn check_tenants(store: DynStore) -> anyhow::Result<()> {
    let a = tenant(&store, "Acme", t(0)).await?;
    let b = tenant(&store, "Globex", t(1)).await?;
    assert_eq!(store.get_tenant(a.id).await?, Some(a.clone()));
    assert_eq!(store.get_tenant(b.id).await?, Some(b.clone()));
    assert_eq!(store.get_tenant(Uuid::new_v4()).await?, None, "unknown tenant id");
    let duplicate = Tenant { name: "Acme again".into(), ..a.clone() };
    assert!(store.create_tenant(&duplicate).await.is_err(), "a tenant id is unique");
    let same_app = Tenant { id: Uuid::new_v4(), name: "Copycat".into(), ..b.clone() };
    assert!(store.create_tenant(&same_app).await.is_err(), "an app id is unique");
    assert_eq!(store.get_tenant(a.id).await?, Some(a), "the failed insert changed nothing");
    Ok(())
}

async fn check_api_keys(store: DynStore) -> anyhow::Result<()> {
    let a = tenant(&store, "Acme", t(0)).await?;
    let b = tenant(&store, "Globex", t(0)).await?;
    // Inserted out of order, with a tie on created_at that the id breaks.
    let k_late = api_key(a.id, t(30));
    let k_early = api_key(a.id, t(10));
    let k_tie1 = api_key(a.id, t(20));
    let k_tie2 = ApiKeyRecord { name: None, ..api_key(a.id, t(20)) };
    let k_other = api_key(b.id, t(5));
    for k in [&k_late, &k_early, &k_tie1, &k_tie2, &k_other] {
        store.insert_api_key(k).await?;
    }

    assert_eq!(store.find_api_key(&k_late.public_id).await?, Some(k_late.clone()));
    assert_eq!(store.find_api_key(&k_tie2.public_id).await?, Some(k_tie2.clone()), "a key without a name");
    assert_eq!(store.find_api_key("nosuchkey000").await?, None);

    let mut ties = [k_tie1.clone(), k_tie2.clone()];
    ties.sort_by_key(|k| k.id);
    let expected = vec![k_early.clone(), ties[0].clone(), ties[1].clone(), k_late.clone()];
    assert_eq!(store.list_api_keys(a.id).await?, expected, "listed by created_at, then id");
    assert_eq!(store.list_api_keys(b.id).await?, vec![k_other.clone()]);
    assert_eq!(store.list_api_keys(Uuid::new_v4()).await?, vec![]);

    let dup = ApiKeyRecord { id: Uuid::new_v4(), ..k_other.clone() };
    assert!(store.insert_api_key(&dup).await.is_err(), "public ids are unique");

    // Another tenant cannot revoke it, and that attempt leaves it live.
    assert!(!store.revoke_api_key(b.id, &k_late.public_id, t(40)).await?);
    assert_eq!(store.find_api_key(&k_late.public_id).await?.and_then(|k| k.revoked_at), None);

    assert!(store.revoke_api_key(a.id, &k_late.public_id, t(50)).await?, "first revoke");
    assert!(!store.revoke_api_key(a.id, &k_late.public_id, t(60)).await?, "second revoke");
    let revoked = store.find_api_key(&k_late.public_id).await?.expect("still stored");
    assert_eq!(revoked.revoked_at, Some(t(50)), "the second revoke did not move revoked_at");
    assert!(!store.revoke_api_key(a.id, "nosuchkey000", t(60)).await?);
    let others: Vec<_> = store.list_api_keys(a.id).await?.into_iter().filter(|k| k.id != k_late.id).collect();
    assert!(others.iter().all(|k| k.revoked_at.is_none()), "only that key was revoked");
    Ok(())
}

async fn check_end_users(store: DynStore) -> anyhow::Result<()> {
    let a = tenant(&store, "Acme", t(0)).await?;
    let b = tenant(&store, "Globex", t(0)).await?;

    let alice = store.upsert_end_user(a.id, "alice", t(10)).await?;
    assert_eq!((alice.tenant_id, alice.label.as_str(), alice.paid, alice.created_at), (a.id, "alice", true, t(10)));
    let again = store.upsert_end_user(a.id, "alice", t(20)).await?;
    assert_eq!(again, alice, "same id and the first created_at");
    assert_eq!(store.get_end_user(a.id, "alice").await?, Some(alice.clone()));

    let bob = store.upsert_end_user(a.id, "bob", t(30)).await?;
    assert_ne!(bob.id, alice.id);

    let alice_b = store.upsert_end_user(b.id, "alice", t(40)).await?;
    assert_ne!(alice_b.id, alice.id, "the same label in two tenants is two end users");
    assert_eq!(alice_b.tenant_id, b.id);
    assert_eq!(store.get_end_user(b.id, "alice").await?, Some(alice_b.clone()));
    assert_eq!(store.get_end_user(a.id, "alice").await?, Some(alice), "tenant A's alice is unchanged");

    assert_eq!(store.get_end_user(a.id, "carol").await?, None);
    assert_eq!(store.get_end_user(b.id, "bob").await?, None, "labels do not leak across tenants");

    // The tier: only this end user of this tenant changes, and only the tenant's own.
    store.set_end_user_paid(a.id, bob.id, false).await?;
    store.set_end_user_paid(b.id, alice_b.id, false).await?;
    assert!(!store.get_end_user(a.id, "bob").await?.expect("bob").paid);
    assert!(store.get_end_user(a.id, "alice").await?.expect("alice").paid);
    store.set_end_user_paid(b.id, bob.id, true).await?;
    assert!(!store.get_end_user(a.id, "bob").await?.expect("bob").paid, "another tenant cannot change it");
    store.set_end_user_paid(a.id, bob.id, true).await?;
    assert!(store.get_end_user(a.id, "bob").await?.expect("bob").paid);
    Ok(())
}

async fn check_concurrent_upserts(store: DynStore) -> anyhow::Result<()> {
    let a = tenant(&store, "Acme", t(0)).await?;
    let results =
        futures::future::join_all((0..8).map(|i| store.upsert_end_user(a.id, "racer", t(i)))).await.into_iter();
    let ids = results.map(|r| r.map(|u| u.id)).collect::<Result<HashSet<_>, _>>()?;
    assert_eq!(ids.len(), 1, "concurrent upserts of one label make one end user");
    Ok(())
}

async fn check_registration_tokens(store: DynStore) -> anyhow::Result<()> {
    let (vault, _) = vaults();
    let a = tenant(&store, "Acme", t(0)).await?;
    let alice = store.upsert_end_user(a.id, "alice", t(0)).await?;

    let tok = NewRegistrationToken { provider: Some("openai".into()), ..token(a.id, alice.id, t(0), minutes(15)) };
    store.insert_registration_token(&tok).await?;
    let info = RegistrationTokenInfo {
        id: tok.id,
        tenant_id: a.id,
        tenant_name: "Acme".into(),
        end_user_id: alice.id,
        end_user_label: "alice".into(),
        provider: Some("openai".into()),
        expires_at: tok.expires_at,
        used_at: None,
    };
    assert_eq!(store.find_registration_token(&tok.token_hash).await?, Some(info.clone()));
    assert_eq!(store.find_registration_token(&rand::random()).await?, None);

    // Redeeming stores the key and marks the token used.
    let (row, plaintext) = sealed_row(&vault, a.id, alice.id, ProviderId::OpenAi, t(minutes(1))).await?;
    assert_eq!(store.redeem_registration_token(&tok.token_hash, t(minutes(1)), &row).await?, Ok(()));
    let stored = store.get_provider_key(alice.id, "openai").await?.expect("stored");
    assert_eq!(stored, row);
    assert_eq!(open(&vault, &stored).await, Ok(plaintext.clone()));
    let used = store.find_registration_token(&tok.token_hash).await?.expect("token kept");
    assert_eq!(used, RegistrationTokenInfo { used_at: Some(t(minutes(1))), ..info });

    // Used: refused, and the stored key stays.
    let (other, _) = sealed_row(&vault, a.id, alice.id, ProviderId::OpenAi, t(minutes(2))).await?;
    assert_eq!(store.redeem_registration_token(&tok.token_hash, t(minutes(2)), &other).await?, Err(RedeemError::Used));
    // Used wins over expired.
    assert_eq!(store.redeem_registration_token(&tok.token_hash, t(minutes(60)), &other).await?, Err(RedeemError::Used));

    // Expired, including exactly at expires_at; the token stays unused.
    let short = token(a.id, alice.id, t(0), minutes(1));
    store.insert_registration_token(&short).await?;
    assert_eq!(
        store.redeem_registration_token(&short.token_hash, t(minutes(2)), &other).await?,
        Err(RedeemError::Expired)
    );
    assert_eq!(
        store.redeem_registration_token(&short.token_hash, short.expires_at, &other).await?,
        Err(RedeemError::Expired),
        "a token is expired at expires_at"
    );
    let short_info = store.find_registration_token(&short.token_hash).await?.expect("kept");
    assert_eq!(short_info.used_at, None);

    // Unknown.
    assert_eq!(
        store.redeem_registration_token(&rand::random(), t(minutes(2)), &other).await?,
        Err(RedeemError::NotFound)
    );

    assert_eq!(all_keys(&store).await?, vec![row], "only the first redemption stored anything");
    Ok(())
}

async fn check_redeem_for_another_end_user(store: DynStore) -> anyhow::Result<()> {
    let (vault, _) = vaults();
    let a = tenant(&store, "Acme", t(0)).await?;
    let b = tenant(&store, "Globex", t(0)).await?;
    let alice = store.upsert_end_user(a.id, "alice", t(0)).await?;
    let bob = store.upsert_end_user(a.id, "bob", t(0)).await?;
    let mallory = store.upsert_end_user(b.id, "mallory", t(0)).await?;

    let tok = token(a.id, alice.id, t(0), minutes(15));
    store.insert_registration_token(&tok).await?;

    // Alice's token with a key for bob (same tenant) or for another tenant's user: refused.
    let (for_bob, _) = sealed_row(&vault, a.id, bob.id, ProviderId::OpenAi, t(1)).await?;
    assert_eq!(store.redeem_registration_token(&tok.token_hash, t(1), &for_bob).await?, Err(RedeemError::NotFound));
    let (for_mallory, _) = sealed_row(&vault, b.id, mallory.id, ProviderId::OpenAi, t(1)).await?;
    assert_eq!(store.redeem_registration_token(&tok.token_hash, t(1), &for_mallory).await?, Err(RedeemError::NotFound));
    assert!(all_keys(&store).await?.is_empty(), "nothing was stored");
    let info = store.find_registration_token(&tok.token_hash).await?.expect("kept");
    assert_eq!(info.used_at, None, "the token was not consumed");

    // It still works for its own end user.
    let (for_alice, _) = sealed_row(&vault, a.id, alice.id, ProviderId::OpenAi, t(2)).await?;
    assert_eq!(store.redeem_registration_token(&tok.token_hash, t(2), &for_alice).await?, Ok(()));
    assert_eq!(all_keys(&store).await?, vec![for_alice]);
    Ok(())
}

async fn check_concurrent_redeem(store: DynStore) -> anyhow::Result<()> {
    let (vault, _) = vaults();
    let a = tenant(&store, "Acme", t(0)).await?;
    let alice = store.upsert_end_user(a.id, "alice", t(0)).await?;
    let tok = token(a.id, alice.id, t(0), minutes(15));
    store.insert_registration_token(&tok).await?;
    let mut rows = Vec::new();
    for i in 0..8 {
        rows.push(sealed_row(&vault, a.id, alice.id, ProviderId::OpenAi, t(i + 1)).await?.0);
    }
    let outcomes =
        futures::future::join_all(rows.iter().map(|row| store.redeem_registration_token(&tok.token_hash, t(100), row)))
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
    let winners: Vec<_> = rows.iter().zip(&outcomes).filter(|(_, o)| o.is_ok()).map(|(r, _)| r.clone()).collect();
    assert_eq!(winners.len(), 1, "exactly one redemption wins: {outcomes:?}");
    assert!(outcomes.iter().filter(|o| o.is_err()).all(|o| *o == Err(RedeemError::Used)), "{outcomes:?}");
    assert_eq!(all_keys(&store).await?, winners, "the winner's key is the one stored");
    Ok(())
}

async fn check_provider_keys(store: DynStore) -> anyhow::Result<()> {
    let (vault, _) = vaults();
    let a = tenant(&store, "Acme", t(0)).await?;
    let alice = store.upsert_end_user(a.id, "alice", t(0)).await?;
    let bob = store.upsert_end_user(a.id, "bob", t(0)).await?;

    let (first, first_plain) = sealed_row(&vault, a.id, alice.id, ProviderId::OpenAi, t(10)).await?;
    store_key(&store, &first, t(10)).await?;
    store.touch_provider_key(first.id, t(15)).await?;
    let touched = store.get_provider_key(alice.id, "openai").await?.expect("stored");
    assert_eq!(touched.last_used_at, Some(t(15)));

    // A second redemption for the same user and provider replaces the row.
    let (second, second_plain) = sealed_row(&vault, a.id, alice.id, ProviderId::OpenAi, t(20)).await?;
    assert_ne!(second.fingerprint, first.fingerprint);
    store_key(&store, &second, t(20)).await?;
    let replaced = store.get_provider_key(alice.id, "openai").await?.expect("stored");
    assert_eq!(replaced, second, "new id, fingerprint and bytes; last_used_at reset");
    assert_eq!(open(&vault, &replaced).await, Ok(second_plain));
    assert_ne!(open(&vault, &replaced).await, Ok(first_plain));
    assert_eq!(all_keys(&store).await?.len(), 1, "the old row is gone");

    let (anthropic, _) = sealed_row(&vault, a.id, alice.id, ProviderId::Anthropic, t(30)).await?;
    store_key(&store, &anthropic, t(30)).await?;
    let (bobs, _) = sealed_row(&vault, a.id, bob.id, ProviderId::OpenAi, t(40)).await?;
    store_key(&store, &bobs, t(40)).await?;
    assert_eq!(store.list_provider_keys(alice.id).await?, vec![summary(&anthropic), summary(&second)], "by provider");
    assert_eq!(store.list_provider_keys(bob.id).await?, vec![summary(&bobs)]);
    assert_eq!(store.list_provider_keys(Uuid::new_v4()).await?, vec![]);
    assert_eq!(store.get_provider_key(alice.id, "groq").await?, None);
    assert_eq!(store.get_provider_key(Uuid::new_v4(), "openai").await?, None);

    store.touch_provider_key(second.id, t(50)).await?;
    store.touch_provider_key(Uuid::new_v4(), t(50)).await?; // no such row: a no-op
    let used = StoredProviderKey { last_used_at: Some(t(50)), ..second.clone() };
    assert_eq!(store.get_provider_key(alice.id, "openai").await?, Some(used.clone()));
    assert_eq!(store.list_provider_keys(alice.id).await?, vec![summary(&anthropic), summary(&used)]);
    assert_eq!(store.get_provider_key(bob.id, "openai").await?, Some(bobs.clone()), "bob's key untouched");

    assert!(!store.delete_provider_key(bob.id, "anthropic").await?, "bob has no anthropic key");
    assert!(store.delete_provider_key(alice.id, "openai").await?);
    assert!(!store.delete_provider_key(alice.id, "openai").await?, "already deleted");
    assert_eq!(store.get_provider_key(alice.id, "openai").await?, None);
    assert_eq!(store.list_provider_keys(alice.id).await?, vec![summary(&anthropic)]);
    assert_eq!(store.get_provider_key(bob.id, "openai").await?, Some(bobs));
    Ok(())
}

async fn check_delete_end_user_cascades(store: DynStore) -> anyhow::Result<()> {
    let (vault, _) = vaults();
    let a = tenant(&store, "Acme", t(0)).await?;
    let b = tenant(&store, "Globex", t(0)).await?;
    let alice = store.upsert_end_user(a.id, "alice", t(0)).await?;
    let bob = store.upsert_end_user(a.id, "bob", t(0)).await?;
    let alice_b = store.upsert_end_user(b.id, "alice", t(0)).await?;

    let redeemed = token(a.id, alice.id, t(0), minutes(15));
    store.insert_registration_token(&redeemed).await?;
    let (alice_key, _) = sealed_row(&vault, a.id, alice.id, ProviderId::OpenAi, t(1)).await?;
    assert_eq!(store.redeem_registration_token(&redeemed.token_hash, t(1), &alice_key).await?, Ok(()));
    let (alice_key2, _) = sealed_row(&vault, a.id, alice.id, ProviderId::Groq, t(2)).await?;
    store_key(&store, &alice_key2, t(2)).await?;
    let pending = token(a.id, alice.id, t(3), minutes(15));
    store.insert_registration_token(&pending).await?;
    let (bob_key, _) = sealed_row(&vault, a.id, bob.id, ProviderId::OpenAi, t(4)).await?;
    store_key(&store, &bob_key, t(4)).await?;
    let (alice_b_key, _) = sealed_row(&vault, b.id, alice_b.id, ProviderId::OpenAi, t(5)).await?;
    store_key(&store, &alice_b_key, t(5)).await?;

    assert_eq!(store.delete_end_user(b.id, "bob").await?, None, "bob is not tenant B's");
    assert_eq!(store.delete_end_user(a.id, "alice").await?, Some(alice.id));
    assert_eq!(store.get_end_user(a.id, "alice").await?, None);
    assert_eq!(store.list_provider_keys(alice.id).await?, vec![]);
    assert_eq!(store.get_provider_key(alice.id, "openai").await?, None);
    assert_eq!(store.find_registration_token(&redeemed.token_hash).await?, None, "used token erased");
    assert_eq!(store.find_registration_token(&pending.token_hash).await?, None, "pending token erased");
    let (late, _) = sealed_row(&vault, a.id, alice.id, ProviderId::OpenAi, t(6)).await?;
    assert_eq!(
        store.redeem_registration_token(&pending.token_hash, t(6), &late).await?,
        Err(RedeemError::NotFound),
        "an erased user's token no longer redeems"
    );

    let mut left: Vec<_> = all_keys(&store).await?.into_iter().map(|k| k.id).collect();
    left.sort();
    let mut expected = vec![bob_key.id, alice_b_key.id];
    expected.sort();
    assert_eq!(left, expected, "only alice's keys went");
    assert_eq!(store.get_end_user(b.id, "alice").await?, Some(alice_b), "tenant B's alice is untouched");

    assert_eq!(store.delete_end_user(a.id, "alice").await?, None, "already deleted");
    assert_eq!(store.delete_end_user(a.id, "nobody").await?, None);
    let reborn = store.upsert_end_user(a.id, "alice", t(7)).await?;
    assert_ne!(reborn.id, alice.id, "the label can be used again, as a new end user");
    assert_eq!(store.list_provider_keys(reborn.id).await?, vec![]);
    Ok(())
}

async fn check_rotation_paging(store: DynStore) -> anyhow::Result<()> {
    let (v1, v2) = vaults();
    let a = tenant(&store, "Acme", t(0)).await?;
    let mut on_v1 = Vec::new();
    for i in 0..5 {
        let user = store.upsert_end_user(a.id, &format!("user-{i}"), t(i)).await?;
        let (row, _) = sealed_row(&v1, a.id, user.id, ProviderId::OpenAi, t(i)).await?;
        store_key(&store, &row, t(i)).await?;
        on_v1.push(row);
    }
    let fresh = store.upsert_end_user(a.id, "fresh", t(9)).await?;
    let (on_v2, _) = sealed_row(&v2, a.id, fresh.id, ProviderId::OpenAi, t(9)).await?;
    assert_eq!(on_v2.sealed.kek_version, 2);
    store_key(&store, &on_v2, t(9)).await?;
    on_v1.sort_by_key(|r| r.id);

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut after = None;
    loop {
        let page = store.provider_keys_not_on_version(2, after, 2).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        sizes.push(page.len());
        seen.extend(page);
        assert!(sizes.len() <= 5, "paging does not end");
    }
    assert_eq!(sizes, vec![2, 2, 1]);
    assert_eq!(seen, on_v1, "every v1 row once, in id order, whole");

    assert_eq!(store.provider_keys_not_on_version(1, None, 10).await?, vec![on_v2.clone()]);
    assert_eq!(store.provider_keys_not_on_version(2, Some(Uuid::nil()), 10).await?, on_v1);
    assert_eq!(store.provider_keys_not_on_version(2, Some(Uuid::max()), 10).await?, vec![]);
    assert_eq!(store.provider_keys_not_on_version(2, Some(on_v1[2].id), 10).await?, on_v1[3..].to_vec());
    assert_eq!(store.provider_keys_not_on_version(2, None, 0).await?, vec![], "limit 0");
    Ok(())
}

async fn check_rewrap_compare_and_set(store: DynStore) -> anyhow::Result<()> {
    let (v1, v2) = vaults();
    let a = tenant(&store, "Acme", t(0)).await?;
    let alice = store.upsert_end_user(a.id, "alice", t(0)).await?;
    let (row, plaintext) = sealed_row(&v1, a.id, alice.id, ProviderId::OpenAi, t(1)).await?;
    store_key(&store, &row, t(1)).await?;
    let ctx = SealContext { tenant_id: a.id, end_user_id: alice.id, provider: "openai", record_id: row.id };
    let new = v2.rewrap(&ctx, &row.sealed).await?.expect("v1 row needs a re-wrap");
    assert_eq!((new.kek_version, &new.ciphertext), (2, &row.sealed.ciphertext));
    let newer = v2.rewrap(&ctx, &row.sealed).await?.expect("again");

    assert!(!store.rewrap_provider_key(Uuid::new_v4(), &row.sealed, &new).await?, "no such row");
    let wrong_ciphertext = relay::vault::SealedKey { ciphertext: vec![0; 8], ..row.sealed.clone() };
    assert!(!store.rewrap_provider_key(row.id, &wrong_ciphertext, &new).await?, "ciphertext is compared too");

    assert!(store.rewrap_provider_key(row.id, &row.sealed, &new).await?, "the right old value");
    assert!(!store.rewrap_provider_key(row.id, &row.sealed, &newer).await?, "a stale old value");
    let stored = store.get_provider_key(alice.id, "openai").await?.expect("stored");
    assert_eq!(stored, StoredProviderKey { sealed: new.clone(), ..row.clone() });
    assert_eq!(open(&v2, &stored).await, Ok(plaintext));
    assert_eq!(open(&v1, &stored).await, Err(VaultError::UnknownKekVersion(2)));
    assert_eq!(store.provider_keys_not_on_version(2, None, 10).await?, vec![]);

    // Two concurrent re-wraps from the same old value: one wins.
    let (row2, _) = sealed_row(&v1, a.id, alice.id, ProviderId::Groq, t(2)).await?;
    store_key(&store, &row2, t(2)).await?;
    let ctx2 = SealContext { record_id: row2.id, provider: "groq", ..ctx };
    let x = v2.rewrap(&ctx2, &row2.sealed).await?.expect("re-wrap");
    let y = v2.rewrap(&ctx2, &row2.sealed).await?.expect("re-wrap");
    let (rx, ry) = futures::future::join(
        store.rewrap_provider_key(row2.id, &row2.sealed, &x),
        store.rewrap_provider_key(row2.id, &row2.sealed, &y),
    )
    .await;
    assert!(rx? ^ ry?, "exactly one concurrent compare-and-set applies");
    Ok(())
}

async fn check_audit(store: DynStore) -> anyhow::Result<()> {
    let a = tenant(&store, "Acme", t(0)).await?;
    let b = tenant(&store, "Globex", t(0)).await?;
    let event = |tenant_id: Option<Uuid>, action: &str, target: Option<&str>, at: i64| AuditEvent {
        tenant_id,
        actor: if tenant_id.is_some() { "api_key:abc".into() } else { "operator".into() },
        action: action.into(),
        target: target.map(str::to_owned),
        address: tenant_id.map(|_| "2001:db8::1".to_owned()),
        created_at: t(at),
    };
    let a1 = event(Some(a.id), "end_user.delete", Some("end_user:1"), 1);
    let b1 = event(Some(b.id), "provider_key.connect", Some("end_user:2 provider:openai"), 2);
    let op = event(None, "kek.rotate", None, 3);
    let a2 = event(Some(a.id), "api_key.create", Some("api_key:x"), 4);
    let a3 = event(Some(a.id), "api_key.revoke", None, 5);
    for e in [&a1, &b1, &op, &a2, &a3] {
        store.append_audit(e).await?;
    }
    assert_eq!(store.list_audit(Some(a.id), 10).await?, vec![a3.clone(), a2.clone(), a1.clone()], "newest first");
    assert_eq!(store.list_audit(Some(a.id), 2).await?, vec![a3.clone(), a2.clone()], "limit");
    assert_eq!(store.list_audit(Some(b.id), 10).await?, vec![b1.clone()]);
    assert_eq!(store.list_audit(None, 10).await?, vec![a3.clone(), a2, op, b1, a1], "no filter: everything");
    assert_eq!(store.list_audit(None, 1).await?, vec![a3]);
    assert_eq!(store.list_audit(Some(Uuid::new_v4()), 10).await?, vec![]);
    Ok(())
}

async fn check_migrate_twice(store: DynStore) -> anyhow::Result<()> {
    let a = tenant(&store, "Acme", t(0)).await?;
    let alice = store.upsert_end_user(a.id, "alice", t(0)).await?;
    store.migrate().await?;
    store.migrate().await?;
    store.ping().await?;
    assert_eq!(store.get_tenant(a.id).await?, Some(a.clone()), "data survives");
    assert_eq!(store.get_end_user(a.id, "alice").await?, Some(alice));
    Ok(())
}

fn assert_same_ms(what: &str, got: DateTime<Utc>, want: DateTime<Utc>) {
    assert_eq!(got.timestamp_millis(), want.timestamp_millis(), "{what}: {got} vs {want}");
}

async fn check_timestamps_round_trip(store: DynStore) -> anyhow::Result<()> {
    let (vault, _) = vaults();
    // Sub-millisecond parts that a backend may drop, but never more than that.
    let at = |y, mo, d, nanos| {
        Utc.with_ymd_and_hms(y, mo, d, 23, 59, 59).single().expect("valid date") + Duration::nanoseconds(nanos)
    };
    let times = [at(2024, 2, 29, 123_456_789), at(2038, 1, 19, 999_999_999), at(2199, 12, 31, 1_000_001)];
    for (i, when) in times.into_iter().enumerate() {
        let tenant = Tenant { id: Uuid::new_v4(), name: format!("t{i}"), app_id: generate_app_id(), created_at: when };
        store.create_tenant(&tenant).await?;
        assert_same_ms("tenant.created_at", store.get_tenant(tenant.id).await?.expect("tenant").created_at, when);

        let key = api_key(tenant.id, when);
        store.insert_api_key(&key).await?;
        store.revoke_api_key(tenant.id, &key.public_id, when + Duration::nanoseconds(500)).await?;
        let got = store.find_api_key(&key.public_id).await?.expect("api key");
        assert_same_ms("api_key.created_at", got.created_at, when);
        assert_same_ms("api_key.revoked_at", got.revoked_at.expect("revoked"), when + Duration::nanoseconds(500));

        let user = store.upsert_end_user(tenant.id, "u", when).await?;
        assert_same_ms("end_user.created_at", user.created_at, when);
        assert_same_ms(
            "end_user.created_at",
            store.get_end_user(tenant.id, "u").await?.expect("user").created_at,
            when,
        );

        let tok = token(tenant.id, user.id, when, minutes(15));
        store.insert_registration_token(&tok).await?;
        let (row, _) = sealed_row(&vault, tenant.id, user.id, ProviderId::OpenAi, when).await?;
        let redeemed_at = when + Duration::microseconds(1500);
        assert_eq!(store.redeem_registration_token(&tok.token_hash, redeemed_at, &row).await?, Ok(()));
        let info = store.find_registration_token(&tok.token_hash).await?.expect("token");
        assert_same_ms("token.expires_at", info.expires_at, tok.expires_at);
        assert_same_ms("token.used_at", info.used_at.expect("used"), redeemed_at);

        store.touch_provider_key(row.id, when + Duration::milliseconds(1)).await?;
        let stored = store.get_provider_key(user.id, "openai").await?.expect("key");
        assert_same_ms("provider_key.created_at", stored.created_at, when);
        assert_same_ms(
            "provider_key.last_used_at",
            stored.last_used_at.expect("used"),
            when + Duration::milliseconds(1),
        );
        let listed = store.list_provider_keys(user.id).await?;
        assert_same_ms("summary.created_at", listed[0].created_at, when);

        store
            .append_audit(&AuditEvent {
                tenant_id: Some(tenant.id),
                actor: "test".into(),
                action: "time".into(),
                target: None,
                address: Some("192.0.2.7".into()),
                created_at: when,
            })
            .await?;
        let audit = store.list_audit(Some(tenant.id), 1).await?;
        assert_same_ms("audit.created_at", audit[0].created_at, when);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Session tokens and the byok-relay flow

async fn check_tenant_settings(store: DynStore) -> anyhow::Result<()> {
    let a = tenant(&store, "Acme", t(0)).await?;
    let b = tenant(&store, "Globex", t(0)).await?;
    assert!(a.app_id.starts_with("app_") && a.app_id.len() == 28, "{}", a.app_id);
    assert_ne!(a.app_id, b.app_id);
    assert_eq!(store.find_tenant_by_app_id(&a.app_id).await?, Some(a.clone()));
    assert_eq!(store.find_tenant_by_app_id("app_nosuchapp").await?, None);
    assert_eq!(store.find_tenant_by_app_id(&a.app_id.to_uppercase()).await?, None, "app ids match exactly");

    // Off, and no origins, by default.
    assert_eq!(store.get_tenant_settings(a.id).await?, Some(TenantSettings::default()));
    assert_eq!(store.get_tenant_settings(Uuid::new_v4()).await?, None);
    assert_eq!(store.list_allowed_origins().await?, Vec::<String>::new());

    let a_settings = TenantSettings {
        byok_flow_enabled: true,
        allowed_origins: vec!["https://acme.example".into(), "http://localhost:5173".into()],
        rate_limit_api_key: Some("600/min".parse().expect("limit")),
        rate_limit_end_user: Some(relay::ratelimit::Limit::Off),
        rate_limit_free_end_user: None,
        free_models: vec!["claude-haiku-*".into(), "gpt-4o-mini".into()],
    };
    assert!(store.update_tenant_settings(a.id, &a_settings).await?);
    let b_settings = TenantSettings {
        byok_flow_enabled: false,
        allowed_origins: vec!["https://acme.example".into(), "https://globex.example".into()],
        ..Default::default()
    };
    assert!(store.update_tenant_settings(b.id, &b_settings).await?);
    assert!(!store.update_tenant_settings(Uuid::new_v4(), &a_settings).await?, "unknown tenant");
    assert_eq!(store.get_tenant_settings(a.id).await?, Some(a_settings.clone()));
    assert_eq!(store.get_tenant_settings(b.id).await?, Some(b_settings));
    assert_eq!(
        store.list_allowed_origins().await?,
        vec!["http://localhost:5173", "https://acme.example", "https://globex.example"],
        "every tenant's origins, each once"
    );
    // Settings leave the tenant itself alone.
    assert_eq!(store.get_tenant(a.id).await?, Some(a.clone()));

    assert!(store.update_tenant_settings(b.id, &TenantSettings::default()).await?);
    assert_eq!(store.list_allowed_origins().await?, vec!["http://localhost:5173", "https://acme.example"]);
    Ok(())
}

async fn check_session_generations(store: DynStore) -> anyhow::Result<()> {
    let a = tenant(&store, "Acme", t(0)).await?;
    let b = tenant(&store, "Globex", t(0)).await?;
    let alice = store.upsert_end_user(a.id, "alice", t(0)).await?;
    let bob = store.upsert_end_user(a.id, "bob", t(0)).await?;
    assert_eq!(alice.token_generation, 0);

    assert_eq!(store.get_end_user_by_id(a.id, alice.id).await?, Some(alice.clone()));
    assert_eq!(store.get_end_user_by_id(b.id, alice.id).await?, None, "ids do not cross tenants");
    assert_eq!(store.get_end_user_by_id(a.id, Uuid::new_v4()).await?, None);

    let revoked = store.revoke_end_user_sessions(a.id, "alice").await?.expect("alice exists");
    assert_eq!(revoked, bumped(&alice, 1), "only the generation moved");
    let again = store.revoke_end_user_sessions(a.id, "alice").await?.expect("alice exists");
    assert_eq!(again.token_generation, 2);
    assert_eq!(store.revoke_end_user_sessions(b.id, "alice").await?, None, "not in tenant B");
    assert_eq!(store.revoke_end_user_sessions(a.id, "carol").await?, None);

    // Upserting the user again keeps the generation; other users are untouched.
    assert_eq!(store.upsert_end_user(a.id, "alice", t(5)).await?.token_generation, 2);
    assert_eq!(store.get_end_user(a.id, "alice").await?.map(|u| u.token_generation), Some(2));
    assert_eq!(store.get_end_user_by_id(a.id, bob.id).await?, Some(bob));

    // Concurrent revocations each count.
    let results =
        futures::future::join_all((0..6).map(|_| store.revoke_end_user_sessions(a.id, "alice"))).await.into_iter();
    let gens = results.map(|r| r.map(|u| u.map(|u| u.token_generation))).collect::<Result<HashSet<_>, _>>()?;
    assert_eq!(gens.len(), 6, "every revocation got its own generation: {gens:?}");
    assert_eq!(store.get_end_user(a.id, "alice").await?.map(|u| u.token_generation), Some(8));
    Ok(())
}

/// `user` at another generation, for equality checks.
fn bumped(user: &relay::store::EndUser, generation: i64) -> relay::store::EndUser {
    relay::store::EndUser { token_generation: generation, ..user.clone() }
}

async fn check_upsert_provider_key(store: DynStore) -> anyhow::Result<()> {
    let (vault, _) = vaults();
    let a = tenant(&store, "Acme", t(0)).await?;
    let alice = store.upsert_end_user(a.id, "alice", t(0)).await?;
    let bob = store.upsert_end_user(a.id, "bob", t(0)).await?;

    let (first, first_plain) = sealed_row(&vault, a.id, alice.id, ProviderId::OpenAi, t(10)).await?;
    store.upsert_provider_key(&first).await?;
    assert_eq!(store.get_provider_key(alice.id, "openai").await?, Some(first.clone()));
    assert_eq!(open(&vault, &first).await, Ok(first_plain));
    store.touch_provider_key(first.id, t(11)).await?;

    // Upserting again for the same user and provider replaces the row, last_used_at reset.
    let (second, second_plain) = sealed_row(&vault, a.id, alice.id, ProviderId::OpenAi, t(20)).await?;
    store.upsert_provider_key(&second).await?;
    let stored = store.get_provider_key(alice.id, "openai").await?.expect("stored");
    assert_eq!(stored, second);
    assert_eq!(open(&vault, &stored).await, Ok(second_plain));

    // Another provider and another user are separate rows; nothing else changed.
    let (anthropic, _) = sealed_row(&vault, a.id, alice.id, ProviderId::Anthropic, t(30)).await?;
    store.upsert_provider_key(&anthropic).await?;
    let (bobs, _) = sealed_row(&vault, a.id, bob.id, ProviderId::OpenAi, t(40)).await?;
    store.upsert_provider_key(&bobs).await?;
    assert_eq!(store.list_provider_keys(alice.id).await?, vec![summary(&anthropic), summary(&second)]);
    assert_eq!(store.list_provider_keys(bob.id).await?, vec![summary(&bobs)]);
    assert_eq!(all_keys(&store).await?.len(), 3);

    // A row for an end user that does not exist is refused (foreign key), not stored.
    let (orphan, _) = sealed_row(&vault, a.id, Uuid::new_v4(), ProviderId::OpenAi, t(50)).await?;
    assert!(store.upsert_provider_key(&orphan).await.is_err());
    assert_eq!(all_keys(&store).await?.len(), 3);

    // Erasing the user takes the upserted keys with it.
    store.delete_end_user(a.id, "alice").await?;
    assert_eq!(all_keys(&store).await?, vec![bobs]);
    Ok(())
}

async fn signing_key(
    vault: &Vault,
    name: &str,
    created_at: DateTime<Utc>,
) -> anyhow::Result<(SessionSigningKey, String)> {
    let id = Uuid::new_v4();
    let plaintext = Uuid::new_v4().simple().to_string();
    let sealed = vault.seal(&signing_key_context(id), &SecretString::from(plaintext.clone())).await?;
    Ok((SessionSigningKey { id, name: name.to_owned(), sealed, created_at }, plaintext))
}

async fn check_signing_key_insert_race(store: DynStore) -> anyhow::Result<()> {
    let (vault, _) = vaults();
    assert_eq!(store.get_session_signing_key(SIGNING_KEY_NAME).await?, None);
    let mut candidates = Vec::new();
    for i in 0..8 {
        candidates.push(signing_key(&vault, SIGNING_KEY_NAME, t(i)).await?);
    }
    let inserted = futures::future::join_all(candidates.iter().map(|(k, _)| store.insert_session_signing_key(k)))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    assert_eq!(inserted.iter().filter(|i| **i).count(), 1, "exactly one node's key is stored: {inserted:?}");
    let winner = inserted.iter().position(|i| *i).expect("a winner");
    let stored = store.get_session_signing_key(SIGNING_KEY_NAME).await?.expect("stored");
    assert_eq!(stored, candidates[winner].0, "everyone reads the winner back");
    let opened = vault.open(&signing_key_context(stored.id), &stored.sealed).await?;
    assert_eq!(opened.expose_secret(), candidates[winner].1);
    // Bound to its row: another record id does not open it.
    assert!(vault.open(&signing_key_context(Uuid::new_v4()), &stored.sealed).await.is_err());

    // A later insert under the same name changes nothing; another name is another row.
    let (late, _) = signing_key(&vault, SIGNING_KEY_NAME, t(100)).await?;
    assert!(!store.insert_session_signing_key(&late).await?);
    assert_eq!(store.get_session_signing_key(SIGNING_KEY_NAME).await?, Some(stored));
    let (other, _) = signing_key(&vault, "next", t(100)).await?;
    assert!(store.insert_session_signing_key(&other).await?);
    assert_eq!(store.get_session_signing_key("next").await?, Some(other));
    Ok(())
}

async fn check_signing_key_rewrap(store: DynStore) -> anyhow::Result<()> {
    let (v1, v2) = vaults();
    let (key, plaintext) = signing_key(&v1, SIGNING_KEY_NAME, t(0)).await?;
    assert!(store.insert_session_signing_key(&key).await?);
    assert_eq!(store.session_signing_keys_not_on_version(1).await?, vec![]);
    assert_eq!(store.session_signing_keys_not_on_version(2).await?, vec![key.clone()]);

    let ctx = signing_key_context(key.id);
    let new = v2.rewrap(&ctx, &key.sealed).await?.expect("re-wrapped under v2");
    // Compare-and-set: stale `old` bytes do not apply.
    let stale = relay::vault::SealedKey { wrapped_dek: vec![0; 3], ..key.sealed.clone() };
    assert!(!store.rewrap_session_signing_key(key.id, &stale, &new).await?);
    assert!(!store.rewrap_session_signing_key(Uuid::new_v4(), &key.sealed, &new).await?);
    assert!(store.rewrap_session_signing_key(key.id, &key.sealed, &new).await?);
    assert!(!store.rewrap_session_signing_key(key.id, &key.sealed, &new).await?, "already applied");

    let stored = store.get_session_signing_key(SIGNING_KEY_NAME).await?.expect("stored");
    assert_eq!(stored.sealed.kek_version, 2);
    assert_eq!(stored.sealed.ciphertext, key.sealed.ciphertext, "only the data key was re-wrapped");
    assert_eq!(v2.open(&ctx, &stored.sealed).await?.expose_secret(), plaintext);
    assert_eq!(store.session_signing_keys_not_on_version(2).await?, vec![]);
    Ok(())
}

/// Tenants created before 0002 get app ids from the migration: applies 0001 by hand, adds
/// tenants, then lets the store run the rest.
async fn check_migration_backfills_app_ids(store: DynStore) -> anyhow::Result<()> {
    // This store is already migrated; make a fresh database of the same backend instead.
    let backend = if store.backend() == "postgres" { Backend::Postgres } else { Backend::Sqlite };
    drop(store);
    let db = TestDb::new(backend).await;
    let ids = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    match DatabaseUrl::parse(&db.url).map_err(anyhow::Error::msg)? {
        DatabaseUrl::Postgres(url) => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            sqlx::raw_sql(include_str!("../../migrations/postgres/0001_initial.sql")).execute(&mut conn).await?;
            for id in ids {
                sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, 'old', now())")
                    .bind(id)
                    .execute(&mut conn)
                    .await?;
            }
            // Tell sqlx that 0001 is applied, as a real pre-0002 database would.
            fake_applied(&mut MigConn::Pg(conn)).await?;
        }
        DatabaseUrl::Sqlite(path) => {
            use sqlx::Connection;
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
            let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
            sqlx::raw_sql(include_str!("../../migrations/sqlite/0001_initial.sql")).execute(&mut conn).await?;
            for id in ids {
                sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES (?1, 'old', 0)")
                    .bind(id.to_string())
                    .execute(&mut conn)
                    .await?;
            }
            fake_applied(&mut MigConn::Lite(conn)).await?;
        }
    }
    let url = DatabaseUrl::parse(&db.url).map_err(anyhow::Error::msg)?;
    let store = relay::store::connect(&url).await?;
    store.migrate().await?;
    let mut seen = HashSet::new();
    for id in ids {
        let t = store.get_tenant(id).await?.expect("tenant kept");
        assert!(t.app_id.starts_with("app_") && t.app_id.len() == 28, "{}", t.app_id);
        assert!(seen.insert(t.app_id.clone()), "app ids are distinct");
        assert_eq!(store.find_tenant_by_app_id(&t.app_id).await?.map(|t| t.id), Some(id));
        assert_eq!(store.get_tenant_settings(id).await?, Some(TenantSettings::default()), "flow off by default");
    }
    drop(store);
    drop(db);
    Ok(())
}

enum MigConn {
    Pg(sqlx::PgConnection),
    Lite(sqlx::SqliteConnection),
}

/// Records migration 1 in `_sqlx_migrations` the way sqlx does, with the checksum it computes.
async fn fake_applied(conn: &mut MigConn) -> anyhow::Result<()> {
    use sha2::{Digest, Sha384};
    let (sql, create) = match conn {
        MigConn::Pg(_) => (
            include_str!("../../migrations/postgres/0001_initial.sql"),
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, checksum BYTEA NOT NULL, \
             execution_time BIGINT NOT NULL)",
        ),
        MigConn::Lite(_) => (
            include_str!("../../migrations/sqlite/0001_initial.sql"),
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
             checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
        ),
    };
    let checksum = Sha384::digest(sql.as_bytes()).to_vec();
    let insert = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                  VALUES (1, 'initial', TRUE, $1, 0)";
    match conn {
        MigConn::Pg(c) => {
            sqlx::query(create).execute(&mut *c).await?;
            sqlx::query(insert).bind(checksum).execute(&mut *c).await?;
        }
        MigConn::Lite(c) => {
            sqlx::query(create).execute(&mut *c).await?;
            sqlx::query(&insert.replace("$1", "?1")).bind(checksum).execute(&mut *c).await?;
        }
    }
    Ok(())
}

fn usage_event(tenant_id: Uuid, end_user_id: Option<Uuid>, at: DateTime<Utc>) -> relay::store::UsageEvent {
    relay::store::UsageEvent {
        id: Uuid::new_v4(),
        tenant_id,
        end_user_id,
        api_key_id: None,
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        endpoint: "/v1/chat/completions".into(),
        status: 200,
        paid: false,
        prompt_tokens: Some(3),
        completion_tokens: Some(1),
        cached_tokens: Some(2),
        cache_write_tokens: Some(0),
        reasoning_tokens: Some(1),
        cost_nanos: Some(1_234),
        latency_ms: 12,
        ttft_ms: None,
        created_at: at,
    }
}

async fn check_usage_batches(store: DynStore) -> anyhow::Result<()> {
    let a = tenant(&store, "Acme", t(0)).await?;
    let alice = store.upsert_end_user(a.id, "alice", t(0)).await?;
    let batch: Vec<_> = (1..=3).map(|i| usage_event(a.id, Some(alice.id), t(i))).collect();
    store.insert_usage_batch(&batch).await?;
    store.insert_usage_batch(&[]).await?;
    let mut stored = store.list_usage_events(a.id, 10).await?;
    stored.sort_by_key(|e| e.created_at);
    assert_eq!(stored, batch);

    // An event of an erased end user fails the batch; the others are still stored, once.
    let ghost = usage_event(a.id, Some(Uuid::new_v4()), t(5));
    let more = vec![usage_event(a.id, Some(alice.id), t(4)), ghost, usage_event(a.id, None, t(6))];
    assert!(store.insert_usage_batch(&more).await.is_err(), "a batch is all or none");
    assert_eq!(store.list_usage_events(a.id, 10).await?.len(), 3);
    assert!(store.insert_usage_events(&more).await.is_err(), "the failure is reported");
    let stored = store.list_usage_events(a.id, 10).await?;
    assert_eq!(stored.len(), 5);
    assert!(stored.contains(&more[0]) && stored.contains(&more[2]));

    // More rows than one statement may bind (PostgreSQL: 65,535 binds, 18 a row).
    let b = tenant(&store, "Globex", t(0)).await?;
    let many: Vec<_> = (0..5003).map(|i| usage_event(b.id, None, t(i))).collect();
    store.insert_usage_batch(&many).await?;
    assert_eq!(store.list_usage_events(b.id, 10_000).await?.len(), 5003);
    Ok(())
}

/// Cost columns round-trip, unpriced and usage-less events included; the labels of the end
/// users with events in a range, for the usage API's `groupBy=endUser`.
async fn check_usage_cost(store: DynStore) -> anyhow::Result<()> {
    let a = tenant(&store, "Acme", t(0)).await?;
    let alice = store.upsert_end_user(a.id, "alice", t(0)).await?;
    let bob = store.upsert_end_user(a.id, "bob", t(0)).await?;
    let carol = store.upsert_end_user(a.id, "carol", t(0)).await?;
    let mut priced = usage_event(a.id, Some(alice.id), t(1));
    priced.cost_nanos = Some(i64::MAX);
    priced.cached_tokens = Some(u64::from(u32::MAX) * 4);
    let mut unpriced = usage_event(a.id, Some(bob.id), t(2));
    unpriced.cost_nanos = None;
    let mut no_usage = usage_event(a.id, Some(bob.id), t(3));
    (no_usage.prompt_tokens, no_usage.completion_tokens) = (None, None);
    (no_usage.cached_tokens, no_usage.cache_write_tokens, no_usage.reasoning_tokens, no_usage.cost_nanos) =
        (None, None, None, None);
    let late = usage_event(a.id, Some(carol.id), t(60_000));
    let events = vec![priced, unpriced, no_usage, late];
    store.insert_usage_batch(&events).await?;
    let mut stored = store.list_usage_events(a.id, 10).await?;
    stored.sort_by_key(|e| e.created_at);
    assert_eq!(stored, events);

    // Another tenant's users never show; carol's event is outside the range.
    let b = tenant(&store, "Globex", t(0)).await?;
    let dave = store.upsert_end_user(b.id, "dave", t(0)).await?;
    store.insert_usage_batch(&[usage_event(b.id, Some(dave.id), t(1))]).await?;
    let mut labels = store.usage_end_user_labels(a.id, None, t(0), t(10)).await?;
    labels.sort();
    let mut want = vec![(alice.id, "alice".to_owned()), (bob.id, "bob".to_owned())];
    want.sort();
    assert_eq!(labels, want);
    assert_eq!(store.usage_end_user_labels(a.id, Some(bob.id), t(0), t(10)).await?, vec![(bob.id, "bob".to_owned())]);
    assert!(store.usage_end_user_labels(a.id, Some(dave.id), t(0), t(10)).await?.is_empty());
    // Erasing a user takes their events and their label along.
    store.delete_end_user(a.id, "bob").await?;
    assert_eq!(store.usage_end_user_labels(a.id, None, t(0), t(10)).await?, vec![(alice.id, "alice".to_owned())]);
    assert_eq!(store.list_usage_events(a.id, 10).await?.len(), 2);
    Ok(())
}

/// Key health: a stored key is `ok`; each change is reported once; `invalid` is left only by
/// connecting a key again, which resets the status, and a verdict about the replaced row (a call
/// still in flight) does not mark the new one.
async fn check_provider_key_health(store: DynStore) -> anyhow::Result<()> {
    let (vault, _) = vaults();
    let a = tenant(&store, "Acme", t(0)).await?;
    let alice = store.upsert_end_user(a.id, "alice", t(0)).await?;
    let health = |store: DynStore| async move {
        anyhow::Ok(store.get_provider_key(alice.id, "openai").await?.expect("stored").health)
    };
    let (row, _) = sealed_row(&vault, a.id, alice.id, ProviderId::OpenAi, t(10)).await?;
    store_key(&store, &row, t(10)).await?;
    assert_eq!(health(store.clone()).await?, KeyHealth::default(), "a key is ok when stored");

    let quota = KeyHealth::changed(KeyStatus::QuotaExhausted, Some("openai answered 429 insufficient_quota: x"), t(20));
    assert!(store.set_provider_key_health(row.id, &quota).await?, "ok -> quota_exhausted");
    assert!(!store.set_provider_key_health(row.id, &quota).await?, "the same status again is no change");
    assert_eq!(health(store.clone()).await?, quota);
    assert_eq!(store.list_provider_keys(alice.id).await?[0].health, quota, "listed with its health");

    let ok = KeyHealth::changed(KeyStatus::Ok, None, t(30));
    assert!(store.set_provider_key_health(row.id, &ok).await?, "quota_exhausted -> ok");
    assert_eq!(health(store.clone()).await?, ok);

    let invalid = KeyHealth::changed(KeyStatus::Invalid, Some("openai answered 401 invalid_request_error: y"), t(40));
    assert!(store.set_provider_key_health(row.id, &invalid).await?, "ok -> invalid");
    assert!(!store.set_provider_key_health(row.id, &invalid).await?, "one transition, reported once");
    assert!(!store.set_provider_key_health(row.id, &ok).await?, "only a new key ends invalid");
    assert!(!store.set_provider_key_health(row.id, &quota).await?);
    assert_eq!(health(store.clone()).await?, invalid);
    assert!(!store.set_provider_key_health(Uuid::new_v4(), &invalid).await?, "no such row");

    // Connecting again (a registration token) resets it; the old row's verdicts miss the new one.
    let (second, _) = sealed_row(&vault, a.id, alice.id, ProviderId::OpenAi, t(50)).await?;
    store_key(&store, &second, t(50)).await?;
    assert_eq!(health(store.clone()).await?, KeyHealth::default(), "a new key is ok");
    assert!(!store.set_provider_key_health(row.id, &invalid).await?, "a call with the old key");
    assert_eq!(health(store.clone()).await?, KeyHealth::default());

    // So does storing one without a token (the byok flow's upsert).
    assert!(store.set_provider_key_health(second.id, &invalid).await?);
    let (third, _) = sealed_row(&vault, a.id, alice.id, ProviderId::OpenAi, t(60)).await?;
    store.upsert_provider_key(&third).await?;
    assert_eq!(health(store.clone()).await?, KeyHealth::default());
    Ok(())
}

//! Tenants (app developers) and their `rly-` API keys: created by the operator CLI (and later the
//! console); a key's secret is returned once and only its hash is stored.

use chrono::Utc;
use rand::distributions::{Alphanumeric, DistString};
use secrecy::SecretString;
use uuid::Uuid;

use crate::auth::tokens::{generate_api_key, ParsedApiKey};
use crate::store::{ApiKeyRecord, DynStore, Result, Tenant};

/// A key as just created: the only time its secret exists outside the caller's hands.
pub struct NewApiKey {
    pub secret: SecretString,
    pub record: ApiKeyRecord,
    pub display: String,
}

/// `app_` + 24 base62 characters: the publishable id of a tenant's browser-only app. Not a
/// secret (it is shipped in the app's JavaScript); random so ids are not guessable in bulk.
pub fn generate_app_id() -> String {
    format!("app_{}", Alphanumeric.sample_string(&mut rand::rngs::OsRng, 24))
}

/// Whether `raw` can be an app id at all (`app_` + letters and digits), checked before a
/// lookup: anything else is no app, and never reaches the database (PostgreSQL refuses text
/// with NUL bytes with an error, not a miss).
pub fn is_well_formed_app_id(raw: &str) -> bool {
    raw.len() <= 64
        && raw
            .strip_prefix("app_")
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

pub async fn create_tenant(store: &DynStore, name: &str, actor: &str) -> Result<(Tenant, NewApiKey)> {
    let tenant =
        Tenant { id: Uuid::new_v4(), name: name.to_owned(), app_id: generate_app_id(), created_at: Utc::now() };
    store.create_tenant(&tenant).await?;
    crate::audit::record(&**store, Some(tenant.id), actor, "tenant.create", Some(tenant.id.to_string())).await;
    let key = create_api_key(store, tenant.id, Some("default"), actor).await?;
    Ok((tenant, key))
}

pub async fn create_api_key(store: &DynStore, tenant_id: Uuid, name: Option<&str>, actor: &str) -> Result<NewApiKey> {
    create_api_key_from(store, tenant_id, name, actor, None).await
}

/// `create_api_key`, audited with the client address the request came from.
pub async fn create_api_key_from(
    store: &DynStore,
    tenant_id: Uuid,
    name: Option<&str>,
    actor: &str,
    address: Option<String>,
) -> Result<NewApiKey> {
    let (secret, parsed): (SecretString, ParsedApiKey) = generate_api_key();
    let record = ApiKeyRecord {
        id: Uuid::new_v4(),
        tenant_id,
        public_id: parsed.public_id.clone(),
        secret_hash: parsed.hash.to_vec(),
        last4: parsed.last4.clone(),
        name: name.map(str::to_owned),
        created_at: Utc::now(),
        revoked_at: None,
    };
    store.insert_api_key(&record).await?;
    let target = Some(record.id.to_string());
    crate::audit::record_from(&**store, Some(tenant_id), actor, "api_key.create", target, address).await;
    Ok(NewApiKey { secret, display: parsed.display(), record })
}

/// Revokes by public id, by the displayed form `rly-…WXYZ`'s owner id, or by the full key.
pub async fn revoke_api_key(store: &DynStore, tenant_id: Uuid, key_id: &str, actor: &str) -> Result<bool> {
    let public_id = ParsedApiKey::parse(key_id).map(|p| p.public_id).unwrap_or_else(|| key_id.to_owned());
    let done = store.revoke_api_key(tenant_id, &public_id, Utc::now()).await?;
    if done {
        crate::audit::record(&**store, Some(tenant_id), actor, "api_key.revoke", Some(public_id)).await;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::{generate_app_id, is_well_formed_app_id};

    #[test]
    fn app_id_shape() {
        assert!(is_well_formed_app_id(&generate_app_id()));
        assert!(!is_well_formed_app_id("app_"));
        assert!(!is_well_formed_app_id("app_a\0b"));
        assert!(!is_well_formed_app_id("app_a-b"));
        assert!(!is_well_formed_app_id("xyz_abc"));
        assert!(!is_well_formed_app_id(&format!("app_{}", "a".repeat(61))));
    }
}

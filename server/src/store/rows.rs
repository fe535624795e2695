//! Reading rows into Relay's types, for every query module (`sql.rs`, `sql_money.rs`,
//! `sql_webhooks.rs`): one function per type, the same on both databases (`Fields`).

use super::dialect::Fields;
use super::*;
use crate::vault::SealedKey;

pub(super) fn tenant(row: &impl Fields) -> Result<Tenant> {
    Ok(Tenant {
        id: row.uuid("id")?,
        name: row.text("name")?,
        app_id: row.text("app_id")?,
        created_at: row.time("created_at")?,
    })
}

pub(super) fn api_key(row: &impl Fields) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.uuid("id")?,
        tenant_id: row.uuid("tenant_id")?,
        public_id: row.text("public_id")?,
        secret_hash: row.bytes("secret_hash")?,
        last4: row.text("last4")?,
        name: row.opt_text("name")?,
        created_at: row.time("created_at")?,
        revoked_at: row.opt_time("revoked_at")?,
    })
}

pub(super) fn end_user(row: &impl Fields) -> Result<EndUser> {
    Ok(EndUser {
        id: row.uuid("id")?,
        tenant_id: row.uuid("tenant_id")?,
        label: row.text("label")?,
        paid: row.flag("paid")?,
        created_at: row.time("created_at")?,
        token_generation: row.i64("token_generation")?,
    })
}

pub(super) fn sealed(row: &impl Fields) -> Result<SealedKey> {
    Ok(SealedKey {
        kek_version: row.kek_version("kek_version")?,
        wrapped_dek: row.bytes("wrapped_dek")?,
        ciphertext: row.bytes("ciphertext")?,
    })
}

pub(super) fn provider_key(row: &impl Fields) -> Result<StoredProviderKey> {
    Ok(StoredProviderKey {
        id: row.uuid("id")?,
        tenant_id: row.uuid("tenant_id")?,
        end_user_id: row.uuid("end_user_id")?,
        provider: row.text("provider")?,
        fingerprint: row.text("fingerprint")?,
        sealed: sealed(row)?,
        created_at: row.time("created_at")?,
        last_used_at: row.opt_time("last_used_at")?,
        base_url: row.opt_text("base_url")?,
        monthly_cap: row.opt_i64("monthly_cap_nanos")?.map(Usd::from_nanos),
        health: key_health(row)?,
    })
}

pub(super) fn key_health(row: &impl Fields) -> Result<KeyHealth> {
    Ok(KeyHealth {
        status: key_status_from_column(&row.text("status")?)?,
        reason: row.opt_text("status_reason")?,
        at: row.opt_time("status_at")?,
    })
}

pub(super) fn signing_key(row: &impl Fields) -> Result<SessionSigningKey> {
    Ok(SessionSigningKey {
        id: row.uuid("id")?,
        name: row.text("name")?,
        sealed: sealed(row)?,
        created_at: row.time("created_at")?,
    })
}

pub(super) fn settings(row: &impl Fields) -> Result<TenantSettings> {
    SettingsColumns {
        byok_flow_enabled: row.flag("byok_flow_enabled")?,
        allowed_origins: row.text("allowed_origins")?,
        rate_limit_api_key: row.opt_text("rate_limit_api_key")?,
        rate_limit_end_user: row.opt_text("rate_limit_end_user")?,
        rate_limit_free_end_user: row.opt_text("rate_limit_free_end_user")?,
        free_models: row.text("free_models")?,
    }
    .parse()
}

pub(super) fn registration_token(row: &impl Fields) -> Result<RegistrationTokenInfo> {
    Ok(RegistrationTokenInfo {
        id: row.uuid("id")?,
        tenant_id: row.uuid("tenant_id")?,
        tenant_name: row.text("tenant_name")?,
        end_user_id: row.uuid("end_user_id")?,
        end_user_label: row.text("label")?,
        provider: row.opt_text("provider")?,
        expires_at: row.time("expires_at")?,
        used_at: row.opt_time("used_at")?,
    })
}

pub(super) fn key_summary(row: &impl Fields) -> Result<ProviderKeySummary> {
    Ok(ProviderKeySummary {
        provider: row.text("provider")?,
        fingerprint: row.text("fingerprint")?,
        created_at: row.time("created_at")?,
        last_used_at: row.opt_time("last_used_at")?,
        monthly_cap: row.opt_i64("monthly_cap_nanos")?.map(Usd::from_nanos),
        health: key_health(row)?,
    })
}

pub(super) fn audit_event(row: &impl Fields) -> Result<AuditEvent> {
    Ok(AuditEvent {
        tenant_id: row.opt_uuid("tenant_id")?,
        actor: row.text("actor")?,
        action: row.text("action")?,
        target: row.opt_text("target")?,
        address: row.opt_text("address")?,
        created_at: row.time("created_at")?,
    })
}

pub(super) fn budget(row: &impl Fields) -> Result<Budget> {
    let period = row.text("period")?;
    let bps = row.i32("alert_at_bps")?;
    Ok(Budget {
        tenant_id: row.uuid("tenant_id")?,
        scope: BudgetScope::parse(&row.text("subject")?)?,
        limit: Usd::from_nanos(row.i64("limit_nanos")?),
        period: Period::parse(&period)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown budget period {period:?}")))?,
        alert_at_bps: u16::try_from(bps).map_err(|_| StoreError::Corrupt(format!("bad alert_at_bps {bps}")))?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

pub(super) fn usage_event(row: &impl Fields) -> Result<UsageEvent> {
    let status = row.i32("status")?;
    Ok(UsageEvent {
        id: row.uuid("id")?,
        tenant_id: row.uuid("tenant_id")?,
        end_user_id: row.opt_uuid("end_user_id")?,
        api_key_id: row.opt_uuid("api_key_id")?,
        provider: row.text("provider")?,
        model: row.text("model")?,
        endpoint: row.text("endpoint")?,
        status: u16::try_from(status).map_err(|_| StoreError::Corrupt(format!("bad status {status}")))?,
        paid: row.flag("paid")?,
        prompt_tokens: row.opt_i64("prompt_tokens")?.map(to_u64),
        completion_tokens: row.opt_i64("completion_tokens")?.map(to_u64),
        latency_ms: to_u64(row.i64("latency_ms")?),
        ttft_ms: row.opt_i64("ttft_ms")?.map(to_u64),
        created_at: row.time("created_at")?,
        cached_tokens: row.opt_i64("cached_tokens")?.map(to_u64),
        cache_write_tokens: row.opt_i64("cache_write_tokens")?.map(to_u64),
        reasoning_tokens: row.opt_i64("reasoning_tokens")?.map(to_u64),
        cost_nanos: row.opt_i64("cost_nanos")?,
    })
}

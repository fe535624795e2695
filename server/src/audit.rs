//! The audit log: who did what, to which tenant's data, when, and from where. Every write goes
//! through `record` (or `record_from`, for actions that arrive with a client address).
//!
//! Failure policy: an entry is written after its action took effect, so a failed write cannot
//! undo the action and is not the client's problem: it is logged at error level (with the
//! action, never a secret) and the answer stands.

use chrono::Utc;
use uuid::Uuid;

use crate::store::{AuditEvent, Store};

/// Who acted: `operator` (the CLI), `tenant` (a `rly-` key), `end_user` (a token or session),
/// `account:<id>` (a console member).
pub async fn record(store: &dyn Store, tenant_id: Option<Uuid>, actor: &str, action: &str, target: Option<String>) {
    record_from(store, tenant_id, actor, action, target, None).await;
}

/// `record`, with the client address the action came from.
pub async fn record_from(
    store: &dyn Store,
    tenant_id: Option<Uuid>,
    actor: &str,
    action: &str,
    target: Option<String>,
    address: Option<String>,
) {
    let event =
        AuditEvent { tenant_id, actor: actor.into(), action: action.into(), target, address, created_at: Utc::now() };
    if let Err(e) = store.append_audit(&event).await {
        tracing::error!(error = ?e, action, "could not write the audit log");
    }
}

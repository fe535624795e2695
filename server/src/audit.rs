//! The audit log: who did what, to which tenant's data, when. Every write goes through `record`.
//!
//! Failure policy: an entry is written after its action took effect, so a failed write cannot
//! undo the action and is not the client's problem: it is logged at error level (with the
//! action, never a secret) and the answer stands.

use chrono::Utc;
use uuid::Uuid;

use crate::store::{AuditEvent, Store};

/// Who acted: `operator` (the CLI), `tenant` (a `rly-` key), `end_user` (a token or session).
pub async fn record(store: &dyn Store, tenant_id: Option<Uuid>, actor: &str, action: &str, target: Option<String>) {
    let event = AuditEvent { tenant_id, actor: actor.into(), action: action.into(), target, created_at: Utc::now() };
    if let Err(e) = store.append_audit(&event).await {
        tracing::error!(error = ?e, action, "could not write the audit log");
    }
}

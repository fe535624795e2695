//! Budgets: the spending limits a tenant sets (tenant-wide, a default per end user, one end user)
//! and the end user's own monthly cap on their key, checked before a provider is called; and the
//! alerts that fire once per period when spend crosses a budget's threshold or its limit.
//!
//! Spend is counted in the store (`spend` counters, added to in the transaction that stores the
//! usage events), so budgets hold across nodes. A call is admitted when every limit that applies
//! still has room; the calls admitted before the cost of earlier ones is stored can overshoot a
//! limit, so the overshoot is bounded by the calls in flight at the moment it is crossed.

use std::collections::BTreeSet;
use std::sync::Arc;

use actix_web::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::domain::money::{Period, Usd};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::{Budget, BudgetScope, DynStore, SpendAlert, SpendKey, SpendSubject, UsageEvent};
use crate::webhooks::EventType;
use crate::webhooks::Webhooks;

/// `alertAt` when a budget names none, in basis points.
pub const DEFAULT_ALERT_BPS: u16 = 8000;

/// Which limit a call meets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKind {
    Tenant,
    /// The end user's budget; `default` when it is the tenant's default per end user.
    EndUser {
        default: bool,
    },
    /// The end user's own cap on their key for `provider`.
    OwnCap {
        provider: String,
    },
}

impl LimitKind {
    /// The name the API and the webhooks use.
    pub fn as_str(&self) -> &'static str {
        match self {
            LimitKind::Tenant => "tenant",
            LimitKind::EndUser { default: true } => "end_user_default",
            LimitKind::EndUser { default: false } => "end_user",
            LimitKind::OwnCap { .. } => "end_user_cap",
        }
    }
}

/// A limit that applies to a call, and the counter it is checked against.
#[derive(Debug, Clone)]
pub struct Applied {
    pub kind: LimitKind,
    pub limit: Usd,
    pub period: Period,
    pub alert_at_bps: u16,
    pub counter: SpendKey,
}

impl Applied {
    pub fn resets_at(&self) -> DateTime<Utc> {
        self.period.next_start(self.counter.start)
    }
}

/// The limits that apply to a call of `end_user_id` on `provider` at `at`: the tenant's budget,
/// the end user's own budget (or else the default per end user), and the cap on the key.
pub fn applicable(
    budgets: &[Budget],
    end_user_id: Uuid,
    provider: &str,
    cap: Option<Usd>,
    at: DateTime<Utc>,
) -> Vec<Applied> {
    let find = |scope: BudgetScope| budgets.iter().find(|b| b.scope == scope);
    let counter = |subject, period: Period| SpendKey { subject, period, start: period.start(at) };
    let of_budget = |kind, b: &Budget, subject| Applied {
        kind,
        limit: b.limit,
        period: b.period,
        alert_at_bps: b.alert_at_bps,
        counter: counter(subject, b.period),
    };
    let mut out = Vec::new();
    if let Some(cap) = cap {
        out.push(Applied {
            kind: LimitKind::OwnCap { provider: provider.to_owned() },
            limit: cap,
            period: Period::Month,
            alert_at_bps: DEFAULT_ALERT_BPS,
            counter: counter(SpendSubject::Key { end_user_id, provider: provider.to_owned() }, Period::Month),
        });
    }
    if let Some(own) = find(BudgetScope::EndUser(end_user_id)) {
        out.push(of_budget(LimitKind::EndUser { default: false }, own, SpendSubject::EndUser(end_user_id)));
    } else if let Some(default) = find(BudgetScope::EndUserDefault) {
        out.push(of_budget(LimitKind::EndUser { default: true }, default, SpendSubject::EndUser(end_user_id)));
    }
    if let Some(tenant) = find(BudgetScope::Tenant) {
        out.push(of_budget(LimitKind::Tenant, tenant, SpendSubject::Tenant));
    }
    out
}

/// Something that happened to a budget, for the tenant's webhooks.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetAlert {
    pub tenant_id: Uuid,
    pub alert: SpendAlert,
    pub data: Value,
}

#[derive(Clone)]
pub struct Budgets {
    store: DynStore,
    metrics: Arc<Metrics>,
    webhooks: Webhooks,
}

impl Budgets {
    pub fn new(store: DynStore, metrics: Arc<Metrics>, webhooks: Webhooks) -> Self {
        Self { store, metrics, webhooks }
    }

    /// The limits that apply to a call of `end_user_id` on `provider` whose key carries `cap`
    /// (budgets are read through the store's cache).
    pub async fn limits_for(
        &self,
        tenant_id: Uuid,
        end_user_id: Uuid,
        provider: &str,
        cap: Option<Usd>,
    ) -> Result<Vec<Applied>, ApiError> {
        let budgets = self.store.budgets_for(tenant_id, Some(end_user_id)).await?;
        Ok(applicable(&budgets, end_user_id, provider, cap, Utc::now()))
    }

    /// Admits a call that `limits` apply to, or refuses it with 402 `budget_exceeded` naming the
    /// limit that is spent and when it resets. Spend is read from the store, never cached.
    pub async fn admit(&self, tenant_id: Uuid, limits: &[Applied]) -> Result<(), ApiError> {
        if limits.is_empty() {
            return Ok(());
        }
        let counters: Vec<SpendKey> = limits.iter().map(|l| l.counter.clone()).collect();
        let spent = self.store.spend(tenant_id, &counters).await?;
        if let Some((limit, spent)) = limits.iter().zip(spent).find(|(l, spent)| *spent >= l.limit) {
            self.metrics.budget_refusals.with_label_values(&[limit.kind.as_str()]).inc();
            return Err(refusal(limit, spent));
        }
        Ok(())
    }

    /// After `events` were stored: sends the threshold and exceeded alerts their cost triggered.
    pub async fn after_stored(&self, events: &[UsageEvent]) {
        for alert in self.alerts_after(events).await {
            let event = match alert.alert {
                SpendAlert::Threshold => EventType::BudgetThreshold,
                SpendAlert::Exceeded => EventType::BudgetExceeded,
            };
            tracing::info!(tenant_id = %alert.tenant_id, %event, budget = %alert.data["budget"], "budget alert");
            self.webhooks.emit(alert.tenant_id, event, alert.data).await;
        }
    }

    /// The threshold and exceeded alerts the cost of `events` triggered, each once per counter
    /// and period (across nodes: the store records which fired).
    pub async fn alerts_after(&self, events: &[UsageEvent]) -> Vec<BudgetAlert> {
        let charged: BTreeSet<(Uuid, Uuid, String)> = events
            .iter()
            .filter(|e| e.cost_nanos.is_some_and(|c| c > 0))
            .filter_map(|e| e.end_user_id.map(|u| (e.tenant_id, u, e.provider.clone())))
            .collect();
        let mut alerts = Vec::new();
        let mut seen = BTreeSet::new();
        for (tenant_id, end_user_id, provider) in charged {
            match self.alerts_for(tenant_id, end_user_id, &provider, &mut seen).await {
                Ok(mut found) => alerts.append(&mut found),
                Err(e) => tracing::warn!(error = ?e, "could not check budget alerts"),
            }
        }
        alerts
    }

    async fn alerts_for(
        &self,
        tenant_id: Uuid,
        end_user_id: Uuid,
        provider: &str,
        seen: &mut BTreeSet<(Uuid, SpendKey)>,
    ) -> Result<Vec<BudgetAlert>, crate::store::StoreError> {
        let budgets = self.store.budgets_for(tenant_id, Some(end_user_id)).await?;
        let cap = self.store.get_provider_key(end_user_id, provider).await?.and_then(|k| k.monthly_cap);
        let limits: Vec<Applied> = applicable(&budgets, end_user_id, provider, cap, Utc::now())
            .into_iter()
            .filter(|l| seen.insert((tenant_id, l.counter.clone())))
            .collect();
        if limits.is_empty() {
            return Ok(Vec::new());
        }
        let counters: Vec<SpendKey> = limits.iter().map(|l| l.counter.clone()).collect();
        let spent = self.store.spend(tenant_id, &counters).await?;
        let mut out = Vec::new();
        for (limit, spent) in limits.iter().zip(spent) {
            for (alert, at) in
                [(SpendAlert::Threshold, limit.limit.share(limit.alert_at_bps)), (SpendAlert::Exceeded, limit.limit)]
            {
                if spent >= at && self.store.mark_spend_alert(tenant_id, &limit.counter, alert).await? {
                    let label = match limit.kind {
                        LimitKind::Tenant => None,
                        _ => self.store.get_end_user_by_id(tenant_id, end_user_id).await?.map(|u| u.label),
                    };
                    out.push(BudgetAlert { tenant_id, alert, data: alert_data(limit, spent, label.as_deref()) });
                }
            }
        }
        Ok(out)
    }
}

/// The 402 a spent limit gives.
fn refusal(limit: &Applied, spent: Usd) -> ApiError {
    let resets = limit.resets_at().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (amount, period) = (limit.limit, limit.period.adjective());
    let message = match &limit.kind {
        LimitKind::Tenant => {
            format!("Your app's {period} budget of {amount} is spent ({spent} so far); it resets at {resets}.")
        }
        LimitKind::EndUser { default: true } => format!(
            "This end user has spent the default {period} budget per end user of {amount} ({spent} so far); it \
             resets at {resets}."
        ),
        LimitKind::EndUser { default: false } => format!(
            "This end user has spent their {period} budget of {amount} ({spent} so far); it resets at {resets}."
        ),
        LimitKind::OwnCap { provider } => format!(
            "The end user's own monthly cap of {amount} on their {provider} key is reached ({spent} so far); it \
             resets at {resets}. Only the end user can raise it, by connecting their key again."
        ),
    };
    ApiError::new(StatusCode::PAYMENT_REQUIRED, "insufficient_quota", "budget_exceeded", message)
}

fn alert_data(limit: &Applied, spent: Usd, label: Option<&str>) -> Value {
    let mut data = json!({
        "budget": limit.kind.as_str(),
        "limitUsd": limit.limit.dollars(),
        "spentUsd": spent.dollars(),
        "period": limit.period.as_str(),
        "periodStart": limit.counter.start,
        "resetsAt": limit.resets_at(),
    });
    if let Some(label) = label {
        data["endUserLabel"] = json!(label);
    }
    if let LimitKind::OwnCap { provider } = &limit.kind {
        data["provider"] = json!(provider);
    }
    if !matches!(limit.kind, LimitKind::OwnCap { .. }) {
        data["alertAt"] = json!(f64::from(limit.alert_at_bps) / 10_000.0);
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(scope: BudgetScope, dollars: f64, period: Period) -> Budget {
        let at = Utc::now();
        Budget {
            tenant_id: Uuid::nil(),
            scope,
            limit: Usd::from_dollars(dollars).unwrap_or_default(),
            period,
            alert_at_bps: DEFAULT_ALERT_BPS,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn an_own_budget_replaces_the_default_and_the_cap_comes_first() {
        let user = Uuid::new_v4();
        let at: DateTime<Utc> = "2026-12-03T10:00:00Z".parse().expect("time");
        let budgets = vec![
            budget(BudgetScope::Tenant, 100.0, Period::Month),
            budget(BudgetScope::EndUserDefault, 1.0, Period::Day),
        ];
        let kinds = |l: Vec<Applied>| l.into_iter().map(|a| a.kind.as_str()).collect::<Vec<_>>();
        assert_eq!(kinds(applicable(&budgets, user, "openai", None, at)), ["end_user_default", "tenant"]);
        let mut with_own = budgets.clone();
        with_own.push(budget(BudgetScope::EndUser(user), 5.0, Period::Month));
        let limits = applicable(&with_own, user, "openai", Usd::from_dollars(2.0), at);
        assert_eq!(kinds(limits.clone()), ["end_user_cap", "end_user", "tenant"]);
        assert_eq!(limits[0].resets_at(), "2027-01-01T00:00:00Z".parse::<DateTime<Utc>>().expect("time"));
        assert_eq!(limits[0].counter.subject, SpendSubject::Key { end_user_id: user, provider: "openai".into() });
        assert!(applicable(&[], user, "openai", None, at).is_empty());
    }

    #[test]
    fn a_refusal_is_a_402_naming_the_limit_and_its_reset() {
        let user = Uuid::new_v4();
        let at: DateTime<Utc> = "2026-12-03T10:00:00Z".parse().expect("time");
        let limits = applicable(&[budget(BudgetScope::EndUserDefault, 1.0, Period::Day)], user, "openai", None, at);
        let e = refusal(&limits[0], Usd::from_dollars(1.25).unwrap_or_default());
        assert_eq!(e.status_code_u16(), 402);
        assert_eq!(e.code(), "budget_exceeded");
        let body: Value = serde_json::from_str(&e.body_json()).expect("json");
        assert_eq!(body["error"]["type"], "insufficient_quota");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("$1.00") && message.contains("2026-12-04T00:00:00Z"), "{message}");
    }
}

//! What the console stores: accounts, their roles in tenants, invites and server-side sessions
//! (`ConsoleStore`, reached through `Store::console`; queries in sql_console.rs).

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{EndUser, RedeemError, Result, StoreError};

/// What a console member may do in a tenant.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Manages API keys and end users.
    Admin,
    /// Also manages members.
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    pub(super) fn from_column(raw: &str) -> Result<Self> {
        Self::parse(raw).ok_or_else(|| StoreError::Corrupt(format!("unknown console role {raw:?}")))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A console account. `password_hash` is an Argon2id PHC string.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    pub id: Uuid,
    /// Lower-cased.
    pub email: String,
    pub password_hash: String,
    pub operator: bool,
    pub created_at: DateTime<Utc>,
    pub password_changed_at: DateTime<Utc>,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("operator", &self.operator)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// One of an account's tenants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// One member of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub account_id: Uuid,
    pub email: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// An invite as created: only the token's SHA-256 is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvite {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub role: Role,
    pub token_hash: [u8; 32],
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// An invite looked up by its token's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteInfo {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub email: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

/// A server-side console session; the cookie holds the token, the row its SHA-256.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub id: Uuid,
    pub token_hash: [u8; 32],
    pub account_id: Uuid,
    /// The tenant the session acts in; none for an operator without one.
    pub tenant_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// The absolute end, however active the session is.
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for ConsoleSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleSession")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("tenant_id", &self.tenant_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait ConsoleStore: Send + Sync {
    /// Inserts the account unless its email is taken; true when this call inserted it.
    async fn create_account(&self, account: &Account) -> Result<bool>;
    async fn find_account_by_email(&self, email: &str) -> Result<Option<Account>>;
    async fn get_account(&self, id: Uuid) -> Result<Option<Account>>;
    /// Sets the password hash and ends every session of the account, in one transaction.
    async fn set_password(&self, account_id: Uuid, hash: &str, at: DateTime<Utc>) -> Result<bool>;

    /// Gives the account this role in the tenant (creating or replacing its membership).
    async fn put_membership(&self, account_id: Uuid, tenant_id: Uuid, role: Role, at: DateTime<Utc>) -> Result<()>;
    /// The account's tenants, oldest membership first.
    async fn memberships(&self, account_id: Uuid) -> Result<Vec<Membership>>;
    async fn role_in(&self, account_id: Uuid, tenant_id: Uuid) -> Result<Option<Role>>;
    /// The tenant's members, by email.
    async fn list_members(&self, tenant_id: Uuid) -> Result<Vec<Member>>;
    async fn count_owners(&self, tenant_id: Uuid) -> Result<u64>;
    /// Changes an existing member's role; false when the account is no member of the tenant.
    async fn set_member_role(&self, tenant_id: Uuid, account_id: Uuid, role: Role) -> Result<bool>;
    /// Removes the membership and ends the account's sessions in that tenant, in one transaction.
    async fn remove_member(&self, tenant_id: Uuid, account_id: Uuid) -> Result<bool>;

    async fn insert_invite(&self, invite: &NewInvite) -> Result<()>;
    async fn find_invite(&self, token_hash: &[u8; 32]) -> Result<Option<InviteInfo>>;
    /// In one transaction: claims the invite (one statement: unused and unexpired), creates
    /// `new_account` when given (its email must be the invite's), and gives the invite's account
    /// the invite's role in its tenant. Returns that account's id. Of concurrent calls for one
    /// token, exactly one succeeds.
    async fn accept_invite(
        &self,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
        new_account: Option<&Account>,
    ) -> Result<std::result::Result<Uuid, RedeemError>>;

    async fn insert_session(&self, session: &ConsoleSession) -> Result<()>;
    /// One statement: the session with this hash, its `last_seen_at` moved to `now`, if it was
    /// last seen after `idle_cutoff` and has not reached `expires_at`; none otherwise.
    async fn touch_session(
        &self,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
        idle_cutoff: DateTime<Utc>,
    ) -> Result<Option<ConsoleSession>>;
    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<bool>;
    /// Ends every session of the account; returns how many.
    async fn delete_account_sessions(&self, account_id: Uuid) -> Result<u64>;
    /// Deletes sessions past their absolute end or idle since before `idle_cutoff`.
    async fn prune_sessions(&self, now: DateTime<Utc>, idle_cutoff: DateTime<Utc>) -> Result<u64>;

    /// The tenant's end users whose label starts with `prefix` (exactly, case and all), in label
    /// order after `after`, at most `limit`.
    async fn search_end_users(
        &self,
        tenant_id: Uuid,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<EndUser>>;
    /// When each of the tenant's `rly-` keys last made a call that was recorded (from the usage
    /// events still kept), by key id.
    async fn api_keys_last_used(&self, tenant_id: Uuid) -> Result<Vec<(Uuid, DateTime<Utc>)>>;
}

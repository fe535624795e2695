//! The console queries of `SqlStore` (accounts, memberships, invites, sessions, the end-user
//! search), written once for both databases; `Store::console` hands them out.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Encode, Executor, IntoArguments, Type};
use uuid::Uuid;

use super::console::{Account, ConsoleSession, ConsoleStore, InviteInfo, Member, Membership, NewInvite, Role};
use super::dialect::{Dialect, Fields};
use super::rows::end_user;
use super::sql::SqlStore;
use super::{EndUser, RedeemError, Result, StoreError};

const ACCOUNT: &str =
    "SELECT id, email, password_hash, operator, created_at, password_changed_at FROM console_accounts";
const SESSION_COLUMNS: &str = "id, token_hash, account_id, tenant_id, created_at, last_seen_at, expires_at";

fn account(row: &impl Fields) -> Result<Account> {
    Ok(Account {
        id: row.uuid("id")?,
        email: row.text("email")?,
        password_hash: row.text("password_hash")?,
        operator: row.flag("operator")?,
        created_at: row.time("created_at")?,
        password_changed_at: row.time("password_changed_at")?,
    })
}

fn hash32(raw: Vec<u8>) -> Result<[u8; 32]> {
    raw.try_into().map_err(|_| StoreError::Corrupt("console token hash is not 32 bytes".into()))
}

fn session(row: &impl Fields) -> Result<ConsoleSession> {
    Ok(ConsoleSession {
        id: row.uuid("id")?,
        token_hash: hash32(row.bytes("token_hash")?)?,
        account_id: row.uuid("account_id")?,
        tenant_id: row.opt_uuid("tenant_id")?,
        created_at: row.time("created_at")?,
        last_seen_at: row.time("last_seen_at")?,
        expires_at: row.time("expires_at")?,
    })
}

#[async_trait]
impl<DB> ConsoleStore for SqlStore<DB>
where
    DB: Dialect,
    DB::Row: Fields,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<DB::Id>: Encode<'q, DB>,
{
    async fn create_account(&self, a: &Account) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO console_accounts (id, email, password_hash, operator, created_at, password_changed_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email) DO NOTHING",
        )
        .bind(DB::id(a.id))
        .bind(a.email.as_str())
        .bind(a.password_hash.as_str())
        .bind(a.operator)
        .bind(DB::time(a.created_at))
        .bind(DB::time(a.password_changed_at))
        .execute(self.pool())
        .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn find_account_by_email(&self, email: &str) -> Result<Option<Account>> {
        sqlx::query(&format!("{ACCOUNT} WHERE email = $1"))
            .bind(email)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(account)
            .transpose()
    }

    async fn get_account(&self, id: Uuid) -> Result<Option<Account>> {
        sqlx::query(&format!("{ACCOUNT} WHERE id = $1"))
            .bind(DB::id(id))
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(account)
            .transpose()
    }

    async fn set_password(&self, account_id: Uuid, hash: &str, at: DateTime<Utc>) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let done =
            sqlx::query("UPDATE console_accounts SET password_hash = $2, password_changed_at = $3 WHERE id = $1")
                .bind(DB::id(account_id))
                .bind(hash)
                .bind(DB::time(at))
                .execute(&mut *tx)
                .await?;
        sqlx::query("DELETE FROM console_sessions WHERE account_id = $1")
            .bind(DB::id(account_id))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn put_membership(&self, account_id: Uuid, tenant_id: Uuid, role: Role, at: DateTime<Utc>) -> Result<()> {
        Self::put_membership_with(self.pool(), account_id, tenant_id, role, at).await
    }

    async fn memberships(&self, account_id: Uuid) -> Result<Vec<Membership>> {
        sqlx::query(
            "SELECT m.tenant_id, t.name, m.role, m.created_at FROM console_memberships m \
             JOIN tenants t ON t.id = m.tenant_id WHERE m.account_id = $1 ORDER BY m.created_at, t.name",
        )
        .bind(DB::id(account_id))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(Membership {
                tenant_id: r.uuid("tenant_id")?,
                tenant_name: r.text("name")?,
                role: Role::from_column(&r.text("role")?)?,
                created_at: r.time("created_at")?,
            })
        })
        .collect()
    }

    async fn role_in(&self, account_id: Uuid, tenant_id: Uuid) -> Result<Option<Role>> {
        sqlx::query("SELECT role FROM console_memberships WHERE account_id = $1 AND tenant_id = $2")
            .bind(DB::id(account_id))
            .bind(DB::id(tenant_id))
            .fetch_optional(self.pool())
            .await?
            .map(|r| Role::from_column(&r.text("role")?))
            .transpose()
    }

    async fn list_members(&self, tenant_id: Uuid) -> Result<Vec<Member>> {
        sqlx::query(
            "SELECT m.account_id, a.email, m.role, m.created_at FROM console_memberships m \
             JOIN console_accounts a ON a.id = m.account_id WHERE m.tenant_id = $1 ORDER BY a.email",
        )
        .bind(DB::id(tenant_id))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(Member {
                account_id: r.uuid("account_id")?,
                email: r.text("email")?,
                role: Role::from_column(&r.text("role")?)?,
                created_at: r.time("created_at")?,
            })
        })
        .collect()
    }

    async fn count_owners(&self, tenant_id: Uuid) -> Result<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM console_memberships WHERE tenant_id = $1 AND role = 'owner'")
            .bind(DB::id(tenant_id))
            .fetch_one(self.pool())
            .await?;
        Ok(u64::try_from(row.i64("n")?).unwrap_or(0))
    }

    async fn set_member_role(&self, tenant_id: Uuid, account_id: Uuid, role: Role) -> Result<bool> {
        let done = sqlx::query("UPDATE console_memberships SET role = $3 WHERE tenant_id = $1 AND account_id = $2")
            .bind(DB::id(tenant_id))
            .bind(DB::id(account_id))
            .bind(role.as_str())
            .execute(self.pool())
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn remove_member(&self, tenant_id: Uuid, account_id: Uuid) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query("DELETE FROM console_memberships WHERE tenant_id = $1 AND account_id = $2")
            .bind(DB::id(tenant_id))
            .bind(DB::id(account_id))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM console_sessions WHERE tenant_id = $1 AND account_id = $2")
            .bind(DB::id(tenant_id))
            .bind(DB::id(account_id))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn insert_invite(&self, i: &NewInvite) -> Result<()> {
        sqlx::query(
            "INSERT INTO console_invites (id, tenant_id, email, role, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(DB::id(i.id))
        .bind(DB::id(i.tenant_id))
        .bind(i.email.as_str())
        .bind(i.role.as_str())
        .bind(&i.token_hash[..])
        .bind(DB::time(i.created_at))
        .bind(DB::time(i.expires_at))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn find_invite(&self, token_hash: &[u8; 32]) -> Result<Option<InviteInfo>> {
        sqlx::query(
            "SELECT i.id, i.tenant_id, t.name, i.email, i.role, i.expires_at, i.used_at FROM console_invites i \
             JOIN tenants t ON t.id = i.tenant_id WHERE i.token_hash = $1",
        )
        .bind(&token_hash[..])
        .fetch_optional(self.pool())
        .await?
        .map(|r| {
            Ok(InviteInfo {
                id: r.uuid("id")?,
                tenant_id: r.uuid("tenant_id")?,
                tenant_name: r.text("name")?,
                email: r.text("email")?,
                role: Role::from_column(&r.text("role")?)?,
                expires_at: r.time("expires_at")?,
                used_at: r.opt_time("used_at")?,
            })
        })
        .transpose()
    }

    async fn accept_invite(
        &self,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
        new_account: Option<&Account>,
    ) -> Result<std::result::Result<Uuid, RedeemError>> {
        let mut tx = self.pool().begin().await?;
        // First statement: on SQLite it takes the write lock at once (see redeem_registration_token).
        let claimed = sqlx::query(
            "UPDATE console_invites SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
             RETURNING tenant_id, email, role",
        )
        .bind(&token_hash[..])
        .bind(DB::time(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(claimed) = claimed else {
            let row = sqlx::query("SELECT used_at FROM console_invites WHERE token_hash = $1")
                .bind(&token_hash[..])
                .fetch_optional(&mut *tx)
                .await?;
            tx.rollback().await?;
            return Ok(Err(match row {
                None => RedeemError::NotFound,
                Some(r) if !r.is_null("used_at")? => RedeemError::Used,
                Some(_) => RedeemError::Expired,
            }));
        };
        let (tenant_id, email, role) =
            (claimed.uuid("tenant_id")?, claimed.text("email")?, Role::from_column(&claimed.text("role")?)?);
        if let Some(a) = new_account {
            if a.email != email {
                tx.rollback().await?;
                return Err(StoreError::Corrupt("the new account is not for the invite's email".into()));
            }
            sqlx::query(
                "INSERT INTO console_accounts (id, email, password_hash, operator, created_at, password_changed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(DB::id(a.id))
            .bind(a.email.as_str())
            .bind(a.password_hash.as_str())
            .bind(a.operator)
            .bind(DB::time(a.created_at))
            .bind(DB::time(a.password_changed_at))
            .execute(&mut *tx)
            .await?;
        }
        let row = sqlx::query("SELECT id FROM console_accounts WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(Err(RedeemError::NotFound));
        };
        let account_id = row.uuid("id")?;
        Self::put_membership_with(&mut *tx, account_id, tenant_id, role, now).await?;
        tx.commit().await?;
        Ok(Ok(account_id))
    }

    async fn insert_session(&self, s: &ConsoleSession) -> Result<()> {
        sqlx::query(&format!("INSERT INTO console_sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"))
            .bind(DB::id(s.id))
            .bind(&s.token_hash[..])
            .bind(DB::id(s.account_id))
            .bind(s.tenant_id.map(DB::id))
            .bind(DB::time(s.created_at))
            .bind(DB::time(s.last_seen_at))
            .bind(DB::time(s.expires_at))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn touch_session(
        &self,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
        idle_cutoff: DateTime<Utc>,
    ) -> Result<Option<ConsoleSession>> {
        sqlx::query(&format!(
            "UPDATE console_sessions SET last_seen_at = $2 \
             WHERE token_hash = $1 AND last_seen_at > $3 AND expires_at > $2 RETURNING {SESSION_COLUMNS}"
        ))
        .bind(&token_hash[..])
        .bind(DB::time(now))
        .bind(DB::time(idle_cutoff))
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(session)
        .transpose()
    }

    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<bool> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
            .bind(&token_hash[..])
            .execute(self.pool())
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn delete_account_sessions(&self, account_id: Uuid) -> Result<u64> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE account_id = $1")
            .bind(DB::id(account_id))
            .execute(self.pool())
            .await?;
        Ok(DB::rows_affected(&done))
    }

    async fn prune_sessions(&self, now: DateTime<Utc>, idle_cutoff: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
            .bind(DB::time(now))
            .bind(DB::time(idle_cutoff))
            .execute(self.pool())
            .await?;
        Ok(DB::rows_affected(&done))
    }

    async fn search_end_users(
        &self,
        tenant_id: Uuid,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<EndUser>> {
        // substr counts characters on both databases, and compares exactly (LIKE would fold
        // case on SQLite and treat % and _ as wildcards).
        let chars = i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX);
        sqlx::query(
            "SELECT id, tenant_id, label, paid, created_at, token_generation FROM end_users \
             WHERE tenant_id = $1 AND substr(label, 1, $2) = $3 AND ($4 IS NULL OR label > $4) \
             ORDER BY label LIMIT $5",
        )
        .bind(DB::id(tenant_id))
        .bind(chars)
        .bind(prefix)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(end_user)
        .collect()
    }

    async fn api_keys_last_used(&self, tenant_id: Uuid) -> Result<Vec<(Uuid, DateTime<Utc>)>> {
        sqlx::query(
            "SELECT api_key_id, MAX(created_at) AS last_used FROM usage_events \
             WHERE tenant_id = $1 AND api_key_id IS NOT NULL GROUP BY api_key_id",
        )
        .bind(DB::id(tenant_id))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| Ok((r.uuid("api_key_id")?, r.time("last_used")?)))
        .collect()
    }
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    async fn put_membership_with<'e>(
        executor: impl Executor<'e, Database = DB>,
        account_id: Uuid,
        tenant_id: Uuid,
        role: Role,
        at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO console_memberships (account_id, tenant_id, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account_id, tenant_id) DO UPDATE SET role = EXCLUDED.role",
        )
        .bind(DB::id(account_id))
        .bind(DB::id(tenant_id))
        .bind(role.as_str())
        .bind(DB::time(at))
        .execute(executor)
        .await?;
        Ok(())
    }
}

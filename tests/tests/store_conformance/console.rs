//! Conformance checks of the console's store (included by store_conformance.rs): accounts by
//! email, one-shot invites, sessions with idle and absolute ends, memberships, and the end-user
//! search by exact label prefix.

use chrono::Duration;
use relay::store::console::{Account, ConsoleSession, NewInvite, Role};
use relay::store::{DynStore, RedeemError};
use uuid::Uuid;

use super::{t, tenant};

fn account(email: &str) -> Account {
    Account {
        id: Uuid::new_v4(),
        email: email.to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        operator: false,
        created_at: t(0),
        password_changed_at: t(0),
    }
}

pub async fn check_console(store: DynStore) -> anyhow::Result<()> {
    let acme = tenant(&store, "Acme", t(0)).await?;
    let other = tenant(&store, "Globex", t(0)).await?;
    let c = store.console();

    // Accounts: one per email.
    let ada = account("ada@example.com");
    assert!(c.create_account(&ada).await?);
    assert!(!c.create_account(&account("ada@example.com")).await?, "the email is taken");
    assert_eq!(c.find_account_by_email("ada@example.com").await?, Some(ada.clone()));
    assert_eq!(c.get_account(ada.id).await?, Some(ada.clone()));

    // Invites: claimed once, not after expiry, and they create the account.
    let invite = |hash: u8, expires: i64| NewInvite {
        id: Uuid::new_v4(),
        tenant_id: acme.id,
        email: "bo@example.com".into(),
        role: Role::Admin,
        token_hash: [hash; 32],
        created_at: t(0),
        expires_at: t(expires),
    };
    c.insert_invite(&invite(1, 10_000)).await?;
    c.insert_invite(&invite(2, 100)).await?;
    assert_eq!(c.find_invite(&[1; 32]).await?.map(|i| (i.tenant_name, i.role)), Some(("Acme".into(), Role::Admin)));
    let bo = account("bo@example.com");
    assert_eq!(c.accept_invite(&[1; 32], t(50), Some(&bo)).await?, Ok(bo.id));
    assert_eq!(c.accept_invite(&[1; 32], t(60), None).await?, Err(RedeemError::Used));
    assert_eq!(c.accept_invite(&[2; 32], t(200), None).await?, Err(RedeemError::Expired));
    assert_eq!(c.accept_invite(&[3; 32], t(50), None).await?, Err(RedeemError::NotFound));
    assert_eq!(c.role_in(bo.id, acme.id).await?, Some(Role::Admin));
    assert_eq!(c.role_in(bo.id, other.id).await?, None);

    // Memberships.
    c.put_membership(ada.id, acme.id, Role::Owner, t(1)).await?;
    c.put_membership(ada.id, other.id, Role::Viewer, t(2)).await?;
    let mine = c.memberships(ada.id).await?;
    assert_eq!(
        mine.iter().map(|m| (m.tenant_name.as_str(), m.role)).collect::<Vec<_>>(),
        vec![("Acme", Role::Owner), ("Globex", Role::Viewer)]
    );
    assert_eq!(c.count_owners(acme.id).await?, 1);
    let members = c.list_members(acme.id).await?;
    assert_eq!(members.iter().map(|m| m.email.as_str()).collect::<Vec<_>>(), vec!["ada@example.com", "bo@example.com"]);
    assert!(c.set_member_role(acme.id, bo.id, Role::Viewer).await?);
    assert!(!c.set_member_role(other.id, bo.id, Role::Viewer).await?, "not a member there");

    // Sessions: touched while live; idle, expired, deleted or ended by a password change: gone.
    let session = |hash: u8, account_id: Uuid, tenant_id: Uuid| ConsoleSession {
        id: Uuid::new_v4(),
        token_hash: [hash; 32],
        account_id,
        tenant_id: Some(tenant_id),
        created_at: t(0),
        last_seen_at: t(0),
        expires_at: t(0) + Duration::hours(12),
    };
    for (hash, who, tenant_id) in
        [(10, ada.id, acme.id), (11, ada.id, acme.id), (12, bo.id, acme.id), (13, bo.id, acme.id)]
    {
        c.insert_session(&session(hash, who, tenant_id)).await?;
    }
    let touched = c.touch_session(&[10; 32], t(1000), t(0) - Duration::minutes(30)).await?.expect("live");
    assert_eq!(touched.last_seen_at.timestamp_millis(), t(1000).timestamp_millis());
    assert!(c.touch_session(&[10; 32], t(1000) + Duration::minutes(31), t(1000)).await?.is_none(), "idle");
    assert!(
        c.touch_session(&[11; 32], t(0) + Duration::hours(12), t(0) - Duration::hours(1)).await?.is_none(),
        "expired"
    );
    assert!(c.delete_session(&[12; 32]).await?);
    assert!(c.touch_session(&[12; 32], t(5), t(0) - Duration::minutes(30)).await?.is_none());
    assert!(c.set_password(ada.id, "$argon2id$new", t(10)).await?);
    assert!(c.touch_session(&[10; 32], t(1001), t(0) - Duration::minutes(30)).await?.is_none(), "password changed");
    assert!(c.remove_member(acme.id, bo.id).await?);
    assert!(c.touch_session(&[13; 32], t(5), t(0) - Duration::minutes(30)).await?.is_none(), "member removed");
    assert_eq!(c.role_in(bo.id, acme.id).await?, None);

    // End-user search: exact prefix (no wildcards, case kept), label order, paged.
    for label in ["al_1", "al%2", "Al_3", "alx", "bob"] {
        store.upsert_end_user(acme.id, label, t(0)).await?;
    }
    store.upsert_end_user(other.id, "al_9", t(0)).await?;
    let labels = |v: Vec<relay::store::EndUser>| v.into_iter().map(|u| u.label).collect::<Vec<_>>();
    assert_eq!(labels(c.search_end_users(acme.id, "al_", None, 10).await?), vec!["al_1"]);
    assert_eq!(labels(c.search_end_users(acme.id, "al%", None, 10).await?), vec!["al%2"]);
    // Paging in the database's own label order reaches every end user once.
    let (mut seen, mut after) = (Vec::new(), None::<String>);
    loop {
        let page = labels(c.search_end_users(acme.id, "", after.as_deref(), 2).await?);
        if page.is_empty() {
            break;
        }
        after = page.last().cloned();
        seen.extend(page);
    }
    seen.sort();
    assert_eq!(seen, vec!["Al_3", "al%2", "al_1", "alx", "bob"]);
    Ok(())
}

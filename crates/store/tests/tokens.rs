//! Tokens expire, work only while their user is enabled, and refresh tokens work once.

mod common;

use standby_model::{Role, Timestamp};
use standby_store::{TokenKind, TokenRecord, UserRecord};
use uuid::Uuid;

#[tokio::test]
async fn tokens_expire_and_die_with_their_user() {
    let store = common::fresh_store().await;
    let organization = store.ensure_provider_organization("MSP").await.unwrap();
    let user = UserRecord {
        uid: Uuid::now_v7(),
        name: "ops".into(),
        organization_uid: organization,
        role: Role::PortalOperator,
        password_hash: "not-a-real-hash".into(),
        disabled: false,
    };
    store.create_user(&user).await.unwrap();
    let now = Timestamp::now();
    let token = |hash: &str, kind| TokenRecord {
        hash: hash.into(),
        user_uid: user.uid,
        kind,
        read_only: false,
        family: Uuid::nil(),
        created_at: now,
        expires_at: now.plus_seconds(3600),
    };
    store
        .insert_token(&token("access", TokenKind::Access))
        .await
        .unwrap();
    store
        .insert_token(&token("refresh", TokenKind::Refresh))
        .await
        .unwrap();

    assert!(
        store
            .find_credential("access", now)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .find_credential("refresh", now)
            .await
            .unwrap()
            .is_none(),
        "a refresh token is no bearer credential"
    );
    assert!(
        store
            .find_credential("access", now.plus_seconds(3601))
            .await
            .unwrap()
            .is_none(),
        "expired after an hour"
    );
    assert!(
        store
            .consume_refresh_token("refresh", now.plus_seconds(3601))
            .await
            .unwrap()
            .is_none(),
        "an expired refresh token"
    );
    assert!(
        store
            .consume_refresh_token("refresh", now)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .consume_refresh_token("refresh", now)
            .await
            .unwrap()
            .is_none(),
        "works once"
    );

    assert!(store.set_disabled("ops", true).await.unwrap());
    assert!(
        store
            .find_credential("access", now)
            .await
            .unwrap()
            .is_none(),
        "disabled users' tokens stop"
    );
    assert!(store.set_disabled("ops", false).await.unwrap());
    assert!(
        store
            .find_credential("access", now)
            .await
            .unwrap()
            .is_none(),
        "and stay revoked"
    );
    assert!(
        store
            .purge_expired(now.plus_seconds(3601), &Default::default())
            .await
            .unwrap()
            .total()
            >= 1
    );
}

//! The notification store on the backend under test: an event is fanned out once, an attempt
//! is claimed once and only its own claim may end it, a failure is retried or given up on, a
//! company's channels are its own, and a server going offline is told once per outage.

mod common;

use standby_model::Timestamp;
use standby_store::Scope;
use standby_store::notifications::{
    AttemptOutcome, ChannelKind, ChannelRecord, DeliveryState, NewDelivery, SERVER_OFFLINE,
};
use uuid::Uuid;

fn channel(owner: Scope, organization: Uuid) -> ChannelRecord {
    ChannelRecord {
        uid: Uuid::now_v7(),
        owner,
        owner_organization_uid: organization,
        kind: ChannelKind::Webhook,
        target: "https://hooks.example.net/x".into(),
        secret: "sixteen characters".into(),
        events: vec![],
        created_by: "admin".into(),
        created_at: Timestamp::now(),
    }
}

#[tokio::test]
async fn events_fan_out_once_and_attempts_are_claimed_once() {
    let store = common::fresh_store().await;
    let now = Timestamp::now();
    let provider = channel(Scope::All, Uuid::now_v7());
    let company = Uuid::now_v7();
    let theirs = channel(Scope::Organization(company), company);
    store.create_channel(&provider).await.unwrap();
    store.create_channel(&theirs).await.unwrap();
    assert_eq!(store.list_channels(Scope::All).await.unwrap().len(), 2);
    assert_eq!(
        store
            .list_channels(Scope::Organization(company))
            .await
            .unwrap(),
        vec![theirs.clone()]
    );
    assert!(
        store
            .get_channel(Scope::Organization(company), provider.uid)
            .await
            .unwrap()
            .is_none()
    );

    store
        .record_event("run.started", Some(Uuid::now_v7()), None, "{\"a\": 1}", now)
        .await
        .unwrap();
    let pending = store.pending_events(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    let event = pending[0].uid;
    let delivery = NewDelivery {
        uid: Uuid::now_v7(),
        channel_uid: provider.uid,
        event_name: "run.started".into(),
        body: "{\"id\": 1}".into(),
    };
    let batch = vec![(event, vec![delivery.clone()])];
    // Two nodes fan the same event out: one writes its deliveries, the other nothing.
    assert_eq!(store.dispatch_events(&batch, now).await.unwrap(), 1);
    assert_eq!(store.dispatch_events(&batch, now).await.unwrap(), 0);
    assert!(store.pending_events(10).await.unwrap().is_empty());

    let due = store.due_deliveries(now, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let lease = now.plus_seconds(60);
    assert!(store.claim_delivery(&due[0], now, lease).await.unwrap());
    assert!(
        !store.claim_delivery(&due[0], now, lease).await.unwrap(),
        "one attempt at a time"
    );
    assert!(store.due_deliveries(now, 10).await.unwrap().is_empty());
    // A failed attempt is retried later; a stale attempt's report changes nothing.
    let retry = now.plus_seconds(5);
    let failed = AttemptOutcome::Failed {
        status: Some(503),
        error: "the receiver answered HTTP 503".into(),
        retry_at: Some(retry),
    };
    assert!(
        !store
            .finish_attempt(delivery.uid, 7, &failed, now)
            .await
            .unwrap()
    );
    assert!(
        store
            .finish_attempt(delivery.uid, 1, &failed, now)
            .await
            .unwrap()
    );
    let log = store.channel_deliveries(provider.uid, 10).await.unwrap();
    assert_eq!(log[0].state, DeliveryState::Pending);
    assert_eq!(log[0].attempts, 1);
    assert_eq!(log[0].last_status, Some(503));
    assert_eq!(log[0].next_attempt_at, retry);
    assert!(store.due_deliveries(now, 10).await.unwrap().is_empty());
    let later = store.due_deliveries(retry, 10).await.unwrap();
    assert!(store.claim_delivery(&later[0], retry, lease).await.unwrap());
    let gave_up = AttemptOutcome::Failed {
        status: None,
        error: "refused".into(),
        retry_at: None,
    };
    assert!(
        store
            .finish_attempt(delivery.uid, 2, &gave_up, retry)
            .await
            .unwrap()
    );
    let log = store.channel_deliveries(provider.uid, 10).await.unwrap();
    assert_eq!(log[0].state, DeliveryState::Failed);
    assert!(
        !store
            .finish_attempt(
                delivery.uid,
                2,
                &AttemptOutcome::Delivered { status: Some(200) },
                retry
            )
            .await
            .unwrap(),
        "a finished delivery stays finished"
    );
    assert!(store.delete_channel(provider.uid).await.unwrap());
    assert!(
        store
            .channel_deliveries(provider.uid, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_server_going_offline_is_told_once_per_outage() {
    let store = common::fresh_store().await;
    let organization = store.ensure_provider_organization("MSP").await.unwrap();
    let agents = store.agents();
    let start = Timestamp::now();
    let server = agents
        .add_agent_server(
            "dr-host",
            organization,
            "token-hash",
            start.plus_seconds(60),
            start,
        )
        .await
        .unwrap()
        .unwrap();
    // Not enrolled yet: never told about.
    assert!(
        store
            .claim_offline_servers(start.plus_seconds(10), start)
            .await
            .unwrap()
            .is_empty()
    );
    agents
        .enroll("token-hash", "credential", "host", "1", start)
        .await
        .unwrap()
        .unwrap();
    agents.agent_seen(server, None, start).await.unwrap();
    let quiet = start.plus_seconds(60);
    assert_eq!(
        store
            .claim_offline_servers(start.plus_seconds(30), quiet)
            .await
            .unwrap(),
        vec![server]
    );
    assert!(
        store
            .claim_offline_servers(start.plus_seconds(30), quiet.plus_seconds(1))
            .await
            .unwrap()
            .is_empty(),
        "told once"
    );
    let told = store.pending_events(10).await.unwrap();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].name, SERVER_OFFLINE);
    assert_eq!(told[0].server_uid, Some(server));
    assert!(told[0].body.contains("dr-host"));
    // Back, then silent again: a new outage is told again.
    let back = quiet.plus_seconds(5);
    agents.agent_seen(server, None, back).await.unwrap();
    assert_eq!(
        store
            .claim_offline_servers(back.plus_seconds(1), back.plus_seconds(40))
            .await
            .unwrap(),
        vec![server]
    );
}

//! The session lifecycle in the store: accept, claim, finish, expire.

mod common;

use std::collections::BTreeMap;

use standby_fleet::demo::demo_fleet;
use standby_model::{PlanStatus, SessionKind, SessionStatus, Timestamp};
use standby_store::{NewAsyncAction, NewSession, Scope, SessionEnd, StoreError};
use uuid::Uuid;

#[tokio::test]
async fn a_session_is_accepted_once_claimed_finished_and_its_action_expires() {
    let fleet = demo_fleet(Timestamp::now());
    let store = common::fresh_store().await;
    store.import_fleet(&fleet).await.unwrap();
    let plan = store
        .list_plans(&standby_store::ListQuery {
            scope: Scope::All,
            server: None,
            plan: None,
            filter: standby_query::Filter::And(vec![]),
            order: standby_query::SortOrder::default_for(&standby_store::catalog::PLAN_CATALOG),
            paging: standby_query::Paging {
                limit: 500,
                offset: 0,
            },
        })
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|p| p.status == PlanStatus::Ready)
        .unwrap();
    let new = |action: Uuid| NewSession {
        uid: Uuid::now_v7(),
        plan_uid: plan.instance_uid,
        kind: SessionKind::Failover,
        requested_point: None,
        started_by: "test".into(),
        action: NewAsyncAction {
            uid: action,
            initiator_uid: Uuid::nil(),
            action_name: "StartBackupFailoverPlan".into(),
            query_parameters: BTreeMap::new(),
            result: "{}".into(),
        },
    };
    let now = Timestamp::now();
    let first = new(Uuid::now_v7());
    assert!(store.begin_session(Scope::All, &first, now).await.unwrap());
    assert!(matches!(
        store
            .begin_session(Scope::All, &new(Uuid::now_v7()), now)
            .await,
        Err(StoreError::Refused(_))
    ));
    assert_eq!(
        store
            .get_plan(Scope::All, plan.instance_uid)
            .await
            .unwrap()
            .unwrap()
            .status,
        PlanStatus::InProgress
    );

    let job = store
        .claim_job("w", now, now.plus_seconds(15))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.session_uid, first.uid);
    assert!(
        store
            .claim_job("w2", now, now.plus_seconds(15))
            .await
            .unwrap()
            .is_none(),
        "a claimed job is not claimed twice"
    );
    // A lease that runs out puts the job back in the queue.
    assert_eq!(
        store
            .requeue_jobs(Some(now.plus_seconds(16)), now)
            .await
            .unwrap(),
        1
    );
    let again = store
        .claim_job("w2", now, now.plus_seconds(15))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.uid, again.attempts), (job.uid, 2));
    assert!(
        !store
            .extend_lease(job.uid, "w", now.plus_seconds(30))
            .await
            .unwrap(),
        "the first worker lost it"
    );

    let end = SessionEnd {
        plan_status: PlanStatus::Completed,
        session_status: SessionStatus::Success,
        message: None,
        action_status: "succeed",
        action_expires_at: now.plus_seconds(300),
    };
    store.finish_session(first.uid, &end, now).await.unwrap();
    assert_eq!(
        store
            .get_plan(Scope::All, plan.instance_uid)
            .await
            .unwrap()
            .unwrap()
            .status,
        PlanStatus::Completed
    );
    assert!(
        store
            .claim_job("w3", now, now.plus_seconds(15))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .get_action(first.action.uid, now)
            .await
            .unwrap()
            .unwrap()
            .status,
        "succeed"
    );

    let later = now.plus_seconds(301);
    assert!(
        store
            .get_action(first.action.uid, later)
            .await
            .unwrap()
            .is_none(),
        "expired actions are not shown"
    );
    assert!(store.purge_expired(later).await.unwrap() >= 1);
    assert!(
        store
            .get_action(first.action.uid, now)
            .await
            .unwrap()
            .is_none(),
        "and are deleted by the purge"
    );
}

/// Many workers claiming at once (on PostgreSQL: many connections racing) take every ready
/// job exactly once, and concurrent log lines of one session get distinct numbers.
#[tokio::test]
async fn racing_workers_claim_each_job_once() {
    let fleet = demo_fleet(Timestamp::now());
    let store = common::fresh_store().await;
    store.import_fleet(&fleet).await.unwrap();
    let ready: Vec<_> = store
        .list_plans(&standby_store::ListQuery {
            scope: Scope::All,
            server: None,
            plan: None,
            filter: standby_query::Filter::And(vec![]),
            order: standby_query::SortOrder::default_for(&standby_store::catalog::PLAN_CATALOG),
            paging: standby_query::Paging {
                limit: 500,
                offset: 0,
            },
        })
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.status == PlanStatus::Ready)
        .collect();
    assert!(ready.len() >= 10, "the demo has ready plans");
    let now = Timestamp::now();
    for plan in &ready {
        let session = NewSession {
            uid: Uuid::now_v7(),
            plan_uid: plan.instance_uid,
            kind: SessionKind::Test,
            requested_point: None,
            started_by: "test".into(),
            action: NewAsyncAction {
                uid: Uuid::now_v7(),
                initiator_uid: Uuid::nil(),
                action_name: "StartBackupFailoverPlan".into(),
                query_parameters: BTreeMap::new(),
                result: "{}".into(),
            },
        };
        assert!(
            store
                .begin_session(Scope::All, &session, now)
                .await
                .unwrap()
        );
    }
    let mut workers = Vec::new();
    for worker in 0..12 {
        let store = store.store.clone();
        workers.push(tokio::spawn(async move {
            let mut claimed = Vec::new();
            while let Some(job) = store
                .claim_job(&format!("w{worker}"), now, now.plus_seconds(60))
                .await
                .unwrap()
            {
                claimed.push(job.session_uid);
            }
            claimed
        }));
    }
    let mut claimed = Vec::new();
    for worker in workers {
        claimed.extend(worker.await.unwrap());
    }
    let distinct: std::collections::BTreeSet<_> = claimed.iter().collect();
    assert_eq!(claimed.len(), ready.len(), "every job claimed once");
    assert_eq!(distinct.len(), ready.len());

    // Ten log lines appended at once to one session all land, numbered without collision.
    let session = claimed[0];
    let mut appends = Vec::new();
    for line in 0..10 {
        let store = store.store.clone();
        appends.push(tokio::spawn(async move {
            let message = standby_model::SessionMessage {
                title: format!("vm-{line}"),
                description: "ok".into(),
                severity: standby_model::MessageSeverity::Success,
                start_time: None,
                end_time: None,
            };
            store.append_session_message(session, &message).await
        }));
    }
    for append in appends {
        append.await.unwrap().unwrap();
    }
    let work = store.session_work(session).await.unwrap().unwrap();
    assert_eq!(work.message_titles.len(), 10, "{:?}", work.message_titles);
}

//! The session lifecycle in the store: accept, claim, finish, expire.

mod common;

use std::collections::BTreeMap;

use standby_fleet::demo::demo_fleet;
use standby_model::{PlanStatus, SessionKind, SessionStatus, Timestamp};
use standby_store::{NewAsyncAction, NewSession, Scope, SessionEnd, StoreError};
use uuid::Uuid;

/// The store's Ready plans (the demo has many), in default order.
async fn ready_plans(store: &common::TestStore) -> Vec<standby_model::FailoverPlan> {
    store
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
        .collect()
}

#[tokio::test]
async fn a_session_is_accepted_once_claimed_finished_and_its_action_expires() {
    let fleet = demo_fleet(Timestamp::now());
    let store = common::fresh_store().await;
    store.import_fleet(&fleet).await.unwrap();
    let plan = ready_plans(&store).await.remove(0);
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
        idempotent_answer: None,
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
    let ready = ready_plans(&store).await;
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
            idempotent_answer: None,
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

/// Issue 14, defect 7: the process dies after a start under an `X-Request-id` committed and before
/// its answer was recorded on its own. The answer went in with the session, so the retry is a
/// replay of that answer, not "still being processed" and then "already running".
#[tokio::test]
async fn a_start_and_its_idempotent_answer_commit_together() {
    let store = common::fresh_store().await;
    store
        .import_fleet(&demo_fleet(Timestamp::now()))
        .await
        .unwrap();
    let plan = ready_plans(&store).await.remove(0);
    let request_id = Uuid::now_v7();
    let key = standby_store::IdempotencyKey {
        request_id,
        principal_uid: Uuid::from_u128(7),
        fingerprint: "POST start".into(),
    };
    let now = Timestamp::now();
    let later = now.plus_seconds(300);
    assert_eq!(
        store.reserve_request(&key, now, later).await.unwrap(),
        standby_store::Reservation::Fresh
    );
    let answer = standby_store::StoredResponse {
        status: 200,
        headers: vec![(
            "location".into(),
            format!("/api/v3/asyncActions/{request_id}"),
        )],
        body: br#"{"data":{},"errors":[]}"#.to_vec(),
    };
    let session = NewSession {
        uid: Uuid::now_v7(),
        plan_uid: plan.instance_uid,
        kind: SessionKind::Test,
        requested_point: None,
        started_by: "test".into(),
        action: NewAsyncAction {
            uid: request_id,
            initiator_uid: key.principal_uid,
            action_name: "StartBackupFailoverPlan".into(),
            query_parameters: BTreeMap::new(),
            result: "{}".into(),
        },
        idempotent_answer: Some((request_id, answer.clone())),
    };
    assert!(
        store
            .begin_session(Scope::All, &session, now)
            .await
            .unwrap()
    );
    // No complete_request: the process is gone. The retry, even after the abandoned-reservation
    // time has passed, replays the answer.
    for at in [now.plus_seconds(1), now.plus_seconds(121)] {
        assert_eq!(
            store.reserve_request(&key, at, later).await.unwrap(),
            standby_store::Reservation::Replay(answer.clone()),
        );
    }
}

//! The session lifecycle in the store: accept, claim, finish, expire.

mod common;

use std::collections::BTreeMap;

use standby_fleet::demo::demo_fleet;
use standby_model::{ActionStatus, PlanStatus, SessionKind, SessionStatus, Timestamp};
use standby_store::{
    LeaseRenewal, NewAsyncAction, NewSession, Scope, SessionEnd, StoreError, VmStep,
};
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
    assert_eq!(again.epoch, job.epoch + 1, "every claim raises the epoch");
    assert_eq!(
        store
            .extend_lease(job.fence(), now.plus_seconds(30))
            .await
            .unwrap(),
        LeaseRenewal::Lost,
        "the first worker lost it"
    );
    assert_eq!(
        store
            .extend_lease(again.fence(), now.plus_seconds(30))
            .await
            .unwrap(),
        LeaseRenewal::Held {
            cancel_requested: false
        }
    );

    let end = SessionEnd {
        plan_status: PlanStatus::Completed,
        session_status: SessionStatus::Success,
        message: None,
        action_status: ActionStatus::Succeeded,
        action_expires_at: now.plus_seconds(300),
    };
    // The first worker's claim is stale: its end is refused and changes nothing.
    assert!(matches!(
        store
            .finish_session(job.fence(), first.uid, &end, now)
            .await,
        Err(StoreError::Fenced { .. })
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
    store
        .finish_session(again.fence(), first.uid, &end, now)
        .await
        .unwrap();
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
        ActionStatus::Succeeded
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
    assert!(
        store
            .purge_expired(later, &Default::default())
            .await
            .unwrap()
            .total()
            >= 1
    );
    assert!(
        store
            .get_action(first.action.uid, now)
            .await
            .unwrap()
            .is_none(),
        "and are deleted by the purge"
    );
}

/// A fresh store with the demo fleet, and one of its Ready plans.
async fn demo_and_a_ready_plan() -> (common::TestStore, standby_model::FailoverPlan) {
    let store = common::fresh_store().await;
    store
        .import_fleet(&demo_fleet(Timestamp::now()))
        .await
        .unwrap();
    let plan = ready_plans(&store).await.remove(0);
    (store, plan)
}

/// Reserves `request_id` for a request (as the idempotency layer does before a handler runs).
async fn reserve(
    store: &common::TestStore,
    request_id: Uuid,
    fingerprint: &str,
) -> (standby_store::IdempotencyKey, Timestamp, Timestamp) {
    let key = standby_store::IdempotencyKey {
        request_id,
        principal_uid: Uuid::from_u128(7),
        fingerprint: fingerprint.into(),
    };
    let now = Timestamp::now();
    let later = now.plus_seconds(300);
    assert_eq!(
        store.reserve_request(&key, now, later).await.unwrap(),
        standby_store::Reservation::Fresh
    );
    (key, now, later)
}

/// A start (or undo) of `plan` with nothing else attached.
fn start_of(plan: Uuid, kind: SessionKind) -> NewSession {
    NewSession {
        uid: Uuid::now_v7(),
        plan_uid: plan,
        kind,
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
    }
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
        let session = start_of(plan.instance_uid, SessionKind::Test);
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
                claimed.push(job.clone());
            }
            claimed
        }));
    }
    let mut claimed = Vec::new();
    for worker in workers {
        claimed.extend(worker.await.unwrap());
    }
    let distinct: std::collections::BTreeSet<_> = claimed.iter().map(|j| j.session_uid).collect();
    assert_eq!(claimed.len(), ready.len(), "every job claimed once");
    assert_eq!(distinct.len(), ready.len());

    // Ten log lines appended at once to one session all land, numbered without collision.
    let session = claimed[0].session_uid;
    let fence = claimed[0].fence();
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
            store.append_session_message(fence, session, &message).await
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
    let (store, plan) = demo_and_a_ready_plan().await;
    let request_id = Uuid::now_v7();
    let (key, now, later) = reserve(&store, request_id, "POST start").await;
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

/// Issue 15, fencing: a worker whose job was taken over (its lease ran out, another worker
/// claimed it) has every session write refused, and nothing it tried is visible; the new holder's
/// writes land. Each write checks the epoch in its own transaction.
#[tokio::test]
async fn a_stale_epoch_writes_nothing() {
    let (store, plan) = demo_and_a_ready_plan().await;
    let now = Timestamp::now();
    let session = start_of(plan.instance_uid, SessionKind::Failover);
    assert!(
        store
            .begin_session(Scope::All, &session, now)
            .await
            .unwrap()
    );
    let stale = store
        .claim_job("paused", now, now.plus_seconds(15))
        .await
        .unwrap()
        .unwrap();
    store.requeue_jobs(None, now).await.unwrap();
    let current = store
        .claim_job("successor", now, now.plus_seconds(15))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.epoch, stale.epoch + 1);

    let work = store.session_work(session.uid).await.unwrap().unwrap();
    let vm = work.vms[0].object_uid;
    let step = VmStep {
        uid: Uuid::now_v7(),
        status: standby_model::BackupStatus::Running,
        restore_point_uid: None,
        restore_point_time: None,
        start_time: now,
    };
    let line = standby_model::SessionMessage {
        title: "late".into(),
        description: "from the paused worker".into(),
        severity: standby_model::MessageSeverity::Success,
        start_time: None,
        end_time: None,
    };
    let end = SessionEnd {
        plan_status: PlanStatus::Completed,
        session_status: SessionStatus::Success,
        message: None,
        action_status: ActionStatus::Succeeded,
        action_expires_at: now.plus_seconds(300),
    };
    let fenced = |result: Result<(), StoreError>| matches!(result, Err(StoreError::Fenced { .. }));
    let old = stale.fence();
    assert!(fenced(
        store.record_vm_start(old, session.uid, vm, &step).await
    ));
    assert!(fenced(
        store
            .record_vm_end(
                old,
                session.uid,
                step.uid,
                standby_model::BackupStatus::Success,
                now,
                &line
            )
            .await
    ));
    assert!(fenced(
        store.append_session_message(old, session.uid, &line).await
    ));
    assert!(fenced(
        store.finish_session(old, session.uid, &end, now).await
    ));
    assert!(!store.release_job(old, now).await.unwrap());
    assert!(!store.retry_job(old, "late", now, now).await.unwrap());
    assert_eq!(
        store.extend_lease(old, now.plus_seconds(30)).await.unwrap(),
        LeaseRenewal::Lost
    );

    let work = store.session_work(session.uid).await.unwrap().unwrap();
    assert!(work.vms.iter().all(|v| v.step.is_none()), "no step landed");
    assert!(work.message_titles.is_empty(), "no log line landed");
    assert_eq!(
        store
            .get_plan(Scope::All, plan.instance_uid)
            .await
            .unwrap()
            .unwrap()
            .status,
        PlanStatus::InProgress,
        "the session did not end"
    );
    // The successor is not disturbed: it still holds the job and its writes land.
    assert!(
        store
            .claim_job("third", now, now.plus_seconds(15))
            .await
            .unwrap()
            .is_none()
    );
    store
        .record_vm_start(current.fence(), session.uid, vm, &step)
        .await
        .unwrap();
    store
        .finish_session(current.fence(), session.uid, &end, now)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_plan(Scope::All, plan.instance_uid)
            .await
            .unwrap()
            .unwrap()
            .status,
        PlanStatus::Completed
    );
}

/// A graceful release hands the job back without counting the attempt; an error's retry keeps
/// the error and waits for its backoff.
#[tokio::test]
async fn releases_do_not_count_and_retries_wait() {
    let (store, plan) = demo_and_a_ready_plan().await;
    let now = Timestamp::now();
    let session = start_of(plan.instance_uid, SessionKind::Test);
    assert!(
        store
            .begin_session(Scope::All, &session, now)
            .await
            .unwrap()
    );
    let first = store
        .claim_job("w", now, now.plus_seconds(15))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.attempts, 1);
    assert!(store.release_job(first.fence(), now).await.unwrap());
    let second = store
        .claim_job("w", now, now.plus_seconds(15))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.attempts, 1, "a shutdown's release is not an attempt");
    assert!(
        store
            .retry_job(
                second.fence(),
                "the store went away",
                now.plus_seconds(10),
                now
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_job("w", now.plus_seconds(5), now.plus_seconds(20))
            .await
            .unwrap()
            .is_none(),
        "not before its backoff"
    );
    let third = store
        .claim_job("w", now.plus_seconds(10), now.plus_seconds(25))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(third.attempts, 2);
    assert_eq!(third.last_error.as_deref(), Some("the store went away"));
}

/// Issue 15: the sim's ledger tells the truth. A second submission of an operation id is
/// counted (not hidden) and keeps the first plan; an operation ends once, and a second end (a
/// node that finished it late) changes nothing, not even the replica.
#[tokio::test]
async fn the_sim_ledger_counts_every_submission_and_ends_once() {
    use standby_store::{ReplicaChange, SimOutcome};
    let (store, plan) = demo_and_a_ready_plan().await;
    let object = store
        .list_objects(&standby_store::ListQuery {
            scope: Scope::All,
            server: None,
            plan: Some(plan.instance_uid),
            filter: standby_query::Filter::And(vec![]),
            order: standby_query::SortOrder::default_for(&standby_store::catalog::OBJECT_CATALOG),
            paging: standby_query::Paging {
                limit: 1,
                offset: 0,
            },
        })
        .await
        .unwrap()
        .items[0]
        .instance_uid;
    let sim = store.sim_ledger();
    let now = Timestamp::now();
    let first = sim
        .submit("s/vm", Some(object), "failover", "first", now)
        .await
        .unwrap();
    assert_eq!(
        (first.executions, first.plan.as_deref()),
        (1, Some("first"))
    );
    let second = sim
        .submit("s/vm", Some(object), "failover", "second", now)
        .await
        .unwrap();
    assert_eq!(
        (second.executions, second.plan.as_deref()),
        (2, Some("first")),
        "counted, and the first plan kept"
    );
    let running = ReplicaChange::Running {
        vm: object,
        test: false,
        point: Uuid::now_v7(),
    };
    assert!(
        sim.complete("s/vm", SimOutcome::Succeeded, "up", Some(running), now)
            .await
            .unwrap()
    );
    assert_eq!(
        sim.replica_state(object).await.unwrap().as_deref(),
        Some("failover")
    );
    assert!(
        !sim.complete(
            "s/vm",
            SimOutcome::Failed,
            "late",
            Some(ReplicaChange::Reverted { vm: object }),
            now
        )
        .await
        .unwrap(),
        "a second end is refused"
    );
    assert_eq!(
        sim.replica_state(object).await.unwrap().as_deref(),
        Some("failover")
    );
    let entry = sim.operation("s/vm").await.unwrap().unwrap();
    assert_eq!(
        (entry.outcome, entry.message.as_deref()),
        (Some(SimOutcome::Succeeded), Some("up"))
    );
    let page = sim.operations(10, 0).await.unwrap();
    assert_eq!((page.total, page.items[0].executions), (1, 2));
}

/// Issue 14's last gap: a PATCH under an `X-Request-id` keeps its answer in the change's own
/// transaction, so a retry after the process died between the two replays it (it used to wait
/// out the reservation and then patch again). And the answer built before the commit is the
/// plan the store then reads back.
#[tokio::test]
async fn a_patch_and_its_idempotent_answer_commit_together() {
    let (store, plan) = demo_and_a_ready_plan().await;
    let request_id = Uuid::now_v7();
    let (key, now, later) = reserve(&store, request_id, "PATCH plan").await;
    let answer = standby_store::StoredResponse {
        status: 200,
        headers: vec![],
        body: br#"{"data":{}}"#.to_vec(),
    };
    let change = standby_store::CommandChange {
        pre_failover_command: Some("C:\\new.ps1".into()),
        post_failover_command: Some(String::new()),
    };
    let expected = change.applied_to(&plan);
    let patched = store
        .update_plan_commands(
            Scope::All,
            &plan,
            &change,
            Some(&(request_id, answer.clone())),
        )
        .await
        .unwrap()
        .unwrap();
    let stored = store
        .get_plan(Scope::All, plan.instance_uid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (&patched, &stored),
        (&expected, &expected),
        "the answer built before the commit is the plan as stored"
    );
    for at in [now.plus_seconds(1), now.plus_seconds(121)] {
        assert_eq!(
            store.reserve_request(&key, at, later).await.unwrap(),
            standby_store::Reservation::Replay(answer.clone()),
        );
    }
}

/// A PATCH applies only to the plan as its caller read it: computed on a read that another
/// PATCH, or a whole session, has since made stale, it is refused with a conflict and changes
/// nothing, so an accepted PATCH's answer (that read with the change) is always the stored plan.
#[tokio::test]
async fn a_patch_computed_on_a_stale_read_is_refused() {
    let (store, plan) = demo_and_a_ready_plan().await;
    let change = |command: &str| standby_store::CommandChange {
        pre_failover_command: Some(command.into()),
        post_failover_command: None,
    };
    let stored = |store: &common::TestStore| {
        let store = store.store.clone();
        let uid = plan.instance_uid;
        async move { store.get_plan(Scope::All, uid).await.unwrap().unwrap() }
    };
    store
        .update_plan_commands(Scope::All, &plan, &change("C:\\first.ps1"), None)
        .await
        .unwrap()
        .unwrap();
    let refused = store
        .update_plan_commands(Scope::All, &plan, &change("C:\\second.ps1"), None)
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(stored(&store).await.pre_failover_command, "C:\\first.ps1");

    // Read, then a session starts and ends before the PATCH is written: same commands, but
    // another status and last session than the PATCH would answer.
    let read = stored(&store).await;
    let session = start_of(plan.instance_uid, SessionKind::Failover);
    let now = Timestamp::now();
    assert!(
        store
            .begin_session(Scope::All, &session, now)
            .await
            .unwrap()
    );
    let job = store
        .claim_job("w", now, now.plus_seconds(15))
        .await
        .unwrap()
        .unwrap();
    let end = SessionEnd {
        plan_status: PlanStatus::Completed,
        session_status: SessionStatus::Success,
        message: None,
        action_status: ActionStatus::Succeeded,
        action_expires_at: now.plus_seconds(300),
    };
    store
        .finish_session(job.fence(), session.uid, &end, now)
        .await
        .unwrap();
    let refused = store
        .update_plan_commands(Scope::All, &read, &change("C:\\third.ps1"), None)
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    let after = stored(&store).await;
    assert_eq!(after.pre_failover_command, "C:\\first.ps1");
    assert_eq!(after.status, PlanStatus::Completed);
}

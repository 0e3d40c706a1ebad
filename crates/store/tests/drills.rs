//! The drill store's compare-and-set writes, on the backend under test: an occurrence is
//! claimed once, a run's plan is moved once from a given state, a deleted drill keeps its
//! settings for its open runs, and a session names the drill that started it.

mod common;

use standby_fleet::demo::demo_fleet;
use standby_model::Timestamp;
use standby_store::drills::{
    DrillPlanMove, DrillPlanState, DrillPlans, DrillRecord, NewDrillRunPlan,
};
use standby_store::{ListQuery, Scope};
use uuid::Uuid;

fn drill(plans: Vec<Uuid>, next: Timestamp) -> DrillRecord {
    DrillRecord {
        uid: Uuid::now_v7(),
        name: "Nightly".into(),
        owner: Scope::All,
        owner_organization_uid: Uuid::now_v7(),
        created_by_uid: Uuid::now_v7(),
        created_by: "admin".into(),
        plans: DrillPlans::Listed(plans),
        schedule: "0 2 * * *".into(),
        time_zone: "UTC".into(),
        ttl_seconds: 60,
        max_parallel_vms: 10,
        stop_after_failures: 0,
        paused: false,
        next_run_at: Some(next),
        created_at: Timestamp::now(),
    }
}

#[tokio::test]
async fn an_occurrence_is_claimed_once_and_a_plan_moves_once() {
    let store = common::fresh_store().await;
    let now = Timestamp::now();
    store.import_fleet(&demo_fleet(now)).await.unwrap();
    let plans = store
        .list_plans(&ListQuery {
            scope: Scope::All,
            server: None,
            plan: None,
            filter: standby_query::Filter::And(Vec::new()),
            order: standby_query::SortOrder::default_for(&standby_store::catalog::PLAN_CATALOG),
            paging: standby_query::Paging {
                limit: 2,
                offset: 0,
            },
        })
        .await
        .unwrap()
        .items;
    let plan = plans[0].instance_uid;
    let due = now.plus_seconds(-1);
    let record = drill(vec![plan], due);
    store.create_drill(&record).await.unwrap();
    assert_eq!(store.due_drills(now).await.unwrap().len(), 1);

    let run = Uuid::now_v7();
    let opening = || {
        Some((
            run,
            vec![NewDrillRunPlan {
                plan_uid: plan,
                vms: 3,
                skipped: None,
            }],
        ))
    };
    let next = Some(now.plus_seconds(86_400));
    // Two nodes that both saw the occurrence due: the first claims it, the second nothing.
    assert!(
        store
            .claim_drill_occurrence(record.uid, due, next, opening(), now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_drill_occurrence(record.uid, due, next, None, now)
            .await
            .unwrap(),
        "a second claim of the same occurrence must fail, even one that opens no run"
    );
    assert!(store.due_drills(now).await.unwrap().is_empty());
    let open = store.open_drill_runs().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].plans[0].state, DrillPlanState::Pending);

    // A move from Pending happens once; a stale node's move from Pending does nothing.
    let test = Uuid::now_v7();
    let mut testing = DrillPlanMove::to(DrillPlanState::Testing);
    testing.test_session_uid = Some(test);
    assert!(
        store
            .move_drill_plan(run, plan, DrillPlanState::Pending, &testing, now)
            .await
            .unwrap()
    );
    let mut stale = DrillPlanMove::to(DrillPlanState::Testing);
    stale.test_session_uid = Some(Uuid::now_v7());
    assert!(
        !store
            .move_drill_plan(run, plan, DrillPlanState::Pending, &stale, now)
            .await
            .unwrap()
    );
    let mut due_undo = DrillPlanMove::to(DrillPlanState::UndoDue);
    due_undo.undo_at = Some(Some(now.plus_seconds(60)));
    due_undo.test_verdict = Some("Passed".into());
    assert!(
        store
            .move_drill_plan(run, plan, DrillPlanState::Testing, &due_undo, now)
            .await
            .unwrap()
    );
    let row = store
        .drill_run(record.uid, run)
        .await
        .unwrap()
        .unwrap()
        .plans[0]
        .clone();
    assert_eq!(row.state, DrillPlanState::UndoDue);
    assert_eq!(
        row.test_session_uid,
        Some(test),
        "fields a move does not name are kept"
    );
    assert_eq!(row.test_verdict.as_deref(), Some("Passed"));
    assert_eq!(row.undo_at, Some(now.plus_seconds(60)));

    // Giving up on an undo is told through the outbox, in the move's transaction; a move from
    // a state the plan is not in tells nothing.
    let before = store.pending_events(1_000).await.unwrap().len();
    assert!(
        !store
            .move_drill_plan(
                run,
                plan,
                DrillPlanState::Undoing,
                &DrillPlanMove::to(DrillPlanState::UndoFailed),
                now
            )
            .await
            .unwrap()
    );
    let mut undoing = DrillPlanMove::to(DrillPlanState::Undoing);
    undoing.undo_attempts = Some(5);
    assert!(
        store
            .move_drill_plan(run, plan, DrillPlanState::UndoDue, &undoing, now)
            .await
            .unwrap()
    );
    let mut given_up = DrillPlanMove::to(DrillPlanState::UndoFailed);
    given_up.reason = Some("undo failed 5 times".into());
    assert!(
        store
            .move_drill_plan(run, plan, DrillPlanState::Undoing, &given_up, now)
            .await
            .unwrap()
    );
    let events = store.pending_events(1_000).await.unwrap();
    assert_eq!(events.len(), before + 1);
    let told = events.last().unwrap();
    assert_eq!(told.name, standby_store::notifications::UNDO_OVERDUE);
    assert_eq!(told.plan_uid, Some(plan));
    assert!(told.body.contains("undo failed 5 times"));

    // Deleted: gone from the lists, but its open run still has its settings.
    assert!(store.delete_drill(record.uid).await.unwrap());
    assert!(
        store
            .get_drill(Scope::All, record.uid)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.list_drills(Scope::All).await.unwrap().is_empty());
    assert!(store.drill_settings(record.uid).await.unwrap().is_some());
    assert!(!store.delete_drill(record.uid).await.unwrap());
    assert_eq!(store.open_drill_runs().await.unwrap().len(), 1);

    let named = store.session_drill(test).await.unwrap().unwrap();
    assert_eq!((named.drill_uid, named.run_uid), (record.uid, run));
    assert!(store.session_drill(Uuid::now_v7()).await.unwrap().is_none());
    assert!(store.finish_drill_run(run, now).await.unwrap());
    assert!(!store.finish_drill_run(run, now).await.unwrap());
}

#[tokio::test]
async fn a_company_sees_only_its_own_drills() {
    let store = common::fresh_store().await;
    let now = Timestamp::now();
    store.import_fleet(&demo_fleet(now)).await.unwrap();
    let company = Uuid::now_v7();
    let mut theirs = drill(vec![], now);
    theirs.plans = DrillPlans::Filter("[]".into());
    theirs.owner = Scope::Organization(company);
    theirs.owner_organization_uid = company;
    store.create_drill(&theirs).await.unwrap();
    let mut providers = drill(vec![], now);
    providers.plans = DrillPlans::Filter("[]".into());
    store.create_drill(&providers).await.unwrap();
    let seen = store
        .list_drills(Scope::Organization(company))
        .await
        .unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0], theirs);
    assert!(
        store
            .get_drill(Scope::Organization(company), providers.uid)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_drill(Scope::Organization(Uuid::now_v7()), theirs.uid)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.list_drills(Scope::All).await.unwrap().len(), 2);
}

//! In-process engine tests: the real engine and a real SQLite store in a temporary directory,
//! with a fake connector whose host the test controls (when operations finish, when the host is
//! unavailable) and which counts every call. These cover what the black-box tests cannot time:
//! a takeover while steps run (fencing, and the successor asking `status` before it submits),
//! retries of an unavailable host, a step's deadline, the attempt cap.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use standby_engine::{
    Action, Connector, ConnectorError, Engine, EngineSettings, Health, Operation, OperationId,
    OperationStatus, Registry, ReplicaState,
};
use standby_model::{PlanStatus, SessionKind, Timestamp};
use standby_store::{NewAsyncAction, NewSession, Scope, SqliteStore, Store};
use tokio::sync::Notify;
use uuid::Uuid;

const FLEET: &str = r#"
[[organizations]]
name = "MSP"
kind = "provider"

[[servers]]
name = "vbr-1"
organization = "MSP"

[[plans]]
name = "p"
server = "vbr-1"
type = "Local"
  [[plans.vms]]
  name = "a"
  restore_points = ["2026-11-01T00:00:00Z"]
  [[plans.vms]]
  name = "b"
  restore_points = ["2026-11-01T00:00:00Z"]
  [[plans.vms]]
  name = "c"
  restore_points = ["2026-11-01T00:00:00Z"]
"#;

/// What the fake host does with operations.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Operations run until the test calls `Host::finish_all`.
    Hold,
    /// The first `n` calls of each kind answer `Unavailable`; then operations finish at once.
    UnavailableFirst(usize),
    /// Every call answers `Unavailable`.
    Offline,
}

/// The fake host: shared by every connector a test builds, as one hypervisor is shared by the
/// nodes that drive it.
struct Host {
    behaviour: Mutex<Behaviour>,
    state: Mutex<HostState>,
    finished: Notify,
}

#[derive(Default)]
struct HostState {
    /// Operation id -> finished?
    operations: BTreeMap<String, bool>,
    /// Accepted submissions per operation id (a known id is counted, not started again).
    submissions: BTreeMap<String, usize>,
    /// Calls per method, per operation id.
    calls: BTreeMap<(&'static str, String), usize>,
    unavailable_left: BTreeMap<String, usize>,
    replicas: BTreeMap<Uuid, bool>,
    released: bool,
}

impl Host {
    fn new(behaviour: Behaviour) -> Arc<Host> {
        Arc::new(Host {
            behaviour: Mutex::new(behaviour),
            state: Mutex::new(HostState::default()),
            finished: Notify::new(),
        })
    }

    fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    fn behaviour(&self) -> Behaviour {
        *self.behaviour.lock().unwrap()
    }

    fn finish_all(&self) {
        let mut state = self.state.lock().unwrap();
        state.released = true;
        for done in state.operations.values_mut() {
            *done = true;
        }
        drop(state);
        self.finished.notify_waiters();
    }

    fn calls(&self, method: &'static str) -> usize {
        let state = self.state.lock().unwrap();
        state
            .calls
            .iter()
            .filter(|((m, _), _)| *m == method)
            .map(|(_, n)| n)
            .sum()
    }

    fn submissions(&self) -> BTreeMap<String, usize> {
        self.state.lock().unwrap().submissions.clone()
    }

    /// Counts the call; `Err` while the host is to be unavailable for this operation.
    fn call(&self, method: &'static str, id: &str) -> Result<(), ConnectorError> {
        let behaviour = self.behaviour();
        let mut state = self.state.lock().unwrap();
        *state.calls.entry((method, id.to_string())).or_default() += 1;
        if behaviour == Behaviour::Offline {
            return Err(ConnectorError::Unavailable {
                reason: "offline".into(),
                retry_after: Duration::from_millis(10),
            });
        }
        if let Behaviour::UnavailableFirst(n) = behaviour {
            let left = state.unavailable_left.entry(id.to_string()).or_insert(n);
            if *left > 0 {
                *left -= 1;
                return Err(ConnectorError::Unavailable {
                    reason: "maintenance".into(),
                    retry_after: Duration::from_millis(10),
                });
            }
        }
        Ok(())
    }

    fn status_of(&self, id: &OperationId) -> OperationStatus {
        match self.state.lock().unwrap().operations.get(id.as_str()) {
            None => OperationStatus::Unknown,
            Some(false) => OperationStatus::Running,
            Some(true) => OperationStatus::Succeeded {
                detail: "Done.".into(),
            },
        }
    }
}

struct FakeConnector(Arc<Host>);

#[async_trait]
impl Connector for FakeConnector {
    async fn probe(&self, _server: Uuid) -> Result<Health, ConnectorError> {
        Ok(Health {
            online: true,
            detail: "fake".into(),
        })
    }

    async fn submit(&self, operation: &Operation) -> Result<OperationStatus, ConnectorError> {
        self.0.call("submit", operation.id.as_str())?;
        let mut state = self.0.state.lock().unwrap();
        *state
            .submissions
            .entry(operation.id.to_string())
            .or_default() += 1;
        let finished = state.released || self.0.behaviour() != Behaviour::Hold;
        state
            .operations
            .entry(operation.id.to_string())
            .or_insert(finished);
        if let Action::FailOver { vm, .. } = operation.action {
            state.replicas.insert(vm, true);
        }
        drop(state);
        Ok(self.0.status_of(&operation.id))
    }

    async fn status(
        &self,
        _server: Uuid,
        id: &OperationId,
    ) -> Result<OperationStatus, ConnectorError> {
        self.0.call("status", id.as_str())?;
        Ok(self.0.status_of(id))
    }

    async fn wait(
        &self,
        _server: Uuid,
        id: &OperationId,
        timeout: Duration,
    ) -> Result<OperationStatus, ConnectorError> {
        self.0.call("wait", id.as_str())?;
        let notified = self.0.finished.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let status = self.0.status_of(id);
        if status != OperationStatus::Running {
            return Ok(status);
        }
        let _ = tokio::time::timeout(timeout, notified).await;
        Ok(self.0.status_of(id))
    }

    async fn cancel(
        &self,
        _server: Uuid,
        id: &OperationId,
    ) -> Result<OperationStatus, ConnectorError> {
        self.0.call("cancel", id.as_str())?;
        Ok(OperationStatus::Cancelled {
            reason: "Cancelled.".into(),
        })
    }

    async fn replica(&self, _server: Uuid, vm: Uuid) -> Result<ReplicaState, ConnectorError> {
        if self.0.behaviour() == Behaviour::Offline {
            self.0.call("replica", &vm.to_string())?;
        }
        Ok(
            if self.0.state.lock().unwrap().replicas.get(&vm) == Some(&true) {
                ReplicaState::Running { test: false }
            } else {
                ReplicaState::Off
            },
        )
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    plan: Uuid,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let fleet = standby_fleet::FleetFile::parse(FLEET)
        .unwrap()
        .resolve(Timestamp::now())
        .unwrap();
    store.import_fleet(&fleet).await.unwrap();
    let plan = store
        .list_plans(&standby_store::ListQuery {
            scope: Scope::All,
            server: None,
            plan: None,
            filter: standby_query::Filter::And(vec![]),
            order: standby_query::SortOrder::default_for(&standby_store::catalog::PLAN_CATALOG),
            paging: standby_query::Paging {
                limit: 10,
                offset: 0,
            },
        })
        .await
        .unwrap()
        .items[0]
        .instance_uid;
    Setup {
        _dir: dir,
        store,
        plan,
    }
}

fn settings() -> EngineSettings {
    EngineSettings {
        workers: 2,
        lease: Duration::from_secs(60),
        poll_interval: Duration::from_millis(20),
        retry_backoff: Duration::from_millis(10),
        ..EngineSettings::default()
    }
}

fn registry(host: &Arc<Host>) -> Registry {
    Registry::new().with("sim", Arc::new(FakeConnector(host.clone())))
}

async fn start(store: &Arc<dyn Store>, plan: Uuid) -> Uuid {
    begin(store, plan, SessionKind::Failover).await
}

async fn begin(store: &Arc<dyn Store>, plan: Uuid, kind: SessionKind) -> Uuid {
    let session = NewSession {
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
    };
    assert!(
        store
            .begin_session(Scope::All, &session, Timestamp::now())
            .await
            .unwrap()
    );
    session.uid
}

async fn plan_status(store: &Arc<dyn Store>, plan: Uuid) -> standby_model::FailoverPlan {
    store.get_plan(Scope::All, plan).await.unwrap().unwrap()
}

async fn wait_until_done(store: &Arc<dyn Store>, plan: Uuid) -> standby_model::FailoverPlan {
    for _ in 0..1000 {
        let current = plan_status(store, plan).await;
        if !current.status.is_busy() {
            return current;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("plan {plan} did not finish");
}

async fn wait_for_running_steps(store: &Arc<dyn Store>, session: Uuid, count: usize) {
    for _ in 0..500 {
        let work = store.session_work(session).await.unwrap().unwrap();
        if work.vms.iter().filter(|v| v.step.is_some()).count() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the steps did not start");
}

/// A worker loses its job while a step runs (here: its lease is given up as if it had run out,
/// and a second engine claims the job). The successor asks `status` for the running step and
/// does not submit it again. When the host finishes it, the first worker's late write is refused
/// and it stops: it neither starts the next VMs itself nor logs anything, so the session ends
/// once, with one line per VM, and every operation was submitted once. (One boot at a time, so
/// the old worker would have VMs left to start if it were not stopped.)
#[tokio::test]
async fn a_successor_takes_over_and_the_old_worker_is_fenced_off() {
    let Setup {
        _dir, store, plan, ..
    } = setup().await;
    let host = Host::new(Behaviour::Hold);
    let one_at_a_time = || EngineSettings {
        max_parallel_boots: 1,
        ..settings()
    };
    let first = Engine::start(store.clone(), one_at_a_time(), registry(&host), false)
        .await
        .unwrap();
    let session = start(&store, plan).await;
    first.notify();
    wait_for_running_steps(&store, session, 1).await;
    assert_eq!(host.calls("submit"), 1);

    // The first worker's lease "runs out"; another engine claims the job.
    assert_eq!(store.requeue_jobs(None, Timestamp::now()).await.unwrap(), 1);
    let second = Engine::start(store.clone(), one_at_a_time(), registry(&host), false)
        .await
        .unwrap();
    second.notify();
    for _ in 0..500 {
        if host.calls("status") >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        host.calls("status"),
        1,
        "the successor asked about the step"
    );
    assert_eq!(host.calls("submit"), 1, "and did not submit it again");

    host.finish_all();
    let done = wait_until_done(&store, plan).await;
    assert_eq!(done.status, PlanStatus::Completed);
    // Both engines' waits ended; give the old one time to try its writes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let work = store.session_work(session).await.unwrap().unwrap();
    assert_eq!(
        work.message_titles,
        ["a", "b", "c"],
        "one line per VM: the old worker wrote nothing more"
    );
    let submissions = host.submissions();
    assert_eq!(submissions.len(), 3);
    assert!(submissions.values().all(|n| *n == 1), "{submissions:?}");
    first.shutdown(Duration::from_secs(5)).await;
    second.shutdown(Duration::from_secs(5)).await;
}

/// An unavailable host is retried with backoff, asking `status` before each new submission,
/// and the VM succeeds once the host answers: accepted exactly once.
#[tokio::test]
async fn an_unavailable_host_is_retried_and_asked_before_each_resubmission() {
    let Setup {
        _dir, store, plan, ..
    } = setup().await;
    let host = Host::new(Behaviour::UnavailableFirst(3));
    let engine = Engine::start(store.clone(), settings(), registry(&host), false)
        .await
        .unwrap();
    start(&store, plan).await;
    engine.notify();
    let done = wait_until_done(&store, plan).await;
    assert_eq!(done.status, PlanStatus::Completed, "{done:?}");
    // Per VM: submit (unavailable), then status+submit pairs until one gets through.
    assert!(host.calls("status") >= 3, "{}", host.calls("status"));
    let submissions = host.submissions();
    assert_eq!(submissions.len(), 3);
    assert!(submissions.values().all(|n| *n == 1), "{submissions:?}");
    engine.shutdown(Duration::from_secs(5)).await;
}

/// A step that does not finish by its deadline fails its VM with a message naming the cause,
/// the host is asked to cancel it, and the plan ends Failed instead of waiting forever.
#[tokio::test]
async fn a_step_past_its_deadline_fails_its_vm() {
    let Setup {
        _dir, store, plan, ..
    } = setup().await;
    let host = Host::new(Behaviour::Hold);
    let engine = Engine::start(
        store.clone(),
        EngineSettings {
            vm_step_timeout: Duration::from_secs(1),
            ..settings()
        },
        registry(&host),
        false,
    )
    .await
    .unwrap();
    let session = start(&store, plan).await;
    engine.notify();
    let done = wait_until_done(&store, plan).await;
    assert_eq!(done.status, PlanStatus::Failed);
    let last = done.last_session.expect("a last session");
    assert_eq!(
        last.message.as_deref(),
        Some("Failover failed for 3 of the plan's 3 VMs.")
    );
    let history = store.session_history(plan, 1, 0).await.unwrap();
    assert_eq!(history.items[0].uid, session);
    for line in &last.detailed_messages {
        assert_eq!(
            line.description,
            "The step did not finish within 1 s; it was still running and was asked to stop."
        );
    }
    assert_eq!(host.calls("cancel"), 3);
    engine.shutdown(Duration::from_secs(5)).await;
}

/// A session whose every attempt fails (here: its server names a connector this process does
/// not have) is attempted `max_session_attempts` times, then ends Failed with the reason.
#[tokio::test]
async fn a_session_that_always_fails_ends_after_its_attempts() {
    let Setup {
        _dir, store, plan, ..
    } = setup().await;
    let engine = Engine::start(
        store.clone(),
        EngineSettings {
            max_session_attempts: 3,
            ..settings()
        },
        Registry::new(),
        false,
    )
    .await
    .unwrap();
    start(&store, plan).await;
    engine.notify();
    let done = wait_until_done(&store, plan).await;
    assert_eq!(done.status, PlanStatus::Failed);
    assert_eq!(
        done.last_session
            .expect("a last session")
            .message
            .as_deref(),
        Some(
            "Standby gave up on this session after 3 attempts; the last one ended with: no connector named 'sim'"
        )
    );
    assert!(
        store
            .claim_job("probe", Timestamp::now(), Timestamp::now().plus_seconds(5))
            .await
            .unwrap()
            .is_none(),
        "the job is done, not queued again"
    );
    engine.shutdown(Duration::from_secs(5)).await;
}

/// An undo while the host cannot be reached: the replicas' state cannot be read, so each is
/// reverted anyway, the reverts are retried until their deadline, and the plan ends UndoFailed,
/// not Ready with replicas still running.
#[tokio::test]
async fn an_undo_against_an_unreachable_host_fails_instead_of_claiming_success() {
    let Setup {
        _dir, store, plan, ..
    } = setup().await;
    let host = Host::new(Behaviour::UnavailableFirst(0));
    let engine = Engine::start(
        store.clone(),
        EngineSettings {
            vm_step_timeout: Duration::from_secs(1),
            undo_batch_interval: Duration::ZERO,
            ..settings()
        },
        registry(&host),
        false,
    )
    .await
    .unwrap();
    start(&store, plan).await;
    engine.notify();
    assert_eq!(
        wait_until_done(&store, plan).await.status,
        PlanStatus::Completed
    );
    host.set(Behaviour::Offline);
    begin(&store, plan, SessionKind::Undo).await;
    engine.notify();
    let done = wait_until_done(&store, plan).await;
    assert_eq!(done.status, PlanStatus::UndoFailed, "{done:?}");
    let last = done.last_session.expect("a last session");
    assert_eq!(last.detailed_messages.len(), 3);
    for line in &last.detailed_messages {
        assert_eq!(
            line.description,
            "The step did not finish within 1 s; last error: the host is unavailable: offline."
        );
    }
    engine.shutdown(Duration::from_secs(5)).await;
}

/// A user's cancel reaches a step that is waiting to retry an unavailable host: it ends at once
/// with the cancel's code, instead of retrying until its deadline.
#[tokio::test]
async fn a_cancel_ends_steps_waiting_on_an_unavailable_host() {
    let Setup {
        _dir, store, plan, ..
    } = setup().await;
    let host = Host::new(Behaviour::Offline);
    let engine = Engine::start(store.clone(), settings(), registry(&host), false)
        .await
        .unwrap();
    let session = start(&store, plan).await;
    engine.notify();
    for _ in 0..500 {
        if host.calls("replica") >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(store.request_cancel(session).await.unwrap());
    let done = wait_until_done(&store, plan).await;
    assert_eq!(done.status, PlanStatus::Failed);
    let last = done.last_session.expect("a last session");
    for line in &last.detailed_messages {
        assert_eq!(
            line.description,
            "Cancelled by the user (code 1050) while the host did not answer: the host is unavailable: offline."
        );
    }
    engine.shutdown(Duration::from_secs(5)).await;
}

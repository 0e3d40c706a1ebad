//! The running agent: enrollment, then four loops side by side (inventory, heartbeat, command
//! poll, result reports) and one task per operation. Every operation goes through the ledger
//! first, so a duplicate delivery, a restart or a crash never starts its work twice.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use standby_fleet::agent::{
    Command, CommandAction, ENROLLMENT_PREFIX, EnrollRequest, Heartbeat, Inventory, InventoryPlan,
    InventoryVm, OperationResult, Outcome, Results, agent_vm_uid,
};
use standby_model::Timestamp;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};
use uuid::Uuid;

use crate::client::{CallError, ControlPlane};
use crate::driver::{Cancel, CancelHandle, Driver, Finished, Operation, ReplicaEffect, VmTarget};
use crate::ledger::{Ledger, State, action_name};
use crate::manifest::{DriverKind, Manifest};
use crate::qemu::QemuDriver;
use crate::sim::SimDriver;
use crate::state::{self, ServerIdentity};
use crate::{AGENT_VERSION, AgentError, LEDGER_FILE, RunOptions, script};

/// The inventory is pushed again this often even when nothing changed.
const INVENTORY_PERIOD: Duration = Duration::from_secs(600);
/// How often the driver's restore points are compared with what was pushed.
const INVENTORY_CHECK: Duration = Duration::from_secs(30);
/// How often unacknowledged results are posted again.
const RESULT_RETRY: Duration = Duration::from_secs(3);
const RESULT_BATCH: u32 = 100;
const MAX_POLL_WAIT: Duration = Duration::from_secs(30);
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

pub const INTERRUPTED_SCRIPT: &str =
    "the agent restarted while the command ran; it was not run again";

pub(crate) async fn run(
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let manifest = Arc::new(Manifest::load(&options.config)?);
    state::prepare(&options.state_dir)?;
    let ledger = Ledger::open(&options.state_dir.join(LEDGER_FILE)).await?;
    let result = {
        tokio::pin!(shutdown);
        tokio::select! {
            () = &mut shutdown => {
                info!("shutting down");
                Ok(())
            }
            result = serve(&options, manifest, ledger.clone()) => result,
        }
    };
    // The operation tasks were aborted with `serve`; their connections come back as they drop.
    let _ = tokio::time::timeout(Duration::from_secs(5), ledger.close()).await;
    result
}

/// The driver the manifest names, built before enrollment so a bad replica spec stops the agent
/// at once.
enum Drivers {
    Sim(SimDriver),
    Qemu(Box<QemuDriver>),
}

async fn serve(
    options: &RunOptions,
    manifest: Arc<Manifest>,
    ledger: Ledger,
) -> Result<(), AgentError> {
    let driver = match manifest.driver {
        DriverKind::Sim => Drivers::Sim(SimDriver::new(ledger.clone(), manifest.sim)),
        DriverKind::Qemu => {
            Drivers::Qemu(Box::new(QemuDriver::new(&manifest, &options.state_dir)?))
        }
    };
    let host_name = state::host_name();
    let control = ControlPlane::new(&options.control_url, options.ca_cert.as_deref())?;
    let link = Link::new(control.shown_url());
    let (credential, identity) = enrolled(options, &control, &host_name, &link).await?;
    let control = control.with_credential(credential);
    info!(
        url = %control.shown_url(),
        server = %identity.backup_server_name,
        server_uid = %identity.backup_server_uid,
        driver = manifest.driver.as_str(),
        plans = manifest.plans.len(),
        vms = manifest.vm_count(),
        "agent started"
    );
    let parts = Parts {
        manifest,
        server_uid: identity.backup_server_uid,
        host_name,
        ledger,
        control,
        link,
    };
    match driver {
        Drivers::Sim(driver) => drive(options, parts, driver).await,
        Drivers::Qemu(driver) => drive(options, parts, *driver).await,
    }
}

/// What an [`Agent`] is made of besides its driver.
struct Parts {
    manifest: Arc<Manifest>,
    server_uid: Uuid,
    host_name: String,
    ledger: Ledger,
    control: ControlPlane,
    link: Link,
}

async fn drive<D: Driver>(options: &RunOptions, parts: Parts, driver: D) -> Result<(), AgentError> {
    let agent = Arc::new(Agent::new(
        parts.manifest,
        parts.server_uid,
        parts.host_name,
        parts.ledger,
        driver,
        parts.control,
        parts.link,
    ));
    let _abort = AbortOnDrop(Arc::clone(&agent));
    agent.recover().await?;
    tokio::select! {
        result = agent.inventory_loop() => result,
        result = agent.heartbeat_loop(options.heartbeat) => result,
        result = agent.command_loop(options.poll_wait) => result,
        result = agent.report_loop() => result,
    }
}

/// The stored credential, or a new one from the enrollment token.
async fn enrolled(
    options: &RunOptions,
    control: &ControlPlane,
    host_name: &str,
    link: &Link,
) -> Result<(String, ServerIdentity), AgentError> {
    let stored = state::load(&options.state_dir)?;
    let Some(token) = options.enroll.as_deref().map(str::trim) else {
        return stored.ok_or(AgentError::NotEnrolled);
    };
    // A token with a credential stored: after `servers reenroll` the token replaces the revoked
    // credential (the ledger stays, so nothing runs twice); a token that was used already (a
    // unit that still passes it) is refused, and the stored credential goes on.
    if !token.starts_with(ENROLLMENT_PREFIX) {
        return Err(AgentError::Enrollment(format!(
            "the --enroll value is not an enrollment token (those start with {ENROLLMENT_PREFIX})"
        )));
    }
    let request = EnrollRequest {
        token: token.to_owned(),
        agent_version: AGENT_VERSION.to_owned(),
        host_name: host_name.to_owned(),
    };
    let mut backoff = Backoff::default();
    loop {
        match control.enroll(&request).await {
            Ok(enrolled) => {
                link.up();
                let identity = ServerIdentity {
                    backup_server_uid: enrolled.backup_server_uid,
                    backup_server_name: enrolled.backup_server_name,
                };
                state::save(&options.state_dir, &enrolled.credential, &identity)?;
                info!(
                    server = %identity.backup_server_name,
                    server_uid = %identity.backup_server_uid,
                    state_dir = %options.state_dir.display(),
                    "enrolled"
                );
                return Ok((enrolled.credential, identity));
            }
            Err(CallError::Unauthorized(message)) | Err(CallError::Refused { message, .. })
                if stored.is_some() =>
            {
                let Some((credential, identity)) = stored else {
                    return Err(AgentError::NotEnrolled);
                };
                info!(
                    server = %identity.backup_server_name,
                    refused = %message,
                    "the --enroll token was refused; going on with the stored credential"
                );
                return Ok((credential, identity));
            }
            Err(CallError::Unauthorized(message)) | Err(CallError::Refused { message, .. }) => {
                return Err(AgentError::Enrollment(format!(
                    "{message} (an enrollment token works once; ask an administrator for a new one)"
                )));
            }
            Err(CallError::Unavailable(message)) => {
                link.down("enrolling", &message);
                tokio::time::sleep(backoff.next_wait()).await;
            }
        }
    }
}

/// Whether the control plane answers; an outage is logged once, not at every call.
pub(crate) struct Link {
    url: String,
    down: AtomicBool,
    outages: AtomicU64,
}

impl Link {
    pub(crate) fn new(url: &str) -> Link {
        Link {
            url: url.to_owned(),
            down: AtomicBool::new(false),
            outages: AtomicU64::new(0),
        }
    }

    fn down(&self, during: &str, message: &str) {
        if self.down.swap(true, Ordering::SeqCst) {
            debug!(url = %self.url, "still unreachable ({during}): {message}");
        } else {
            self.outages.fetch_add(1, Ordering::SeqCst);
            warn!(url = %self.url, "the control plane is unreachable ({during}): {message}; retrying until it answers");
        }
    }

    fn up(&self) {
        if self.down.swap(false, Ordering::SeqCst) {
            info!(url = %self.url, "the control plane answers again");
        }
    }

    fn outages(&self) -> u64 {
        self.outages.load(Ordering::SeqCst)
    }
}

#[derive(Default)]
struct Backoff {
    last: Option<Duration>,
}

impl Backoff {
    fn next_wait(&mut self) -> Duration {
        let wait = self
            .last
            .map_or(BACKOFF_FIRST, |last| (last * 2).min(BACKOFF_MAX));
        self.last = Some(wait);
        wait
    }

    fn reset(&mut self) {
        self.last = None;
    }
}

/// How an operation task begins.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Its work has not started: start it (counting the execution).
    Start,
    /// Its work started before the agent restarted: carry on, never start again.
    Resume { started_at: Timestamp },
}

pub(crate) struct Agent<D: Driver> {
    manifest: Arc<Manifest>,
    server_uid: Uuid,
    host_name: String,
    ledger: Ledger,
    driver: D,
    control: ControlPlane,
    link: Link,
    /// The operations running in this process, to cancel them.
    running: Mutex<HashMap<String, CancelHandle>>,
    tasks: Mutex<JoinSet<()>>,
    results_ready: Notify,
}

/// Aborts the operation tasks when the agent stops, however it stops.
struct AbortOnDrop<D: Driver>(Arc<Agent<D>>);

impl<D: Driver> Drop for AbortOnDrop<D> {
    fn drop(&mut self) {
        lock(&self.0.tasks).abort_all();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

impl<D: Driver> Agent<D> {
    pub(crate) fn new(
        manifest: Arc<Manifest>,
        server_uid: Uuid,
        host_name: String,
        ledger: Ledger,
        driver: D,
        control: ControlPlane,
        link: Link,
    ) -> Agent<D> {
        Agent {
            manifest,
            server_uid,
            host_name,
            ledger,
            driver,
            control,
            link,
            running: Mutex::new(HashMap::new()),
            tasks: Mutex::new(JoinSet::new()),
            results_ready: Notify::new(),
        }
    }

    /// Deals with what the last run left unfinished: queued operations start, failovers and
    /// undos resume, scripts fail (their process died with the agent), cancels apply again.
    pub(crate) async fn recover(self: &Arc<Self>) -> Result<(), AgentError> {
        let unfinished = self.ledger.unfinished().await?;
        let running = self.ledger.running_replica_operations().await?;
        let resuming: Vec<String> = unfinished
            .iter()
            .map(|stored| stored.operation_id.clone())
            .collect();
        self.driver.sweep(&resuming, &running).await;
        let mut cancels = Vec::new();
        for stored in unfinished {
            let Some(command) = stored.command else {
                continue;
            };
            let id = command.operation_id.clone();
            match (&command.action, stored.state) {
                (CommandAction::Cancel { .. }, _) => cancels.push((stored.state, command)),
                (_, State::Queued) => {
                    info!(operation = %id, "an operation received before the restart starts now");
                    self.spawn_operation(command, Mode::Start);
                }
                (CommandAction::Script { .. }, _) => {
                    warn!(operation = %id, "{INTERRUPTED_SCRIPT}");
                    let finished = Finished::failed(INTERRUPTED_SCRIPT, ReplicaEffect::None);
                    self.ledger
                        .finish(&id, None, &finished, Timestamp::now())
                        .await?;
                }
                (_, _) => {
                    info!(operation = %id, executions = stored.executions, "resuming an operation the agent was stopped in");
                    let started_at = stored.started_at.unwrap_or_else(Timestamp::now);
                    self.spawn_operation(command, Mode::Resume { started_at });
                }
            }
        }
        for (state, command) in cancels {
            if let CommandAction::Cancel { target } = &command.action {
                if state == State::Queued
                    && self
                        .ledger
                        .start(&command.operation_id, Timestamp::now())
                        .await?
                        .is_none()
                {
                    continue;
                }
                self.apply_cancel(&command, target).await?;
            }
        }
        self.results_ready.notify_one();
        Ok(())
    }

    /// One command as the poll returned it.
    async fn handle_value(self: &Arc<Self>, value: serde_json::Value) -> Result<(), AgentError> {
        match serde_json::from_value::<Command>(value.clone()) {
            Ok(command) => self.handle_command(command).await,
            Err(problem) => {
                let id = value.get("operationId").and_then(|id| id.as_str());
                error!(operation = ?id, "a command this agent cannot read: {problem}");
                if let Some(id) = id {
                    let detail = format!(
                        "agent {AGENT_VERSION} cannot read this command ({problem}); it was not run"
                    );
                    self.ledger
                        .record_unreadable(id, &value, &detail, Timestamp::now())
                        .await?;
                    self.results_ready.notify_one();
                }
                Ok(())
            }
        }
    }

    /// The ledger first: a known operation is never started again.
    pub(crate) async fn handle_command(
        self: &Arc<Self>,
        command: Command,
    ) -> Result<(), AgentError> {
        if let CommandAction::Cancel { target } = &command.action {
            return self.handle_cancel(&command, target).await;
        }
        let id = &command.operation_id;
        match self.ledger.lookup(id).await? {
            Some(stored) if stored.state.is_final() => {
                debug!(operation = %id, "delivered again after it finished: reporting its result again");
                self.ledger.rereport(id).await?;
                self.results_ready.notify_one();
            }
            Some(_) => debug!(operation = %id, "delivered again while under way: ignored"),
            None => {
                if self
                    .ledger
                    .insert_queued(&command, Timestamp::now())
                    .await?
                {
                    self.spawn_operation(command, Mode::Start);
                }
            }
        }
        Ok(())
    }

    fn spawn_operation(self: &Arc<Self>, command: Command, mode: Mode) {
        let (handle, cancel) = CancelHandle::new();
        lock(&self.running).insert(command.operation_id.clone(), handle);
        let agent = Arc::clone(self);
        let mut tasks = lock(&self.tasks);
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move { agent.operate(command, mode, cancel).await });
    }

    async fn operate(self: Arc<Self>, command: Command, mode: Mode, cancel: Cancel) {
        let id = command.operation_id.clone();
        if let Err(problem) = self.operate_inner(&command, mode, cancel).await {
            error!(operation = %id, "{problem}; the operation stays unfinished in the ledger until the agent restarts");
        }
        lock(&self.running).remove(&id);
    }

    async fn operate_inner(
        &self,
        command: &Command,
        mode: Mode,
        cancel: Cancel,
    ) -> Result<(), AgentError> {
        let id = &command.operation_id;
        let action = action_name(&command.action);
        let vm = command.vm_name.as_deref().unwrap_or("-");
        let started_at = match mode {
            Mode::Start => {
                let now = Timestamp::now();
                // Committed before the work starts: this is the start that `executions` counts.
                let Some(execution) = self.ledger.start(id, now).await? else {
                    debug!(operation = %id, "no longer queued (cancelled): not started");
                    return Ok(());
                };
                info!(operation = %id, action, plan = %command.plan_name, vm, execution, "operation started");
                now
            }
            Mode::Resume { started_at } => started_at,
        };
        let (finished, vm_uid) = self.execute(command, mode, started_at, cancel).await;
        let (written, _) = self
            .ledger
            .finish(id, vm_uid, &finished, Timestamp::now())
            .await?;
        if written {
            info!(
                operation = %id,
                action,
                vm,
                outcome = finished.outcome.as_str(),
                detail = first_line(&finished.detail),
                "operation finished"
            );
            self.results_ready.notify_one();
        }
        Ok(())
    }

    /// The work itself; what goes wrong is a failed outcome for the session log.
    async fn execute(
        &self,
        command: &Command,
        mode: Mode,
        started_at: Timestamp,
        cancel: Cancel,
    ) -> (Finished, Option<Uuid>) {
        match &command.action {
            CommandAction::FailOver { vm_uid, .. } | CommandAction::Undo { vm_uid } => {
                let target = match self.target(command, *vm_uid) {
                    Ok(target) => target,
                    Err(detail) => return (Finished::failed(detail, ReplicaEffect::None), None),
                };
                let operation = Operation {
                    id: &command.operation_id,
                    started_at,
                    target,
                };
                let finished = match (mode, &command.action) {
                    (Mode::Resume { .. }, action) => {
                        self.driver
                            .resume(operation, action, command.restore_point_time, cancel)
                            .await
                    }
                    (Mode::Start, CommandAction::FailOver { test, .. }) => {
                        match command.restore_point_time {
                            Some(point) => {
                                self.driver.fail_over(operation, point, *test, cancel).await
                            }
                            None => Finished::failed(
                                format!(
                                    "VM {}: the command names no restore point time",
                                    target.vm.name
                                ),
                                ReplicaEffect::Unchanged,
                            ),
                        }
                    }
                    (Mode::Start, _) => self.driver.undo(operation, cancel).await,
                };
                (finished, Some(target.uid))
            }
            CommandAction::Script {
                command: script,
                when,
                test,
            } => {
                if let Mode::Resume { .. } = mode {
                    return (
                        Finished::failed(INTERRUPTED_SCRIPT, ReplicaEffect::None),
                        None,
                    );
                }
                (
                    self.run_script(command, script, when, *test, cancel).await,
                    None,
                )
            }
            CommandAction::Cancel { .. } => (
                Finished::failed("a cancel is not run as an operation", ReplicaEffect::None),
                None,
            ),
        }
    }

    async fn run_script(
        &self,
        command: &Command,
        script: &str,
        when: &str,
        test: bool,
        cancel: Cancel,
    ) -> Finished {
        let Some(plan) = self.manifest.plan(&command.plan_name) else {
            return Finished::failed(
                format!("plan {} is not configured on this host", command.plan_name),
                ReplicaEffect::None,
            );
        };
        // Only the manifest's command runs: the plan's command can be edited on the control
        // plane (a VSPC PATCH), and a control plane, or anyone who may patch a plan, must not
        // get a shell on the DR host that way.
        let configured = match when {
            "pre" => &plan.pre_failover_command,
            _ => &plan.post_failover_command,
        };
        if script.trim() != configured.trim() {
            return Finished::failed(
                format!(
                    "the {when}-failover command the control plane sent is not plan {}'s in this \
                     host's manifest; only the manifest's command runs (set it there)",
                    plan.name
                ),
                ReplicaEffect::None,
            );
        }
        let script = configured.as_str();
        if script.trim().is_empty() {
            return Finished::succeeded(
                format!("plan {} has no {when}-failover command", plan.name),
                ReplicaEffect::None,
            );
        }
        let env = [
            ("STANDBY_PLAN_NAME", plan.name.clone()),
            ("STANDBY_PLAN_UID", command.plan_uid.to_string()),
            ("STANDBY_SESSION_UID", command.session_uid.to_string()),
            ("STANDBY_SCRIPT_WHEN", when.to_owned()),
            ("STANDBY_TEST", if test { "1" } else { "0" }.to_owned()),
            ("STANDBY_OPERATION_ID", command.operation_id.clone()),
        ];
        script::run_script(script, &env, plan.script_timeout, cancel).await
    }

    /// The manifest's VM a failover or undo names, checked against its UID.
    fn target(&self, command: &Command, vm_uid: Uuid) -> Result<VmTarget<'_>, String> {
        let Some(vm_name) = command.vm_name.as_deref() else {
            return Err("the command names no VM".to_owned());
        };
        let Some((plan, vm)) = self.manifest.vm(&command.plan_name, vm_name) else {
            return Err(format!(
                "plan {} has no VM {vm_name} on this host",
                command.plan_name
            ));
        };
        let uid = agent_vm_uid(self.server_uid, &plan.name, &vm.name);
        if uid != vm_uid {
            return Err(format!(
                "the command's VM {vm_uid} is not plan {}'s VM {vm_name} on this host ({uid})",
                plan.name
            ));
        }
        Ok(VmTarget { plan, vm, uid })
    }

    async fn handle_cancel(
        self: &Arc<Self>,
        command: &Command,
        target: &str,
    ) -> Result<(), AgentError> {
        let id = &command.operation_id;
        match self.ledger.lookup(id).await? {
            Some(stored) if stored.state.is_final() => {
                self.ledger.rereport(id).await?;
                if let Some(target_op) = self.ledger.lookup(target).await?
                    && target_op.state.is_final()
                {
                    self.ledger.rereport(target).await?;
                }
                self.results_ready.notify_one();
                return Ok(());
            }
            Some(_) => return Ok(()),
            None => {
                if !self.ledger.insert_queued(command, Timestamp::now()).await? {
                    return Ok(());
                }
            }
        }
        if self.ledger.start(id, Timestamp::now()).await?.is_none() {
            return Ok(());
        }
        self.apply_cancel(command, target).await
    }

    /// Stops `target` however far it got, then ends the cancel itself (succeeded).
    async fn apply_cancel(&self, command: &Command, target: &str) -> Result<(), AgentError> {
        let now = Timestamp::now();
        let detail = match self.ledger.lookup(target).await? {
            None => {
                self.ledger
                    .cancel_unseen(
                        target,
                        command,
                        "cancelled before it reached this host; it will not run",
                        now,
                    )
                    .await?;
                format!("{target} had not arrived; it will not run")
            }
            Some(stored) if stored.state.is_final() => {
                self.ledger.rereport(target).await?;
                format!("{target} had already finished ({})", stored.state.as_str())
            }
            Some(stored) => {
                let vm_uid = stored
                    .command
                    .as_ref()
                    .and_then(|target| match target.action {
                        CommandAction::FailOver { vm_uid, .. } | CommandAction::Undo { vm_uid } => {
                            Some(vm_uid)
                        }
                        _ => None,
                    });
                let effect = if vm_uid.is_some() {
                    ReplicaEffect::Unchanged
                } else {
                    ReplicaEffect::None
                };
                let before_start = Finished::cancelled("cancelled before it started", effect);
                // Atomic with the start's own claim: a queued operation cancelled here never
                // starts; one that started is asked to stop.
                if self
                    .ledger
                    .finish_queued(target, vm_uid, &before_start, now)
                    .await?
                {
                    format!("{target} had not started; it will not run")
                } else if let Some(handle) = lock(&self.running).get(target) {
                    handle.cancel();
                    format!("asked {target} to stop")
                } else {
                    format!("{target} is not running in this agent")
                }
            }
        };
        info!(operation = %command.operation_id, target, "{detail}");
        let own = Finished::succeeded(detail, ReplicaEffect::None);
        self.ledger
            .finish(&command.operation_id, None, &own, Timestamp::now())
            .await?;
        self.results_ready.notify_one();
        Ok(())
    }

    pub(crate) async fn build_inventory(&self) -> Inventory {
        let mut plans = Vec::with_capacity(self.manifest.plans.len());
        for plan in &self.manifest.plans {
            let mut vms = Vec::with_capacity(plan.vms.len());
            for vm in &plan.vms {
                let restore_points = match self.driver.restore_points(vm).await {
                    Ok(points) => points,
                    Err(problem) => {
                        warn!(plan = %plan.name, vm = %vm.name, "cannot list restore points: {problem}");
                        Vec::new()
                    }
                };
                vms.push(InventoryVm {
                    name: vm.name.clone(),
                    host_name: vm
                        .host_name
                        .clone()
                        .unwrap_or_else(|| self.host_name.clone()),
                    folder_name: vm.folder_name.clone(),
                    path: vm.path.clone(),
                    boot_delay_seconds: vm.boot_delay_seconds,
                    restore_points,
                });
            }
            plans.push(InventoryPlan {
                name: plan.name.clone(),
                plan_type: plan.plan_type.as_str().to_owned(),
                tenant: plan.tenant.clone(),
                pre_failover_command: plan.pre_failover_command.clone(),
                post_failover_command: plan.post_failover_command.clone(),
                rto_target_seconds: plan.targets.rto_seconds,
                rpo_target_seconds: plan.targets.rpo_seconds,
                vms,
            });
        }
        Inventory {
            agent_version: AGENT_VERSION.to_owned(),
            driver: self.driver.name().to_owned(),
            plans,
        }
    }

    /// Pushes the inventory at start, when the restore points change, and every 10 minutes.
    async fn inventory_loop(&self) -> Result<(), AgentError> {
        let mut pushed: Option<(Inventory, Instant)> = None;
        let mut backoff = Backoff::default();
        loop {
            let inventory = self.build_inventory().await;
            let due = pushed
                .as_ref()
                .is_none_or(|(last, at)| *last != inventory || at.elapsed() >= INVENTORY_PERIOD);
            let mut wait = INVENTORY_CHECK;
            if due {
                match self.control.put_inventory(&inventory).await {
                    Ok(applied) => {
                        self.link.up();
                        backoff.reset();
                        let points: usize = inventory
                            .plans
                            .iter()
                            .flat_map(|plan| &plan.vms)
                            .map(|vm| vm.restore_points.len())
                            .sum();
                        info!(
                            plans = applied.plans,
                            vms = applied.vms,
                            restore_points = points,
                            restore_points_added = applied.restore_points_added,
                            plans_removed = ?applied.plans_removed,
                            plans_kept = ?applied.plans_kept,
                            "inventory pushed"
                        );
                        pushed = Some((inventory, Instant::now()));
                    }
                    Err(CallError::Unauthorized(_)) => return Err(AgentError::Revoked),
                    Err(CallError::Refused { status, message }) => {
                        error!(
                            manifest = %self.manifest.path.display(),
                            "the control plane refused the inventory (HTTP {status}): {message}; \
                             fix the manifest and restart the agent"
                        );
                        // Not again until the period ends or the inventory changes.
                        pushed = Some((inventory, Instant::now()));
                    }
                    Err(CallError::Unavailable(message)) => {
                        self.link.down("pushing the inventory", &message);
                        wait = backoff.next_wait();
                    }
                }
            }
            tokio::time::sleep(wait).await;
        }
    }

    async fn heartbeat_loop(&self, every: Duration) -> Result<(), AgentError> {
        let mut ticker = tokio::time::interval(every.max(Duration::from_millis(100)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut refused: Option<String> = None;
        loop {
            ticker.tick().await;
            let heartbeat = Heartbeat {
                agent_version: AGENT_VERSION.to_owned(),
                replicas: self.ledger.replicas().await?,
            };
            match self.control.heartbeat(&heartbeat).await {
                Ok(_) => {
                    self.link.up();
                    refused = None;
                }
                Err(CallError::Unauthorized(_)) => return Err(AgentError::Revoked),
                Err(CallError::Unavailable(message)) => self.link.down("heartbeat", &message),
                Err(CallError::Refused { status, message }) => {
                    if refused.as_deref() != Some(message.as_str()) {
                        error!(
                            "the control plane refused the heartbeat (HTTP {status}): {message}"
                        );
                        refused = Some(message);
                    }
                }
            }
        }
    }

    /// Long-polls for commands; `all=true` on the first poll and after an outage, so that
    /// commands delivered while the agent could not read them come again.
    async fn command_loop(self: &Arc<Self>, wait: Duration) -> Result<(), AgentError> {
        // The control plane answers waits of 0 to 30 s; 0 would make the poll a busy loop.
        let wait = wait.clamp(Duration::from_secs(1), MAX_POLL_WAIT);
        let mut caught_up_at: Option<u64> = None;
        let mut backoff = Backoff::default();
        loop {
            let outages = self.link.outages();
            let all = caught_up_at != Some(outages);
            match self.control.commands(wait, all).await {
                Ok(commands) => {
                    self.link.up();
                    backoff.reset();
                    caught_up_at = Some(outages);
                    if !commands.is_empty() {
                        debug!(count = commands.len(), all, "commands received");
                    }
                    let received: Vec<String> = commands
                        .iter()
                        .filter_map(|command| command.get("operationId")?.as_str())
                        .map(str::to_owned)
                        .collect();
                    for command in commands {
                        self.handle_value(command).await?;
                    }
                    self.acknowledge(received).await;
                }
                Err(CallError::Unauthorized(_)) => return Err(AgentError::Revoked),
                Err(CallError::Unavailable(message)) => {
                    self.link.down("polling for commands", &message);
                    caught_up_at = None;
                    tokio::time::sleep(backoff.next_wait()).await;
                }
                Err(CallError::Refused { status, message }) => {
                    error!(
                        "the control plane refused the poll for commands (HTTP {status}): {message}"
                    );
                    tokio::time::sleep(backoff.next_wait()).await;
                }
            }
        }
    }

    /// Tells the control plane these commands arrived (and are in the ledger), so it does not
    /// deliver them again. Best effort: a lost acknowledgement costs a duplicate delivery, which
    /// the ledger makes harmless.
    async fn acknowledge(&self, received: Vec<String>) {
        if received.is_empty() {
            return;
        }
        let results = received
            .into_iter()
            .map(|operation_id| OperationResult {
                operation_id,
                outcome: Outcome::Running,
                detail: String::new(),
                replica: None,
            })
            .collect();
        if let Err(error) = self.control.post_results(&Results { results }).await {
            debug!(
                ?error,
                "acknowledging commands failed; they may be delivered again"
            );
        }
    }

    /// Posts every final result until the control plane acknowledges it.
    async fn report_loop(&self) -> Result<(), AgentError> {
        loop {
            let batch = self.ledger.unreported(RESULT_BATCH).await?;
            let mut more = false;
            if !batch.is_empty() {
                let ids: Vec<String> = batch
                    .iter()
                    .map(|result| result.operation_id.clone())
                    .collect();
                match self.control.post_results(&Results { results: batch }).await {
                    Ok(()) => {
                        self.link.up();
                        self.ledger.mark_reported(&ids).await?;
                        debug!(count = ids.len(), "results reported");
                        more = ids.len() == RESULT_BATCH as usize;
                    }
                    Err(CallError::Unauthorized(_)) => return Err(AgentError::Revoked),
                    Err(CallError::Unavailable(message)) => {
                        self.link.down("posting results", &message);
                    }
                    Err(CallError::Refused { status, message }) => {
                        error!(
                            count = ids.len(),
                            "the control plane refused results (HTTP {status}): {message}; retrying"
                        );
                    }
                }
            }
            if !more {
                tokio::select! {
                    () = self.results_ready.notified() => {}
                    () = tokio::time::sleep(RESULT_RETRY) => {}
                }
            }
        }
    }

    /// Waits for every operation task (tests).
    #[cfg(test)]
    pub(crate) async fn idle(&self) {
        loop {
            let mut tasks = std::mem::take(&mut *lock(&self.tasks));
            if tasks.is_empty() {
                return;
            }
            while tasks.join_next().await.is_some() {}
        }
    }
}

#[cfg(test)]
mod tests;

//! The `qemu` driver: each VM's replica is a directory with its spec (`vm.toml`) and its
//! restore points (read-only qcow2 files in a chain, `points.toml`). A failover creates an
//! overlay on the chosen point and boots it in a daemonized QEMU named after the operation; test
//! mode boots it with no route anywhere; undo powers it off and deletes the overlay. After a
//! restart a live guest is adopted and a dead one relaunched on its overlay: an operation never
//! gets a second guest.

mod guest;
mod probe;
mod qmp;
pub mod replica;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use standby_fleet::agent::{CommandAction, Outcome};
use standby_model::Timestamp;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{info, warn};
use uuid::Uuid;

use crate::AgentError;
use crate::driver::{Cancel, Driver, DriverError, Finished, Operation, ReplicaEffect};
use crate::manifest::{Accel, Manifest, QemuSettings, Vm};
use guest::{Abandoned, GuestDir, Launch, Launcher};
use replica::{Point, Spec};

/// How often a booting guest is probed.
const PROBE_EVERY: Duration = Duration::from_millis(250);
/// Console lines quoted when a guest fails.
const CONSOLE_LINES: usize = 6;
/// An adopted guest's probe tries before its timeout can end it.
const ADOPTION_GRACE: Duration = Duration::from_secs(10);
/// Probe tries under way at once (each waits up to its own timeout).
const MAX_PROBES_IN_FLIGHT: usize = 16;
/// Launch attempts when QEMU loses the race for its forward port.
const LAUNCH_ATTEMPTS: u32 = 3;

pub struct QemuDriver {
    settings: QemuSettings,
    launcher: Launcher,
    runtime_dir: PathBuf,
    /// By replica directory.
    specs: HashMap<PathBuf, Spec>,
    boots: Semaphore,
    /// One operation at a time per VM.
    vm_locks: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
}

/// Whether KVM can be used: `/dev/kvm` opens for reading and writing.
fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

impl QemuDriver {
    /// Checks every VM's spec and prepares the runtime dir (`[qemu] runtime_dir`, or
    /// `STATE_DIR/qemu`).
    pub fn new(manifest: &Manifest, state_dir: &Path) -> Result<QemuDriver, AgentError> {
        let settings = manifest.qemu.clone();
        let runtime_dir = settings
            .runtime_dir
            .clone()
            .unwrap_or_else(|| state_dir.join("qemu"));
        std::fs::create_dir_all(&runtime_dir).map_err(|error| {
            AgentError::Config(format!(
                "{}: cannot create the qemu runtime dir: {error}",
                runtime_dir.display()
            ))
        })?;
        let runtime_dir = std::fs::canonicalize(&runtime_dir).unwrap_or(runtime_dir);
        if runtime_dir.to_str().is_none() {
            return Err(AgentError::Config(format!(
                "{}: the qemu runtime dir's path is not UTF-8 (QEMU's options need one); set \
                 [qemu] runtime_dir",
                runtime_dir.display()
            )));
        }
        let socket_length = runtime_dir.as_os_str().len() + 1 + guest::DIR_SUFFIX_LEN;
        if socket_length > guest::MAX_SOCKET_PATH {
            return Err(AgentError::Config(format!(
                "{}: the qemu runtime dir's path is too long for a QMP socket ({socket_length} of \
                 {} bytes); set a shorter [qemu] runtime_dir",
                runtime_dir.display(),
                guest::MAX_SOCKET_PATH
            )));
        }
        let mut specs = HashMap::new();
        for plan in &manifest.plans {
            for vm in &plan.vms {
                let Some(dir) = &vm.replica else {
                    return Err(AgentError::Config(format!(
                        "{}: plan \"{}\" VM \"{}\": replica = \"DIR\" is missing",
                        manifest.path.display(),
                        plan.name,
                        vm.name
                    )));
                };
                let spec = Spec::load(dir).map_err(AgentError::Config)?;
                specs.insert(dir.clone(), spec);
            }
        }
        let kvm = match settings.accel {
            Accel::Tcg => false,
            Accel::Kvm => {
                if !kvm_usable() {
                    return Err(AgentError::Config(format!(
                        "{}: [qemu] accel = \"kvm\" but /dev/kvm cannot be opened for reading \
                         and writing (use accel = \"auto\" or \"tcg\")",
                        manifest.path.display()
                    )));
                }
                true
            }
            Accel::Auto => kvm_usable(),
        };
        info!(
            accel = if kvm { "kvm" } else { "tcg" },
            runtime_dir = %runtime_dir.display(),
            max_parallel_boots = settings.max_parallel_boots,
            "qemu driver ready"
        );
        Ok(QemuDriver {
            launcher: Launcher {
                qemu_binary: settings.qemu_binary.clone(),
                kvm,
            },
            boots: Semaphore::new(settings.max_parallel_boots),
            settings,
            runtime_dir,
            specs,
            vm_locks: Mutex::new(HashMap::new()),
        })
    }

    fn spec(&self, vm: &Vm) -> Result<&Spec, String> {
        vm.replica
            .as_ref()
            .and_then(|dir| self.specs.get(dir))
            .ok_or_else(|| format!("VM {} has no replica directory on this host", vm.name))
    }

    fn vm_lock(&self, uid: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.vm_locks.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(locks.entry(uid).or_default())
    }

    /// The guests on this host that operations launched for the VM, with their records.
    fn guests_of(&self, vm_uid: Uuid) -> Vec<(GuestDir, Launch)> {
        guest::guest_dirs(&self.runtime_dir)
            .into_iter()
            .filter_map(|dir| {
                let record = dir.record().ok()?;
                (record.vm_uid == vm_uid).then_some((dir, record))
            })
            .collect()
    }

    async fn points(&self, spec: &Spec) -> Result<Vec<Point>, String> {
        replica::points(&spec.dir, &self.settings.qemu_img).await
    }

    /// A failover with nothing of its own on the host yet.
    async fn fresh_failover(
        &self,
        operation: Operation<'_>,
        restore_point: Timestamp,
        test: bool,
        cancel: Cancel,
    ) -> Finished {
        let vm = operation.target.vm;
        let spec = match self.spec(vm) {
            Ok(spec) => spec,
            Err(problem) => return Finished::failed(problem, ReplicaEffect::Unchanged),
        };
        if let Some((dir, record)) = self.guests_of(operation.target.uid).into_iter().next() {
            let kind = if record.test {
                "test replica"
            } else {
                "replica"
            };
            if dir.pid().is_none() {
                return Finished::failed(
                    format!(
                        "VM {}: operation {} left a {kind} that no longer runs, with its overlay \
                         (its changes) in {}; undo the plan first",
                        vm.name,
                        record.operation_id,
                        dir.path.display()
                    ),
                    ReplicaEffect::Unchanged,
                );
            }
            // The same failover again (a VSPC client that starts twice): nothing to do. Any
            // other is refused: a test must not pass for production, nor one point for another.
            if record.test == test && record.point_created == restore_point.to_wire() {
                return Finished::succeeded(
                    format!(
                        "VM {}: its {kind} from the restore point of {} is already running \
                         (launched by operation {})",
                        vm.name, record.point_created, record.operation_id
                    ),
                    ReplicaEffect::Unchanged,
                );
            }
            return Finished::failed(
                format!(
                    "VM {}: its {kind} from the restore point of {} is running (operation {}); \
                     undo the plan before failing it over {} from {restore_point}",
                    vm.name,
                    record.point_created,
                    record.operation_id,
                    if test { "as a test" } else { "in production" }
                ),
                ReplicaEffect::Unchanged,
            );
        }
        let points = match self.points(spec).await {
            Ok(points) => points,
            Err(problem) => {
                return Finished::failed(
                    format!("VM {}: {problem}", vm.name),
                    ReplicaEffect::Unchanged,
                );
            }
        };
        let Some(point) = points.iter().find(|point| point.created == restore_point) else {
            return Finished::failed(
                format!(
                    "VM {} has no restore point created at {restore_point} on this host ({} \
                     lists {})",
                    vm.name,
                    spec.dir.join(replica::POINTS_FILE).display(),
                    points
                        .iter()
                        .map(|point| point.created.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                ReplicaEffect::Unchanged,
            );
        };
        let dir = GuestDir::of(&self.runtime_dir, operation.id);
        let record = Launch {
            operation_id: operation.id.to_owned(),
            vm_uid: operation.target.uid,
            plan: operation.target.plan.name.clone(),
            vm: vm.name.clone(),
            point_file: point.file.clone(),
            point_created: point.created.to_wire(),
            test,
            forward_port: 0,
            launches: 0,
            launched_at: guest::wire_now(),
            abandoned: None,
        };
        if let Err(problem) = dir.create(&record) {
            return Finished::failed(
                format!("VM {}: {problem}", vm.name),
                ReplicaEffect::Unchanged,
            );
        }
        self.boot(operation, spec, &dir, record, cancel).await
    }

    /// Launches (or relaunches) the guest in `dir` and waits until it is ready; on any failure
    /// the guest is stopped and its directory removed.
    async fn boot(
        &self,
        operation: Operation<'_>,
        spec: &Spec,
        dir: &GuestDir,
        mut record: Launch,
        cancel: Cancel,
    ) -> Finished {
        let vm = &operation.target.vm.name;
        let _slot = tokio::select! {
            biased;
            () = cancel.cancelled() => {
                return self.discard(dir, Finished::cancelled(
                    format!("VM {vm}: cancelled while waiting for a boot slot; the replica is off"),
                    ReplicaEffect::Unchanged,
                )).await;
            }
            slot = self.boots.acquire() => slot.ok(),
        };
        if let Err(problem) = self.launch(spec, dir, &mut record).await {
            return self
                .discard(
                    dir,
                    Finished::failed(format!("VM {vm}: {problem}"), ReplicaEffect::Unchanged),
                )
                .await;
        }
        info!(operation = %operation.id, vm = %vm, guest = %dir.guest_name(), launches = record.launches, "guest launched");
        match self
            .await_ready(operation, spec, dir, &record, false, cancel)
            .await
        {
            Waited::Over(finished) => finished,
            Waited::Died => {
                let console = dir.console_tail(CONSOLE_LINES);
                self.discard(
                    dir,
                    Finished::failed(
                        format!(
                            "VM {vm}: the guest stopped before it was ready; its overlay was \
                             discarded. Console: {console}"
                        ),
                        ReplicaEffect::Unchanged,
                    ),
                )
                .await
            }
        }
    }

    /// Starts one QEMU process for the guest in `dir`: its overlay if missing, a forward port,
    /// the record (written before the process exists), then QEMU.
    async fn launch(&self, spec: &Spec, dir: &GuestDir, record: &mut Launch) -> Result<(), String> {
        if !dir.has_overlay() {
            dir.create_overlay(&self.settings.qemu_img, &record.point_file)
                .await?;
        }
        record.launches += 1;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if matches!(spec.probe, replica::Probe::Tcp { .. }) {
                record.forward_port = guest::free_port()?;
            }
            record.launched_at = guest::wire_now();
            dir.write_record(record)?;
            match self.launcher.start(dir, spec, record).await {
                Ok(()) => return Ok(()),
                Err(problem)
                    if attempt < LAUNCH_ATTEMPTS && problem.contains("host forwarding rule") =>
                {
                    warn!(vm = %record.vm, "QEMU could not forward its probe port, trying another: {problem}");
                }
                Err(problem) => return Err(problem),
            }
        }
    }

    /// Waits until the guest in `dir` answers its probe, dies, or its time is up.
    async fn await_ready(
        &self,
        operation: Operation<'_>,
        spec: &Spec,
        dir: &GuestDir,
        record: &Launch,
        adopted: bool,
        cancel: Cancel,
    ) -> Waited {
        let vm = &operation.target.vm.name;
        let launched_at = Timestamp::parse(&record.launched_at).unwrap_or(operation.started_at);
        let mut deadline = launched_at.plus_millis(spec.probe_timeout.as_millis() as i64);
        if adopted {
            // The agent may have been down past the probe's timeout while the guest came up:
            // it gets a few tries before it counts as never ready.
            deadline =
                deadline.max(Timestamp::now().plus_millis(ADOPTION_GRACE.as_millis() as i64));
        }
        let address = probe::address(&spec.probe, record.test, record.forward_port);
        let probe_text = probe::describe(&spec.probe, address.as_deref());
        // A new try every tick, without waiting for the last one: a try against a guest whose
        // network is not up yet hangs until its own timeout, and readiness should be seen
        // within a tick of the guest answering.
        let mut tries: JoinSet<Option<String>> = JoinSet::new();
        let mut ticker = tokio::time::interval(PROBE_EVERY);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    return Waited::Over(self.discard(dir, Finished::cancelled(
                        format!("VM {vm}: cancelled while booting; the guest was stopped and its overlay discarded"),
                        ReplicaEffect::Unchanged,
                    )).await);
                }
                _ = ticker.tick() => {}
                Some(answer) = tries.join_next(), if !tries.is_empty() => {
                    if let Ok(Some(answer)) = answer {
                        return Waited::Over(ready(vm, record, &probe_text, address.as_deref(), &answer, launched_at));
                    }
                    continue;
                }
            }
            if dir.pid().is_none() {
                return Waited::Died;
            }
            if Timestamp::now() >= deadline {
                let console = dir.console_tail(CONSOLE_LINES);
                return Waited::Over(
                    self.discard(
                        dir,
                        Finished::failed(
                            format!(
                                "VM {vm}: not ready {} s after its launch ({probe_text} never \
                                 answered); the guest was stopped and its overlay discarded. \
                                 Console: {console}",
                                spec.probe_timeout.as_secs()
                            ),
                            ReplicaEffect::Unchanged,
                        ),
                    )
                    .await,
                );
            }
            if tries.len() < MAX_PROBES_IN_FLIGHT {
                let (probe, dir, address) = (spec.probe.clone(), dir.clone(), address.clone());
                tries.spawn(async move { probe::once(&probe, &dir, address.as_deref()).await });
            }
        }
    }

    /// Stops the guest (no grace: it never became the replica) and removes its directory. The
    /// record says so first, so that a crash in between ends the same way after the restart.
    async fn discard(&self, dir: &GuestDir, finished: Finished) -> Finished {
        if let Ok(mut record) = dir.record() {
            record.abandoned = Some(Abandoned {
                cancelled: finished.outcome == Outcome::Cancelled,
                detail: finished.detail.clone(),
            });
            if let Err(problem) = dir.write_record(&record) {
                warn!(dir = %dir.path.display(), "{problem}");
            }
        }
        let stopped = match guest::stop(dir, None).await {
            Ok(_) => dir.remove().await,
            Err(problem) => Err(problem),
        };
        match stopped {
            Ok(()) => finished,
            Err(problem) => Finished {
                detail: format!("{}; cleaning up failed: {problem}", finished.detail),
                ..finished
            },
        }
    }

    async fn power_off(&self, operation: Operation<'_>) -> Finished {
        let vm = operation.target.vm;
        let timeout = self
            .spec(vm)
            .map(|spec| spec.shutdown_timeout)
            .unwrap_or(Duration::from_secs(60));
        let guests = self.guests_of(operation.target.uid);
        if guests.is_empty() {
            return Finished::succeeded(
                format!("VM {}: the replica is already off", vm.name),
                ReplicaEffect::Set {
                    running: false,
                    test: false,
                },
            );
        }
        let mut done = Vec::new();
        for (dir, record) in guests {
            let stopped = match guest::stop(&dir, Some(timeout)).await {
                Ok(how) => dir.remove().await.map(|()| how),
                Err(problem) => Err(problem),
            };
            match stopped {
                Ok(how) => {
                    let kind = if record.test {
                        "test replica"
                    } else {
                        "replica"
                    };
                    done.push(format!(
                        "{kind} from the restore point of {} powered off ({how}), its overlay and \
                         changes discarded",
                        record.point_created
                    ));
                }
                Err(problem) => {
                    return Finished::failed(
                        format!("VM {}: {problem}", vm.name),
                        ReplicaEffect::Unchanged,
                    );
                }
            }
        }
        Finished::succeeded(
            format!("VM {}: {}", vm.name, done.join("; ")),
            ReplicaEffect::Set {
                running: false,
                test: false,
            },
        )
    }

    /// Carries on with a failover the agent was stopped in: the operation's guest is adopted
    /// when it runs, relaunched on its overlay when it died, launched when it never was.
    async fn resume_failover(
        &self,
        operation: Operation<'_>,
        restore_point: Option<Timestamp>,
        test: bool,
        cancel: Cancel,
    ) -> Finished {
        let vm = operation.target.vm;
        let spec = match self.spec(vm) {
            Ok(spec) => spec,
            Err(problem) => return Finished::failed(problem, ReplicaEffect::Unchanged),
        };
        let dir = GuestDir::of(&self.runtime_dir, operation.id);
        let record = match dir.exists().then(|| dir.record()) {
            None => {
                return match restore_point {
                    Some(point) => self.fresh_failover(operation, point, test, cancel).await,
                    None => Finished::failed(
                        format!("VM {}: the command names no restore point time", vm.name),
                        ReplicaEffect::Unchanged,
                    ),
                };
            }
            Some(Ok(record)) => {
                if let Some(abandoned) = record.abandoned.clone() {
                    info!(operation = %operation.id, vm = %vm.name, "finishing the discard of a boot that ended before the restart");
                    let finished = if abandoned.cancelled {
                        Finished::cancelled(abandoned.detail, ReplicaEffect::Unchanged)
                    } else {
                        Finished::failed(abandoned.detail, ReplicaEffect::Unchanged)
                    };
                    return self.discard(&dir, finished).await;
                }
                record
            }
            Some(Err(problem)) => {
                return Finished::failed(
                    format!("VM {}: {problem}", vm.name),
                    ReplicaEffect::Unchanged,
                );
            }
        };
        if let Some(pid) = dir.pid() {
            // The process carries the guest's name; QMP confirms it is QEMU and answering.
            let confirmed = match qmp::Qmp::connect(&dir.file(guest::QMP_FILE)).await {
                Ok(mut qmp) => qmp.name().await,
                Err(problem) => Err(problem),
            };
            match confirmed {
                Ok(name) if name == dir.guest_name() => {}
                Ok(name) => {
                    warn!(pid, guest = %dir.guest_name(), "QMP names the guest {name}; adopting it by its process")
                }
                Err(problem) => {
                    warn!(pid, guest = %dir.guest_name(), "QMP does not answer ({problem}); adopting the guest by its process")
                }
            }
            info!(operation = %operation.id, vm = %vm.name, guest = %dir.guest_name(), pid, "adopting the running guest");
            let waited = {
                let _slot = self.boots.acquire().await;
                self.await_ready(operation, spec, &dir, &record, true, cancel.clone())
                    .await
            };
            match waited {
                Waited::Over(finished) => return finished,
                // It was dying as the agent came back: a dead guest, relaunched on its overlay
                // (once: a relaunched guest that dies fails the VM).
                Waited::Died => {
                    warn!(operation = %operation.id, vm = %vm.name, "the adopted guest stopped before it was ready: launching it again on its overlay");
                }
            }
        }
        info!(operation = %operation.id, vm = %vm.name, overlay = dir.has_overlay(), "the guest is not running: launching it on its overlay");
        self.boot(operation, spec, &dir, record, cancel).await
    }
}

/// A cancel that came while the operation waited for another one on its VM.
fn waited_for_the_vm(operation: Operation<'_>) -> Finished {
    Finished::cancelled(
        format!(
            "VM {}: cancelled while another operation on the VM was under way; nothing was done",
            operation.target.vm.name
        ),
        ReplicaEffect::Unchanged,
    )
}

/// How waiting for a guest ended.
enum Waited {
    /// Ready, failed (timed out, cancelled): the operation's end.
    Over(Finished),
    /// The guest's process is gone; its directory is as it was.
    Died,
}

/// The success of a failover: the guest answered its probe.
fn ready(
    vm: &str,
    record: &Launch,
    probe_text: &str,
    address: Option<&str>,
    answer: &str,
    launched_at: Timestamp,
) -> Finished {
    let ready_in = (Timestamp::now().ticks() - launched_at.ticks()) as f64 / 1e7;
    let mode = if record.test {
        "test mode, isolated (no route out; only the loopback probe forward)"
    } else {
        "production network"
    };
    let reach = match address {
        Some(address) => format!("; it answers on {address}"),
        None => String::new(),
    };
    Finished::succeeded(
        format!(
            "VM {vm}: booted from the restore point of {} ({}), {mode}; ready in {ready_in:.1} s \
             ({probe_text} answered \"{answer}\"){reach}",
            record.point_created,
            record.point_file.display()
        ),
        ReplicaEffect::Set {
            running: true,
            test: record.test,
        },
    )
}

impl Driver for QemuDriver {
    fn name(&self) -> &'static str {
        "qemu"
    }

    async fn restore_points(&self, vm: &Vm) -> Result<Vec<Timestamp>, DriverError> {
        let spec = self.spec(vm).map_err(DriverError)?;
        let points = self.points(spec).await.map_err(DriverError)?;
        Ok(points.into_iter().map(|point| point.created).collect())
    }

    async fn fail_over(
        &self,
        operation: Operation<'_>,
        restore_point: Timestamp,
        test: bool,
        cancel: Cancel,
    ) -> Finished {
        let lock = self.vm_lock(operation.target.uid);
        let _held = tokio::select! {
            biased;
            () = cancel.cancelled() => return waited_for_the_vm(operation),
            held = lock.lock() => held,
        };
        if GuestDir::of(&self.runtime_dir, operation.id).exists() {
            // Not expected (a start is counted once), but never a second guest for one operation.
            return self
                .resume_failover(operation, Some(restore_point), test, cancel)
                .await;
        }
        self.fresh_failover(operation, restore_point, test, cancel)
            .await
    }

    async fn undo(&self, operation: Operation<'_>, _cancel: Cancel) -> Finished {
        // Not cancellable: a power-off stopped halfway helps no one.
        let lock = self.vm_lock(operation.target.uid);
        let _held = lock.lock().await;
        self.power_off(operation).await
    }

    async fn resume(
        &self,
        operation: Operation<'_>,
        action: &CommandAction,
        restore_point: Option<Timestamp>,
        cancel: Cancel,
    ) -> Finished {
        let lock = self.vm_lock(operation.target.uid);
        let _held = tokio::select! {
            biased;
            () = cancel.cancelled() => return waited_for_the_vm(operation),
            held = lock.lock() => held,
        };
        match action {
            CommandAction::FailOver { test, .. } => {
                self.resume_failover(operation, restore_point, *test, cancel)
                    .await
            }
            CommandAction::Undo { .. } => self.power_off(operation).await,
            CommandAction::Script { .. } | CommandAction::Cancel { .. } => {
                Finished::failed("not an operation of the driver", ReplicaEffect::None)
            }
        }
    }

    async fn sweep(&self, unfinished: &[String], running: &[String]) {
        guest::finish_interrupted(&self.runtime_dir).await;
        let resuming: Vec<String> = unfinished.iter().map(|id| guest::dir_name(id)).collect();
        let up: Vec<String> = running.iter().map(|id| guest::dir_name(id)).collect();
        let mut known_names = Vec::new();
        for dir in guest::guest_dirs(&self.runtime_dir) {
            known_names.push(dir.guest_name());
            let alive = dir.pid().is_some();
            if resuming.contains(&dir.name) {
                continue;
            }
            let record = dir.record();
            if up.contains(&dir.name) {
                if !alive && let Ok(record) = &record {
                    warn!(
                        dir = %dir.path.display(),
                        operation = %record.operation_id,
                        vm = %record.vm,
                        plan = %record.plan,
                        "a replica that should run is not running: its QEMU process ended \
                         (its overlay is kept); undo the plan, then fail it over again"
                    );
                }
                continue;
            }
            match record {
                Ok(record) => warn!(
                    dir = %dir.path.display(),
                    operation = %record.operation_id,
                    vm = %record.vm,
                    plan = %record.plan,
                    running = alive,
                    "orphaned guest: no unfinished operation and no running replica owns it; \
                     left in place (its overlay may hold changes): stop it and delete the directory \
                     if it is not needed"
                ),
                Err(problem) => warn!(
                    dir = %dir.path.display(),
                    running = alive,
                    "orphaned guest directory with no readable record ({problem}); left in place"
                ),
            }
        }
        for (pid, name) in guest::guest_processes() {
            if !known_names.contains(&name) {
                warn!(
                    pid,
                    name = %name,
                    runtime_dir = %self.runtime_dir.display(),
                    "orphaned QEMU process: a standby guest with no directory in this agent's \
                     runtime dir (another agent's, or left behind); left running"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::driver::VmTarget;

    const SPEC: &str = "memory_mib = 128\n[boot]\nkernel = \"vmlinuz\"\n[networks.production]\nkind = \"user\"\n[probe]\nkind = \"tcp\"\nport = 7000\n";
    const HOST: &str = "driver = \"qemu\"\n[qemu]\naccel = \"tcg\"\n[[plans]]\nname = \"P\"\ntype = \"Local\"\n[[plans.vms]]\nname = \"a\"\nreplica = \"vm-a\"\n";

    fn host(root: &Path) -> (Manifest, QemuDriver) {
        let replica = root.join("vm-a");
        std::fs::create_dir_all(&replica).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(replica.join("vmlinuz"), b"kernel").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(replica.join("vm.toml"), SPEC).unwrap_or_else(|e| panic!("{e}"));
        let manifest =
            Manifest::parse(&root.join("host.toml"), HOST).unwrap_or_else(|e| panic!("{e}"));
        let driver =
            QemuDriver::new(&manifest, &root.join("state")).unwrap_or_else(|e| panic!("{e}"));
        (manifest, driver)
    }

    fn record(operation_id: &str, abandoned: Option<Abandoned>) -> Launch {
        Launch {
            operation_id: operation_id.to_owned(),
            vm_uid: Uuid::nil(),
            plan: "P".to_owned(),
            vm: "a".to_owned(),
            point_file: "/nowhere/point.qcow2".into(),
            point_created: Timestamp::now().to_wire(),
            test: true,
            forward_port: 0,
            launches: 1,
            launched_at: Timestamp::now().to_wire(),
            abandoned,
        }
    }

    #[tokio::test]
    async fn a_discard_cut_short_by_a_crash_is_finished_after_the_restart_not_booted_again() {
        let temp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (manifest, driver) = host(temp.path());
        let plan = &manifest.plans[0];
        let operation = Operation {
            id: "session/vm",
            started_at: Timestamp::now(),
            target: VmTarget {
                plan,
                vm: &plan.vms[0],
                uid: Uuid::nil(),
            },
        };
        // The agent died after marking the boot abandoned (cancelled), before the directory went.
        let dir = GuestDir::of(&driver.runtime_dir, operation.id);
        let abandoned = Abandoned {
            cancelled: true,
            detail: "VM a: cancelled while booting".to_owned(),
        };
        dir.create(&record(operation.id, Some(abandoned)))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.file(guest::OVERLAY_FILE), b"overlay").unwrap_or_else(|e| panic!("{e}"));
        let action = CommandAction::FailOver {
            vm_uid: Uuid::nil(),
            restore_point_uid: Uuid::nil(),
            test: true,
        };
        let finished = driver
            .resume(operation, &action, Some(Timestamp::now()), Cancel::never())
            .await;
        assert_eq!(finished.outcome, Outcome::Cancelled, "{finished:?}");
        assert_eq!(finished.detail, "VM a: cancelled while booting");
        assert!(!dir.exists(), "the directory is still there");
        let left: Vec<_> = std::fs::read_dir(&driver.runtime_dir)
            .map(|entries| entries.flatten().map(|entry| entry.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test]
    async fn the_sweep_finishes_removals_and_creations_a_crash_cut_short() {
        let temp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (_, driver) = host(temp.path());
        for name in ["op-00000000000000aa.removing", "op-00000000000000bb.new"] {
            let dir = driver.runtime_dir.join(name);
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(dir.join(guest::OVERLAY_FILE), b"x").unwrap_or_else(|e| panic!("{e}"));
        }
        let kept = GuestDir::of(&driver.runtime_dir, "someone/else");
        kept.create(&record("someone/else", None))
            .unwrap_or_else(|e| panic!("{e}"));
        driver.sweep(&[], &[]).await;
        let left: Vec<String> = std::fs::read_dir(&driver.runtime_dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        // The orphan is reported, never deleted; the leftovers are gone.
        assert_eq!(left, std::slice::from_ref(&kept.name));
    }
}

//! The host's manifest (`HOST.toml`): the plans configured on this host, their VMs, and how the
//! driver finds each VM's restore points. Read once at start and checked whole, so a typo stops
//! the agent with a message naming the file and the field instead of surfacing mid-failover.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use standby_fleet::{SIM_MAX_MS, SimFault};
use standby_model::Timestamp;

use crate::AgentError;

/// The default boot range of a simulated VM, in milliseconds.
pub const DEFAULT_BOOT_MS: (u64, u64) = (300, 900);
pub const DEFAULT_UNDO_MS: u64 = 200;
pub const DEFAULT_SCRIPT_TIMEOUT_SECONDS: u64 = 300;
pub const DEFAULT_RESTORE_POINT_COUNT: u32 = 3;
pub const DEFAULT_RESTORE_POINT_INTERVAL_MINUTES: u32 = 60;
pub const DEFAULT_MAX_PARALLEL_BOOTS: usize = 8;
const MAX_PARALLEL_BOOTS: u32 = 256;
const MAX_RESTORE_POINT_COUNT: u32 = 1000;
/// A year: an interval longer than that is a typo.
const MAX_RESTORE_POINT_INTERVAL_MINUTES: u32 = 525_600;
const MAX_SCRIPT_TIMEOUT_SECONDS: u64 = 86_400;
/// The control plane's limits on what an inventory declares (checked here too, so that the
/// message names the manifest's line of fault instead of an HTTP 400 in the log).
const MAX_NAME: usize = 255;
const MAX_COMMAND: usize = 4_096;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    driver: String,
    #[serde(default)]
    sim: Option<SimFile>,
    #[serde(default)]
    qemu: Option<QemuFile>,
    #[serde(default)]
    plans: Vec<PlanFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QemuFile {
    #[serde(default)]
    accel: Option<String>,
    #[serde(default)]
    qemu_binary: Option<PathBuf>,
    #[serde(default)]
    qemu_img: Option<PathBuf>,
    #[serde(default)]
    max_parallel_boots: Option<u32>,
    #[serde(default)]
    runtime_dir: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimFile {
    #[serde(default)]
    boot_ms: Option<(u64, u64)>,
    #[serde(default)]
    undo_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    name: String,
    #[serde(rename = "type")]
    plan_type: String,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    pre_failover_command: String,
    #[serde(default)]
    post_failover_command: String,
    #[serde(default)]
    script_timeout_seconds: Option<u64>,
    #[serde(default)]
    rto_target_seconds: Option<u32>,
    #[serde(default)]
    rpo_target_seconds: Option<u32>,
    #[serde(default)]
    vms: Vec<VmFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VmFile {
    name: String,
    #[serde(default)]
    host_name: Option<String>,
    #[serde(default)]
    folder_name: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    boot_delay_seconds: u32,
    #[serde(default)]
    restore_points: Option<Vec<String>>,
    #[serde(default)]
    restore_point_count: Option<u32>,
    #[serde(default)]
    restore_point_interval_minutes: Option<u32>,
    #[serde(default)]
    sim_faults: Vec<String>,
    #[serde(default)]
    replica: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    Sim,
    Qemu,
}

impl DriverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::Sim => "sim",
            DriverKind::Qemu => "qemu",
        }
    }
}

/// How the qemu driver runs guests (`[qemu]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuSettings {
    pub accel: Accel,
    pub qemu_binary: PathBuf,
    pub qemu_img: PathBuf,
    /// Guests booting at once (from launch to ready); more wait their turn.
    pub max_parallel_boots: usize,
    /// Where running guests keep their overlay, pidfile and sockets; `None`: `STATE_DIR/qemu`.
    pub runtime_dir: Option<PathBuf>,
}

impl Default for QemuSettings {
    fn default() -> Self {
        QemuSettings {
            accel: Accel::Auto,
            qemu_binary: PathBuf::from("qemu-system-x86_64"),
            qemu_img: PathBuf::from("qemu-img"),
            max_parallel_boots: DEFAULT_MAX_PARALLEL_BOOTS,
            runtime_dir: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// KVM when `/dev/kvm` opens for reading and writing, else TCG.
    Auto,
    Kvm,
    Tcg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimSettings {
    pub boot_ms: (u64, u64),
    pub undo_ms: u64,
}

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            boot_ms: DEFAULT_BOOT_MS,
            undo_ms: DEFAULT_UNDO_MS,
        }
    }
}

/// A checked manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub path: PathBuf,
    pub driver: DriverKind,
    pub sim: SimSettings,
    pub qemu: QemuSettings,
    pub plans: Vec<Plan>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanType {
    Local,
    Cloud,
    Tenant,
}

impl PlanType {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanType::Local => "Local",
            PlanType::Cloud => "Cloud",
            PlanType::Tenant => "Tenant",
        }
    }

    fn parse(text: &str) -> Option<PlanType> {
        [PlanType::Local, PlanType::Cloud, PlanType::Tenant]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub plan_type: PlanType,
    pub tenant: Option<String>,
    pub pre_failover_command: String,
    pub post_failover_command: String,
    pub script_timeout: Duration,
    /// The RTO and RPO targets the control plane judges this plan's runs against.
    pub targets: standby_model::RecoveryTargets,
    /// In boot order.
    pub vms: Vec<Vm>,
}

#[derive(Debug, Clone)]
pub struct Vm {
    pub name: String,
    /// `None`: the agent host's name.
    pub host_name: Option<String>,
    pub folder_name: String,
    pub path: String,
    pub boot_delay_seconds: u32,
    pub restore_points: RestorePoints,
    pub sim_faults: Vec<SimFault>,
    /// The qemu driver's replica directory (absolute): `vm.toml` and the restore points.
    pub replica: Option<PathBuf>,
}

/// Where the sim driver's restore points of a VM come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestorePoints {
    /// Exactly these (sorted, no duplicates).
    Fixed(Vec<Timestamp>),
    /// The `count` most recent whole multiples of `interval_minutes` at or before now.
    Every { count: u32, interval_minutes: u32 },
}

impl Manifest {
    /// Reads and checks the manifest at `path`.
    pub fn load(path: &Path) -> Result<Manifest, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            AgentError::Config(format!(
                "{}: cannot read the manifest: {error}",
                path.display()
            ))
        })?;
        Manifest::parse(path, &text)
    }

    /// Checks `text` as the manifest at `path` (named in every message).
    pub fn parse(path: &Path, text: &str) -> Result<Manifest, AgentError> {
        let file = path.display().to_string();
        let fail = |message: String| AgentError::Config(format!("{file}: {message}"));
        let raw: ManifestFile = toml::from_str(text).map_err(|error| {
            // toml's message spans lines (a snippet of the file); one line reads better in logs.
            let message = error.message().to_owned();
            match error.span().map(|span| line_of(text, span.start)) {
                Some(line) => fail(format!("line {line}: {message}")),
                None => fail(message),
            }
        })?;
        let driver = match raw.driver.as_str() {
            "sim" => DriverKind::Sim,
            "qemu" => DriverKind::Qemu,
            other => {
                return Err(fail(format!(
                    "driver = \"{other}\" is not a driver (\"sim\" or \"qemu\")"
                )));
            }
        };
        match (driver, &raw.sim, &raw.qemu) {
            (DriverKind::Sim, _, Some(_)) => {
                return Err(fail(
                    "[qemu] is only for driver = \"qemu\" (this manifest says \"sim\")".to_owned(),
                ));
            }
            (DriverKind::Qemu, Some(_), _) => {
                return Err(fail(
                    "[sim] is only for driver = \"sim\" (this manifest says \"qemu\")".to_owned(),
                ));
            }
            _ => {}
        }
        let sim = check_sim(raw.sim).map_err(|message| fail(format!("[sim]: {message}")))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let qemu =
            check_qemu(raw.qemu, base).map_err(|message| fail(format!("[qemu]: {message}")))?;
        if raw.plans.is_empty() {
            return Err(fail(
                "no [[plans]]: the host has nothing to fail over".to_owned(),
            ));
        }
        let mut names = HashSet::new();
        let mut plans = Vec::with_capacity(raw.plans.len());
        for (index, plan) in raw.plans.into_iter().enumerate() {
            if plan.name.trim().is_empty() {
                return Err(fail(format!("plan #{}: name is empty", index + 1)));
            }
            if !names.insert(plan.name.clone()) {
                return Err(fail(format!(
                    "plan \"{}\" is listed twice (plan names are unique on a host)",
                    plan.name
                )));
            }
            let name = plan.name.clone();
            plans.push(
                check_plan(plan, driver, base)
                    .map_err(|message| fail(format!("plan \"{name}\": {message}")))?,
            );
        }
        Ok(Manifest {
            path: path.to_path_buf(),
            driver,
            sim,
            qemu,
            plans,
        })
    }

    pub fn plan(&self, name: &str) -> Option<&Plan> {
        self.plans.iter().find(|plan| plan.name == name)
    }

    pub fn vm(&self, plan: &str, vm: &str) -> Option<(&Plan, &Vm)> {
        let plan = self.plan(plan)?;
        plan.vms
            .iter()
            .find(|candidate| candidate.name == vm)
            .map(|vm| (plan, vm))
    }

    pub fn vm_count(&self) -> usize {
        self.plans.iter().map(|plan| plan.vms.len()).sum()
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map(|before| before.matches('\n').count() + 1)
        .unwrap_or(1)
}

fn check_sim(sim: Option<SimFile>) -> Result<SimSettings, String> {
    let Some(sim) = sim else {
        return Ok(SimSettings::default());
    };
    let boot_ms = sim.boot_ms.unwrap_or(DEFAULT_BOOT_MS);
    let (low, high) = boot_ms;
    if low > high {
        return Err(format!(
            "boot_ms = [{low}, {high}] is not [MIN, MAX] (MIN > MAX)"
        ));
    }
    if high > SIM_MAX_MS {
        return Err(format!(
            "boot_ms = [{low}, {high}]: over {SIM_MAX_MS} ms (a day)"
        ));
    }
    let undo_ms = sim.undo_ms.unwrap_or(DEFAULT_UNDO_MS);
    if undo_ms > SIM_MAX_MS {
        return Err(format!("undo_ms = {undo_ms}: over {SIM_MAX_MS} ms (a day)"));
    }
    Ok(SimSettings { boot_ms, undo_ms })
}

/// A relative path in the manifest is relative to the manifest's directory.
fn resolved(base: &Path, path: &Path) -> PathBuf {
    let joined = base.join(path);
    std::path::absolute(&joined).unwrap_or(joined)
}

fn check_qemu(qemu: Option<QemuFile>, base: &Path) -> Result<QemuSettings, String> {
    let Some(qemu) = qemu else {
        return Ok(QemuSettings::default());
    };
    let defaults = QemuSettings::default();
    let accel = match qemu.accel.as_deref() {
        None | Some("auto") => Accel::Auto,
        Some("kvm") => Accel::Kvm,
        Some("tcg") => Accel::Tcg,
        Some(other) => return Err(format!("accel = \"{other}\" is not auto, kvm or tcg")),
    };
    let max_parallel_boots = qemu
        .max_parallel_boots
        .unwrap_or(DEFAULT_MAX_PARALLEL_BOOTS as u32);
    if !(1..=MAX_PARALLEL_BOOTS).contains(&max_parallel_boots) {
        return Err(format!(
            "max_parallel_boots = {max_parallel_boots} is not between 1 and {MAX_PARALLEL_BOOTS}"
        ));
    }
    Ok(QemuSettings {
        accel,
        // A bare name is looked up on PATH; a path is relative to the manifest.
        qemu_binary: qemu
            .qemu_binary
            .map(|binary| program(base, binary))
            .unwrap_or(defaults.qemu_binary),
        qemu_img: qemu
            .qemu_img
            .map(|binary| program(base, binary))
            .unwrap_or(defaults.qemu_img),
        max_parallel_boots: max_parallel_boots as usize,
        runtime_dir: qemu.runtime_dir.map(|dir| resolved(base, &dir)),
    })
}

fn program(base: &Path, program: PathBuf) -> PathBuf {
    if program.components().count() > 1 {
        resolved(base, &program)
    } else {
        program
    }
}

fn check_plan(plan: PlanFile, driver: DriverKind, base: &Path) -> Result<Plan, String> {
    let plan_type = PlanType::parse(&plan.plan_type).ok_or_else(|| {
        format!(
            "type = \"{}\" is not a plan type (Local, Cloud or Tenant)",
            plan.plan_type
        )
    })?;
    let tenant = plan.tenant.filter(|tenant| !tenant.trim().is_empty());
    match (plan_type, &tenant) {
        (PlanType::Tenant, None) => {
            return Err("type = \"Tenant\" needs tenant = \"TENANT NAME\"".to_owned());
        }
        (PlanType::Local | PlanType::Cloud, Some(tenant)) => {
            return Err(format!(
                "tenant = \"{tenant}\" is only for type = \"Tenant\" (this plan is {})",
                plan_type.as_str()
            ));
        }
        _ => {}
    }
    if plan.name.chars().count() > MAX_NAME {
        return Err(format!("name is longer than {MAX_NAME} characters"));
    }
    for (field, command) in [
        ("pre_failover_command", &plan.pre_failover_command),
        ("post_failover_command", &plan.post_failover_command),
    ] {
        if command.len() > MAX_COMMAND {
            return Err(format!("{field} is longer than {MAX_COMMAND} bytes"));
        }
    }
    let timeout = plan
        .script_timeout_seconds
        .unwrap_or(DEFAULT_SCRIPT_TIMEOUT_SECONDS);
    if !(1..=MAX_SCRIPT_TIMEOUT_SECONDS).contains(&timeout) {
        return Err(format!(
            "script_timeout_seconds = {timeout} is not between 1 and {MAX_SCRIPT_TIMEOUT_SECONDS}"
        ));
    }
    let targets = standby_model::RecoveryTargets {
        rto_seconds: plan.rto_target_seconds,
        rpo_seconds: plan.rpo_target_seconds,
    };
    // The manifest's own names in the message, not the API's.
    targets.check().map_err(|message| {
        message
            .replace("rtoSeconds", "rto_target_seconds")
            .replace("rpoSeconds", "rpo_target_seconds")
    })?;
    if plan.vms.is_empty() {
        return Err("no [[plans.vms]]: a plan needs at least one VM".to_owned());
    }
    let mut names = HashSet::new();
    let mut vms = Vec::with_capacity(plan.vms.len());
    for (index, vm) in plan.vms.into_iter().enumerate() {
        if vm.name.trim().is_empty() {
            return Err(format!("VM #{}: name is empty", index + 1));
        }
        if !names.insert(vm.name.clone()) {
            return Err(format!(
                "VM \"{}\" is listed twice (VM names are unique within a plan)",
                vm.name
            ));
        }
        let name = vm.name.clone();
        vms.push(
            check_vm(vm, driver, base).map_err(|message| format!("VM \"{name}\": {message}"))?,
        );
    }
    Ok(Plan {
        name: plan.name,
        plan_type,
        tenant,
        pre_failover_command: plan.pre_failover_command,
        post_failover_command: plan.post_failover_command,
        script_timeout: Duration::from_secs(timeout),
        targets,
        vms,
    })
}

fn check_vm(vm: VmFile, driver: DriverKind, base: &Path) -> Result<Vm, String> {
    if vm.name.chars().count() > MAX_NAME {
        return Err(format!("name is longer than {MAX_NAME} characters"));
    }
    let replica = match (driver, &vm.replica) {
        (DriverKind::Qemu, None) => {
            return Err(
                "replica = \"DIR\" is missing (the directory with vm.toml and the \
                        restore points)"
                    .to_owned(),
            );
        }
        (DriverKind::Qemu, Some(dir)) => {
            let sim_fields = vm.restore_points.is_some()
                || vm.restore_point_count.is_some()
                || vm.restore_point_interval_minutes.is_some()
                || !vm.sim_faults.is_empty();
            if sim_fields {
                return Err(
                    "restore_points, restore_point_count, restore_point_interval_minutes \
                            and sim_faults are for the sim driver; the qemu driver reads the \
                            replica's points.toml"
                        .to_owned(),
                );
            }
            Some(resolved(base, dir))
        }
        (DriverKind::Sim, Some(_)) => {
            return Err("replica is only for driver = \"qemu\"".to_owned());
        }
        (DriverKind::Sim, None) => None,
    };
    let restore_points = match vm.restore_points {
        Some(list) => {
            if vm.restore_point_count.is_some() || vm.restore_point_interval_minutes.is_some() {
                return Err("restore_points and restore_point_count/_interval_minutes \
                            exclude each other: give the list or the count"
                    .to_owned());
            }
            if list.is_empty() {
                return Err(
                    "restore_points = [] is empty (leave it out for the default of \
                            3 hourly points)"
                        .to_owned(),
                );
            }
            let mut points = Vec::with_capacity(list.len());
            for text in &list {
                // RFC 3339 strictly: a bare date would be read as midnight, silently.
                let parsed = time::OffsetDateTime::parse(
                    text,
                    &time::format_description::well_known::Rfc3339,
                )
                .ok()
                .and_then(|_| Timestamp::parse(text).ok())
                .ok_or_else(|| {
                    format!("restore_points: \"{text}\" is not an RFC 3339 date-time")
                })?;
                points.push(parsed);
            }
            if list.len() > MAX_RESTORE_POINT_COUNT as usize {
                return Err(format!(
                    "restore_points lists {} points (at most {MAX_RESTORE_POINT_COUNT})",
                    list.len()
                ));
            }
            points.sort();
            points.dedup();
            RestorePoints::Fixed(points)
        }
        None => {
            let count = vm
                .restore_point_count
                .unwrap_or(DEFAULT_RESTORE_POINT_COUNT);
            if !(1..=MAX_RESTORE_POINT_COUNT).contains(&count) {
                return Err(format!(
                    "restore_point_count = {count} is not between 1 and {MAX_RESTORE_POINT_COUNT}"
                ));
            }
            let interval_minutes = vm
                .restore_point_interval_minutes
                .unwrap_or(DEFAULT_RESTORE_POINT_INTERVAL_MINUTES);
            if !(1..=MAX_RESTORE_POINT_INTERVAL_MINUTES).contains(&interval_minutes) {
                return Err(format!(
                    "restore_point_interval_minutes = {interval_minutes} is not between 1 and \
                     {MAX_RESTORE_POINT_INTERVAL_MINUTES}"
                ));
            }
            RestorePoints::Every {
                count,
                interval_minutes,
            }
        }
    };
    let mut sim_faults = Vec::new();
    for text in &vm.sim_faults {
        match SimFault::parse(text) {
            Some(fault) if SimFault::VM.contains(&fault) => {
                if !sim_faults.contains(&fault) {
                    sim_faults.push(fault);
                }
            }
            _ => {
                return Err(format!(
                    "sim_faults: \"{text}\" is not a VM fault ({})",
                    SimFault::list(&SimFault::VM)
                ));
            }
        }
    }
    Ok(Vm {
        name: vm.name,
        host_name: vm.host_name.filter(|name| !name.trim().is_empty()),
        folder_name: vm.folder_name,
        path: vm.path,
        boot_delay_seconds: vm.boot_delay_seconds,
        restore_points,
        sim_faults,
        replica,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../examples/agent/sim-host.toml");
    const QEMU_EXAMPLE: &str = include_str!("../../../examples/agent/qemu-host.toml");

    fn parse(text: &str) -> Result<Manifest, String> {
        Manifest::parse(Path::new("HOST.toml"), text).map_err(|error| error.to_string())
    }

    fn refused(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(message) => {
                assert!(message.contains("HOST.toml"), "{message}");
                message
            }
        }
    }

    const MINIMAL: &str = r#"
driver = "sim"
[[plans]]
name = "P"
type = "Local"
[[plans.vms]]
name = "a"
"#;

    #[test]
    fn the_example_parses() {
        let manifest = parse(EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(manifest.driver, DriverKind::Sim);
        assert_eq!(manifest.plans.len(), 2);
        assert!(manifest.plans.iter().all(|plan| plan.vms.len() == 3));
        assert_eq!(manifest.vm_count(), 6);
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let manifest = parse(MINIMAL).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(manifest.sim, SimSettings::default());
        let plan = &manifest.plans[0];
        assert_eq!(plan.script_timeout, Duration::from_secs(300));
        assert_eq!(
            plan.vms[0].restore_points,
            RestorePoints::Every {
                count: 3,
                interval_minutes: 60
            }
        );
    }

    #[test]
    fn targets_are_read_and_bounded() {
        let with = MINIMAL.replace(
            "type = \"Local\"",
            "type = \"Local\"\nrto_target_seconds = 900\nrpo_target_seconds = 3600",
        );
        let manifest = parse(&with).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            manifest.plans[0].targets,
            standby_model::RecoveryTargets {
                rto_seconds: Some(900),
                rpo_seconds: Some(3600)
            }
        );
        assert!(parse(MINIMAL).unwrap().plans[0].targets.is_empty());
        let message = refused(&MINIMAL.replace(
            "type = \"Local\"",
            "type = \"Local\"\nrto_target_seconds = 0",
        ));
        assert!(message.contains("rto_target_seconds"), "{message}");
    }

    #[test]
    fn an_unknown_field_is_named() {
        let message = refused(&MINIMAL.replace("name = \"a\"", "name = \"a\"\nboot_dealy = 3"));
        assert!(message.contains("boot_dealy"), "{message}");
        assert!(message.contains("line 8"), "{message}");
    }

    #[test]
    fn a_duplicate_vm_is_refused() {
        let message = refused(&format!("{MINIMAL}[[plans.vms]]\nname = \"a\"\n"));
        assert!(message.contains("plan \"P\""), "{message}");
        assert!(message.contains("VM \"a\" is listed twice"), "{message}");
    }

    #[test]
    fn a_duplicate_plan_is_refused() {
        let again = MINIMAL.replace("driver = \"sim\"", "");
        let message = refused(&format!("{MINIMAL}{again}"));
        assert!(message.contains("plan \"P\" is listed twice"), "{message}");
    }

    #[test]
    fn a_bad_type_is_refused() {
        let message = refused(&MINIMAL.replace("\"Local\"", "\"Remote\""));
        assert!(message.contains("plan \"P\""), "{message}");
        assert!(
            message.contains("\"Remote\" is not a plan type"),
            "{message}"
        );
    }

    #[test]
    fn a_tenant_plan_needs_its_tenant() {
        let message = refused(&MINIMAL.replace("\"Local\"", "\"Tenant\""));
        assert!(message.contains("needs tenant"), "{message}");
        let message = refused(&MINIMAL.replace("\"Local\"", "\"Local\"\ntenant = \"Acme\""));
        assert!(message.contains("only for type = \"Tenant\""), "{message}");
        let tenant = MINIMAL.replace("\"Local\"", "\"Tenant\"\ntenant = \"Acme\"");
        let manifest = parse(&tenant).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(manifest.plans[0].tenant.as_deref(), Some("Acme"));
    }

    #[test]
    fn reversed_boot_ms_is_refused() {
        let message = refused(&MINIMAL.replace(
            "driver = \"sim\"",
            "driver = \"sim\"\n[sim]\nboot_ms = [900, 300]",
        ));
        assert!(message.contains("[sim]: boot_ms = [900, 300]"), "{message}");
        let message = refused(&MINIMAL.replace(
            "driver = \"sim\"",
            "driver = \"sim\"\n[sim]\nboot_ms = [0, 86400001]",
        ));
        assert!(message.contains("a day"), "{message}");
    }

    #[test]
    fn the_qemu_example_parses() {
        let manifest = parse(QEMU_EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(manifest.driver, DriverKind::Qemu);
        assert_eq!(manifest.qemu.accel, Accel::Auto);
        assert_eq!(manifest.plans[0].vms.len(), 2);
    }

    #[test]
    fn unknown_drivers_are_refused() {
        let message = refused(&MINIMAL.replace("\"sim\"", "\"vmware\""));
        assert!(message.contains("not a driver"), "{message}");
    }

    #[test]
    fn a_qemu_manifest_needs_a_replica_per_vm_and_no_sim_fields() {
        let qemu = MINIMAL.replace("\"sim\"", "\"qemu\"");
        let message = refused(&qemu);
        assert!(
            message.contains("replica = \"DIR\" is missing"),
            "{message}"
        );
        let with_replica = qemu.replace("name = \"a\"", "name = \"a\"\nreplica = \"vm-a\"");
        let manifest = parse(&with_replica).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(manifest.driver, DriverKind::Qemu);
        assert_eq!(manifest.qemu, QemuSettings::default());
        let replica = manifest.plans[0].vms[0].replica.clone().unwrap_or_default();
        assert!(
            replica.is_absolute() && replica.ends_with("vm-a"),
            "{replica:?}"
        );
        let message = refused(&with_replica.replace(
            "replica = \"vm-a\"",
            "replica = \"vm-a\"\nrestore_point_count = 2",
        ));
        assert!(message.contains("for the sim driver"), "{message}");
        let message = refused(&MINIMAL.replace("name = \"a\"", "name = \"a\"\nreplica = \"x\""));
        assert!(message.contains("only for driver = \"qemu\""), "{message}");
        let message = refused(&format!("{with_replica}\n[sim]\nundo_ms = 1\n"));
        assert!(message.contains("[sim] is only for"), "{message}");
        let message = refused(&format!("{MINIMAL}\n[qemu]\naccel = \"tcg\"\n"));
        assert!(message.contains("[qemu] is only for"), "{message}");
        for (setting, expected) in [
            ("accel = \"hvf\"", "not auto, kvm or tcg"),
            ("max_parallel_boots = 0", "max_parallel_boots = 0"),
            ("colour = 1", "unknown field"),
        ] {
            let message = refused(
                &with_replica.replace("[[plans]]", &format!("[qemu]\n{setting}\n[[plans]]")),
            );
            assert!(message.contains(expected), "{setting}: {message}");
        }
        let tuned = with_replica.replace(
            "[[plans]]",
            "[qemu]\naccel = \"tcg\"\nmax_parallel_boots = 2\nqemu_img = \"bin/qemu-img\"\n[[plans]]",
        );
        let manifest = parse(&tuned).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(manifest.qemu.accel, Accel::Tcg);
        assert_eq!(manifest.qemu.max_parallel_boots, 2);
        assert!(manifest.qemu.qemu_img.is_absolute());
        assert_eq!(
            manifest.qemu.qemu_binary,
            PathBuf::from("qemu-system-x86_64")
        );
    }

    #[test]
    fn restore_points_are_checked() {
        let message = refused(&MINIMAL.replace(
            "name = \"a\"",
            "name = \"a\"\nrestore_points = [\"2026-12-01\"]",
        ));
        assert!(message.contains("VM \"a\""), "{message}");
        assert!(message.contains("not an RFC 3339"), "{message}");
        let message =
            refused(&MINIMAL.replace("name = \"a\"", "name = \"a\"\nrestore_points = []"));
        assert!(message.contains("empty"), "{message}");
        let message =
            refused(&MINIMAL.replace("name = \"a\"", "name = \"a\"\nrestore_point_count = 0"));
        assert!(message.contains("restore_point_count = 0"), "{message}");
        let message =
            refused(&MINIMAL.replace("name = \"a\"", "name = \"a\"\nrestore_point_count = 1001"));
        assert!(message.contains("1001"), "{message}");
        let fixed = MINIMAL.replace(
            "name = \"a\"",
            "name = \"a\"\nrestore_points = [\"2026-12-01T01:00:00Z\", \"2026-12-01T00:00:00+00:00\"]",
        );
        let manifest = parse(&fixed).unwrap_or_else(|e| panic!("{e}"));
        let RestorePoints::Fixed(points) = &manifest.plans[0].vms[0].restore_points else {
            panic!("not a fixed list");
        };
        assert_eq!(points.len(), 2);
        assert!(points[0] < points[1]);
    }

    #[test]
    fn a_plan_without_vms_and_faults_that_are_not_a_vms_are_refused() {
        let message = refused("driver = \"sim\"\n[[plans]]\nname = \"P\"\ntype = \"Local\"\n");
        assert!(message.contains("at least one VM"), "{message}");
        let message =
            refused(&MINIMAL.replace("name = \"a\"", "name = \"a\"\nsim_faults = [\"offline\"]"));
        assert!(message.contains("not a VM fault"), "{message}");
    }
}

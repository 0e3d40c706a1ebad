//! Resolved fleet records: every reference checked, every UID fixed. The store's import input.

use standby_model::{
    BackupStatus, PlanType, SessionKind, SessionMessage, SessionStatus, Timestamp,
};
use uuid::Uuid;

/// Namespace of every UID Standby derives from names (UUID v5), so that re-importing the same
/// file gives the same UIDs.
pub const UID_NAMESPACE: Uuid = Uuid::from_u128(0x5d1f_0b2e_7c4a_4e39_9b61_3f0a_c2d8_e471);

pub fn derived_uid(kind: &str, key: &str) -> Uuid {
    Uuid::new_v5(&UID_NAMESPACE, format!("{kind}/{key}").as_bytes())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrganizationKind {
    Provider,
    Company,
}

impl OrganizationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OrganizationKind::Provider => "provider",
            OrganizationKind::Company => "company",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "provider" => Some(Self::Provider),
            "company" => Some(Self::Company),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrganizationRecord {
    pub uid: Uuid,
    pub name: String,
    pub kind: OrganizationKind,
}

/// A Cloud Connect tenant: what a Tenant plan's `tenantUid` names. Belongs to one company.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRecord {
    pub uid: Uuid,
    pub name: String,
    pub organization_uid: Uuid,
}

/// The connector `sim`, the in-process simulator every demo and test fleet uses.
pub const SIM_CONNECTOR: &str = "sim";

/// A backup server's settings for its connector: a JSON object whose keys the connector defines
/// (and checks when a fleet is loaded). Kept as JSON text in `backup_servers.connector_settings`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectorSettings(pub serde_json::Map<String, serde_json::Value>);

impl ConnectorSettings {
    pub fn to_json(&self) -> String {
        serde_json::Value::Object(self.0.clone()).to_string()
    }

    /// `None` unless `text` is a JSON object.
    pub fn from_json(text: &str) -> Option<ConnectorSettings> {
        match serde_json::from_str(text).ok()? {
            serde_json::Value::Object(map) => Some(ConnectorSettings(map)),
            _ => None,
        }
    }

    /// Reads the settings as a connector's own type.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_value(serde_json::Value::Object(self.0.clone()))
            .map_err(|error| error.to_string())
    }
}

/// The longest simulated operation a server's settings may ask for: a day.
pub const SIM_MAX_MS: u64 = 86_400_000;

/// What a server's `connector_settings` may say to the `sim` connector; each one unset keeps the
/// process-wide value (`--sim-boot-ms` and the defaults).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SimServerSettings {
    /// A VM's boot on this server takes between these many milliseconds.
    pub boot_ms: Option<(u64, u64)>,
    pub undo_ms: Option<u64>,
    pub script_ms: Option<u64>,
}

impl SimServerSettings {
    /// Parses and checks a server's settings for the sim.
    pub fn of(settings: &ConnectorSettings) -> Result<SimServerSettings, String> {
        let parsed: SimServerSettings = settings.parse()?;
        if let Some((low, high)) = parsed.boot_ms
            && low > high
        {
            return Err(format!("boot_ms [{low}, {high}] is not [MIN, MAX]"));
        }
        let longest = [
            parsed.boot_ms.map(|(_, high)| high),
            parsed.undo_ms,
            parsed.script_ms,
        ];
        if longest.into_iter().flatten().any(|ms| ms > SIM_MAX_MS) {
            return Err(format!("a duration over {SIM_MAX_MS} ms (a day)"));
        }
        Ok(parsed)
    }
}

/// A fault the `sim` connector injects into a backup server or a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SimFault {
    /// The server's host does not answer: every call is `Unavailable`.
    Offline,
    /// The server's pre- and post-failover scripts exit with code 1.
    ScriptFails,
    /// The VM's replica does not boot.
    BootFails,
    /// The VM boots ten times slower than usual.
    Slow,
}

impl SimFault {
    pub const ALL: [SimFault; 4] = [
        SimFault::Offline,
        SimFault::ScriptFails,
        SimFault::BootFails,
        SimFault::Slow,
    ];
    /// The faults a backup server can have; the others are a VM's.
    pub const SERVER: [SimFault; 2] = [SimFault::Offline, SimFault::ScriptFails];
    pub const VM: [SimFault; 2] = [SimFault::BootFails, SimFault::Slow];

    pub fn as_str(self) -> &'static str {
        match self {
            SimFault::Offline => "offline",
            SimFault::ScriptFails => "script-fails",
            SimFault::BootFails => "boot-fails",
            SimFault::Slow => "slow",
        }
    }

    pub fn parse(text: &str) -> Option<SimFault> {
        SimFault::ALL
            .into_iter()
            .find(|fault| fault.as_str() == text)
    }

    pub fn is_server_fault(self) -> bool {
        SimFault::SERVER.contains(&self)
    }

    /// `a, b` for messages.
    pub fn list(faults: &[SimFault]) -> String {
        faults
            .iter()
            .map(|fault| fault.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for SimFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerRecord {
    pub uid: Uuid,
    pub name: String,
    pub organization_uid: Uuid,
    /// The connector that drives this server's hypervisor (`sim` for now).
    pub connector: String,
    /// The connector's settings for this server (for `sim`: [`SimServerSettings`]).
    pub connector_settings: ConnectorSettings,
    /// Faults the `sim` connector injects (of [`SimFault::SERVER`]).
    pub sim_faults: Vec<SimFault>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanRecord {
    pub uid: Uuid,
    pub original_uid: Uuid,
    pub backup_server_uid: Uuid,
    pub name: String,
    pub plan_type: PlanType,
    pub tenant_uid: Option<Uuid>,
    pub pre_failover_command: String,
    pub post_failover_command: String,
    /// RTO and RPO targets, when the source declares them; `None` leaves the stored ones.
    pub targets: Option<standby_model::RecoveryTargets>,
}

/// One replicated VM of a plan, with its place in the boot order.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectRecord {
    pub uid: Uuid,
    pub plan_uid: Uuid,
    pub backup_server_uid: Uuid,
    pub name: String,
    pub host_name: String,
    pub folder_name: String,
    pub path: String,
    /// 0-based position in the plan's boot order.
    pub boot_order: u32,
    /// Seconds to wait after this VM starts before the next one boots.
    pub boot_delay_seconds: u32,
    /// Faults the `sim` connector injects (of [`SimFault::VM`]).
    pub sim_faults: Vec<SimFault>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RestorePointRecord {
    pub uid: Uuid,
    pub object_uid: Uuid,
    pub created_at: Timestamp,
}

/// A finished session from before the fleet was imported (the demo's history).
#[derive(Debug, Clone, PartialEq)]
pub struct HistoricSession {
    pub uid: Uuid,
    pub plan_uid: Uuid,
    pub kind: SessionKind,
    pub status: SessionStatus,
    pub message: Option<String>,
    pub started_by: String,
    pub requested_point: Option<Timestamp>,
    pub start_time: Timestamp,
    pub end_time: Timestamp,
    pub messages: Vec<SessionMessage>,
    pub vm_sessions: Vec<HistoricVmSession>,
    /// The plan's status once this session ended.
    pub plan_status_after: standby_model::PlanStatus,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistoricVmSession {
    pub uid: Uuid,
    pub object_uid: Uuid,
    pub backup_status: BackupStatus,
    pub restore_point_uid: Option<Uuid>,
    pub restore_point_time: Option<Timestamp>,
    pub start_time: Timestamp,
    pub end_time: Option<Timestamp>,
}

/// A whole resolved fleet.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fleet {
    pub organizations: Vec<OrganizationRecord>,
    pub tenants: Vec<TenantRecord>,
    pub servers: Vec<ServerRecord>,
    pub plans: Vec<PlanRecord>,
    pub objects: Vec<ObjectRecord>,
    pub restore_points: Vec<RestorePointRecord>,
    /// Applied in order; the last session of a plan becomes its `lastSession`.
    pub history: Vec<HistoricSession>,
}

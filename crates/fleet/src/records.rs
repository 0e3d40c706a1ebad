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

#[derive(Debug, Clone, PartialEq)]
pub struct ServerRecord {
    pub uid: Uuid,
    pub name: String,
    pub organization_uid: Uuid,
    /// The connector that drives this server's hypervisor (`sim` for now).
    pub connector: String,
    /// Faults the `sim` connector injects (see `file::SERVER_FAULTS`).
    pub sim_faults: Vec<String>,
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
    /// Faults the `sim` connector injects (see `file::VM_FAULTS`).
    pub sim_faults: Vec<String>,
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

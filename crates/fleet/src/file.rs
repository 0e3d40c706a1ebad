//! The fleet file: a TOML description of organizations, backup servers, plans and their VMs.
//! The format is documented in the README ("Fleet files"); `resolve` checks every reference and
//! derives stable UIDs, so importing the same file twice changes nothing.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use standby_model::{PlanType, Timestamp, WireEnum};
use uuid::Uuid;

use crate::records::*;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("the fleet file is not valid TOML: {0}")]
    Syntax(#[from] toml::de::Error),
    #[error("{0}")]
    Invalid(String),
}

fn invalid<T>(message: impl Into<String>) -> Result<T, FleetError> {
    Err(FleetError::Invalid(message.into()))
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    #[serde(default)]
    pub organizations: Vec<OrganizationEntry>,
    #[serde(default)]
    pub servers: Vec<ServerEntry>,
    #[serde(default)]
    pub plans: Vec<PlanEntry>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationEntry {
    pub name: String,
    /// `provider` (exactly one) or `company`.
    pub kind: String,
    pub uid: Option<Uuid>,
    /// Cloud Connect tenant names owned by this company.
    #[serde(default)]
    pub tenants: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    pub name: String,
    /// Owning organization, by name.
    pub organization: String,
    pub uid: Option<Uuid>,
    #[serde(default = "default_connector")]
    pub connector: String,
    /// The connector's settings for this server, a table (for `sim`: `boot_ms = [MIN, MAX]`,
    /// `undo_ms`, `script_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_settings: Option<toml::Table>,
    /// Faults the `sim` connector injects for this server: `offline`, `script-fails`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sim_faults: Vec<String>,
}

/// The targets a plan entry declares, checked; `None` when it declares neither.
fn plan_targets(entry: &PlanEntry) -> Result<Option<standby_model::RecoveryTargets>, FleetError> {
    let targets = standby_model::RecoveryTargets {
        rto_seconds: entry.rto_target_seconds,
        rpo_seconds: entry.rpo_target_seconds,
    };
    if targets.is_empty() {
        return Ok(None);
    }
    match targets.check() {
        Ok(()) => Ok(Some(targets)),
        Err(message) => invalid(format!("plan '{}': {message}", entry.name)),
    }
}

fn default_connector() -> String {
    SIM_CONNECTOR.into()
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlanEntry {
    pub name: String,
    /// Hosting backup server, by name.
    pub server: String,
    /// `Local`, `Cloud` or `Tenant`.
    #[serde(rename = "type")]
    pub plan_type: String,
    /// Tenant name; required on Tenant plans and refused on the others.
    pub tenant: Option<String>,
    pub uid: Option<Uuid>,
    pub original_uid: Option<Uuid>,
    #[serde(default)]
    pub pre_failover_command: String,
    #[serde(default)]
    pub post_failover_command: String,
    /// Restore point schedule for VMs that declare none of their own.
    pub schedule: Option<Schedule>,
    /// Seconds from a run's start until its last VM is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_target_seconds: Option<u32>,
    /// Seconds between a VM's restore point and the run's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_target_seconds: Option<u32>,
    /// In boot order.
    #[serde(default)]
    pub vms: Vec<VmEntry>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VmEntry {
    pub name: String,
    pub uid: Option<Uuid>,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub folder: String,
    /// Replica path; defaults to the VM name.
    pub path: Option<String>,
    #[serde(default)]
    pub boot_delay_seconds: u32,
    /// Explicit restore points (RFC 3339 or YYYY-MM-DD).
    pub restore_points: Option<Vec<String>>,
    pub schedule: Option<Schedule>,
    /// A fault the `sim` connector injects for this VM: `boot-fails` or `slow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim_fault: Option<String>,
}

/// Restore points every `every_hours` over the last `days` days, on a grid anchored at
/// `anchor` (default: the Unix epoch), so the same file gives the same points within a window.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub every_hours: u32,
    pub days: u32,
    pub anchor: Option<String>,
}

impl FleetFile {
    pub fn parse(text: &str) -> Result<Self, FleetError> {
        Ok(toml::from_str(text)?)
    }

    /// Checks every reference and derives UIDs; `now` bounds schedules and rejects future points.
    pub fn resolve(&self, now: Timestamp) -> Result<Fleet, FleetError> {
        let mut fleet = Fleet::default();
        let mut organizations: HashMap<&str, Uuid> = HashMap::new();
        let mut tenants: HashMap<&str, Uuid> = HashMap::new();
        let mut providers = 0;
        for entry in &self.organizations {
            let kind = OrganizationKind::parse(&entry.kind).map_or_else(
                || {
                    invalid(format!(
                        "organization '{}': kind must be 'provider' or 'company', not '{}'",
                        entry.name, entry.kind
                    ))
                },
                Ok,
            )?;
            non_empty("organization", &entry.name)?;
            if kind == OrganizationKind::Provider {
                providers += 1;
                if !entry.tenants.is_empty() {
                    return invalid(format!(
                        "organization '{}': the provider has no tenants; companies do",
                        entry.name
                    ));
                }
            }
            let uid = entry
                .uid
                .unwrap_or_else(|| derived_uid("organization", &entry.name));
            if organizations.insert(&entry.name, uid).is_some() {
                return invalid(format!("organization '{}' is declared twice", entry.name));
            }
            fleet.organizations.push(OrganizationRecord {
                uid,
                name: entry.name.clone(),
                kind,
            });
            for tenant in &entry.tenants {
                non_empty("tenant", tenant)?;
                let tenant_uid = derived_uid("tenant", tenant);
                if tenants.insert(tenant, tenant_uid).is_some() {
                    return invalid(format!("tenant '{tenant}' is declared twice"));
                }
                fleet.tenants.push(TenantRecord {
                    uid: tenant_uid,
                    name: tenant.clone(),
                    organization_uid: uid,
                });
            }
        }
        if providers != 1 && !self.organizations.is_empty() {
            return invalid(format!(
                "a fleet has exactly one organization of kind 'provider' (found {providers})"
            ));
        }

        let mut servers: HashMap<&str, Uuid> = HashMap::new();
        for entry in &self.servers {
            non_empty("server", &entry.name)?;
            let Some(&organization_uid) = organizations.get(entry.organization.as_str()) else {
                return invalid(format!(
                    "server '{}': unknown organization '{}'",
                    entry.name, entry.organization
                ));
            };
            let mut sim_faults = Vec::new();
            for fault in &entry.sim_faults {
                match SimFault::parse(fault).filter(|f| f.is_server_fault()) {
                    Some(fault) => sim_faults.push(fault),
                    None => {
                        return invalid(format!(
                            "server '{}': unknown sim fault '{fault}' (use {})",
                            entry.name,
                            SimFault::list(&SimFault::SERVER)
                        ));
                    }
                }
            }
            if entry.connector != SIM_CONNECTOR {
                return invalid(format!(
                    "server '{}': unknown connector '{}' (supported: {SIM_CONNECTOR})",
                    entry.name, entry.connector
                ));
            }
            let connector_settings = match &entry.connector_settings {
                None => ConnectorSettings::default(),
                Some(table) => match serde_json::to_value(table) {
                    Ok(serde_json::Value::Object(map)) => ConnectorSettings(map),
                    _ => {
                        return invalid(format!(
                            "server '{}': connector_settings must be a table",
                            entry.name
                        ));
                    }
                },
            };
            if let Err(error) = SimServerSettings::of(&connector_settings) {
                return invalid(format!(
                    "server '{}': connector_settings: {error}",
                    entry.name
                ));
            }
            let uid = entry
                .uid
                .unwrap_or_else(|| derived_uid("server", &entry.name));
            if servers.insert(&entry.name, uid).is_some() {
                return invalid(format!("server '{}' is declared twice", entry.name));
            }
            fleet.servers.push(ServerRecord {
                uid,
                name: entry.name.clone(),
                organization_uid,
                connector: entry.connector.clone(),
                connector_settings,
                sim_faults,
            });
        }

        let mut plan_keys = HashSet::new();
        let mut uids = HashSet::new();
        for entry in &self.plans {
            non_empty("plan", &entry.name)?;
            let Some(&backup_server_uid) = servers.get(entry.server.as_str()) else {
                return invalid(format!(
                    "plan '{}': unknown server '{}'",
                    entry.name, entry.server
                ));
            };
            if !plan_keys.insert((entry.server.as_str(), entry.name.as_str())) {
                return invalid(format!(
                    "plan '{}' is declared twice on server '{}'",
                    entry.name, entry.server
                ));
            }
            let plan_type = match PlanType::parse(&entry.plan_type) {
                Some(t @ (PlanType::Local | PlanType::Cloud | PlanType::Tenant)) => t,
                _ => {
                    return invalid(format!(
                        "plan '{}': type must be Local, Cloud or Tenant, not '{}'",
                        entry.name, entry.plan_type
                    ));
                }
            };
            let tenant_uid = match (plan_type, &entry.tenant) {
                (PlanType::Tenant, Some(tenant)) => match tenants.get(tenant.as_str()) {
                    Some(uid) => Some(*uid),
                    None => {
                        return invalid(format!(
                            "plan '{}': unknown tenant '{tenant}'",
                            entry.name
                        ));
                    }
                },
                (PlanType::Tenant, None) => {
                    return invalid(format!(
                        "plan '{}': a Tenant plan needs a tenant",
                        entry.name
                    ));
                }
                (_, Some(_)) => {
                    return invalid(format!(
                        "plan '{}': only Tenant plans have a tenant",
                        entry.name
                    ));
                }
                (_, None) => None,
            };
            let key = format!("{}/{}", entry.server, entry.name);
            let uid = entry.uid.unwrap_or_else(|| derived_uid("plan", &key));
            if !uids.insert(uid) {
                return invalid(format!("plan '{}': UID {uid} is used twice", entry.name));
            }
            for command in [&entry.pre_failover_command, &entry.post_failover_command] {
                if command.chars().count() > 2048 {
                    return invalid(format!(
                        "plan '{}': commands are at most 2048 characters",
                        entry.name
                    ));
                }
            }
            fleet.plans.push(PlanRecord {
                uid,
                original_uid: entry
                    .original_uid
                    .unwrap_or_else(|| derived_uid("plan-original", &key)),
                backup_server_uid,
                name: entry.name.clone(),
                plan_type,
                tenant_uid,
                pre_failover_command: entry.pre_failover_command.clone(),
                post_failover_command: entry.post_failover_command.clone(),
                targets: plan_targets(entry)?,
            });
            let mut vm_names = HashSet::new();
            for (order, vm) in entry.vms.iter().enumerate() {
                non_empty("VM", &vm.name)?;
                if !vm_names.insert(vm.name.as_str()) {
                    return invalid(format!(
                        "plan '{}': VM '{}' is listed twice",
                        entry.name, vm.name
                    ));
                }
                let object_uid = vm
                    .uid
                    .unwrap_or_else(|| derived_uid("vm", &format!("{uid}/{}", vm.name)));
                if !uids.insert(object_uid) {
                    return invalid(format!("VM '{}': UID {object_uid} is used twice", vm.name));
                }
                let sim_faults = match vm.sim_fault.as_deref() {
                    None => Vec::new(),
                    Some(fault) => match SimFault::parse(fault).filter(|f| !f.is_server_fault()) {
                        Some(fault) => vec![fault],
                        None => {
                            return invalid(format!(
                                "VM '{}': unknown sim fault '{fault}' (use {})",
                                vm.name,
                                SimFault::list(&SimFault::VM)
                            ));
                        }
                    },
                };
                fleet.objects.push(ObjectRecord {
                    uid: object_uid,
                    plan_uid: uid,
                    backup_server_uid,
                    name: vm.name.clone(),
                    host_name: vm.host.clone(),
                    folder_name: vm.folder.clone(),
                    path: vm.path.clone().unwrap_or_else(|| vm.name.clone()),
                    boot_order: order as u32,
                    boot_delay_seconds: vm.boot_delay_seconds,
                    sim_faults,
                });
                let context = format!("VM '{}' of plan '{}'", vm.name, entry.name);
                let times = match (
                    &vm.restore_points,
                    vm.schedule.as_ref().or(entry.schedule.as_ref()),
                ) {
                    (Some(points), _) => points
                        .iter()
                        .map(|text| {
                            let at = Timestamp::parse(text)
                                .map_err(|e| FleetError::Invalid(format!("{context}: {e}")))?;
                            if at > now {
                                return invalid(format!(
                                    "{context}: restore point {text} is in the future"
                                ));
                            }
                            Ok(at)
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    (None, Some(schedule)) => schedule_points(schedule, now)
                        .map_err(|e| FleetError::Invalid(format!("{context}: {e}")))?,
                    (None, None) => Vec::new(),
                };
                for at in times {
                    fleet.restore_points.push(RestorePointRecord {
                        uid: derived_uid("restore-point", &format!("{object_uid}/{}", at.ticks())),
                        object_uid,
                        created_at: at,
                    });
                }
            }
        }
        Ok(fleet)
    }
}

fn non_empty(what: &str, name: &str) -> Result<(), FleetError> {
    if name.trim().is_empty() {
        return invalid(format!("a {what} name must not be empty"));
    }
    Ok(())
}

/// The instants of a schedule up to `now`, newest first.
pub fn schedule_points(schedule: &Schedule, now: Timestamp) -> Result<Vec<Timestamp>, String> {
    if schedule.every_hours == 0 || schedule.every_hours > 24 * 366 {
        return Err("schedule.every_hours must be between 1 and 8784".into());
    }
    if schedule.days > 3660 {
        return Err("schedule.days must be at most 3660".into());
    }
    let anchor = match &schedule.anchor {
        Some(text) => Timestamp::parse(text).map_err(|e| e.to_string())?,
        None => Timestamp::from_unix_seconds(0),
    };
    let step = i64::from(schedule.every_hours) * 3600;
    let since = now.unix_seconds() - i64::from(schedule.days) * 86_400;
    let anchor_seconds = anchor.unix_seconds();
    // The newest grid instant at or before now.
    let mut at = anchor_seconds + (now.unix_seconds() - anchor_seconds).div_euclid(step) * step;
    let mut points = Vec::new();
    while at > since {
        points.push(Timestamp::from_unix_seconds(at));
        at -= step;
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
        [[organizations]]
        name = "MSP"
        kind = "provider"

        [[organizations]]
        name = "Contoso"
        kind = "company"
        tenants = ["contoso-cc"]

        [[servers]]
        name = "vbr-01"
        organization = "MSP"

        [[plans]]
        name = "Contoso web"
        server = "vbr-01"
        type = "Tenant"
        tenant = "contoso-cc"
        schedule = { every_hours = 4, days = 1 }

          [[plans.vms]]
          name = "web01"
          boot_delay_seconds = 30

          [[plans.vms]]
          name = "web02"
          restore_points = ["2026-11-26T22:00:00Z", "2026-11-25"]
    "#;

    #[test]
    fn resolves_with_stable_uids() {
        let now = Timestamp::parse("2026-11-27T10:30:00Z").unwrap();
        let first = FleetFile::parse(SAMPLE).unwrap().resolve(now).unwrap();
        let second = FleetFile::parse(SAMPLE).unwrap().resolve(now).unwrap();
        assert_eq!(first, second);
        assert_eq!(first.plans[0].tenant_uid, Some(first.tenants[0].uid));
        assert_eq!(first.objects[1].boot_order, 1);
        assert_eq!(first.objects[0].path, "web01");
        // every 4 h over 24 h up to 08:00 = 6 points for web01, and the 2 explicit ones for web02.
        assert_eq!(first.restore_points.len(), 8);
        assert_eq!(
            first.restore_points[0].created_at,
            Timestamp::parse("2026-11-27T08:00:00Z").unwrap()
        );
    }

    #[test]
    fn refuses_broken_references() {
        let now = Timestamp::now();
        for (broken, expected) in [
            (
                SAMPLE.replace("server = \"vbr-01\"", "server = \"nope\""),
                "unknown server",
            ),
            (
                SAMPLE.replace("tenant = \"contoso-cc\"", ""),
                "needs a tenant",
            ),
            (
                SAMPLE.replace("type = \"Tenant\"", "type = \"Local\""),
                "only Tenant plans",
            ),
            (
                SAMPLE.replace("\"2026-11-25\"", "\"2999-01-01\""),
                "in the future",
            ),
            (
                SAMPLE.replace("every_hours = 4", "every_hours = 0"),
                "every_hours",
            ),
            (
                SAMPLE.replace("name = \"web02\"", "name = \"web01\""),
                "listed twice",
            ),
            (
                SAMPLE.replace("kind = \"provider\"", "kind = \"company\""),
                "exactly one",
            ),
            (
                SAMPLE.replace(
                    "organization = \"MSP\"",
                    "organization = \"MSP\"\nconnector_settings = { boot_ms = [9, 1] }",
                ),
                "boot_ms [9, 1] is not [MIN, MAX]",
            ),
            (
                SAMPLE.replace(
                    "organization = \"MSP\"",
                    "organization = \"MSP\"\nconnector_settings = { boot_seconds = 1 }",
                ),
                "connector_settings: unknown field `boot_seconds`",
            ),
            (
                SAMPLE.replace(
                    "organization = \"MSP\"",
                    "organization = \"MSP\"\nconnector_settings = { undo_ms = 9000000000000000000 }",
                ),
                "a duration over 86400000 ms",
            ),
            (
                SAMPLE.replace(
                    "organization = \"MSP\"",
                    "organization = \"MSP\"\nconnector = \"vmware\"",
                ),
                "unknown connector 'vmware'",
            ),
        ] {
            let error = FleetFile::parse(&broken)
                .and_then(|f| f.resolve(now))
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(expected),
                "{error} should mention {expected}"
            );
        }
        assert!(matches!(
            FleetFile::parse("[[plans]]\nname = 1"),
            Err(FleetError::Syntax(_))
        ));
        assert!(matches!(
            FleetFile::parse("colour = 'red'"),
            Err(FleetError::Syntax(_))
        ));
    }
}

//! Synthetic fleets of any size for benchmarks: `standby fleet generate`. A fleet is produced
//! in slices of backup servers (each slice a self-contained [`Fleet`]: its servers, their plans,
//! VMs and restore points), so a million VMs never sit in memory at once.
//!
//! Deterministic for a seed and a `now`: the same arguments give the same names, UIDs and points.

use std::ops::Range;

use standby_model::{PlanType, Timestamp};
use uuid::Uuid;

use crate::records::*;
use crate::rng::Rng;

/// The shape of a generated fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetShape {
    pub servers: u32,
    pub plans_per_server: u32,
    pub vms_per_plan: u32,
    pub points_per_vm: u32,
    pub seed: u64,
}

impl FleetShape {
    /// The documented presets: `small` (1,000 VMs), `medium` (100,000), `large` (10,000 servers,
    /// 100,000 plans, 1,000,000 VMs). Each VM gets 7 restore points (one every 4 hours).
    pub fn preset(name: &str) -> Option<FleetShape> {
        let servers = match name {
            "small" => 10,
            "medium" => 1_000,
            "large" => 10_000,
            _ => return None,
        };
        Some(FleetShape {
            servers,
            plans_per_server: 10,
            vms_per_plan: 10,
            points_per_vm: 7,
            seed: 1,
        })
    }

    pub fn plans(&self) -> u64 {
        u64::from(self.servers) * u64::from(self.plans_per_server)
    }

    pub fn vms(&self) -> u64 {
        self.plans() * u64::from(self.vms_per_plan)
    }

    /// Customer companies: one per 20 servers, at least one.
    pub fn companies(&self) -> u32 {
        (self.servers / 20).max(1)
    }
}

pub const PROVIDER: &str = "Generated MSP";
const TIERS: [&str; 8] = [
    "Identity",
    "Databases",
    "Web",
    "Applications",
    "File and Print",
    "ERP",
    "CRM",
    "Remote Desktop",
];
const ROLES: [&str; 12] = [
    "dc", "sql", "web", "app", "api", "file", "erp", "crm", "rdsh", "mq", "cache", "lb",
];

/// A UID drawn from the seeded generator (a version-4 layout, not derived from names, so that
/// millions of them cost nothing).
fn uid(rng: &mut Rng) -> Uuid {
    let bytes = (u128::from(rng.next()) << 64 | u128::from(rng.next())).to_be_bytes();
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

fn company_name(index: u32) -> String {
    format!("Customer {index:05}")
}

/// The provider, the companies and their tenants: import this first.
pub fn organizations(shape: &FleetShape) -> Fleet {
    let mut fleet = Fleet::default();
    let provider = derived_uid("organization", PROVIDER);
    fleet.organizations.push(OrganizationRecord {
        uid: provider,
        name: PROVIDER.into(),
        kind: OrganizationKind::Provider,
    });
    for company in 0..shape.companies() {
        let name = company_name(company);
        let uid = derived_uid("organization", &name);
        fleet.organizations.push(OrganizationRecord {
            uid,
            name: name.clone(),
            kind: OrganizationKind::Company,
        });
        fleet.tenants.push(TenantRecord {
            uid: derived_uid("tenant", &name),
            name: format!("tenant-{company:05}"),
            organization_uid: uid,
        });
    }
    fleet
}

/// The servers in `range` with everything on them. One server in three is the provider's
/// (Cloud and Tenant plans); the others belong to companies in turn (Local plans).
pub fn servers(shape: &FleetShape, range: Range<u32>, now: Timestamp) -> Fleet {
    let mut fleet = Fleet::default();
    let companies = shape.companies();
    let points_every = 4 * 3600;
    for server in range {
        // Each server has its own stream, so any slice can be generated on its own.
        let mut rng = Rng(shape.seed ^ (u64::from(server) << 20).wrapping_mul(0x9e37_79b9));
        let provider_owned = server % 3 == 0;
        let company = server % companies;
        let owner = if provider_owned {
            derived_uid("organization", PROVIDER)
        } else {
            derived_uid("organization", &company_name(company))
        };
        let server_uid = uid(&mut rng);
        fleet.servers.push(ServerRecord {
            uid: server_uid,
            name: format!("vbr-{server:05}"),
            organization_uid: owner,
            connector: SIM_CONNECTOR.into(),
            connector_settings: ConnectorSettings::default(),
            sim_faults: Vec::new(),
        });
        for plan in 0..shape.plans_per_server {
            let plan_uid = uid(&mut rng);
            let tier = TIERS[rng.index(TIERS.len())];
            let (plan_type, tenant_uid) = if !provider_owned {
                (PlanType::Local, None)
            } else if rng.chance(50) {
                let tenant_of = rng.below(u64::from(companies)) as u32;
                (
                    PlanType::Tenant,
                    Some(derived_uid("tenant", &company_name(tenant_of))),
                )
            } else {
                (PlanType::Cloud, None)
            };
            fleet.plans.push(PlanRecord {
                uid: plan_uid,
                original_uid: uid(&mut rng),
                backup_server_uid: server_uid,
                name: format!("{} {tier} {server:05}-{plan:02}", company_name(company)),
                plan_type,
                tenant_uid,
                pre_failover_command: if rng.chance(20) {
                    "C:\\Scripts\\pre-failover.ps1".into()
                } else {
                    String::new()
                },
                post_failover_command: String::new(),
                targets: None,
            });
            for vm in 0..shape.vms_per_plan {
                let object_uid = uid(&mut rng);
                let role = ROLES[rng.index(ROLES.len())];
                let name = format!("{role}-{server:05}-{plan:02}-{vm:02}");
                fleet.objects.push(ObjectRecord {
                    uid: object_uid,
                    plan_uid,
                    backup_server_uid: server_uid,
                    path: format!("vcenter-{:02}\\DC\\{name}", server % 50),
                    host_name: format!("esx-{:03}", rng.below(400)),
                    folder_name: tier.to_owned(),
                    name,
                    boot_order: vm,
                    boot_delay_seconds: 0,
                    sim_faults: Vec::new(),
                });
                for point in 0..shape.points_per_vm {
                    let age = i64::from(point) * points_every + rng.below(600) as i64;
                    fleet.restore_points.push(RestorePointRecord {
                        uid: uid(&mut rng),
                        object_uid,
                        created_at: now.plus_seconds(-age),
                    });
                }
            }
        }
    }
    fleet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_documented_sizes() {
        let large = FleetShape::preset("large").unwrap();
        assert_eq!(
            (large.servers, large.plans(), large.vms()),
            (10_000, 100_000, 1_000_000)
        );
        assert_eq!(FleetShape::preset("medium").unwrap().vms(), 100_000);
        assert_eq!(FleetShape::preset("small").unwrap().vms(), 1_000);
        assert!(FleetShape::preset("huge").is_none());
    }

    #[test]
    fn slices_are_deterministic_and_add_up() {
        let shape = FleetShape {
            servers: 6,
            plans_per_server: 3,
            vms_per_plan: 4,
            points_per_vm: 2,
            seed: 7,
        };
        let now = Timestamp::from_ticks(17_000_000_000_000_000);
        let whole = servers(&shape, 0..6, now);
        let mut sliced = servers(&shape, 0..2, now);
        let rest = servers(&shape, 2..6, now);
        sliced.servers.extend(rest.servers);
        sliced.plans.extend(rest.plans);
        sliced.objects.extend(rest.objects);
        sliced.restore_points.extend(rest.restore_points);
        assert_eq!(whole, sliced);
        assert_eq!(whole.plans.len(), 18);
        assert_eq!(whole.objects.len(), 72);
        assert_eq!(whole.restore_points.len(), 144);
        let mut uids: Vec<Uuid> = whole.objects.iter().map(|o| o.uid).collect();
        uids.sort();
        uids.dedup();
        assert_eq!(uids.len(), 72, "no UID repeats");
        // Every tenant a plan names exists.
        let orgs = organizations(&shape);
        for plan in &whole.plans {
            if let Some(tenant) = plan.tenant_uid {
                assert!(orgs.tenants.iter().any(|t| t.uid == tenant));
            }
        }
    }
}

//! The built-in demo fleet: a provider with four customer companies, six backup servers, forty
//! plans of all three types, a few hundred VMs with restore points every 4 hours for 14 days,
//! and a history of earlier runs so that every status a client meets at rest appears.
//!
//! Deterministic for a given `now` (names, UIDs and history come from a fixed seed).

use standby_model::{
    BackupStatus, MessageSeverity, PlanStatus, PlanType, SessionKind, SessionMessage,
    SessionStatus, Timestamp,
};

use crate::file::{FleetFile, OrganizationEntry, PlanEntry, Schedule, ServerEntry, VmEntry};
use crate::records::*;
use crate::rng::Rng;

pub const PROVIDER: &str = "Standby Demo MSP";
/// (company, short name, tenant, own backup server or none)
pub const COMPANIES: [(&str, &str, &str, Option<&str>); 4] = [
    (
        "Contoso Ltd",
        "Contoso",
        "contoso-cloud",
        Some("contoso-vbr01"),
    ),
    (
        "Fabrikam Inc",
        "Fabrikam",
        "fabrikam-cloud",
        Some("fabrikam-vbr01"),
    ),
    (
        "Northwind Traders",
        "Northwind",
        "northwind-cloud",
        Some("northwind-vbr01"),
    ),
    ("Tailspin Toys", "Tailspin", "tailspin-cloud", None),
];
const PROVIDER_SERVERS: [&str; 3] = ["vbr-dc1-01", "vbr-dc1-02", "vbr-dc2-01"];
const TIERS: [(&str, &[&str]); 8] = [
    ("Tier 1 - Identity", &["dc", "adfs", "dns"]),
    ("Tier 1 - Databases", &["sql", "pg", "ora"]),
    ("Tier 2 - Web", &["web", "lb", "cache"]),
    ("Tier 2 - Applications", &["app", "api", "mq"]),
    ("Tier 3 - File and Print", &["file", "print", "dfs"]),
    ("ERP", &["erp-app", "erp-db", "erp-web"]),
    ("CRM", &["crm-app", "crm-db"]),
    ("Remote Desktop", &["rdsh", "rdgw", "rdcb"]),
];

/// The demo as a fleet file (also what `standby fleet demo` prints).
pub fn demo_file() -> FleetFile {
    let mut rng = Rng(0x5747_4e44_4259);
    let mut organizations = vec![OrganizationEntry {
        name: PROVIDER.into(),
        kind: "provider".into(),
        uid: None,
        tenants: vec![],
    }];
    let mut servers: Vec<ServerEntry> = PROVIDER_SERVERS
        .iter()
        .map(|name| ServerEntry {
            name: (*name).into(),
            organization: PROVIDER.into(),
            uid: None,
            connector: SIM_CONNECTOR.into(),
            connector_settings: None,
            sim_faults: Vec::new(),
        })
        .collect();
    for (company, _, tenant, server) in COMPANIES {
        organizations.push(OrganizationEntry {
            name: company.into(),
            kind: "company".into(),
            uid: None,
            tenants: vec![tenant.into()],
        });
        if let Some(server) = server {
            servers.push(ServerEntry {
                name: server.into(),
                organization: company.into(),
                uid: None,
                connector: SIM_CONNECTOR.into(),
                connector_settings: None,
                sim_faults: Vec::new(),
            });
        }
    }

    let mut plans = Vec::new();
    let mut vm_serial = 0u32;
    let mut plan = |rng: &mut Rng,
                    name: String,
                    server: &str,
                    plan_type: &str,
                    tenant: Option<&str>,
                    tier: usize,
                    site: &str| {
        let (_, roles) = TIERS[tier % TIERS.len()];
        let count = 6 + rng.below(7) as usize;
        let vms = (0..count)
            .map(|i| {
                vm_serial += 1;
                let role = roles[i % roles.len()];
                let name = format!("{}-{role}{:02}", site.to_lowercase(), i / roles.len() + 1);
                let host = format!(
                    "esx-{}-{:02}.standby.local",
                    site.to_lowercase(),
                    1 + rng.below(8)
                );
                VmEntry {
                    path: Some(format!(
                        "vc-{}\\{}\\Cluster01\\Replicas\\{name}_replica",
                        site.to_lowercase(),
                        site.to_uppercase()
                    )),
                    name,
                    uid: None,
                    host,
                    folder: "Replicas".into(),
                    boot_delay_seconds: if i == 0 {
                        5
                    } else {
                        [0, 0, 0, 5][rng.below(4) as usize]
                    },
                    restore_points: None,
                    schedule: None,
                    sim_fault: None,
                }
            })
            .collect();
        let scripted = rng.below(3) == 0;
        plans.push(PlanEntry {
            name,
            server: server.into(),
            plan_type: plan_type.into(),
            tenant: tenant.map(Into::into),
            uid: None,
            original_uid: None,
            pre_failover_command: if scripted {
                "C:\\Scripts\\pre-failover.ps1".into()
            } else {
                String::new()
            },
            post_failover_command: if scripted {
                "C:\\Scripts\\post-failover.ps1 -Notify noc@example.net".into()
            } else {
                String::new()
            },
            // Every demo plan has targets, so its reports judge each run: an hour's RPO for the
            // scripted (tier-one) plans, whose points come every few hours and so miss it.
            rto_target_seconds: Some(600),
            rpo_target_seconds: Some(if scripted { 3_600 } else { 86_400 }),
            schedule: Some(Schedule {
                every_hours: 4,
                days: 14,
                anchor: None,
            }),
            vms,
        });
    };

    // Local plans on the companies' own servers: 6 each (18).
    for (_, short, _, server) in COMPANIES {
        if let Some(server) = server {
            for (tier, (tier_name, _)) in TIERS.iter().enumerate().take(6) {
                plan(
                    &mut rng,
                    format!("{short} - {tier_name}"),
                    server,
                    "Local",
                    None,
                    tier,
                    short,
                );
            }
        }
    }
    // Tenant plans on the provider's servers, 3 per company (12), and Cloud plans (10).
    for (index, (_, short, tenant, _)) in COMPANIES.iter().enumerate() {
        for tier in 0..3 {
            let server = PROVIDER_SERVERS[(index + tier) % PROVIDER_SERVERS.len()];
            plan(
                &mut rng,
                format!("{short} DRaaS - {}", TIERS[tier + 2].0),
                server,
                "Tenant",
                Some(tenant),
                tier + 2,
                &format!("{short}-cc"),
            );
        }
    }
    for index in 0..10 {
        let server = PROVIDER_SERVERS[index % PROVIDER_SERVERS.len()];
        let tier = index % TIERS.len();
        plan(
            &mut rng,
            format!("Cloud DR {:02} - {}", index + 1, TIERS[tier].0),
            server,
            "Cloud",
            None,
            tier,
            &format!("cdr{:02}", index + 1),
        );
    }

    FleetFile {
        organizations,
        servers,
        plans,
    }
}

/// The resolved demo fleet with its history, as of `now`.
pub fn demo_fleet(now: Timestamp) -> Fleet {
    let mut fleet = match demo_file().resolve(now) {
        Ok(fleet) => fleet,
        // The demo file is built above; resolving it cannot fail unless that code is broken.
        Err(error) => unreachable!("the built-in demo fleet is invalid: {error}"),
    };
    fleet.history = demo_history(&fleet, now);
    fleet
}

/// Earlier runs: most plans stay Ready (some after a drill that was undone), the rest end
/// Completed, Success (test runs of cloud plans), Failed or UndoFailed.
fn demo_history(fleet: &Fleet, now: Timestamp) -> Vec<HistoricSession> {
    let mut rng = Rng(0x0048_4953_544f_5259);
    let mut history = Vec::new();
    for (index, plan) in fleet.plans.iter().enumerate() {
        let cloud = plan.plan_type != PlanType::Local;
        // Index patterns spread the statuses over companies, servers and types.
        let script: &[(SessionKind, bool)] = match index % 8 {
            1 if cloud => &[(SessionKind::Test, true)],
            1 => &[(SessionKind::Failover, true)],
            3 => &[(SessionKind::Failover, true), (SessionKind::Undo, true)],
            5 if index % 16 == 5 => &[(SessionKind::Failover, false)],
            5 => &[(SessionKind::Test, true), (SessionKind::Undo, true)],
            6 if index % 24 == 6 => &[(SessionKind::Failover, true), (SessionKind::Undo, false)],
            7 if index % 16 == 7 => &[(SessionKind::Failover, true)],
            _ => &[],
        };
        let objects: Vec<&ObjectRecord> = fleet
            .objects
            .iter()
            .filter(|o| o.plan_uid == plan.uid)
            .collect();
        let mut at =
            now.plus_seconds(-((2 + rng.below(5) as i64) * 86_400 + rng.below(86_400) as i64));
        let mut failed_over: Vec<(u128, Option<&RestorePointRecord>)> = Vec::new();
        for (step, (kind, succeeds)) in script.iter().enumerate() {
            let session_uid = derived_uid("demo-session", &format!("{}/{step}", plan.uid));
            let start = at;
            let mut messages = Vec::new();
            let mut vm_sessions = Vec::new();
            let mut vm_time = start.plus_seconds(5);
            let failing = if *succeeds {
                usize::MAX
            } else {
                rng.below(objects.len() as u64) as usize
            };
            for (position, object) in objects.iter().enumerate() {
                let vm_start = vm_time;
                let vm_end = vm_start.plus_seconds(2 + rng.below(5) as i64);
                vm_time = vm_end.plus_seconds(i64::from(object.boot_delay_seconds));
                let point = if *kind == SessionKind::Undo {
                    failed_over
                        .iter()
                        .find(|(uid, _)| *uid == object.uid.as_u128())
                        .and_then(|(_, p)| *p)
                } else {
                    fleet
                        .restore_points
                        .iter()
                        .filter(|p| p.object_uid == object.uid && p.created_at <= start)
                        .max_by_key(|p| p.created_at)
                };
                let ok = position != failing;
                let (title, description) = match (kind, ok) {
                    (SessionKind::Undo, true) => (
                        object.name.clone(),
                        "Failback to production completed; replica reverted.".to_owned(),
                    ),
                    (SessionKind::Undo, false) => (
                        object.name.clone(),
                        "Failed to revert the replica: the host did not answer.".to_owned(),
                    ),
                    (_, true) => (
                        object.name.clone(),
                        format!(
                            "Powered on from restore point {}.",
                            point.map_or("(none)".into(), |p| p.created_at.to_wire())
                        ),
                    ),
                    (_, false) => (
                        object.name.clone(),
                        "Failed to power on the replica: boot timed out after 600 s.".to_owned(),
                    ),
                };
                messages.push(SessionMessage {
                    title,
                    description,
                    severity: if ok {
                        MessageSeverity::Success
                    } else {
                        MessageSeverity::Failed
                    },
                    start_time: Some(vm_start),
                    end_time: Some(vm_end),
                });
                if *kind != SessionKind::Undo && ok {
                    failed_over.push((object.uid.as_u128(), point));
                }
                vm_sessions.push(HistoricVmSession {
                    uid: derived_uid("demo-vm-session", &format!("{session_uid}/{}", object.uid)),
                    object_uid: object.uid,
                    backup_status: if ok {
                        BackupStatus::Success
                    } else {
                        BackupStatus::Failed
                    },
                    restore_point_uid: point.map(|p| p.uid),
                    restore_point_time: point.map(|p| p.created_at),
                    start_time: vm_start,
                    end_time: Some(vm_end),
                });
            }
            let end = vm_time.plus_seconds(3);
            let (status, message, plan_status_after) = match (kind, succeeds) {
                (SessionKind::Failover, true) => {
                    (SessionStatus::Success, None, PlanStatus::Completed)
                }
                (SessionKind::Test, true) => (SessionStatus::Success, None, PlanStatus::Success),
                (SessionKind::Undo, true) => (SessionStatus::Success, None, PlanStatus::Ready),
                (SessionKind::Undo, false) => (
                    SessionStatus::Failed,
                    Some("Undo failed for 1 of the plan's VMs.".to_owned()),
                    PlanStatus::UndoFailed,
                ),
                (_, false) => (
                    SessionStatus::Failed,
                    Some("Failover failed for 1 of the plan's VMs.".to_owned()),
                    PlanStatus::Failed,
                ),
            };
            history.push(HistoricSession {
                uid: session_uid,
                plan_uid: plan.uid,
                kind: *kind,
                status,
                message,
                started_by: "admin".into(),
                requested_point: None,
                start_time: start,
                end_time: end,
                messages,
                vm_sessions,
                plan_status_after,
            });
            at = end.plus_seconds(3600 + rng.below(7200) as i64);
        }
    }
    history
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn demo_looks_like_a_real_provider() {
        let now = Timestamp::parse("2026-11-27T10:00:00Z").unwrap();
        let fleet = demo_fleet(now);
        assert_eq!(fleet.organizations.len(), 5);
        assert_eq!(fleet.servers.len(), 6);
        assert_eq!(fleet.plans.len(), 40);
        assert!(fleet.objects.len() >= 300, "{} VMs", fleet.objects.len());
        // 14 days of points every 4 hours.
        assert_eq!(fleet.restore_points.len(), fleet.objects.len() * 84);
        let types: HashSet<_> = fleet.plans.iter().map(|p| p.plan_type).collect();
        assert_eq!(types.len(), 3);
        for plan in &fleet.plans {
            assert_eq!(
                plan.tenant_uid.is_some(),
                plan.plan_type == PlanType::Tenant,
                "{}",
                plan.name
            );
        }
        // Every at-rest status appears; most plans are Ready.
        let mut last = std::collections::HashMap::new();
        for session in &fleet.history {
            last.insert(session.plan_uid, session.plan_status_after);
        }
        let statuses: HashSet<_> = last.values().copied().collect();
        for status in [
            PlanStatus::Completed,
            PlanStatus::Success,
            PlanStatus::Failed,
            PlanStatus::UndoFailed,
            PlanStatus::Ready,
        ] {
            assert!(statuses.contains(&status), "{status} missing");
        }
        let busy = last.values().filter(|s| **s != PlanStatus::Ready).count();
        assert!(busy < 20, "{busy} plans not Ready");
        assert_eq!(demo_fleet(now), fleet, "deterministic");
    }
}

//! Crash safety: `kill -9` the real server at several moments while sessions run, restart it on
//! the same data directory, and prove from the sim connector's ledger that every accepted start
//! ran to an honest end with every VM operation executed exactly once.

mod common;

use std::time::Duration;

use common::*;

const PLANS_COUNT: usize = 12;
const VMS_PER_PLAN: usize = 4;

fn fleet() -> String {
    let mut text = String::from(
        "[[organizations]]\nname = \"MSP\"\nkind = \"provider\"\n\n[[servers]]\nname = \"vbr-1\"\norganization = \"MSP\"\n",
    );
    for plan in 0..PLANS_COUNT {
        text.push_str(&format!(
            "\n[[plans]]\nname = \"plan-{plan:02}\"\nserver = \"vbr-1\"\ntype = \"Local\"\n"
        ));
        if plan % 3 == 0 {
            text.push_str(
                "pre_failover_command = 'C:\\pre.ps1'\npost_failover_command = 'C:\\post.ps1'\n",
            );
        }
        for vm in 0..VMS_PER_PLAN {
            text.push_str(&format!(
                "  [[plans.vms]]\n  name = \"vm-{plan:02}-{vm}\"\n  restore_points = [\"2026-11-01T00:00:00Z\"]\n"
            ));
        }
    }
    text
}

#[tokio::test]
async fn sessions_survive_sigkill_and_nothing_runs_twice() {
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("fleet.toml");
    std::fs::write(&file, fleet()).unwrap();
    let store = TestStore::fresh().await;
    // Slow enough boots that the kills land in the middle of VM operations.
    let args = [
        "--fleet",
        file.to_str().unwrap(),
        "--sim-boot-ms",
        "150-450",
        "--workers",
        "3",
        // On PostgreSQL a restarted node waits for the dead one's leases to run out.
        "--lease-seconds",
        "3",
        // Four kills: a session may be claimed five times or more; this test is about resuming.
        "--max-session-attempts",
        "10",
    ];
    let mut app = TestApp::start(&store, &args).await;
    let plans: Vec<String> = app
        .all_plans()
        .await
        .iter()
        .map(|p| p["instanceUid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(plans.len(), PLANS_COUNT);
    for plan in &plans {
        let (status, body) = send(app.post(&format!("{PLANS}/{plan}/start"))).await;
        assert_eq!(status, 200, "{body}");
    }

    for pause in [350, 800, 1300, 600] {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        app.kill(); // SIGKILL: no shutdown, no flush beyond what was committed
        app = TestApp::start(&store, &args).await;
    }

    for plan in &plans {
        let done = app.wait_for(plan, &["Completed", "Failed"]).await;
        assert_eq!(done["status"], "Completed", "{done}");
        assert_eq!(done["lastSession"]["status"], "Success");
        for object in app.objects_of(plan).await {
            assert_eq!(
                object["restoreSession"]["backupStatus"], "Success",
                "{object}"
            );
        }
    }
    let (_, actions) = app.get_json("/api/v3/asyncActions", &[]).await;
    let actions = actions["data"].as_array().unwrap();
    assert_eq!(actions.len(), PLANS_COUNT);
    assert!(
        actions.iter().all(|a| a["status"] == "succeed"),
        "{actions:?}"
    );

    let executions = app.sim_executions().await;
    let scripts = (0..PLANS_COUNT).filter(|p| p % 3 == 0).count() * 2;
    assert_eq!(
        executions.len(),
        PLANS_COUNT * VMS_PER_PLAN + scripts,
        "one operation per VM and script"
    );
    let repeated: Vec<_> = executions
        .iter()
        .filter(|(_, count)| **count != 1)
        .collect();
    assert!(
        repeated.is_empty(),
        "operations executed more than once: {repeated:?}"
    );
}

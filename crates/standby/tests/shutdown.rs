//! Graceful shutdown: on SIGTERM the server stops taking work, lets the VM steps in flight
//! finish and record their result (a safe point), hands the session back to the queue, and
//! exits; the next start resumes the session where it stopped, running no VM twice.

mod common;

use std::time::Duration;

use common::*;
use standby_model::BackupStatus;

const VMS: usize = 6;

#[tokio::test]
async fn sigterm_stops_at_a_safe_point_and_the_session_resumes() {
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("fleet.toml");
    std::fs::write(&file, one_plan_fleet("tier-1", VMS)).unwrap();
    let store = TestStore::fresh().await;
    // Two VMs boot at a time, each for 1.5 s: SIGTERM lands while two are booting.
    let slow = [
        "--fleet",
        file.to_str().unwrap(),
        "--sim-boot-ms",
        "1500-1500",
        "--max-parallel-boots",
        "2",
    ];
    let mut app = TestApp::start(&store, &slow).await;
    let plan = app.plan_named("tier-1").await;
    let uid = plan["instanceUid"].as_str().unwrap().to_owned();
    let (status, body) = send(app.post(&format!("{PLANS}/{uid}/start"))).await;
    assert_eq!(status, 200, "{body}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !app
        .objects_of(&uid)
        .await
        .iter()
        .any(|o| o["restoreSession"]["backupStatus"] == "Running")
    {
        assert!(std::time::Instant::now() < deadline, "no VM started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The steps in flight need 1.5 s; the bound only catches a server that does not stop.
    app.terminate(Duration::from_secs(30))
        .expect("standby exits on SIGTERM");

    // Stopped at a safe point: every VM step that started has its result; none is left running
    // and not every VM was started.
    let opened = store.open().await;
    let history = opened
        .session_history(uid.parse().unwrap(), 1, 0)
        .await
        .unwrap();
    let session = &history.items[0];
    assert!(session.end_time.is_none(), "the session is not over");
    assert!(
        session
            .vms
            .iter()
            .all(|vm| vm.backup_status == BackupStatus::Success),
        "{:?}",
        session.vms
    );
    let done_before = session.vms.len();
    assert!((1..VMS).contains(&done_before), "{done_before} VMs done");
    assert_eq!(
        opened.job_counts().await.unwrap().queued,
        1,
        "handed back to the queue"
    );
    drop(opened);

    let app = TestApp::start(&store, &["--sim-boot-ms", "20-60"]).await;
    let done = app.wait_for(&uid, &["Completed", "Failed"]).await;
    assert_eq!(done["status"], "Completed", "{done}");
    for object in app.objects_of(&uid).await {
        assert_eq!(
            object["restoreSession"]["backupStatus"], "Success",
            "{object}"
        );
    }
    let executions = app.sim_executions().await;
    assert_eq!(executions.len(), VMS, "{executions:?}");
    assert!(
        executions.values().all(|count| *count == 1),
        "a VM ran twice: {executions:?}"
    );
}

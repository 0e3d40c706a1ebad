//! The agent connector's command queue on a real store (SQLite, or PostgreSQL when the suite has
//! one): delivered at least once, an unacknowledged delivery delivered again, a cancelled command
//! never delivered, the first final result kept, replicas by version, enrollment once.

mod common;

use standby_fleet::agent::{OperationResult, Outcome, ReplicaReport};
use standby_model::Timestamp;
use standby_store::agents::{AgentStore, ReportedReplica};
use uuid::Uuid;

fn result(id: &str, outcome: Outcome, detail: &str) -> OperationResult {
    OperationResult {
        operation_id: id.to_owned(),
        outcome,
        detail: detail.to_owned(),
        replica: None,
    }
}

fn ids(commands: &[standby_store::agents::QueuedCommand]) -> Vec<&str> {
    commands.iter().map(|c| c.operation_id.as_str()).collect()
}

async fn agent_server(store: &common::TestStore) -> (std::sync::Arc<dyn AgentStore>, Uuid) {
    let organization = store.ensure_provider_organization("MSP").await.unwrap();
    let agents = store.agents();
    let now = Timestamp::now();
    let server = agents
        .add_agent_server(
            "dr-host",
            organization,
            "token-hash",
            now.plus_millis(60_000),
            now,
        )
        .await
        .unwrap()
        .unwrap();
    (agents, server)
}

#[tokio::test]
async fn commands_are_delivered_again_until_acknowledged_and_end_once() {
    let store = common::fresh_store().await;
    let (agents, server) = agent_server(&store).await;
    let now = Timestamp::now();
    for id in ["s/a", "s/b", "s/c"] {
        agents.queue_command(server, id, "{}", now).await.unwrap();
    }
    // Queued twice: one command.
    let again = agents
        .queue_command(server, "s/a", "{\"other\":1}", now)
        .await
        .unwrap();
    assert_eq!(again.body, "{}");

    let first = agents.take_commands(server, false, 100, now).await.unwrap();
    assert_eq!(ids(&first), ["s/a", "s/b", "s/c"]);
    assert!(
        agents
            .take_commands(server, false, 100, now)
            .await
            .unwrap()
            .is_empty()
    );
    // "s/a" acknowledged; "s/b" finished; "s/c" never heard of again.
    agents
        .record_results(
            server,
            &[
                result("s/a", Outcome::Running, ""),
                result("s/b", Outcome::Succeeded, "booted"),
            ],
            now,
        )
        .await
        .unwrap();
    let later = now.plus_millis(31_000);
    let redelivered = agents
        .take_commands(server, false, 100, later)
        .await
        .unwrap();
    assert_eq!(
        ids(&redelivered),
        ["s/c"],
        "only the unacknowledged one again"
    );
    // An agent that just started gets every open command.
    let all = agents
        .take_commands(server, true, 100, later)
        .await
        .unwrap();
    assert_eq!(ids(&all), ["s/a", "s/c"]);

    // The first final result is kept; a repeat or a late "running" changes nothing.
    let finished = agents
        .record_results(
            server,
            &[
                result("s/a", Outcome::Failed, "first"),
                result("s/a", Outcome::Succeeded, "second"),
                result("s/a", Outcome::Running, ""),
            ],
            later,
        )
        .await
        .unwrap();
    assert_eq!(finished, 1);
    let stored = agents.command(server, "s/a").await.unwrap().unwrap();
    assert_eq!(
        (stored.outcome, stored.detail.as_str()),
        (Some(Outcome::Failed), "first")
    );

    // Another server's agent cannot finish this server's commands.
    let other = agents
        .add_agent_server(
            "other",
            store.provider_organization().await.unwrap().unwrap(),
            "h2",
            later,
            now,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        agents
            .record_results(other, &[result("s/c", Outcome::Succeeded, "")], later)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        agents
            .command(server, "s/c")
            .await
            .unwrap()
            .unwrap()
            .outcome,
        None
    );
}

#[tokio::test]
async fn a_cancelled_command_is_never_delivered() {
    let store = common::fresh_store().await;
    let (agents, server) = agent_server(&store).await;
    let now = Timestamp::now();
    agents
        .queue_command(server, "s/a", "{}", now)
        .await
        .unwrap();
    agents
        .queue_command(server, "s/b", "{}", now)
        .await
        .unwrap();
    assert!(
        agents
            .cancel_undelivered(server, "s/a", "gave up")
            .await
            .unwrap()
    );
    assert_eq!(
        ids(&agents.take_commands(server, true, 100, now).await.unwrap()),
        ["s/b"]
    );
    // Delivered: the agent must be told instead.
    assert!(
        !agents
            .cancel_undelivered(server, "s/b", "gave up")
            .await
            .unwrap()
    );
    let cancelled = agents.command(server, "s/a").await.unwrap().unwrap();
    assert_eq!(cancelled.outcome, Some(Outcome::Cancelled));
}

#[tokio::test]
async fn replicas_follow_the_newest_report_and_reset_on_enrollment() {
    let store = common::fresh_store().await;
    let (agents, server) = agent_server(&store).await;
    let vm = Uuid::now_v7();
    let report = |running, version| ReplicaReport {
        vm_uid: vm,
        running,
        test: true,
        version,
    };
    agents
        .record_replicas(server, &[report(true, 2)])
        .await
        .unwrap();
    // A late, older report does not overwrite the newer one.
    agents
        .record_replicas(server, &[report(false, 1)])
        .await
        .unwrap();
    assert_eq!(
        agents.replica(server, vm).await.unwrap(),
        ReportedReplica::Running { test: true }
    );

    // Enrollment: once per token, and what an earlier agent reported is forgotten.
    let now = Timestamp::now();
    let enrolled = agents
        .enroll("token-hash", "credential", "host", "1", now)
        .await
        .unwrap();
    assert_eq!(enrolled.map(|identity| identity.server_uid), Some(server));
    assert!(
        agents
            .enroll("token-hash", "credential-2", "host", "1", now)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        agents.replica(server, vm).await.unwrap(),
        ReportedReplica::Off
    );
    agents
        .record_replicas(server, &[report(true, 1)])
        .await
        .unwrap();
    assert_eq!(
        agents.replica(server, vm).await.unwrap(),
        ReportedReplica::Running { test: true }
    );
    // Reenrolled: the credential stops working at once.
    assert!(
        agents
            .authenticate_agent("credential")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        agents
            .reenroll(server, "token-2", now.plus_millis(60_000))
            .await
            .unwrap()
    );
    assert!(
        agents
            .authenticate_agent("credential")
            .await
            .unwrap()
            .is_none()
    );
}

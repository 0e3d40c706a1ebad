//! The `agent` connector: drives a backup server whose host runs `standby agent`.
//!
//! Nothing is sent to the host from here: `submit` queues a durable command in the store (once
//! per operation id), the agent takes it on its long poll, executes it at most once (its own
//! ledger), and posts the result back, which `status` and `wait` read. Delivery is at least once
//! both ways; the store keeps the first final result of an operation and ignores repeats.
//!
//! A server whose agent has not been heard from for `offline_after` is offline: every call is
//! `Unavailable` ("backup server NAME offline since TIME"), so the engine retries until the
//! step's deadline and then fails the VM with that reason; a result already reported is still
//! answered.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use standby_fleet::agent::{Command, CommandAction, Outcome};
use standby_model::Timestamp;
use standby_store::agents::{QueuedCommand, ReportedReplica};
use standby_store::{AgentStore, Scope, StoreError};
use uuid::Uuid;

use crate::connector::*;

/// How often a wait looks at the store when nothing in this process signalled (another node
/// may have taken the agent's report).
const WAIT_POLL: Duration = Duration::from_millis(250);
/// What an offline server's `Unavailable` asks the engine to wait before the next try.
const OFFLINE_RETRY: Duration = Duration::from_secs(2);

pub struct AgentConnector {
    store: Arc<dyn AgentStore>,
    offline_after: Duration,
}

impl AgentConnector {
    pub fn new(store: Arc<dyn AgentStore>, offline_after: Duration) -> Self {
        AgentConnector {
            store,
            offline_after,
        }
    }

    /// `Some(error)` when the server's agent is not online (or the server has none).
    async fn offline(&self, server: Uuid) -> Result<Option<ConnectorError>, ConnectorError> {
        let status = self
            .store
            .server(Scope::All, server)
            .await
            .map_err(unavailable)?;
        let Some(status) = status else {
            return Ok(Some(ConnectorError::Rejected(format!(
                "backup server {server} does not exist"
            ))));
        };
        let Some(agent) = status.agent else {
            return Ok(Some(ConnectorError::Rejected(format!(
                "backup server {} has no agent",
                status.name
            ))));
        };
        if agent.online(Timestamp::now(), self.offline_after) {
            return Ok(None);
        }
        let since = match agent.last_seen {
            Some(seen) => format!("offline since {seen}"),
            None => "offline: its agent never connected".to_owned(),
        };
        Ok(Some(ConnectorError::Unavailable {
            reason: format!("backup server {} {since}", status.name),
            retry_after: OFFLINE_RETRY,
        }))
    }

    async fn check_online(&self, server: Uuid) -> Result<(), ConnectorError> {
        match self.offline(server).await? {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// The command the agent receives for an operation.
    async fn command_for(&self, operation: &Operation) -> Result<Command, ConnectorError> {
        let session = operation.id.session().ok_or_else(|| {
            ConnectorError::Protocol(format!("operation id {} names no session", operation.id))
        })?;
        let rejected_vm =
            |vm: Uuid| ConnectorError::Rejected(format!("VM {vm} is not in any failover plan"));
        let command = match &operation.action {
            Action::FailOver {
                vm,
                restore_point,
                test,
            } => {
                let context = self
                    .store
                    .vm_context(*vm)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| rejected_vm(*vm))?;
                let point_time = self
                    .store
                    .restore_point_time(*restore_point)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| {
                        ConnectorError::Rejected(format!(
                            "restore point {restore_point} of VM {} no longer exists",
                            context.vm_name
                        ))
                    })?;
                Command {
                    operation_id: operation.id.to_string(),
                    plan_uid: context.plan_uid,
                    plan_name: context.plan_name,
                    session_uid: session,
                    vm_name: Some(context.vm_name),
                    restore_point_time: Some(point_time),
                    action: CommandAction::FailOver {
                        vm_uid: *vm,
                        restore_point_uid: *restore_point,
                        test: *test,
                    },
                }
            }
            Action::Undo { vm } => {
                let context = self
                    .store
                    .vm_context(*vm)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| rejected_vm(*vm))?;
                Command {
                    operation_id: operation.id.to_string(),
                    plan_uid: context.plan_uid,
                    plan_name: context.plan_name,
                    session_uid: session,
                    vm_name: Some(context.vm_name),
                    restore_point_time: None,
                    action: CommandAction::Undo { vm_uid: *vm },
                }
            }
            Action::Script { command } => {
                let context = self
                    .store
                    .session_context(session)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| {
                        ConnectorError::Rejected(format!("session {session} does not exist"))
                    })?;
                let when = operation
                    .id
                    .script_when()
                    .unwrap_or(ScriptWhen::PreFailover);
                Command {
                    operation_id: operation.id.to_string(),
                    plan_uid: context.plan_uid,
                    plan_name: context.plan_name,
                    session_uid: session,
                    vm_name: None,
                    restore_point_time: None,
                    action: CommandAction::Script {
                        command: command.clone(),
                        when: when.as_str().to_owned(),
                        test: context.test,
                    },
                }
            }
        };
        Ok(command)
    }

    async fn stored(
        &self,
        server: Uuid,
        id: &OperationId,
    ) -> Result<Option<QueuedCommand>, ConnectorError> {
        self.store
            .command(server, id.as_str())
            .await
            .map_err(unavailable)
    }

    /// The operation's status: a final result whenever one was reported (even from a server
    /// that went offline since), else `Unavailable` while the server is offline.
    async fn current(
        &self,
        server: Uuid,
        id: &OperationId,
    ) -> Result<OperationStatus, ConnectorError> {
        let command = self.stored(server, id).await?;
        if let Some(status) = command.as_ref().and_then(final_status) {
            return Ok(status);
        }
        self.check_online(server).await?;
        Ok(match command {
            Some(_) => OperationStatus::Running,
            None => OperationStatus::Unknown,
        })
    }
}

/// A store that does not answer is a host we cannot reach right now.
fn unavailable(error: StoreError) -> ConnectorError {
    ConnectorError::Unavailable {
        reason: format!("the store did not answer: {error}"),
        retry_after: Duration::from_secs(1),
    }
}

fn final_status(command: &QueuedCommand) -> Option<OperationStatus> {
    let detail = command.detail.clone();
    match command.outcome? {
        Outcome::Running => None,
        Outcome::Succeeded => Some(OperationStatus::Succeeded { detail }),
        Outcome::Failed => Some(OperationStatus::Failed { reason: detail }),
        Outcome::Cancelled => Some(OperationStatus::Cancelled { reason: detail }),
    }
}

#[async_trait]
impl Connector for AgentConnector {
    async fn probe(&self, server: Uuid) -> Result<Health, ConnectorError> {
        Ok(match self.offline(server).await? {
            None => Health {
                online: true,
                detail: "the agent is connected".to_owned(),
            },
            Some(error) => Health {
                online: false,
                detail: error.to_string(),
            },
        })
    }

    async fn submit(&self, operation: &Operation) -> Result<OperationStatus, ConnectorError> {
        // Queued only while the agent is online: a command for a host that is gone would run
        // whenever it came back, long after the engine gave up on the step.
        self.check_online(operation.server).await?;
        let command = self.command_for(operation).await?;
        let body = serde_json::to_string(&command)
            .map_err(|error| ConnectorError::Protocol(error.to_string()))?;
        let queued = self
            .store
            .queue_command(
                operation.server,
                operation.id.as_str(),
                &body,
                Timestamp::now(),
            )
            .await
            .map_err(unavailable)?;
        Ok(final_status(&queued).unwrap_or(OperationStatus::Running))
    }

    async fn status(
        &self,
        server: Uuid,
        id: &OperationId,
    ) -> Result<OperationStatus, ConnectorError> {
        self.current(server, id).await
    }

    async fn wait(
        &self,
        server: Uuid,
        id: &OperationId,
        timeout: Duration,
    ) -> Result<OperationStatus, ConnectorError> {
        let until = tokio::time::Instant::now() + timeout;
        let changes = self.store.changes();
        loop {
            // Registered before the read, so a result recorded right after it still wakes us.
            let notified = changes.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let status = self.current(server, id).await?;
            if status.is_finished() || status == OperationStatus::Unknown {
                return Ok(status);
            }
            let now = tokio::time::Instant::now();
            if now >= until {
                return Ok(status);
            }
            let pause = WAIT_POLL.min(until - now);
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    async fn cancel(
        &self,
        server: Uuid,
        id: &OperationId,
    ) -> Result<OperationStatus, ConnectorError> {
        let reason = "cancelled before the agent received it";
        if self
            .store
            .cancel_undelivered(server, id.as_str(), reason)
            .await
            .map_err(unavailable)?
        {
            return Ok(OperationStatus::Cancelled {
                reason: reason.to_owned(),
            });
        }
        let Some(command) = self.stored(server, id).await? else {
            return Ok(OperationStatus::Unknown);
        };
        if let Some(status) = final_status(&command) {
            return Ok(status);
        }
        // Delivered and running: the agent is told with a command of its own.
        let original: Command = serde_json::from_str(&command.body)
            .map_err(|error| ConnectorError::Protocol(error.to_string()))?;
        let cancel = Command {
            operation_id: format!("{id}#cancel"),
            action: CommandAction::Cancel {
                target: id.to_string(),
            },
            ..original
        };
        let body = serde_json::to_string(&cancel)
            .map_err(|error| ConnectorError::Protocol(error.to_string()))?;
        self.store
            .queue_command(server, &cancel.operation_id, &body, Timestamp::now())
            .await
            .map_err(unavailable)?;
        Ok(OperationStatus::Running)
    }

    async fn replica(&self, server: Uuid, vm: Uuid) -> Result<ReplicaState, ConnectorError> {
        // An offline host's replicas are unknown, never taken for off.
        self.check_online(server).await?;
        Ok(
            match self.store.replica(server, vm).await.map_err(unavailable)? {
                ReportedReplica::Off => ReplicaState::Off,
                ReportedReplica::Running { test } => ReplicaState::Running { test },
            },
        )
    }
}

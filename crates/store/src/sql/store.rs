//! The `Store` implementation shared by the SQL backends: each method hands its pool to the
//! backend-neutral SQL modules beside this file.

use async_trait::async_trait;
use standby_fleet::Fleet;
use standby_model::{FailoverPlan, PlanObject, Timestamp};
use uuid::Uuid;

use crate::freshness::Topics;
use crate::*;

#[async_trait]
impl Store for super::BackendStore {
    async fn check_ready(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1 FROM plans LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(())
    }

    fn single_node(&self) -> bool {
        super::SINGLE_NODE
    }

    fn freshness(&self) -> &std::sync::Arc<crate::freshness::Freshness> {
        &self.freshness
    }

    async fn close(&self) {
        self.freshness.stop_watching().await;
        self.writer.close().await;
        self.pool.close().await;
    }

    async fn purge_expired(
        &self,
        now: Timestamp,
        retention: &retention::Retention,
    ) -> Result<retention::Purged, StoreError> {
        let before = |kept: std::time::Duration| {
            now.plus_seconds(-(i64::try_from(kept.as_secs()).unwrap_or(i64::MAX / 2)))
                .ticks()
        };
        let now_ticks = now.ticks();
        // (table, its key, which rows, the instant they are compared with)
        let passes: [(&'static str, &str, &str, i64); 10] = [
            ("idempotency", "request_id", "expires_at <= $1", now_ticks),
            ("tokens", "hash", "expires_at <= $1", now_ticks),
            ("async_actions", "uid", "expires_at <= $1", now_ticks),
            ("login_attempts", "key", "expires_at <= $1", now_ticks),
            (
                "jobs",
                "uid",
                "state = 'done' AND updated_at <= $1",
                before(retention.done_jobs),
            ),
            (
                "sim_operations",
                "operation_id",
                "finished_at <= $1",
                before(retention.ledger),
            ),
            (
                "agent_commands",
                "server_uid, operation_id",
                "outcome IN ('succeeded', 'failed', 'cancelled') AND reported_at <= $1",
                before(retention.ledger),
            ),
            ("audit", "uid", "at <= $1", before(retention.audit)),
            // Deliveries first: an event's are gone before it is.
            (
                "notification_deliveries",
                "uid",
                "state <> 'pending' AND created_at <= $1",
                before(retention.notifications),
            ),
            (
                "notification_events",
                "uid",
                "dispatched = TRUE AND created_at <= $1",
                before(retention.notifications),
            ),
        ];
        let mut purged = retention::Purged::default();
        for (table, key, condition, instant) in passes {
            let sql = format!(
                "DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM {table} WHERE {condition} LIMIT {})",
                retention::PURGE_BATCH
            );
            let deleted = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(instant)
                .execute(&self.writer)
                .await?
                .rows_affected();
            purged.by_table.push((table, deleted));
        }
        self.freshness
            .advance(Topics::AUTH | Topics::ENGINE | Topics::NOTIFICATIONS | Topics::OTHER);
        Ok(purged)
    }

    async fn refresh_statistics(&self) -> Result<(), StoreError> {
        if let Some(analyze) = super::ANALYZE {
            sqlx::query(analyze).execute(&self.writer).await?;
        }
        Ok(())
    }

    async fn table_rows(&self) -> Result<Vec<(&'static str, u64)>, StoreError> {
        let mut rows = Vec::with_capacity(retention::WATCHED_TABLES.len());
        for table in retention::WATCHED_TABLES {
            let count: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                    .fetch_one(&self.pool)
                    .await?;
            rows.push((*table, count.max(0) as u64));
        }
        Ok(rows)
    }

    fn sim_ledger(&self) -> std::sync::Arc<dyn SimLedger> {
        std::sync::Arc::new(super::sim::SqlSimLedger {
            pool: self.pool.clone(),
            writer: self.writer.clone(),
            committer: self.committer.clone(),
        })
    }

    fn agents(&self) -> std::sync::Arc<dyn AgentStore> {
        std::sync::Arc::new(super::agents::SqlAgentStore {
            pool: self.pool.clone(),
            writer: self.writer.clone(),
            freshness: self.freshness.clone(),
            changes: self.agent_changes.clone(),
        })
    }
}

#[async_trait]
impl PlanStore for super::BackendStore {
    async fn boot_order(&self, plan: Uuid) -> Result<Vec<Uuid>, StoreError> {
        super::plans::boot_order(&self.pool, plan).await
    }

    async fn plan_owners(
        &self,
        plans: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, PlanOwner>, StoreError> {
        super::plans::plan_owners(&self.pool, plans).await
    }

    async fn is_empty(&self) -> Result<bool, StoreError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT uid FROM plans LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_none())
    }

    async fn import_fleet(&self, fleet: &Fleet) -> Result<ImportSummary, StoreError> {
        let result = super::import::import_fleet(&self.writer, fleet).await;
        self.freshness.advance(Topics::ALL);
        result
    }

    async fn seed_fleet(&self, fleet: &Fleet) -> Result<Option<ImportSummary>, StoreError> {
        let result = super::import::seed_fleet(&self.writer, fleet).await;
        self.freshness.advance(Topics::ALL);
        result
    }

    async fn list_plans(&self, query: &ListQuery) -> Result<Page<FailoverPlan>, StoreError> {
        super::plans::list_plans(&self.pool, &self.freshness, query).await
    }

    async fn get_plan(&self, scope: Scope, uid: Uuid) -> Result<Option<FailoverPlan>, StoreError> {
        super::plans::get_plan(&self.pool, scope, uid).await
    }

    async fn list_objects(&self, query: &ListQuery) -> Result<Page<PlanObject>, StoreError> {
        super::plans::list_objects(&self.pool, &self.freshness, query).await
    }

    async fn server_visible(&self, scope: Scope, uid: Uuid) -> Result<bool, StoreError> {
        super::plans::server_visible(&self.pool, scope, uid).await
    }

    async fn update_plan_commands(
        &self,
        scope: Scope,
        plan: &FailoverPlan,
        change: &CommandChange,
        idempotent_answer: Option<&(Uuid, StoredResponse)>,
    ) -> Result<Option<FailoverPlan>, StoreError> {
        let result = super::plans::update_plan_commands(
            &self.pool,
            &self.committer,
            scope,
            plan,
            change,
            idempotent_answer,
        )
        .await;
        self.freshness.advance(Topics::PLANS | Topics::ENGINE);
        result
    }

    async fn object_plan(&self, object: Uuid) -> Result<Option<Uuid>, StoreError> {
        super::engine::object_plan(&self.pool, object).await
    }

    async fn restore_points(
        &self,
        object: Uuid,
        limit: u32,
        offset: u32,
    ) -> Result<Page<RestorePointView>, StoreError> {
        super::engine::restore_points(&self.pool, object, limit, offset).await
    }

    async fn session_history(
        &self,
        plan: Uuid,
        limit: u32,
        offset: u32,
    ) -> Result<Page<SessionHistory>, StoreError> {
        super::reports::session_history(&self.pool, plan, limit, offset).await
    }
}

#[async_trait]
impl AuthStore for super::BackendStore {
    async fn count_users(&self) -> Result<u64, StoreError> {
        super::auth::count_users(&self.pool).await
    }

    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        super::auth::create_user(&self.writer, user).await
    }

    async fn find_user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        super::auth::find_user_by_name(&self.pool, name).await
    }

    async fn provider_organization(&self) -> Result<Option<Uuid>, StoreError> {
        super::auth::provider_organization(&self.pool).await
    }

    async fn ensure_provider_organization(&self, name: &str) -> Result<Uuid, StoreError> {
        let result = super::auth::ensure_provider_organization(&self.writer, name).await;
        self.freshness.advance(Topics::ORGANIZATIONS | Topics::AUTH);
        result
    }

    async fn list_organizations(
        &self,
    ) -> Result<Vec<standby_fleet::OrganizationRecord>, StoreError> {
        super::auth::list_organizations(&self.pool).await
    }

    async fn company_names(&self, limit: u32) -> Result<Vec<(Uuid, String)>, StoreError> {
        super::auth::company_names(&self.pool, limit).await
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        super::auth::list_users(&self.pool).await
    }

    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, StoreError> {
        let result = super::auth::set_password(&self.writer, name, password_hash).await;
        self.freshness.advance(Topics::AUTH);
        result
    }

    async fn set_disabled(&self, name: &str, disabled: bool) -> Result<bool, StoreError> {
        let result = super::auth::set_disabled(&self.writer, name, disabled).await;
        self.freshness.advance(Topics::AUTH);
        result
    }

    async fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        let result = super::auth::remove_user(&self.writer, name).await;
        self.freshness.advance(Topics::AUTH);
        result
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        super::auth::insert_api_key(&self.writer, key).await
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        super::auth::insert_token(&self.writer, token).await
    }

    async fn revoke_token(&self, hash: &str) -> Result<bool, StoreError> {
        let result = super::auth::revoke_token(&self.writer, hash).await;
        // Cached credentials are kept per generation: the revoked one must not be served.
        self.freshness.advance(Topics::AUTH);
        result
    }

    async fn find_credential(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<Credential>, StoreError> {
        super::auth::find_credential(&self.pool, hash, now).await
    }

    async fn consume_refresh_token(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<(TokenRecord, UserRecord)>, StoreError> {
        let result = super::auth::consume_refresh_token(&self.writer, hash, now).await;
        self.freshness.advance(Topics::AUTH);
        result
    }

    async fn reserve_login_attempt(
        &self,
        key: &str,
        limit: u32,
        window_seconds: i64,
        now: Timestamp,
    ) -> Result<LoginAttempt, StoreError> {
        super::auth::reserve_login_attempt(&self.writer, key, limit, window_seconds, now).await
    }

    async fn refund_login_attempt(
        &self,
        key: &str,
        window_ends: Timestamp,
    ) -> Result<(), StoreError> {
        super::auth::refund_login_attempt(&self.writer, key, window_ends).await
    }
}

#[async_trait]
impl AuditLog for super::BackendStore {
    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        // Every audited request writes one row: grouped with the other writes, it costs no fsync
        // of its own.
        let entry = entry.clone();
        self.committer
            .run(move |c| Box::pin(async move { super::auth::record_audit(c, &entry).await }))
            .await
    }

    async fn list_audit(&self, limit: u32, offset: u32) -> Result<Page<AuditEntry>, StoreError> {
        super::auth::list_audit(&self.pool, limit, offset).await
    }
}

#[async_trait]
impl IdempotencyStore for super::BackendStore {
    async fn reserve_request(
        &self,
        key: &IdempotencyKey,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Reservation, StoreError> {
        super::idempotency::reserve(&self.writer, key, now, expires_at).await
    }

    async fn complete_request(
        &self,
        request_id: Uuid,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        super::idempotency::complete(&self.writer, request_id, response).await
    }

    async fn release_request(&self, request_id: Uuid) -> Result<(), StoreError> {
        super::idempotency::release(&self.writer, request_id).await
    }
}

#[async_trait]
impl JobQueue for super::BackendStore {
    async fn claim_job(
        &self,
        worker: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Job>, StoreError> {
        let worker = worker.to_owned();
        let result = self
            .committer
            .run(move |c| {
                Box::pin(
                    async move { super::engine::claim_job(c, &worker, now, lease_until).await },
                )
            })
            .await;
        // Idle workers poll this: only a claim (or an error) may have changed anything.
        if !matches!(result, Ok(None)) {
            self.freshness.advance(Topics::ENGINE | Topics::SESSIONS);
        }
        result
    }

    async fn extend_lease(
        &self,
        fence: Fence,
        lease_until: Timestamp,
    ) -> Result<LeaseRenewal, StoreError> {
        self.committer
            .run(move |c| Box::pin(super::engine::extend_lease(c, fence, lease_until)))
            .await
    }

    async fn holds_job(&self, fence: Fence) -> Result<bool, StoreError> {
        super::engine::holds_job(&self.pool, fence).await
    }

    async fn release_job(&self, fence: Fence, now: Timestamp) -> Result<bool, StoreError> {
        let result = self
            .committer
            .run(move |c| Box::pin(super::engine::release_job(c, fence, now)))
            .await;
        self.freshness.advance(Topics::ENGINE);
        result
    }

    async fn retry_job(
        &self,
        fence: Fence,
        error: &str,
        run_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let error = error.to_owned();
        let result = self
            .committer
            .run(move |c| {
                Box::pin(
                    async move { super::engine::retry_job(c, fence, &error, run_at, now).await },
                )
            })
            .await;
        self.freshness.advance(Topics::ENGINE);
        result
    }

    async fn job_counts(&self) -> Result<JobCounts, StoreError> {
        super::engine::job_counts(&self.pool).await
    }

    async fn requeue_jobs(
        &self,
        expired_before: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let result = self
            .committer
            .run(move |c| Box::pin(super::engine::requeue_jobs(c, expired_before, now)))
            .await;
        if !matches!(result, Ok(0)) {
            self.freshness.advance(Topics::ENGINE);
        }
        result
    }
}

#[async_trait]
impl SessionLog for super::BackendStore {
    async fn begin_session(
        &self,
        scope: Scope,
        session: &NewSession,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let result =
            super::engine::begin_session(&self.pool, &self.committer, scope, session, now).await;
        self.freshness
            .advance(Topics::PLANS | Topics::SESSIONS | Topics::ENGINE | Topics::NOTIFICATIONS);
        result
    }

    async fn session_work(&self, session: Uuid) -> Result<Option<SessionWork>, StoreError> {
        super::engine::session_work(&self.pool, session).await
    }

    async fn newest_restore_point(
        &self,
        object: Uuid,
        at_or_before: Option<Timestamp>,
    ) -> Result<Option<(Uuid, Timestamp)>, StoreError> {
        super::engine::newest_restore_point(&self.pool, object, at_or_before).await
    }

    async fn record_vm_start(
        &self,
        fence: Fence,
        session: Uuid,
        object: Uuid,
        step: &VmStep,
    ) -> Result<(), StoreError> {
        let result = {
            let step = step.clone();
            self.committer
                .run(move |c| {
                    Box::pin(async move {
                        super::engine::record_vm_start(c, fence, session, object, &step).await
                    })
                })
                .await
        };
        self.freshness.advance(Topics::OBJECTS | Topics::ENGINE);
        result
    }

    async fn record_vm_end(
        &self,
        fence: Fence,
        session: Uuid,
        step: Uuid,
        status: standby_model::BackupStatus,
        end: Timestamp,
        message: &standby_model::SessionMessage,
    ) -> Result<(), StoreError> {
        let result = {
            let message = message.clone();
            self.committer
                .run(move |c| {
                    Box::pin(async move {
                        super::engine::record_vm_end(c, fence, session, step, status, end, &message)
                            .await
                    })
                })
                .await
        };
        self.freshness
            .advance(Topics::OBJECTS | Topics::ENGINE | Topics::NOTIFICATIONS);
        self.freshness.log_changed(&[session]);
        result
    }

    async fn append_session_message(
        &self,
        fence: Fence,
        session: Uuid,
        message: &standby_model::SessionMessage,
    ) -> Result<(), StoreError> {
        let message = message.clone();
        let result = self
            .committer
            .run(move |c| {
                Box::pin(
                    async move { super::engine::append_message(c, fence, session, &message).await },
                )
            })
            .await;
        self.freshness.advance(Topics::ENGINE);
        self.freshness.log_changed(&[session]);
        result
    }

    async fn finish_session(
        &self,
        fence: Fence,
        session: Uuid,
        end: &SessionEnd,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let end = end.clone();
        let result = self
            .committer
            .run(move |c| {
                Box::pin(async move {
                    super::engine::finish_session(c, fence, session, &end, now).await
                })
            })
            .await;
        self.freshness
            .advance(Topics::PLANS | Topics::SESSIONS | Topics::ENGINE | Topics::NOTIFICATIONS);
        result
    }

    async fn request_cancel(&self, session: Uuid) -> Result<bool, StoreError> {
        let result = super::engine::request_cancel(&self.writer, session).await;
        self.freshness.advance(Topics::SESSIONS);
        result
    }

    async fn cancel_requested(&self, session: Uuid) -> Result<bool, StoreError> {
        super::engine::cancel_requested(&self.pool, session).await
    }
}

#[async_trait]
impl AsyncActions for super::BackendStore {
    async fn list_actions(
        &self,
        initiator: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Vec<AsyncActionRecord>, StoreError> {
        super::engine::list_actions(&self.pool, initiator, now).await
    }

    async fn get_action(
        &self,
        uid: Uuid,
        now: Timestamp,
    ) -> Result<Option<AsyncActionRecord>, StoreError> {
        super::engine::get_action(&self.pool, uid, now).await
    }

    async fn forget_action(&self, uid: Uuid, now: Timestamp) -> Result<bool, StoreError> {
        let result = super::engine::forget_action(&self.writer, uid, now).await;
        self.freshness.advance(Topics::ENGINE);
        result
    }
}

#[async_trait]
impl ReportStore for super::BackendStore {
    async fn plan_targets(&self, plan: Uuid) -> Result<standby_model::RecoveryTargets, StoreError> {
        super::reports::plan_targets(&self.pool, plan).await
    }

    async fn set_plan_targets(
        &self,
        plan: Uuid,
        targets: &standby_model::RecoveryTargets,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let result = super::reports::set_plan_targets(&self.writer, plan, targets, now).await;
        self.freshness.advance(Topics::PLANS);
        result
    }

    async fn plan_session(
        &self,
        plan: Uuid,
        session: Uuid,
    ) -> Result<Option<SessionHistory>, StoreError> {
        super::reports::plan_session(&self.pool, plan, session).await
    }

    async fn session_messages(
        &self,
        session: Uuid,
    ) -> Result<Vec<standby_model::SessionMessage>, StoreError> {
        super::reports::session_messages(&self.pool, session).await
    }

    async fn session_notes(&self, session: Uuid) -> Result<Vec<SessionNote>, StoreError> {
        super::reports::session_notes(&self.pool, session).await
    }

    async fn add_session_note(
        &self,
        session: Uuid,
        author: &str,
        text: &str,
        now: Timestamp,
    ) -> Result<SessionNote, StoreError> {
        let result =
            super::reports::add_session_note(&self.writer, session, author, text, now).await;
        self.freshness.advance(Topics::SESSIONS);
        result
    }
}

#[async_trait]
impl DrillStore for super::BackendStore {
    async fn create_drill(&self, drill: &drills::DrillRecord) -> Result<(), StoreError> {
        let result = super::drills::create_drill(&self.writer, drill).await;
        self.freshness.advance(Topics::DRILLS);
        result
    }

    async fn list_drills(&self, scope: Scope) -> Result<Vec<drills::DrillRecord>, StoreError> {
        super::drills::list_drills(&self.pool, scope).await
    }

    async fn get_drill(
        &self,
        scope: Scope,
        uid: Uuid,
    ) -> Result<Option<drills::DrillRecord>, StoreError> {
        super::drills::get_drill(&self.pool, scope, uid).await
    }

    async fn drill_settings(&self, uid: Uuid) -> Result<Option<drills::DrillRecord>, StoreError> {
        super::drills::drill_settings(&self.pool, uid).await
    }

    async fn set_drill_paused(
        &self,
        uid: Uuid,
        paused: bool,
        next_run_at: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        let result = super::drills::set_drill_paused(&self.writer, uid, paused, next_run_at).await;
        self.freshness.advance(Topics::DRILLS);
        result
    }

    async fn delete_drill(&self, uid: Uuid) -> Result<bool, StoreError> {
        let result = super::drills::delete_drill(&self.writer, uid).await;
        self.freshness.advance(Topics::DRILLS);
        result
    }

    async fn due_drills(&self, now: Timestamp) -> Result<Vec<drills::DrillRecord>, StoreError> {
        super::drills::due_drills(&self.pool, now).await
    }

    async fn claim_drill_occurrence(
        &self,
        drill: Uuid,
        due: Timestamp,
        next: Option<Timestamp>,
        run: Option<(Uuid, Vec<drills::NewDrillRunPlan>)>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let result =
            super::drills::claim_drill_occurrence(&self.writer, drill, due, next, run, now).await;
        self.freshness.advance(Topics::DRILLS);
        result
    }

    async fn open_drill_runs(&self) -> Result<Vec<drills::DrillRun>, StoreError> {
        super::drills::open_drill_runs(&self.pool).await
    }

    async fn drill_runs(
        &self,
        drill: Uuid,
        limit: u32,
    ) -> Result<Vec<drills::DrillRun>, StoreError> {
        super::drills::drill_runs(&self.pool, drill, limit).await
    }

    async fn drill_run(
        &self,
        drill: Uuid,
        run: Uuid,
    ) -> Result<Option<drills::DrillRun>, StoreError> {
        super::drills::drill_run(&self.pool, drill, run).await
    }

    async fn move_drill_plan(
        &self,
        run: Uuid,
        plan: Uuid,
        from: drills::DrillPlanState,
        change: &drills::DrillPlanMove,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let result =
            super::drills::move_drill_plan(&self.writer, run, plan, from, change, now).await;
        self.freshness
            .advance(Topics::DRILLS | Topics::NOTIFICATIONS);
        result
    }

    async fn finish_drill_run(&self, run: Uuid, now: Timestamp) -> Result<bool, StoreError> {
        let result = super::drills::finish_drill_run(&self.writer, run, now).await;
        self.freshness.advance(Topics::DRILLS);
        result
    }

    async fn session_drill(
        &self,
        session: Uuid,
    ) -> Result<Option<drills::SessionDrill>, StoreError> {
        super::drills::session_drill(&self.pool, session).await
    }
}

#[async_trait]
impl NotificationStore for super::BackendStore {
    async fn create_channel(
        &self,
        channel: &notifications::ChannelRecord,
    ) -> Result<(), StoreError> {
        let result = super::notifications::create_channel(&self.writer, channel).await;
        self.freshness.advance(Topics::NOTIFICATIONS);
        result
    }

    async fn list_channels(
        &self,
        scope: Scope,
    ) -> Result<Vec<notifications::ChannelRecord>, StoreError> {
        super::notifications::list_channels(&self.pool, scope).await
    }

    async fn get_channel(
        &self,
        scope: Scope,
        uid: Uuid,
    ) -> Result<Option<notifications::ChannelRecord>, StoreError> {
        super::notifications::get_channel(&self.pool, scope, uid).await
    }

    async fn delete_channel(&self, uid: Uuid) -> Result<bool, StoreError> {
        let result = super::notifications::delete_channel(&self.writer, uid).await;
        self.freshness.advance(Topics::NOTIFICATIONS);
        result
    }

    async fn record_event(
        &self,
        name: &str,
        plan: Option<Uuid>,
        server: Option<Uuid>,
        body: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        super::notifications::record_event(&self.writer, name, plan, server, body, now).await
    }

    async fn pending_events(
        &self,
        limit: u32,
    ) -> Result<Vec<notifications::OutboxEvent>, StoreError> {
        super::notifications::pending_events(&self.pool, limit).await
    }

    async fn dispatch_events(
        &self,
        events: &[(Uuid, Vec<notifications::NewDelivery>)],
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        super::notifications::dispatch_events(&self.writer, events, now).await
    }

    async fn due_deliveries(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<notifications::DeliveryRecord>, StoreError> {
        super::notifications::due_deliveries(&self.pool, now, limit).await
    }

    async fn claim_delivery(
        &self,
        delivery: &notifications::DeliveryRecord,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError> {
        super::notifications::claim_delivery(&self.writer, delivery, now, lease_until).await
    }

    async fn finish_attempt(
        &self,
        delivery: Uuid,
        attempt: u32,
        outcome: &notifications::AttemptOutcome,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        super::notifications::finish_attempt(&self.writer, delivery, attempt, outcome, now).await
    }

    async fn channel_deliveries(
        &self,
        channel: Uuid,
        limit: u32,
    ) -> Result<Vec<notifications::DeliveryRecord>, StoreError> {
        super::notifications::channel_deliveries(&self.pool, channel, limit).await
    }

    async fn claim_offline_servers(
        &self,
        cutoff: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<Uuid>, StoreError> {
        super::notifications::claim_offline_servers(&self.writer, cutoff, now).await
    }
}

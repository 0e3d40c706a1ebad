//! Scheduled drills as the store keeps them: the drill, each run (one occurrence of its
//! schedule) and each plan of a run with where it is. Every change to a run's plan is a
//! compare-and-set on its state, so of several nodes (or a node that was paused and woke up
//! after another took over) exactly one makes each move; the sessions a move starts have UIDs
//! derived from the run, the plan and the move, so a retried start finds the session it began.

use async_trait::async_trait;
use standby_model::Timestamp;
use uuid::Uuid;

use crate::{Scope, StoreError};

/// Which plans a drill runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrillPlans {
    /// These plans, in this order.
    Listed(Vec<Uuid>),
    /// The plans a VSPC filter (JSON, as `filter=` takes it) selects when the run opens.
    Filter(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillRecord {
    pub uid: Uuid,
    pub name: String,
    /// Whose plans it runs: the creator's scope when it was created.
    pub owner: Scope,
    /// The organization of its creator (a provider drill's is the provider's).
    pub owner_organization_uid: Uuid,
    pub created_by_uid: Uuid,
    pub created_by: String,
    pub plans: DrillPlans,
    /// Cron, five fields (minute first) or six (seconds first).
    pub schedule: String,
    /// An IANA time zone the schedule is read in.
    pub time_zone: String,
    pub ttl_seconds: u32,
    pub max_parallel_vms: u32,
    /// 0: never stop early.
    pub stop_after_failures: u32,
    pub paused: bool,
    /// The next occurrence not yet claimed; `None` while paused.
    pub next_run_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// Where one plan of a drill run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrillPlanState {
    /// Waiting for the budget (or for its turn).
    Pending,
    /// Not run; the reason says why.
    Skipped,
    /// Its test failover was started.
    Testing,
    /// Its test ended; it is undone at `undo_at`.
    UndoDue,
    /// Its undo was started.
    Undoing,
    Undone,
    /// Every undo attempt failed: an operator must act.
    UndoFailed,
}

impl DrillPlanState {
    pub const ALL: [DrillPlanState; 7] = [
        DrillPlanState::Pending,
        DrillPlanState::Skipped,
        DrillPlanState::Testing,
        DrillPlanState::UndoDue,
        DrillPlanState::Undoing,
        DrillPlanState::Undone,
        DrillPlanState::UndoFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DrillPlanState::Pending => "pending",
            DrillPlanState::Skipped => "skipped",
            DrillPlanState::Testing => "testing",
            DrillPlanState::UndoDue => "undoDue",
            DrillPlanState::Undoing => "undoing",
            DrillPlanState::Undone => "undone",
            DrillPlanState::UndoFailed => "undoFailed",
        }
    }

    pub fn parse(text: &str) -> Option<DrillPlanState> {
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }

    /// Nothing more will happen to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DrillPlanState::Skipped | DrillPlanState::Undone | DrillPlanState::UndoFailed
        )
    }

    /// Its VMs are (or may be) powered on: they count against the budget.
    pub fn holds_budget(self) -> bool {
        matches!(
            self,
            DrillPlanState::Testing | DrillPlanState::UndoDue | DrillPlanState::Undoing
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillRunPlan {
    pub plan_uid: Uuid,
    /// The plan's name when the run opened.
    pub plan_name: String,
    pub position: u32,
    pub vms: u32,
    pub state: DrillPlanState,
    pub reason: String,
    pub test_session_uid: Option<Uuid>,
    pub undo_session_uid: Option<Uuid>,
    pub undo_at: Option<Timestamp>,
    pub undo_attempts: u32,
    /// The test's verdict once it ended (`Verdict::as_str`).
    pub test_verdict: Option<String>,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillRun {
    pub uid: Uuid,
    pub drill_uid: Uuid,
    pub due_at: Timestamp,
    pub finished: bool,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    /// In the drill's order.
    pub plans: Vec<DrillRunPlan>,
}

/// A plan as a run opens with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDrillRunPlan {
    pub plan_uid: Uuid,
    pub vms: u32,
    /// `Some(reason)`: skipped from the start (it could not be resolved, say).
    pub skipped: Option<String>,
}

/// A move of one plan of a run: the state it goes to and the fields that change with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillPlanMove {
    pub to: DrillPlanState,
    pub reason: Option<String>,
    pub test_session_uid: Option<Uuid>,
    pub undo_session_uid: Option<Uuid>,
    /// `Some(None)` clears it.
    pub undo_at: Option<Option<Timestamp>>,
    pub undo_attempts: Option<u32>,
    pub test_verdict: Option<String>,
}

impl DrillPlanMove {
    pub fn to(state: DrillPlanState) -> DrillPlanMove {
        DrillPlanMove {
            to: state,
            reason: None,
            test_session_uid: None,
            undo_session_uid: None,
            undo_at: None,
            undo_attempts: None,
            test_verdict: None,
        }
    }
}

/// The drill a session was started by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDrill {
    pub drill_uid: Uuid,
    pub drill_name: String,
    pub run_uid: Uuid,
}

#[async_trait]
pub trait DrillStore: Send + Sync {
    async fn create_drill(&self, drill: &DrillRecord) -> Result<(), StoreError>;

    /// Drills not deleted: all of them (`Scope::All`) or one company's.
    async fn list_drills(&self, scope: Scope) -> Result<Vec<DrillRecord>, StoreError>;

    async fn get_drill(&self, scope: Scope, uid: Uuid) -> Result<Option<DrillRecord>, StoreError>;

    /// A drill's settings even once deleted (its runs still finish).
    async fn drill_settings(&self, uid: Uuid) -> Result<Option<DrillRecord>, StoreError>;

    /// Pauses (next occurrence `None`) or resumes (from `next_run_at`); `false` if gone.
    async fn set_drill_paused(
        &self,
        uid: Uuid,
        paused: bool,
        next_run_at: Option<Timestamp>,
    ) -> Result<bool, StoreError>;

    /// Deletes a drill: no more runs, gone from the lists; a run in progress still undoes every
    /// test it started. `false` if it was gone already.
    async fn delete_drill(&self, uid: Uuid) -> Result<bool, StoreError>;

    /// Drills whose next occurrence is due at `now`.
    async fn due_drills(&self, now: Timestamp) -> Result<Vec<DrillRecord>, StoreError>;

    /// Claims the occurrence `due` of a drill (still its next one), moves its next occurrence
    /// to `next`, and, with `run`, opens that run with its plans: one transaction. `false`:
    /// another node claimed it first (or the drill changed), and nothing was written.
    async fn claim_drill_occurrence(
        &self,
        drill: Uuid,
        due: Timestamp,
        next: Option<Timestamp>,
        run: Option<(Uuid, Vec<NewDrillRunPlan>)>,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Runs not finished yet, of every drill (deleted ones too).
    async fn open_drill_runs(&self) -> Result<Vec<DrillRun>, StoreError>;

    /// A drill's runs, newest first.
    async fn drill_runs(&self, drill: Uuid, limit: u32) -> Result<Vec<DrillRun>, StoreError>;

    async fn drill_run(&self, drill: Uuid, run: Uuid) -> Result<Option<DrillRun>, StoreError>;

    /// Moves one plan of a run from `from` to `change.to`, only if it is still in `from`:
    /// `false` if another node moved it first.
    async fn move_drill_plan(
        &self,
        run: Uuid,
        plan: Uuid,
        from: DrillPlanState,
        change: &DrillPlanMove,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Marks a run finished (once).
    async fn finish_drill_run(&self, run: Uuid, now: Timestamp) -> Result<bool, StoreError>;

    /// The drill whose run started this session (its test or its undo), if any.
    async fn session_drill(&self, session: Uuid) -> Result<Option<SessionDrill>, StoreError>;
}

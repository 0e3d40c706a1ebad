//! Standby's domain: the failover-plan views served on the wire, their enums, the
//! timestamp format, the client-version rules and the plan state machine.
//!
//! Nothing here does I/O; the store, the engine and the API all share these types so the
//! wire shape and the state rules live in exactly one place.

pub mod enums;
pub mod lifecycle;
pub mod plan;
pub mod role;
pub mod state;
pub mod targets;
pub mod timestamp;
pub mod version;

pub use enums::{
    BackupStatus, MessageSeverity, PlanStatus, PlanType, SessionKind, SessionStatus, WireEnum,
};
pub use lifecycle::{ActionStatus, JobState, SessionPhase};
pub use plan::{FailoverPlan, LastSession, PlanObject, RestoreSession, SessionMessage};
pub use role::Role;
pub use state::{PlanRequest, RunOutcome, TransitionRefused};
pub use targets::{
    RecoveryTargets, RunFacts, RunMeasure, Verdict, VmFacts, VmMeasure, measure_run,
};
pub use timestamp::{Timestamp, TimestampError};
pub use version::{ClientVersion, VersionError};

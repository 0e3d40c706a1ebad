//! Wire enums, spelled exactly as VSPC spells them (PascalCase).

use serde::{Deserialize, Serialize};

/// What every wire enum offers the query language and the store: its literals and a parser.
pub trait WireEnum: Sized + Copy + 'static {
    /// Every literal, in the vendor's order.
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
    /// Exact (case-sensitive) parse of a wire literal.
    fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == text)
    }
    fn literals() -> Vec<&'static str> {
        Self::ALL.iter().map(|v| v.as_str()).collect()
    }
}

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $($variant),+ }

        impl WireEnum for $name {
            const ALL: &'static [Self] = &[$(Self::$variant),+];
            fn as_str(self) -> &'static str {
                match self { $(Self::$variant => stringify!($variant)),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// `BackupFailoverPlanType`.
    PlanType { Unknown, Local, Cloud, Tenant }
);

wire_enum!(
    /// `BackupFailoverPlanStatus`.
    PlanStatus { Unknown, Ready, InProgress, InUndoProgress, Success, Failed, Completed, UndoFailed }
);

wire_enum!(
    /// `BackupFailoverPlanSessionStatus`: the outcome of a plan's latest session.
    SessionStatus { Unknown, None, Success, Warning, Failed }
);

wire_enum!(
    /// `BackupFailoverPlanSessionMessageSeverity`.
    MessageSeverity { Unknown, None, Success, Warning, Failed }
);

wire_enum!(
    /// `BackupFailoverPlanRestoreSessionBackupStatus`: one VM's restore session.
    BackupStatus { Unknown, Running, Success, Warning, Failed }
);

impl PlanStatus {
    /// A session is running: the plan may not be patched, started or undone.
    pub fn is_busy(self) -> bool {
        matches!(self, PlanStatus::InProgress | PlanStatus::InUndoProgress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_round_trip_through_serde_and_parse() {
        for status in PlanStatus::ALL {
            let json = serde_json::to_string(status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(PlanStatus::parse(status.as_str()), Some(*status));
        }
        assert_eq!(PlanStatus::parse("ready"), None, "parse is exact");
        assert_eq!(
            BackupStatus::literals(),
            ["Unknown", "Running", "Success", "Warning", "Failed"]
        );
    }
}

/// What a session does. Not a wire enum: VSPC shows sessions only through their effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    Failover,
    Test,
    Undo,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Failover => "failover",
            SessionKind::Test => "test",
            SessionKind::Undo => "undo",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [SessionKind::Failover, SessionKind::Test, SessionKind::Undo]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

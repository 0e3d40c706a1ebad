//! Lifecycle states that are not VSPC wire enums of a plan but are stored and served: an async
//! action's status (spelled as VSPC's `/asyncActions` spells it), a job's state in the queue and
//! a session's phase.
//! Each is parsed at the store boundary; the SQL that filters on them is built from these lists.

/// Declares a stored lifecycle enum with its exact spellings.
macro_rules! lifecycle_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

lifecycle_enum!(
    /// An async action: running until its session ends, then how it ended.
    ActionStatus { Running => "running", Succeeded => "succeed", Failed => "failed", Canceled => "canceled" }
);

lifecycle_enum!(
    /// A job in the engine's queue.
    JobState { Ready => "ready", Running => "running", Done => "done" }
);

lifecycle_enum!(
    /// Where a session is in the engine's hands (its VSPC status says how it is going).
    SessionPhase { Queued => "queued", Running => "running", Finished => "finished" }
);

impl ActionStatus {
    /// Finished actions can be forgotten (`DELETE /asyncActions/{id}/result`); running ones not.
    pub fn is_finished(self) -> bool {
        self != ActionStatus::Running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for status in ActionStatus::ALL {
            assert_eq!(ActionStatus::parse(status.as_str()), Some(*status));
        }
        for state in JobState::ALL {
            assert_eq!(JobState::parse(state.as_str()), Some(*state));
        }
        for phase in SessionPhase::ALL {
            assert_eq!(SessionPhase::parse(phase.as_str()), Some(*phase));
        }
        assert_eq!(ActionStatus::parse("Succeed"), None);
        assert_eq!(ActionStatus::Succeeded.to_string(), "succeed");
    }
}

//! The failover-plan views as VSPC serves them (`BackupFailoverPlan`, `BackupFailoverPlanObject`
//! and their sub-objects). Field order follows the vendor's examples.

use serde::Serialize;
use uuid::Uuid;

use crate::enums::{BackupStatus, MessageSeverity, PlanStatus, PlanType, SessionStatus};
use crate::timestamp::Timestamp;

/// `BackupFailoverPlan`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailoverPlan {
    pub instance_uid: Uuid,
    pub original_uid: Uuid,
    pub backup_server_uid: Uuid,
    pub name: String,
    #[serde(rename = "type")]
    pub plan_type: PlanType,
    pub status: PlanStatus,
    /// Set only on Tenant plans (the vendor's examples show null on Cloud and Local plans).
    pub tenant_uid: Option<Uuid>,
    pub objects_count: i32,
    pub pre_failover_script_enabled: bool,
    pub pre_failover_command: String,
    pub post_failover_command: String,
    pub post_failover_script_enabled: bool,
    /// `null` when the plan never ran. Left out of the wire for clients older than 3.6.1.
    pub last_session: Option<LastSession>,
}

/// `BackupFailoverPlanLastSession`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastSession {
    pub instance_uid: Uuid,
    pub end_time: Option<Timestamp>,
    pub status: SessionStatus,
    pub message: Option<String>,
    pub detailed_messages: Vec<SessionMessage>,
}

/// `BackupFailoverPlanSessionMessage`: one typed log line of a session.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionMessage {
    pub title: String,
    pub description: String,
    pub severity: MessageSeverity,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
}

/// `BackupFailoverPlanObject`: one replicated VM in a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanObject {
    pub instance_uid: Uuid,
    pub plan_uid: Uuid,
    pub name: String,
    /// Always a string (empty when unknown): strict generated clients reject null here.
    pub host_name: String,
    pub folder_name: String,
    pub path: String,
    pub backup_server_uid: Uuid,
    /// Left out, not null, when the VM never had one: the generated 3.6.1 client crashes on null.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_session: Option<RestoreSession>,
}

/// `BackupFailoverPlanRestoreSession`: the latest failover (or undo) of one VM.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSession {
    pub instance_uid: Uuid,
    pub backup_status: BackupStatus,
    pub restore_point_uid: Option<Uuid>,
    pub restore_point_date_time: Option<Timestamp>,
    pub start_date_time: Timestamp,
    pub end_date_time: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_serializes_with_vendor_names_and_order() {
        let plan = FailoverPlan {
            instance_uid: Uuid::nil(),
            original_uid: Uuid::nil(),
            backup_server_uid: Uuid::nil(),
            name: "p".into(),
            plan_type: PlanType::Local,
            status: PlanStatus::Ready,
            tenant_uid: None,
            objects_count: 2,
            pre_failover_script_enabled: false,
            pre_failover_command: String::new(),
            post_failover_command: String::new(),
            post_failover_script_enabled: false,
            last_session: None,
        };
        let json = serde_json::to_value(&plan).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "instanceUid",
                "originalUid",
                "backupServerUid",
                "name",
                "type",
                "status",
                "tenantUid",
                "objectsCount",
                "preFailoverScriptEnabled",
                "preFailoverCommand",
                "postFailoverCommand",
                "postFailoverScriptEnabled",
                "lastSession"
            ]
        );
        assert_eq!(json["tenantUid"], serde_json::Value::Null);
    }

    #[test]
    fn object_without_restore_session_omits_the_key() {
        let object = PlanObject {
            instance_uid: Uuid::nil(),
            plan_uid: Uuid::nil(),
            name: "vm".into(),
            host_name: String::new(),
            folder_name: String::new(),
            path: "vm".into(),
            backup_server_uid: Uuid::nil(),
            restore_session: None,
        };
        let json = serde_json::to_value(&object).unwrap();
        assert!(json.get("restoreSession").is_none());
        assert_eq!(json["hostName"], "");
    }
}

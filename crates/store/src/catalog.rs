//! The query catalogs of the two VSPC resources: wire path, type and the SQL that reads each
//! property. Aliases: `p` plans, `ls` the plan's last session, `o` plan objects, `rs` the
//! object's restore session.

use standby_model::ClientVersion;
use standby_query::catalog::{Columns, SubstringIndex};
use standby_query::{Catalog, Property, ValueType};

const PLAN_TYPES: &[&str] = &["Unknown", "Local", "Cloud", "Tenant"];
const PLAN_STATUSES: &[&str] = &[
    "Unknown",
    "Ready",
    "InProgress",
    "InUndoProgress",
    "Success",
    "Failed",
    "Completed",
    "UndoFailed",
];
const SESSION_STATUSES: &[&str] = &["Unknown", "None", "Success", "Warning", "Failed"];
const BACKUP_STATUSES: &[&str] = &["Unknown", "Running", "Success", "Warning", "Failed"];

const V3_6_1: ClientVersion = ClientVersion::new(3, 6, 1);

pub static PLAN_CATALOG: Catalog = Catalog {
    resource: "BackupFailoverPlan",
    properties: &[
        Property::new("instanceUid", ValueType::Uuid, Columns::plain("p.uid")),
        Property::new(
            "originalUid",
            ValueType::Uuid,
            Columns::plain("p.original_uid"),
        ),
        Property::new(
            "backupServerUid",
            ValueType::Uuid,
            Columns::plain("p.backup_server_uid"),
        ),
        Property::new(
            "name",
            ValueType::Text,
            Columns::text("p.name", "p.name_ci", "p.name_nat").with_substring_index(
                SubstringIndex {
                    row_id: "p.rowid",
                    fts_table: "plans_name_trigram",
                },
            ),
        ),
        Property::new(
            "type",
            ValueType::Enum(PLAN_TYPES),
            Columns::plain("p.type"),
        ),
        Property::new(
            "status",
            ValueType::Enum(PLAN_STATUSES),
            Columns::plain("p.status"),
        ),
        Property::new("tenantUid", ValueType::Uuid, Columns::plain("p.tenant_uid")),
        Property::new(
            "objectsCount",
            ValueType::Int,
            Columns::plain("p.objects_count"),
        ),
        Property::new(
            "preFailoverScriptEnabled",
            ValueType::Bool,
            Columns::plain("(p.pre_failover_command <> '')"),
        ),
        Property::new(
            "preFailoverCommand",
            ValueType::Text,
            Columns::text(
                "p.pre_failover_command",
                "p.pre_failover_command_ci",
                "p.pre_failover_command_nat",
            ),
        ),
        Property::new(
            "postFailoverCommand",
            ValueType::Text,
            Columns::text(
                "p.post_failover_command",
                "p.post_failover_command_ci",
                "p.post_failover_command_nat",
            ),
        ),
        Property::new(
            "postFailoverScriptEnabled",
            ValueType::Bool,
            Columns::plain("(p.post_failover_command <> '')"),
        ),
        Property::new(
            "lastSession",
            ValueType::Object,
            Columns::plain("p.last_session_uid"),
        )
        .since(V3_6_1),
        Property::new(
            "lastSession.instanceUid",
            ValueType::Uuid,
            Columns::plain("ls.uid"),
        )
        .since(V3_6_1),
        Property::new(
            "lastSession.endTime",
            ValueType::DateTime,
            Columns::plain("ls.end_time"),
        )
        .since(V3_6_1),
        Property::new(
            "lastSession.status",
            ValueType::Enum(SESSION_STATUSES),
            Columns::plain("ls.status"),
        )
        .since(V3_6_1),
        Property::new(
            "lastSession.message",
            ValueType::Text,
            Columns::text("ls.message", "ls.message_ci", "ls.message_nat"),
        )
        .since(V3_6_1),
        Property::new(
            "lastSession.detailedMessages",
            ValueType::Array,
            Columns::NONE,
        )
        .since(V3_6_1),
    ],
    default_order: &["name", "instanceUid"],
};

pub static OBJECT_CATALOG: Catalog = Catalog {
    resource: "BackupFailoverPlanObject",
    properties: &[
        Property::new("instanceUid", ValueType::Uuid, Columns::plain("o.uid")),
        Property::new("planUid", ValueType::Uuid, Columns::plain("o.plan_uid")),
        Property::new(
            "name",
            ValueType::Text,
            Columns::text("o.name", "o.name_ci", "o.name_nat").with_substring_index(
                SubstringIndex {
                    row_id: "o.rowid",
                    fts_table: "plan_objects_name_trigram",
                },
            ),
        ),
        Property::new(
            "hostName",
            ValueType::Text,
            Columns::text("o.host_name", "o.host_name_ci", "o.host_name_nat"),
        ),
        Property::new(
            "folderName",
            ValueType::Text,
            Columns::text("o.folder_name", "o.folder_name_ci", "o.folder_name_nat"),
        ),
        Property::new(
            "path",
            ValueType::Text,
            Columns::text("o.path", "o.path_ci", "o.path_nat"),
        ),
        Property::new(
            "backupServerUid",
            ValueType::Uuid,
            Columns::plain("o.backup_server_uid"),
        ),
        Property::new(
            "restoreSession",
            ValueType::Object,
            Columns::plain("o.restore_session_uid"),
        ),
        Property::new(
            "restoreSession.instanceUid",
            ValueType::Uuid,
            Columns::plain("rs.uid"),
        ),
        Property::new(
            "restoreSession.backupStatus",
            ValueType::Enum(BACKUP_STATUSES),
            Columns::plain("rs.backup_status"),
        ),
        Property::new(
            "restoreSession.restorePointUid",
            ValueType::Uuid,
            Columns::plain("rs.restore_point_uid"),
        ),
        Property::new(
            "restoreSession.restorePointDateTime",
            ValueType::DateTime,
            Columns::plain("rs.restore_point_time"),
        ),
        Property::new(
            "restoreSession.startDateTime",
            ValueType::DateTime,
            Columns::plain("rs.start_time"),
        ),
        Property::new(
            "restoreSession.endDateTime",
            ValueType::DateTime,
            Columns::plain("rs.end_time"),
        ),
    ],
    default_order: &["name", "instanceUid"],
};

#[cfg(test)]
mod tests {
    use super::*;
    use standby_model::{BackupStatus, PlanStatus, PlanType, SessionStatus, WireEnum};

    #[test]
    fn enum_lists_match_the_model() {
        assert_eq!(PLAN_TYPES, PlanType::literals().as_slice());
        assert_eq!(PLAN_STATUSES, PlanStatus::literals().as_slice());
        assert_eq!(SESSION_STATUSES, SessionStatus::literals().as_slice());
        assert_eq!(BACKUP_STATUSES, BackupStatus::literals().as_slice());
    }

    #[test]
    fn every_text_property_has_its_collation_keys() {
        for property in PLAN_CATALOG
            .properties
            .iter()
            .chain(OBJECT_CATALOG.properties)
        {
            if property.value_type == ValueType::Text {
                assert!(
                    property.columns.folded.is_some() && property.columns.natural.is_some(),
                    "{}",
                    property.path
                );
            }
        }
    }
}

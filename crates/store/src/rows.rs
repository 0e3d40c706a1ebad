//! Reading stored values back: UIDs, enums and instants as both backends store them.

use standby_model::Timestamp;
use uuid::Uuid;

use crate::StoreError;

pub(crate) fn uid_text(uid: Uuid) -> String {
    uid.hyphenated().to_string()
}

pub(crate) fn parse_uid(
    table: &'static str,
    column: &'static str,
    text: &str,
) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|_| StoreError::Corrupt {
        table,
        column,
        value: text.to_owned(),
    })
}

/// A nullable UID column.
pub(crate) fn parse_optional_uid(
    table: &'static str,
    column: &'static str,
    text: Option<&str>,
) -> Result<Option<Uuid>, StoreError> {
    text.map(|text| parse_uid(table, column, text)).transpose()
}

pub(crate) fn parse_enum<E: standby_model::WireEnum>(
    table: &'static str,
    column: &'static str,
    text: &str,
) -> Result<E, StoreError> {
    E::parse(text).ok_or_else(|| StoreError::Corrupt {
        table,
        column,
        value: text.to_owned(),
    })
}

pub(crate) fn ts(ticks: Option<i64>) -> Option<Timestamp> {
    ticks.map(Timestamp::from_ticks)
}

//! PATCH of a failover plan with RFC 6902 JSON Patch, under the rules in DESIGN.md:
//! only `preFailoverCommand` and `postFailoverCommand` may change; `test` may read anything;
//! paths with or without a leading `/` and property names in any case; all ops or none.
//! A failure is 400, code 1001, echoing the operation as the client sent it.

use json_patch::PatchOperation;
use serde_json::{Map, Value, json};
use standby_store::CommandChange;

use crate::error::ApiError;

const PATCHABLE: [&str; 2] = ["/preFailoverCommand", "/postFailoverCommand"];
/// A command is a script path with arguments; this bounds it well above any real one.
pub const MAX_COMMAND_CHARS: usize = 2048;

fn could_not_update(operation: &Value, path: &str) -> ApiError {
    let shown = path.trim_start_matches('/');
    ApiError::patch_failed(
        operation.clone(),
        format!("The property at path '{shown}' could not be updated."),
    )
}

/// Rewrites a client path to the document's spelling: leading `/`, keys matched ignoring case.
fn canonical_path(document: &Value, path: &str) -> String {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    if trimmed.is_empty() {
        return String::new();
    }
    let mut node = Some(document);
    let mut canonical = String::new();
    for token in trimmed.split('/') {
        let spelled = match node {
            Some(Value::Object(object)) => {
                let decoded = token.replace("~1", "/").replace("~0", "~");
                object
                    .keys()
                    .find(|key| key.eq_ignore_ascii_case(&decoded))
                    .map(|key| key.replace('~', "~0").replace('/', "~1"))
                    .unwrap_or_else(|| token.to_owned())
            }
            _ => token.to_owned(),
        };
        node = node.and_then(|n| match n {
            Value::Object(object) => object.get(&spelled.replace("~1", "/").replace("~0", "~")),
            Value::Array(items) => spelled.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        });
        canonical.push('/');
        canonical.push_str(&spelled);
    }
    canonical
}

fn field<'a>(operation: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    operation
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

/// Validates and applies the patch to the plan's wire document; returns the command changes.
pub fn plan_change(plan: Value, body: Value) -> Result<CommandChange, ApiError> {
    let operations = match body {
        Value::Array(operations) => operations,
        // One vendor example sends a bare operation.
        single @ Value::Object(_) => vec![single],
        _ => {
            return Err(ApiError::bad_body(
                "The request body must be a JSON Patch document (an array of operations).",
            ));
        }
    };
    if operations.is_empty() {
        return Err(ApiError::bad_body(
            "The JSON Patch document has no operations.",
        ));
    }
    let mut clean = Vec::with_capacity(operations.len());
    for operation in &operations {
        let Value::Object(object) = operation else {
            return Err(ApiError::patch_failed(
                operation.clone(),
                "Each JSON Patch operation must be an object.",
            ));
        };
        let op = match field(object, "op") {
            Some(Value::String(op)) => op.to_ascii_lowercase(),
            _ => {
                return Err(ApiError::patch_failed(
                    operation.clone(),
                    "The operation has no 'op'.",
                ));
            }
        };
        let path = match field(object, "path") {
            Some(Value::String(path)) => canonical_path(&plan, path),
            _ => {
                return Err(ApiError::patch_failed(
                    operation.clone(),
                    "The operation has no 'path'.",
                ));
            }
        };
        let from = match field(object, "from") {
            Some(Value::String(from)) => Some(canonical_path(&plan, from)),
            None | Some(Value::Null) => None,
            Some(_) => {
                return Err(ApiError::patch_failed(
                    operation.clone(),
                    "The operation's 'from' must be a string.",
                ));
            }
        };
        let value = field(object, "value").cloned();
        let mut normalized = json!({ "op": op, "path": path });
        match op.as_str() {
            "add" | "replace" => {
                if !PATCHABLE.contains(&path.as_str()) {
                    return Err(could_not_update(operation, &path));
                }
                let Some(value) = value else {
                    return Err(ApiError::patch_failed(
                        operation.clone(),
                        format!("The '{op}' operation needs a 'value'."),
                    ));
                };
                normalized["value"] = value;
            }
            "test" => {
                // VSPC declares value as required; an absent one tests for null.
                normalized["value"] = value.unwrap_or(Value::Null);
            }
            "remove" => {
                if !PATCHABLE.contains(&path.as_str()) {
                    return Err(could_not_update(operation, &path));
                }
            }
            "move" | "copy" => {
                let Some(from) = from else {
                    return Err(ApiError::patch_failed(
                        operation.clone(),
                        format!("The '{op}' operation needs a 'from'."),
                    ));
                };
                if !PATCHABLE.contains(&path.as_str()) {
                    return Err(could_not_update(operation, &path));
                }
                if op == "move" && !PATCHABLE.contains(&from.as_str()) {
                    return Err(could_not_update(operation, &from));
                }
                normalized["from"] = Value::String(from);
            }
            _ => {
                return Err(ApiError::patch_failed(
                    operation.clone(),
                    format!(
                        "Unknown JSON Patch operation '{op}'. Use add, remove, replace, move, copy or test."
                    ),
                ));
            }
        }
        let parsed: PatchOperation = serde_json::from_value(normalized).map_err(|e| {
            ApiError::patch_failed(
                operation.clone(),
                format!("The operation is malformed: {e}."),
            )
        })?;
        clean.push(parsed);
    }

    let mut document = plan.clone();
    if let Err(error) = json_patch::patch(&mut document, &clean) {
        let operation = operations
            .get(error.operation)
            .cloned()
            .unwrap_or(Value::Null);
        let path = error.path.to_string();
        let message = match error.kind {
            json_patch::PatchErrorKind::TestFailed => format!(
                "The test at path '{}' failed.",
                path.trim_start_matches('/')
            ),
            _ => format!(
                "The property at path '{}' could not be updated.",
                path.trim_start_matches('/')
            ),
        };
        return Err(ApiError::patch_failed(operation, message));
    }

    let mut change = CommandChange::default();
    for (key, slot) in [
        ("preFailoverCommand", &mut change.pre_failover_command),
        ("postFailoverCommand", &mut change.post_failover_command),
    ] {
        let after = document.get(key).cloned().unwrap_or(Value::Null);
        if Some(&after) == plan.get(key) {
            continue;
        }
        // The last operation that wrote this field is the one to blame for a bad value.
        let culprit = || {
            let target = format!("/{key}");
            operations
                .iter()
                .zip(&clean)
                .rev()
                .find(|(_, op)| {
                    !matches!(op, PatchOperation::Test(_)) && op.path().as_str() == target
                })
                .map(|(raw, _)| raw.clone())
                .unwrap_or(Value::Null)
        };
        let command = match after {
            Value::Null => String::new(),
            Value::String(text) => text,
            _ => {
                return Err(ApiError::patch_failed(
                    culprit(),
                    format!("The property at path '{key}' must be a string."),
                ));
            }
        };
        if command.chars().count() > MAX_COMMAND_CHARS {
            return Err(ApiError::patch_failed(
                culprit(),
                format!(
                    "The property at path '{key}' is longer than {MAX_COMMAND_CHARS} characters."
                ),
            ));
        }
        if command.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ApiError::patch_failed(
                culprit(),
                format!("The property at path '{key}' contains control characters."),
            ));
        }
        *slot = Some(command);
    }
    Ok(change)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plan() -> Value {
        json!({
            "instanceUid": "6f1b7a9e-0000-4000-8000-000000000001",
            "name": "Plan",
            "status": "Ready",
            "objectsCount": 3,
            "preFailoverScriptEnabled": false,
            "preFailoverCommand": "",
            "postFailoverCommand": "C:\\post.cmd",
            "postFailoverScriptEnabled": true,
            "lastSession": null
        })
    }

    #[test]
    fn replaces_commands_in_any_path_style() {
        let change = plan_change(
            plan(),
            json!([
                {"op": "replace", "path": "/preFailoverCommand", "value": "C:\\pre.cmd"},
                {"op": "REPLACE", "path": "POSTFAILOVERCOMMAND", "value": ""}
            ]),
        )
        .unwrap();
        assert_eq!(change.pre_failover_command.as_deref(), Some("C:\\pre.cmd"));
        assert_eq!(change.post_failover_command.as_deref(), Some(""));
    }

    #[test]
    fn remove_clears_and_copy_moves_between_commands() {
        let change = plan_change(
            plan(),
            json!([{"op": "remove", "path": "/postFailoverCommand"}]),
        )
        .unwrap();
        assert_eq!(change.post_failover_command.as_deref(), Some(""));
        let change = plan_change(
            plan(),
            json!([{"op": "copy", "from": "/postFailoverCommand", "path": "/preFailoverCommand"}]),
        )
        .unwrap();
        assert_eq!(change.pre_failover_command.as_deref(), Some("C:\\post.cmd"));
        assert_eq!(change.post_failover_command, None);
        let change = plan_change(
            plan(),
            json!([{"op": "move", "from": "/postFailoverCommand", "path": "/preFailoverCommand"}]),
        )
        .unwrap();
        assert_eq!(change.pre_failover_command.as_deref(), Some("C:\\post.cmd"));
        assert_eq!(change.post_failover_command.as_deref(), Some(""));
    }

    #[test]
    fn test_reads_any_field_and_fails_atomically() {
        let ok = plan_change(
            plan(),
            json!([{"op": "test", "path": "status", "value": "Ready"}, {"op": "replace", "path": "preFailoverCommand", "value": "x"}]),
        );
        assert_eq!(ok.unwrap().pre_failover_command.as_deref(), Some("x"));
        let error = plan_change(
            plan(),
            json!([{"op": "replace", "path": "preFailoverCommand", "value": "x"}, {"op": "test", "path": "/status", "value": "Failed"}]),
        )
        .unwrap_err();
        assert_eq!(error.error.code, 1001);
        assert_eq!(
            error.error.failed_json_patch,
            Some(json!({"op": "test", "path": "/status", "value": "Failed"}))
        );
    }

    #[test]
    fn refuses_everything_else_with_1001() {
        for (operations, failed) in [
            (json!([{"op": "replace", "path": "/name", "value": "x"}]), 0),
            (
                json!([{"op": "replace", "path": "/preFailoverScriptEnabled", "value": true}]),
                0,
            ),
            (json!([{"op": "add", "path": "/extra", "value": 1}]), 0),
            (
                json!([{"op": "move", "from": "/name", "path": "/preFailoverCommand"}]),
                0,
            ),
            (
                json!([{"op": "replace", "path": "/preFailoverCommand", "value": "ok"}, {"op": "replace", "path": "/preFailoverCommand", "value": 450}]),
                1,
            ),
            (
                json!([{"op": "replace", "path": "/preFailoverCommand", "value": ["a"]}]),
                0,
            ),
            (
                json!([{"op": "frobnicate", "path": "/preFailoverCommand", "value": "x"}]),
                0,
            ),
            (json!([{"op": "replace", "path": "/preFailoverCommand"}]), 0),
            (json!([{"path": "/preFailoverCommand", "value": "x"}]), 0),
            (
                json!([{"op": "replace", "path": "/preFailoverCommand", "value": "line\nbreak"}]),
                0,
            ),
            (
                json!([{"op": "replace", "path": "/preFailoverCommand", "value": "x".repeat(2049)}]),
                0,
            ),
            (
                json!([{"op": "replace", "path": "/preFailoverCommand/0", "value": "x"}]),
                0,
            ),
        ] {
            let error = plan_change(plan(), operations.clone()).unwrap_err();
            assert_eq!(
                (error.status, error.error.code),
                (400, 1001),
                "{operations}"
            );
            // Echoed as the schema shapes it (error.rs tests that shaping).
            assert_eq!(
                error.error.failed_json_patch,
                crate::error::schema_shaped_patch(operations[failed].clone()),
                "{operations}"
            );
        }
        assert_eq!(plan_change(plan(), json!([])).unwrap_err().error.code, 400);
        assert_eq!(
            plan_change(plan(), json!("replace"))
                .unwrap_err()
                .error
                .code,
            400
        );
    }

    #[test]
    fn a_single_operation_object_is_accepted() {
        let change = plan_change(
            plan(),
            json!({"op": "replace", "path": "/preFailoverCommand", "value": "one"}),
        )
        .unwrap();
        assert_eq!(change.pre_failover_command.as_deref(), Some("one"));
    }

    fn any_path() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("/preFailoverCommand".to_owned()),
            Just("postfailovercommand".to_owned()),
            Just("/name".to_owned()),
            Just("/status".to_owned()),
            Just("/lastSession".to_owned()),
            "[a-zA-Z/]{0,12}",
        ]
    }

    fn any_operation() -> impl Strategy<Value = Value> {
        (
            prop_oneof![Just("add"), Just("remove"), Just("replace"), Just("move"), Just("copy"), Just("test"), Just("bogus")],
            any_path(),
            any_path(),
            prop_oneof![Just(json!("cmd")), Just(json!("")), Just(json!(null)), Just(json!(7)), Just(json!(true)), Just(json!("Ready"))],
        )
            .prop_map(|(op, path, from, value)| json!({"op": op, "path": path, "from": from, "value": value}))
    }

    proptest! {
        /// Whatever the operations, the result is a clean change of the two commands or a 400
        /// naming one of the client's own operations; only the two commands ever change.
        #[test]
        fn patches_change_only_commands_or_fail_cleanly(operations in proptest::collection::vec(any_operation(), 1..6)) {
            match plan_change(plan(), Value::Array(operations.clone())) {
                Ok(change) => {
                    for command in [&change.pre_failover_command, &change.post_failover_command].into_iter().flatten() {
                        prop_assert!(command.chars().count() <= MAX_COMMAND_CHARS);
                    }
                }
                Err(error) => {
                    prop_assert_eq!(error.status, 400);
                    prop_assert_eq!(error.error.code, 1001);
                    // When echoed, it is one of the client's own operations, shaped as the
                    // schema wants it.
                    if let Some(failed) = error.error.failed_json_patch {
                        prop_assert!(
                            operations.iter().any(|op| crate::error::schema_shaped_patch(op.clone()).as_ref() == Some(&failed)),
                            "{} is not one of the client's operations", failed
                        );
                    }
                }
            }
        }
    }
}

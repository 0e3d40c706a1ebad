//! `standby actions ...`: VSPC async actions (each start, undo and patch is one).

use serde_json::{Value, json};
use uuid::Uuid;

use super::api::Api;
use super::table::{self, Table};
use super::{ActionsCommand, ClientError, OutputFormat, print_json};

pub async fn run(
    api: &Api,
    command: ActionsCommand,
    output: OutputFormat,
) -> Result<(), ClientError> {
    match command {
        ActionsCommand::List { limit } => {
            let answer = api.get("/asyncActions", &[]).await?;
            let all = answer["data"].as_array().cloned().unwrap_or_default();
            let shown: Vec<Value> = all.iter().take(limit as usize).cloned().collect();
            if output == OutputFormat::Json {
                print_json(&json!({
                    "data": shown,
                    "meta": {"pagingInfo": {"total": all.len(), "count": shown.len(), "offset": 0}}
                }));
                return Ok(());
            }
            let mut table = Table::new(&["ID", "ACTION", "STATUS", "PARAMETERS"]);
            for action in &shown {
                table.row(action_row(action));
            }
            print!("{}", table.render());
            eprintln!("{} of {} actions", shown.len(), all.len());
            Ok(())
        }
        ActionsCommand::Show { id } => {
            let id = action_id(&id)?;
            let answer = get_action(api, &id).await?;
            let action = &answer["data"];
            // The result exists once the action has finished (and until it is forgotten).
            let result = if action["status"] == "running" {
                Value::Null
            } else {
                match api.get(&format!("/asyncActions/{id}/result"), &[]).await {
                    Ok(result) => result,
                    Err(ClientError::Api { message, .. }) => json!({ "unavailable": message }),
                    Err(error) => return Err(error),
                }
            };
            if output == OutputFormat::Json {
                print_json(&json!({ "data": action, "result": result }));
                return Ok(());
            }
            let mut table = Table::new(&["ID", "ACTION", "STATUS", "PARAMETERS"]);
            table.row(action_row(action));
            print!("{}", table.render());
            if let Some(errors) = result["errors"].as_array().filter(|e| !e.is_empty()) {
                for error in errors {
                    println!(
                        "error {}: {}",
                        table::text(&error["code"]),
                        table::text(&error["message"])
                    );
                }
            }
            Ok(())
        }
        ActionsCommand::Cancel { id } => {
            let id = action_id(&id)?;
            get_action(api, &id).await?;
            let answer = api.delete(&format!("/asyncActions/{id}")).await?;
            if output == OutputFormat::Json {
                print_json(&answer);
            } else {
                eprintln!(
                    "Cancellation of action {id} requested; the run stops at its next safe point."
                );
            }
            Ok(())
        }
    }
}

fn action_id(text: &str) -> Result<Uuid, ClientError> {
    Uuid::parse_str(text)
        .map_err(|_| ClientError::Usage(format!("'{text}' is not an action ID (a UUID)")))
}

async fn get_action(api: &Api, id: &Uuid) -> Result<Value, ClientError> {
    match api.get(&format!("/asyncActions/{id}"), &[]).await {
        Err(ClientError::Api { status: 404, .. }) => Err(ClientError::NotFound(format!(
            "no async action {id} (finished actions are forgotten after their retention time)"
        ))),
        other => other,
    }
}

fn action_row(action: &Value) -> Vec<String> {
    let parameters: Vec<String> = action["queryParameters"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, values)| {
            let values: Vec<String> = values
                .as_array()
                .into_iter()
                .flatten()
                .map(table::text)
                .collect();
            format!("{name}={}", values.join(","))
        })
        .collect();
    vec![
        table::text(&action["id"]),
        table::text(&action["actionName"]),
        table::status(&table::text(&action["status"])),
        if parameters.is_empty() {
            "-".into()
        } else {
            parameters.join(" ")
        },
    ]
}

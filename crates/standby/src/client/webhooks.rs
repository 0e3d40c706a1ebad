//! `standby webhooks ...`: notification channels (webhooks and email addresses) and their
//! delivery logs, over the API's webhook extension.

use std::io::Read;

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use super::api::Api;
use super::table::{self, Table};
use super::{ClientError, OutputFormat, WebhooksCommand, print_json};

const HOOKS: &str = "/extensions/webhooks";

fn channel_id(text: &str) -> Result<Uuid, ClientError> {
    Uuid::parse_str(text)
        .map_err(|_| ClientError::Usage(format!("'{text}' is not a webhook ID (a UUID)")))
}

pub async fn run(
    api: &Api,
    command: WebhooksCommand,
    output: OutputFormat,
) -> Result<(), ClientError> {
    match command {
        WebhooksCommand::List => {
            let answer = api.get(HOOKS, &[]).await?;
            if output == OutputFormat::Json {
                print_json(&answer);
                return Ok(());
            }
            let channels = answer["data"].as_array().cloned().unwrap_or_default();
            let mut table = Table::new(&["ID", "KIND", "TO", "EVENTS", "CREATED BY"]);
            for channel in &channels {
                let events: Vec<String> = channel["events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(table::text)
                    .collect();
                table.row(vec![
                    table::text(&channel["instanceUid"]),
                    table::text(&channel["kind"]),
                    if channel["kind"] == "email" {
                        table::text(&channel["email"])
                    } else {
                        table::text(&channel["url"])
                    },
                    if channel["allEvents"] == true {
                        "all".into()
                    } else {
                        events.join(",")
                    },
                    table::text(&channel["createdBy"]),
                ]);
            }
            print!("{}", table.render());
            eprintln!("{} channels", channels.len());
            Ok(())
        }
        WebhooksCommand::Add {
            url,
            email,
            secret_stdin,
            events,
        } => {
            let mut body = match (url, email) {
                (Some(url), None) => {
                    if !secret_stdin {
                        return Err(ClientError::Usage(
                            "a webhook needs its secret: pipe it in with --secret-stdin".into(),
                        ));
                    }
                    let mut secret = String::new();
                    std::io::stdin()
                        .read_to_string(&mut secret)
                        .map_err(|e| ClientError::Local(format!("reading the secret: {e}")))?;
                    json!({"url": url, "secret": secret.trim_end_matches(['\r', '\n'])})
                }
                (None, Some(email)) => json!({ "email": email }),
                _ => {
                    return Err(ClientError::Usage(
                        "give either --url (with --secret-stdin) or --email".into(),
                    ));
                }
            };
            if !events.is_empty() {
                body["events"] = json!(events);
            }
            let answer = api.send_json(Method::POST, HOOKS, &body).await?;
            if output == OutputFormat::Json {
                print_json(&answer);
            } else {
                eprintln!(
                    "Channel {} added.",
                    table::text(&answer["data"]["instanceUid"])
                );
            }
            Ok(())
        }
        WebhooksCommand::Delete { id } => {
            let id = channel_id(&id)?;
            let answer = api.delete(&format!("{HOOKS}/{id}")).await?;
            if output == OutputFormat::Json {
                print_json(&answer);
            } else {
                eprintln!("Channel {id} deleted, with its delivery log.");
            }
            Ok(())
        }
        WebhooksCommand::Deliveries { id, limit } => {
            let id = channel_id(&id)?;
            let answer = api
                .get(
                    &format!("{HOOKS}/{id}/deliveries"),
                    &[("limit", limit.to_string())],
                )
                .await?;
            if output == OutputFormat::Json {
                print_json(&answer);
                return Ok(());
            }
            let mut table = Table::new(&[
                "CREATED", "EVENT", "STATE", "ATTEMPTS", "LAST", "NEXT", "DELIVERY",
            ]);
            for delivery in answer["data"].as_array().into_iter().flatten() {
                let last = match (
                    delivery["lastStatus"].as_u64(),
                    delivery["lastError"].as_str(),
                ) {
                    (_, Some(error)) if !error.is_empty() => error.to_owned(),
                    (Some(status), _) => status.to_string(),
                    _ => "-".into(),
                };
                table.row(vec![
                    table::when(&delivery["createdAt"]),
                    table::text(&delivery["event"]),
                    table::text(&delivery["state"]),
                    table::text(&delivery["attempts"]),
                    last,
                    table::when(&delivery["nextAttemptAt"]),
                    table::text(&delivery["deliveryUid"]),
                ]);
            }
            print!("{}", table.render());
            Ok(())
        }
    }
}

//! `standby drills ...`: scheduled drills (test failovers of plans on a cron schedule, each
//! undone after a time to live) and their reports, over the API's drill extension.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use super::api::Api;
use super::table::{self, Table};
use super::{ClientError, DrillsCommand, OutputFormat, print_json};

const DRILLS: &str = "/extensions/drills";

pub async fn run(
    api: &Api,
    command: DrillsCommand,
    output: OutputFormat,
) -> Result<(), ClientError> {
    match command {
        DrillsCommand::List => {
            let answer = api.get(DRILLS, &[]).await?;
            if output == OutputFormat::Json {
                print_json(&answer);
                return Ok(());
            }
            let drills = answer["data"].as_array().cloned().unwrap_or_default();
            let mut table = Table::new(&[
                "NAME", "SCHEDULE", "ZONE", "NEXT RUN", "TTL", "MAX VMS", "STATE", "UID",
            ]);
            for drill in &drills {
                table.row(vec![
                    table::text(&drill["name"]),
                    table::text(&drill["schedule"]),
                    table::text(&drill["timeZone"]),
                    table::when(&drill["nextRunAt"]),
                    table::duration(drill["ttlSeconds"].as_f64().unwrap_or_default()),
                    table::text(&drill["maxParallelVms"]),
                    if drill["paused"] == true {
                        "paused".into()
                    } else {
                        "active".into()
                    },
                    table::text(&drill["instanceUid"]),
                ]);
            }
            print!("{}", table.render());
            eprintln!("{} drills", drills.len());
            Ok(())
        }
        DrillsCommand::Show { drill } => {
            let uid = resolve(api, &drill).await?;
            let answer = api.get(&format!("{DRILLS}/{uid}"), &[]).await?;
            if output == OutputFormat::Json {
                print_json(&answer);
                return Ok(());
            }
            let drill = &answer["data"];
            println!(
                "{} ({})",
                table::text(&drill["name"]),
                table::text(&drill["instanceUid"])
            );
            println!(
                "schedule  {} in {}: {}",
                table::text(&drill["schedule"]),
                table::text(&drill["timeZone"]),
                table::text(&drill["scheduleDescription"])
            );
            println!(
                "next run  {}{}",
                table::when(&drill["nextRunAt"]),
                if drill["paused"] == true {
                    " (paused)"
                } else {
                    ""
                }
            );
            println!(
                "each test undone {} after it ends; at most {} VMs at once; stop after {} failures",
                table::duration(drill["ttlSeconds"].as_f64().unwrap_or_default()),
                table::text(&drill["maxParallelVms"]),
                match drill["stopAfterFailures"].as_u64() {
                    Some(0) | None => "no".to_owned(),
                    Some(n) => n.to_string(),
                }
            );
            let runs = drill["runs"].as_array().cloned().unwrap_or_default();
            let mut table = Table::new(&[
                "DUE",
                "STATE",
                "PLANS",
                "PASSED",
                "MISSED",
                "FAILED",
                "SKIPPED",
                "UNDONE",
                "UNDO FAILED",
                "RUN",
            ]);
            for run in &runs {
                table.row(vec![
                    table::when(&run["dueAt"]),
                    table::status(&table::text(&run["state"])),
                    table::text(&run["planCount"]),
                    table::text(&run["passed"]),
                    table::text(&run["targetMissed"]),
                    table::text(&run["failed"]),
                    table::text(&run["skipped"]),
                    table::text(&run["undone"]),
                    table::text(&run["undoFailed"]),
                    table::text(&run["instanceUid"]),
                ]);
            }
            print!("{}", table.render());
            Ok(())
        }
        DrillsCommand::Create(args) => {
            let mut body = json!({
                "name": args.name,
                "schedule": args.schedule,
                "timeZone": args.time_zone,
                "ttlSeconds": args.ttl_seconds,
                "maxParallelVms": args.max_parallel_vms,
                "stopAfterFailures": args.stop_after_failures,
                "paused": args.paused,
            });
            match (&args.filter, args.plans.is_empty()) {
                (Some(filter), true) => body["filter"] = json!(filter),
                (None, false) => {
                    let mut uids = Vec::new();
                    for plan in &args.plans {
                        let found = super::plans::resolve(api, plan).await?;
                        uids.push(found["instanceUid"].clone());
                    }
                    body["planUids"] = json!(uids);
                }
                _ => {
                    return Err(ClientError::Usage(
                        "give either --plan (one or more) or --filter, not both or neither".into(),
                    ));
                }
            }
            let answer = api.send_json(Method::POST, DRILLS, &body).await?;
            if output == OutputFormat::Json {
                print_json(&answer);
            } else {
                eprintln!(
                    "Drill '{}' created ({}); next run {}.",
                    table::text(&answer["data"]["name"]),
                    table::text(&answer["data"]["instanceUid"]),
                    table::when(&answer["data"]["nextRunAt"])
                );
            }
            Ok(())
        }
        DrillsCommand::Pause { drill } => {
            let uid = resolve(api, &drill).await?;
            let answer = api
                .send_json(Method::POST, &format!("{DRILLS}/{uid}/pause"), &json!({}))
                .await?;
            say(output, &answer, format!("Drill {uid} paused."));
            Ok(())
        }
        DrillsCommand::Resume { drill } => {
            let uid = resolve(api, &drill).await?;
            let answer = api
                .send_json(Method::POST, &format!("{DRILLS}/{uid}/resume"), &json!({}))
                .await?;
            let next = table::when(&answer["data"]["nextRunAt"]);
            say(
                output,
                &answer,
                format!("Drill {uid} resumed; next run {next}."),
            );
            Ok(())
        }
        DrillsCommand::Run { drill } => {
            let uid = resolve(api, &drill).await?;
            let answer = api
                .send_json(Method::POST, &format!("{DRILLS}/{uid}/runs"), &json!({}))
                .await?;
            say(
                output,
                &answer,
                format!(
                    "Drill {uid} is due now; its run opens within a few seconds (`standby drills report {uid}`)."
                ),
            );
            Ok(())
        }
        DrillsCommand::Delete { drill } => {
            let uid = resolve(api, &drill).await?;
            let answer = api.delete(&format!("{DRILLS}/{uid}")).await?;
            say(
                output,
                &answer,
                format!("Drill {uid} deleted; a run in progress still undoes its tests."),
            );
            Ok(())
        }
        DrillsCommand::Report { drill, run } => {
            let uid = resolve(api, &drill).await?;
            let run = match run {
                Some(run) => Uuid::parse_str(&run)
                    .map_err(|_| ClientError::Usage(format!("'{run}' is not a run UID")))?,
                None => {
                    let answer = api.get(&format!("{DRILLS}/{uid}"), &[]).await?;
                    let newest = answer["data"]["runs"][0]["instanceUid"]
                        .as_str()
                        .and_then(|t| Uuid::parse_str(t).ok());
                    newest.ok_or_else(|| {
                        ClientError::NotFound(format!("drill {uid} has not run yet"))
                    })?
                }
            };
            let answer = api.get(&format!("{DRILLS}/{uid}/runs/{run}"), &[]).await?;
            if output == OutputFormat::Json {
                print_json(&answer);
                return Ok(());
            }
            let report = &answer["data"];
            println!(
                "{}: run due {} ({}), {} plans",
                table::text(&report["drillName"]),
                table::when(&report["dueAt"]),
                table::text(&report["state"]),
                table::text(&report["planCount"])
            );
            let mut table = Table::new(&[
                "PLAN",
                "VMS",
                "STATE",
                "VERDICT",
                "RTO",
                "WORST RPO",
                "UNDO",
                "REASON",
            ]);
            for plan in report["plans"].as_array().into_iter().flatten() {
                table.row(vec![
                    table::text(&plan["planName"]),
                    table::text(&plan["vms"]),
                    table::status(&table::text(&plan["state"])),
                    table::text(&plan["testVerdict"]),
                    plan["rtoSeconds"]
                        .as_f64()
                        .map_or("-".into(), table::duration),
                    plan["worstRpoSeconds"]
                        .as_f64()
                        .map_or("-".into(), table::duration),
                    if plan["undoOverdue"] == true {
                        "OVERDUE".into()
                    } else {
                        table::when(&plan["undoAt"])
                    },
                    table::text(&plan["reason"]),
                ]);
            }
            print!("{}", table.render());
            Ok(())
        }
    }
}

/// The API's answer for scripts, a sentence for people.
fn say(output: OutputFormat, answer: &Value, sentence: String) {
    if output == OutputFormat::Json {
        print_json(answer);
    } else {
        eprintln!("{sentence}");
    }
}

/// A drill by UID, or by its exact name among the drills you can see.
async fn resolve(api: &Api, text: &str) -> Result<Uuid, ClientError> {
    if let Ok(uid) = Uuid::parse_str(text) {
        return Ok(uid);
    }
    let answer = api.get(DRILLS, &[]).await?;
    let found: Vec<&Value> = answer["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|drill| drill["name"] == text)
        .collect();
    match found.as_slice() {
        [one] => one["instanceUid"]
            .as_str()
            .and_then(|t| Uuid::parse_str(t).ok())
            .ok_or_else(|| {
                ClientError::Transport("the server answered a drill without a UID".into())
            }),
        [] => Err(ClientError::NotFound(format!("no drill is named '{text}'"))),
        _ => Err(ClientError::Ambiguous(format!(
            "{} drills are named '{text}'; give its UID",
            found.len()
        ))),
    }
}

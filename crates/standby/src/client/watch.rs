//! The live view of `--wait` and `watch`: one progress bar per plan and a line per VM with its
//! restore point and status, redrawn as the server reports, then a summary. The server pushes
//! each change as a server-sent event (`/extensions/failoverplans/events`); against a server
//! without that route it polls the run history extension once a second instead. When standard
//! error is not a terminal (a script, a log file, CI) it prints one line per change instead of
//! redrawing.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use super::api::Api;
use super::events::EventReader;
use super::table::{self, Table};
use super::{ClientError, OutputFormat, print_json};

const POLL: Duration = Duration::from_secs(1);

/// A followed plan with no run of ours yet has its async action checked this often.
const ACTION_CHECK: Duration = Duration::from_secs(5);

/// The server sends a keep-alive every 15 s; this much silence means the stream is gone.
const SILENCE: Duration = Duration::from_secs(45);

/// Reconnections in a row that may fail before the command gives up.
const RECONNECTS: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Failover,
    Test,
    Undo,
}

impl RunKind {
    pub fn endpoint(self) -> &'static str {
        match self {
            RunKind::Failover | RunKind::Test => "start",
            RunKind::Undo => "undo",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            RunKind::Failover => "failover",
            RunKind::Test => "test failover",
            RunKind::Undo => "undo",
        }
    }
}

/// A plan whose run is followed.
pub struct Target {
    pub plan_uid: String,
    pub name: String,
    vm_count: u64,
    /// Follow the first run newer than this one (the newest before our start), rather than
    /// the newest run, so a finished earlier run is not mistaken for ours.
    newer_than: Option<Option<String>>,
    pub action_id: Option<String>,
}

impl Target {
    /// The plan's newest run, whatever started it.
    pub fn newest_run_of(plan: &Value) -> Target {
        Target {
            plan_uid: table::text(&plan["instanceUid"]),
            name: table::text(&plan["name"]),
            vm_count: plan["objectsCount"].as_u64().unwrap_or(0),
            newer_than: None,
            action_id: None,
        }
    }

    /// The run a start or undo just created: the first newer than `before`.
    pub fn new_run_of(plan: &Value, before: Option<String>, action_id: Option<String>) -> Target {
        Target {
            newer_than: Some(before),
            action_id,
            ..Target::newest_run_of(plan)
        }
    }
}

/// The UID of the plan's newest run, if it has any.
pub async fn newest_session_uid(api: &Api, plan_uid: &str) -> Result<Option<String>, ClientError> {
    Ok(newest_session(api, plan_uid)
        .await?
        .map(|session| table::text(&session["instanceUid"])))
}

async fn newest_session(api: &Api, plan_uid: &str) -> Result<Option<Value>, ClientError> {
    let page = api
        .get(
            &format!("/extensions/failoverplans/{plan_uid}/sessions"),
            &[("limit", "1".to_owned())],
        )
        .await?;
    Ok(page["data"].as_array().and_then(|a| a.first()).cloned())
}

/// How one followed plan stands.
struct Followed {
    target: Target,
    /// Our run, once it began.
    session: Option<Value>,
    /// The plan's newest run as last reported, ours or not.
    seen: Option<Value>,
    /// Why it ended without a run of ours, if it did.
    no_run: Option<String>,
    done: bool,
    bar: ProgressBar,
    /// The last line drawn for this plan, so new VM lines go below it.
    last_line: ProgressBar,
    vms: HashMap<String, (ProgressBar, String)>,
    started: Instant,
}

/// Follows every target to the end of its run, then prints the summary. A run that failed is
/// reported as `RunFailed` after the summary.
pub async fn follow(
    api: &Api,
    targets: Vec<Target>,
    output: OutputFormat,
) -> Result<(), ClientError> {
    let live = output == OutputFormat::Table && std::io::stderr().is_terminal();
    let multi = MultiProgress::with_draw_target(if live {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let bar_style =
        ProgressStyle::with_template("{prefix:.bold} [{bar:24.cyan/blue}] {pos}/{len} VMs  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    let width = targets.iter().map(|t| t.name.len()).max().unwrap_or(0);
    let mut followed: Vec<Followed> = targets
        .into_iter()
        .map(|target| {
            let bar = multi.add(ProgressBar::new(target.vm_count.max(1)));
            bar.set_style(bar_style.clone());
            bar.set_prefix(format!("{:width$}", target.name));
            bar.set_message("waiting for the run to begin");
            Followed {
                target,
                session: None,
                seen: None,
                no_run: None,
                done: false,
                last_line: bar.clone(),
                bar,
                vms: HashMap::new(),
                started: Instant::now(),
            }
        })
        .collect();
    if !follow_events(api, &mut followed, &multi, live).await? {
        // No event stream on this server: poll.
        while followed.iter().any(|f| !f.done) {
            for plan in followed.iter_mut().filter(|f| !f.done) {
                let newest = newest_session(api, &plan.target.plan_uid).await?;
                observe(api, plan, newest, &multi, live).await?;
            }
            if followed.iter().any(|f| !f.done) {
                tokio::time::sleep(POLL).await;
            }
        }
    }
    report(&followed, output)
}

/// Follows the plans over the server's event stream until every run ended. `false` when the
/// server has no event stream (nothing was followed yet).
async fn follow_events(
    api: &Api,
    followed: &mut [Followed],
    multi: &MultiProgress,
    live: bool,
) -> Result<bool, ClientError> {
    let query: Vec<(&str, String)> = followed
        .iter()
        .map(|f| ("planUid", f.target.plan_uid.clone()))
        .collect();
    let path = "/extensions/failoverplans/events";
    let mut last_id: Option<String> = None;
    let mut failures = 0;
    while followed.iter().any(|f| !f.done) {
        let response = match api.open_events(path, &query, last_id.as_deref()).await {
            Ok(Some(response)) => response,
            Ok(None) if last_id.is_none() => return Ok(false),
            Ok(None) => return Err(ClientError::Transport("the event stream went away".into())),
            Err(ClientError::Transport(message)) if failures < RECONNECTS => {
                failures += 1;
                tracing::debug!(%message, "event stream: reconnecting");
                tokio::time::sleep(Duration::from_millis(500 * u64::from(failures))).await;
                continue;
            }
            Err(error) => return Err(error),
        };
        let mut reader = EventReader::new(response);
        let mut silent = Duration::ZERO;
        while followed.iter().any(|f| !f.done) {
            match tokio::time::timeout(ACTION_CHECK, reader.next()).await {
                Ok(Ok(Some(event))) => {
                    failures = 0;
                    silent = Duration::ZERO;
                    if event.id.is_some() {
                        last_id = event.id.clone();
                    }
                    if event.event != "session" {
                        continue;
                    }
                    let update: Value = serde_json::from_str(&event.data).map_err(|e| {
                        ClientError::Transport(format!("an event's data is not JSON: {e}"))
                    })?;
                    let uid = table::text(&update["planUid"]);
                    if let Some(plan) = followed
                        .iter_mut()
                        .find(|f| !f.done && f.target.plan_uid == uid)
                    {
                        let session = Some(update["session"].clone()).filter(|s| !s.is_null());
                        observe(api, plan, session, multi, live).await?;
                    }
                }
                Ok(Ok(None)) => {
                    // Closed by the server (a restart, a lost session): reconnect, but not
                    // forever if it keeps closing at once.
                    failures += 1;
                    if failures > RECONNECTS {
                        return Err(ClientError::Transport(
                            "the server keeps closing the event stream".into(),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(failures))).await;
                    break;
                }
                Ok(Err(ClientError::Transport(message))) if failures < RECONNECTS => {
                    failures += 1;
                    tracing::debug!(%message, "event stream: reconnecting");
                    break;
                }
                Ok(Err(error)) => return Err(error),
                Err(_quiet) => {
                    // Nothing changed: a run of ours that never began is told by its action.
                    for plan in followed
                        .iter_mut()
                        .filter(|f| !f.done && f.session.is_none())
                    {
                        let newest = plan.seen.clone();
                        observe(api, plan, newest, multi, live).await?;
                    }
                    silent += ACTION_CHECK;
                    if silent >= SILENCE {
                        break;
                    }
                }
            }
        }
    }
    Ok(true)
}

/// Takes in the plan's newest run as the server reports it (`None`: it never ran).
async fn observe(
    api: &Api,
    plan: &mut Followed,
    newest: Option<Value>,
    multi: &MultiProgress,
    live: bool,
) -> Result<(), ClientError> {
    plan.seen = newest.clone();
    let ours = match (&plan.target.newer_than, newest) {
        (None, Some(session)) => Some(session),
        (None, None) => {
            return end_without_run(plan, "the plan has never run".into(), live);
        }
        (Some(before), Some(session)) if Some(table::text(&session["instanceUid"])) != *before => {
            Some(session)
        }
        (Some(_), _) => None,
    };
    let Some(session) = ours else {
        // The server creates the run when it accepts the start, so its absence means the action
        // failed before it began (or a slow node): ask the action.
        if let Some(action) = &plan.target.action_id {
            let answer = api.get(&format!("/asyncActions/{action}"), &[]).await?;
            let status = table::text(&answer["data"]["status"]);
            if status != "running" {
                return end_without_run(
                    plan,
                    format!("the action ended '{status}' before a run began"),
                    live,
                );
            }
        }
        return Ok(());
    };
    let vms = session["vms"].as_array().cloned().unwrap_or_default();
    let mut finished_vms = 0;
    for vm in &vms {
        let uid = table::text(&vm["instanceUid"]);
        let status = table::text(&vm["backupStatus"]);
        let terminal = status != "Running";
        finished_vms += u64::from(terminal);
        let message = vm_line(vm);
        match plan.vms.get_mut(&uid) {
            Some((line, last_status)) => {
                if *last_status != status {
                    if !live {
                        eprintln!(
                            "{}: {}",
                            plan.target.name,
                            console::strip_ansi_codes(&message)
                        );
                    }
                    *last_status = status.clone();
                }
                line.set_message(message);
                if terminal && !line.is_finished() {
                    line.finish();
                }
            }
            None => {
                let line = multi.insert_after(&plan.last_line, ProgressBar::new_spinner());
                line.set_style(
                    ProgressStyle::with_template("    {spinner:.yellow} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner())
                        .tick_chars("|/-\\ "),
                );
                line.set_message(message.clone());
                if terminal {
                    line.finish();
                } else {
                    line.enable_steady_tick(Duration::from_millis(120));
                }
                if !live {
                    eprintln!(
                        "{}: {}",
                        plan.target.name,
                        console::strip_ansi_codes(&message)
                    );
                }
                plan.last_line = line.clone();
                plan.vms.insert(uid, (line, status));
            }
        }
    }
    plan.bar
        .set_length(plan.target.vm_count.max(vms.len() as u64).max(1));
    plan.bar.set_position(finished_vms);
    let ended = !session["endTime"].is_null();
    let elapsed = session["durationSeconds"]
        .as_f64()
        .unwrap_or_else(|| plan.started.elapsed().as_secs_f64());
    let kind = table::text(&session["kind"]);
    if ended {
        let summary = format!(
            "{kind} {} in {}",
            table::status(&table::text(&session["status"])),
            table::duration(elapsed)
        );
        if !live {
            eprintln!(
                "{}: {}",
                plan.target.name,
                console::strip_ansi_codes(&summary)
            );
        }
        plan.bar.finish_with_message(summary);
        plan.done = true;
    } else {
        plan.bar
            .set_message(format!("{kind} running {}", table::duration(elapsed)));
    }
    plan.session = Some(session);
    Ok(())
}

fn end_without_run(plan: &mut Followed, why: String, live: bool) -> Result<(), ClientError> {
    if !live {
        eprintln!("{}: {why}", plan.target.name);
    }
    plan.bar.abandon_with_message(why.clone());
    plan.no_run = Some(why);
    plan.done = true;
    Ok(())
}

/// `web01   restore point 2026-11-27 16:00Z   Success  4s`.
fn vm_line(vm: &Value) -> String {
    let status = table::text(&vm["backupStatus"]);
    let took = vm["durationSeconds"]
        .as_f64()
        .map(table::duration)
        .unwrap_or_default();
    let point = if vm["restorePointDateTime"].is_null() {
        String::new()
    } else {
        format!("restore point {}", table::when(&vm["restorePointDateTime"]))
    };
    format!(
        "{:24} {:32} {} {took}",
        table::text(&vm["name"]),
        point,
        table::status_style(&status).apply_to(format!("{status:8}"))
    )
    .trim_end()
    .to_owned()
}

/// Counts a run's VMs by result: (ok, failed).
fn tally(session: &Value) -> (usize, usize) {
    let vms = session["vms"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let failed = vms
        .iter()
        .filter(|vm| vm["backupStatus"] == "Failed")
        .count();
    let ok = vms
        .iter()
        .filter(|vm| matches!(vm["backupStatus"].as_str(), Some("Success" | "Warning")))
        .count();
    (ok, failed)
}

fn report(followed: &[Followed], output: OutputFormat) -> Result<(), ClientError> {
    let failed_runs = followed
        .iter()
        .filter(|f| {
            f.no_run.is_some() && f.target.newer_than.is_some()
                || f.session.as_ref().is_some_and(|s| s["status"] == "Failed")
        })
        .count();
    if output == OutputFormat::Json {
        let data: Vec<Value> = followed
            .iter()
            .map(|f| {
                json!({
                    "planUid": f.target.plan_uid,
                    "name": f.target.name,
                    "actionId": f.target.action_id,
                    "session": f.session,
                    "error": f.no_run,
                })
            })
            .collect();
        print_json(&json!({ "data": data }));
    } else {
        let mut table = Table::new(&[
            "PLAN",
            "RUN",
            "RESULT",
            "VMS OK",
            "VMS FAILED",
            "ELAPSED",
            "SESSION",
        ]);
        for f in followed {
            let Some(session) = &f.session else {
                table.row(vec![
                    f.target.name.clone(),
                    "-".into(),
                    f.no_run.clone().unwrap_or_default(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]);
                continue;
            };
            let (ok, failed) = tally(session);
            table.row(vec![
                f.target.name.clone(),
                table::text(&session["kind"]),
                table::status(&table::text(&session["status"])),
                ok.to_string(),
                if failed > 0 {
                    table::status_style("Failed").apply_to(failed).to_string()
                } else {
                    "0".into()
                },
                session["durationSeconds"]
                    .as_f64()
                    .map_or_else(|| "-".into(), table::duration),
                table::text(&session["instanceUid"]),
            ]);
        }
        print!("{}", table.render());
    }
    if failed_runs > 0 {
        return Err(ClientError::RunFailed(format!(
            "{failed_runs} of {} runs failed",
            followed.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_by_result() {
        let session = json!({"vms": [
            {"backupStatus": "Success"}, {"backupStatus": "Warning"},
            {"backupStatus": "Failed"}, {"backupStatus": "Running"}
        ]});
        assert_eq!(tally(&session), (2, 1));
        assert_eq!(tally(&json!({})), (0, 0));
    }
}

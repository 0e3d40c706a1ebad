//! `standby plans ...`: the VSPC failover-plan endpoints and Standby's extensions, with PLAN
//! given as a UID or an unambiguous name.

use clap::Args;
use serde_json::{Value, json};
use standby_model::{PlanStatus, PlanType, WireEnum};
use uuid::Uuid;

use super::api::Api;
use super::table::{self, Table};
use super::watch::{self, RunKind, Target};
use super::{ClientError, OutputFormat, PlansCommand, print_json};

const PLANS: &str = "/infrastructure/backupServers/failoverplans";
/// The server's default `MaxPageSize`; `--all` pages with it.
const PAGE: u32 = 500;

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only plans on this backup server (UID).
    #[arg(long)]
    server: Option<Uuid>,
    /// Only plans in these states (comma-separated, any case): Ready, InProgress,
    /// InUndoProgress, Success, Failed, Completed, UndoFailed.
    #[arg(long, value_delimiter = ',')]
    status: Vec<String>,
    /// Only plans of these types (comma-separated): Local, Cloud, Tenant.
    #[arg(long = "type", value_delimiter = ',')]
    plan_type: Vec<String>,
    /// Only plans whose name contains this text (any case), such as a company's name.
    #[arg(long)]
    name: Option<String>,
    /// Sort by a plan property (name, status, type, objectsCount, ...), `:desc` to reverse.
    #[arg(long)]
    sort: Option<String>,
    /// At most this many plans (1 to 500).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=500))]
    limit: u32,
    /// Every matching plan, fetched page by page.
    #[arg(long, conflicts_with = "limit")]
    all: bool,
}

pub async fn run(
    api: &Api,
    command: PlansCommand,
    output: OutputFormat,
) -> Result<(), ClientError> {
    match command {
        PlansCommand::List(args) => list(api, &args, output).await,
        PlansCommand::Show { plan } => show(api, &plan, output).await,
        PlansCommand::Objects { plan } => objects(api, &plan, output).await,
        PlansCommand::Preview { plan, at } => preview(api, &plan, at, output).await,
        PlansCommand::Start {
            plans,
            at,
            test,
            wait,
        } => {
            let kind = if test {
                RunKind::Test
            } else {
                RunKind::Failover
            };
            let mut query = Vec::new();
            if let Some(at) = at {
                query.push(("dateTime", at));
            }
            if test {
                query.push(("test", "true".to_owned()));
            }
            act(api, &plans, kind, &query, wait, output).await
        }
        PlansCommand::Undo { plans, wait } => {
            act(api, &plans, RunKind::Undo, &[], wait, output).await
        }
        PlansCommand::Watch { plans } => {
            let mut targets = Vec::new();
            for plan in resolve_all(api, &plans).await? {
                targets.push(Target::newest_run_of(&plan));
            }
            watch::follow(api, targets, output).await
        }
    }
}

/// The VSPC filter for the list's options: every option narrows (the array is an AND).
fn list_filter(args: &ListArgs) -> Result<Vec<Value>, ClientError> {
    let mut filter = Vec::new();
    if !args.status.is_empty() {
        let values = canonical("status", &args.status, &PlanStatus::literals())?;
        filter.push(json!({"property": "status", "operation": "in", "value": values}));
    }
    if !args.plan_type.is_empty() {
        let values = canonical("type", &args.plan_type, &PlanType::literals())?;
        filter.push(json!({"property": "type", "operation": "in", "value": values}));
    }
    if let Some(name) = &args.name {
        filter.push(json!({
            "property": "name", "operation": "contains", "collation": "ignorecase", "value": name
        }));
    }
    Ok(filter)
}

/// Each given value as the enum spells it (matched in any case), or a usage error listing them.
fn canonical(option: &str, given: &[String], allowed: &[&str]) -> Result<Vec<String>, ClientError> {
    given
        .iter()
        .map(|value| {
            allowed
                .iter()
                .find(|a| a.eq_ignore_ascii_case(value.trim()))
                .map(|a| (*a).to_owned())
                .ok_or_else(|| {
                    ClientError::Usage(format!(
                        "--{option} '{value}' is not one of {}",
                        allowed.join(", ")
                    ))
                })
        })
        .collect()
}

fn sort_expression(sort: &str) -> Result<Value, ClientError> {
    let (property, direction) = match sort.rsplit_once(':') {
        Some((property, "desc")) => (property, "descending"),
        Some((property, "asc")) => (property, "ascending"),
        Some((_, other)) => {
            return Err(ClientError::Usage(format!(
                "--sort '{sort}': the direction '{other}' is not asc or desc"
            )));
        }
        None => (sort, "ascending"),
    };
    if property.is_empty() {
        return Err(ClientError::Usage("--sort needs a property name".into()));
    }
    Ok(json!([{"property": property, "direction": direction}]))
}

async fn list(api: &Api, args: &ListArgs, output: OutputFormat) -> Result<(), ClientError> {
    let path = match args.server {
        Some(server) => format!("/infrastructure/backupServers/{server}/failoverplans"),
        None => PLANS.to_owned(),
    };
    let mut query = Vec::new();
    let filter = list_filter(args)?;
    if !filter.is_empty() {
        query.push(("filter", Value::Array(filter).to_string()));
    }
    if let Some(sort) = &args.sort {
        query.push(("sort", sort_expression(sort)?.to_string()));
    }
    let (plans, total) = if args.all {
        fetch_all(api, &path, &query).await?
    } else {
        let mut query = query.clone();
        query.push(("limit", args.limit.to_string()));
        let page = api.get(&path, &query).await?;
        (items(&page), total_of(&page))
    };
    if output == OutputFormat::Json {
        print_json(&page_envelope(&plans, total));
        return Ok(());
    }
    let mut table = Table::new(&["NAME", "STATUS", "TYPE", "VMS", "LAST RUN", "ENDED", "UID"]);
    for plan in &plans {
        let session = &plan["lastSession"];
        table.row(vec![
            table::text(&plan["name"]),
            table::status(&table::text(&plan["status"])),
            table::text(&plan["type"]),
            table::text(&plan["objectsCount"]),
            table::status(&table::text(&session["status"])),
            table::when(&session["endTime"]),
            table::text(&plan["instanceUid"]),
        ]);
    }
    print!("{}", table.render());
    eprintln!("{} of {} plans", plans.len(), total);
    Ok(())
}

async fn show(api: &Api, plan: &str, output: OutputFormat) -> Result<(), ClientError> {
    let plan = resolve(api, plan).await?;
    if output == OutputFormat::Json {
        print_json(&json!({ "data": plan }));
        return Ok(());
    }
    let session = &plan["lastSession"];
    let mut fields = Table::new(&["FIELD", "VALUE"]);
    for (label, value) in [
        ("name", table::text(&plan["name"])),
        ("uid", table::text(&plan["instanceUid"])),
        ("status", table::status(&table::text(&plan["status"]))),
        ("type", table::text(&plan["type"])),
        ("backup server", table::text(&plan["backupServerUid"])),
        ("tenant", table::text(&plan["tenantUid"])),
        ("VMs", table::text(&plan["objectsCount"])),
        ("pre-failover", table::text(&plan["preFailoverCommand"])),
        ("post-failover", table::text(&plan["postFailoverCommand"])),
        ("last run", table::status(&table::text(&session["status"]))),
        ("last run ended", table::when(&session["endTime"])),
        ("last run message", table::text(&session["message"])),
    ] {
        fields.row(vec![label.to_owned(), value]);
    }
    print!("{}", fields.render());
    if let Some(lines) = session["detailedMessages"]
        .as_array()
        .filter(|l| !l.is_empty())
    {
        println!();
        let mut log = Table::new(&["VM", "RESULT", "STARTED", "MESSAGE"]);
        for line in lines {
            log.row(vec![
                table::text(&line["title"]),
                table::status(&table::text(&line["severity"])),
                table::when(&line["startTime"]),
                table::text(&line["description"]),
            ]);
        }
        print!("{}", log.render());
    }
    Ok(())
}

async fn objects(api: &Api, plan: &str, output: OutputFormat) -> Result<(), ClientError> {
    let plan = resolve(api, plan).await?;
    let uid = table::text(&plan["instanceUid"]);
    let (vms, total) = fetch_all(api, &format!("{PLANS}/{uid}/objects"), &[]).await?;
    if output == OutputFormat::Json {
        print_json(&page_envelope(&vms, total));
        return Ok(());
    }
    let mut table = Table::new(&["VM", "HOST", "LAST RESULT", "RESTORE POINT", "ENDED", "UID"]);
    for vm in &vms {
        let session = &vm["restoreSession"];
        table.row(vec![
            table::text(&vm["name"]),
            table::text(&vm["hostName"]),
            table::status(&table::text(&session["backupStatus"])),
            table::when(&session["restorePointDateTime"]),
            table::when(&session["endDateTime"]),
            table::text(&vm["instanceUid"]),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

async fn preview(
    api: &Api,
    plan: &str,
    at: Option<String>,
    output: OutputFormat,
) -> Result<(), ClientError> {
    let plan = resolve(api, plan).await?;
    let uid = table::text(&plan["instanceUid"]);
    let query: Vec<(&str, String)> = at.into_iter().map(|at| ("dateTime", at)).collect();
    let answer = api
        .get(&format!("/extensions/failoverplans/{uid}/preview"), &query)
        .await?;
    if output == OutputFormat::Json {
        print_json(&answer);
        return Ok(());
    }
    let preview = &answer["data"];
    let mut table = Table::new(&["VM", "RESTORE POINT", "RESTORE POINT UID"]);
    for vm in preview["vms"].as_array().into_iter().flatten() {
        let point = &vm["restorePointDateTime"];
        table.row(vec![
            table::text(&vm["name"]),
            if point.is_null() {
                table::status_style("Failed").apply_to("none").to_string()
            } else {
                table::when(point)
            },
            table::text(&vm["restorePointUid"]),
        ]);
    }
    print!("{}", table.render());
    let skew = preview["skewSeconds"]
        .as_f64()
        .map_or_else(|| "-".into(), table::duration);
    eprintln!(
        "{}: as of {}, restore points from {} to {} (skew {skew}); {} VMs without a point",
        table::text(&plan["name"]),
        table::when(&preview["dateTime"]),
        table::when(&preview["oldestRestorePoint"]),
        table::when(&preview["newestRestorePoint"]),
        table::text(&preview["vmsWithoutRestorePoint"]),
    );
    Ok(())
}

/// Starts or undoes each plan. Every name is resolved before anything is sent, so a typo
/// starts nothing. A plan the server refuses does not stop the others; the exit code reports it.
async fn act(
    api: &Api,
    given: &[String],
    kind: RunKind,
    query: &[(&str, String)],
    wait: bool,
    output: OutputFormat,
) -> Result<(), ClientError> {
    let plans = resolve_all(api, given).await?;
    let mut targets = Vec::new();
    let mut refused: Option<ClientError> = None;
    for plan in &plans {
        let uid = table::text(&plan["instanceUid"]);
        let name = table::text(&plan["name"]);
        // The run this start creates is the first one newer than the newest now.
        let before = watch::newest_session_uid(api, &uid).await?;
        let path = format!("{PLANS}/{uid}/{}", kind.endpoint());
        match api.post_action(&path, query).await {
            Ok(accepted) => {
                eprintln!(
                    "{} {} of '{name}'{}",
                    console::style("accepted:").green().for_stderr(),
                    kind.noun(),
                    accepted
                        .action_id
                        .as_deref()
                        .map(|id| format!(" (action {id})"))
                        .unwrap_or_default()
                );
                targets.push(Target::new_run_of(plan, before, accepted.action_id));
            }
            Err(error) => {
                eprintln!(
                    "{} {} of '{name}': {error}",
                    console::style("refused:").red().bold().for_stderr(),
                    kind.noun()
                );
                refused = Some(error);
            }
        }
    }
    if wait && !targets.is_empty() {
        watch::follow(api, targets, output).await?;
    } else if output == OutputFormat::Json {
        let accepted: Vec<Value> = targets
            .iter()
            .map(|t| json!({"planUid": t.plan_uid, "name": t.name, "actionId": t.action_id}))
            .collect();
        print_json(&json!({ "data": accepted }));
    }
    match refused {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

async fn resolve_all(api: &Api, given: &[String]) -> Result<Vec<Value>, ClientError> {
    let mut plans: Vec<Value> = Vec::new();
    for text in given {
        let plan = resolve(api, text).await?;
        if !plans
            .iter()
            .any(|p| p["instanceUid"] == plan["instanceUid"])
        {
            plans.push(plan);
        }
    }
    Ok(plans)
}

/// A plan by UID, or by name: an exact match first, then one ignoring case. Several plans of
/// one name are refused as ambiguous (with their UIDs); no match suggests names that contain it.
pub async fn resolve(api: &Api, text: &str) -> Result<Value, ClientError> {
    if let Ok(uid) = Uuid::parse_str(text) {
        return match api.get(&format!("{PLANS}/{uid}"), &[]).await {
            Ok(answer) => Ok(answer["data"].clone()),
            Err(ClientError::Api { status: 404, .. }) => Err(ClientError::NotFound(format!(
                "no failover plan has the UID {uid} (or it is not visible to you)"
            ))),
            Err(error) => Err(error),
        };
    }
    for collation in ["ordinal", "ignorecase"] {
        let filter = json!([{
            "property": "name", "operation": "equals", "collation": collation, "value": text
        }]);
        let page = api
            .get(
                PLANS,
                &[("filter", filter.to_string()), ("limit", "20".to_owned())],
            )
            .await?;
        let found = items(&page);
        match found.len() {
            0 => continue,
            1 => return Ok(found[0].clone()),
            _ => {
                let uids: Vec<String> = found
                    .iter()
                    .map(|p| {
                        format!(
                            "  {}  {}",
                            table::text(&p["instanceUid"]),
                            table::text(&p["backupServerUid"])
                        )
                    })
                    .collect();
                return Err(ClientError::Ambiguous(format!(
                    "{} plans are named '{text}'; give one of their UIDs (plan, then backup server):\n{}",
                    total_of(&page),
                    uids.join("\n")
                )));
            }
        }
    }
    let filter = json!([{
        "property": "name", "operation": "contains", "collation": "ignorecase", "value": text
    }]);
    let page = api
        .get(
            PLANS,
            &[("filter", filter.to_string()), ("limit", "5".to_owned())],
        )
        .await?;
    let similar: Vec<String> = items(&page)
        .iter()
        .map(|p| format!("'{}'", table::text(&p["name"])))
        .collect();
    Err(ClientError::NotFound(if similar.is_empty() {
        format!("no failover plan is named '{text}'")
    } else {
        format!(
            "no failover plan is named '{text}'; names containing it: {}",
            similar.join(", ")
        )
    }))
}

/// Every item of a collection, page by page (offset paging; the total is the first page's).
async fn fetch_all(
    api: &Api,
    path: &str,
    query: &[(&str, String)],
) -> Result<(Vec<Value>, u64), ClientError> {
    let mut all = Vec::new();
    let mut total = 0;
    loop {
        let mut paged = query.to_vec();
        paged.push(("limit", PAGE.to_string()));
        paged.push(("offset", all.len().to_string()));
        let page = api.get(path, &paged).await?;
        let batch = items(&page);
        if all.is_empty() {
            total = total_of(&page);
        }
        let done = batch.is_empty() || all.len() + batch.len() >= total as usize;
        all.extend(batch);
        if done {
            return Ok((all, total));
        }
    }
}

fn items(page: &Value) -> Vec<Value> {
    page["data"].as_array().cloned().unwrap_or_default()
}

fn total_of(page: &Value) -> u64 {
    page["meta"]["pagingInfo"]["total"].as_u64().unwrap_or(0)
}

/// The API's collection envelope around items gathered from one or more pages.
fn page_envelope(items: &[Value], total: u64) -> Value {
    json!({
        "data": items,
        "meta": { "pagingInfo": { "total": total, "count": items.len(), "offset": 0 } }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(status: &[&str], name: Option<&str>) -> ListArgs {
        ListArgs {
            server: None,
            status: status.iter().map(|s| (*s).to_owned()).collect(),
            plan_type: vec!["cloud".into()],
            name: name.map(str::to_owned),
            sort: None,
            limit: 100,
            all: false,
        }
    }

    #[test]
    fn options_become_a_vspc_filter() {
        let filter = list_filter(&args(&["failed", "UNDOFAILED"], Some("Contoso"))).unwrap();
        assert_eq!(
            Value::Array(filter),
            json!([
                {"property": "status", "operation": "in", "value": ["Failed", "UndoFailed"]},
                {"property": "type", "operation": "in", "value": ["Cloud"]},
                {"property": "name", "operation": "contains", "collation": "ignorecase", "value": "Contoso"}
            ])
        );
        assert!(matches!(
            list_filter(&args(&["Broken"], None)),
            Err(ClientError::Usage(message)) if message.contains("UndoFailed")
        ));
    }

    #[test]
    fn sort_options() {
        assert_eq!(
            sort_expression("name").unwrap(),
            json!([{"property": "name", "direction": "ascending"}])
        );
        assert_eq!(
            sort_expression("objectsCount:desc").unwrap(),
            json!([{"property": "objectsCount", "direction": "descending"}])
        );
        assert!(sort_expression("name:sideways").is_err());
        assert!(sort_expression(":desc").is_err());
    }
}

//! Live run views: one plan's run, or every plan of a bulk start, kept current by server-sent
//! events (`standby_api::live`, the loop the API's session events use too): after each change
//! in the store each plan's panel is rendered with the same template as the page, and only the
//! panels that changed are sent. No polling of the database, no reload in the browser.

use std::convert::Infallible;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::response::sse::{Event, Sse};
use futures_util::Stream;
use standby_api::AppState;
use standby_api::live::{Snapshot, follow_changes};
use standby_model::{BackupStatus, SessionKind, WireEnum};
use uuid::Uuid;

use crate::form::Fields;
use crate::plans::kind_label;
use crate::session::{Operator, frame};
use crate::view::{self, Page, PageError, Status, status};

/// A live view follows at most this many plans (a bulk action's largest).
const MAX_PLANS: usize = 200;

pub struct LiveVm {
    pub name: String,
    pub status: Status,
    pub point: String,
    pub start: String,
    pub duration: String,
}

/// One plan's panel: its status and its newest run.
#[derive(Template)]
#[template(path = "run_panel.html")]
pub struct RunPanel {
    pub uid: Uuid,
    pub name: String,
    pub plan_status: Status,
    pub has_run: bool,
    pub kind: String,
    pub production: bool,
    pub test: bool,
    pub run_status: Status,
    pub finished: bool,
    pub message: String,
    pub started_by: String,
    pub start: String,
    pub end: String,
    pub elapsed: String,
    pub vms: Vec<LiveVm>,
    pub vms_done: usize,
    pub vms_failed: usize,
}

/// The counts over every followed plan.
#[derive(Template)]
#[template(path = "run_summary.html")]
pub struct Summary {
    pub plans: usize,
    pub running: usize,
    pub succeeded: usize,
    pub failed: usize,
}

async fn panel(state: &AppState, operator: &Operator, uid: Uuid) -> Result<RunPanel, PageError> {
    let plan = crate::plan::visible_plan(state, operator, uid).await?;
    let newest = state.store.session_history(uid, 1, 0).await?;
    let run = newest.items.into_iter().next();
    let mut panel = RunPanel {
        uid,
        name: plan.name.clone(),
        plan_status: status(plan.status.as_str()),
        has_run: run.is_some(),
        kind: String::new(),
        production: false,
        test: false,
        run_status: status("None"),
        finished: false,
        message: String::new(),
        started_by: String::new(),
        start: String::new(),
        end: String::new(),
        elapsed: String::new(),
        vms: Vec::new(),
        vms_done: 0,
        vms_failed: 0,
    };
    if let Some(run) = run {
        // A run is over when its session has ended and the plan is at rest again.
        let finished = run.end_time.is_some() && !plan.status.is_busy();
        panel.kind = kind_label(run.kind).to_owned();
        panel.production = run.kind == SessionKind::Failover;
        panel.test = run.kind == SessionKind::Test;
        panel.run_status = if finished {
            status(run.status.as_str())
        } else {
            status("Running")
        };
        panel.finished = finished;
        panel.message = run.message.clone().unwrap_or_default();
        panel.started_by = run.started_by.clone();
        panel.start = view::iso(run.start_time);
        panel.end = view::iso_or_empty(run.end_time);
        panel.elapsed = run
            .end_time
            .map(|end| view::duration(view::seconds(run.start_time, end)))
            .unwrap_or_default();
        panel.vms_done = run.vms.iter().filter(|vm| vm.end_time.is_some()).count();
        panel.vms_failed = run
            .vms
            .iter()
            .filter(|vm| vm.backup_status == BackupStatus::Failed)
            .count();
        panel.vms = run
            .vms
            .iter()
            .map(|vm| LiveVm {
                name: vm.name.clone(),
                status: status(vm.backup_status.as_str()),
                point: view::iso_or_empty(vm.restore_point_time),
                start: view::iso(vm.start_time),
                duration: vm
                    .end_time
                    .map(|end| view::duration(view::seconds(vm.start_time, end)))
                    .unwrap_or_default(),
            })
            .collect();
        // While it runs, the VMs it has not reached yet are listed too, in boot order.
        if !finished {
            let objects = crate::plan::objects_in_boot_order(state, operator, uid).await?;
            for object in objects {
                if !run
                    .vms
                    .iter()
                    .any(|vm| vm.object_uid == object.instance_uid)
                {
                    panel.vms.push(LiveVm {
                        name: object.name,
                        status: status("Waiting"),
                        point: String::new(),
                        start: String::new(),
                        duration: String::new(),
                    });
                }
            }
        }
    }
    Ok(panel)
}

fn summary(panels: &[RunPanel]) -> Summary {
    Summary {
        plans: panels.len(),
        running: panels.iter().filter(|p| p.has_run && !p.finished).count(),
        succeeded: panels
            .iter()
            .filter(|p| p.finished && p.run_status.tone == "ok")
            .count(),
        failed: panels
            .iter()
            .filter(|p| p.finished && p.run_status.tone == "bad")
            .count(),
    }
}

fn followed_plans(fields: &Fields) -> Result<Vec<Uuid>, PageError> {
    let mut plans = Vec::new();
    for text in fields.all("plan") {
        let uid = view::parse_uid(text, "plan")?;
        if !plans.contains(&uid) {
            plans.push(uid);
        }
    }
    if plans.is_empty() || plans.len() > MAX_PLANS {
        return Err(PageError::bad_request(format!(
            "Name 1 to {MAX_PLANS} plans to follow."
        )));
    }
    Ok(plans)
}

#[derive(Template)]
#[template(path = "live.html")]
struct LivePage {
    page: Page,
    events_url: String,
    /// The summary and the panels, rendered as the event stream renders them.
    summary: String,
    panels: Vec<String>,
}

/// `GET /live?plan=...`: the page, rendered with the current state (it is complete without
/// script); the script then follows `/live/events`.
pub async fn page(
    State(state): State<AppState>,
    operator: Operator,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let fields = Fields::from_query(raw.as_deref());
    let plans = followed_plans(&fields)?;
    let mut panels = Vec::with_capacity(plans.len());
    for uid in &plans {
        panels.push(panel(&state, &operator, *uid).await?);
    }
    let title = match panels.as_slice() {
        [one] => format!("{}: live", one.name),
        many => format!("{} plans: live", many.len()),
    };
    let query: Vec<(&str, String)> = plans.iter().map(|p| ("plan", p.to_string())).collect();
    let page = LivePage {
        page: frame(&operator, title, "plans"),
        events_url: format!(
            "/live/events?{}",
            serde_urlencoded::to_string(&query).unwrap_or_default()
        ),
        summary: rendered(&summary(&panels))?,
        panels: panels.iter().map(rendered).collect::<Result<_, _>>()?,
    };
    Ok(view::render(StatusCode::OK, &page))
}

fn rendered(template: &impl Template) -> Result<String, PageError> {
    template.render().map_err(|error| {
        tracing::error!(%error, "a live panel could not be rendered");
        PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The page could not be rendered.",
        )
    })
}

/// `GET /live/events?plan=...`: `panel` events, each the HTML of one panel to swap in.
pub async fn events(
    State(state): State<AppState>,
    operator: Operator,
    RawQuery(raw): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    let fields = Fields::from_query(raw.as_deref());
    let plans = followed_plans(&fields)?;
    // Every followed plan must be visible now; later failures end the stream.
    for uid in &plans {
        crate::plan::visible_plan(&state, &operator, *uid).await?;
    }
    let state_for_stream = state.clone();
    let credential = operator.secret().to_owned();
    let snapshot = move |principal| -> Snapshot {
        let state = state.clone();
        // The operator as the session resolves now (a changed role or company applies).
        let mut operator = operator.clone();
        operator.principal = principal;
        let plans = plans.clone();
        Box::pin(async move {
            let mut panels = Vec::with_capacity(plans.len());
            for uid in &plans {
                // A plan removed, or a store error: the stream ends; the browser reconnects.
                panels.push(panel(&state, &operator, *uid).await.ok()?);
            }
            let mut payloads = Vec::with_capacity(panels.len() + 1);
            for panel in &panels {
                payloads.push((panel.uid.to_string(), panel.render().ok()?));
            }
            payloads.push(("summary".to_owned(), summary(&panels).render().ok()?));
            Some(payloads)
        })
    };
    Ok(follow_changes(
        state_for_stream,
        credential,
        "panel",
        snapshot,
    ))
}

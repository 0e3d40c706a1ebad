//! The plan table: filters, sort and paging carried in the URL (a reload or a shared link shows
//! the same page), turned into the VSPC query language and answered by the store one page at a
//! time; rows selectable for a bulk Start, Test or Undo.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};
use standby_api::AppState;
use standby_api::error::ApiError;
use standby_api::vspc::queue_session;
use standby_model::{ClientVersion, FailoverPlan, PlanStatus, PlanType, SessionKind, WireEnum};
use standby_query::{Filter, Paging, SortOrder};
use standby_store::catalog::PLAN_CATALOG;
use standby_store::{AuditAction, ListQuery, PlanOwner, Scope};
use uuid::Uuid;

use crate::form::Fields;
use crate::session::{Operator, frame};
use crate::view::{self, Confirmation, Page, PageError, Status, status};

/// The columns a person may sort by, with the catalog property each one sorts.
const SORTABLE: &[(&str, &str)] = &[
    ("name", "name"),
    ("status", "status"),
    ("type", "type"),
    ("vms", "objectsCount"),
    ("ended", "lastSession.endTime"),
];

const PAGE_SIZES: &[u32] = &[25, 50, 100, 200];

/// A bulk action names at most this many plans (a page of the largest size).
const MAX_BULK: usize = 200;

/// What the URL asks for, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanFilters {
    pub statuses: Vec<String>,
    pub types: Vec<String>,
    pub server: Option<Uuid>,
    pub company: Option<Uuid>,
    pub name: String,
    pub sort: String,
    pub descending: bool,
    pub page: u32,
    pub per_page: u32,
}

impl PlanFilters {
    pub fn parse(fields: &Fields) -> Result<PlanFilters, PageError> {
        let known = |values: Vec<&str>, allowed: &[&str], what: &str| {
            values
                .into_iter()
                .map(|value| {
                    allowed
                        .iter()
                        .find(|known| known.eq_ignore_ascii_case(value))
                        .map(|known| (*known).to_owned())
                        .ok_or_else(|| {
                            PageError::bad_request(format!("'{value}' is not a plan {what}."))
                        })
                })
                .collect::<Result<Vec<String>, PageError>>()
        };
        let statuses: Vec<&str> = PlanStatus::ALL.iter().map(|s| s.as_str()).collect();
        let types: Vec<&str> = PlanType::ALL.iter().map(|t| t.as_str()).collect();
        let uid = |name: &str| {
            fields
                .get(name)
                .map(|text| view::parse_uid(text, name))
                .transpose()
        };
        let number = |name: &str, default: u32| {
            fields.get(name).map_or(Ok(default), |text| {
                text.parse::<u32>().map_err(|_| {
                    PageError::bad_request(format!("{name} must be a whole number, not '{text}'."))
                })
            })
        };
        let sort = fields.get("sort").unwrap_or("name");
        if !SORTABLE.iter().any(|(key, _)| *key == sort) {
            return Err(PageError::bad_request(format!(
                "Plans cannot be sorted by '{sort}'; use one of: {}.",
                SORTABLE
                    .iter()
                    .map(|(key, _)| *key)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let per_page = number("per", 50)?;
        if !PAGE_SIZES.contains(&per_page) {
            return Err(PageError::bad_request(format!(
                "per must be one of {PAGE_SIZES:?}, not {per_page}."
            )));
        }
        let name = fields.get("q").unwrap_or("").to_owned();
        if name.chars().count() > 200 {
            return Err(PageError::bad_request(
                "The name search is at most 200 characters.",
            ));
        }
        Ok(PlanFilters {
            statuses: known(fields.all("status"), &statuses, "status")?,
            types: known(fields.all("type"), &types, "type")?,
            server: uid("server")?,
            company: uid("company")?,
            name,
            sort: sort.to_owned(),
            descending: fields.get("dir") == Some("desc"),
            page: number("page", 1)?.max(1),
            per_page,
        })
    }

    /// The VSPC `filter` this asks for (company and server are scopes, not filters).
    fn filter_json(&self) -> Value {
        let mut conditions = Vec::new();
        if !self.statuses.is_empty() {
            conditions
                .push(json!({"property": "status", "operation": "in", "value": self.statuses}));
        }
        if !self.types.is_empty() {
            conditions.push(json!({"property": "type", "operation": "in", "value": self.types}));
        }
        if !self.name.is_empty() {
            conditions.push(json!({
                "property": "name", "operation": "contains", "collation": "ignorecase", "value": self.name
            }));
        }
        Value::Array(conditions)
    }

    fn sort_json(&self) -> Value {
        let property = SORTABLE
            .iter()
            .find(|(key, _)| *key == self.sort)
            .map_or("name", |(_, property)| property);
        let direction = if self.descending {
            "descending"
        } else {
            "ascending"
        };
        json!([{"property": property, "direction": direction}])
    }

    /// The store query: the VSPC query language, parsed as the API parses it, within what the
    /// operator may see. A company filter narrows a provider's scope; a company user's scope is
    /// their company already, and a company named in the URL is ignored for them.
    pub fn query(&self, scope: Scope) -> Result<ListQuery, ApiError> {
        let version = ClientVersion::NEWEST;
        let filter = Filter::parse(&self.filter_json().to_string(), &PLAN_CATALOG, version)?;
        let order = SortOrder::parse(Some(&self.sort_json().to_string()), &PLAN_CATALOG, version)?;
        let scope = match (scope, self.company) {
            (Scope::All, Some(company)) => Scope::Organization(company),
            (scope, _) => scope,
        };
        Ok(ListQuery {
            scope,
            server: self.server,
            plan: None,
            filter,
            order,
            paging: Paging {
                limit: self.per_page,
                offset: (self.page - 1).saturating_mul(self.per_page),
            },
        })
    }

    /// This page's URL with some fields changed, for links (sort headers, pages).
    pub fn url_with(&self, changes: &[(&str, String)]) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        for status in &self.statuses {
            pairs.push(("status", status.clone()));
        }
        for plan_type in &self.types {
            pairs.push(("type", plan_type.clone()));
        }
        if let Some(server) = self.server {
            pairs.push(("server", server.to_string()));
        }
        if let Some(company) = self.company {
            pairs.push(("company", company.to_string()));
        }
        if !self.name.is_empty() {
            pairs.push(("q", self.name.clone()));
        }
        pairs.push(("sort", self.sort.clone()));
        if self.descending {
            pairs.push(("dir", "desc".into()));
        }
        pairs.push(("per", self.per_page.to_string()));
        pairs.push(("page", self.page.to_string()));
        for (name, value) in changes {
            pairs.retain(|(key, _)| key != name);
            if !value.is_empty() {
                pairs.push((name, value.clone()));
            }
        }
        format!(
            "/plans?{}",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    }
}

/// One row of the table.
pub struct PlanRow {
    pub uid: Uuid,
    pub name: String,
    pub status: Status,
    pub server: String,
    pub company: String,
    pub plan_type: String,
    pub vms: i32,
    pub last_result: Option<Status>,
    pub last_kind: String,
    pub last_message: String,
    pub ended: String,
    pub duration: String,
}

pub fn plan_row(plan: &FailoverPlan, owner: Option<&PlanOwner>) -> PlanRow {
    let last = plan.last_session.as_ref();
    let last_run = owner.and_then(|o| o.last_run);
    let duration = match (last_run, last.and_then(|l| l.end_time)) {
        (Some((_, start)), Some(end)) => view::duration(view::seconds(start, end)),
        _ => String::new(),
    };
    PlanRow {
        uid: plan.instance_uid,
        name: plan.name.clone(),
        status: status(plan.status.as_str()),
        server: owner.map_or_else(String::new, |o| o.server_name.clone()),
        company: owner.map_or_else(String::new, |o| o.company_name.clone()),
        plan_type: plan.plan_type.as_str().to_owned(),
        vms: plan.objects_count,
        last_result: last
            .filter(|l| l.end_time.is_some())
            .map(|l| status(l.status.as_str())),
        last_kind: last_run.map_or_else(String::new, |(kind, _)| kind_label(kind).to_owned()),
        last_message: last.and_then(|l| l.message.clone()).unwrap_or_default(),
        ended: view::iso_or_empty(last.and_then(|l| l.end_time)),
        duration,
    }
}

pub fn kind_label(kind: SessionKind) -> &'static str {
    match kind {
        SessionKind::Failover => "Production failover",
        SessionKind::Test => "Test failover",
        SessionKind::Undo => "Undo",
    }
}

pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// Up to this many servers or companies are listed in a filter's drop-down; past it (the large
/// fleet has 10,000 servers) the filter is a text box taking a name.
const MAX_LISTED: usize = 200;

/// A server or company filter: a drop-down of the choices, or a text box for a name.
pub struct Picker {
    pub listed: bool,
    pub choices: Vec<Choice>,
    /// The name of the one chosen now, for the text box.
    pub current: String,
}

pub struct SortHeader {
    pub label: &'static str,
    pub url: String,
    /// `ascending`, `descending` or `none`, for `aria-sort`.
    pub aria: &'static str,
}

#[derive(Template)]
#[template(path = "plans.html")]
struct PlansPage {
    page: Page,
    can_write: bool,
    rows: Vec<PlanRow>,
    total: u64,
    first: u64,
    last: u64,
    statuses: Vec<Choice>,
    types: Vec<Choice>,
    servers: Picker,
    companies: Picker,
    has_companies: bool,
    name: String,
    sort: String,
    descending: bool,
    page_sizes: Vec<Choice>,
    headers: Vec<SortHeader>,
    previous: Option<String>,
    next: Option<String>,
    first_page: String,
    page_number: u32,
    pages: u64,
}

/// `GET /plans`
pub async fn list(
    State(state): State<AppState>,
    operator: Operator,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let fields = Fields::from_query(raw.as_deref());
    let filters = PlanFilters::parse(&fields)?;
    let scope = operator.principal.scope;
    let query = filters.query(scope)?;
    let result = state.store.list_plans(&query).await?;
    let uids: Vec<Uuid> = result.items.iter().map(|p| p.instance_uid).collect();
    let owners = state.store.plan_owners(&uids).await?;
    let rows = result
        .items
        .iter()
        .map(|plan| plan_row(plan, owners.get(&plan.instance_uid)))
        .collect::<Vec<_>>();
    let limit = MAX_LISTED as u32 + 1;
    let servers = state.store.agents().server_names(scope, limit).await?;
    let companies = if scope == Scope::All {
        state.store.company_names(limit).await?
    } else {
        Vec::new()
    };
    // A server or company typed by name (the filter's text box, used where there are too many
    // to list): resolved here, then the canonical URL (by UID) is shown, so it can be shared.
    let mut changes = Vec::new();
    if let Some(name) = fields.get("server_name") {
        let server = state.store.agents().server_by_name(name).await?;
        match server {
            Some(server) if state.store.server_visible(scope, server.uid).await? => {
                changes.push(("server", server.uid.to_string()));
            }
            _ => {
                return Err(PageError::bad_request(format!(
                    "There is no backup server named '{name}'."
                )));
            }
        }
    }
    if let Some(name) = fields.get("company_name") {
        let company = company_named(&state, scope, name).await?.ok_or_else(|| {
            PageError::bad_request(format!("There is no company named '{name}'."))
        })?;
        changes.push(("company", company.0.to_string()));
    }
    if !changes.is_empty() {
        changes.push(("page", String::new()));
        return Ok(Redirect::to(&filters.url_with(&changes)).into_response());
    }
    // The name shown in a text box for the server or company chosen now.
    let server_now = match filters.server {
        Some(uid) if servers.len() > MAX_LISTED => state
            .store
            .agents()
            .server(scope, uid)
            .await?
            .map(|server| server.name),
        _ => None,
    };
    let company_now = match filters.company {
        Some(uid) if companies.len() > MAX_LISTED => state
            .store
            .list_organizations()
            .await?
            .into_iter()
            .find(|o| o.uid == uid)
            .map(|o| o.name),
        _ => None,
    };
    let picker = |choices: Vec<(Uuid, String)>, selected: Option<Uuid>, now: Option<String>| {
        let listed = choices.len() <= MAX_LISTED;
        Picker {
            listed,
            current: now.unwrap_or_default(),
            choices: if listed {
                choices
                    .into_iter()
                    .map(|(uid, name)| Choice {
                        selected: selected == Some(uid),
                        value: uid.to_string(),
                        label: name,
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    };
    let has_companies = !companies.is_empty();
    let servers = picker(servers, filters.server, server_now);
    let companies = picker(companies, filters.company, company_now);
    let pages = result.total.div_ceil(u64::from(filters.per_page)).max(1);
    let first = u64::from(query.paging.offset) + 1;
    let last = u64::from(query.paging.offset) + rows.len() as u64;
    let headers = [
        ("Status", "status"),
        ("Name", "name"),
        ("Type", "type"),
        ("VMs", "vms"),
        ("Ended", "ended"),
    ]
    .into_iter()
    .map(|(label, key)| {
        let current = filters.sort == key;
        let descending = current && !filters.descending;
        SortHeader {
            label,
            url: filters.url_with(&[
                ("sort", key.to_owned()),
                (
                    "dir",
                    if descending {
                        "desc".into()
                    } else {
                        String::new()
                    },
                ),
                ("page", String::new()),
            ]),
            aria: match (current, filters.descending) {
                (false, _) => "none",
                (true, false) => "ascending",
                (true, true) => "descending",
            },
        }
    })
    .collect();
    let page = PlansPage {
        page: frame(&operator, "Failover plans", "plans"),
        can_write: operator.can_write(),
        total: result.total,
        first: if rows.is_empty() { 0 } else { first },
        last,
        rows,
        statuses: PlanStatus::ALL
            .iter()
            .filter(|s| **s != PlanStatus::Unknown)
            .map(|s| Choice {
                value: s.as_str().to_owned(),
                label: s.as_str().to_owned(),
                selected: filters.statuses.iter().any(|f| f == s.as_str()),
            })
            .collect(),
        types: PlanType::ALL
            .iter()
            .filter(|t| **t != PlanType::Unknown)
            .map(|t| Choice {
                value: t.as_str().to_owned(),
                label: t.as_str().to_owned(),
                selected: filters.types.iter().any(|f| f == t.as_str()),
            })
            .collect(),
        servers,
        companies,
        has_companies,
        name: filters.name.clone(),
        sort: filters.sort.clone(),
        descending: filters.descending,
        page_sizes: PAGE_SIZES
            .iter()
            .map(|size| Choice {
                value: size.to_string(),
                label: size.to_string(),
                selected: *size == filters.per_page,
            })
            .collect(),
        headers,
        previous: (filters.page > 1)
            .then(|| filters.url_with(&[("page", (filters.page - 1).to_string())])),
        next: (u64::from(filters.page) < pages)
            .then(|| filters.url_with(&[("page", (filters.page + 1).to_string())])),
        first_page: filters.url_with(&[("page", String::new())]),
        page_number: filters.page,
        pages,
    };
    Ok(view::render(StatusCode::OK, &page))
}

/// A company by name, any case (companies are few next to plans; only a typed name asks).
async fn company_named(
    state: &AppState,
    scope: Scope,
    name: &str,
) -> Result<Option<(Uuid, String)>, PageError> {
    if scope != Scope::All {
        return Ok(None);
    }
    Ok(state
        .store
        .list_organizations()
        .await?
        .into_iter()
        .find(|o| {
            o.kind == standby_fleet::OrganizationKind::Company && o.name.eq_ignore_ascii_case(name)
        })
        .map(|o| (o.uid, o.name)))
}

/// What a bulk form asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkAction {
    Test,
    Production,
    Undo,
}

impl BulkAction {
    fn parse(text: Option<&str>) -> Option<BulkAction> {
        match text {
            Some("test") => Some(BulkAction::Test),
            Some("start") => Some(BulkAction::Production),
            Some("undo") => Some(BulkAction::Undo),
            _ => None,
        }
    }
}

/// `POST /plans/bulk`: a test starts at once; a production start, or an undo of any production
/// run among the plans, first shows what will happen and needs "Confirm".
pub async fn bulk(
    State(state): State<AppState>,
    operator: Operator,
    body: Bytes,
) -> Result<Response, PageError> {
    let fields = Fields::from_body(&body);
    operator.check_csrf(&fields)?;
    operator.check_write()?;
    let action = BulkAction::parse(fields.get("action")).ok_or_else(|| {
        PageError::bad_request("Choose Start, Test or Undo for the selected plans.")
    })?;
    let mut uids: Vec<Uuid> = Vec::new();
    for text in fields.all("plan") {
        let uid = view::parse_uid(text, "plan")?;
        // A plan named twice is started once.
        if !uids.contains(&uid) {
            uids.push(uid);
        }
    }
    if uids.is_empty() {
        return Err(PageError::bad_request("Select at least one plan."));
    }
    if uids.len() > MAX_BULK {
        return Err(PageError::bad_request(format!(
            "At most {MAX_BULK} plans can be started or undone at once."
        )));
    }
    let scope = operator.principal.scope;
    let mut plans = Vec::with_capacity(uids.len());
    for uid in &uids {
        let plan =
            state.store.get_plan(scope, *uid).await?.ok_or_else(|| {
                PageError::not_found(format!("Failover plan {uid} was not found."))
            })?;
        plans.push(plan);
    }
    let owners = state.store.plan_owners(&uids).await?;
    let mut production_undo = false;
    if action == BulkAction::Undo {
        for uid in &uids {
            if crate::plan::runs_in_production(&state, *uid).await? {
                production_undo = true;
                break;
            }
        }
    }
    let needs_confirmation = action == BulkAction::Production || production_undo;
    if needs_confirmation && fields.get("confirm") != Some("yes") {
        let rows: Vec<PlanRow> = plans
            .iter()
            .map(|plan| plan_row(plan, owners.get(&plan.instance_uid)))
            .collect();
        let vms: i64 = rows.iter().map(|r| i64::from(r.vms)).sum();
        let (heading, consequence, action_name) = if action == BulkAction::Production {
            (
                format!(
                    "Start a production failover of {} plans ({vms} VMs)?",
                    rows.len()
                ),
                "Each VM's replica is powered on in production from its latest restore point. This is not a test: the production network is used.",
                "start",
            )
        } else {
            (
                format!(
                    "Undo {} plans ({vms} VMs), production failovers among them?",
                    rows.len()
                ),
                "Replicas running in production are powered off and the changes made on them since the failover are discarded.",
                "undo",
            )
        };
        let mut hidden = vec![("action".to_owned(), action_name.to_owned())];
        hidden.extend(uids.iter().map(|uid| ("plan".to_owned(), uid.to_string())));
        let confirm = Confirmation {
            page: frame(&operator, heading.clone(), "plans"),
            heading,
            consequence: consequence.to_owned(),
            columns: vec![
                "Plan",
                "Status",
                "Last run",
                "Backup server",
                "Company",
                "VMs",
            ],
            rows: rows
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        r.status.word.clone(),
                        r.last_kind.clone(),
                        r.server.clone(),
                        r.company.clone(),
                        r.vms.to_string(),
                    ]
                })
                .collect(),
            action_url: "/plans/bulk".to_owned(),
            hidden,
            cancel_url: "/plans".to_owned(),
        };
        return Ok(view::render(StatusCode::OK, &confirm));
    }
    let kind = match action {
        BulkAction::Test => SessionKind::Test,
        BulkAction::Production => SessionKind::Failover,
        BulkAction::Undo => SessionKind::Undo,
    };
    let mut started = Vec::new();
    let mut refused = Vec::new();
    for plan in &plans {
        match queue_for(&state, &operator, plan.instance_uid, kind, None).await {
            Ok(()) => started.push(plan.instance_uid),
            Err(error) => refused.push(Refusal {
                plan: plan.name.clone(),
                status: error.status,
                reason: error.error.message.clone(),
            }),
        }
    }
    let live_url = live_url(&started);
    if refused.is_empty() {
        return Ok(Redirect::to(&live_url).into_response());
    }
    // Some were refused: say which and why here (never through the URL, which anyone can
    // write), with the live view of those that did start.
    let status = if started.is_empty() {
        StatusCode::from_u16(refused[0].status).unwrap_or(StatusCode::CONFLICT)
    } else {
        StatusCode::OK
    };
    let page = BulkResult {
        page: frame(&operator, "Bulk action", "plans"),
        started: started.len(),
        live_url: (!started.is_empty()).then_some(live_url),
        refused,
    };
    Ok(view::render(status, &page))
}

/// A plan a bulk action could not start or undo, and why.
pub struct Refusal {
    pub plan: String,
    pub status: u16,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "bulk_result.html")]
struct BulkResult {
    page: Page,
    started: usize,
    live_url: Option<String>,
    refused: Vec<Refusal>,
}

fn live_url(plans: &[Uuid]) -> String {
    let query: Vec<(&str, String)> = plans.iter().map(|p| ("plan", p.to_string())).collect();
    format!(
        "/live?{}",
        serde_urlencoded::to_string(&query).unwrap_or_default()
    )
}

/// Queues a session through the API's own path (state machine, async action, engine wake-up),
/// audited as the API audits its writes.
pub async fn queue_for(
    state: &AppState,
    operator: &Operator,
    plan: Uuid,
    kind: SessionKind,
    point: Option<standby_model::Timestamp>,
) -> Result<(), ApiError> {
    let mut query = Vec::new();
    if let Some(point) = point {
        query.push(("dateTime", point.to_wire()));
    }
    if kind == SessionKind::Test {
        query.push(("test", "true".to_owned()));
    }
    let raw = serde_urlencoded::to_string(&query).unwrap_or_default();
    let params = standby_api::params::QueryParams::parse(Some(&raw))?;
    let result = queue_session(state, &operator.principal, None, plan, kind, point, &params)
        .await
        .map(|_| ());
    let action = if kind == SessionKind::Undo {
        AuditAction::PlanUndo
    } else {
        AuditAction::PlanStart
    };
    crate::audit::record(
        state,
        operator,
        action,
        plan.to_string(),
        kind_label(kind),
        &result,
    )
    .await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(query: &str) -> Result<PlanFilters, PageError> {
        PlanFilters::parse(&Fields::from_query(Some(query)))
    }

    #[test]
    fn the_url_round_trips() {
        let parsed = filters(
            "status=failed&status=Ready&type=Cloud&q=contoso&sort=vms&dir=desc&per=100&page=3",
        )
        .unwrap();
        assert_eq!(parsed.statuses, vec!["Failed", "Ready"]);
        assert_eq!(parsed.types, vec!["Cloud"]);
        assert_eq!(parsed.name, "contoso");
        assert!(parsed.descending);
        let again = filters(parsed.url_with(&[]).trim_start_matches("/plans?")).unwrap();
        assert_eq!(again, parsed);
        let query = parsed.query(Scope::All).unwrap();
        assert_eq!(query.paging.offset, 200);
        assert_eq!(query.paging.limit, 100);
    }

    #[test]
    fn bad_input_is_refused_with_400() {
        for bad in [
            "status=Sleeping",
            "type=Orbital",
            "sort=password",
            "per=7",
            "page=-1",
            "server=not-a-uid",
            "company=1",
        ] {
            let response = filters(bad).unwrap_err();
            assert_eq!(response.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        let long = format!("q={}", "x".repeat(201));
        assert_eq!(filters(&long).unwrap_err().status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_company_narrows_a_provider_but_never_widens_a_company_user() {
        let company = Uuid::now_v7();
        let other = Uuid::now_v7();
        let parsed = filters(&format!("company={company}")).unwrap();
        assert_eq!(
            parsed.query(Scope::All).unwrap().scope,
            Scope::Organization(company)
        );
        assert_eq!(
            parsed.query(Scope::Organization(other)).unwrap().scope,
            Scope::Organization(other)
        );
    }
}

//! The query compiler never emits SQL past a backend's limits: the largest filters the parser
//! accepts (1,000 expressions in one group, 10,000 values in one set, groups nested 32 deep) run
//! on the store under test, SQLite or PostgreSQL, without a database error. No HTTP in between,
//! so no request-line limit hides a filter.

mod common;

use serde_json::{Value, json};
use standby_model::{ClientVersion, Timestamp};
use standby_query::{Filter, Paging, SortOrder};
use standby_store::catalog::{OBJECT_CATALOG, PLAN_CATALOG};
use standby_store::{ListQuery, Scope};

fn query(filter: Filter) -> ListQuery {
    ListQuery {
        scope: Scope::All,
        server: None,
        plan: None,
        filter,
        order: SortOrder::parse(None, &PLAN_CATALOG, ClientVersion::NEWEST).unwrap(),
        paging: Paging {
            limit: 10,
            offset: 0,
        },
    }
}

fn leaves(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| json!({"property": "name", "operation": "equals", "value": format!("n{i}")}))
        .collect()
}

#[tokio::test]
async fn the_largest_accepted_filters_run_on_the_backend() {
    let store = common::fresh_store().await;
    store
        .import_fleet(&standby_fleet::demo::demo_fleet(Timestamp::now()))
        .await
        .unwrap();
    let distinct: Vec<String> = (0..9_000).map(|i| format!("v{i}")).collect();
    let filters = [
        (
            "or of 999",
            json!([{"operation": "or", "items": leaves(999)}]),
        ),
        (
            "and of 999",
            json!([{"operation": "and", "items": leaves(999)}]),
        ),
        (
            "exclusiveOr of 999",
            json!([{"operation": "exclusiveOr", "items": leaves(999)}]),
        ),
        ("999 at the top", Value::Array(leaves(999))),
        (
            "superset of 9,000",
            json!([{"property": "name", "operation": "superset", "value": distinct}]),
        ),
        (
            "superset of one value 9,000 times",
            json!([{"property": "name", "operation": "superset", "value": vec!["a"; 9_000]}]),
        ),
        (
            "in of 9,000",
            json!([{"property": "name", "operation": "in", "value": distinct}]),
        ),
        (
            "subset of 9,000",
            json!([{"property": "name", "operation": "subset", "value": distinct}]),
        ),
    ];
    for (name, filter) in filters {
        for catalog in [&PLAN_CATALOG, &OBJECT_CATALOG] {
            let parsed = Filter::parse(&filter.to_string(), catalog, ClientVersion::NEWEST)
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
            let result = if catalog.resource == PLAN_CATALOG.resource {
                store.list_plans(&query(parsed)).await.map(|p| p.total)
            } else {
                let mut q = query(parsed);
                q.order = SortOrder::parse(None, &OBJECT_CATALOG, ClientVersion::NEWEST).unwrap();
                store.list_objects(&q).await.map(|p| p.total)
            };
            assert!(result.is_ok(), "{name} on {}: {result:?}", catalog.resource);
        }
    }
    // 32 nested groups of every kind, each holding a long group of its own.
    let mut nested = json!({"operation": "or", "items": leaves(20)});
    for level in 0..31 {
        let operation = ["not", "exclusiveOr", "and", "or"][level % 4];
        nested = json!({"operation": operation, "items": [nested, leaves(1)[0]]});
    }
    let parsed = Filter::parse(
        &json!([nested]).to_string(),
        &PLAN_CATALOG,
        ClientVersion::NEWEST,
    )
    .expect("32 levels are accepted");
    store.list_plans(&query(parsed)).await.expect("and run");
}

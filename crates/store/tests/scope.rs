//! Company scope in SQL: a company sees plans on its own servers and Tenant plans of its tenants.

mod common;

use standby_fleet::demo::demo_fleet;
use standby_model::Timestamp;
use standby_query::{Filter, Paging, SortOrder};
use standby_store::catalog::{OBJECT_CATALOG, PLAN_CATALOG};
use standby_store::{ListQuery, Scope};

#[tokio::test]
async fn a_company_sees_its_own_plans_and_objects_only() {
    let fleet = demo_fleet(Timestamp::now());
    let store = common::fresh_store().await;
    store.import_fleet(&fleet).await.unwrap();
    let company = fleet
        .organizations
        .iter()
        .find(|o| o.name == "Contoso Ltd")
        .unwrap();
    let own_servers: Vec<_> = fleet
        .servers
        .iter()
        .filter(|s| s.organization_uid == company.uid)
        .map(|s| s.uid)
        .collect();
    let own_tenants: Vec<_> = fleet
        .tenants
        .iter()
        .filter(|t| t.organization_uid == company.uid)
        .map(|t| t.uid)
        .collect();
    let expected: Vec<_> = fleet
        .plans
        .iter()
        .filter(|p| {
            own_servers.contains(&p.backup_server_uid)
                || p.tenant_uid.is_some_and(|t| own_tenants.contains(&t))
        })
        .map(|p| p.uid)
        .collect();
    assert!(
        expected.len() >= 6 + 3,
        "Local plans on its server and its Tenant plans"
    );

    let query = |catalog| ListQuery {
        scope: Scope::Organization(company.uid),
        server: None,
        plan: None,
        filter: Filter::And(vec![]),
        order: SortOrder::default_for(catalog),
        paging: Paging {
            limit: 500,
            offset: 0,
        },
    };
    let page = store.list_plans(&query(&PLAN_CATALOG)).await.unwrap();
    assert_eq!(page.total as usize, expected.len());
    let mut got: Vec<_> = page.items.iter().map(|p| p.instance_uid).collect();
    let mut want = expected.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);

    let objects = store.list_objects(&query(&OBJECT_CATALOG)).await.unwrap();
    assert!(objects.items.iter().all(|o| expected.contains(&o.plan_uid)));
    assert_eq!(
        objects.total as usize,
        fleet
            .objects
            .iter()
            .filter(|o| expected.contains(&o.plan_uid))
            .count()
    );

    let other = fleet
        .plans
        .iter()
        .find(|p| !expected.contains(&p.uid))
        .unwrap();
    assert!(
        store
            .get_plan(Scope::Organization(company.uid), other.uid)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_plan(Scope::All, other.uid)
            .await
            .unwrap()
            .is_some()
    );
    let foreign_server = fleet
        .servers
        .iter()
        .find(|s| s.name == "fabrikam-vbr01")
        .unwrap();
    assert!(
        !store
            .server_visible(Scope::Organization(company.uid), foreign_server.uid)
            .await
            .unwrap()
    );
    assert!(
        store
            .server_visible(Scope::Organization(company.uid), own_servers[0])
            .await
            .unwrap()
    );
}

//! `contains` under ignorecase goes through the names' trigram indexes, which triggers (SQLite)
//! or the index itself (PostgreSQL) keep in step with renames.

mod common;

use standby_fleet::demo::demo_fleet;
use standby_model::{ClientVersion, Timestamp};
use standby_query::{Filter, Paging, SortOrder};
use standby_store::catalog::OBJECT_CATALOG;
use standby_store::{ListQuery, Scope, Store};
use uuid::Uuid;

async fn containing(store: &dyn Store, needle: &str) -> Vec<(Uuid, String)> {
    let filter = format!(
        r#"[{{"property":"name","operation":"contains","value":"{needle}","collation":"ignorecase"}}]"#
    );
    let query = ListQuery {
        scope: Scope::All,
        server: None,
        plan: None,
        filter: Filter::parse(&filter, &OBJECT_CATALOG, ClientVersion::NEWEST).unwrap(),
        order: SortOrder::default_for(&OBJECT_CATALOG),
        paging: Paging {
            limit: 500,
            offset: 0,
        },
    };
    let page = store.list_objects(&query).await.unwrap();
    assert_eq!(page.total as usize, page.items.len());
    page.items
        .into_iter()
        .map(|o| (o.instance_uid, o.name))
        .collect()
}

#[tokio::test]
async fn renamed_vms_are_found_by_their_new_name_only() {
    let mut fleet = demo_fleet(Timestamp::now());
    let store = common::fresh_store().await;
    store.import_fleet(&fleet).await.unwrap();
    let vm = fleet.objects[0].uid;
    let old_name = fleet.objects[0].name.clone();
    let renamed = (vm, "Ledger-DB \"primary\" 100%".to_owned());
    assert!(
        containing(&*store, &old_name)
            .await
            .contains(&(vm, old_name.clone()))
    );

    // Re-importing with a new name updates the row in place (an upsert).
    fleet.objects[0].name = renamed.1.clone();
    store.import_fleet(&fleet).await.unwrap();
    assert!(
        containing(&*store, &old_name)
            .await
            .iter()
            .all(|(uid, _)| *uid != vm)
    );
    for needle in ["ledger-db", "\\\"PRIMARY\\\"", "100%", "r-d", "0%"] {
        assert_eq!(
            containing(&*store, needle).await,
            vec![renamed.clone()],
            "{needle}"
        );
    }
}

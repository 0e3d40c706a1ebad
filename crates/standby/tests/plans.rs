//! Black-box: the six GET endpoints over real HTTP against the demo fleet.

mod common;

use common::*;
use serde_json::{Value, json};

fn names(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

fn is_wire_timestamp(value: &Value) -> bool {
    let text = value.as_str().unwrap_or("");
    // 2026-11-27T10:15:30.1234567+00:00
    text.len() == 33
        && text.ends_with("+00:00")
        && text.as_bytes()[19] == b'.'
        && text[20..27].bytes().all(|b| b.is_ascii_digit())
}

#[tokio::test]
async fn list_envelope_paging_and_default_order() {
    let app = TestApp::demo().await;
    let (status, body) = app.get_json(PLANS, &[]).await;
    assert_eq!(status, 200);
    let plans = body["data"].as_array().unwrap();
    assert_eq!(
        body["meta"]["pagingInfo"],
        json!({"total": 40, "count": 40, "offset": 0})
    );
    assert!(
        body.get("errors").is_none(),
        "success bodies carry no errors key"
    );
    // Default order: name, then instanceUid.
    let mut sorted = plans.clone();
    sorted.sort_by(|a, b| {
        (a["name"].as_str(), a["instanceUid"].as_str())
            .cmp(&(b["name"].as_str(), b["instanceUid"].as_str()))
    });
    assert_eq!(&sorted, plans);
    // Vendor key order and types.
    let keys: Vec<&str> = plans[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "instanceUid",
            "originalUid",
            "backupServerUid",
            "name",
            "type",
            "status",
            "tenantUid",
            "objectsCount",
            "preFailoverScriptEnabled",
            "preFailoverCommand",
            "postFailoverCommand",
            "postFailoverScriptEnabled",
            "lastSession"
        ]
    );
    for plan in plans {
        assert_eq!(
            plan["tenantUid"].is_string(),
            plan["type"] == "Tenant",
            "{plan}"
        );
        if let Some(end) = plan["lastSession"].get("endTime") {
            assert!(is_wire_timestamp(end), "{end}");
        }
    }

    let (_, page) = app
        .get_json(PLANS, &[("limit", "7"), ("offset", "35")])
        .await;
    assert_eq!(
        page["meta"]["pagingInfo"],
        json!({"total": 40, "count": 5, "offset": 35})
    );
    assert_eq!(page["data"][0], plans[35]);
    let (status, past) = app.get_json(PLANS, &[("offset", "1000")]).await;
    assert_eq!(status, 200);
    assert_eq!(past["data"], json!([]));
    assert_eq!(past["meta"]["pagingInfo"]["count"], 0);
}

#[tokio::test]
async fn paging_bounds_are_400_with_the_parameter_named() {
    let app = TestApp::demo().await;
    for (query, parameter) in [
        (("limit", "0"), "limit"),
        (("limit", "501"), "limit"),
        (("limit", "abc"), "limit"),
        (("offset", "-1"), "offset"),
        (("offset", "2147483648"), "offset"),
    ] {
        let (status, body) = app.get_json(PLANS, &[query]).await;
        assert_error(status, &body, 400, 400, Some(parameter));
    }
    let (status, _) = app
        .get_json(PLANS, &[("limit", "500"), ("offset", "2147483647")])
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn filters_every_operation_and_grouping() {
    let app = TestApp::demo().await;
    let all = app.all_plans().await;
    let count =
        |predicate: &dyn Fn(&Value) -> bool| all.iter().filter(|p| predicate(p)).count() as u64;
    let total = |body: &Value| body["meta"]["pagingInfo"]["total"].as_u64().unwrap();
    let filter = |value: Value| value.to_string();

    let cases: Vec<(Value, u64)> = vec![
        (
            json!([{"property": "type", "operation": "equals", "value": "Tenant"}]),
            count(&|p| p["type"] == "Tenant"),
        ),
        (
            json!([{"property": "status", "operation": "notEquals", "value": "Ready"}]),
            count(&|p| p["status"] != "Ready"),
        ),
        (
            json!([{"property": "type", "operation": "in", "value": ["Local", "Cloud"]}]),
            count(&|p| p["type"] != "Tenant"),
        ),
        (
            json!([{"property": "objectsCount", "operation": "greaterThanOrEqual", "value": 10}]),
            count(&|p| p["objectsCount"].as_i64() >= Some(10)),
        ),
        (
            json!([{"property": "objectsCount", "operation": "lessThan", "value": 8}]),
            count(&|p| p["objectsCount"].as_i64() < Some(8)),
        ),
        (
            json!([{"property": "name", "operation": "contains", "value": "contoso", "collation": "ignorecase"}]),
            count(&|p| {
                p["name"]
                    .as_str()
                    .unwrap()
                    .to_lowercase()
                    .contains("contoso")
            }),
        ),
        (
            json!([{"property": "name", "operation": "contains", "value": "contoso"}]),
            0,
        ),
        (
            json!([{"property": "status", "operation": "equals", "value": "ready", "collation": "ignorecase"}]),
            count(&|p| p["status"] == "Ready"),
        ),
        (
            json!([{"property": "lastSession.status", "operation": "equals", "value": "Failed"}]),
            count(&|p| p["lastSession"]["status"] == "Failed"),
        ),
        (
            json!([{"property": "lastSession", "operation": "equals", "value": null}]),
            count(&|p| p["lastSession"].is_null()),
        ),
        (
            json!([{"property": "tenantUid", "operation": "notEquals", "value": null}]),
            count(&|p| !p["tenantUid"].is_null()),
        ),
        (
            json!([{"property": "preFailoverScriptEnabled", "operation": "equals", "value": true}]),
            count(&|p| p["preFailoverScriptEnabled"] == true),
        ),
        (
            json!([{"property": "type", "operation": "subset", "value": ["Local"]}]),
            count(&|p| p["type"] == "Local"),
        ),
        (
            json!([{"property": "type", "operation": "superset", "value": []}]),
            40,
        ),
        (
            json!([{"operation": "or", "items": [
            {"property": "type", "operation": "equals", "value": "Local"},
            {"property": "status", "operation": "equals", "value": "Failed"}]}]),
            count(&|p| p["type"] == "Local" || p["status"] == "Failed"),
        ),
        (
            json!([{"operation": "exclusiveOr", "items": [
            {"property": "type", "operation": "equals", "value": "Local"},
            {"property": "status", "operation": "equals", "value": "Ready"}]}]),
            count(&|p| (p["type"] == "Local") != (p["status"] == "Ready")),
        ),
        (
            json!([{"operation": "not", "items": [{"operation": "and", "items": [
            {"property": "type", "operation": "equals", "value": "Local"},
            {"operation": "or", "items": [{"property": "status", "operation": "equals", "value": "Ready"}]}]}]}]),
            count(&|p| !(p["type"] == "Local" && p["status"] == "Ready")),
        ),
        // A client that sends explicit nulls and one bare object (old VAC style).
        (
            json!({"property": "type", "operation": "equals", "value": "Cloud", "collation": null, "items": null}),
            count(&|p| p["type"] == "Cloud"),
        ),
    ];
    for (expression, expected) in cases {
        let (status, body) = app
            .get_json(PLANS, &[("filter", &filter(expression.clone()))])
            .await;
        assert_eq!(status, 200, "{expression}: {body}");
        assert_eq!(total(&body), expected, "{expression}");
    }
}

#[tokio::test]
async fn bad_filters_sorts_and_selects_are_400_naming_the_parameter() {
    let app = TestApp::demo().await;
    for (parameter, value) in [
        ("filter", "[{"),
        ("filter", "\"name\""),
        (
            "filter",
            r#"[{"property":"nope","operation":"equals","value":"x"}]"#,
        ),
        (
            "filter",
            r#"[{"property":"name","operation":"resembles","value":"x"}]"#,
        ),
        ("filter", r#"[{"property":"name","value":"x"}]"#),
        (
            "filter",
            r#"[{"property":"objectsCount","operation":"equals","value":"many"}]"#,
        ),
        (
            "filter",
            r#"[{"property":"objectsCount","operation":"contains","value":"1"}]"#,
        ),
        (
            "filter",
            r#"[{"property":"instanceUid","operation":"equals","value":"not-a-uuid"}]"#,
        ),
        (
            "filter",
            r#"[{"property":"status","operation":"equals","value":"Sleeping"}]"#,
        ),
        (
            "filter",
            r#"[{"property":"type","operation":"in","value":"Local"}]"#,
        ),
        (
            "filter",
            r#"[{"property":"name","operation":"equals","value":"x","collation":"klingon"}]"#,
        ),
        ("filter", r#"[{"operation":"or"}]"#),
        (
            "filter",
            r#"[{"property":"lastSession.endTime","operation":"lessThan","value":"yesterday"}]"#,
        ),
        (
            "filter",
            r#"[{"property":"lastSession.detailedMessages","operation":"equals","value":null}]"#,
        ),
        ("sort", "{{"),
        ("sort", r#"[{"property":"nope","direction":"ascending"}]"#),
        ("sort", r#"[{"property":"name","direction":"sideways"}]"#),
        ("sort", r#"[{"direction":"ascending"}]"#),
        ("select", "[1]"),
        ("select", r#"[{"propertyPath":"nope"}]"#),
    ] {
        let (status, body) = app.get_json(PLANS, &[(parameter, value)]).await;
        assert_error(status, &body, 400, 400, Some(parameter));
    }
}

#[tokio::test]
async fn sort_and_collations() {
    let app = TestApp::demo().await;
    let sort = |value: Value| value.to_string();
    let (_, body) = app
        .get_json(PLANS, &[("sort", &sort(json!([{"property": "objectsCount", "direction": "descending"}, {"property": "name", "direction": "ascending"}]))), ("limit", "500")])
        .await;
    let plans = body["data"].as_array().unwrap();
    for pair in plans.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let key = |p: &Value| {
            (
                std::cmp::Reverse(p["objectsCount"].as_i64().unwrap()),
                p["name"].as_str().unwrap().to_owned(),
            )
        };
        assert!(key(a) <= key(b), "{} before {}", a["name"], b["name"]);
    }

    // Natural order on VM names: "-dc2" sorts before "-dc10" only under lexicographic.
    let filter =
        json!([{"property": "name", "operation": "contains", "value": "cdr01-"}]).to_string();
    let (_, ordinal) = app.get_json(OBJECTS, &[("filter", &filter), ("sort", &sort(json!([{"property": "name", "direction": "descending", "collation": "lexicographic"}])))]).await;
    let lexicographic = names(&ordinal);
    assert!(!lexicographic.is_empty());
    let mut expected = lexicographic.clone();
    expected.sort_by_key(|name| std::cmp::Reverse(standby_natural(name)));
    assert_eq!(lexicographic, expected);
}

/// Natural order for the assertion above, written independently: digit runs as numbers.
fn standby_natural(text: &str) -> Vec<(u8, u64, String)> {
    let mut out = Vec::new();
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            if !digits.is_empty() {
                out.push((0, digits.parse().unwrap(), String::new()));
                digits.clear();
            }
            out.push((1, 0, c.to_string()));
        }
    }
    if !digits.is_empty() {
        out.push((0, digits.parse().unwrap(), String::new()));
    }
    out
}

#[tokio::test]
async fn select_keeps_the_envelope_and_nests_dotted_paths() {
    let app = TestApp::demo().await;
    let select =
        json!([{"propertyPath": "name"}, {"propertyPath": "lastSession.status"}]).to_string();
    let (status, body) = app
        .get_json(PLANS, &[("select", &select), ("limit", "500")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["meta"]["pagingInfo"]["total"], 40);
    for plan in body["data"].as_array().unwrap() {
        let object = plan.as_object().unwrap();
        assert!(
            object.contains_key("name") && object.contains_key("lastSession") && object.len() == 2,
            "{plan}"
        );
        match &plan["lastSession"] {
            Value::Null => {}
            session => assert_eq!(
                session.as_object().unwrap().keys().collect::<Vec<_>>(),
                ["status"]
            ),
        }
    }
}

#[tokio::test]
async fn get_one_plan_and_its_errors() {
    let app = TestApp::demo().await;
    let plan = app.all_plans().await.remove(3);
    let uid = plan["instanceUid"].as_str().unwrap();
    let (status, body) = app.get_json(&format!("{PLANS}/{uid}"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], plan);
    assert!(body.get("meta").is_none());
    let (_, selected) = app
        .get_json(
            &format!("{PLANS}/{}", uid.to_uppercase()),
            &[("select", r#"[{"propertyPath":"status"}]"#)],
        )
        .await;
    assert_eq!(selected["data"], json!({"status": plan["status"]}));

    let missing = "4b1a7f0e-0000-4000-8000-000000000000";
    let (status, body) = app.get_json(&format!("{PLANS}/{missing}"), &[]).await;
    assert_error(status, &body, 404, 404, None);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains(missing)
    );
    let (status, body) = app.get_json(&format!("{PLANS}/not-a-uuid"), &[]).await;
    assert_error(status, &body, 400, 400, Some("planUid"));
}

#[tokio::test]
async fn plans_and_objects_by_server() {
    let app = TestApp::demo().await;
    let plans = app.all_plans().await;
    let server = plans[0]["backupServerUid"].as_str().unwrap();
    let (status, body) = app
        .get_json(
            &format!("/api/v3/infrastructure/backupServers/{server}/failoverplans"),
            &[("limit", "500")],
        )
        .await;
    assert_eq!(status, 200);
    let expected = plans
        .iter()
        .filter(|p| p["backupServerUid"] == server)
        .count();
    assert_eq!(body["data"].as_array().unwrap().len(), expected);
    let (status, body) = app
        .get_json(
            &format!("/api/v3/infrastructure/backupServers/{server}/failoverplans/objects"),
            &[("limit", "500")],
        )
        .await;
    assert_eq!(status, 200);
    let vms: u64 = plans
        .iter()
        .filter(|p| p["backupServerUid"] == server)
        .map(|p| p["objectsCount"].as_u64().unwrap())
        .sum();
    assert_eq!(body["meta"]["pagingInfo"]["total"], vms);
    assert!(
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["backupServerUid"] == server)
    );

    for path in [
        "/api/v3/infrastructure/backupServers/4b1a7f0e-0000-4000-8000-000000000000/failoverplans",
        "/api/v3/infrastructure/backupServers/4b1a7f0e-0000-4000-8000-000000000000/failoverplans/objects",
    ] {
        let (status, body) = app.get_json(path, &[]).await;
        assert_error(status, &body, 404, 404, None);
    }
    let (status, body) = app
        .get_json(
            "/api/v3/infrastructure/backupServers/xyz/failoverplans",
            &[],
        )
        .await;
    assert_error(status, &body, 400, 400, Some("backupServerUid"));
}

#[tokio::test]
async fn objects_lists_and_restore_sessions() {
    let app = TestApp::demo().await;
    let (status, body) = app.get_json(OBJECTS, &[("limit", "500")]).await;
    assert_eq!(status, 200);
    let total = body["meta"]["pagingInfo"]["total"].as_u64().unwrap();
    assert!(total >= 300);
    let objects = body["data"].as_array().unwrap();
    let keys: Vec<&str> = objects[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        &keys[..7],
        [
            "instanceUid",
            "planUid",
            "name",
            "hostName",
            "folderName",
            "path",
            "backupServerUid"
        ]
    );
    let mut with_session = 0;
    for object in objects {
        assert!(object["hostName"].is_string() && object["folderName"].is_string());
        match object.get("restoreSession") {
            None => {}
            Some(Value::Null) => panic!("restoreSession must be omitted, not null: {object}"),
            Some(session) => {
                with_session += 1;
                assert!(session["backupStatus"].is_string());
                assert!(is_wire_timestamp(&session["startDateTime"]));
            }
        }
    }
    assert!(with_session > 0 && with_session < objects.len());
    let filter = json!([{"property": "restoreSession.backupStatus", "operation": "equals", "value": "Failed"}]).to_string();
    let (_, failed) = app.get_json(OBJECTS, &[("filter", &filter)]).await;
    assert!(failed["meta"]["pagingInfo"]["total"].as_u64().unwrap() >= 1);
    assert!(
        failed["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["restoreSession"]["backupStatus"] == "Failed")
    );

    let plan = &app.all_plans().await[0];
    let uid = plan["instanceUid"].as_str().unwrap();
    let (status, body) = app.get_json(&format!("{PLANS}/{uid}/objects"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["meta"]["pagingInfo"]["total"], plan["objectsCount"]);
    assert!(
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["planUid"] == uid)
    );
    let (status, body) = app
        .get_json(
            &format!("{PLANS}/4b1a7f0e-0000-4000-8000-000000000000/objects"),
            &[],
        )
        .await;
    assert_error(status, &body, 404, 404, None);
}

#[tokio::test]
async fn client_versions() {
    let app = TestApp::demo().await;
    for (version, has_last_session) in [
        ("3.6.1", true),
        ("3.6.2", true),
        ("3.7", true),
        ("3.6", false),
        ("3.5", false),
    ] {
        let (status, body) = send(app.get(PLANS).header("X-Client-Version", version)).await;
        assert_eq!(status, 200, "{version}");
        assert_eq!(
            body["data"][0].get("lastSession").is_some(),
            has_last_session,
            "{version}"
        );
    }
    for version in ["3.4", "2", "latest"] {
        let (status, body) = send(app.get(PLANS).header("X-Client-Version", version)).await;
        assert_error(status, &body, 400, 400, Some("X-Client-Version"));
    }
    // A 3.6 client cannot filter on what it cannot see.
    let filter =
        json!([{"property": "lastSession.status", "operation": "equals", "value": "Failed"}])
            .to_string();
    let (status, body) = send(
        app.get(PLANS)
            .header("X-Client-Version", "3.6")
            .query(&[("filter", filter)]),
    )
    .await;
    assert_error(status, &body, 400, 400, Some("filter"));
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_envelope() {
    let app = TestApp::demo().await;
    let (status, body) = app.get_json("/api/v3/infrastructure/nothing", &[]).await;
    assert_error(status, &body, 404, 404, None);
    let (status, body) = send(app.http.delete(app.url(PLANS)).bearer_auth(&app.token)).await;
    assert_error(status, &body, 405, 405, None);
    let (status, body) = send(
        app.http
            .put(app.url(&format!("{PLANS}/4b1a7f0e-0000-4000-8000-000000000000")))
            .bearer_auth(&app.token),
    )
    .await;
    assert_error(status, &body, 405, 405, None);
}

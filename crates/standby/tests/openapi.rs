//! Black-box: the served OpenAPI document is what the router serves, and its VSPC part is the
//! contract's model (`../shared/contract/vspc-failover-plans.openapi.json`).

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::Value;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "4b1a7f0e-0000-4000-8000-000000000000"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn operations(document: &Value) -> BTreeSet<(String, String)> {
    document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| METHODS.contains(&k.to_uppercase().as_str()))
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

#[tokio::test]
async fn the_document_and_the_router_agree() {
    let app = TestApp::demo().await;
    let (status, document) = send(app.http.get(app.url("/api/v3/openapi.json"))).await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.0.3");

    let documented = operations(&document);
    let served: BTreeSet<(String, String)> = standby_api::served_operations()
        .into_iter()
        .map(|(method, path)| (method.to_owned(), path))
        .collect();
    assert_eq!(
        documented.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not registered"
    );
    assert_eq!(
        served.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "registered but not documented"
    );

    let paths: BTreeSet<&String> = documented.iter().map(|(_, path)| path).collect();
    for path in paths {
        let url = app.url(&format!("/api/v3{}", concrete(path)));
        for method in METHODS {
            let declared = documented.contains(&(method.to_owned(), path.clone()));
            let (status, body) = send(app.http.request(method.parse().unwrap(), &url)).await;
            let expected = match (declared, path.as_str()) {
                (false, _) => 405,
                (true, "/token") => 400,
                (true, "/openapi.json") => 200,
                // Authenticated by the token in its body, which must be JSON.
                (true, "/extensions/agent/enroll") => 415,
                // Unauthenticated: 401 from a served route, never 404 or 405.
                (true, _) => 401,
            };
            assert_eq!(status, expected, "{method} {path}: {body}");
        }
    }
    assert!(
        documented.len() >= 20,
        "{} operations documented",
        documented.len()
    );
}

#[tokio::test]
async fn the_vspc_part_is_the_contract() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let vendored =
        std::fs::read_to_string(root.join("crates/api/openapi/vspc-failover-plans.openapi.json"))
            .unwrap();
    // The repo's copy must be the contract's own, where the contract is beside the repo (as in
    // development and CI); a clone on its own still checks the served document against the copy.
    let shared = root.join("../shared/contract/vspc-failover-plans.openapi.json");
    match std::fs::read_to_string(&shared) {
        Ok(contract) => assert!(
            contract == vendored,
            "crates/api/openapi/vspc-failover-plans.openapi.json differs from {}",
            shared.display()
        ),
        Err(error) => eprintln!(
            "not compared with the contract's own copy: {}: {error}",
            shared.display()
        ),
    }
    let contract_text = vendored;
    let contract: Value = serde_json::from_str(&contract_text).unwrap();

    let app = TestApp::demo().await;
    let (_, served) = send(app.http.get(app.url("/api/v3/openapi.json"))).await;
    // Every contract operation but the one Standby does not serve, unchanged but for the 429
    // Standby adds to /token.
    for (method, path) in operations(&contract) {
        if path == "/asyncActions/{actionId}/requestData" {
            continue;
        }
        let key = method.to_lowercase();
        let mut ours = served["paths"][&path][&key].clone();
        let theirs = &contract["paths"][&path][&key];
        if path == "/token" {
            ours["responses"].as_object_mut().unwrap().remove("429");
        }
        assert_eq!(&ours, theirs, "{method} {path} differs from the contract");
    }
    for (name, schema) in contract["components"]["schemas"].as_object().unwrap() {
        assert_eq!(
            &served["components"]["schemas"][name], schema,
            "schema {name}"
        );
    }
    for (name, parameter) in contract["components"]["parameters"].as_object().unwrap() {
        let mut ours = served["components"]["parameters"][name].clone();
        if name == "XClientVersion" {
            ours["schema"].as_object_mut().unwrap().remove("pattern");
        }
        assert_eq!(&ours, parameter, "parameter {name}");
    }
}

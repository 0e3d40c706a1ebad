//! Black-box: start and undo validate everything a client can get wrong.

mod common;

use common::*;

async fn plan_with_status(app: &TestApp, status: &str) -> String {
    app.all_plans()
        .await
        .into_iter()
        .find(|p| p["status"] == status)
        .expect(status)["instanceUid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn start_validates_its_parameters() {
    let app = TestApp::demo().await;
    let ready = plan_with_status(&app, "Ready").await;
    let start = format!("{PLANS}/{ready}/start");
    let (status, body) = send(app.post(&start).query(&[("dateTime", "2999-01-01")])).await;
    assert_error(status, &body, 400, 9000, Some("dateTime"));
    assert_eq!(
        body["errors"][0]["message"],
        "Failover to a future date cannot be performed."
    );
    let (status, body) = send(app.post(&start).query(&[("dateTime", "last tuesday")])).await;
    assert_error(status, &body, 400, 400, Some("dateTime"));
    let (status, body) = send(app.post(&start).query(&[("test", "sometimes")])).await;
    assert_error(status, &body, 400, 400, Some("test"));
    let (status, body) = send(app.post(&format!(
        "{PLANS}/4b1a7f0e-0000-4000-8000-000000000000/start"
    )))
    .await;
    assert_error(status, &body, 404, 404, None);
    let (status, body) = send(app.post(&format!("{PLANS}/zzz/start"))).await;
    assert_error(status, &body, 400, 400, Some("planUid"));
}

#[tokio::test]
async fn refused_transitions_are_409_naming_the_status() {
    let app = TestApp::demo().await;
    for (status_name, action) in [
        ("Completed", "start"),
        ("Success", "start"),
        ("UndoFailed", "start"),
        ("Ready", "undo"),
    ] {
        let uid = plan_with_status(&app, status_name).await;
        let (status, body) = send(app.post(&format!("{PLANS}/{uid}/{action}"))).await;
        assert_error(status, &body, 409, 1000, None);
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(status_name),
            "{body}"
        );
    }
}

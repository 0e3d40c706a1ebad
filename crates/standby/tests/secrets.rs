//! Black-box: no log line carries a password, token or API key, even at debug level.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[tokio::test]
async fn logs_never_contain_secrets() {
    let temp = tempfile::tempdir().unwrap();
    let log = temp.path().join("server.log");
    let store = TestStore::fresh().await;
    let mut child = Command::new(binary())
        .args(["serve", "--demo", "--listen", "127.0.0.1:18391"])
        .args(store.args())
        .args(["--log-format", "json"])
        .env("STANDBY_ADMIN_USER", ADMIN)
        .env("STANDBY_ADMIN_PASSWORD", PASSWORD)
        .env("STANDBY_DEMO_PASSWORD", DEMO_PASSWORD)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let base = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                line.strip_prefix("standby: listening on ")
                    .map(str::to_owned)
            })
    })
    .await
    .unwrap()
    .expect("a listening line");
    let base = base.as_str();
    let http = http_client();
    let mut ready = false;
    for _ in 0..200 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the server did not become ready");
    let login = |user: &'static str, password: &'static str| {
        http.post(format!("{base}/api/v3/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", user),
                ("password", password),
            ])
            .send()
    };
    let pair: serde_json::Value = login(ADMIN, PASSWORD).await.unwrap().json().await.unwrap();
    let access = pair["access_token"].as_str().unwrap().to_owned();
    let refresh = pair["refresh_token"].as_str().unwrap().to_owned();
    let renewed: serde_json::Value = http
        .post(format!("{base}/api/v3/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let _ = login("contoso-owner", "a wrong password guess").await;
    let _ = http
        .get(format!(
            "{base}/api/v3/infrastructure/backupServers/failoverplans"
        ))
        .bearer_auth(&access)
        .send()
        .await;
    let key_output = Command::new(binary())
        .args(["apikeys", "add", ADMIN])
        .args(store.args())
        .output()
        .unwrap();
    let key = String::from_utf8_lossy(&key_output.stdout)
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    let _ = http
        .get(format!("{base}/api/v3/asyncActions"))
        .bearer_auth(&key)
        .send()
        .await;
    let _ = http
        .get(format!("{base}/api/v3/asyncActions"))
        .bearer_auth("sbk_forged-key-value")
        .send()
        .await;
    let _ = child.kill();
    let _ = child.wait();

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines().count() > 5,
        "the server logged something: {text}"
    );
    assert!(text.contains("token issued") && text.contains("login failed"));
    for secret in [
        PASSWORD,
        DEMO_PASSWORD,
        "a wrong password guess",
        &access,
        &refresh,
        renewed["access_token"].as_str().unwrap(),
        &key,
        "sbk_forged-key-value",
    ] {
        assert!(!text.contains(secret), "a secret reached the log: {secret}");
    }
}

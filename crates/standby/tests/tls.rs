//! Black-box: `--tls-cert`/`--tls-key` serve HTTPS (checked with curl against a throwaway
//! certificate made by openssl); a broken pair refuses to start.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::binary;

fn curl(args: &[&str]) -> (bool, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
    )
}

#[test]
fn serves_https_with_the_given_certificate() {
    let temp = tempfile::tempdir().unwrap();
    let (cert, key) = (temp.path().join("cert.pem"), temp.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args([
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    let mut child = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(temp.path().join("data"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("STANDBY_ADMIN_USER", "admin")
        .env("STANDBY_ADMIN_PASSWORD", "a long admin password")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let url = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            line.strip_prefix("standby: listening on ")
                .map(str::to_owned)
        })
        .expect("a listening line");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let (ok, body) = curl(&[
        "--cacert",
        cert.to_str().unwrap(),
        &format!("{url}/healthz"),
    ]);
    assert!(ok && body.contains("\"ok\""), "{body}");
    let (ok, body) = curl(&[
        "--cacert",
        cert.to_str().unwrap(),
        "-X",
        "POST",
        "-d",
        "grant_type=password&username=admin&password=a long admin password",
        &format!("{url}/api/v3/token"),
    ]);
    assert!(ok && body.contains("access_token"), "{body}");
    let (ok, _) = curl(&[&format!("{url}/healthz")]);
    assert!(
        !ok,
        "an unknown certificate authority is refused by the client"
    );
    let (ok, _) = curl(&[&format!("{}/healthz", url.replace("https://", "http://"))]);
    assert!(!ok, "plain HTTP is not served on the TLS port");
    let _ = child.kill();
    let _ = child.wait();

    let output = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(temp.path().join("data"))
        .arg("--tls-cert")
        .arg(&key)
        .arg("--tls-key")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("loading the TLS certificate"));
    let output = Command::new(binary())
        .args(["serve", "--tls-cert"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--tls-cert and --tls-key go together")
    );
}

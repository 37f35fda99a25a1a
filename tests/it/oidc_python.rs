//! An independent relying party in another language: `tests/oidc/authlib_client.py`, written with
//! Python's Authlib, signs in with wxauth (discovery, PKCE S256 and nonce, the simulator's QR page
//! and our consent page over plain HTTP, tokens, the ID token checked against the JWKS, userinfo,
//! refresh, a replayed code refused). This test starts the app, registers the client, runs the
//! script and checks what it printed against what wxauth knows.
//!
//! Needs `python3 -m pip install -r tests/oidc/requirements.txt` (.ci/run does it). Without the
//! packages the test is skipped with a message, unless `WXAUTH_TEST_REQUIRE_PYTHON=1` (set by
//! .ci/run), which makes their absence a failure.

use serde_json::Value;
use wxauth::simulator::demo;

use crate::harness::{Backend, TestApp};
use crate::oidc::{REDIRECT, SECRET, account_of, oidc_client};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc/authlib_client.py");

async fn authlib_installed() -> bool {
    tokio::process::Command::new("python3")
        .args(["-c", "import authlib, joserfc, requests"])
        .output()
        .await
        .is_ok_and(|out| out.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authlib_relying_party_signs_in_end_to_end() {
    if !authlib_installed().await {
        assert!(
            std::env::var("WXAUTH_TEST_REQUIRE_PYTHON").as_deref() != Ok("1"),
            "WXAUTH_TEST_REQUIRE_PYTHON=1 but python3 with Authlib is missing \
             (python3 -m pip install -r tests/oidc/requirements.txt)"
        );
        eprintln!(
            "skipping the Authlib test: python3 -m pip install -r tests/oidc/requirements.txt"
        );
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    oidc_client(&app, "py-rp", false, false).await;

    let output = tokio::process::Command::new("python3")
        .args([SCRIPT, &app.base, "py-rp", SECRET, REDIRECT, "alice"])
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the Authlib client failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();

    let sub = account_of(&app, demo::WEBSITE_APPID, "alice")
        .await
        .to_string();
    assert_eq!(seen["issuer"], app.base.as_str());
    assert_eq!(seen["alg"], "ES256");
    assert_eq!(seen["id_token"]["sub"], sub.as_str());
    assert_eq!(seen["id_token"]["aud"], "py-rp");
    assert_eq!(seen["id_token"]["name"], "Alice 爱丽丝");
    assert!(seen["id_token"]["nonce"].is_string());
    assert!(seen["id_token"]["auth_time"].is_i64());
    assert_eq!(seen["userinfo"]["sub"], sub.as_str());
    assert_eq!(seen["userinfo"]["name"], "Alice 爱丽丝");
    assert_eq!(seen["refreshed"], true);
    assert_eq!(seen["replay"], "invalid_grant");
}

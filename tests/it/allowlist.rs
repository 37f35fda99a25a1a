//! `WXAUTH_REDIRECT_ALLOWLIST` with a wildcard entry, as a sign-in link sees it: `*.example.com`
//! lets a login return to any subdomain, and to nothing that only looks like one.

use wxauth::simulator::demo;

use crate::h5::build_url;
use crate::harness::{Backend, Options, TestApp};

#[tokio::test]
async fn a_wildcard_entry_allows_subdomains_and_nothing_that_looks_like_one() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            env: vec![(
                "WXAUTH_REDIRECT_ALLOWLIST".to_owned(),
                "*.example.com,*.shop.example.net:8443".to_owned(),
            )],
            ..Options::default()
        },
    )
    .await
    .unwrap();
    for next in [
        "https://app.example.com/m",
        "https://a.b.example.com/m",
        "https://APP.Example.com/m",
        "http://app.example.com:80/m",
        "https://cart.shop.example.net:8443/m",
    ] {
        let response = build_url(&app, demo::ENTRY_ACCOUNT_APPID, next).await;
        assert_eq!(response.status(), 200, "{next:?} was refused");
    }
    for next in [
        "https://example.com/m",
        "https://evil-example.com/m",
        "https://example.com.evil.com/m",
        "https://app.example.com.evil.com/m",
        "https://app.example.com./m",
        "https://.example.com/m",
        "https://app.example.com@evil.com/",
        "https://app.example.com:8443/m",
        "https://cart.shop.example.net/m",
        "https://shop.example.net:8443/m",
        "https://evil.com/?next=https://app.example.com/",
    ] {
        let response = build_url(&app, demo::ENTRY_ACCOUNT_APPID, next).await;
        assert_eq!(response.status(), 400, "{next:?} was accepted");
    }
}

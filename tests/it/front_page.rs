//! The front page, `GET /`: a newcomer's first request names the server and links documents that
//! all answer; under `wxauth dev` it shows the demo walks, looked at in a real browser.

use wxauth::http::pages::DevDemo;

use crate::browser::{Chromedriver, serve_site};
use crate::harness::{Backend, TestApp};

async fn sqlite() -> TestApp {
    TestApp::spawn(Backend::Sqlite)
        .await
        .expect("sqlite always runs")
}

/// Every `href="…"` on the page.
fn hrefs(body: &str) -> Vec<String> {
    body.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(unescape)
        .collect()
}

/// The entities minijinja's auto-escaping writes in attribute and text values.
fn unescape(text: &str) -> String {
    text.replace("&#x2f;", "/").replace("&amp;", "&")
}

#[tokio::test]
async fn the_front_page_names_the_server_and_links_documents_that_answer() {
    let app = sqlite().await;
    let response = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(headers.contains_key("content-security-policy"));
    let body = unescape(&response.text().await.unwrap());
    let issuer = app.state.config.issuer();
    assert!(
        body.contains(&format!("<dd id=\"issuer\">{issuer}</dd>")),
        "{body}"
    );
    assert!(body.contains(env!("CARGO_PKG_VERSION")), "{body}");
    assert!(
        body.contains("用微信登录") && body.contains("sign in with WeChat"),
        "{body}"
    );
    // Outside `wxauth dev` there is no demo section.
    assert!(!body.contains("id=\"demo\""), "{body}");

    let links: Vec<String> = hrefs(&body)
        .into_iter()
        .filter(|h| !h.starts_with("/static/"))
        .collect();
    for wanted in [
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
        "/api/doc.html",
    ] {
        assert!(
            links.iter().any(|l| l == &format!("{issuer}{wanted}")),
            "{wanted}: {links:?}"
        );
    }
    for link in &links {
        let status = app.http.get(link).send().await.unwrap().status();
        assert_eq!(status, 200, "{link}");
    }
}

#[tokio::test]
async fn the_dev_front_page_shows_the_demo_walks_in_a_browser() {
    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    let app = sqlite().await;
    let issuer = app.state.config.issuer();
    let demo: DevDemo = wxauth::dev::dev_demo(&issuer, &app.sim_base);
    let router = wxauth::app(app.state.clone()).layer(axum::Extension(demo.clone()));
    let base = serve_site(router).await;

    let chromium = driver
        .session("Mozilla/5.0 (X11; Linux x86_64) Chrome/120", (1100, 1400))
        .open()
        .await;
    let seen = async {
        chromium.goto(&format!("{base}/")).await?;
        let href = |css: &'static str| {
            let chromium = &chromium;
            async move {
                chromium
                    .wait_for(css)
                    .await?
                    .attr("href")
                    .await
                    .map_err(|e| format!("{css}: {e}"))
            }
        };
        let found = (
            chromium.text_of("#title").await?,
            chromium.text_of("#issuer").await?,
            href("#demo-h5").await?,
            href("#demo-oidc").await?,
            chromium.text_of("#demo-mini-program").await?,
        );
        chromium.screenshot("front-page-dev.png").await;
        Ok::<_, String>(found)
    }
    .await;
    let (title, shown_issuer, h5, oidc, mini_program) = chromium.finish(seen).await;
    assert!(title.starts_with("wxauth"), "{title}");
    assert_eq!(shown_issuer, issuer);
    assert_eq!(h5, Some(demo.h5_walk));
    assert_eq!(oidc, Some(demo.oidc_demo));
    assert!(
        mini_program.contains(&format!("{}/__sim/codes/js", app.sim_base)),
        "{mini_program}"
    );
    assert!(
        mini_program.contains("/api/wechat/ma/session"),
        "{mini_program}"
    );
    // The demo client's secret is printed in the terminal, never on a page.
    assert!(mini_program.contains("SECRET"), "{mini_program}");
}

//! Headless Chromium for the browser tests, driven over WebDriver: [`Chromedriver`] finds
//! chromedriver and chromium, starts the driver on a free port and stops it when dropped;
//! [`Chromedriver::session`] opens a [`Chromium`] session with the capabilities every test
//! shares (headless, no sandbox, no first-run) and the user agent, window size and language each
//! test asks for; [`Chromium`] waits for elements, reads and clicks them, and saves screenshots
//! under the test target directory (`target/tmp/`, where people look at them).
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (.ci/run installs them). Without
//! them a browser test is skipped with a message, unless `WXAUTH_TEST_REQUIRE_BROWSER=1` (set by
//! .ci/run), which makes their absence a failure.

use std::ops::Deref;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// How long a browser test waits for a page.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// A desktop Chrome on Linux: no WeChat in it, so the QR page rather than WeChat's own.
pub(crate) const DESKTOP_USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 \
     (KHTML, like Gecko) Chrome/130.0 Safari/537.36";

fn in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where the screenshot `name` is saved: the test target directory.
pub(crate) fn screenshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// A site of the test's own for the browser to visit (a relying party, a landing page, a
/// single-page app): `router` served in the background on 127.0.0.1 at a free port; its base URL.
pub(crate) async fn serve_site(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    base
}

/// chromedriver on a free port, stopped when dropped.
pub(crate) struct Chromedriver {
    url: String,
    _child: tokio::process::Child,
}

impl Chromedriver {
    /// chromedriver, started, when chromium and chromedriver are installed; `None` means skip
    /// the test (after saying so), and with `WXAUTH_TEST_REQUIRE_BROWSER=1` their absence fails
    /// it.
    pub(crate) async fn start() -> Option<Chromedriver> {
        let required = std::env::var("WXAUTH_TEST_REQUIRE_BROWSER").as_deref() == Ok("1");
        let (Some(binary), Some(_)) = (in_path("chromedriver"), in_path("chromium")) else {
            assert!(
                !required,
                "WXAUTH_TEST_REQUIRE_BROWSER=1 but chromium or chromedriver is missing \
                 (apt-get install -y chromium chromium-driver)"
            );
            eprintln!("skipping the browser test: chromium or chromedriver is not installed");
            return None;
        };
        let port = free_port();
        let child = tokio::process::Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(response) = reqwest::get(format!("{url}/status")).await
                && response.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(Chromedriver { url, _child: child })
    }

    /// A session to open: Chromium calling itself `user_agent`, with a `width`×`height` window.
    pub(crate) fn session<'a>(
        &'a self,
        user_agent: &'a str,
        (width, height): (u32, u32),
    ) -> Session<'a> {
        Session {
            driver: self,
            user_agent,
            width,
            height,
            languages: None,
        }
    }
}

/// A Chromium session about to be opened (see [`Chromedriver::session`]).
pub(crate) struct Session<'a> {
    driver: &'a Chromedriver,
    user_agent: &'a str,
    width: u32,
    height: u32,
    languages: Option<&'a str>,
}

impl<'a> Session<'a> {
    /// The browser's user reads `languages` (`Accept-Language`, e.g. `zh-CN,zh,en`), the first
    /// of them as the browser's own language.
    pub(crate) fn language(mut self, languages: &'a str) -> Self {
        self.languages = Some(languages);
        self
    }

    pub(crate) async fn open(self) -> Chromium {
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--no-first-run".to_owned(),
            format!("--window-size={},{}", self.width, self.height),
            format!("--user-agent={}", self.user_agent),
        ];
        let mut options = serde_json::Map::new();
        if let Some(languages) = self.languages {
            let first = languages.split(',').next().unwrap_or(languages);
            args.push(format!("--lang={first}"));
            args.push(format!("--accept-lang={languages}"));
            options.insert(
                "prefs".to_owned(),
                json!({ "intl.accept_languages": languages }),
            );
        }
        options.insert("args".to_owned(), json!(args));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".to_owned(), options.into());
        let client = ClientBuilder::native()
            .capabilities(capabilities)
            .connect(&self.driver.url)
            .await
            .expect("a Chromium session");
        Chromium { client }
    }
}

/// One headless Chromium session; the WebDriver client's own calls are there too (`Deref`).
/// Its helpers answer `Err` with what went wrong, so that a walk can end the session (see
/// [`Chromium::finish`]) before the test fails.
pub(crate) struct Chromium {
    client: Client,
}

impl Deref for Chromium {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Chromium {
    pub(crate) async fn goto(&self, url: &str) -> Result<(), String> {
        self.client
            .goto(url)
            .await
            .map_err(|e| format!("{url}: {e}"))
    }

    /// The address the browser is showing.
    pub(crate) async fn url(&self) -> Result<url::Url, String> {
        self.client.current_url().await.map_err(|e| e.to_string())
    }

    /// `Err` naming `page` unless the browser is at an address starting with `prefix`.
    pub(crate) async fn expect_at(&self, prefix: &str, page: &str) -> Result<(), String> {
        let at = self.url().await?;
        if at.as_str().starts_with(prefix) {
            Ok(())
        } else {
            Err(format!("not {page}: {at}"))
        }
    }

    /// On the simulator's website QR page (`sim_base`'s `/connect/qrconnect`, where a desktop
    /// browser signs in with WeChat), `user`'s phone scans the code.
    pub(crate) async fn scan_the_qr_page(&self, sim_base: &str, user: &str) -> Result<(), String> {
        self.expect_at(&format!("{sim_base}/connect/qrconnect"), "the QR page")
            .await?;
        self.click(&format!("#scan-{user}")).await
    }

    /// The page's HTML as the browser has it now.
    pub(crate) async fn source(&self) -> Result<String, String> {
        self.client.source().await.map_err(|e| e.to_string())
    }

    /// The first element matching `css`, once there is one (for up to [`WAIT`]).
    pub(crate) async fn wait_for(&self, css: &str) -> Result<Element, String> {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .map_err(|e| format!("{css}: {e}"))
    }

    /// The text of the first element matching `css`, once there is one.
    pub(crate) async fn text_of(&self, css: &str) -> Result<String, String> {
        self.wait_for(css)
            .await?
            .text()
            .await
            .map_err(|e| format!("{css}: {e}"))
    }

    /// Click the first element matching `css`, once there is one.
    pub(crate) async fn click(&self, css: &str) -> Result<(), String> {
        self.wait_for(css)
            .await?
            .click()
            .await
            .map_err(|e| format!("clicking {css}: {e}"))
    }

    /// Type `value` into the field matching `css`, replacing what it held.
    pub(crate) async fn fill(&self, css: &str, value: &str) -> Result<(), String> {
        let field = self.wait_for(css).await?;
        field.clear().await.map_err(|e| format!("{css}: {e}"))?;
        field
            .send_keys(value)
            .await
            .map_err(|e| format!("{css}: {e}"))
    }

    /// Wait until the browser has navigated to a URL containing `part` (a form's answer replaces
    /// a page that may hold the same elements, so waiting for an element is not enough).
    pub(crate) async fn wait_for_url(&self, part: &str) -> Result<(), String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let url = self.url().await?;
            if url.as_str().contains(part) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("never reached a URL with {part:?}; at {url}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Save what the browser shows as `name` (see [`screenshot_path`]); a failure only costs the
    /// picture.
    pub(crate) async fn screenshot(&self, name: &str) {
        let _ = self.try_screenshot(name).await;
    }

    /// Save what the browser shows as `name`: where it went, or why it did not.
    pub(crate) async fn try_screenshot(&self, name: &str) -> Result<PathBuf, String> {
        let png = self.client.screenshot().await.map_err(|e| e.to_string())?;
        let path = screenshot_path(name);
        std::fs::write(&path, png).map_err(|e| e.to_string())?;
        Ok(path)
    }

    /// End the session, then return the walk's result, or fail with the error and the page the
    /// browser was showing.
    pub(crate) async fn finish<T>(self, outcome: Result<T, String>) -> T {
        let shown = match &outcome {
            Ok(_) => String::new(),
            Err(_) => format!(
                "at {:?}:\n{}",
                self.client.current_url().await.map(|u| u.to_string()),
                self.client.source().await.unwrap_or_default()
            ),
        };
        let _ = self.client.close().await;
        match outcome {
            Ok(value) => value,
            Err(error) => panic!("{error}\n{shown}"),
        }
    }
}

//! The simulator over HTTP, as a curl session or `wxauth dev` sees it: control API, WeChat's
//! JSON shapes and errcodes, the authorize page with its user picker, faults and counters.

use serde_json::{Value, json};
use wxauth::simulator::{Simulator, SimulatorConfig, demo};

struct Sim {
    base: String,
    http: reqwest::Client,
    sim: Simulator,
}

async fn start() -> Sim {
    let sim = Simulator::new(SimulatorConfig::demo(None));
    let (addr, _server) = sim.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    Sim {
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        sim,
    }
}

impl Sim {
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .query(query)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn cgi_token(&self) -> Value {
        self.get(
            "/cgi-bin/token",
            &[
                ("grant_type", "client_credential"),
                ("appid", demo::MINI_PROGRAM_APPID),
                ("secret", demo::MINI_PROGRAM_SECRET),
            ],
        )
        .await
    }

    async fn js_code(&self, user: &str) -> String {
        let minted = self
            .post(
                "/__sim/codes/js",
                json!({ "appid": demo::MINI_PROGRAM_APPID, "user": user }),
            )
            .await;
        minted["code"].as_str().unwrap().to_owned()
    }

    async fn code2session(&self, code: &str, secret: &str) -> Value {
        self.get(
            "/sns/jscode2session",
            &[
                ("appid", demo::MINI_PROGRAM_APPID),
                ("secret", secret),
                ("js_code", code),
                ("grant_type", "authorization_code"),
            ],
        )
        .await
    }
}

#[tokio::test]
async fn curl_style_code_exchange() {
    let s = start().await;
    let code = s.js_code("alice").await;
    let session = s.code2session(&code, demo::MINI_PROGRAM_SECRET).await;
    assert_eq!(
        session["openid"],
        s.sim.openid(demo::MINI_PROGRAM_APPID, "alice")
    );
    assert!(session["session_key"].as_str().unwrap().len() >= 22);
    assert!(session["unionid"].is_string());
    assert_eq!(
        s.code2session(&code, demo::MINI_PROGRAM_SECRET).await["errcode"],
        40163
    );
    let code = s.js_code("alice").await;
    assert_eq!(s.code2session(&code, "wrong").await["errcode"], 40125);
    assert_eq!(
        s.post("/__sim/clock/advance", json!({ "seconds": 301 }))
            .await["now"]
            .as_i64()
            .unwrap(),
        s.sim.now()
    );
    assert_eq!(
        s.code2session(&code, demo::MINI_PROGRAM_SECRET).await["errcode"],
        40029
    );
    let counters = s.get("/__sim/counters", &[]).await;
    assert_eq!(counters["/sns/jscode2session"], 4);
}

#[tokio::test]
async fn faults_over_http() {
    let s = start().await;
    let plan: Value = s
        .http
        .put(format!("{}/__sim/faults", s.base))
        .json(&json!({ "busy_next": 1, "quota_exhausted": [demo::MINI_PROGRAM_APPID] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plan["busy_next"], 1);
    assert_eq!(s.cgi_token().await["errcode"], -1);
    assert_eq!(s.cgi_token().await["errcode"], 45009);
    s.http
        .delete(format!("{}/__sim/faults", s.base))
        .send()
        .await
        .unwrap();
    let answer = s.cgi_token().await;
    assert_eq!(answer["expires_in"], 7200);
    assert!(answer["access_token"].is_string());
}

#[tokio::test]
async fn stable_token_reuses_and_refetch_retires_old_after_overlap() {
    let s = start().await;
    let stable = |force: bool| {
        s.post(
            "/cgi-bin/stable_token",
            json!({
                "grant_type": "client_credential",
                "appid": demo::MINI_PROGRAM_APPID,
                "secret": demo::MINI_PROGRAM_SECRET,
                "force_refresh": force,
            }),
        )
    };
    let first = stable(false).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(stable(false).await["access_token"], first.as_str());
    let second = stable(true).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(first, second);
    let phone_code = s
        .post(
            "/__sim/codes/phone",
            json!({ "appid": demo::MINI_PROGRAM_APPID, "user": "bob" }),
        )
        .await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let phone = |token: String, code: String| {
        let http = s.http.clone();
        let url = format!("{}/wxa/business/getuserphonenumber", s.base);
        async move {
            http.post(url)
                .query(&[("access_token", token)])
                .json(&json!({ "code": code }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    // The old token still works within the 5-minute overlap…
    let answer = phone(first.clone(), phone_code).await;
    assert_eq!(answer["errcode"], 0);
    assert_eq!(answer["phone_info"]["phoneNumber"], "13800000002");
    // …and not after.
    s.sim.advance_clock(300);
    let code = s
        .sim
        .mint_phone_code(demo::MINI_PROGRAM_APPID, "bob")
        .unwrap();
    assert_eq!(phone(first, code.clone()).await["errcode"], 42001);
    assert_eq!(phone(second, code).await["errcode"], 0);
}

#[tokio::test]
async fn authorize_page_picks_a_user_then_redirects_with_code_and_state() {
    let s = start().await;
    let authorize = format!(
        "/connect/oauth2/authorize?appid={}&redirect_uri={}&response_type=code&scope=snsapi_base&state=abc",
        demo::ENTRY_ACCOUNT_APPID,
        "https%3A%2F%2Fapp.example.com%2Fcb"
    );
    // No user chosen: the picker.
    let page = s
        .http
        .get(format!("{}{authorize}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Alice 爱丽丝") && html.contains("/__sim/choose?user=alice"));

    // Create a user through the form: cookie set, back to the authorize page.
    let created = s
        .http
        .post(format!("{}/__sim/choose", s.base))
        .form(&[("nickname", "<Carol>"), ("return", authorize.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 303);
    let cookie = created.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(created.headers()["location"], authorize.as_str());
    assert!(s.sim.users().iter().any(|u| u.nickname == "<Carol>"));

    let redirected = s
        .http
        .get(format!("{}{authorize}", s.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(redirected.status(), 302);
    let location = url::Url::parse(redirected.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.host_str(), Some("app.example.com"));
    let query: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(query["state"], "abc");
    assert!(!query["code"].is_empty());
    assert!(
        !query.contains_key("appid"),
        "appid only with component_appid"
    );

    // Exchange it with the account's own secret: snsapi_base gives no unionid, and userinfo is
    // refused for a base token.
    let token = s
        .get(
            "/sns/oauth2/access_token",
            &[
                ("appid", demo::ENTRY_ACCOUNT_APPID),
                ("secret", demo::ENTRY_ACCOUNT_SECRET),
                ("code", &query["code"]),
                ("grant_type", "authorization_code"),
            ],
        )
        .await;
    assert_eq!(token["scope"], "snsapi_base");
    assert!(token.get("unionid").is_none());
    let info = s
        .get(
            "/sns/userinfo",
            &[
                ("access_token", token["access_token"].as_str().unwrap()),
                ("openid", token["openid"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(info["errcode"], 48001);
}

#[tokio::test]
async fn authorize_page_rejects_bad_parameters_and_open_redirects() {
    let s = start().await;
    let status = |path: String| {
        let http = s.http.clone();
        let url = format!("{}{path}", s.base);
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        status(
            "/connect/oauth2/authorize?appid=wx0000000000000000&redirect_uri=https%3A%2F%2Fa.b&response_type=code&scope=snsapi_base&state=s"
                .to_owned()
        )
        .await,
        400
    );
    assert_eq!(
        status(format!(
            "/connect/oauth2/authorize?appid={}&redirect_uri=https%3A%2F%2Fa.b&response_type=code&scope=snsapi_login&state=s",
            demo::ENTRY_ACCOUNT_APPID
        ))
        .await,
        400
    );
    assert_eq!(
        status("/__sim/choose?user=alice&return=https%3A%2F%2Fevil.example%2F".to_owned()).await,
        400
    );
}

//! The Official Account H5 two-hop authorization, driven as WeChat and a phone would drive it:
//! `entryBuildUrl` → the simulator's authorize page → `entryCallback` → the base account's
//! authorize page → `baseCallback` → `next` with the identity and a login ticket, which the
//! `flow` grant accepts once. Plus the component ticket push, hostile `next` values, forged,
//! replayed and expired states, and WeChat going down mid-flow.

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::cookie::Jar;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::Value;
use url::Url;
use wxauth::app_registry::{AppKind, NewApp};
use wxauth::oauth::{FlowTicketPolicy, NewClient};
use wxauth::secret::Secret;
use wxauth::simulator::{SimApp, SimAppKind, demo};
use wxauth::wechat::crypto::MessageCrypt;

use crate::backend_tests;
use crate::harness::TestApp;

pub(crate) const BUILD: &str = "/api/wechat/component/mp/common/entryBuildUrl";
const ENTRY_CB: &str = "/api/wechat/component/mp/common/entryCallback";
pub(crate) const BASE_CB: &str = "/api/wechat/component/mp/common/baseCallback";
pub(crate) const NEXT: &str = "https://app.example.com/m/flow_landing?appId=wxd000000000000002&x=1";
pub(crate) const CLIENT_SECRET: &str = "a-long-client-secret-for-h5-tests";

/// A directly registered entry account (own secret, no component, no Open Platform).
const DIRECT_APPID: &str = "wxd0000000000000a1";
const DIRECT_SECRET: &str = "d00000000000000000000000000000a1";

pub(crate) fn query(url: &str) -> HashMap<String, String> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

pub(crate) fn pairs(url: &str) -> Vec<(String, String)> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// One phone's WeChat browser: a cookie jar of its own (wxauth's binding cookie lives there),
/// signed in to WeChat as a user (the simulator reads its `wxsim_user` cookie).
pub(crate) struct Browser {
    http: reqwest::Client,
    jar: Arc<Jar>,
    sim: Url,
}

impl Browser {
    pub(crate) fn new(app: &TestApp, user: &str) -> Self {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .user_agent("Mozilla/5.0 (iPhone) MicroMessenger/8.0.50")
            .build()
            .unwrap();
        let browser = Self {
            http,
            jar,
            sim: Url::parse(&app.sim_base).unwrap(),
        };
        browser.sign_in_to_wechat_as(user);
        browser
    }

    /// WeChat on this phone is now `user`'s.
    pub(crate) fn sign_in_to_wechat_as(&self, user: &str) {
        self.jar
            .add_cookie_str(&format!("wxsim_user={user}; Path=/"), &self.sim);
    }

    /// GET `url`; the answer must be a 302, whose Location is returned.
    pub(crate) async fn hop(&self, url: &str) -> String {
        let response = self.http.get(url).send().await.unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let body = response.text().await.unwrap_or_default();
        assert_eq!(status, 302, "GET {url} answered {status}: {body}");
        location.unwrap()
    }

    /// GET `url` and keep what the browser was shown.
    pub(crate) async fn page(&self, url: &str) -> Page {
        read_page(self.http.get(url).send().await.unwrap()).await
    }
}

/// What the browser sees when it should not be sent anywhere.
pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    pub(crate) location: Option<String>,
    pub(crate) retry_after: Option<String>,
    pub(crate) body: String,
}

/// GET `url` from a browser with no cookies at all.
pub(crate) async fn page(app: &TestApp, url: &str) -> Page {
    read_page(app.http.get(url).send().await.unwrap()).await
}

async fn read_page(response: reqwest::Response) -> Page {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Page {
        status: response.status().as_u16(),
        content_type: header("content-type").unwrap_or_default(),
        location: header("location"),
        retry_after: header("retry-after"),
        body: response.text().await.unwrap(),
    }
}

/// An HTML error page with `status`, no redirect, nothing of the identity.
pub(crate) fn assert_error_page(page: &Page, status: u16) {
    assert_eq!(page.status, status, "{}", page.body);
    assert!(
        page.content_type.starts_with("text/html"),
        "{}",
        page.content_type
    );
    assert!(page.location.is_none(), "an error must not redirect");
    assert!(!page.body.contains("openId=") && !page.body.contains("ticket="));
}

pub(crate) async fn build_url(app: &TestApp, appid: &str, next: &str) -> reqwest::Response {
    app.http
        .get(app.url(BUILD))
        .query(&[("appId", appid), ("next", next)])
        .send()
        .await
        .unwrap()
}

/// Step 1: the WeChat authorize URL for a sign-in on `appid` returning to `next`.
pub(crate) async fn start(app: &TestApp, appid: &str, next: &str) -> String {
    let response = build_url(app, appid, next).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    body["url"].as_str().unwrap().to_owned()
}

/// The URLs a sign-in went through.
pub(crate) struct Walk {
    pub(crate) entry_authorize: String,
    pub(crate) entry_callback: String,
    pub(crate) base_authorize: String,
    pub(crate) base_callback: String,
    pub(crate) landing: String,
}

pub(crate) async fn walk(app: &TestApp, appid: &str, next: &str, user: &str) -> Walk {
    let entry_authorize = start(app, appid, next).await;
    let phone = Browser::new(app, user);
    let entry_callback = phone.hop(&entry_authorize).await;
    let base_authorize = phone.hop(&entry_callback).await;
    let base_callback = phone.hop(&base_authorize).await;
    let landing = phone.hop(&base_callback).await;
    Walk {
        entry_authorize,
        entry_callback,
        base_authorize,
        base_callback,
        landing,
    }
}

pub(crate) async fn flow_client(app: &TestApp, id: &str) {
    app.state
        .clients
        .create(NewClient {
            client_id: id.into(),
            secret: Some(Secret::new(CLIENT_SECRET)),
            grant_types: vec!["flow".into(), "refresh_token".into()],
            scopes: vec!["flow".into()],
            redirect_uris: vec![],
            public: false,
            first_party: false,
            access_token_ttl: 600,
            refresh_token_ttl: 3600,
            flow_ticket: FlowTicketPolicy::Required,
            ..NewClient::default()
        })
        .await
        .unwrap();
}

/// Step 5 of the seed: the landing page's parameters at `/api/auth/oauth/token`.
pub(crate) async fn redeem(app: &TestApp, client_id: &str, landing: &str) -> (u16, Value) {
    let q = query(landing);
    let mut form = vec![("grant_type", "flow"), ("scope", "flow")];
    for name in ["appId", "openId", "unionId", "ticket"] {
        form.push((name, q[name].as_str()));
    }
    let response = app
        .http
        .post(app.url("/api/auth/oauth/token"))
        .basic_auth(client_id, Some(CLIENT_SECRET))
        .form(&form)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

fn register_direct_entry(app: &TestApp) -> NewApp {
    app.sim.register_app(SimApp {
        appid: DIRECT_APPID.into(),
        secret: DIRECT_SECRET.into(),
        kind: SimAppKind::OfficialAccount,
        open_platform: None,
        component_appid: None,
        component: None,
    });
    NewApp {
        appid: DIRECT_APPID.into(),
        kind: AppKind::OfficialAccount,
        secret: Some(Secret::new(DIRECT_SECRET)),
        component_appid: None,
        is_base: false,
        token: None,
        aes_key: None,
    }
}

async fn state_rows(app: &TestApp) -> u64 {
    entity::auth_state::Entity::find()
        .count(&app.state.db)
        .await
        .unwrap()
}

backend_tests! {
    async fn two_hop_through_the_component_ends_on_next_with_a_working_ticket(app: TestApp) {
        app.push_component_ticket().await;
        let walk = walk(&app, demo::ENTRY_ACCOUNT_APPID, NEXT, "alice").await;

        // Hop 1: silent, on the entry account, through the component, back to our callback.
        let sim_authorize = format!("{}/connect/oauth2/authorize?", app.sim_base);
        assert!(walk.entry_authorize.starts_with(&sim_authorize));
        assert!(walk.entry_authorize.ends_with("#wechat_redirect"));
        let q = query(&walk.entry_authorize);
        assert_eq!(q["appid"], demo::ENTRY_ACCOUNT_APPID);
        assert_eq!(q["scope"], "snsapi_base");
        assert_eq!(q["component_appid"], demo::COMPONENT_APPID);
        assert_eq!(q["redirect_uri"], format!("{}?next={}", app.url(ENTRY_CB), urlencode(NEXT)));
        assert!(walk.entry_callback.starts_with(&app.url(ENTRY_CB)));

        // Hop 2: userinfo, on the base account; the state is opaque, not a row id.
        let q = query(&walk.base_authorize);
        assert_eq!(q["appid"], demo::BASE_ACCOUNT_APPID);
        assert_eq!(q["scope"], "snsapi_userinfo");
        assert_eq!(q["component_appid"], demo::COMPONENT_APPID);
        assert_eq!(q["state"].len(), 64);
        assert!(walk.base_callback.starts_with(&app.url(BASE_CB)));

        // The end: next's own query kept, the identity merged in, each name once.
        let open_id = app.sim.openid(demo::ENTRY_ACCOUNT_APPID, "alice");
        let union_id = app.sim.unionid(demo::BASE_ACCOUNT_APPID, "alice").unwrap();
        assert!(walk.landing.starts_with("https://app.example.com/m/flow_landing?"), "{}", walk.landing);
        let got = pairs(&walk.landing);
        let names: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["x", "appId", "openId", "unionId", "ticket"]);
        let q = query(&walk.landing);
        assert_eq!(q["appId"], demo::ENTRY_ACCOUNT_APPID);
        assert_eq!(q["x"], "1");
        assert_eq!(q["openId"], open_id);
        assert_eq!(q["unionId"], union_id);

        // Both identities are stored and share the unionid's account.
        let entry = app.state.users.find_identity(demo::ENTRY_ACCOUNT_APPID, &open_id).await.unwrap().unwrap();
        let base_open_id = app.sim.openid(demo::BASE_ACCOUNT_APPID, "alice");
        let base = app.state.users.find_identity(demo::BASE_ACCOUNT_APPID, &base_open_id).await.unwrap().unwrap();
        assert_eq!(entry.union_id.as_deref(), Some(union_id.as_str()));
        assert_eq!(entry.account_id, base.account_id);
        assert_eq!(base.nick_name.as_deref(), Some("Alice 爱丽丝"));

        // Step 5: the ticket signs the user in once.
        flow_client(&app, "landing").await;
        let (status, token) = redeem(&app, "landing", &walk.landing).await;
        assert_eq!(status, 200, "{token}");
        assert_eq!(token["account"], union_id.as_str());
        assert_eq!(token["nick_name"], "Alice 爱丽丝");
        assert_eq!(token["flow_user_id"], base.account_id.unwrap().to_string());
        let (status, again) = redeem(&app, "landing", &walk.landing).await;
        assert_eq!((status, again["error"].as_str()), (400, Some("invalid_grant")));
    }

    async fn two_hop_with_a_directly_registered_entry_account(app: TestApp) {
        let direct = register_direct_entry(&app);
        app.state.apps.add(direct).await.unwrap();
        app.push_component_ticket().await;
        let next = "https://app.example.com/landing";
        let walk = walk(&app, DIRECT_APPID, next, "bob").await;

        let q = query(&walk.entry_authorize);
        assert_eq!(q["appid"], DIRECT_APPID);
        assert!(!q.contains_key("component_appid"), "a direct account authorizes on its own");
        assert_eq!(app.sim.calls("/sns/oauth2/access_token"), 1);
        assert_eq!(app.sim.calls("/sns/oauth2/component/access_token"), 1);

        // next had no query: the seed appended `&openId=`; we start one with `?`.
        let open_id = app.sim.openid(DIRECT_APPID, "bob");
        let union_id = app.sim.unionid(demo::BASE_ACCOUNT_APPID, "bob").unwrap();
        let landing = Url::parse(&walk.landing).unwrap();
        assert_eq!(landing.path(), "/landing");
        let q = query(&walk.landing);
        assert_eq!(q["appId"], DIRECT_APPID);
        assert_eq!(q["openId"], open_id);
        assert_eq!(q["unionId"], union_id);

        flow_client(&app, "landing").await;
        let (status, token) = redeem(&app, "landing", &walk.landing).await;
        assert_eq!(status, 200, "{token}");
        assert_eq!(token["nick_name"], "Bob");
    }

    async fn the_component_token_is_fetched_once_and_reused_across_logins(app: TestApp) {
        app.push_component_ticket().await;
        flow_client(&app, "landing").await;
        for user in ["alice", "bob"] {
            let walk = walk(&app, demo::ENTRY_ACCOUNT_APPID, NEXT, user).await;
            assert_eq!(redeem(&app, "landing", &walk.landing).await.0, 200);
        }
        assert_eq!(app.sim.calls("/cgi-bin/component/api_component_token"), 1);
        assert_eq!(app.sim.calls("/sns/oauth2/component/access_token"), 4);
    }

    async fn ticket_pushes_are_stored_only_when_they_verify(app: TestApp) {
        let tickets = || async {
            entity::wechat_component_ticket::Entity::find().all(&app.state.db).await.unwrap()
        };
        let crypt = MessageCrypt::new(demo::COMPONENT_TOKEN, demo::COMPONENT_AES_KEY, demo::COMPONENT_APPID).unwrap();
        let push = |inner: &str, signature: Option<&str>, outer_appid: &str| {
            let encrypt = crypt.encrypt(inner);
            let signature = signature.map(str::to_owned).unwrap_or_else(|| crypt.signature("1700000000", "n0nce", &encrypt));
            let body = format!("<xml><AppId><![CDATA[{outer_appid}]]></AppId><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>");
            app.http
                .post(app.url("/api/wechat/component/ticket"))
                .query(&[("timestamp", "1700000000"), ("nonce", "n0nce"), ("encrypt_type", "aes"), ("msg_signature", signature.as_str())])
                .body(body)
                .send()
        };
        let ticket_xml = |appid: &str, ticket: &str| format!(
            "<xml><AppId><![CDATA[{appid}]]></AppId><CreateTime>1700000000</CreateTime>\
             <InfoType><![CDATA[component_verify_ticket]]></InfoType>\
             <ComponentVerifyTicket><![CDATA[{ticket}]]></ComponentVerifyTicket></xml>");
        let c = demo::COMPONENT_APPID;

        // A wrong signature over a real ciphertext: refused, nothing stored.
        let resp = push(&ticket_xml(c, "ticket@@@forged"), Some("0000000000000000000000000000000000000000"), c).await.unwrap();
        assert_eq!(resp.status(), 400);
        assert!(tickets().await.is_empty());

        // The simulator's genuine push: stored, answered `success`.
        let genuine = app.push_component_ticket().await;
        let stored = tickets().await;
        assert_eq!(stored.len(), 1);
        assert_eq!(app.state.vault.open(&stored[0].ticket_enc, wxauth::vault::SealedAt::new("wechat_component_ticket", "ticket_enc", c)).unwrap(), genuine);

        // Forged ones keep the last good ticket: bad signature, a message naming another
        // component, an unknown component.
        let resp = push(&ticket_xml(c, "ticket@@@forged"), Some("deadbeef"), c).await.unwrap();
        assert_eq!(resp.status(), 400);
        let resp = push(&ticket_xml("wxd0000000000000ff", "ticket@@@other"), None, c).await.unwrap();
        assert_eq!(resp.status(), 400);
        let resp = push(&ticket_xml(c, "ticket@@@other"), None, "wxd0000000000000ff").await.unwrap();
        assert_eq!(resp.status(), 400);
        let stored = tickets().await;
        assert_eq!(app.state.vault.open(&stored[0].ticket_enc, wxauth::vault::SealedAt::new("wechat_component_ticket", "ticket_enc", c)).unwrap(), genuine);

        // Authorization change notices are accepted and answered `success`.
        for info_type in ["authorized", "updateauthorized", "unauthorized"] {
            let notice = format!(
                "<xml><AppId><![CDATA[{c}]]></AppId><CreateTime>1700000000</CreateTime>\
                 <InfoType><![CDATA[{info_type}]]></InfoType>\
                 <AuthorizerAppid><![CDATA[{}]]></AuthorizerAppid></xml>", demo::ENTRY_ACCOUNT_APPID);
            let resp = push(&notice, None, c).await.unwrap();
            assert_eq!(resp.status(), 200, "{info_type}");
            assert_eq!(resp.text().await.unwrap(), "success");
        }
        let stored = tickets().await;
        assert_eq!(app.state.vault.open(&stored[0].ticket_enc, wxauth::vault::SealedAt::new("wechat_component_ticket", "ticket_enc", c)).unwrap(), genuine);

        // A valid ticket push replaces it.
        let resp = push(&ticket_xml(c, "ticket@@@next"), None, c).await.unwrap();
        assert_eq!(resp.status(), 200);
        let stored = tickets().await;
        assert_eq!(app.state.vault.open(&stored[0].ticket_enc, wxauth::vault::SealedAt::new("wechat_component_ticket", "ticket_enc", c)).unwrap(), "ticket@@@next");
    }

    async fn forged_replayed_crossed_and_expired_states_are_refused(app: TestApp) {
        app.push_component_ticket().await;
        let alice = Browser::new(&app, "alice");

        // Forged: a well-shaped state the server never issued, and malformed ones.
        let code = app.sim.mint_web_code(demo::ENTRY_ACCOUNT_APPID, "alice", "snsapi_base", Some(demo::COMPONENT_APPID)).unwrap();
        for state in ["a".repeat(64), "163".to_owned(), "x<y".to_owned(), String::new()] {
            let url = format!("{}?code={}&state={}", app.url(ENTRY_CB), urlencode(&code), urlencode(&state));
            let p = page(&app, &url).await;
            assert_error_page(&p, 400);
            assert!(p.body.contains("expired or was already used"), "{}", p.body);
        }

        // Replayed: the entry callback's state works once, even with another good code.
        let entry_authorize = start(&app, demo::ENTRY_ACCOUNT_APPID, NEXT).await;
        let entry_callback = alice.hop(&entry_authorize).await;
        let base_authorize = alice.hop(&entry_callback).await;
        let code = fresh_code(&app, demo::ENTRY_ACCOUNT_APPID, "alice", "snsapi_base");
        let p = page(&app, &with_param(&entry_callback, "code", &code)).await;
        assert_error_page(&p, 400);
        assert!(p.body.contains("expired or was already used"), "{}", p.body);

        // Crossed: the base hop's state is no good at the entry callback (and stays usable).
        let base_callback = alice.hop(&base_authorize).await;
        let crossed = base_callback.replacen(BASE_CB, ENTRY_CB, 1);
        assert_error_page(&page(&app, &crossed).await, 400);

        // The base callback works once; its replay shows a page, not a second ticket.
        let landing = alice.hop(&base_callback).await;
        assert!(landing.contains("ticket="));
        assert_error_page(&page(&app, &base_callback).await, 400);
        let code = fresh_code(&app, demo::BASE_ACCOUNT_APPID, "alice", "snsapi_userinfo");
        let p = page(&app, &with_param(&base_callback, "code", &code)).await;
        assert_error_page(&p, 400);
        assert!(p.body.contains("expired or was already used"), "{}", p.body);

        // Expired: ten minutes on the first hop is too long.
        let entry_authorize = start(&app, demo::ENTRY_ACCOUNT_APPID, NEXT).await;
        let entry_callback = alice.hop(&entry_authorize).await;
        app.clock.advance(601);
        let p = page(&app, &entry_callback).await;
        assert_error_page(&p, 400);
        assert!(p.body.contains("expired or was already used"), "{}", p.body);

        // Tampered: a callback whose next or appid differs from what its state recorded.
        let entry_authorize = start(&app, demo::ENTRY_ACCOUNT_APPID, NEXT).await;
        let entry_callback = alice.hop(&entry_authorize).await;
        let mut tampered = Url::parse(&entry_callback).unwrap();
        let kept: Vec<(String, String)> = tampered.query_pairs().into_owned().filter(|(k, _)| k != "next").collect();
        tampered.query_pairs_mut().clear().extend_pairs(kept).append_pair("next", "https://app.example.com/elsewhere");
        let p = page(&app, tampered.as_str()).await;
        assert_error_page(&p, 400);
        assert!(p.body.contains("does not match"), "{}", p.body);
    }

    async fn two_concurrent_callbacks_with_one_state_cannot_both_win(app: TestApp) {
        app.push_component_ticket().await;
        let alice = Browser::new(&app, "alice");
        let entry_authorize = start(&app, demo::ENTRY_ACCOUNT_APPID, NEXT).await;
        let entry_callback = alice.hop(&entry_authorize).await;
        let base_authorize = alice.hop(&entry_callback).await;
        let base_callback = alice.hop(&base_authorize).await;
        // Two good codes, one state: only the state can tell them apart.
        let code = fresh_code(&app, demo::BASE_ACCOUNT_APPID, "alice", "snsapi_userinfo");
        let other = with_param(&base_callback, "code", &code);
        let (a, b) = tokio::join!(alice.page(&base_callback), alice.page(&other));
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(statuses, [302, 400]);
        let (winner, loser) = if a.status == 302 { (a, b) } else { (b, a) };
        assert!(winner.location.unwrap().contains("ticket="));
        assert_error_page(&loser, 400);
        assert!(loser.body.contains("expired or was already used"), "{}", loser.body);
    }
}

/// `url` with parameter `name` set to `value` (replacing it).
pub(crate) fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut url = Url::parse(url).unwrap();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != name)
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair(name, value);
    url.to_string()
}

/// A code WeChat would really give `user` on `appid` (so only our state can refuse it).
fn fresh_code(app: &TestApp, appid: &str, user: &str, scope: &str) -> String {
    app.sim
        .mint_web_code(appid, user, scope, Some(demo::COMPONENT_APPID))
        .unwrap()
}

pub(crate) fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn hostile_next_values_are_refused() {
    let app = TestApp::spawn(crate::harness::Backend::Sqlite)
        .await
        .unwrap();
    let hostile = [
        "https://app.example.com@evil.com/",
        "https://evil.com\\@app.example.com",
        "https://app.example.com\\evil.com",
        "//evil.com",
        "//app.example.com/m",
        "/m/flow_landing",
        "m/flow_landing",
        "javascript:alert(1)",
        "JaVaScRiPt:alert(document.domain)//https://app.example.com/",
        "data:text/html,<script>alert(1)</script>",
        "ftp://app.example.com/",
        "https:app.example.com/m",
        "https://app.example.com.evil.com/",
        "https://evilapp.example.com/",
        "https://app.example.com./m",
        "https://evil.com/?x=app.example.com",
        "https://evil.com/#@app.example.com",
        "http://app.example.com:8080/",
        "https://user:pass@app.example.com/",
        "https://app.example.com%2F@evil.com/",
        "https://app.example.com%2eevil.com/",
        "https://%61pp.example.com/",
        "https://app.example.com\t/",
        " https://app.example.com/",
        "https://app.example.com/\n",
        "http://127.0.0.2/",
        "",
    ];
    for next in hostile {
        let response = build_url(&app, demo::ENTRY_ACCOUNT_APPID, next).await;
        assert_eq!(response.status(), 400, "{next:?} was accepted");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{next:?}");
        assert!(
            body["error_description"].as_str().unwrap().contains("next"),
            "{next:?}: {body}"
        );
    }
    // The link form shows a page instead, and redirects nowhere.
    let url = format!(
        "{}?appId={}&next={}&redirect=1",
        app.url(BUILD),
        demo::ENTRY_ACCOUNT_APPID,
        urlencode("https://app.example.com@evil.com/")
    );
    assert_error_page(&page(&app, &url).await, 400);
    assert_eq!(
        state_rows(&app).await,
        0,
        "a refused next leaves no state behind"
    );

    // Same host after normalisation, default ports, loopback on any port: accepted.
    for next in [
        "https://APP.example.COM/m",
        "http://app.example.com:80/m",
        "https://app.example.com:443/m",
        "http://127.0.0.1:3000/m/flow_landing",
    ] {
        assert_eq!(
            build_url(&app, demo::ENTRY_ACCOUNT_APPID, next)
                .await
                .status(),
            200,
            "{next}"
        );
    }

    // Bad or unknown appIds are refused too.
    for appid in [
        "",
        "wx123",
        "wxd000000000000099",
        demo::MINI_PROGRAM_APPID,
        demo::COMPONENT_APPID,
    ] {
        let response = build_url(&app, appid, NEXT).await;
        assert_eq!(response.status(), 400, "{appid}");
    }
}

#[tokio::test]
async fn the_seeds_double_encoded_next_still_works() {
    let app = TestApp::spawn(crate::harness::Backend::Sqlite)
        .await
        .unwrap();
    app.push_component_ticket().await;
    let alice = Browser::new(&app, "alice");
    // As the seed's documentation sends it: `next` percent-encoded twice.
    let url = format!(
        "{}?appId={}&next=https%253A%252F%252Fapp.example.com%252Fm%252Fflow_landing%253FappId%253D{}",
        app.url(BUILD),
        demo::ENTRY_ACCOUNT_APPID,
        demo::ENTRY_ACCOUNT_APPID
    );
    let body: Value = app
        .http
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let authorize = body["url"].as_str().unwrap().to_owned();
    let entry_callback = alice.hop(&authorize).await;
    assert_eq!(
        query(&entry_callback)["next"],
        format!(
            "https://app.example.com/m/flow_landing?appId={}",
            demo::ENTRY_ACCOUNT_APPID
        )
    );
    let base_authorize = alice.hop(&entry_callback).await;
    let base_callback = alice.hop(&base_authorize).await;
    let landing = alice.hop(&base_callback).await;
    assert!(landing.starts_with(&format!(
        "https://app.example.com/m/flow_landing?appId={}&openId=",
        demo::ENTRY_ACCOUNT_APPID
    )));
}

#[tokio::test]
async fn wechat_down_mid_flow_shows_a_503_page_with_a_way_back() {
    let app = TestApp::spawn(crate::harness::Backend::Sqlite)
        .await
        .unwrap();
    app.push_component_ticket().await;
    let alice = Browser::new(&app, "alice");
    let entry_authorize = start(&app, demo::ENTRY_ACCOUNT_APPID, NEXT).await;
    let entry_callback = alice.hop(&entry_authorize).await;
    let base_authorize = alice.hop(&entry_callback).await;
    let base_callback = alice.hop(&base_authorize).await;

    app.sim.fail_http(100);
    let p = alice.page(&base_callback).await;
    app.sim.clear_faults();
    assert_error_page(&p, 503);
    assert_eq!(p.retry_after.as_deref(), Some("5"));
    assert!(p.body.contains("unavailable"), "{}", p.body);

    // The page offers to start again, on the same entry account and next.
    let start_over = p
        .body
        .split("id=\"start-over\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a start-over link")
        .replace("&amp;", "&")
        .replace("&#x2f;", "/");
    let q = query(&start_over);
    assert_eq!(q["appId"], demo::ENTRY_ACCOUNT_APPID);
    assert_eq!(q["next"], NEXT);
    let again = alice.hop(&start_over).await;
    assert!(again.starts_with(&format!("{}/connect/oauth2/authorize?", app.sim_base)));

    // WeChat down at the entry hop: the same.
    let entry_authorize = start(&app, demo::ENTRY_ACCOUNT_APPID, NEXT).await;
    let entry_callback = alice.hop(&entry_authorize).await;
    app.sim.fail_busy(100);
    let p = page(&app, &entry_callback).await;
    app.sim.clear_faults();
    assert_error_page(&p, 503);

    // A code WeChat does not know: 400, with the reason.
    let entry_authorize = start(&app, demo::ENTRY_ACCOUNT_APPID, NEXT).await;
    let state = query(&entry_authorize)["state"].clone();
    let forged_code = format!("{}?code=nope&state={state}", app.url(ENTRY_CB));
    let p = page(&app, &forged_code).await;
    assert_error_page(&p, 400);
    assert!(p.body.contains("invalid or expired"), "{}", p.body);

    // No component ticket yet (a fresh server) is a configuration problem: 503, never 500.
    let fresh = TestApp::spawn(crate::harness::Backend::Sqlite)
        .await
        .unwrap();
    let fresh_alice = Browser::new(&fresh, "alice");
    let entry_authorize = start(&fresh, demo::ENTRY_ACCOUNT_APPID, NEXT).await;
    let entry_callback = fresh_alice.hop(&entry_authorize).await;
    assert_error_page(&page(&fresh, &entry_callback).await, 503);
}

#[tokio::test]
async fn the_landing_page_and_its_assets_are_served() {
    let app = TestApp::spawn(crate::harness::Backend::Sqlite)
        .await
        .unwrap();
    let landing = app
        .http
        .get(app.url("/m/flow_landing"))
        .send()
        .await
        .unwrap();
    assert_eq!(landing.status(), 200);
    let headers = landing.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let html = landing.text().await.unwrap();
    assert!(html.contains("width=device-width") && html.contains("/static/flow_landing.js"));
    for (path, kind) in [
        ("/static/flow_landing.js", "text/javascript"),
        ("/static/wxauth.css", "text/css"),
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
    }
    // Only `wxauth dev` gives the page a client; a plain server does not.
    let client = app
        .http
        .get(app.url("/m/flow_landing/client.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(client.status(), 404);
}

//! The front page, `GET /`: what this server is (name, version, issuer) and where its public
//! documents are — discovery, the JWKS, the metadata, health. Under `wxauth dev` it also shows
//! the demo walks the terminal banner prints ([`DevDemo`](crate::http::pages::DevDemo)), so that a newcomer's first click
//! lands somewhere useful instead of on a blank 404. Its texts are the catalogue's, in the
//! browser's language first.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use minijinja::context;
use serde::Serialize;

use crate::config::Config;
use crate::http::messages::{self, Text};
use crate::http::pages::{DevDemo, page, text};
use crate::state::AppState;

/// One link on the page.
#[derive(Debug, Serialize)]
struct Link {
    text: minijinja::Value,
    href: String,
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(front_page))
}

async fn front_page(
    State(config): State<Arc<Config>>,
    demo: Option<Extension<DevDemo>>,
) -> Response {
    let issuer = config.issuer();
    page(
        StatusCode::OK,
        "home.html",
        context! {
            version => env!("CARGO_PKG_VERSION"),
            issuer => &issuer,
            links => public_links(&issuer),
            demo => demo.map(|Extension(demo)| demo_context(&issuer, &demo)),
            t => context! {
                intro => text(messages::HOME_INTRO),
                issuer => text(messages::HOME_ISSUER),
                version => text(messages::HOME_VERSION),
                documents => text(messages::HOME_DOCUMENTS),
                demo => text(messages::HOME_DEMO),
                demo_hint => text(messages::HOME_DEMO_HINT),
                demo_h5 => text(messages::HOME_DEMO_H5),
                demo_oidc => text(messages::HOME_DEMO_OIDC),
                demo_users => text(messages::HOME_DEMO_USERS),
                demo_mini_program => text(messages::HOME_DEMO_MINI_PROGRAM),
            },
        },
    )
}

/// The documents every deployment serves.
fn public_links(issuer: &str) -> Vec<Link> {
    let link = |label: Text, path: &str| Link {
        text: text(label),
        href: format!("{issuer}{path}"),
    };
    vec![
        link(
            messages::LINK_DISCOVERY,
            "/.well-known/openid-configuration",
        ),
        link(
            messages::LINK_METADATA,
            "/.well-known/oauth-authorization-server",
        ),
        link(messages::LINK_JWKS, "/.well-known/jwks.json"),
        link(messages::LINK_API_DOC, crate::http::api_doc::DOC_PAGE_PATH),
        link(messages::LINK_HEALTH, "/healthz"),
    ]
}

fn demo_context(issuer: &str, demo: &DevDemo) -> minijinja::Value {
    let sim = &demo.simulator;
    let mp = &demo.mini_program_appid;
    let client = &demo.demo_client_id;
    let mini_program_steps = format!(
        "# 1. wx.login (the simulator mints a code for alice)\n\
         curl -H 'content-type: application/json' -d '{{\"appid\":\"{mp}\",\"user\":\"alice\"}}' {sim}/__sim/codes/js\n\
         # 2. the Mini Program sends the code: a session and a login ticket\n\
         curl -H 'content-type: application/json' -d '{{\"appId\":\"{mp}\",\"code\":\"CODE\"}}' {issuer}/api/wechat/ma/session\n\
         # 3. your back end redeems the ticket for tokens (the secret is in the terminal)\n\
         curl -u {client}:SECRET -d grant_type=flow -d scope=flow -d appId={mp} \\\n  \
         -d openId=OPENID -d unionId=UNIONID -d ticket=TICKET {issuer}/oauth/token"
    );
    context! {
        h5_walk => &demo.h5_walk,
        oidc_demo => &demo.oidc_demo,
        simulator => sim,
        client_id => client,
        mini_program_steps => mini_program_steps,
    }
}

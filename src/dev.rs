//! `wxauth dev`: the real server on embedded defaults for a first look — a SQLite file in the
//! working directory, a demo client whose fresh secret is printed, and a list of things to try.

use crate::cli::CliError;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::oauth::client_registry::{ClientRegistry, DEFAULT_ACCESS_TTL, DEFAULT_REFRESH_TTL};
use crate::oauth::{FlowTicketPolicy, NewClient};
use crate::state::AppState;

/// The demo client's id.
pub const DEMO_CLIENT_ID: &str = "demo";

/// Run the dev server until ctrl-c.
pub async fn run(clock: SharedClock) -> Result<(), CliError> {
    let config = Config::from_env()?;
    let listen = config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| CliError::new(2, format!("WXAUTH_LISTEN: cannot listen on {listen}: {e}")))?;
    let state = AppState::build(config, clock).await?;
    let secret = ensure_demo_client(&state.clients).await?;
    print_welcome(&state, secret.expose());
    crate::serve(listener, state, crate::shutdown_signal())
        .await
        .map_err(|e| CliError::new(1, format!("server error: {e}")))
}

/// Create the demo client if needed and give it a fresh secret (secrets are stored hashed, so
/// the only way to show one is to make a new one).
async fn ensure_demo_client(clients: &ClientRegistry) -> Result<crate::secret::Secret, CliError> {
    let fail =
        |e: crate::oauth::client_registry::ClientRegistryError| CliError::new(1, e.to_string());
    let secret = ClientRegistry::generate_secret();
    if clients
        .get(DEMO_CLIENT_ID)
        .await
        .map_err(|e| CliError::new(1, e.to_string()))?
        .is_none()
    {
        clients
            .create(NewClient {
                client_id: DEMO_CLIENT_ID.into(),
                secret: Some(secret.clone()),
                grant_types: [
                    "client_credentials",
                    "refresh_token",
                    "flow",
                    "mini_program",
                    "authorization_code",
                ]
                .map(String::from)
                .to_vec(),
                scopes: ["flow", "openid", "profile", "api"]
                    .map(String::from)
                    .to_vec(),
                redirect_uris: vec!["http://127.0.0.1:8080/m/flow_landing".into()],
                public: false,
                first_party: true,
                access_token_ttl: DEFAULT_ACCESS_TTL,
                refresh_token_ttl: DEFAULT_REFRESH_TTL,
                flow_ticket: FlowTicketPolicy::Required,
            })
            .await
            .map_err(fail)?;
    } else {
        clients
            .set_secret(DEMO_CLIENT_ID, &secret)
            .await
            .map_err(fail)?;
    }
    Ok(secret)
}

fn print_welcome(state: &AppState, secret: &str) {
    let base = state.config.issuer();
    println!();
    println!("wxauth dev is running at {base}");
    println!();
    println!("  demo client:   {DEMO_CLIENT_ID} / {secret}   (a new secret on every start)");
    println!("  liveness:      curl {base}/healthz");
    println!("  readiness:     curl {base}/readyz");
    println!();
    println!("Press ctrl-c to stop.");
}

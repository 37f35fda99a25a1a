//! The `wxauth` binary as an operator uses it: configuration errors, client and app commands,
//! log formats, `serve`'s public-URL rule and `healthcheck`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::harness::TempDir;

pub(crate) struct Cli {
    pub(crate) dir: TempDir,
}

impl Cli {
    pub(crate) fn new() -> Self {
        Self {
            dir: TempDir::new(),
        }
    }

    /// A directory where `wxauth migrate` has created the database (the master key is
    /// inline): where every other command may run.
    pub(crate) fn installed() -> Self {
        let cli = Self::new();
        let out = cli.run(&["migrate"], &[]);
        assert!(out.status.success(), "migrate: {}", text(&out.stderr));
        cli
    }

    pub(crate) fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env).output().expect("run wxauth")
    }

    pub(crate) fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wxauth"));
        cmd.args(args)
            .current_dir(&self.dir.0)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .env("WXAUTH_MASTER_KEY", "ab".repeat(32))
            .env(
                "DATABASE_URL",
                format!("sqlite://{}?mode=rwc", self.dir.0.join("cli.db").display()),
            );
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn bad_configuration_is_one_line_naming_the_variable() {
    let cli = Cli::new();
    for (var, value) in [
        ("WXAUTH_LISTEN", "nonsense"),
        ("DATABASE_URL", "oracle://nope"),
        ("WXAUTH_PUBLIC_URL", "not a url"),
        ("WXAUTH_JWT_ALG", "none"),
        ("WXAUTH_MASTER_KEY", "short"),
        ("WXAUTH_LOG_FORMAT", "xml"),
        ("WXAUTH_REDIRECT_ALLOWLIST", "*.com"),
        ("WXAUTH_REDIRECT_ALLOWLIST", "app.*.example.com"),
    ] {
        let out = cli.run(&["serve"], &[(var, value)]);
        assert_eq!(out.status.code(), Some(2), "{var}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{var}: {stderr}");
        assert!(lines[0].contains(var), "{var}: {stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"));
    }
}

#[test]
fn unreachable_database_is_one_line() {
    let cli = Cli::new();
    let out = cli.run(
        &["migrate"],
        &[("DATABASE_URL", "postgres://nobody:pw123@127.0.0.1:1/none")],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("DATABASE_URL"));
    assert!(
        !stderr.contains("pw123"),
        "the password must not be printed: {stderr}"
    );
}

#[test]
fn client_lifecycle_from_the_command_line() {
    let cli = Cli::installed();
    let out = cli.run(
        &[
            "client",
            "create",
            "--client-id",
            "shop",
            "--grant-types",
            "client_credentials,refresh_token",
            "--scopes",
            "api,flow",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let secret = stdout
        .lines()
        .find_map(|l| l.strip_prefix("client_secret:"))
        .map(str::trim)
        .expect("generated secret printed once")
        .to_string();
    assert!(secret.len() >= 43, "256-bit secret: {secret}");

    let show = cli.run(&["client", "show", "shop"], &[]);
    let shown = text(&show.stdout);
    assert!(shown.contains("client_credentials,refresh_token"));
    assert!(!shown.contains(&secret), "secret never shown again");

    let list = text(&cli.run(&["client", "list"], &[]).stdout);
    assert!(list.starts_with("shop\tconfidential"));

    let dup = cli.run(
        &[
            "client",
            "create",
            "--client-id",
            "shop",
            "--grant-types",
            "flow",
            "--scopes",
            "flow",
        ],
        &[],
    );
    assert_eq!(dup.status.code(), Some(1));
    assert!(text(&dup.stderr).contains("already exists"));

    let rotated = text(&cli.run(&["client", "rotate-secret", "shop"], &[]).stdout);
    assert!(rotated.contains("client_secret:") && !rotated.contains(&secret));

    assert!(cli.run(&["client", "delete", "shop"], &[]).status.success());
    assert_eq!(
        cli.run(&["client", "show", "shop"], &[]).status.code(),
        Some(1)
    );
}

#[test]
fn client_create_refuses_bad_input() {
    let cli = Cli::installed();
    let short = cli.run(
        &[
            "client",
            "create",
            "--client-id",
            "a",
            "--secret",
            "short",
            "--grant-types",
            "flow",
            "--scopes",
            "flow",
        ],
        &[],
    );
    assert_eq!(short.status.code(), Some(1));
    assert!(text(&short.stderr).contains("at least 16"));

    let grant = cli.run(
        &[
            "client",
            "create",
            "--client-id",
            "a",
            "--grant-types",
            "password",
            "--scopes",
            "x",
        ],
        &[],
    );
    assert!(text(&grant.stderr).contains("unknown grant type \"password\""));

    let warn = cli.run(
        &[
            "client",
            "create",
            "--client-id",
            "legacy",
            "--grant-types",
            "flow",
            "--scopes",
            "flow",
            "--flow-ticket",
            "optional",
        ],
        &[],
    );
    assert!(warn.status.success());
    assert!(text(&warn.stderr).contains("warning"));
}

#[test]
fn app_commands_validate_appids_and_never_print_secrets() {
    let cli = Cli::installed();
    let bad = cli.run(
        &[
            "app",
            "add",
            "--appid",
            "wx123",
            "--kind",
            "mini_program",
            "--secret",
            "s",
        ],
        &[],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("\"wx\" followed by 16 hex digits"));

    let ok = cli.run(
        &[
            "app",
            "add",
            "--appid",
            "wx4f4bc4dec97d474b",
            "--kind",
            "mini_program",
            "--secret",
            "topsecretappsecret",
        ],
        &[],
    );
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let list = cli.run(&["app", "list"], &[]);
    let listed = text(&list.stdout);
    assert!(listed.contains("wx4f4bc4dec97d474b\tmini_program"));
    assert!(!listed.contains("topsecretappsecret"));

    assert!(
        cli.run(&["app", "remove", "wx4f4bc4dec97d474b"], &[])
            .status
            .success()
    );
    assert!(!text(&cli.run(&["app", "list"], &[]).stdout).contains("wx4f4bc4dec97d474b"));
}

#[test]
fn changes_are_audited_and_the_trail_is_printed_and_filtered() {
    let cli = Cli::installed();
    let user = [("USER", "ops-alice")];
    let created = cli.run(
        &[
            "client",
            "create",
            "--client-id",
            "audited",
            "--grant-types",
            "client_credentials",
            "--scopes",
            "api",
        ],
        &user,
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let secret = text(&created.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("client_secret:")
                .map(|s| s.trim().to_owned())
        })
        .unwrap();
    assert!(
        cli.run(&["client", "rotate-secret", "audited"], &user)
            .status
            .success()
    );
    assert!(cli.run(&["keys", "rotate"], &user).status.success());

    let out = cli.run(&["audit", "--client", "audited"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "create and rotate, newest first: {table}");
    assert!(
        lines[0].contains("client_changed") && lines[0].contains("rotate_secret"),
        "{table}"
    );
    assert!(
        lines[1].contains("\"create\"") && lines[1].contains("actor=cli:ops-alice"),
        "{table}"
    );
    assert!(
        !table.contains(&secret),
        "a secret in the audit trail: {table}"
    );

    let out = cli.run(
        &["audit", "--kind", "key_changed", "--since", "1h", "--json"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // One rotation: a new ES256 key (access and ID tokens) and a new RS256 key (ID tokens).
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["kind"], "key_changed");
    assert_eq!(events[0]["actor"], "cli:ops-alice");

    // Events older than --since are left out.
    let out = cli.run(&["audit", "--since", "2999-01-01"], &[]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "");

    for bad in [
        ["audit", "--kind", "nope"],
        ["audit", "--since", "yesterday"],
    ] {
        let out = cli.run(&bad, &[]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(bad[1]), "{stderr}");
    }
}

/// The one-line JSON objects on stderr, or a failure naming the line that is not one.
fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
        })
        .collect()
}

#[test]
fn logs_are_json_lines_when_piped_text_on_request_and_a_bad_format_is_one_line() {
    // A fresh master key file is announced by a warning: a log line from a short command.
    let fresh_key = [("WXAUTH_MASTER_KEY", "")];
    let out = Cli::new().run(&["migrate"], &fresh_key);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains('\x1b'),
        "ANSI codes off a terminal: {stderr}"
    );
    let lines = json_lines(&stderr);
    let warning = lines
        .iter()
        .find(|l| l["level"] == "WARN")
        .unwrap_or_else(|| panic!("the key-file warning: {stderr}"));
    assert!(
        warning["message"]
            .as_str()
            .is_some_and(|m| m.contains("generated a new master key file")),
        "{warning}"
    );
    assert!(
        warning["path"].as_str().is_some(),
        "fields beside the message: {warning}"
    );

    let out = Cli::new().run(&["migrate"], &[fresh_key[0], ("WXAUTH_LOG_FORMAT", "text")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("WARN") && stderr.contains("generated a new master key file"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\x1b'),
        "ANSI codes off a terminal: {stderr}"
    );
    assert!(
        !stderr.trim_start().starts_with('{'),
        "text, not JSON: {stderr}"
    );

    for command in [&["migrate"][..], &["client", "list"], &["healthcheck"]] {
        let out = Cli::new().run(command, &[("WXAUTH_LOG_FORMAT", "logfmt")]);
        assert_eq!(out.status.code(), Some(2), "{command:?}");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{command:?}: {stderr}");
        assert!(
            stderr.contains("WXAUTH_LOG_FORMAT") && stderr.contains("\"logfmt\""),
            "{stderr}"
        );
    }
}

#[test]
fn serve_on_a_public_address_refuses_to_start_without_a_public_url() {
    let cli = Cli::new();
    // An unreachable database: a server that wrongly started would stop there, naming it,
    // instead of serving on 0.0.0.0 until the test is killed.
    let out = cli.run(
        &["serve"],
        &[
            ("WXAUTH_LISTEN", "0.0.0.0:0"),
            ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("wxauth: WXAUTH_PUBLIC_URL: is required")
            && stderr.contains("0.0.0.0:0"),
        "{stderr}"
    );
}

/// A `wxauth serve` child process, killed on drop.
pub(crate) struct Server(pub(crate) std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn healthcheck_answers_for_a_running_server_and_fails_without_one() {
    let cli = Cli::new();
    // On loopback without WXAUTH_PUBLIC_URL: serve starts, and warns.
    let mut child = cli
        .command(
            &["serve"],
            &[("WXAUTH_LISTEN", "127.0.0.1:0"), ("RUST_LOG", "info")],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wxauth serve");
    let stderr = child.stderr.take().expect("stderr");
    let server = Server(child);
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let listen = loop {
        // A guard against a server that never starts, not a timing assertion.
        let line = lines
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("no `wxauth listening` line ({e}): {seen:#?}"));
        assert!(!line.contains('\x1b'), "ANSI codes off a terminal: {line}");
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        seen.push(event.clone());
        if event["message"] == "wxauth listening" {
            break event["listen"].as_str().expect("listen field").to_owned();
        }
    };
    assert!(
        seen.iter().any(|e| e["level"] == "WARN"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("WXAUTH_PUBLIC_URL is unset"))),
        "serve warns when WXAUTH_PUBLIC_URL is unset: {seen:#?}"
    );

    let healthz = format!("http://{listen}/healthz");
    let out = cli.run(&["healthcheck", "--url", &healthz], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("200"), "{}", text(&out.stdout));
    // By default it probes WXAUTH_LISTEN.
    let by_listen = cli.run(&["healthcheck"], &[("WXAUTH_LISTEN", &listen)]);
    assert!(by_listen.status.success(), "{}", text(&by_listen.stderr));

    let missing = cli.run(
        &["healthcheck", "--url", &format!("http://{listen}/nope")],
        &[],
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("404"),
        "{}",
        text(&missing.stderr)
    );

    drop(server);
    let down = cli.run(&["healthcheck"], &[("WXAUTH_LISTEN", &listen)]);
    assert_eq!(down.status.code(), Some(1), "{}", text(&down.stdout));
    let stderr = text(&down.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");

    let bad = cli.run(&["healthcheck", "--url", "ftp://example.com/"], &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("--url"));
}

#[test]
fn lifetimes_out_of_range_are_refused_with_one_line() {
    let cli = Cli::installed();
    let create = |extra: &[&str]| {
        let mut args = vec![
            "client",
            "create",
            "--client-id",
            "ttl",
            "--grant-types",
            "flow,refresh_token",
            "--scopes",
            "flow",
        ];
        args.extend_from_slice(extra);
        cli.run(&args, &[])
    };
    for (option, value) in [
        ("--refresh-token-ttl", "9223372036854775807"),
        ("--refresh-token-ttl", "31536001"),
        ("--refresh-token-ttl", "0"),
        ("--access-token-ttl", "86401"),
        ("--access-token-ttl", "-1"),
        ("--refresh-family-ttl", "31536001"),
        ("--refresh-family-ttl", "0"),
    ] {
        let out = create(&[option, value]);
        assert_eq!(out.status.code(), Some(2), "{option} {value}");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(option) && stderr.contains(value),
            "{stderr}"
        );
    }
    // Nothing was created; the bounds themselves are accepted.
    assert_eq!(
        cli.run(&["client", "show", "ttl"], &[]).status.code(),
        Some(1)
    );
    let out = create(&[
        "--access-token-ttl",
        "86400",
        "--refresh-token-ttl",
        "31536000",
        "--refresh-family-ttl",
        "31536000",
        "--introspect",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&cli.run(&["client", "show", "ttl"], &[]).stdout);
    assert!(shown.contains("refresh_family_ttl: 31536000"), "{shown}");
    assert!(shown.contains("introspect:        true"), "{shown}");
}

#[test]
fn dev_refuses_a_non_loopback_address() {
    let cli = Cli::new();
    // WXAUTH_DEV_IN_CONTAINER=1 admits only the container's unspecified address, never a LAN one.
    for (listen, in_container) in [("0.0.0.0:0", ""), ("[::]:0", ""), ("192.0.2.10:0", "1")] {
        let out = cli.run(
            &["dev"],
            &[
                ("WXAUTH_LISTEN", listen),
                ("WXAUTH_DEV_IN_CONTAINER", in_container),
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(2),
            "{listen}: {}",
            text(&out.stderr)
        );
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("WXAUTH_LISTEN") && stderr.contains("loopback"),
            "{stderr}"
        );
    }
}

/// The single line of a refusal: its exit status and text.
fn refusal(out: &Output) -> (Option<i32>, String) {
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code(), stderr)
}

#[test]
fn commands_run_in_the_wrong_directory_create_nothing_and_say_where_they_looked() {
    let cli = Cli::new();
    // The defaults: ./wxauth.db and ./wxauth.key.
    let defaults = [("DATABASE_URL", ""), ("WXAUTH_MASTER_KEY", "")];
    for command in [
        &["client", "list"][..],
        &["app", "list"],
        &["keys", "list"],
        &["user", "show", "1"],
        &["audit"],
        &["janitor"],
    ] {
        let (status, line) = refusal(&cli.run(command, &defaults));
        assert_eq!(status, Some(2), "{command:?}: {line}");
        let dir = cli.dir.0.display().to_string();
        assert!(
            line.contains("DATABASE_URL")
                && line.contains(&format!("{dir}/wxauth.db (missing)"))
                && line.contains(&format!("{dir}/wxauth.key (missing)"))
                && line.contains("WXAUTH_MASTER_KEY_FILE"),
            "{command:?}: {line}"
        );
        assert!(
            !cli.dir.0.join("wxauth.db").exists() && !cli.dir.0.join("wxauth.key").exists(),
            "{command:?} created a database or a key"
        );
    }
    // migrate creates both; then the same commands work.
    let out = cli.run(&["migrate"], &defaults);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(cli.dir.0.join("wxauth.db").exists() && cli.dir.0.join("wxauth.key").exists());
    let out = cli.run(&["client", "list"], &defaults);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A key file without its database (or the other way round) is refused too, naming both.
    std::fs::remove_file(cli.dir.0.join("wxauth.key")).unwrap();
    let (status, line) = refusal(&cli.run(&["app", "list"], &defaults));
    assert_eq!(status, Some(2));
    assert!(
        line.starts_with("wxauth: WXAUTH_MASTER_KEY_FILE")
            && line.contains("wxauth.db (found)")
            && line.contains("wxauth.key (missing)"),
        "{line}"
    );
    assert!(!cli.dir.0.join("wxauth.key").exists());

    // A database file without wxauth's tables is not an installation either.
    let empty = cli.dir.0.join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let url = format!("sqlite://{}?mode=rwc", empty.display());
    let (status, line) = refusal(&cli.run(&["client", "list"], &[("DATABASE_URL", &url)]));
    assert_eq!(status, Some(2));
    assert!(
        line.contains("DATABASE_URL") && line.contains("no wxauth tables"),
        "{line}"
    );
}

#[test]
fn a_sqlite_url_that_cannot_create_its_file_says_what_to_add() {
    let cli = Cli::new();
    let file = cli.dir.0.join("new.db");
    let url = format!("sqlite://{}", file.display());
    let (status, line) = refusal(&cli.run(&["migrate"], &[("DATABASE_URL", &url)]));
    assert_eq!(status, Some(2));
    assert!(
        line.contains("DATABASE_URL") && line.contains("add ?mode=rwc"),
        "{line}"
    );
    let nowhere = format!(
        "sqlite://{}?mode=rwc",
        cli.dir.0.join("no-such-dir/x.db").display()
    );
    let (status, line) = refusal(&cli.run(&["migrate"], &[("DATABASE_URL", &nowhere)]));
    assert_eq!(status, Some(2));
    assert!(line.contains("no-such-dir does not exist"), "{line}");
    // With the suffix it works.
    let out = cli.run(
        &["migrate"],
        &[("DATABASE_URL", &format!("{url}?mode=rwc"))],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_wrong_master_key_names_the_signing_key_and_both_variables() {
    let cli = Cli::installed();
    let (status, line) = refusal(&cli.run(
        &["client", "list"],
        &[("WXAUTH_MASTER_KEY", &"cd".repeat(32))],
    ));
    assert_eq!(status, Some(2));
    assert!(
        line.starts_with("wxauth: WXAUTH_MASTER_KEY: the signing key ")
            && line.contains("does not open with the master key from WXAUTH_MASTER_KEY")
            && line.contains("WXAUTH_MASTER_KEY_FILE"),
        "{line}"
    );
    // From a key file, the file is named.
    let key_file = cli.dir.0.join("other.key");
    std::fs::write(&key_file, "ef".repeat(32)).unwrap();
    let (status, line) = refusal(&cli.run(
        &["client", "list"],
        &[
            ("WXAUTH_MASTER_KEY", ""),
            ("WXAUTH_MASTER_KEY_FILE", key_file.to_str().unwrap()),
        ],
    ));
    assert_eq!(status, Some(2));
    assert!(
        line.starts_with("wxauth: WXAUTH_MASTER_KEY_FILE: the signing key ")
            && line.contains(&format!(
                "in {} (WXAUTH_MASTER_KEY_FILE)",
                key_file.display()
            )),
        "{line}"
    );
}

#[test]
fn clients_that_cannot_work_and_negative_lifetimes_are_refused_with_the_reason() {
    let cli = Cli::installed();
    let create = |extra: &[&str]| {
        let mut args = vec![
            "client",
            "create",
            "--client-id",
            "web",
            "--scopes",
            "openid",
        ];
        args.extend_from_slice(extra);
        cli.run(&args, &[])
    };
    let (status, line) = refusal(&create(&["--grant-types", "authorization_code"]));
    assert_eq!(status, Some(1));
    assert!(
        line.contains("--redirect-uri: authorization_code needs at least one redirect URI"),
        "{line}"
    );
    let (status, line) = refusal(&create(&[
        "--grant-types",
        "client_credentials",
        "--public",
    ]));
    assert_eq!(status, Some(1));
    assert!(
        line.contains("--grant-types: a public client cannot have client_credentials"),
        "{line}"
    );
    // A negative number is a value, refused with its bound (not clap's "unexpected argument").
    let (status, line) = refusal(&create(&[
        "--grant-types",
        "client_credentials",
        "--access-token-ttl",
        "-5",
    ]));
    assert_eq!(status, Some(2));
    assert!(
        line.contains("--access-token-ttl: must be from 1 to 86400 seconds, got -5"),
        "{line}"
    );
    assert_eq!(
        cli.run(&["client", "show", "web"], &[]).status.code(),
        Some(1),
        "a refused client was written"
    );
    // The same client with a redirect URI is fine; an update cannot take the URI away.
    let out = create(&[
        "--grant-types",
        "authorization_code",
        "--redirect-uri",
        "https://app.example.com/cb",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (status, line) = refusal(&cli.run(
        &[
            "client",
            "update",
            "web",
            "--grant-types",
            "authorization_code,client_credentials",
            "--access-token-ttl",
            "-1",
        ],
        &[],
    ));
    assert_eq!(status, Some(2));
    assert!(line.contains("got -1"), "{line}");
}

#[test]
fn secret_rotation_says_when_the_old_secret_stops() {
    let cli = Cli::installed();
    let out = cli.run(
        &[
            "client",
            "create",
            "--client-id",
            "svc",
            "--grant-types",
            "client_credentials",
            "--scopes",
            "api",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = cli.run(&["client", "rotate-secret", "svc"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    // The default overlap (a day), as a time a person reads, and the servers' few seconds.
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    assert!(
        said.contains(&format!("the old secret keeps working until {tomorrow} "))
            && said.contains(" UTC (unix ")
            && said.contains("running servers accept the new one within 5 s"),
        "{said}"
    );
    let out = cli.run(&["client", "rotate-secret", "svc", "--overlap", "0"], &[]);
    let said = text(&out.stdout);
    assert!(
        said.contains("the old secret stops now: running servers refuse it, and accept the new one, within 5 s"),
        "{said}"
    );
    assert!(!said.contains("no longer works"), "{said}");
    let (status, line) =
        refusal(&cli.run(&["client", "rotate-secret", "svc", "--overlap", "-5"], &[]));
    assert_eq!(status, Some(2));
    assert!(
        line.contains("--overlap") && line.contains("2592000"),
        "{line}"
    );
}

#[test]
fn audit_limits_out_of_range_are_refused_with_the_bound() {
    let cli = Cli::installed();
    for limit in ["9223372036854775807", "100001", "0", "-5"] {
        let (status, line) = refusal(&cli.run(&["audit", "--limit", limit], &[]));
        assert_eq!(status, Some(2), "{limit}: {line}");
        assert!(
            line.contains(&format!("--limit: must be from 1 to 100000, got {limit}")),
            "{line}"
        );
    }
    assert!(
        cli.run(&["audit", "--limit", "100000"], &[])
            .status
            .success()
    );
    // Pages of `user find` likewise: a negative number is a value, refused with its bound.
    for (option, bound) in [("--page", "at least 1"), ("--per-page", "from 1 to 500")] {
        let (status, line) = refusal(&cli.run(&["user", "find", option, "-5"], &[]));
        assert_eq!(status, Some(2), "{option}: {line}");
        assert!(
            line.contains(&format!("{option}: must be {bound}")),
            "{line}"
        );
    }
}

const COMPONENT: &str = "wxc0c0c0c0c0c0c0c0";
const ACCOUNT_A: &str = "wxa0a0a0a0a0a0a0a0";
const ACCOUNT_B: &str = "wxb0b0b0b0b0b0b0b0";
const UNKNOWN: &str = "wxd0d0d0d0d0d0d0d0";

#[test]
fn app_links_stay_consistent_and_a_second_base_needs_replace() {
    let cli = Cli::installed();
    let add_account = |appid: &str, component: &str, extra: &[&str]| {
        let mut args = vec![
            "app",
            "add",
            "--appid",
            appid,
            "--kind",
            "official_account",
            "--component-appid",
            component,
        ];
        args.extend_from_slice(extra);
        cli.run(&args, &[])
    };
    // An account under a component nobody registered.
    let (status, line) = refusal(&add_account(ACCOUNT_A, UNKNOWN, &[]));
    assert_eq!(status, Some(1));
    assert!(
        line.contains(&format!("component {UNKNOWN} is not registered")),
        "{line}"
    );
    let aes_key = "a".repeat(43);
    let out = cli.run(
        &[
            "app",
            "add",
            "--appid",
            COMPONENT,
            "--kind",
            "component",
            "--secret",
            "component-secret",
            "--token",
            "tok",
            "--aes-key",
            &aes_key,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = add_account(ACCOUNT_A, COMPONENT, &["--base"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A second base account would take over every H5 sign-in: refused without --replace.
    let (status, line) = refusal(&add_account(ACCOUNT_B, COMPONENT, &["--base"]));
    assert_eq!(status, Some(1));
    assert!(
        line.contains(&format!("{ACCOUNT_A} is already the base account"))
            && line.contains("--replace"),
        "{line}"
    );
    let listed = text(&cli.run(&["app", "list"], &[]).stdout);
    assert!(!listed.contains(ACCOUNT_B), "{listed}");
    assert!(
        listed.contains(&format!(
            "{ACCOUNT_A}\tofficial_account\tcomponent={COMPONENT}\tbase"
        )),
        "{listed}"
    );
    let out = cli.run(
        &[
            "app",
            "add",
            "--appid",
            ACCOUNT_B,
            "--kind",
            "official_account",
            "--replace",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "--replace without --base");
    let out = add_account(ACCOUNT_B, COMPONENT, &["--base", "--replace"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!(
            "{ACCOUNT_B} is now the base account in place of {ACCOUNT_A}"
        )),
        "{}",
        text(&out.stdout)
    );
    let listed = text(&cli.run(&["app", "list"], &[]).stdout);
    let bases: Vec<&str> = listed.lines().filter(|l| l.ends_with("\tbase")).collect();
    assert_eq!(bases.len(), 1, "{listed}");
    assert!(bases[0].starts_with(ACCOUNT_B), "{listed}");

    // The component cannot go while accounts still use it; the message names them.
    let (status, line) = refusal(&cli.run(&["app", "remove", COMPONENT], &[]));
    assert_eq!(status, Some(1));
    assert!(
        line.contains(&format!(
            "still used by official account(s) {ACCOUNT_A}, {ACCOUNT_B}"
        )),
        "{line}"
    );
    assert!(text(&cli.run(&["app", "list"], &[]).stdout).contains(COMPONENT));
    // A secret reset in WeChat's console is an update, which keeps the accounts under it.
    let out = cli.run(
        &[
            "app",
            "update",
            COMPONENT,
            "--secret",
            "the-reset-component-secret",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (status, line) = refusal(&cli.run(&["app", "update", ACCOUNT_A, "--token", "t"], &[]));
    assert_eq!(status, Some(1));
    assert!(line.contains("under a component"), "{line}");
    let listed = text(&cli.run(&["app", "list"], &[]).stdout);
    assert!(!listed.contains("the-reset-component-secret"), "{listed}");
    for appid in [ACCOUNT_A, ACCOUNT_B, COMPONENT] {
        let out = cli.run(&["app", "remove", appid], &[]);
        assert!(out.status.success(), "{appid}: {}", text(&out.stderr));
    }
}

#[test]
fn the_admin_role_is_granted_listed_and_revoked_from_the_command_line() {
    let cli = Cli::new();
    assert!(cli.run(&["migrate"], &[]).status.success());
    // An account, as a WeChat sign-in would have made it.
    let url = format!("sqlite://{}?mode=rwc", cli.dir.0.join("cli.db").display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use sea_orm::{ConnectionTrait, Database};
        let db = Database::connect(&url).await.unwrap();
        db.execute_unprepared(
            "INSERT INTO flow_user (id, union_id, nick_name, created_at, updated_at) \
             VALUES (7, 'union-ada', 'Ada', 1, 1)",
        )
        .await
        .unwrap();
    });

    let granted = cli.run(
        &["admin", "grant", "--unionid", "union-ada"],
        &[("USER", "ops")],
    );
    assert!(granted.status.success(), "{}", text(&granted.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&granted.stdout).unwrap();
    assert_eq!(shown["account_id"], 7);
    assert_eq!(shown["granted_by"], "cli:ops");

    let listed: serde_json::Value =
        serde_json::from_slice(&cli.run(&["admin", "list"], &[]).stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["nick_name"], "Ada");

    // Exactly one of --account and --unionid; an unknown account is one line.
    assert_eq!(cli.run(&["admin", "grant"], &[]).status.code(), Some(2));
    assert_eq!(
        cli.run(&["admin", "grant", "--account", "7", "--unionid", "u"], &[])
            .status
            .code(),
        Some(2)
    );
    let unknown = cli.run(&["admin", "grant", "--account", "8"], &[]);
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(
        text(&unknown.stderr).lines().count(),
        1,
        "{}",
        text(&unknown.stderr)
    );

    let revoked = cli.run(&["admin", "revoke", "--account", "7"], &[]);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let listed: serde_json::Value =
        serde_json::from_slice(&cli.run(&["admin", "list"], &[]).stdout).unwrap();
    assert_eq!(listed, serde_json::json!([]));
    assert_eq!(
        cli.run(&["admin", "revoke", "--account", "7"], &[])
            .status
            .code(),
        Some(1)
    );

    let trail = text(&cli.run(&["audit", "--account", "7", "--json"], &[]).stdout);
    assert!(
        trail.contains("grant_admin") && trail.contains("revoke_admin"),
        "{trail}"
    );
    assert!(trail.contains("cli:ops"), "{trail}");
}

#[test]
fn client_logout_settings_from_the_command_line() {
    let cli = Cli::installed();
    let out = cli.run(
        &[
            "client",
            "create",
            "--client-id",
            "console",
            "--grant-types",
            "authorization_code",
            "--scopes",
            "openid",
            "--redirect-uri",
            "https://console.example.com/cb",
            "--post-logout-redirect-uri",
            "https://console.example.com/bye",
            "--post-logout-redirect-uri",
            "https://console.example.com/bye2",
            "--backchannel-logout-uri",
            "https://console.example.com/bcl",
            "--backchannel-logout-session-required",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("post_logout_redirect_uris: https://console.example.com/bye https://console.example.com/bye2"),
        "{shown}"
    );
    assert!(
        shown.contains("backchannel_logout_uri: https://console.example.com/bcl (sid required)"),
        "{shown}"
    );
    // A back-channel URI over plain http elsewhere than localhost, a relative redirect: refused.
    for args in [
        &["--backchannel-logout-uri", "http://console.example.com/bcl"][..],
        &["--post-logout-redirect-uri", "/bye"][..],
    ] {
        let mut all = vec!["client", "update", "console"];
        all.extend_from_slice(args);
        let refused = cli.run(&all, &[]);
        assert_eq!(refused.status.code(), Some(1), "{args:?}");
        assert!(
            text(&refused.stderr).contains(&format!("{}:", args[0])),
            "{}",
            text(&refused.stderr)
        );
    }
    let out = cli.run(
        &[
            "client",
            "update",
            "console",
            "--clear-post-logout-redirect-uris",
            "--clear-backchannel-logout-uri",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("post_logout_redirect_uris: \n")
            && shown.contains("backchannel_logout_uri: -"),
        "{shown}"
    );
}

#[test]
fn a_clients_credential_broker_appids_from_the_command_line() {
    let cli = Cli::installed();
    let out = cli.run(
        &[
            "client",
            "create",
            "--client-id",
            "billing",
            "--grant-types",
            "client_credentials",
            "--scopes",
            "wechat:credentials",
            "--wechat-appid",
            "wxd000000000000001",
            "--wechat-appid",
            "wxd000000000000002",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("wechat_appids:     wxd000000000000001 wxd000000000000002"),
        "{shown}"
    );
    let refused = cli.run(
        &["client", "update", "billing", "--wechat-appid", "gh_1234"],
        &[],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("--wechat-appid:"),
        "{}",
        text(&refused.stderr)
    );
    let out = cli.run(
        &["client", "update", "billing", "--clear-wechat-appids"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stdout).contains("wechat_appids"),
        "{}",
        text(&out.stdout)
    );
}

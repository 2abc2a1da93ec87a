//! The command line: documented flags, and one clear error line with a non-zero exit for
//! bad flags, a port in use, an unusable data directory, or a database it cannot open.

use std::process::Command;

use crate::process;

fn webhookd(args: &[&str]) -> std::process::Output {
    process::run(args, &[])
}

#[test]
fn help_documents_every_flag() {
    let output = webhookd(&["serve", "--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--data-dir",
        "--grpc-addr",
        "--http-addr",
        "--allow-private-targets",
        "--retry-schedule",
        "--request-timeout",
        "--log-format",
        "--retention",
        "WEBHOOKD_RETENTION",
        "--store",
        "WEBHOOKD_STORE",
        "--egress-proxy",
        "WEBHOOKD_EGRESS_PROXY",
        "--lease",
        "WEBHOOKD_LEASE",
        "--emit-memory-mib",
        "WEBHOOKD_EMIT_MEMORY_MIB",
        "--store-pool-size",
        "WEBHOOKD_STORE_POOL_SIZE",
        "WEBHOOKD_DATA_DIR",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(webhookd(&["--help"]).status.success());
}

#[test]
fn bad_flags_are_refused_with_a_clear_message() {
    let output = webhookd(&["serve", "--retry-schedule", "soon"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--retry-schedule"));
    let output = webhookd(&["serve", "--retention", "a while"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--retention"));
    let output = webhookd(&["serve", "--grpc-addr", "nowhere"]);
    assert!(!output.status.success());
    for mib in ["0", "lots"] {
        let output = webhookd(&["serve", "--emit-memory-mib", mib]);
        assert!(
            !output.status.success(),
            "--emit-memory-mib {mib} was accepted"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--emit-memory-mib"), "{stderr}");
    }
    for size in ["0", "many"] {
        let output = webhookd(&["serve", "--store-pool-size", size]);
        assert!(
            !output.status.success(),
            "--store-pool-size {size} was accepted"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--store-pool-size"), "{stderr}");
    }
    for lease in ["forever", "500ms"] {
        let output = webhookd(&["serve", "--lease", lease]);
        assert!(!output.status.success(), "--lease {lease} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--lease"), "{stderr}");
    }
    assert!(
        String::from_utf8_lossy(&webhookd(&["serve", "--lease", "0s"]).stderr)
            .contains("at least 1s")
    );
}

#[test]
fn a_bad_store_is_one_error_line_that_never_shows_its_password() {
    let dir = tempfile::tempdir().unwrap();
    for store in [
        "mysql://webhookd:hunter2-secret@127.0.0.1:1/db",
        "postgres://webhookd:hunter2-secret@127.0.0.1:1/webhookd?sslmode=disable",
    ] {
        let output = process::serve(dir.path())
            .env("WEBHOOKD_STORE", store)
            .env("RUST_LOG", "info")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{store} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let last = stderr.trim().lines().last().unwrap_or_default();
        assert!(last.starts_with("webhookd: error:"), "{stderr}");
        assert!(
            !stderr.contains("hunter2") && !stdout.contains("hunter2"),
            "{stderr}"
        );
    }
}

#[test]
fn a_bad_egress_proxy_is_refused_naming_the_flag_without_echoing_credentials() {
    for value in [
        "ftp://svc:s3cret@proxy:21",
        "socks5h://svc:s3cret@proxy",
        "http://svc:s3cret@",
        "proxy:3128",
    ] {
        let output = webhookd(&["serve", "--egress-proxy", value]);
        assert!(!output.status.success(), "{value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--egress-proxy"), "{value}: {stderr}");
        assert!(!stderr.contains("s3cret"), "{value}: {stderr}");
    }
    let output = process::run(
        &["serve"],
        &[("WEBHOOKD_EGRESS_PROXY", "https://svc:s3cret@proxy")],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--egress-proxy") && stderr.contains("unsupported proxy scheme"));
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

#[test]
fn a_port_in_use_is_one_error_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = webhookd(&[
        "serve",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--grpc-addr",
        &addr,
        "--http-addr",
        "127.0.0.1:0",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&addr) && stderr.contains("gRPC"),
        "{stderr}"
    );
}

#[test]
fn an_unusable_data_dir_is_one_error_line() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let output = webhookd(&[
        "serve",
        "--data-dir",
        file.path().to_str().unwrap(),
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("data directory"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[tokio::test]
async fn a_second_webhookd_on_the_same_data_dir_names_the_other_one() {
    // On sled (the data dir's lock is sled's), whichever backend the suite runs on.
    let server =
        crate::support::TestServer::start_with(|c| c.store = webhookd::config::StoreBackend::Sled)
            .await;
    server.writer("acme").await; // the first one is up and holds its data dir
    let dir = server.data_dir().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        process::serve(&dir)
            .env("RUST_LOG", "error")
            .env("WEBHOOKD_ADMIN_TOKEN", "second")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let expected = format!("another webhookd is using {}", server.data_dir().display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(!stderr.contains("lock"), "{stderr}");
}

/// A `webhookd serve` child on ephemeral ports (read back from its start-up log line), with
/// `args` and `env` added; killed when dropped.
struct Served {
    child: std::process::Child,
    http: String,
    _dir: tempfile::TempDir,
}

impl Served {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Served {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let mut child = process::serve(dir.path())
            .args(["--log-format", "json", "--retry-schedule", "10ms"])
            .args(args)
            .envs(env.iter().copied())
            .env("WEBHOOKD_ADMIN_TOKEN", crate::support::ADMIN_TOKEN)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let serving = stderr
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(&line.unwrap()).unwrap())
            .find(|line| line["fields"]["message"] == "webhookd is serving")
            .expect("the server never said it is serving");
        let http = serving["fields"]["http"].as_str().unwrap().to_string();
        Served {
            child,
            http,
            _dir: dir,
        }
    }

    /// Whether an event reaches a webhook on a local receiver (its first attempt got a 200;
    /// a refused target has no status).
    async fn delivers_locally(&self) -> bool {
        use crate::support::*;
        use axum::http::Method;
        let receiver = Receiver::start().await;
        let url = |path: &str| format!("http://{}{path}", self.http);
        let (_, token) = http_json(
            Method::POST,
            &url("/admin/v1/tokens"),
            Some(&format!("Bearer {ADMIN_TOKEN}")),
            Some(serde_json::json!({"account_id": "acme", "scopes": ["webhooks:read", "webhooks:write"]})),
        )
        .await;
        let token = token["token"].as_str().unwrap().to_string();
        let (_, hook) = http_json(
            Method::POST,
            &url("/api/v1/webhooks/"),
            Some(&token),
            Some(serde_json::json!({"name": "local", "url": receiver.url("/hook"), "trigger_type": "resolve"})),
        )
        .await;
        let id = hook["id"].as_str().unwrap().to_string();
        http_json(
            Method::POST,
            &url("/api/v1/events/"),
            Some(&token),
            Some(serde_json::json!({"event": {"type": "resolve"}})),
        )
        .await;
        eventually(|| {
            let (path, token) = (url(&format!("/api/v1/webhooks/{id}/responses/")), &token);
            async move {
                let (_, log) = http_json(Method::GET, &path, Some(token), None).await;
                let first = log["results"].as_array()?.last()?.clone();
                Some(first["status_code"] == 200)
            }
        })
        .await
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn help_says_boolean_flags_take_true_false_1_0() {
    let output = webhookd(&["serve", "--help"]);
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in ["--allow-private-targets [<BOOL>]", "--retry-jitter <BOOL>"] {
        let text = help.split(flag).nth(1).expect(flag);
        let text = &text[..text.find("\n      --").unwrap_or(text.len())];
        assert!(text.contains("true/false/1/0"), "{flag}: {text}");
    }
}

#[test]
fn a_boolean_that_is_not_one_is_refused_naming_the_flag() {
    let output = webhookd(&["serve", "--allow-private-targets=maybe"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--allow-private-targets"));
    let output = process::run(&["serve"], &[("WEBHOOKD_RETRY_JITTER", "perhaps")]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--retry-jitter"));
}

#[tokio::test]
async fn allow_private_targets_takes_a_bare_flag_or_true_false_1_0_in_flag_and_env() {
    for (args, env, allowed) in [
        (&["--allow-private-targets"][..], &[][..], true),
        (&["--allow-private-targets=1"][..], &[][..], true),
        (&["--allow-private-targets", "false"][..], &[][..], false),
        (
            &[][..],
            &[("WEBHOOKD_ALLOW_PRIVATE_TARGETS", "1")][..],
            true,
        ),
        (
            &[][..],
            &[("WEBHOOKD_ALLOW_PRIVATE_TARGETS", "0")][..],
            false,
        ),
        (
            &[][..],
            &[("WEBHOOKD_ALLOW_PRIVATE_TARGETS", "true")][..],
            true,
        ),
    ] {
        let served = Served::start(args, env);
        assert_eq!(served.delivers_locally().await, allowed, "{args:?} {env:?}");
    }
}

#[test]
fn scripts_test_names_missing_or_old_prerequisites_before_building_anything() {
    use std::os::unix::fs::PermissionsExt;
    // A machine whose Go and Node.js are too old: fake ones first on PATH.
    let fakes = tempfile::tempdir().unwrap();
    for (name, version) in [("go", "go1.24.3"), ("node", "v18.1.0")] {
        let path = fakes.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\necho {version}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        fakes.path().display(),
        std::env::var("PATH").unwrap()
    );
    let output = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test"))
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Go 1.26+ is required; found 1.24.3"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Node.js 20+ is required; found 18.1.0"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("cargo fmt"), "{stdout}");
}

/// `serve` on a PostgreSQL URL, with ephemeral ports and a fresh data directory.
fn serve_on(store: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    process::serve(dir.path())
        .args(["--store", store])
        .env("RUST_LOG", "error")
        .output()
        .unwrap()
}

#[test]
fn an_unreachable_database_is_one_error_line_without_the_password() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let output = serve_on(&format!(
        "postgres://webhookd:pw-7f3a9c@127.0.0.1:{port}/webhookd"
    ));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("PostgreSQL") && stderr.contains(&format!("127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(!stderr.contains("pw-7f3a9c"), "{stderr}");
}

#[test]
fn a_store_that_is_neither_sled_nor_a_postgres_url_is_refused_naming_the_flag() {
    let output = serve_on("mysql://localhost/db");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--store"));
}

#[tokio::test]
async fn bad_database_credentials_are_one_error_line_without_the_password() {
    let store = crate::support::TestStore::new().await;
    let Some(url) = store.postgres_url else {
        return; // needs a PostgreSQL server (scripts/with-postgres)
    };
    let (userinfo, rest) = url.split_once('@').unwrap();
    let user = userinfo.rsplit_once(':').unwrap().0;
    let output = serve_on(&format!("{user}:wrong-7f3a9c@{rest}"));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-7f3a9c"), "{stderr}");
}

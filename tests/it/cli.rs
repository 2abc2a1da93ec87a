//! The command line: documented flags, and one clear error line with a non-zero exit for
//! bad flags, a port in use, or an unusable data directory.

use std::process::Command;

fn webhookd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_webhookd"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .unwrap()
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
    let server = crate::support::TestServer::start().await;
    server.writer("acme").await; // the first one is up and holds its data dir
    let dir = server.data_dir().to_str().unwrap().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_webhookd"))
            .args(["serve", "--data-dir", &dir])
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
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

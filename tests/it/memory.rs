//! The memory settings of the process: the allocator's options webhookd sets (each one an
//! environment variable can still override) and the size of sled's page cache
//! (`--sled-cache-mib`), validated with a clear error and honoured through a restart.

use std::collections::HashSet;

use crate::process::{self, Process};
use crate::support::*;

/// The start-up log of a `webhookd serve` that stops at once (its data dir is a file), with
/// `env` added; the allocator's variables of the test's own environment are removed.
fn start_up_log(env: &[(&str, &str)]) -> String {
    let file = tempfile::NamedTempFile::new().unwrap();
    let output = process::serve(file.path())
        .env_remove("MIMALLOC_ARENA_EAGER_COMMIT")
        .env_remove("MIMALLOC_PURGE_DELAY")
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_allocator_returns_freed_memory_at_once_unless_the_environment_says_otherwise() {
    let log = start_up_log(&[]);
    assert!(
        log.contains("mimalloc options: arena_eager_commit=0 purge_delay=0"),
        "{log}"
    );
    let log = start_up_log(&[("MIMALLOC_PURGE_DELAY", "250")]);
    assert!(
        log.contains("mimalloc options: arena_eager_commit=0 purge_delay=250"),
        "{log}"
    );
}

#[test]
fn a_sled_cache_size_that_is_not_a_positive_number_of_mib_is_refused_naming_the_flag() {
    for mib in ["0", "-5", "lots", "65537"] {
        let output = process::run(&["serve", &format!("--sled-cache-mib={mib}")], &[]);
        assert!(
            !output.status.success(),
            "--sled-cache-mib {mib} was accepted"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--sled-cache-mib"), "{stderr}");
    }
    let output = process::run(&["serve"], &[("WEBHOOKD_SLED_CACHE_MIB", "none")]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--sled-cache-mib"));
}

/// Events of 16 KiB each emitted through the small cache.
const EVENTS: usize = 80;

#[tokio::test]
async fn a_one_mib_sled_cache_still_delivers_and_keeps_everything_across_a_restart() {
    let store = TestStore::new().await;
    let receiver = Receiver::start().await;
    let small = ["--sled-cache-mib", "1"];
    let first = Process::start(&store, &small).await;
    first.ready().await;
    let token = TestServer::token_via(first.http).await;
    let mut client = connect_webhooks(first.grpc).await;
    let hook = create(
        &mut client,
        &token,
        webhook("small", &receiver.url("/hook")),
    )
    .await;
    // Enough events that their records outgrow a 1 MiB cache; each stream ends once its
    // delivery succeeded.
    let pad = "x".repeat(16 * 1024);
    for i in 0..EVENTS {
        let data = serde_json::json!({"alert_group": {"id": format!("AG{i}")}, "pad": pad});
        let statuses = emit_all(&mut client, &token, "alert group created", data).await;
        assert_eq!(states(&statuses).last(), Some(&"SUCCEEDED"));
    }
    let mut arrived = HashSet::new();
    for _ in 0..EVENTS {
        arrived.insert(receiver.next().await.json()["alert_group"]["id"].clone());
    }
    assert_eq!(arrived.len(), EVENTS, "each event arrived once");
    drop(client); // a graceful stop waits for open connections
    let (status, _) = tokio::task::spawn_blocking(move || first.terminate())
        .await
        .unwrap();
    assert!(status.success());

    let second = Process::start(&store, &small).await;
    second.ready().await;
    let mut client = connect_webhooks(second.grpc).await;
    let log = responses(&mut client, &token, &hook.id).await;
    assert_eq!(log.len(), EVENTS, "every attempt is still recorded");
    emit_all(
        &mut client,
        &token,
        "alert group created",
        serde_json::json!({"alert_group": {"id": "after"}}),
    )
    .await;
    assert_eq!(receiver.next().await.json()["alert_group"]["id"], "after");
}

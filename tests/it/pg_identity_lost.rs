//! An instance on PostgreSQL whose id another live instance took while its session holding
//! the id was lost (the database restarted, or the session was ended) stops at once with one
//! clear error and a non-zero exit, instead of running on beside its twin with the same
//! leases. The twin keeps serving. Real binaries on one database.

use std::time::Duration;

use sqlx::Connection;

use crate::process::Process;
use crate::support::*;

/// Ends the session holding the first instance's id as soon as the twin is waiting for it
/// (two sessions of the id keeper are open): the twin takes the id before the first one
/// can take it again.
async fn end_the_first_holders_session(url: &str) {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let sessions = "SELECT pid FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'webhookd-instance'
        ORDER BY backend_start";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let first = loop {
        let pids: Vec<i32> = sqlx::query_scalar(sessions)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        if pids.len() == 2 {
            break pids[0];
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the twin never waited for the id: {pids:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(ended);
}

#[tokio::test]
async fn an_instance_whose_id_a_twin_took_while_its_session_was_lost_stops_with_one_error() {
    let store = TestStore::new().await;
    let Some(url) = store.postgres_url.clone() else {
        eprintln!("skipped: WEBHOOKD_TEST_POSTGRES_URL is not set (instance ids need PostgreSQL)");
        return;
    };
    let first = Process::start(&store, &[]).await;
    first.ready().await;

    // A twin on the same data directory (so the same id) starts and waits for the id; the
    // first one's session is lost meanwhile, and the twin gets the id.
    let (twin, ()) = tokio::join!(
        Process::start(&store, &[]),
        end_the_first_holders_session(&url)
    );
    twin.ready().await;

    // The first one finds its id taken when it takes its session back: it stops.
    let (status, logs) = first.exited(Duration::from_secs(30)).await;
    assert!(!status.success(), "{logs}");
    let reason = "another live webhookd instance took this instance's id";
    let logged: Vec<&str> = logs
        .lines()
        .filter(|l| l.starts_with('{') && l.contains(reason))
        .collect();
    assert_eq!(
        logged.len(),
        1,
        "logged once, as the reason to stop: {logs}"
    );
    assert!(logged[0].contains("\"ERROR\""), "{}", logged[0]);
    let last = logs.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("webhookd: error: internal error: store: ") && last.contains(reason),
        "{last}"
    );

    // The twin serves on.
    let token = TestServer::token_via(twin.http).await;
    let mut client = connect_webhooks(twin.grpc).await;
    create(&mut client, &token, webhook("after", "http://127.0.0.1:9/")).await;
}

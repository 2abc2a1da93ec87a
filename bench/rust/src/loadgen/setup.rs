//! What a phase needs before it emits, through webhookd's public REST API: an account token
//! (admin API), the webhooks to the receiver (OnCall API), and, with several instances, every
//! instance seeing them. Also the receiver's counters, and `ready`.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{Value, json};

use crate::conn::{Conn, authority};
use crate::event::EVENT_TYPE;
use crate::sink::SinkSummary;

/// The webhookd instances under load and the receiver they deliver to.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// webhookd REST addresses (host:port, comma-separated); the load is spread round-robin.
    #[arg(long, value_delimiter = ',', required = true)]
    pub http: Vec<String>,
    /// webhookd's admin token.
    #[arg(long, env = "WEBHOOKD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin: String,
    /// The receiver's base URL (http://host:port).
    #[arg(long)]
    pub recv: String,
    /// The receiver sink of this phase; use a fresh one per phase (ids restart with a data dir).
    #[arg(long)]
    pub sink: String,
    /// Webhooks (to the sink) matching each event.
    #[arg(long, default_value_t = 1)]
    pub webhooks: usize,
    /// Label of webhookd's store in the result (sled, postgres).
    #[arg(long, default_value = "sled")]
    pub store: String,
}

impl Target {
    /// Creates an account of its own for this phase (a shared store keeps earlier phases'
    /// webhooks) with `webhooks` webhooks to the sink, and returns the account's token.
    pub async fn prepare(&self) -> Result<String> {
        let mut first = Conn::new(&self.http[0]);
        let account = format!(
            "bench-{}-{}-{}",
            self.sink,
            std::process::id(),
            crate::event::unix_ns() / 1_000_000
        );
        let body = json!({"account_id": account, "scopes": ["webhooks:read", "webhooks:write"]});
        let admin = format!("Bearer {}", self.admin);
        let reply = first
            .post(
                "/admin/v1/tokens",
                &[("authorization", &admin)],
                Bytes::from(body.to_string()),
            )
            .await?
            .expect(StatusCode::CREATED, "create an account token")?;
        let token = serde_json::from_slice::<Value>(&reply.body)?["token"]
            .as_str()
            .ok_or_else(|| anyhow!("the token answer has no token"))?
            .to_string();
        let url = format!("{}/ok/{}", self.recv.trim_end_matches('/'), self.sink);
        for i in 0..self.webhooks {
            let webhook = json!({
                "name": format!("bench-{}-{i}", self.sink),
                "url": url,
                "trigger_type": EVENT_TYPE,
                "forward_all": true,
            });
            first
                .post(
                    "/api/v1/webhooks/",
                    &[("authorization", &token)],
                    Bytes::from(webhook.to_string()),
                )
                .await?
                .expect(StatusCode::CREATED, "create a webhook")?;
        }
        for http in &self.http {
            self.await_webhooks(http, &token).await?;
        }
        Ok(token)
    }

    /// Waits until `http` lists the phase's webhooks (another instance on the same store).
    async fn await_webhooks(&self, http: &str, token: &str) -> Result<()> {
        let mut conn = Conn::new(http);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let reply = conn
                .get("/api/v1/webhooks/", &[("authorization", token)])
                .await?
                .expect(StatusCode::OK, "list webhooks")?;
            let count = serde_json::from_slice::<Value>(&reply.body)?["count"].as_u64();
            if count == Some(self.webhooks as u64) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{http} lists {count:?} of the {} webhooks after 30 s",
                    self.webhooks
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn receiver(&self) -> Result<ReceiverClient> {
        Ok(ReceiverClient::new(authority(&self.recv)?, &self.sink))
    }
}

/// The receiver's counters for one sink.
pub struct ReceiverClient {
    conn: Conn,
    sink: String,
}

impl ReceiverClient {
    pub fn new(authority: &str, sink: &str) -> Self {
        Self {
            conn: Conn::new(authority),
            sink: sink.to_string(),
        }
    }

    pub async fn arrivals(&mut self) -> Result<u64> {
        let reply = self
            .conn
            .get("/_stats", &[])
            .await?
            .expect(StatusCode::OK, "receiver stats")?;
        let counts: std::collections::HashMap<String, u64> = serde_json::from_slice(&reply.body)?;
        Ok(counts.get(&self.sink).copied().unwrap_or(0))
    }

    pub async fn summary(&mut self, from_ns: u64, to_ns: u64) -> Result<SinkSummary> {
        let path = format!("/_sink/{}?from_ns={from_ns}&to_ns={to_ns}", self.sink);
        let reply = self
            .conn
            .get(&path, &[])
            .await?
            .expect(StatusCode::OK, "receiver sink summary")?;
        Ok(serde_json::from_slice(&reply.body)?)
    }

    /// Waits until `expected` requests arrived, or none arrived for `idle`, or `limit` passed.
    pub async fn drain(&mut self, expected: u64, idle: Duration, limit: Duration) -> Result<u64> {
        let deadline = Instant::now() + limit;
        let (mut last, mut last_change) = (self.arrivals().await?, Instant::now());
        while last < expected && Instant::now() < deadline && last_change.elapsed() < idle {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.arrivals().await?;
            if now != last {
                (last, last_change) = (now, Instant::now());
            }
        }
        Ok(last)
    }
}

/// Waits until every webhookd answers on its REST port (an unauthenticated request gets its
/// 401 once the store is open) and every gRPC port accepts; returns the seconds waited.
pub async fn ready(http: &[String], grpc: &[String], timeout: Duration) -> Result<f64> {
    let start = Instant::now();
    let mut pending: Vec<(bool, String)> = http.iter().map(|a| (true, a.clone())).collect();
    pending.extend(grpc.iter().map(|a| (false, a.clone())));
    while let Some((is_http, addr)) = pending.last().cloned() {
        if start.elapsed() > timeout {
            bail!("{addr} not ready after {timeout:?}");
        }
        let up = if is_http {
            let mut conn = Conn::new(&addr);
            let answer = conn.get(
                "/api/v1/webhooks/",
                &[("authorization", "bench-not-a-token")],
            );
            matches!(
                tokio::time::timeout(Duration::from_secs(1), answer).await,
                Ok(Ok(_))
            )
        } else {
            tokio::net::TcpStream::connect(&addr).await.is_ok()
        };
        if up {
            pending.pop();
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(start.elapsed().as_secs_f64())
}

//! One HTTP/1.1 keep-alive client connection (hyper's connection-level client, no pool, no
//! locks), reconnecting on the next request after an error. Every load generator worker owns
//! one per server address.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// `host:port` of an `http://host:port[/path]` URL (or of a bare `host:port`).
pub fn authority(url: &str) -> Result<&str> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() || !authority.contains(':') {
        return Err(anyhow!("{url:?} is not http://host:port"));
    }
    Ok(authority)
}

/// A server's answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Reply {
    /// Fails with the status and body unless the status is `want`.
    pub fn expect(self, want: StatusCode, what: &str) -> Result<Self> {
        if self.status != want {
            return Err(anyhow!(
                "{what}: {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            ));
        }
        Ok(self)
    }
}

pub struct Conn {
    authority: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub fn new(authority: &str) -> Self {
        Self {
            authority: authority.to_string(),
            sender: None,
        }
    }

    pub async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Result<Reply> {
        self.send(Method::GET, path, headers, Bytes::new()).await
    }

    /// POSTs a JSON body.
    pub async fn post(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply> {
        self.send(Method::POST, path, headers, body).await
    }

    /// The request with a deadline: a server that does not answer is an error, not a hang.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply> {
        let exchange = self.exchange(method.clone(), path, headers, body);
        let outcome = tokio::time::timeout(Duration::from_secs(30), exchange).await;
        if let Ok(Ok(reply)) = outcome {
            return Ok(reply);
        }
        self.sender = None;
        let what = format!("{method} http://{}{path}", self.authority);
        match outcome {
            Ok(Err(e)) => Err(e.context(what)),
            _ => Err(anyhow!("{what}: no answer within 30 s")),
        }
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.authority.as_str());
        if !body.is_empty() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(body))
            .context("building the request")?;
        let sender = self.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply { status, body })
    }

    async fn ready(&mut self) -> Result<&mut SendRequest<Full<Bytes>>> {
        if let Some(sender) = &mut self.sender
            && sender.ready().await.is_err()
        {
            self.sender = None;
        }
        if self.sender.is_none() {
            let stream = TcpStream::connect(&self.authority)
                .await
                .with_context(|| format!("connect to {}", self.authority))?;
            stream.set_nodelay(true)?;
            let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                // Ends when the sender is dropped or the server closes; the next request reconnects.
                let _ = connection.await;
            });
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("connected above"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authority_of_a_url() {
        assert_eq!(
            authority("http://127.0.0.1:9000").unwrap(),
            "127.0.0.1:9000"
        );
        assert_eq!(
            authority("http://127.0.0.1:9000/ok/x").unwrap(),
            "127.0.0.1:9000"
        );
        assert_eq!(authority("127.0.0.1:8080").unwrap(), "127.0.0.1:8080");
        assert!(authority("http://").is_err());
        assert!(authority("localhost").is_err());
    }
}

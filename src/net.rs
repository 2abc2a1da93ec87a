//! The accept loop both servers share. Accepted connections get TCP_NODELAY (small gRPC
//! frames and JSON answers must not wait ~40 ms for delayed ACKs). Accept errors are sorted:
//! those of one connection (aborted, reset, pending network errors) are skipped; running out
//! of file descriptors or memory pauses accepting briefly (and says so); a listener that can
//! no longer accept at all (shut down, closed) is reported once through `Broken`, so its
//! server ends with that error, and with it the process, instead of spinning or going quiet.

use std::future::pending;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Pause after an accept failed for want of file descriptors or memory.
const EXHAUSTED_PAUSE: Duration = Duration::from_millis(100);

/// Accepts connections from a listener; see the module header.
pub struct Acceptor {
    listener: TcpListener,
    broken: Option<oneshot::Sender<io::Error>>,
}

/// Resolves with the error of a listener that can no longer accept.
pub struct Broken {
    addr: String,
    receiver: oneshot::Receiver<io::Error>,
}

/// What an accept error means for the listener.
#[derive(Debug, PartialEq, Eq)]
enum AcceptError {
    /// A problem of the connection being accepted: take the next one.
    Connection,
    /// Out of descriptors or memory: wait a moment, then accept again.
    Exhausted,
    /// The listener itself is unusable.
    Broken,
}

fn classify(error: &io::Error) -> AcceptError {
    match error.raw_os_error() {
        Some(libc::EINVAL | libc::EBADF | libc::ENOTSOCK) => AcceptError::Broken,
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => AcceptError::Exhausted,
        _ => AcceptError::Connection,
    }
}

/// An acceptor over `listener`, and the signal of its failure.
pub fn acceptor(listener: TcpListener) -> (Acceptor, Broken) {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".into(), |a| a.to_string());
    let (sender, receiver) = oneshot::channel();
    let acceptor = Acceptor {
        listener,
        broken: Some(sender),
    };
    (acceptor, Broken { addr, receiver })
}

impl Acceptor {
    /// The next connection. Once the listener is broken (reported through `Broken`), never
    /// resolves.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                    return (stream, addr);
                }
                Err(e) => match classify(&e) {
                    AcceptError::Connection => {
                        tracing::debug!(error = %e, "a connection failed while it was accepted");
                    }
                    AcceptError::Exhausted => {
                        tracing::warn!(error = %e, "cannot accept connections; pausing");
                        tokio::time::sleep(EXHAUSTED_PAUSE).await;
                    }
                    AcceptError::Broken => {
                        if let Some(broken) = self.broken.take() {
                            let _ = broken.send(e);
                        }
                        pending::<()>().await;
                    }
                },
            }
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl Broken {
    /// Waits until the listener breaks; never resolves if it does not.
    pub async fn wait(self) -> io::Error {
        match self.receiver.await {
            Ok(e) => io::Error::new(
                e.kind(),
                format!("the listener on {} stopped accepting: {e}", self.addr),
            ),
            Err(_) => pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_are_sorted_by_what_they_break() {
        let os = io::Error::from_raw_os_error;
        assert_eq!(classify(&os(libc::ECONNABORTED)), AcceptError::Connection);
        assert_eq!(classify(&os(libc::EPROTO)), AcceptError::Connection);
        assert_eq!(classify(&os(libc::EMFILE)), AcceptError::Exhausted);
        assert_eq!(classify(&os(libc::ENOBUFS)), AcceptError::Exhausted);
        assert_eq!(classify(&os(libc::EINVAL)), AcceptError::Broken);
        assert_eq!(classify(&os(libc::EBADF)), AcceptError::Broken);
    }
}

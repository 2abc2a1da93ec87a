//! The built webhookd binary as a child process, for tests that kill it (SIGKILL, SIGTERM)
//! and start it again on the same store.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// Runs the built binary with `args` and `env` to its end (logging errors only).
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_webhookd"))
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "error")
        .output()
        .unwrap()
}

/// `webhookd serve` on `data_dir` and ports the system chooses (`127.0.0.1:0`): a command
/// for the caller to complete (store, flags, environment) and run.
pub fn serve(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_webhookd"));
    command.args(["serve", "--data-dir"]).arg(data_dir).args([
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
    ]);
    command
}

/// The built binary, running on ports the system chose (`127.0.0.1:0`): nothing can take
/// them between choosing and binding. Its JSON log on stderr says where it serves.
pub struct Process {
    child: Child,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    logs: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Process {
    /// Starts webhookd on `store` with the test admin token, private targets allowed and a
    /// short retry schedule, plus `extra` flags.
    pub async fn start(store: &TestStore, extra: &[&str]) -> Process {
        let mut args = vec![
            "--allow-private-targets",
            "--retry-schedule",
            "50ms,100ms",
            "--retry-jitter",
            "false",
        ];
        args.extend_from_slice(extra);
        Self::spawn(store, &args, Some(ADMIN_TOKEN)).await
    }

    /// Starts webhookd on `store` (its data dir and --store) with `args`; without `admin_token` it generates one.
    pub async fn spawn(store: &TestStore, args: &[&str], admin_token: Option<&str>) -> Process {
        let mut command = serve(store.dir.path());
        command
            .args(["--store", &store.flag()])
            .args(["--log-format", "json"])
            .args(args)
            .env("RUST_LOG", "warn,webhookd=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match admin_token {
            Some(token) => command.env("WEBHOOKD_ADMIN_TOKEN", token),
            None => command.env_remove("WEBHOOKD_ADMIN_TOKEN"),
        };
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(String::new()));
        let (serving, addresses) = tokio::sync::oneshot::channel();
        let sink = Arc::clone(&logs);
        let reader = std::thread::spawn(move || {
            let mut serving = Some(serving);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let entry: Value = serde_json::from_str(&line).unwrap_or_default();
                let addr = |name: &str| entry["fields"][name].as_str()?.parse().ok();
                if let (Some(grpc), Some(http)) = (addr("grpc"), addr("http"))
                    && let Some(serving) = serving.take()
                {
                    let _ = serving.send((grpc, http));
                }
                if matches!(entry["level"].as_str(), Some("WARN" | "ERROR")) {
                    eprintln!("webhookd: {line}");
                }
                let mut logs = sink.lock().unwrap();
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        let (grpc, http) = tokio::time::timeout(Duration::from_secs(20), addresses)
            .await
            .expect("webhookd did not say where it serves")
            .expect("webhookd exited before serving");
        Process {
            child,
            grpc,
            http,
            logs,
            reader: Some(reader),
        }
    }

    /// The process id (for its /proc entries).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn ready(&self) {
        eventually(|| async { tokio::net::TcpStream::connect(self.http).await.ok() }).await;
    }

    /// SIGKILL, and waits for the exit.
    pub fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits up to `within` for it to exit on its own; returns the exit status and
    /// everything it logged.
    pub async fn exited(mut self, within: Duration) -> (ExitStatus, String) {
        let deadline = tokio::time::Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "webhookd did not stop within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        let logs = self.logs.lock().unwrap().clone();
        (status, logs)
    }

    /// SIGTERM (a graceful stop), without waiting for the exit.
    pub fn ask_to_stop(&self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    }

    /// SIGTERM; returns the exit status and everything it logged.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        self.ask_to_stop();
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        let logs = self.logs.lock().unwrap().clone();
        (status, logs)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

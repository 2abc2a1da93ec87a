//! bench-loadgen: the bench's load generator (see `webhookd_bench::loadgen`): one sub-command
//! per phase, each printing a summary line on stderr and writing its JSON result; `report`
//! renders a run's results; `ready` and `freeport` serve bench/run.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};
use webhookd_bench::loadgen::{ceiling, emit, rate, setup, storm};
use webhookd_bench::report;

#[derive(Parser)]
#[command(version, about = "webhookd bench load generator")]
struct Cli {
    /// Runtime worker threads (default: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The receiver's raw ceiling: loadgen -> receiver, keep-alive connections.
    Ceiling(ceiling::CeilingArgs),
    /// Closed-loop emits through POST /api/v1/events/ (or /batch/ with --batch N).
    Emit(emit::EmitArgs),
    /// Open-loop single-event emits at a fixed rate.
    Rate(rate::RateArgs),
    /// Closed-loop emits while webhookd (run by this command) is killed -9 and restarted.
    Storm(storm::StormArgs),
    /// Wait until webhookd serves; prints the seconds waited.
    Ready {
        /// REST addresses (host:port, comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        http: Vec<String>,
        /// gRPC addresses that must accept connections too.
        #[arg(long, value_delimiter = ',')]
        grpc: Vec<String>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 120.0)]
        timeout: f64,
    },
    /// Print a TCP port on 127.0.0.1 that was free a moment ago.
    Freeport,
    /// Render the Rust phases' results of a run directory as Markdown.
    Report {
        #[arg(long)]
        dir: PathBuf,
        /// CPU model to pick the targets by (default: /proc/cpuinfo's).
        #[arg(long)]
        cpu_model: Option<String>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = cli.threads {
        runtime.worker_threads(threads.max(1));
    }
    runtime.enable_all().build()?.block_on(async {
        match cli.command {
            Command::Ceiling(args) => ceiling::run(args).await,
            Command::Emit(args) => emit::run(args).await,
            Command::Rate(args) => rate::run(args).await,
            Command::Storm(args) => storm::run(args).await,
            Command::Ready {
                http,
                grpc,
                timeout,
            } => {
                let waited = setup::ready(&http, &grpc, Duration::from_secs_f64(timeout)).await?;
                println!("{waited:.3}");
                Ok(())
            }
            Command::Freeport => {
                let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
                println!("{}", listener.local_addr()?.port());
                Ok(())
            }
            Command::Report { dir, cpu_model } => {
                let model = cpu_model.unwrap_or_else(report::cpu_model);
                print!("{}", report::render(&dir, &model)?);
                Ok(())
            }
        }
    })
}

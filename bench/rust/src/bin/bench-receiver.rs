//! bench-receiver: the bench's webhook endpoint (see `webhookd_bench::receiver`). Prints
//! "receiver listening on ADDR" on stderr and writes ADDR to --addr-file once bound.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use webhookd_bench::receiver::Receiver;

#[derive(Parser)]
#[command(
    version,
    about = "webhookd bench receiver: 200 at once on /ok/<sink>, after a delay on /slow/<sink>"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// Write the bound address here.
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Delay of /slow/ answers, milliseconds.
    #[arg(long, default_value_t = 1000)]
    slow_delay_ms: u64,
    /// Percentage of deliveries answered 500 (drawn at random per request).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    fail_percent: u8,
    /// Serving threads, each owning its connections (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let listener = std::net::TcpListener::bind(args.addr)
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let bound = listener.local_addr()?;
    if let Some(path) = &args.addr_file {
        std::fs::write(path, bound.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!("receiver listening on {bound}");
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    Receiver::failing(Duration::from_millis(args.slow_delay_ms), args.fail_percent)
        .serve_on_threads(listener, threads)?;
    Ok(())
}

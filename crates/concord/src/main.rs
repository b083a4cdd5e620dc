//! The `concord` binary: `concord server` runs a server, `concord bench` drives load at one.

mod bench;

use clap::{Parser, Subcommand};
use concord_server::config::ServerArgs;

#[derive(Parser)]
#[command(
    name = "concord",
    version,
    about = "A ZooKeeper-compatible coordination service replicated with Raft"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a server (with no flags: 127.0.0.1:2181, data in ./concord-data).
    Server(ServerArgs),
    /// Drive load at a ZooKeeper-protocol server and report throughput and latency.
    Bench(bench::BenchArgs),
}

fn init_logging(level: Option<&str>) {
    let filter = level
        .map(str::to_string)
        .or_else(|| std::env::var("CONCORD_LOG").ok())
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => {
            let (config, warnings) = args.resolve()?;
            init_logging(config.log_level.as_deref());
            for w in warnings {
                tracing::warn!("{w}");
            }
            concord_server::server::check(&config)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(concord_server::run(config))
        }
        Command::Bench(args) => {
            init_logging(Some("warn"));
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(bench::run(&args)).map(|_| ())
        }
    }
}

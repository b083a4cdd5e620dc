//! The `concord` binary: `concord server` runs a server, `concord bench` drives load at one.

mod bench;

use clap::{Parser, Subcommand};
use concord_server::config::ServerArgs;

/// mimalloc instead of glibc's malloc: the tree is millions of small allocations, which
/// mimalloc packs tighter (measured: about 30 MB less RSS with a million znodes) and faster.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// Turns transparent huge pages off for this process. mimalloc asks for them on its segments,
/// and a tree of small nodes then pins whole 2 MiB pages: with a million znodes that was
/// about 80 MB of extra RSS. (Redis and MongoDB advise against THP for the same reason, and
/// for the latency of the kernel compacting memory to make huge pages.)
fn disable_transparent_huge_pages() {
    // SAFETY: prctl with PR_SET_THP_DISABLE only sets a flag on the calling process.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc != 0 {
        tracing::debug!(
            "cannot disable transparent huge pages: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn main() -> anyhow::Result<()> {
    disable_transparent_huge_pages();
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

//! The `concord` binary: `concord server` runs a server, `concord bench` drives load at one.

mod admin;
mod bench;
mod client;

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
    /// Show or change the cluster membership (reconfig) of a running cluster.
    Admin(admin::AdminArgs),
}

fn init_logging(level: Option<&str>) {
    let filter = level
        .map(str::to_string)
        .or_else(|| std::env::var("CONCORD_LOG").ok())
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_string());
    // openraft logs every vote and election step at info: only its warnings, unless the
    // filter names it (e.g. `info,openraft=info`).
    let filter = if filter.contains("openraft") {
        filter
    } else {
        format!("{filter},openraft=warn")
    };
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

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_e`, mimalloc.h, 3.x; the
/// `libmimalloc-sys` bindings name no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc give freed memory back to the system at once. By default it waits 1 s and then
/// only purges when some thread next calls into it, so a server that goes idle after a burst
/// (a load, a snapshot, a restart) kept those pages resident: 3-5 MB with a million znodes.
/// Measured with `concord bench`: no change in throughput.
/// An operator's `MIMALLOC_PURGE_DELAY` (or its old name `MIMALLOC_RESET_DELAY`) still wins.
fn purge_freed_memory_at_once() {
    if operator_set_purge_delay() {
        return;
    }
    // SAFETY: setting an option is a plain store into mimalloc's option table.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

/// Whether the environment sets mimalloc's purge delay (mimalloc reads it at start).
fn operator_set_purge_delay() -> bool {
    ["MIMALLOC_PURGE_DELAY", "MIMALLOC_RESET_DELAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// Called when a runtime thread runs out of work: gives that thread's free pages back to
/// mimalloc (at most every 100 ms), since only a thread itself can, and a thread that stays
/// parked would otherwise keep them.
fn collect_this_threads_free_pages() {
    thread_local!(static LAST: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) });
    let now = std::time::Instant::now();
    if LAST
        .get()
        .is_some_and(|t| now - t < std::time::Duration::from_millis(100))
    {
        return;
    }
    LAST.set(Some(now));
    // SAFETY: mi_collect only walks the calling thread's own pages and mimalloc's free lists.
    unsafe { libmimalloc_sys::mi_collect(false) };
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
            purge_freed_memory_at_once();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .on_thread_park(collect_this_threads_free_pages)
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
        Command::Admin(args) => {
            init_logging(Some("warn"));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let out = rt.block_on(admin::run(&args))?;
            println!("{out}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_mimallocs_and_set_to_zero() {
        // mimalloc 3.x waits 1000 ms by default: a different option at this place in the enum
        // (after a mimalloc upgrade) would show another default.
        if operator_set_purge_delay() {
            return; // the operator's setting is left alone
        }
        // SAFETY: reading an option.
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) },
            1000
        );
        purge_freed_memory_at_once();
        // SAFETY: reading an option.
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) },
            0
        );
        collect_this_threads_free_pages();
    }
}

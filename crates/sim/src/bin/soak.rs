//! `soak`: runs many seeds of the cluster simulation and reports the first that fails.
//!
//! `cargo run --release -p concord-sim --bin soak -- --seeds 200` runs seeds 1..=200 on 3 and 5
//! servers; `--seed N --servers 5` runs one seed again, exactly as it ran before.

use clap::Parser;
use concord_sim::scenario::{run, Options};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Runs seeds of concord's deterministic cluster simulation")]
struct Args {
    /// How many seeds to run (from --first).
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    first: u64,
    /// Run only this seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Run each seed this many times (the histories must be identical).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Cluster sizes to run each seed with.
    #[arg(long, value_delimiter = ',', default_value = "3,5")]
    servers: Vec<usize>,
    /// Seconds of simulated faults per run.
    #[arg(long, default_value_t = 20)]
    chaos: u64,
    /// Client sessions per run.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Run with disks that acknowledge writes before they are durable: the checks should
    /// then find lost writes.
    #[arg(long)]
    lying_disks: bool,
    /// Observers besides the voters.
    #[arg(long, default_value_t = 0)]
    observers: usize,
    /// An admin client removes voters and adds them back with `reconfig` during the faults.
    #[arg(long)]
    reconfig: bool,
    /// Servers that are not members at first, which the admin adds (needs `--reconfig`).
    #[arg(long, default_value_t = 0, requires = "reconfig")]
    spares: usize,
}

fn main() {
    let args = Args::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .without_time()
            .init();
    }
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (args.first..args.first + args.seeds).collect(),
    };
    let seeds: Vec<u64> = seeds
        .into_iter()
        .flat_map(|s| std::iter::repeat_n(s, args.repeat))
        .collect();
    let started = Instant::now();
    let mut runs = 0;
    for seed in seeds {
        for &servers in &args.servers {
            let mut opts = Options::new(seed, servers);
            opts.chaos = Duration::from_secs(args.chaos);
            opts.clients = args.clients;
            opts.lying_disks = args.lying_disks;
            opts.observers = args.observers;
            opts.reconfig = args.reconfig;
            opts.spares = args.spares;
            let t = Instant::now();
            match run(&opts) {
                Ok(r) => {
                    runs += 1;
                    println!(
                        "seed {seed} servers {servers}+{}: ok in {:.1} s ({:?} simulated): {} ops, {} unknown, {} unsynced entries lost, {} snapshots written, {} installed, faults {:?}, digest {:016x}",
                        args.observers,
                        t.elapsed().as_secs_f64(),
                        r.sim_time,
                        r.completed,
                        r.unknown,
                        r.lost_unsynced,
                        r.snapshots_written,
                        r.snapshots_installed,
                        r.faults,
                        r.digest
                    );
                }
                Err(f) => {
                    println!("seed {seed} servers {servers}: FAILED\n{f}");
                    println!(
                        "reproduce: cargo run --release -p concord-sim --bin soak -- --seed {seed} --servers {servers} --observers {} --spares {}{} --chaos {} --clients {}",
                        args.observers,
                        args.spares,
                        if args.reconfig { " --reconfig" } else { "" },
                        args.chaos, args.clients
                    );
                    std::process::exit(1);
                }
            }
        }
    }
    println!(
        "{runs} runs passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

//! `concord bench`: a pipelined load generator speaking the ZooKeeper protocol, so the same load
//! runs against concord and against Apache ZooKeeper.

use crate::client::Client;
use anyhow::bail;
use clap::Args;
use concord_jute::{op, Acl, CreateRequest, Request};
use hdrhistogram::Histogram;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Options of `concord bench`.
#[derive(Args, Debug, Clone)]
#[command(
    about = "Load generator: drives a ZooKeeper-protocol server and prints throughput and latency"
)]
pub struct BenchArgs {
    /// Server address (concord or Apache ZooKeeper).
    #[arg(long, default_value = "127.0.0.1:2181")]
    pub server: String,
    /// Number of sessions (one TCP connection each).
    #[arg(long, default_value_t = 16)]
    pub sessions: usize,
    /// Requests each session keeps in flight.
    #[arg(long, default_value_t = 8)]
    pub outstanding: usize,
    /// Size of the values written, in bytes.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Phases to run, in order: create, set, get, mixed, delete.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "create,set,get,mixed,delete"
    )]
    pub phases: Vec<String>,
    /// Seconds each timed phase runs (create, set, get, mixed); ignored with --count.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Run each phase for this many requests in total instead of for a duration.
    #[arg(long)]
    pub count: Option<u64>,
    /// Share of reads in the mixed phase.
    #[arg(long, default_value_t = 0.9)]
    pub read_ratio: f64,
    /// Parent znode for the benchmark's nodes (created if missing).
    #[arg(long, default_value = "/concord-bench")]
    pub root: String,
    /// Print one JSON object per phase instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The results of one phase.
#[derive(Debug, Clone)]
pub struct PhaseResult {
    /// Phase name.
    pub phase: String,
    /// Requests completed.
    pub ops: u64,
    /// Requests that got an error reply.
    pub errors: u64,
    /// Wall time of the phase.
    pub secs: f64,
    /// Latencies in microseconds.
    pub hist: Histogram<u64>,
}

fn key(root: &str, session: usize, i: u64) -> String {
    format!("{root}/s{session:03}-{i:010}")
}

struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Runs one phase on one session; returns (ops, errors, histogram) and updates `created`.
async fn run_session_phase(
    c: &mut Client,
    args: &BenchArgs,
    phase: &str,
    session: usize,
    created: &mut u64,
    deadline: Option<Instant>,
    quota: Option<u64>,
) -> anyhow::Result<(u64, u64, Histogram<u64>)> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let value = vec![b'x'; args.value_size];
    let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15 ^ (session as u64 + 1));
    let mut inflight: VecDeque<Instant> = VecDeque::with_capacity(args.outstanding);
    let (mut issued, mut ops, mut errors) = (0u64, 0u64, 0u64);
    let mut next_delete = 0u64;
    let total_to_delete = *created;
    loop {
        let more = |issued: u64| {
            deadline.is_none_or(|d| Instant::now() < d) && quota.is_none_or(|q| issued < q)
        };
        while inflight.len() < args.outstanding && more(issued) {
            let req = match phase {
                "create" => {
                    let k = key(&args.root, session, *created);
                    *created += 1;
                    Request::Create(CreateRequest {
                        op: op::CREATE,
                        path: k,
                        data: Some(value.clone()),
                        acl: Acl::open_unsafe(),
                        flags: 0,
                        ttl: 0,
                    })
                }
                "delete" => {
                    if next_delete >= total_to_delete {
                        break;
                    }
                    next_delete += 1;
                    Request::Delete {
                        path: key(&args.root, session, next_delete - 1),
                        version: -1,
                    }
                }
                _ => {
                    if *created == 0 {
                        bail!("phase {phase} needs nodes: run the create phase first");
                    }
                    let k = key(&args.root, session, rng.next() % *created);
                    let read = match phase {
                        "get" => true,
                        "set" => false,
                        _ => (rng.next() % 10_000) as f64 / 10_000.0 < args.read_ratio,
                    };
                    if read {
                        Request::GetData {
                            path: k,
                            watch: false,
                        }
                    } else {
                        Request::SetData {
                            path: k,
                            data: Some(value.clone()),
                            version: -1,
                        }
                    }
                }
            };
            c.queue(&req);
            inflight.push_back(Instant::now());
            issued += 1;
        }
        if inflight.is_empty() {
            break;
        }
        c.flush().await?;
        // Take every reply that has already arrived before refilling the window, so one write
        // carries the next requests rather than one write per reply.
        loop {
            let h = c.read_reply().await?;
            let sent = inflight.pop_front().expect("a reply matches a request");
            hist.record((sent.elapsed().as_micros() as u64).max(1))?;
            ops += 1;
            if h.err != 0 {
                errors += 1;
            }
            if inflight.is_empty() || !c.has_frame() {
                break;
            }
        }
    }
    if phase == "delete" {
        *created = 0;
    }
    Ok((ops, errors, hist))
}

/// Runs the benchmark and returns one result per phase.
pub async fn run(args: &BenchArgs) -> anyhow::Result<Vec<PhaseResult>> {
    for p in &args.phases {
        if !["create", "set", "get", "mixed", "delete"].contains(&p.as_str()) {
            bail!("unknown phase {p:?} (expected create, set, get, mixed, delete)");
        }
    }
    let mut setup = Client::connect(&args.server).await?;
    let mut path = String::new();
    for seg in args.root.split('/').filter(|s| !s.is_empty()) {
        path.push('/');
        path.push_str(seg);
        let err = setup
            .call(&Request::Create(CreateRequest {
                op: op::CREATE,
                path: path.clone(),
                data: None,
                acl: Acl::open_unsafe(),
                flags: 0,
                ttl: 0,
            }))
            .await?;
        if err != 0 && err != concord_jute::ErrorCode::NodeExists.code() {
            bail!("cannot create {path}: error {err}");
        }
    }
    let mut clients = Vec::with_capacity(args.sessions);
    for _ in 0..args.sessions {
        clients.push(Client::connect(&args.server).await?);
    }
    let mut created = vec![0u64; args.sessions];
    let mut results = Vec::new();
    for phase in &args.phases {
        let quota = args.count.map(|n| n.div_ceil(args.sessions as u64));
        let deadline = if args.count.is_some() || phase == "delete" {
            None
        } else {
            Some(Instant::now() + Duration::from_secs_f64(args.duration))
        };
        let start = Instant::now();
        let mut handles = Vec::new();
        for (i, (mut c, mut n)) in clients.drain(..).zip(created.drain(..)).enumerate() {
            let a = args.clone();
            let phase = phase.clone();
            handles.push(tokio::spawn(async move {
                let r = run_session_phase(&mut c, &a, &phase, i, &mut n, deadline, quota).await;
                (c, n, r)
            }));
        }
        let mut ops = 0;
        let mut errors = 0;
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        for h in handles {
            let (c, n, r) = h.await?;
            let (o, e, hh) = r?;
            ops += o;
            errors += e;
            hist.add(hh)?;
            clients.push(c);
            created.push(n);
        }
        let r = PhaseResult {
            phase: phase.clone(),
            ops,
            errors,
            secs: start.elapsed().as_secs_f64(),
            hist,
        };
        print_result(&r, args.json);
        results.push(r);
    }
    Ok(results)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Prints a phase result as a table row or a JSON line.
pub fn print_result(r: &PhaseResult, json: bool) {
    let rate = r.ops as f64 / r.secs.max(1e-9);
    let (p50, p99, p999) = (
        r.hist.value_at_quantile(0.5),
        r.hist.value_at_quantile(0.99),
        r.hist.value_at_quantile(0.999),
    );
    if json {
        println!(
            "{{\"phase\":\"{}\",\"ops\":{},\"errors\":{},\"secs\":{:.3},\"ops_per_sec\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3}}}",
            r.phase, r.ops, r.errors, r.secs, rate, ms(p50), ms(p99), ms(p999)
        );
    } else {
        println!(
            "{:<7} {:>9} ops {:>6} err {:>8.2} s {:>10.0} ops/s   p50 {:>8.3} ms  p99 {:>8.3} ms  p999 {:>8.3} ms",
            r.phase, r.ops, r.errors, r.secs, rate, ms(p50), ms(p99), ms(p999)
        );
    }
}

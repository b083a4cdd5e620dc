//! One simulated run: a cluster, clients writing and reading a few znodes, random faults, and
//! the checks afterwards.

use crate::client::{Conn, Connected, Session};
use crate::disk::{Disk, SimLog};
use crate::lincheck::{self, Entry, Op, Outcome, State};
use crate::net::SimNet;
use concord_jute::{Acl, CreateRequest, ErrorCode, Request, Response};
use concord_server::config::Config;
use concord_server::core::Core;
use concord_server::server::start_on;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Options {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// Voters in the cluster (3 or 5).
    pub servers: usize,
    /// Observers (non-voting members, `server.N=...:observer`) besides the voters.
    pub observers: usize,
    /// An admin client removes voters and adds them back with `reconfig` while the faults go
    /// on, and restores every voter at the end.
    pub reconfig: bool,
    /// Servers that are not members at first (with `reconfig`): each starts with a zoo.cfg
    /// listing the members and itself as a participant, as operations.md says to add a
    /// server, and the admin adds it as a voter (and may remove it again) during the faults.
    pub spares: usize,
    /// Concurrent client sessions.
    pub clients: usize,
    /// Znodes the clients work on.
    pub keys: usize,
    /// How long faults are injected, in simulated time.
    pub chaos: Duration,
    /// After the faults are healed, how long the cluster has to serve every client again.
    pub recovery: Duration,
    /// Give every server a disk that acknowledges writes before they are durable (to show the
    /// checks catch lost writes).
    pub lying_disks: bool,
}

impl Options {
    /// The defaults for `servers` servers and `seed`: 4 clients, 3 znodes, 20 s of faults.
    pub fn new(seed: u64, servers: usize) -> Options {
        Options {
            seed,
            servers,
            observers: 0,
            reconfig: false,
            spares: 0,
            clients: 4,
            keys: 3,
            chaos: Duration::from_secs(20),
            recovery: Duration::from_secs(30),
            lying_disks: false,
        }
    }
}

/// What a successful run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Operations with a known outcome.
    pub completed: usize,
    /// Writes whose outcome is unknown (connection lost or timed out).
    pub unknown: usize,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, usize>,
    /// Unsynced log entries lost in crashes.
    pub lost_unsynced: u64,
    /// Snapshots the servers wrote of their trees, over all their starts.
    pub snapshots_written: u64,
    /// Snapshots servers installed from their leader (catching up past a purged log).
    pub snapshots_installed: u64,
    /// Simulated time the run took.
    pub sim_time: Duration,
    /// A digest of every client's history: equal for two runs of the same seed.
    pub digest: u64,
}

/// A failed run: what went wrong, for the seed in `Options`.
#[derive(Debug)]
pub struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Shared between the clients and the run.
#[derive(Default)]
struct Shared {
    history: Mutex<Vec<(usize, Entry)>>,
    /// Per-session order violations and other client-side failures.
    errors: Mutex<Vec<String>>,
    /// Faults are over: clients finish with a final read of every znode.
    stop: AtomicBool,
    /// Clients that made their final reads.
    finished: Mutex<usize>,
    /// Reconfigs the admin saw succeed.
    reconfigs: Mutex<usize>,
    /// Of those, the ones that added a spare.
    spares_added: Mutex<usize>,
}

fn now_nanos() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_nanos() as u64
}

/// The simulated wall clock: turmoil's epoch (fixed) plus simulated time.
fn sim_clock_ms() -> i64 {
    turmoil::since_epoch().map_or(0, |d| d.as_millis() as i64)
}

fn host(i: usize) -> String {
    format!("s{i}")
}

const CLIENT_PORT: u16 = 2181;
/// The super user's digest for password "test" (the admin client's credentials).
const SUPER_DIGEST: &str = "super:D/InIHSb7yEEbrWz8b9l71RjZJU=";
const SESSION_TIMEOUT_MS: i32 = 10_000;
const CALL_TIMEOUT: Duration = Duration::from_secs(4);
/// Small, so that every server snapshots many times in a run and keeps only 50 log entries
/// behind each snapshot (`server::log_kept_after_snapshot`): a server that was down or cut
/// off for a while catches up from a streamed snapshot.
const SNAP_COUNT: u64 = 100;

fn server_config(opts: &Options, dir: &Path, id: usize) -> Result<Config, Failure> {
    let mut text = format!(
        "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={CLIENT_PORT}\nsnapCount={SNAP_COUNT}\nadmin.enableServer=false\n",
        dir.join(host(id)).display()
    );
    if opts.reconfig {
        text.push_str(&format!(
            "reconfigEnabled=true\nsuperDigest={SUPER_DIGEST}\n"
        ));
    }
    let members = opts.servers + opts.observers;
    for i in 1..=members {
        let role = if i > opts.servers { ":observer" } else { "" };
        text.push_str(&format!(
            "server.{i}={}:2888:3888{role};{CLIENT_PORT}\n",
            host(i)
        ));
    }
    if id > members {
        // A spare: the members and itself.
        text.push_str(&format!("{}\n", voter_spec(id)));
    }
    let (mut cfg, _) = Config::from_zoo_cfg(&text, Path::new("sim.cfg"))
        .map_err(|e| Failure(format!("config: {e}")))?;
    cfg.my_id = Some(id as u64);
    Ok(cfg)
}

/// Runs one simulation and checks it.
pub fn run(opts: &Options) -> Result<Report, Failure> {
    // Every random choice of the servers (election timeouts, fsync delays, ...) comes from
    // this thread's seeded generator: turmoil runs every host on this thread.
    align_task_ids();
    concord_server::rng::seed(opts.seed);
    concord_server::rng::set_clock(Some(sim_clock_ms));
    // A panic anywhere (a server, openraft, a client) fails the seed like any other finding.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_seeded(opts)))
        .unwrap_or_else(|p| {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".into());
            Err(Failure(format!("panic: {what}")))
        });
    concord_server::rng::set_clock(None);
    concord_server::rng::unseed();
    result
}

/// tokio numbers tasks from one counter per process, and a runtime that stops (a crashed
/// host) drops its tasks in an order that depends on those numbers modulo 4: so the number a
/// run starts from must be the same modulo 4 every time. This spends task numbers until the
/// next is a multiple of 4. (Sim runs in one process must therefore not overlap: the `soak`
/// binary runs them one after the other, and nextest gives each test its own process.)
fn align_task_ids() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        loop {
            let id: u64 = tokio::spawn(async {})
                .id()
                .to_string()
                .parse()
                .expect("a task id is a number");
            if id % 4 == 3 {
                break;
            }
        }
    });
}

fn run_seeded(opts: &Options) -> Result<Report, Failure> {
    let dir = tempfile::tempdir().map_err(|e| Failure(format!("temp dir: {e}")))?;
    let mut sim = turmoil::Builder::new()
        .simulation_duration(opts.chaos + opts.recovery + Duration::from_secs(60))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_micros(200))
        .max_message_latency(Duration::from_millis(4))
        // Connection attempts held by a long `hold` all arrive at once when it ends; turmoil
        // panics rather than refusing them when a listener's queue is full.
        .tcp_capacity(4096)
        .rng_seed(opts.seed)
        // A fixed wall clock (2026-01-01): session ids and znode times derive from it.
        .epoch(std::time::UNIX_EPOCH + Duration::from_secs(1_767_225_600))
        .build();
    let hosts = opts.servers + opts.observers + opts.spares;
    let disks: Vec<Disk> = (0..hosts)
        .map(|_| {
            if opts.lying_disks {
                Disk::lying()
            } else {
                Disk::new()
            }
        })
        .collect();
    // Every server instance started, crashed or not, for its counters.
    let started: Arc<Mutex<Vec<Arc<Core>>>> = Arc::default();
    for (i, disk) in (1..=hosts).zip(disks.iter().cloned()) {
        let cfg = server_config(opts, dir.path(), i)?;
        let started = started.clone();
        sim.host(host(i), move || {
            let cfg = cfg.clone();
            let disk = disk.clone();
            let started = started.clone();
            async move {
                let log = SimLog::open(&disk);
                let handle = start_on(cfg, Arc::new(SimNet), log)
                    .await
                    .map_err(|e| e.to_string())?;
                started.lock().push(handle.core.clone());
                std::future::pending::<()>().await;
                drop(handle);
                Ok(())
            }
        });
    }
    let shared = Arc::new(Shared::default());
    for c in 0..opts.clients {
        let shared = shared.clone();
        let opts2 = opts.clone();
        sim.client(format!("c{c}"), async move {
            client_loop(c, opts2, shared).await;
            Ok(())
        });
    }

    if opts.reconfig {
        let shared = shared.clone();
        let opts2 = opts.clone();
        sim.client("admin", async move {
            admin_loop(opts2, shared).await;
            Ok(())
        });
    }

    let mut rng = StdRng::seed_from_u64(opts.seed ^ 0x5EED_FA17);
    let mut faults = Faults::new(opts.servers, hosts, disks.clone());
    let mut report = Report::default();
    let mut next_fault = Duration::from_millis(rng.gen_range(300..1500));
    let step = |sim: &mut turmoil::Sim<'_>| -> Result<bool, Failure> {
        sim.step()
            .map_err(|e| Failure(format!("simulation error: {e}")))
    };
    while sim.elapsed() < opts.chaos {
        step(&mut sim)?;
        if sim.elapsed() >= next_fault {
            let kind = faults.inject(&mut sim, &mut rng);
            *report.faults.entry(kind).or_default() += 1;
            next_fault = sim.elapsed() + Duration::from_millis(rng.gen_range(100..1500));
        }
    }
    faults.heal(&mut sim);
    shared.stop.store(true, Ordering::SeqCst);
    let deadline = sim.elapsed() + opts.recovery;
    loop {
        if step(&mut sim)? {
            break;
        }
        if sim.elapsed() > deadline {
            if let Some(e) = shared.errors.lock().first() {
                return Err(Failure(e.clone()));
            }
            return Err(Failure(format!(
                "no progress: {} of {} clients finished their final reads within {:?} of the faults ending",
                *shared.finished.lock(),
                opts.clients,
                opts.recovery
            )));
        }
    }
    report.sim_time = sim.elapsed();
    let reconfigs = *shared.reconfigs.lock();
    if reconfigs > 0 {
        report.faults.insert("reconfig", reconfigs);
    }
    let spares_added = *shared.spares_added.lock();
    if spares_added > 0 {
        report.faults.insert("spare added", spares_added);
    }
    report.lost_unsynced = disks.iter().map(|d| d.lost()).sum();
    for core in started.lock().iter() {
        report.snapshots_written += core.stats.snapshots_written.load(Ordering::Relaxed);
        report.snapshots_installed += core.stats.snapshots_installed.load(Ordering::Relaxed);
    }
    drop(sim);

    if let Some(e) = shared.errors.lock().first() {
        return Err(Failure(e.clone()));
    }
    let history = std::mem::take(&mut *shared.history.lock());
    report.digest = digest(&history);
    let mut per_key: BTreeMap<usize, Vec<Entry>> = BTreeMap::new();
    for (k, e) in history {
        if e.ret.is_some() {
            report.completed += 1;
        } else {
            report.unknown += 1;
        }
        per_key.entry(k).or_default().push(e);
    }
    for (k, h) in per_key {
        match lincheck::check_with_budget(State::default(), &h, 5_000_000) {
            Ok(()) => {}
            Err(e) => {
                return Err(Failure(format!(
                    "znode /k{k}: {e}\nhistory of /k{k}:\n{}",
                    render(&h)
                )))
            }
        }
    }
    Ok(report)
}

fn render(h: &[Entry]) -> String {
    let mut v: Vec<&Entry> = h.iter().collect();
    v.sort_by_key(|e| e.call);
    v.iter()
        .map(|e| format!("  {e:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// FNV-1a over the debug form of the history, in order.
fn digest(h: &[(usize, Entry)]) -> u64 {
    let mut x: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{h:?}").bytes() {
        x ^= b as u64;
        x = x.wrapping_mul(0x100_0000_01b3);
    }
    x
}

/// The faults in force, so they can all be healed.
struct Faults {
    /// Voters.
    voters: usize,
    /// Voters and observers: every fault may hit any of them.
    servers: usize,
    crashed: Vec<usize>,
    cut: Vec<(String, String)>,
    held: Vec<(String, String)>,
    /// The network and the disks are slow.
    slow: bool,
    /// Every server's disk, slowed down with the network.
    disks: Vec<Disk>,
}

impl Faults {
    fn new(voters: usize, servers: usize, disks: Vec<Disk>) -> Faults {
        Faults {
            voters,
            servers,
            crashed: Vec::new(),
            cut: Vec::new(),
            held: Vec::new(),
            slow: false,
            disks,
        }
    }

    /// Slows the network and the disks down (a loaded machine): messages take up to
    /// `latency` and fsyncs up to `latency` as well, or sets both back to normal (None).
    fn set_slow(&mut self, sim: &mut turmoil::Sim<'_>, latency: Option<Duration>) {
        sim.set_max_message_latency(latency.unwrap_or(Duration::from_millis(4)));
        for d in &self.disks {
            d.set_max_sync(latency);
        }
        self.slow = latency.is_some();
    }

    fn pair(&self, rng: &mut StdRng) -> (String, String) {
        let a = rng.gen_range(1..=self.servers);
        let mut b = rng.gen_range(1..self.servers);
        if b >= a {
            b += 1;
        }
        (host(a), host(b))
    }

    /// Injects one random fault and names it.
    fn inject(&mut self, sim: &mut turmoil::Sim<'_>, rng: &mut StdRng) -> &'static str {
        match rng.gen_range(0..100) {
            0..=14 => {
                let (a, b) = self.pair(rng);
                sim.partition(a.as_str(), b.as_str());
                self.cut.push((a, b));
                "partition"
            }
            15..=26 => {
                let (a, b) = self.pair(rng);
                sim.partition_oneway(a.as_str(), b.as_str());
                self.cut.push((a.clone(), b.clone()));
                "one-way partition"
            }
            27..=36 => {
                // Cut one server off from every other server (clients can still reach it).
                let a = host(rng.gen_range(1..=self.servers));
                for i in 1..=self.servers {
                    let b = host(i);
                    if b != a {
                        sim.partition(a.as_str(), b.as_str());
                        self.cut.push((a.clone(), b));
                    }
                }
                "isolate"
            }
            37..=46 => {
                let (a, b) = self.pair(rng);
                sim.hold(a.as_str(), b.as_str());
                self.held.push((a, b));
                "hold"
            }
            47..=61 => {
                self.repair(sim);
                "heal network"
            }
            62..=76 => {
                let up: Vec<usize> = (1..=self.servers)
                    .filter(|i| !self.crashed.contains(i))
                    .collect();
                // At most a minority of the voters down at once (counting a crashed observer
                // as one of them, to keep it simple), so a majority can make progress.
                if self.crashed.len() < (self.voters - 1) / 2 {
                    let i = up[rng.gen_range(0..up.len())];
                    sim.crash(host(i));
                    self.crashed.push(i);
                    "crash"
                } else {
                    self.restart(sim, rng);
                    "restart"
                }
            }
            77..=80 => {
                // A power cut: every server stops at once and comes back; only what each had
                // synced survives.
                for i in 1..=self.servers {
                    sim.crash(host(i));
                }
                for i in 1..=self.servers {
                    sim.bounce(host(i));
                }
                self.crashed.clear();
                "power cut"
            }
            81..=89 => {
                if self.crashed.is_empty() {
                    let i = rng.gen_range(1..=self.servers);
                    // Crash and come straight back: a quick restart loses unsynced writes too.
                    sim.crash(host(i));
                    sim.bounce(host(i));
                    "crash and restart"
                } else {
                    self.restart(sim, rng);
                    "restart"
                }
            }
            _ => {
                if self.slow {
                    self.set_slow(sim, None);
                    "latency back to normal"
                } else {
                    let latency = Duration::from_millis(rng.gen_range(20..200));
                    self.set_slow(sim, Some(latency));
                    "slow network and disks"
                }
            }
        }
    }

    fn restart(&mut self, sim: &mut turmoil::Sim<'_>, rng: &mut StdRng) {
        if self.crashed.is_empty() {
            return;
        }
        let i = self.crashed.remove(rng.gen_range(0..self.crashed.len()));
        sim.bounce(host(i));
    }

    fn repair(&mut self, sim: &mut turmoil::Sim<'_>) {
        for (a, b) in self.cut.drain(..) {
            sim.repair(a.as_str(), b.as_str());
        }
        for (a, b) in self.held.drain(..) {
            sim.release(a.as_str(), b.as_str());
        }
    }

    /// Ends every fault: the network is repaired and every crashed server restarted.
    fn heal(&mut self, sim: &mut turmoil::Sim<'_>) {
        self.repair(sim);
        if self.slow {
            self.set_slow(sim, None);
        }
        for i in self.crashed.drain(..) {
            sim.bounce(host(i));
        }
    }
}

/// Connects `session` to a random server (voter or observer).
async fn connect_any(opts: &Options, rng: &mut StdRng, session: &mut Session) -> Connected {
    let server = host(rng.gen_range(1..=opts.servers + opts.observers + opts.spares));
    let addr = format!("{server}:{CLIENT_PORT}");
    Conn::connect(&addr, session, SESSION_TIMEOUT_MS, Duration::from_secs(2)).await
}

/// The voters listed as participants in a `/zookeeper/config` text.
fn voters_in(config: &[u8]) -> Vec<usize> {
    String::from_utf8_lossy(config)
        .lines()
        .filter(|l| l.contains(":participant"))
        .filter_map(|l| l.strip_prefix("server.")?.split('=').next()?.parse().ok())
        .collect()
}

/// The `server.N` line that makes server `id` a voter.
fn voter_spec(id: usize) -> String {
    format!(
        "server.{id}={}:2888:3888:participant;{CLIENT_PORT}",
        host(id)
    )
}

/// The admin: while the faults go on, removes a voter with `reconfig` or adds a removed one
/// back, or adds a spare (deciding from the config it reads after a sync, since a lost reply
/// leaves the outcome unknown); once they end, adds every first voter back and finishes.
/// Errors that only a bug could cause (NOAUTH for the super user, bad arguments) fail the run.
async fn admin_loop(opts: Options, shared: Arc<Shared>) {
    let mut rng = StdRng::seed_from_u64(opts.seed ^ 0xAD_0123);
    let mut session = Session::default();
    let mut conn: Option<Conn> = None;
    let all: Vec<usize> = (1..=opts.servers).collect();
    loop {
        let stopping = shared.stop.load(Ordering::SeqCst);
        let pause = if stopping {
            200
        } else {
            rng.gen_range(300..2000)
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let Some(cn) = conn.as_mut() else {
            match connect_any(&opts, &mut rng, &mut session).await {
                Connected::Yes(mut cn) => {
                    let auth = Request::Auth {
                        auth_type: 0,
                        scheme: "digest".into(),
                        auth: b"super:test".to_vec(),
                    };
                    if matches!(cn.call(&auth, CALL_TIMEOUT).await, Ok((h, _)) if h.err == 0) {
                        conn = Some(cn);
                    }
                }
                Connected::Expired => session = Session::default(),
                Connected::No(_) => {}
            }
            continue;
        };
        let path = "/zookeeper/config".to_string();
        let read = async {
            cn.call(&Request::Sync { path: path.clone() }, CALL_TIMEOUT)
                .await?;
            cn.call(&Request::GetData { path, watch: false }, CALL_TIMEOUT)
                .await
        };
        let voters = match read.await {
            Ok((_, Some(Response::GetData(data, _)))) => voters_in(&data.unwrap_or_default()),
            Ok(_) => continue,
            Err(_) => {
                conn = None;
                continue;
            }
        };
        let missing: Vec<usize> = all
            .iter()
            .copied()
            .filter(|i| !voters.contains(i))
            .collect();
        if stopping && missing.is_empty() {
            return;
        }
        let first_spare = opts.servers + opts.observers + 1;
        let idle_spares: Vec<usize> = (first_spare..first_spare + opts.spares)
            .filter(|i| !voters.contains(i))
            .collect();
        let mut adds_spare = false;
        let (joining, leaving) = if !missing.is_empty() && (stopping || rng.gen_bool(0.5)) {
            let j: Vec<String> = missing.iter().map(|&i| voter_spec(i)).collect();
            (Some(j.join(",")), None)
        } else if missing.is_empty() && !stopping && !idle_spares.is_empty() && rng.gen_bool(0.75) {
            let i = idle_spares[rng.gen_range(0..idle_spares.len())];
            adds_spare = true;
            (Some(voter_spec(i)), None)
        } else if missing.is_empty() && !stopping && !voters.is_empty() {
            // Any voter, a spare that joined included.
            (
                None,
                Some(voters[rng.gen_range(0..voters.len())].to_string()),
            )
        } else {
            continue;
        };
        let req = Request::Reconfig(concord_jute::ReconfigRequest {
            joining,
            leaving,
            new_members: None,
            cur_config_id: -1,
        });
        match cn.call(&req, CALL_TIMEOUT).await {
            Ok((h, _)) => match ErrorCode::from_code(h.err) {
                Some(ErrorCode::Ok) => {
                    *shared.reconfigs.lock() += 1;
                    if adds_spare {
                        *shared.spares_added.lock() += 1;
                    }
                }
                Some(
                    ErrorCode::ReconfigInProgress
                    | ErrorCode::NewConfigNoQuorum
                    | ErrorCode::ConnectionLoss,
                ) => {}
                _ => {
                    shared
                        .errors
                        .lock()
                        .push(format!("reconfig {req:?} answered error {}", h.err));
                    return;
                }
            },
            Err(_) => conn = None,
        }
    }
}

/// A client: a session that does random operations on the znodes until the faults end, then
/// reads every znode once after a sync.
async fn client_loop(c: usize, opts: Options, shared: Arc<Shared>) {
    let mut rng = StdRng::seed_from_u64(opts.seed.wrapping_mul(31).wrapping_add(c as u64 + 1));
    let mut session = Session::default();
    let mut conn: Option<Conn> = None;
    let mut versions: BTreeMap<usize, i32> = BTreeMap::new();
    let mut n = 0u64;
    let mut final_key = 0;
    let mut refused = 0;
    loop {
        let stopping = shared.stop.load(Ordering::SeqCst);
        if stopping && final_key >= opts.keys {
            *shared.finished.lock() += 1;
            return;
        }
        let Some(cn) = conn.as_mut() else {
            match connect_any(&opts, &mut rng, &mut session).await {
                Connected::Yes(cn) => {
                    conn = Some(cn);
                    refused = 0;
                }
                Connected::Expired => session = Session::default(),
                Connected::No(_) => {
                    refused += 1;
                    // Servers refuse a session that has seen more than they have. If none
                    // takes it back long after the faults ended, history was lost: a new
                    // session's reads let the linearizability check say which writes.
                    if stopping && refused >= 50 {
                        session = Session::default();
                        refused = 0;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
            }
            continue;
        };
        let key = if stopping {
            final_key
        } else {
            rng.gen_range(0..opts.keys)
        };
        let path = format!("/k{key}");
        n += 1;
        let value = format!("c{c}-{n}").into_bytes();
        let choice = if stopping { 99 } else { rng.gen_range(0..100) };
        let call = now_nanos();
        let (op, req) = match choice {
            0..=19 => (
                Op::Create {
                    data: value.clone(),
                },
                Request::Create(CreateRequest {
                    op: concord_jute::op::CREATE,
                    path: path.clone(),
                    data: Some(value),
                    acl: Acl::open_unsafe(),
                    flags: 0,
                    ttl: 0,
                }),
            ),
            20..=44 => {
                let expected = if choice < 32 {
                    None
                } else {
                    Some(
                        versions
                            .get(&key)
                            .copied()
                            .unwrap_or_else(|| rng.gen_range(0..3)),
                    )
                };
                (
                    Op::Set {
                        data: value.clone(),
                        expected_version: expected,
                    },
                    Request::SetData {
                        path: path.clone(),
                        data: Some(value),
                        version: expected.unwrap_or(-1),
                    },
                )
            }
            45..=54 => {
                let expected = (choice < 50).then(|| versions.get(&key).copied().unwrap_or(0));
                (
                    Op::Delete {
                        expected_version: expected,
                    },
                    Request::Delete {
                        path: path.clone(),
                        version: expected.unwrap_or(-1),
                    },
                )
            }
            _ => {
                // sync, then read: linearizable from the sync's call to the read's return.
                match cn
                    .call(&Request::Sync { path: path.clone() }, CALL_TIMEOUT)
                    .await
                {
                    Ok((h, _)) if h.err == 0 => {
                        if !observe(&shared, c, &mut session, h.zxid) {
                            return;
                        }
                    }
                    Ok(_) => continue,
                    Err(_) => {
                        conn = None;
                        continue;
                    }
                }
                let got = cn
                    .call(
                        &Request::GetData {
                            path: path.clone(),
                            watch: false,
                        },
                        CALL_TIMEOUT,
                    )
                    .await;
                match got {
                    Ok((h, body)) => {
                        if !observe(&shared, c, &mut session, h.zxid) {
                            return;
                        }
                        let value = match (h.err, body) {
                            (0, Some(Response::GetData(data, stat))) => {
                                versions.insert(key, stat.version);
                                Some((data.unwrap_or_default(), stat.version))
                            }
                            (e, _) if e == ErrorCode::NoNode as i32 => None,
                            _ => continue,
                        };
                        record(&shared, key, c, Op::Read, call, Some(Outcome::Value(value)));
                        if stopping {
                            final_key += 1;
                        }
                    }
                    Err(_) => conn = None,
                }
                continue;
            }
        };
        match cn.call(&req, CALL_TIMEOUT).await {
            Ok((h, body)) => {
                if !observe(&shared, c, &mut session, h.zxid) {
                    return;
                }
                let outcome = match (h.err, &op) {
                    (0, Op::Create { .. }) => {
                        versions.insert(key, 0);
                        Some(Outcome::Ok)
                    }
                    (0, Op::Set { .. }) => {
                        let v = match body {
                            Some(Response::Stat(s)) => Some(s.version),
                            _ => None,
                        };
                        if let Some(v) = v {
                            versions.insert(key, v);
                        }
                        Some(Outcome::SetOk { new_version: v })
                    }
                    (0, Op::Delete { .. }) => Some(Outcome::Ok),
                    (e, _) if e == ErrorCode::NodeExists as i32 => Some(Outcome::NodeExists),
                    (e, _) if e == ErrorCode::NoNode as i32 => Some(Outcome::NoNode),
                    (e, _) if e == ErrorCode::BadVersion as i32 => Some(Outcome::BadVersion),
                    // Any other error: the outcome is not known.
                    _ => None,
                };
                record(&shared, key, c, op, call, outcome);
            }
            Err(_) => {
                record(&shared, key, c, op, call, None);
                conn = None;
            }
        }
    }
}

/// Checks a reply's zxid against what the session has seen: it must never go back.
fn observe(shared: &Shared, c: usize, session: &mut Session, zxid: i64) -> bool {
    if zxid < session.last_zxid {
        shared.errors.lock().push(format!(
            "client c{c}, session {:#x}: a reply carried zxid {zxid:#x} after the session had seen {:#x}",
            session.id, session.last_zxid
        ));
        return false;
    }
    session.last_zxid = zxid;
    true
}

fn record(shared: &Shared, key: usize, c: usize, op: Op, call: u64, outcome: Option<Outcome>) {
    let ret = outcome.is_some().then(now_nanos);
    shared.history.lock().push((
        key,
        Entry {
            client: c as u64,
            op,
            call,
            ret,
            outcome,
        },
    ));
}

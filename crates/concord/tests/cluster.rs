//! Cluster tests with real processes on loopback: the `concord` binary, three servers started
//! from zoo.cfg files with `server.N` lines and `myid` files, as a ZooKeeper ensemble is.
//! Clients are the `zookeeper-client` crate with a connect string listing every server.
//!
//! What they check: writes made through any server are visible through every server after
//! `sync`; killing the leader with SIGKILL under write load loses no acknowledged write and
//! writes resume; a rolling restart of every server under load loses nothing; no client sees
//! a zxid go backwards; `reconfig` adds and removes observers and voters (the leader
//! included), with `/zookeeper/config` and its watches following.

mod common;

use common::free_port;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zookeeper_client::{Acls, Client, CreateMode};

/// A cluster of `concord` processes sharing one zoo.cfg (apart from dataDir).
struct Cluster {
    _root: tempfile::TempDir,
    dirs: Vec<PathBuf>,
    client_ports: Vec<u16>,
    /// Each server's `server.N=...` line.
    lines: Vec<String>,
    procs: Vec<Option<Child>>,
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        Cluster::with(n, 0, 4000, true)
    }

    /// `voters` participants and then `observers` observers, snapshots every `snap_count`
    /// txns or so; all started when `start` is set, none otherwise.
    fn with(voters: usize, observers: usize, snap_count: u64, start: bool) -> Cluster {
        let n = voters + observers;
        let root = tempfile::tempdir().unwrap();
        let client_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let lines: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    "server.{}=127.0.0.1:{}:{}{};127.0.0.1:{}",
                    i + 1,
                    free_port(),
                    free_port(),
                    if i >= voters { ":observer" } else { "" },
                    client_ports[i]
                )
            })
            .collect();
        let mut dirs = Vec::new();
        for i in 0..n {
            let dir = root.path().join(format!("s{}", i + 1));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("myid"), format!("{}\n", i + 1)).unwrap();
            let cfg = format!(
                "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={}\nsnapCount={snap_count}\n\
                 maxClientCnxns=0\n4lw.commands.whitelist=*\nadmin.enableServer=false\n\
                 reconfigEnabled=true\nsuperDigest={SUPER_DIGEST}\n{}\n",
                dir.display(),
                lines.join("\n")
            );
            std::fs::write(dir.join("zoo.cfg"), cfg).unwrap();
            dirs.push(dir);
        }
        let mut c = Cluster {
            _root: root,
            dirs,
            client_ports,
            lines,
            procs: (0..n).map(|_| None).collect(),
        };
        if start {
            for i in 0..n {
                c.start(i);
            }
        }
        c
    }

    /// Takes server `i` out of every other server's zoo.cfg (before they start), so it can
    /// join later by `reconfig`.
    fn leave_out(&self, i: usize) {
        for (j, dir) in self.dirs.iter().enumerate() {
            if j == i {
                continue;
            }
            let cfg = std::fs::read_to_string(dir.join("zoo.cfg")).unwrap();
            let cfg = cfg.replace(&format!("{}\n", self.lines[i]), "");
            std::fs::write(dir.join("zoo.cfg"), cfg).unwrap();
        }
    }

    fn start(&mut self, i: usize) {
        let log = std::fs::File::create(self.dirs[i].join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_concord"))
            .args(["server", "--config"])
            .arg(self.dirs[i].join("zoo.cfg"))
            .args(["--log-level", "info"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn concord");
        self.procs[i] = Some(child);
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.procs[i].take() {
            c.kill().expect("SIGKILL");
            c.wait().unwrap();
        }
    }

    fn addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.client_ports[i])
    }

    fn connect_string(&self) -> String {
        (0..self.client_ports.len())
            .map(|i| self.addr(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The server reporting `Mode: leader`, waiting up to 30 s for one.
    async fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for i in 0..self.client_ports.len() {
                if self.procs[i].is_none() {
                    continue;
                }
                if srvr(&self.addr(i)).await.contains("Mode: leader") {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "no leader after 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dirs[i].join("server.log")).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            self.kill(i);
        }
        // A failed test shows what the servers logged (the tail of each), to find out why.
        if std::thread::panicking() {
            for i in 0..self.dirs.len() {
                let log = self.log(i);
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(60)..].join("\n");
                eprintln!("---- server {} log (last 60 lines) ----\n{tail}", i + 1);
            }
        }
    }
}

/// The super user's digest for password "test" (kazoo's test harness uses the same).
const SUPER_DIGEST: &str = "super:D/InIHSb7yEEbrWz8b9l71RjZJU=";

async fn srvr(addr: &str) -> String {
    common::srvr(addr, Duration::from_secs(2)).await
}

/// Connects to `addr` (one server or a list), retrying for up to 30 s.
async fn connect(addr: &str) -> Client {
    common::connect_retry(addr, Duration::from_secs(6)).await
}

fn open() -> zookeeper_client::CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_any_server_are_seen_through_every_server() {
    let cluster = Cluster::new(3);
    cluster.leader().await;
    let clients = [
        connect(&cluster.addr(0)).await,
        connect(&cluster.addr(1)).await,
        connect(&cluster.addr(2)).await,
    ];
    clients[0].create("/app", b"root", &open()).await.unwrap();
    clients[0].sync("/app").await.unwrap();
    for (i, c) in clients.iter().enumerate() {
        c.sync("/").await.unwrap();
        for k in 0..20 {
            c.create(
                &format!("/app/s{i}-{k}"),
                format!("{i}/{k}").as_bytes(),
                &open(),
            )
            .await
            .unwrap();
        }
    }
    // A version check made through one follower fails through another, as on one server.
    let (_, stat) = clients[1].get_data("/app").await.unwrap();
    clients[2].sync("/app").await.unwrap();
    clients[2]
        .set_data("/app", b"v2", Some(stat.version))
        .await
        .unwrap();
    assert!(clients[1]
        .set_data("/app", b"v3", Some(stat.version))
        .await
        .is_err());
    for c in &clients {
        c.sync("/app").await.unwrap();
        let mut kids = c.list_children("/app").await.unwrap();
        kids.sort();
        assert_eq!(kids.len(), 60, "{kids:?}");
        let (d, _) = c.get_data("/app/s2-19").await.unwrap();
        assert_eq!(d, b"2/19");
        assert_eq!(c.get_data("/app").await.unwrap().0, b"v2");
    }
    // An ephemeral made through one server is seen through the others, and goes with its
    // session wherever the session is closed.
    let eph = connect(&cluster.addr(1)).await;
    eph.create(
        "/app/eph",
        b"",
        &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
    )
    .await
    .unwrap();
    clients[0].sync("/app").await.unwrap();
    assert!(clients[0].check_stat("/app/eph").await.unwrap().is_some());
    drop(eph);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        clients[2].sync("/app").await.unwrap();
        if clients[2].check_stat("/app/eph").await.unwrap().is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the ephemeral outlived its closed session"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every server reports its role.
    let mut modes = Vec::new();
    for i in 0..3 {
        let s = srvr(&cluster.addr(i)).await;
        let mode = s
            .lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .unwrap_or("")
            .to_string();
        modes.push(mode);
    }
    modes.sort();
    assert_eq!(modes, ["follower", "follower", "leader"], "{modes:?}");
}

#[derive(Default, Clone)]
struct Acked {
    /// Node path -> data, for every acknowledged create.
    creates: HashMap<String, Vec<u8>>,
}

/// Writers that create nodes through the whole connect string until told to stop; each
/// checks that the zxids it is told never go backwards.
fn start_writers(
    cluster: &Cluster,
    n: usize,
    acked: Arc<Mutex<Acked>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let cs = cluster.connect_string();
    (0..n)
        .map(|w| {
            let cs = cs.clone();
            let acked = acked.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut c = connect(&cs).await;
                let mut last_zxid = 0i64;
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let path = format!("/load/w{w}-{i}");
                    let data = format!("w{w} i{i}").into_bytes();
                    match c.create(&path, &data, &open()).await {
                        Ok((stat, _)) => {
                            assert!(
                                stat.czxid > last_zxid,
                                "writer {w}: zxid went from {last_zxid:#x} to {:#x}",
                                stat.czxid
                            );
                            last_zxid = stat.czxid;
                            acked.lock().unwrap().creates.insert(path, data);
                            i += 1;
                        }
                        Err(zookeeper_client::Error::NodeExists) => {
                            // The earlier attempt was applied after all (its reply was lost).
                            i += 1;
                        }
                        Err(zookeeper_client::Error::SessionExpired)
                        | Err(zookeeper_client::Error::ClientClosed) => {
                            c = connect(&cs).await;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            })
        })
        .collect()
}

/// Stops the writers and waits for them; a writer that saw a zxid go backwards fails here.
async fn stop_writers(
    stop: &std::sync::atomic::AtomicBool,
    writers: Vec<tokio::task::JoinHandle<()>>,
) {
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        tokio::time::timeout(Duration::from_secs(30), w)
            .await
            .expect("writer stops")
            .expect("writer saw no zxid go backwards");
    }
}

/// Checks through every running server that each acknowledged create is there with its data.
async fn check_acked(cluster: &Cluster, acked: &Acked, what: &str) {
    for i in 0..cluster.procs.len() {
        if cluster.procs[i].is_none() {
            continue;
        }
        let c = connect(&cluster.addr(i)).await;
        c.sync("/load").await.unwrap();
        for (path, data) in &acked.creates {
            match c.get_data(path).await {
                Ok((d, _)) => assert_eq!(
                    &d,
                    data,
                    "{what}: {path} has other data on server {}",
                    i + 1
                ),
                Err(e) => panic!(
                    "{what}: acknowledged create {path} missing on server {}: {e}",
                    i + 1
                ),
            }
        }
    }
}

/// Three servers with a leader and the writers' parent node `/load`.
async fn loaded_cluster() -> Cluster {
    let cluster = Cluster::new(3);
    cluster.leader().await;
    connect(&cluster.connect_string())
        .await
        .create("/load", b"", &open())
        .await
        .unwrap();
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_loses_no_acknowledged_write() {
    let mut cluster = loaded_cluster().await;
    let acked = Arc::new(Mutex::new(Acked::default()));
    for round in 0..3 {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers = start_writers(&cluster, 4, acked.clone(), stop.clone());
        tokio::time::sleep(Duration::from_millis(800)).await;
        let before = acked.lock().unwrap().creates.len();
        let leader = cluster.leader().await;
        cluster.kill(leader);
        let killed = Instant::now();
        // Writes resume through the remaining two.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = acked.lock().unwrap().creates.len();
            if now > before + 20 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: writes did not resume after the leader (server {}) was killed; log:\n{}",
                leader + 1,
                cluster.log((leader + 1) % 3)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "round {round}: killed leader {}, writes resumed within {:?}",
            leader + 1,
            killed.elapsed()
        );
        stop_writers(&stop, writers).await;
        cluster.start(leader);
        let a = acked.lock().unwrap().clone();
        check_acked(&cluster, &a, &format!("round {round}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_loses_nothing() {
    let mut cluster = loaded_cluster().await;
    let acked = Arc::new(Mutex::new(Acked::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers = start_writers(&cluster, 4, acked.clone(), stop.clone());
    for i in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.kill(i);
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.start(i);
        // Back in the group before the next one goes.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !srvr(&cluster.addr(i)).await.contains("Mode: follower")
            && !srvr(&cluster.addr(i)).await.contains("Mode: leader")
        {
            assert!(Instant::now() < deadline, "server {} did not rejoin", i + 1);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_writers(&stop, writers).await;
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.creates.len() > 50,
        "only {} writes acknowledged",
        acked.creates.len()
    );
    check_acked(&cluster, &acked, "after the rolling restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_that_joins_late_catches_up_from_a_snapshot_and_serves_clients() {
    // Three voters and one observer; the observer starts only after enough writes that the
    // leader has taken snapshots and purged the log the observer would need.
    let mut cluster = Cluster::with(3, 1, 1000, false);
    for i in 0..3 {
        cluster.start(i);
    }
    cluster.leader().await;
    let writer = connect(&cluster.addr(0)).await;
    writer.create("/late", b"", &open()).await.unwrap();
    // One at a time, so each is an entry of its own: the log must outgrow the 1000 entries
    // openraft keeps behind a snapshot before it purges any.
    for k in 0..2500 {
        writer
            .create(&format!("/late/n{k}"), b"v", &open())
            .await
            .unwrap();
    }
    let leader = cluster.leader().await;
    let snaps = std::fs::read_dir(cluster.dirs[leader].join("snapshots"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".snap"))
        })
        .count();
    assert!(snaps > 0, "the leader took no snapshot");

    cluster.start(3);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !srvr(&cluster.addr(3)).await.contains("Mode: observer") {
        assert!(
            Instant::now() < deadline,
            "the observer did not join; its log:\n{}",
            cluster.log(3)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let obs = connect(&cluster.addr(3)).await;
    obs.sync("/late").await.unwrap();
    assert_eq!(obs.list_children("/late").await.unwrap().len(), 2500);
    assert_eq!(obs.get_data("/late/n2499").await.unwrap().0, b"v");
    assert!(
        cluster
            .log(3)
            .contains("installed a snapshot from the leader"),
        "the observer caught up without a snapshot; its log:\n{}",
        cluster.log(3)
    );
    // Writes through the observer are forwarded to the leader and seen everywhere.
    obs.create("/late/from-observer", b"o", &open())
        .await
        .unwrap();
    writer.sync("/late").await.unwrap();
    assert_eq!(
        writer.get_data("/late/from-observer").await.unwrap().0,
        b"o"
    );
    // The leader lists four members, one of them an observer; with one voter down the other
    // two are still a quorum and writes through the observer go on.
    let s = srvr(&cluster.addr(leader)).await;
    assert!(s.contains("4:observer"), "{s}");
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    cluster.kill(others[0]);
    obs.create("/late/one-voter-down", b"", &open())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_servers_keep_every_write_with_two_of_them_killed() {
    let mut cluster = Cluster::with(5, 0, 4000, true);
    let first = cluster.leader().await;
    let c = connect(&cluster.connect_string()).await;
    c.create("/five", b"", &open()).await.unwrap();
    let mut acked = Acked::default();
    for k in 0..100 {
        let path = format!("/five/a{k}");
        c.create(&path, b"a", &open()).await.unwrap();
        acked.creates.insert(path, b"a".to_vec());
    }
    // The leader and one more go: three of five are still a quorum.
    cluster.kill(first);
    let second = (first + 1) % 5;
    cluster.kill(second);
    let c = connect(&cluster.connect_string()).await;
    for k in 0..100 {
        let path = format!("/five/b{k}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match c.create(&path, b"b", &open()).await {
                Ok(_) | Err(zookeeper_client::Error::NodeExists) => break,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "three of five servers took no write: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        acked.creates.insert(path, b"b".to_vec());
    }
    let new = cluster.leader().await;
    assert!(new != first && new != second);
    // Both come back and catch up.
    cluster.start(first);
    cluster.start(second);
    for i in [first, second] {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !srvr(&cluster.addr(i)).await.contains("Mode: follower") {
            assert!(Instant::now() < deadline, "server {} did not rejoin", i + 1);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    check_acked(&cluster, &acked, "five servers").await;
}

/// A follower that restarts rejoins the leader it finds: it listens before it campaigns, so
/// the leader keeps its term and its clients keep their connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_follower_rejoins_without_unseating_the_leader() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.leader().await;
    let term_of = |s: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix("Term: "))
            .map(|t| t.trim().to_string())
            .unwrap_or_else(|| panic!("no term in {s}"))
    };
    let term = term_of(&srvr(&cluster.addr(leader)).await);
    let c = connect(&cluster.addr(leader)).await;
    c.create("/stay", b"", &open()).await.unwrap();
    let follower = (leader + 1) % 3;
    for round in 0..3 {
        cluster.kill(follower);
        // The leader finds it gone within a heartbeat, backs off for 500 ms, finds it still
        // gone and backs off again: it returns early in that second wait, when it would
        // campaign before the leader reached it if it did not listen first.
        tokio::time::sleep(Duration::from_millis(650)).await;
        cluster.start(follower);
        eventually("the follower rejoins", || async {
            srvr(&cluster.addr(follower))
                .await
                .contains("Mode: follower")
        })
        .await;
        // Past the time it listens before it would campaign.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        c.create(&format!("/stay/r{round}"), b"", &open())
            .await
            .expect("the leader's client kept its connection");
        let s = srvr(&cluster.addr(leader)).await;
        assert!(s.contains("Mode: leader"), "round {round}: {s}");
        assert_eq!(term_of(&s), term, "round {round}: a new term began");
    }
}

/// Waits up to 30 s for `what` to hold.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(Instant::now() < deadline, "after 30 s: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `server.N` lines and the version of a `/zookeeper/config` text.
fn config_of(data: &[u8]) -> (Vec<String>, i64) {
    let text = String::from_utf8(data.to_vec()).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let version = lines.pop().unwrap();
    let version = version
        .strip_prefix("version=")
        .unwrap_or_else(|| panic!("no version line last: {text:?}"));
    (lines, i64::from_str_radix(version, 16).unwrap())
}

/// An incremental reconfig through `c`.
async fn reconfig(
    c: &Client,
    joining: &[&str],
    leaving: &[&str],
    version: Option<i64>,
) -> Result<(Vec<u8>, zookeeper_client::Stat), zookeeper_client::Error> {
    let update = zookeeper_client::EnsembleUpdate::Incremental {
        joinings: joining.iter().copied(),
        leavings: leaving.iter().copied(),
    };
    c.update_ensemble(update, version).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfig_adds_and_removes_observers_and_voters() {
    use zookeeper_client::Error;
    // Three voters; a fourth server knows the ensemble, but the ensemble does not know it.
    let mut cluster = Cluster::with(3, 1, 4000, false);
    cluster.leave_out(3);
    for i in 0..3 {
        cluster.start(i);
    }
    cluster.leader().await;
    let plain = connect(&cluster.addr(1)).await;
    let (data, stat) = plain.get_config().await.unwrap();
    let (lines, version) = config_of(&data);
    let expect: Vec<String> = cluster.lines[..3]
        .iter()
        .map(|l| l.replacen(";", ":participant;", 1))
        .collect();
    assert_eq!(lines, expect);
    assert!(version > 0);
    assert_eq!(stat.version, -1);

    let observer = cluster.lines[3].clone();
    let joining = [observer.as_str()];
    // Permission is checked last: a wrong version is reported before it.
    assert_eq!(
        reconfig(&plain, &joining, &[], Some(version + 1))
            .await
            .unwrap_err(),
        Error::BadVersion
    );
    assert_eq!(
        reconfig(&plain, &joining, &[], None).await.unwrap_err(),
        Error::NoAuth
    );
    let admin = connect(&cluster.addr(2)).await;
    admin.auth("digest", b"super:test").await.unwrap();
    // A watch on the config, set through another server, fires on the change.
    let (_, _, watcher) = plain.get_and_watch_config().await.unwrap();
    let (data, stat) = reconfig(&admin, &joining, &[], Some(version))
        .await
        .unwrap();
    let (lines, added_version) = config_of(&data);
    assert!(added_version > version);
    assert_eq!(stat.version, -1);
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[3], observer);
    let event = tokio::time::timeout(Duration::from_secs(10), watcher.changed())
        .await
        .expect("the config watch did not fire");
    assert_eq!(event.path, "/zookeeper/config");

    // The new server starts, catches up and serves as an observer.
    admin.create("/before", b"b", &open()).await.unwrap();
    cluster.start(3);
    let obs = serves_as(&cluster, 3, "observer", "/through-observer", b"o").await;
    let (data, _) = obs.get_config().await.unwrap();
    assert_eq!(config_of(&data).0.len(), 4);

    // Removing it: the others stop sending to it, and it stops serving clients.
    let (data, _) = reconfig(&admin, &[], &["4"], None).await.unwrap();
    assert_eq!(config_of(&data).0, expect);
    eventually("server 4 stops serving", || async {
        !srvr(&cluster.addr(3)).await.contains("Mode: observer")
    })
    .await;

    // Removing the leader: it hands over, and the two left go on taking writes.
    let leader = cluster.leader().await;
    let id = (leader + 1).to_string();
    let (data, _) = reconfig(&admin, &[], &[&id], None).await.unwrap();
    let two: Vec<String> = (0..3)
        .filter(|&i| i != leader)
        .map(|i| expect[i].clone())
        .collect();
    assert_eq!(config_of(&data).0, two);
    let deadline = Instant::now() + Duration::from_secs(30);
    let new_leader = loop {
        let l = cluster.leader().await;
        if l != leader {
            break l;
        }
        assert!(Instant::now() < deadline, "the removed leader still leads");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let others = connect(&cluster.addr(new_leader)).await;
    others.create("/after-removal", b"", &open()).await.unwrap();

    // And back as a voter: it catches up on what it missed and follows.
    let admin = connect(&cluster.addr(new_leader)).await;
    admin.auth("digest", b"super:test").await.unwrap();
    let (data, _) = reconfig(&admin, &[&expect[leader]], &[], None)
        .await
        .unwrap();
    assert_eq!(config_of(&data).0, expect);
    eventually("the removed server follows again", || async {
        srvr(&cluster.addr(leader)).await.contains("Mode: follower")
    })
    .await;
    let again = connect(&cluster.addr(leader)).await;
    again.sync("/after-removal").await.unwrap();
    assert!(again.check_stat("/after-removal").await.unwrap().is_some());
    assert!(again
        .check_stat("/through-observer")
        .await
        .unwrap()
        .is_some());

    // `concord admin` shows and changes the same membership.
    let admin_cmd = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_concord"))
            .args(["admin", "--server", &cluster.addr(0)])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, shown, err) = admin_cmd(&["config"]);
    assert!(ok, "{err}");
    let (lines, version) = config_of(shown.trim_end().as_bytes());
    assert_eq!(lines, expect);
    let (ok, _, err) = admin_cmd(&["reconfig", "--remove", "99"]);
    assert!(!ok && err.contains("insufficient permission"), "{err}");
    let stale = format!("{:x}", version - 1);
    let (ok, _, err) = admin_cmd(&[
        "--auth",
        "super:test",
        "reconfig",
        "--remove",
        "99",
        "-v",
        &stale,
    ]);
    assert!(!ok && err.contains("version"), "{err}");
    let (ok, out, err) = admin_cmd(&["--auth", "super:test", "reconfig", "--remove", "99"]);
    assert!(ok, "{err}");
    let text = out
        .strip_prefix("Committed new configuration:\n")
        .expect(&out);
    let (lines, newer) = config_of(text.trim_end().as_bytes());
    assert_eq!(lines, expect);
    assert!(
        newer > version,
        "a reconfig that changes nothing still makes a new version"
    );
}

/// The way to replace a dead voter, as with ZooKeeper: start a new server whose zoo.cfg lists
/// the ensemble and itself, add it, remove the dead one. The new voter is counted in the new
/// configuration's quorum once it has caught up as a learner, so adding it works while a voter
/// is down. Adding a server that is not running finds no quorum and leaves the members as they
/// were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_voter_is_replaced_by_adding_a_new_server_and_removing_it() {
    use zookeeper_client::Error;
    let mut cluster = Cluster::with(4, 0, 4000, false);
    cluster.leave_out(3);
    for i in 0..3 {
        cluster.start(i);
    }
    let leader = cluster.leader().await;
    let dead = (0..3).find(|&i| i != leader).unwrap();
    let admin = connect(&cluster.addr(leader)).await;
    admin.auth("digest", b"super:test").await.unwrap();
    admin.create("/before", b"b", &open()).await.unwrap();
    cluster.kill(dead);

    // Server 4 is not running yet: three voters of four are needed, two are in sync.
    let (data, _) = admin.get_config().await.unwrap();
    let (members, _) = config_of(&data);
    assert_eq!(
        reconfig(&admin, &[&cluster.lines[3]], &[], None)
            .await
            .unwrap_err(),
        Error::UnexpectedErrorCode(-13), // NEWCONFIGNOQUORUM, which this client does not name
    );
    let (data, _) = admin.get_config().await.unwrap();
    assert_eq!(
        config_of(&data).0,
        members,
        "a refused reconfig changes no member"
    );

    // Running, it joins, catches up and makes the third voter in sync.
    cluster.start(3);
    eventually("server 4 answers", || async {
        srvr(&cluster.addr(3)).await.contains("Mode:")
    })
    .await;
    let (data, _) = reconfig(&admin, &[&cluster.lines[3]], &[], None)
        .await
        .unwrap();
    let (lines, _) = config_of(&data);
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[3], cluster.lines[3].replacen(";", ":participant;", 1));
    let dead_id = (dead + 1).to_string();
    let (data, _) = reconfig(&admin, &[], &[&dead_id], None).await.unwrap();
    let (lines, _) = config_of(&data);
    assert_eq!(lines.len(), 3);
    assert!(!lines
        .iter()
        .any(|l| l.starts_with(&format!("server.{dead_id}="))));

    // The new voter follows, has what was written before it came, and takes writes; the
    // remaining three make the quorum without the dead server.
    serves_as(&cluster, 3, "follower", "/through-the-new-voter", b"n").await;
    let other = (0..3).find(|&i| i != leader && i != dead).unwrap();
    let c = connect(&cluster.addr(other)).await;
    c.sync("/through-the-new-voter").await.unwrap();
    assert_eq!(c.get_data("/through-the-new-voter").await.unwrap().0, b"n");
}

/// Waits until server `i` (one that just joined) reports `mode`, then checks through a client
/// of its own that it has `/before` (value "b", written before it joined) and takes a write:
/// creates `path` with `value`. Returns the client.
async fn serves_as(cluster: &Cluster, i: usize, mode: &str, path: &str, value: &[u8]) -> Client {
    let want = format!("Mode: {mode}");
    eventually(&format!("server {} serves as {mode}", i + 1), || async {
        srvr(&cluster.addr(i)).await.contains(&want)
    })
    .await;
    let c = connect(&cluster.addr(i)).await;
    c.sync("/before").await.unwrap();
    assert_eq!(c.get_data("/before").await.unwrap().0, b"b");
    c.create(path, value, &open()).await.unwrap();
    c
}

/// A bare ZooKeeper connection: the handshake only (retried for up to 30 s while the server
/// refuses sessions, e.g. before it knows the leader), then the socket to watch.
async fn raw_session(
    addr: &str,
    session_id: i64,
    passwd: Vec<u8>,
) -> (tokio::net::TcpStream, i64, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match try_raw_session(addr, session_id, passwd.clone()).await {
            Ok(r) => return r,
            Err(e) => {
                assert!(Instant::now() < deadline, "no session at {addr}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn try_raw_session(
    addr: &str,
    session_id: i64,
    passwd: Vec<u8>,
) -> std::io::Result<(tokio::net::TcpStream, i64, Vec<u8>)> {
    use concord_jute::codec::{begin_frame, finish_frame};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let mut w = Vec::new();
    let at = begin_frame(&mut w);
    concord_jute::ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout: 10_000,
        session_id,
        passwd,
        read_only: Some(false),
    }
    .encode(&mut w);
    finish_frame(&mut w, at);
    s.write_all(&w).await?;
    let len = s.read_i32().await?;
    let mut body = vec![0; len as usize];
    s.read_exact(&mut body).await?;
    let resp = concord_jute::ConnectResponse::decode(&mut concord_jute::Reader::new(&body))
        .map_err(std::io::Error::other)?;
    assert!(resp.timeout > 0, "the session was refused as expired");
    Ok((s, resp.session_id, resp.passwd))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_resumed_on_another_server_moves_there() {
    use tokio::io::AsyncReadExt;
    let cluster = Cluster::new(3);
    cluster.leader().await;
    let (mut old, session, passwd) = raw_session(&cluster.addr(0), 0, vec![0; 16]).await;
    // The client resumes its session through server 2: server 1 closes the old connection
    // (ZooKeeper's SESSIONMOVED: the session now belongs to server 2).
    let (mut new, same, _) = raw_session(&cluster.addr(1), session, passwd.clone()).await;
    assert_eq!(same, session);
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(10), old.read(&mut buf))
        .await
        .expect("server 1 kept the connection of a session that moved away");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    assert!(cluster
        .log(0)
        .contains("session moved to another server; closing its connection here"));
    // The session lives on through server 2, and moves again to server 3.
    let (_third, again, _) = raw_session(&cluster.addr(2), session, passwd).await;
    assert_eq!(again, session);
    let closed = tokio::time::timeout(Duration::from_secs(10), new.read(&mut buf))
        .await
        .expect("server 2 kept the connection of a session that moved away");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
}

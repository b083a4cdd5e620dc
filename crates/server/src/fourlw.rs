//! Status commands: the four-letter words on the client port (ruok, srvr, stat, mntr, cons,
//! envi, conf, wchs, wchc, wchp, dump, isro, dirs, srst, crst, hash), limited by
//! `4lw.commands.whitelist`.
//!
//! Every command that reports something gathers it once into a plain structure here; the
//! four-letter word renders that as ZooKeeper's text and the admin HTTP server
//! ([`crate::admin`]) renders the same structure as ZooKeeper's JSON.

use crate::core::Core;
use crate::net::BoxWrite;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use tokio::io::AsyncWriteExt;

/// The ZooKeeper version concord reports; clients parse `zookeeper.version=` out of `envi`.
pub const ZK_VERSION: &str = "3.9.2";

/// The full version string reported to clients and tools.
pub fn version_string() -> String {
    format!(
        "{ZK_VERSION}-concord-{}, built on concord {}",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION")
    )
}

const KNOWN: [&str; 16] = [
    "ruok", "srvr", "stat", "mntr", "cons", "envi", "conf", "wchs", "wchc", "wchp", "dump", "isro",
    "dirs", "srst", "crst", "hash",
];

/// Answers one command and closes the connection.
pub async fn serve(core: &Core, cmd: &str, mut wr: BoxWrite) {
    let text = respond(core, cmd);
    let _ = wr.write_all(text.as_bytes()).await;
    let _ = wr.shutdown().await;
}

/// The text answer to a command.
pub fn respond(core: &Core, cmd: &str) -> String {
    if !KNOWN.contains(&cmd) {
        tracing::info!("unknown four-letter word {cmd:?}");
        return String::new();
    }
    if !core.config.four_letter_words.allows(cmd) {
        return format!("{cmd} is not executed because it is not in the whitelist.\n");
    }
    match cmd {
        "ruok" => "imok".to_string(),
        "isro" => "rw".to_string(),
        "srvr" => server_stats_text(core, false),
        "stat" => server_stats_text(core, true),
        "mntr" => {
            let mut out = String::new();
            for (k, v) in monitor(core) {
                let _ = writeln!(out, "zk_{k}\t{}", plain(&v));
            }
            out
        }
        "cons" => cons_text(&connections(core)),
        "envi" => {
            let mut out = String::from("Environment:\n");
            for (k, v) in environment(core) {
                let _ = writeln!(out, "{k}={v}");
            }
            out
        }
        "conf" => {
            let mut out = String::new();
            for (k, v) in configuration(core) {
                let _ = writeln!(out, "{k}={v}");
            }
            if crate::server::is_cluster(&core.config) {
                // As ZooKeeper: the dynamic config, the same text as /zookeeper/config.
                let config = core
                    .sm
                    .read()
                    .tree
                    .get_data(concord_tree::tree::CONFIG_PATH, &[])
                    .map(|(d, _)| String::from_utf8_lossy(d.unwrap_or_default()).into_owned())
                    .unwrap_or_default();
                let _ = writeln!(out, "membership: \n{config}");
            }
            out
        }
        "wchs" => {
            let (conns, paths, total) = core.watches.lock().summary();
            format!("{conns} connections watching {paths} paths\nTotal watches:{total}\n")
        }
        "wchc" => {
            let mut out = String::new();
            for (sid, paths) in watches_by_session(core) {
                let _ = writeln!(out, "{sid:#x}");
                for p in paths {
                    let _ = writeln!(out, "\t{p}");
                }
            }
            out
        }
        "wchp" => {
            let mut out = String::new();
            for (p, sids) in watches_by_path(core) {
                let _ = writeln!(out, "{p}");
                for sid in sids {
                    let _ = writeln!(out, "\t{sid:#x}");
                }
            }
            out
        }
        "dump" => {
            let d = dump(core);
            let mut out = String::from("SessionTracker dump:\n");
            let _ = writeln!(out, "Session Sets ({}):", d.sessions.len());
            for (id, t) in &d.sessions {
                let _ = writeln!(out, "{id:#x}\t{t}ms");
            }
            let _ = writeln!(
                out,
                "ephemeral nodes dump:\nSessions with Ephemerals ({}):",
                d.ephemerals.len()
            );
            for (id, paths) in &d.ephemerals {
                let _ = writeln!(out, "{id:#x}:");
                for p in paths {
                    let _ = writeln!(out, "\t{p}");
                }
            }
            out
        }
        "dirs" => {
            let (d, l) = dirs(core);
            format!("datadir_size: {d}\nlogdir_size: {l}\n")
        }
        "srst" => {
            reset_server_stats(core);
            "Server stats reset.\n".to_string()
        }
        "crst" => {
            reset_connection_stats(core);
            "Connection stats reset.\n".to_string()
        }
        "hash" => format!("{:x}\n", core.sm.read().tree.last_zxid()),
        _ => String::new(),
    }
}

/// A JSON value as a four-letter word prints it: strings bare, everything else as JSON.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Total size in bytes of the files under `p`.
fn dir_size(p: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_size(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Sizes of the data directory and the log directory, in bytes.
pub fn dirs(core: &Core) -> (u64, u64) {
    (
        dir_size(&core.config.data_dir),
        dir_size(&core.config.data_log_dir),
    )
}

/// Request latency in milliseconds: (min, avg, max).
fn latency(core: &Core) -> (f64, f64, f64) {
    let s = &core.stats;
    let n = s.lat_count.load(Ordering::Relaxed);
    let total = s.lat_total.load(Ordering::Relaxed);
    let avg = if n == 0 {
        0.0
    } else {
        total as f64 / n as f64 / 1000.0
    };
    (
        s.lat_min.load(Ordering::Relaxed) as f64 / 1000.0,
        avg,
        s.lat_max.load(Ordering::Relaxed) as f64 / 1000.0,
    )
}

/// The server's role as ZooKeeper names it.
pub fn mode(core: &Core) -> &'static str {
    core.status.lock().mode
}

/// Resets the server-wide counters (srst).
pub fn reset_server_stats(core: &Core) {
    core.stats.reset();
}

/// Resets every connection's packet counters (crst).
pub fn reset_connection_stats(core: &Core) {
    for h in core.conns.lock().by_id.values() {
        h.info.received.store(0, Ordering::Relaxed);
        h.info.sent.store(0, Ordering::Relaxed);
    }
}

/// What srvr and stat report about the server as a whole.
pub struct ServerStats {
    /// Latency (min, avg, max) in ms.
    pub latency: (f64, f64, f64),
    /// Packets received.
    pub received: u64,
    /// Packets sent.
    pub sent: u64,
    /// Open client connections.
    pub connections: usize,
    /// Requests received and not yet answered.
    pub outstanding: i64,
    /// Last applied zxid.
    pub zxid: i64,
    /// Role.
    pub mode: &'static str,
    /// Number of znodes.
    pub nodes: usize,
}

/// Gathers [`ServerStats`].
pub fn server_stats(core: &Core) -> ServerStats {
    let (zxid, nodes) = {
        let sm = core.sm.read();
        (sm.tree.last_zxid(), sm.tree.node_count())
    };
    let s = &core.stats;
    ServerStats {
        latency: latency(core),
        received: s.received.load(Ordering::Relaxed),
        sent: s.sent.load(Ordering::Relaxed),
        connections: core.conns.lock().by_id.len(),
        outstanding: s.outstanding.load(Ordering::Relaxed).max(0),
        zxid,
        mode: mode(core),
        nodes,
    }
}

fn server_stats_text(core: &Core, with_clients: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Zookeeper version: {}", version_string());
    if with_clients {
        out.push_str("Clients:\n");
        out.push_str(&cons_text(&connections(core)));
        out.push('\n');
    }
    let st = server_stats(core);
    let (min, avg, max) = st.latency;
    let _ = writeln!(out, "Latency min/avg/max: {min:.3}/{avg:.4}/{max:.3}");
    let _ = writeln!(out, "Received: {}", st.received);
    let _ = writeln!(out, "Sent: {}", st.sent);
    let _ = writeln!(out, "Connections: {}", st.connections);
    let _ = writeln!(out, "Outstanding: {}", st.outstanding);
    let _ = writeln!(out, "Zxid: {:#x}", st.zxid);
    let _ = writeln!(out, "Mode: {}", st.mode);
    let _ = writeln!(out, "Node count: {}", st.nodes);
    if crate::server::is_cluster(&core.config) {
        let r = core.status.lock().clone();
        let _ = writeln!(out, "Term: {}", r.term);
        let _ = writeln!(
            out,
            "Leader: {}",
            r.leader.map_or("none".to_string(), |l| l.to_string())
        );
        let _ = writeln!(out, "Commit lag: {}", r.lag);
        let peers: Vec<String> = r
            .peers
            .iter()
            .map(|p| format!("{}:{}", p.id, p.role))
            .collect();
        let _ = writeln!(out, "Peers: {}", peers.join(","));
    }
    out
}

/// One client connection as cons reports it.
pub struct ConnRow {
    /// Remote address.
    pub peer: std::net::SocketAddr,
    /// Requests not yet answered.
    pub queued: i64,
    /// Packets received.
    pub received: u64,
    /// Packets sent.
    pub sent: u64,
    /// Session id.
    pub session: i64,
    /// Last client xid.
    pub last_xid: i64,
    /// Last zxid sent.
    pub last_zxid: i64,
    /// Negotiated session timeout in ms.
    pub timeout: i64,
}

/// Every open client connection.
pub fn connections(core: &Core) -> Vec<ConnRow> {
    let conns = core.conns.lock();
    conns
        .by_id
        .values()
        .map(|h| {
            let i = &h.info;
            ConnRow {
                peer: h.peer,
                queued: i.queued.load(Ordering::Relaxed).max(0),
                received: i.received.load(Ordering::Relaxed),
                sent: i.sent.load(Ordering::Relaxed),
                session: i.session.load(Ordering::Relaxed),
                last_xid: i.last_xid.load(Ordering::Relaxed),
                last_zxid: i.last_zxid.load(Ordering::Relaxed),
                timeout: i.timeout.load(Ordering::Relaxed),
            }
        })
        .collect()
}

fn cons_text(rows: &[ConnRow]) -> String {
    let mut out = String::new();
    for r in rows {
        let _ = writeln!(
            out,
            " /{}[1](queued={},recved={},sent={},sid={:#x},lcxid={:#x},lzxid={:#x},to={})",
            r.peer, r.queued, r.received, r.sent, r.session, r.last_xid, r.last_zxid, r.timeout,
        );
    }
    out
}

/// The mntr metrics, in order, without the `zk_` prefix.
pub fn monitor(core: &Core) -> Vec<(&'static str, Value)> {
    let (min, avg, max) = latency(core);
    let raft = core.status.lock().clone();
    let sm = core.sm.read();
    let (wconns, wpaths, wtotal) = core.watches.lock().summary();
    let s = &core.stats;
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|t| {
            t.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0);
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0);
    let round = |x: f64, places: i32| {
        let f = 10f64.powi(places);
        (x * f).round() / f
    };
    vec![
        ("version", json!(version_string())),
        ("server_state", json!(mode(core))),
        ("avg_latency", json!(round(avg, 4))),
        ("max_latency", json!(round(max, 3))),
        ("min_latency", json!(round(min, 3))),
        (
            "packets_received",
            json!(s.received.load(Ordering::Relaxed)),
        ),
        ("packets_sent", json!(s.sent.load(Ordering::Relaxed))),
        (
            "num_alive_connections",
            json!(core.conns.lock().by_id.len()),
        ),
        (
            "outstanding_requests",
            json!(s.outstanding.load(Ordering::Relaxed).max(0)),
        ),
        ("znode_count", json!(sm.tree.node_count())),
        ("watch_count", json!(wtotal)),
        ("watched_paths", json!(wpaths)),
        ("watching_connections", json!(wconns)),
        ("ephemerals_count", json!(sm.tree.ephemeral_count())),
        ("approximate_data_size", json!(sm.tree.data_bytes())),
        ("global_sessions", json!(sm.tree.sessions().count())),
        ("open_file_descriptor_count", json!(fds)),
        ("max_file_descriptor_count", json!(-1)),
        ("last_zxid", json!(format!("{:#x}", sm.tree.last_zxid()))),
        (
            "raft_last_applied_index",
            json!(sm.last_applied.map(|l| l.index).unwrap_or(0)),
        ),
        ("raft_term", json!(raft.term)),
        ("raft_leader", json!(raft.leader.unwrap_or(0))),
        ("raft_last_log_index", json!(raft.last_log_index)),
        ("raft_commit_lag", json!(raft.lag)),
        ("peers", json!(raft.peers.len())),
        (
            "raft_entries_applied",
            json!(s.entries_applied.load(Ordering::Relaxed)),
        ),
        (
            "txns_applied",
            json!(s.txns_applied.load(Ordering::Relaxed)),
        ),
        (
            "snapshots_written",
            json!(s.snapshots_written.load(Ordering::Relaxed)),
        ),
        (
            "snapshots_installed",
            json!(s.snapshots_installed.load(Ordering::Relaxed)),
        ),
        ("resident_memory_bytes", json!(rss)),
        (
            "uptime_ms",
            json!(core.started.elapsed().as_millis() as u64),
        ),
    ]
}

/// The envi key/value pairs.
pub fn environment(core: &Core) -> Vec<(&'static str, String)> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    vec![
        ("zookeeper.version", version_string()),
        ("host.name", host),
        ("concord.version", env!("CARGO_PKG_VERSION").to_string()),
        ("os.name", std::env::consts::OS.to_string()),
        ("os.arch", std::env::consts::ARCH.to_string()),
        ("user.dir", cwd),
        (
            "concord.data.dir",
            core.config.data_dir.display().to_string(),
        ),
    ]
}

/// The conf key/value pairs.
pub fn configuration(core: &Core) -> Vec<(&'static str, String)> {
    let c = &core.config;
    let (dsize, lsize) = dirs(core);
    let (addr, port) = match core.bound_addr.get() {
        Some(a) => (a.ip(), a.port()),
        None => (c.client_port_address, c.client_port),
    };
    vec![
        ("clientPort", port.to_string()),
        ("clientPortAddress", addr.to_string()),
        ("secureClientPort", "-1".to_string()),
        ("dataDir", c.data_dir.display().to_string()),
        ("dataDirSize", dsize.to_string()),
        ("dataLogDir", c.data_log_dir.display().to_string()),
        ("dataLogSize", lsize.to_string()),
        ("tickTime", c.tick_time_ms.to_string()),
        ("maxClientCnxns", c.max_client_cnxns.to_string()),
        ("minSessionTimeout", c.min_session_timeout_ms.to_string()),
        ("maxSessionTimeout", c.max_session_timeout_ms.to_string()),
        ("snapCount", c.snap_count.to_string()),
        ("jute.maxbuffer", c.jute_max_buffer.to_string()),
        ("extendedTypesEnabled", c.extended_types_enabled.to_string()),
        (
            "forceSync",
            if c.force_sync { "yes" } else { "no" }.to_string(),
        ),
        ("serverId", core.my_id.to_string()),
    ]
}

fn session_of(conns: &crate::core::Conns, c: crate::watch::ConnId) -> i64 {
    conns
        .by_id
        .get(&c)
        .map(|h| h.info.session.load(Ordering::Relaxed))
        .unwrap_or(0)
}

/// Watched paths per session (wchc), sorted by session.
pub fn watches_by_session(core: &Core) -> BTreeMap<i64, Vec<String>> {
    let by = core.watches.lock().by_conn();
    let conns = core.conns.lock();
    let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (c, paths) in by {
        out.entry(session_of(&conns, c)).or_default().extend(paths);
    }
    for paths in out.values_mut() {
        paths.sort();
        paths.dedup();
    }
    out
}

/// Watching sessions per path (wchp), sorted by path.
pub fn watches_by_path(core: &Core) -> BTreeMap<String, Vec<i64>> {
    let by = core.watches.lock().by_path();
    let conns = core.conns.lock();
    by.into_iter()
        .map(|(p, cs)| {
            let mut sids: Vec<i64> = cs.into_iter().map(|c| session_of(&conns, c)).collect();
            sids.sort();
            sids.dedup();
            (p, sids)
        })
        .collect()
}

/// Sessions and their ephemerals, as dump reports them.
pub struct Dump {
    /// (session id, timeout in ms), sorted.
    pub sessions: Vec<(i64, i32)>,
    /// Sessions that own ephemerals, with their paths.
    pub ephemerals: Vec<(i64, Vec<String>)>,
}

/// Gathers a [`Dump`].
pub fn dump(core: &Core) -> Dump {
    let sm = core.sm.read();
    let mut sessions: Vec<_> = sm.tree.sessions().map(|(id, s)| (id, s.timeout)).collect();
    sessions.sort();
    let mut ephemerals: Vec<_> = sm
        .tree
        .all_ephemerals()
        .into_iter()
        .filter(|(_, p)| !p.is_empty())
        .collect();
    ephemerals.sort();
    Dump {
        sessions,
        ephemerals,
    }
}

/// Builds a JSON object from key/value pairs, keeping their order.
pub fn object<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert(k.into(), v);
    }
    Value::Object(m)
}

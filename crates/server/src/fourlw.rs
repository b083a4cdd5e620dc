//! Four-letter-word commands on the client port (ruok, srvr, stat, mntr, cons, envi, conf, wchs,
//! wchc, wchp, dump, isro, dirs, srst, crst), limited by `4lw.commands.whitelist`.

use crate::core::Core;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;

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
pub async fn serve(core: &Core, cmd: &str, mut wr: OwnedWriteHalf) {
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
        "srvr" => server_stats(core, false),
        "stat" => server_stats(core, true),
        "mntr" => mntr(core),
        "cons" => cons(core),
        "envi" => envi(core),
        "conf" => conf(core),
        "wchs" => {
            let (conns, paths, total) = core.watches.lock().summary();
            format!("{conns} connections watching {paths} paths\nTotal watches:{total}\n")
        }
        "wchc" => {
            let by = core.watches.lock().by_conn();
            let conns = core.conns.lock();
            let mut out = String::new();
            for (c, paths) in by {
                let sid = conns
                    .by_id
                    .get(&c)
                    .map(|h| h.info.session.load(Ordering::Relaxed))
                    .unwrap_or(0);
                let _ = writeln!(out, "{sid:#x}");
                for p in paths {
                    let _ = writeln!(out, "\t{p}");
                }
            }
            out
        }
        "wchp" => {
            let by = core.watches.lock().by_path();
            let conns = core.conns.lock();
            let mut paths: Vec<_> = by.into_iter().collect();
            paths.sort();
            let mut out = String::new();
            for (p, cs) in paths {
                let _ = writeln!(out, "{p}");
                for c in cs {
                    let sid = conns
                        .by_id
                        .get(&c)
                        .map(|h| h.info.session.load(Ordering::Relaxed))
                        .unwrap_or(0);
                    let _ = writeln!(out, "\t{sid:#x}");
                }
            }
            out
        }
        "dump" => {
            let sm = core.sm.read();
            let mut out = String::from("SessionTracker dump:\n");
            let sessions: Vec<_> = sm.tree.sessions().map(|(id, s)| (id, s.timeout)).collect();
            let _ = writeln!(out, "Session Sets ({}):", sessions.len());
            for (id, t) in &sessions {
                let _ = writeln!(out, "{id:#x}\t{t}ms");
            }
            let eph = sm.tree.all_ephemerals();
            let with: Vec<_> = eph.into_iter().filter(|(_, p)| !p.is_empty()).collect();
            let _ = writeln!(
                out,
                "ephemeral nodes dump:\nSessions with Ephemerals ({}):",
                with.len()
            );
            for (id, paths) in with {
                let _ = writeln!(out, "{id:#x}:");
                for p in paths {
                    let _ = writeln!(out, "\t{p}");
                }
            }
            out
        }
        "dirs" => {
            let d = dir_size(&core.config.data_dir);
            let l = dir_size(&core.config.data_log_dir);
            format!("datadir_size: {d}\nlogdir_size: {l}\n")
        }
        "srst" => {
            core.stats.reset();
            "Server stats reset.\n".to_string()
        }
        "crst" => {
            for h in core.conns.lock().by_id.values() {
                h.info.received.store(0, Ordering::Relaxed);
                h.info.sent.store(0, Ordering::Relaxed);
            }
            "Connection stats reset.\n".to_string()
        }
        "hash" => {
            let sm = core.sm.read();
            format!("{:x}\n", sm.tree.last_zxid())
        }
        _ => String::new(),
    }
}

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

fn mode(_core: &Core) -> &'static str {
    "standalone"
}

fn server_stats(core: &Core, with_clients: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Zookeeper version: {}", version_string());
    if with_clients {
        out.push_str("Clients:\n");
        out.push_str(&cons(core));
        out.push('\n');
    }
    let (min, avg, max) = latency(core);
    let (zxid, nodes) = {
        let sm = core.sm.read();
        (sm.tree.last_zxid(), sm.tree.node_count())
    };
    let s = &core.stats;
    let _ = writeln!(out, "Latency min/avg/max: {min:.3}/{avg:.4}/{max:.3}");
    let _ = writeln!(out, "Received: {}", s.received.load(Ordering::Relaxed));
    let _ = writeln!(out, "Sent: {}", s.sent.load(Ordering::Relaxed));
    let _ = writeln!(out, "Connections: {}", core.conns.lock().by_id.len());
    let _ = writeln!(
        out,
        "Outstanding: {}",
        s.outstanding.load(Ordering::Relaxed).max(0)
    );
    let _ = writeln!(out, "Zxid: {zxid:#x}");
    let _ = writeln!(out, "Mode: {}", mode(core));
    let _ = writeln!(out, "Node count: {nodes}");
    out
}

fn cons(core: &Core) -> String {
    let conns = core.conns.lock();
    let mut out = String::new();
    for h in conns.by_id.values() {
        let i = &h.info;
        let _ = writeln!(
            out,
            " /{}[1](queued={},recved={},sent={},sid={:#x},lcxid={:#x},lzxid={:#x},to={})",
            h.peer,
            i.queued.load(Ordering::Relaxed).max(0),
            i.received.load(Ordering::Relaxed),
            i.sent.load(Ordering::Relaxed),
            i.session.load(Ordering::Relaxed),
            i.last_xid.load(Ordering::Relaxed),
            i.last_zxid.load(Ordering::Relaxed),
            i.timeout.load(Ordering::Relaxed),
        );
    }
    out
}

fn mntr(core: &Core) -> String {
    let (min, avg, max) = latency(core);
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
    let mut out = String::new();
    let mut kv = |k: &str, v: String| {
        let _ = writeln!(out, "zk_{k}\t{v}");
    };
    kv("version", version_string());
    kv("server_state", mode(core).to_string());
    kv("avg_latency", format!("{avg:.4}"));
    kv("max_latency", format!("{max:.3}"));
    kv("min_latency", format!("{min:.3}"));
    kv(
        "packets_received",
        s.received.load(Ordering::Relaxed).to_string(),
    );
    kv("packets_sent", s.sent.load(Ordering::Relaxed).to_string());
    kv(
        "num_alive_connections",
        core.conns.lock().by_id.len().to_string(),
    );
    kv(
        "outstanding_requests",
        s.outstanding.load(Ordering::Relaxed).max(0).to_string(),
    );
    kv("znode_count", sm.tree.node_count().to_string());
    kv("watch_count", wtotal.to_string());
    kv("watched_paths", wpaths.to_string());
    kv("watching_connections", wconns.to_string());
    kv("ephemerals_count", sm.tree.ephemeral_count().to_string());
    kv("approximate_data_size", sm.tree.data_bytes().to_string());
    kv("global_sessions", sm.tree.sessions().count().to_string());
    kv("open_file_descriptor_count", fds.to_string());
    kv("max_file_descriptor_count", "-1".to_string());
    kv("last_zxid", format!("{:#x}", sm.tree.last_zxid()));
    kv(
        "raft_last_applied_index",
        sm.last_applied.map(|l| l.index).unwrap_or(0).to_string(),
    );
    kv(
        "raft_term",
        sm.last_applied
            .map(|l| l.leader_id.term)
            .unwrap_or(0)
            .to_string(),
    );
    kv(
        "raft_entries_applied",
        s.entries_applied.load(Ordering::Relaxed).to_string(),
    );
    kv(
        "txns_applied",
        s.txns_applied.load(Ordering::Relaxed).to_string(),
    );
    kv("resident_memory_bytes", rss.to_string());
    kv("uptime_ms", core.started.elapsed().as_millis().to_string());
    out
}

fn envi(core: &Core) -> String {
    let mut out = String::from("Environment:\n");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    for (k, v) in [
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
    ] {
        let _ = writeln!(out, "{k}={v}");
    }
    out
}

fn conf(core: &Core) -> String {
    let c = &core.config;
    let mut out = String::new();
    let _ = writeln!(out, "clientPort={}", c.client_port);
    let _ = writeln!(out, "clientPortAddress={}", c.client_port_address);
    let _ = writeln!(out, "secureClientPort=-1");
    let _ = writeln!(out, "dataDir={}", c.data_dir.display());
    let _ = writeln!(out, "dataDirSize={}", dir_size(&c.data_dir));
    let _ = writeln!(out, "dataLogDir={}", c.data_log_dir.display());
    let _ = writeln!(out, "dataLogSize={}", dir_size(&c.data_log_dir));
    let _ = writeln!(out, "tickTime={}", c.tick_time_ms);
    let _ = writeln!(out, "maxClientCnxns={}", c.max_client_cnxns);
    let _ = writeln!(out, "minSessionTimeout={}", c.min_session_timeout_ms);
    let _ = writeln!(out, "maxSessionTimeout={}", c.max_session_timeout_ms);
    let _ = writeln!(out, "snapCount={}", c.snap_count);
    let _ = writeln!(out, "jute.maxbuffer={}", c.jute_max_buffer);
    let _ = writeln!(out, "extendedTypesEnabled={}", c.extended_types_enabled);
    let _ = writeln!(out, "forceSync={}", if c.force_sync { "yes" } else { "no" });
    let _ = writeln!(out, "serverId={}", core.my_id);
    out
}

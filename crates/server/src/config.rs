//! Server configuration: ZooKeeper's `zoo.cfg`, a native TOML file, and command-line flags.
//!
//! # Sources and precedence
//!
//! Settings come from, lowest precedence first: built-in defaults, one configuration file
//! (`--config FILE`), and command-line flags. A file whose name ends in `.toml` is read as TOML;
//! any other file is read as Apache ZooKeeper's `zoo.cfg`. Defaults derived from other settings
//! (session timeouts from `tickTime`, `dataLogDir` from `dataDir`) are computed after every source
//! has been applied, so `--tick-time 100` also moves the session-timeout bounds unless they were
//! set explicitly. The server id comes from `--myid`, else from the `myid` file in the final
//! `dataDir` (ZooKeeper's file: a decimal number on the first line), else it is `None`.
//!
//! Unknown keys are not errors: they come back as warning strings for the caller to log. Values
//! that cannot work are [`ConfigError`]s naming the file (and line, for zoo.cfg) and the key.
//!
//! # zoo.cfg
//!
//! Java properties syntax, as `java.util.Properties` reads it: `key=value`, `key: value` or
//! `key value`; lines starting with `#` or `!` are comments; a line ending in an odd number of
//! backslashes continues on the next line (whose leading blanks are dropped); `\t`, `\n`, `\uXXXX`
//! and `\<char>` escapes are decoded, so a Windows path needs `C:\\zk` or `C:/zk`. Keys and values
//! are trimmed. Relative paths are relative to the process's working directory, as in ZooKeeper.
//!
//! `server.N=host:quorumPort:electionPort[:participant|:observer][;[clientAddr:]clientPort]`
//! lines describe the ensemble; the host may be a bracketed IPv6 address (`[::1]:2888:3888`).
//! When `clientPort` is not given, the client port (and address) of this server's own `server.N`
//! line is used, as in ZooKeeper 3.5+; giving both with different ports is an error.
//!
//! | zoo.cfg key | treatment |
//! |---|---|
//! | `tickTime`, `dataDir`, `dataLogDir`, `clientPort`, `clientPortAddress`, `maxClientCnxns`, `minSessionTimeout`, `maxSessionTimeout`, `4lw.commands.whitelist`, `snapCount`, `autopurge.snapRetainCount`, `autopurge.purgeInterval`, `jute.maxbuffer`, `extendedTypesEnabled`, `admin.enableServer`, `admin.serverAddress`, `admin.serverPort`, `forceSync`, `superDigest`, `reconfigEnabled`, `initLimit`, `syncLimit`, `server.N` | read into [`Config`] |
//! | `zookeeper.extendedTypesEnabled`, `zookeeper.DigestAuthenticationProvider.superDigest` | read (the JVM property spellings) |
//! | `peerType` | read; a mismatch with this server's `server.N` role warns and the `server.N` line wins (ZooKeeper's rule) |
//! | `concord.raft.electionTimeoutMinMs`, `concord.raft.electionTimeoutMaxMs`, `concord.raft.heartbeatIntervalMs` | concord's own Raft timings ([`RaftTimings`]) |
//! | `dynamicConfigFile` | warning: its `server.N` lines are read as static configuration (they form a new cluster; later membership changes live in the Raft log) |
//! | `standaloneEnabled`, `quorumListenOnAllIPs`, `admin.commandURL`, `admin.idleTimeout`, `globalOutstandingLimit`, `preAllocSize`, `leaderServes`, `cnxTimeout`, `electionAlg`, `clientPortListenBacklog`, `syncEnabled`, `electionPortBindRetry`, `connectToLearnerMasterLimit`, `tcpKeepAlive`, `serverCnxnFactory`, `snapSizeLimitInKb`, `txnLogSizeLimitInKb`, `commitLogCount`, `multiAddress.*`, `metricsProvider.*` (other than a real `className`) | accepted silently: tuning or plumbing with no visible behaviour to lose |
//! | `localSessionsEnabled=true`, `localSessionsUpgradingEnabled=true`, `skipACL=yes`, `maxCnxns` > 0, `metricsProvider.className` (not the null provider) | warning: concord does not implement the behaviour (the `false`/`0` values are silent) |
//! | `secureClientPort`, `secureClientPortAddress`, `ssl.*`, `sslQuorum`, `authProvider.*`, `quorum.auth.*`, `group.N`, `weight.N` | warning: TLS, SASL and hierarchical quorums are not supported |
//! | anything else | warning: unknown key ignored |
//!
//! # TOML
//!
//! The same settings in snake_case at the top level (see `TOML_KEYS` in the source for the full
//! list: `tick_time`, `data_dir`, `data_log_dir`, `client_port`, `client_port_address`,
//! `max_client_cnxns`, `min_session_timeout`, `max_session_timeout`, `four_letter_words`,
//! `snap_count`, `autopurge_snap_retain_count`, `autopurge_purge_interval`, `jute_max_buffer`,
//! `extended_types_enabled`, `admin_enable_server`, `admin_server_address`, `admin_server_port`,
//! `force_sync`, `super_digest`, `reconfig_enabled`, `init_limit`, `sync_limit`, `peer_type`), plus `log_level`, a
//! `[raft]` table (`election_timeout_min_ms`, `election_timeout_max_ms`, `heartbeat_interval_ms`)
//! and the ensemble in either of two forms:
//!
//! ```toml
//! tick_time = 2000
//! data_dir = "/var/lib/concord"
//! client_port = 2181
//! four_letter_words = ["ruok", "srvr", "mntr"]   # or "ruok,srvr,mntr", or "*"
//! force_sync = true
//!
//! [raft]
//! election_timeout_min_ms = 500
//! election_timeout_max_ms = 1000
//!
//! # Either a map from id to the zoo.cfg server.N value (or to an inline table):
//! [servers]
//! 1 = "10.0.0.1:2888:3888;2181"
//! 2 = { host = "10.0.0.2", quorum_port = 2888, election_port = 3888, client_port = 2181 }
//!
//! # ...or an array of tables (not both):
//! # [[servers]]
//! # id = 3
//! # host = "10.0.0.3"
//! # quorum_port = 2888
//! # election_port = 3888
//! # role = "observer"             # default "participant"
//! # client_address = "0.0.0.0"    # optional
//! # client_port = 2181            # optional
//! ```
//!
//! Numbers may also be written as strings (`"0xfffff"`), booleans as `"yes"`/`"no"`.

#![warn(missing_docs)]

use clap::Args;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// The four-letter words enabled when `4lw.commands.whitelist` is not set.
pub const DEFAULT_FOUR_LETTER_WORDS: [&str; 8] = [
    "ruok", "srvr", "stat", "envi", "conf", "isro", "mntr", "dirs",
];

/// Every four-letter word ZooKeeper knows; others in a whitelist draw a warning.
const KNOWN_FOUR_LETTER_WORDS: [&str; 18] = [
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "hash", "isro", "mntr", "ruok", "srst",
    "srvr", "stat", "stmk", "wchc", "wchp", "wchs",
];

/// Which four-letter words may run (`4lw.commands.whitelist`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FourLetterWords {
    /// Every command (`*`).
    All,
    /// Only these commands.
    Only(BTreeSet<String>),
}

impl Default for FourLetterWords {
    fn default() -> Self {
        FourLetterWords::Only(
            DEFAULT_FOUR_LETTER_WORDS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )
    }
}

impl FourLetterWords {
    /// Whether `cmd` may run.
    pub fn allows(&self, cmd: &str) -> bool {
        match self {
            FourLetterWords::All => true,
            FourLetterWords::Only(set) => set.contains(cmd),
        }
    }

    /// Parses a whitelist as ZooKeeper does: comma separated, `*` anywhere means all.
    pub fn parse_list(list: &str) -> FourLetterWords {
        let items = list.split(',').map(str::trim).filter(|s| !s.is_empty());
        if items.clone().any(|s| s == "*") {
            FourLetterWords::All
        } else {
            FourLetterWords::Only(items.map(str::to_ascii_lowercase).collect())
        }
    }

    /// Names in the list that are not ZooKeeper four-letter words (likely typos).
    fn unknown_commands(&self) -> Vec<String> {
        match self {
            FourLetterWords::All => Vec::new(),
            FourLetterWords::Only(set) => set
                .iter()
                .filter(|c| !KNOWN_FOUR_LETTER_WORDS.contains(&c.as_str()))
                .cloned()
                .collect(),
        }
    }
}

impl fmt::Display for FourLetterWords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FourLetterWords::All => f.write_str("*"),
            FourLetterWords::Only(set) => {
                let list: Vec<&str> = set.iter().map(String::as_str).collect();
                f.write_str(&list.join(","))
            }
        }
    }
}

/// A server's role in the ensemble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerRole {
    /// A voting member.
    Participant,
    /// A non-voting member that serves reads and forwards writes.
    Observer,
}

impl ServerRole {
    /// Parses `participant` or `observer` (any case), as ZooKeeper does.
    fn parse(s: &str) -> Result<ServerRole, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "participant" => Ok(ServerRole::Participant),
            "observer" => Ok(ServerRole::Observer),
            _ => Err(format!("expected participant or observer, got {s:?}")),
        }
    }

    /// The zoo.cfg spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerRole::Participant => "participant",
            ServerRole::Observer => "observer",
        }
    }
}

/// One ensemble member: a `server.N=host:quorumPort:electionPort[:role][;[clientAddr:]clientPort]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// The server id N.
    pub id: u64,
    /// Host name or address for peer traffic (IPv6 without brackets).
    pub host: String,
    /// Quorum (peer) port.
    pub quorum_port: u16,
    /// Leader-election port.
    pub election_port: u16,
    /// Participant or observer.
    pub role: ServerRole,
    /// Client address (empty host meaning all addresses, 0.0.0.0) and port, when given.
    pub client_addr: Option<(String, u16)>,
}

impl ServerSpec {
    /// Parses the value of a `server.N` line for server `id`.
    pub fn parse(id: u64, value: &str) -> Result<ServerSpec, String> {
        let value = value.trim();
        let (peer, client) = match value.split_once(';') {
            Some((p, c)) => (p.trim(), Some(c.trim())),
            None => (value, None),
        };
        if peer.contains('|') {
            return Err(format!(
                "multiple addresses per server are not supported: {value:?}"
            ));
        }
        let form = "host:quorumPort:electionPort[:participant|:observer][;[clientAddr:]clientPort]";
        let (host, rest) = split_host(peer).map_err(|e| format!("{e}; expected {form}"))?;
        let parts: Vec<&str> = rest.split(':').map(str::trim).collect();
        if host.is_empty() || !(2..=3).contains(&parts.len()) {
            return Err(format!("expected {form}, got {value:?}"));
        }
        let role = match parts.get(2) {
            Some(r) => ServerRole::parse(r)?,
            None => ServerRole::Participant,
        };
        let client_addr = match client {
            None | Some("") => None,
            Some(c) => {
                let (h, p) = match c.strip_prefix('[') {
                    Some(_) => {
                        let (h, p) = split_host(c)?;
                        (h, p)
                    }
                    None => match c.rsplit_once(':') {
                        Some((h, p)) => (h.trim().to_string(), p),
                        None => (String::new(), c),
                    },
                };
                Some((h, parse_port(p, true)?))
            }
        };
        Ok(ServerSpec {
            id,
            host,
            quorum_port: parse_port(parts[0], false)?,
            election_port: parse_port(parts[1], false)?,
            role,
            client_addr,
        })
    }
}

impl fmt::Display for ServerSpec {
    /// Formats the spec back into zoo.cfg's `server.N` value syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bracket = |h: &str| {
            if h.contains(':') {
                format!("[{h}]")
            } else {
                h.to_string()
            }
        };
        write!(
            f,
            "{}:{}:{}:{}",
            bracket(&self.host),
            self.quorum_port,
            self.election_port,
            self.role.as_str()
        )?;
        if let Some((h, p)) = &self.client_addr {
            if h.is_empty() {
                // ZooKeeper writes a bare client port as the wildcard address.
                write!(f, ";0.0.0.0:{p}")?;
            } else {
                write!(f, ";{}:{p}", bracket(h))?;
            }
        }
        Ok(())
    }
}

/// Splits `host:rest`, where host may be a bracketed IPv6 address.
fn split_host(s: &str) -> Result<(String, &str), String> {
    if let Some(r) = s.strip_prefix('[') {
        let (h, rest) = r
            .split_once(']')
            .ok_or_else(|| format!("unclosed '[' in {s:?}"))?;
        let rest = rest
            .strip_prefix(':')
            .ok_or_else(|| format!("expected ':' after ']' in {s:?}"))?;
        Ok((h.trim().to_string(), rest))
    } else {
        let (h, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("expected host:port in {s:?}"))?;
        Ok((h.trim().to_string(), rest))
    }
}

/// concord's own Raft timings (not derived from tickTime/syncLimit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftTimings {
    /// Shortest election timeout in ms (default 150).
    pub election_timeout_min_ms: u64,
    /// Longest election timeout in ms (default 300); also how long a follower refuses to vote
    /// after hearing from its leader (openraft's leader lease).
    pub election_timeout_max_ms: u64,
    /// Leader heartbeat interval in ms (default 50).
    pub heartbeat_interval_ms: u64,
}

impl Default for RaftTimings {
    fn default() -> Self {
        RaftTimings {
            election_timeout_min_ms: 150,
            election_timeout_max_ms: 300,
            heartbeat_interval_ms: 50,
        }
    }
}

/// Why a configuration could not be loaded; messages name the file (or source) and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file (the configuration, a dynamic config file or `myid`) could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not well formed (TOML syntax, a bad escape).
    #[error("{}: {message}", location(.file, *.line))]
    Syntax {
        /// The file.
        file: String,
        /// The line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A setting has a value that cannot be used.
    #[error("{}: invalid {key}: {reason}", location(.file, *.line))]
    Invalid {
        /// The file, or `command line`.
        file: String,
        /// The line, when known.
        line: Option<usize>,
        /// The key (zoo.cfg, TOML or flag spelling, as the user wrote it).
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// `file:line` or `file`.
fn location(file: &str, line: Option<usize>) -> String {
    match line {
        Some(l) => format!("{file}:{l}"),
        None => file.to_string(),
    }
}

fn invalid(file: &str, line: Option<usize>, key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_string(),
        line,
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// The effective server configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// tickTime in ms (default 2000).
    pub tick_time_ms: u32,
    /// dataDir: snapshots and `myid` (default ./concord-data, relative to the working directory).
    pub data_dir: PathBuf,
    /// dataLogDir: the Raft log (default: data_dir).
    pub data_log_dir: PathBuf,
    /// clientPort (default 2181; 0 picks a free port).
    pub client_port: u16,
    /// clientPortAddress (default 127.0.0.1: loopback only, a safe default).
    pub client_port_address: IpAddr,
    /// maxClientCnxns per client IP (default 60; 0 = unlimited).
    pub max_client_cnxns: u32,
    /// minSessionTimeout in ms (default 2 × tickTime).
    pub min_session_timeout_ms: u32,
    /// maxSessionTimeout in ms (default 20 × tickTime).
    pub max_session_timeout_ms: u32,
    /// 4lw.commands.whitelist (default: ruok, srvr, stat, envi, conf, isro, mntr, dirs).
    pub four_letter_words: FourLetterWords,
    /// snapCount: txns between snapshots (default 100000).
    pub snap_count: u64,
    /// autopurge.snapRetainCount: snapshots kept (default 3, raised to at least 3).
    pub autopurge_snap_retain_count: u32,
    /// autopurge.purgeInterval in hours (default 0 = disabled).
    pub autopurge_purge_interval_hours: u32,
    /// jute.maxbuffer: largest packet accepted, bytes (default 0xfffff).
    pub jute_max_buffer: usize,
    /// extendedTypesEnabled: allow TTL nodes (default false).
    pub extended_types_enabled: bool,
    /// admin.enableServer (default false).
    pub admin_enable_server: bool,
    /// admin.serverAddress (default 127.0.0.1).
    pub admin_server_address: IpAddr,
    /// admin.serverPort (default 8080).
    pub admin_server_port: u16,
    /// forceSync: fsync the log before acknowledging (default yes).
    pub force_sync: bool,
    /// superDigest: `user:base64(sha1(user:password))` of the super user (default none).
    pub super_digest: Option<String>,
    /// reconfigEnabled: allow the `reconfig` request (default false, as in ZooKeeper).
    pub reconfig_enabled: bool,
    /// initLimit in ticks (default 10).
    pub init_limit: u32,
    /// syncLimit in ticks (default 5).
    pub sync_limit: u32,
    /// The ensemble from server.N lines, sorted by id.
    pub servers: Vec<ServerSpec>,
    /// This server's id: `--myid`, else the `myid` file in data_dir, else None.
    pub my_id: Option<u64>,
    /// concord's Raft timings.
    pub raft: RaftTimings,
    /// Log filter, from `--log-level`, env CONCORD_LOG or TOML `log_level`.
    pub log_level: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Settings::default().build()
    }
}

/// How a TOML value is checked before it is handed to the zoo.cfg setter.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Num,
    Bool,
    Str,
    List,
}

/// TOML key → zoo.cfg key, and the value's kind.
const TOML_KEYS: [(&str, &str, Kind); 23] = [
    ("tick_time", "tickTime", Kind::Num),
    ("data_dir", "dataDir", Kind::Str),
    ("data_log_dir", "dataLogDir", Kind::Str),
    ("client_port", "clientPort", Kind::Num),
    ("client_port_address", "clientPortAddress", Kind::Str),
    ("max_client_cnxns", "maxClientCnxns", Kind::Num),
    ("min_session_timeout", "minSessionTimeout", Kind::Num),
    ("max_session_timeout", "maxSessionTimeout", Kind::Num),
    ("four_letter_words", "4lw.commands.whitelist", Kind::List),
    ("snap_count", "snapCount", Kind::Num),
    (
        "autopurge_snap_retain_count",
        "autopurge.snapRetainCount",
        Kind::Num,
    ),
    (
        "autopurge_purge_interval",
        "autopurge.purgeInterval",
        Kind::Num,
    ),
    ("jute_max_buffer", "jute.maxbuffer", Kind::Num),
    ("extended_types_enabled", "extendedTypesEnabled", Kind::Bool),
    ("admin_enable_server", "admin.enableServer", Kind::Bool),
    ("admin_server_address", "admin.serverAddress", Kind::Str),
    ("admin_server_port", "admin.serverPort", Kind::Num),
    ("force_sync", "forceSync", Kind::Bool),
    ("super_digest", "superDigest", Kind::Str),
    ("reconfig_enabled", "reconfigEnabled", Kind::Bool),
    ("init_limit", "initLimit", Kind::Num),
    ("sync_limit", "syncLimit", Kind::Num),
    ("peer_type", "peerType", Kind::Str),
];

/// `[raft]` TOML key → zoo.cfg key.
const TOML_RAFT_KEYS: [(&str, &str); 3] = [
    (
        "election_timeout_min_ms",
        "concord.raft.electionTimeoutMinMs",
    ),
    (
        "election_timeout_max_ms",
        "concord.raft.electionTimeoutMaxMs",
    ),
    ("heartbeat_interval_ms", "concord.raft.heartbeatIntervalMs"),
];

/// ZooKeeper keys accepted without effect or warning.
const SILENT_KEYS: [&str; 17] = [
    "standaloneEnabled",
    "quorumListenOnAllIPs",
    "admin.commandURL",
    "admin.idleTimeout",
    "globalOutstandingLimit",
    "preAllocSize",
    "leaderServes",
    "cnxTimeout",
    "electionAlg",
    "clientPortListenBacklog",
    "syncEnabled",
    "electionPortBindRetry",
    "connectToLearnerMasterLimit",
    "tcpKeepAlive",
    "serverCnxnFactory",
    "snapSizeLimitInKb",
    "txnLogSizeLimitInKb",
];

/// One source's settings (a file, or the flags): None where the source says nothing.
#[derive(Debug, Clone, Default)]
struct Settings {
    tick_time_ms: Option<u32>,
    data_dir: Option<PathBuf>,
    data_log_dir: Option<PathBuf>,
    client_port: Option<u16>,
    client_port_address: Option<IpAddr>,
    max_client_cnxns: Option<u32>,
    min_session_timeout_ms: Option<u32>,
    max_session_timeout_ms: Option<u32>,
    four_letter_words: Option<FourLetterWords>,
    snap_count: Option<u64>,
    autopurge_snap_retain_count: Option<u32>,
    autopurge_purge_interval_hours: Option<u32>,
    jute_max_buffer: Option<usize>,
    extended_types_enabled: Option<bool>,
    admin_enable_server: Option<bool>,
    admin_server_address: Option<IpAddr>,
    admin_server_port: Option<u16>,
    force_sync: Option<bool>,
    super_digest: Option<String>,
    reconfig_enabled: Option<bool>,
    init_limit: Option<u32>,
    sync_limit: Option<u32>,
    servers: BTreeMap<u64, ServerSpec>,
    peer_type: Option<ServerRole>,
    my_id: Option<u64>,
    election_timeout_min_ms: Option<u64>,
    election_timeout_max_ms: Option<u64>,
    heartbeat_interval_ms: Option<u64>,
    log_level: Option<String>,
}

fn parse_uint(v: &str, max: u64) -> Result<u64, String> {
    let t = v.trim();
    let n = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse::<u64>(),
    }
    .map_err(|_| format!("expected a whole number from 0 to {max}, got {v:?}"))?;
    if n > max {
        return Err(format!("{n} is too large (at most {max})"));
    }
    Ok(n)
}

fn parse_u32(v: &str) -> Result<u32, String> {
    parse_uint(v, u32::MAX.into()).map(|n| n as u32)
}

/// A u32 that ZooKeeper keeps in a Java int: at most i32::MAX.
fn parse_int(v: &str) -> Result<u32, String> {
    parse_uint(v, i32::MAX as u64).map(|n| n as u32)
}

fn parse_port(v: &str, zero_ok: bool) -> Result<u16, String> {
    let n = parse_uint(v, u16::MAX.into())
        .map_err(|_| format!("expected a port number from 0 to 65535, got {v:?}"))?;
    if n == 0 && !zero_ok {
        return Err("port 0 cannot be used here".into());
    }
    Ok(n as u16)
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("expected yes/no or true/false, got {v:?}")),
    }
}

/// An IP address, or a host name resolved now (ZooKeeper accepts both).
fn parse_ip(v: &str) -> Result<IpAddr, String> {
    let t = v.trim();
    let bare = t
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(t);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip);
    }
    if bare.is_empty() {
        return Err("expected an address or host name, got an empty value".into());
    }
    (bare, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map(|a| a.ip())
        .ok_or_else(|| format!("{v:?} is not an IP address or a resolvable host name"))
}

fn parse_path(v: &str) -> Result<PathBuf, String> {
    if v.trim().is_empty() {
        return Err("expected a path, got an empty value".into());
    }
    Ok(PathBuf::from(v.trim()))
}

/// Checks `user:base64(sha1(user:password))`.
fn parse_digest(v: &str) -> Result<String, String> {
    let t = v.trim();
    let ok = t.split_once(':').is_some_and(|(user, hash)| {
        !user.is_empty()
            && hash.len() == 28
            && hash.ends_with('=')
            && hash[..27]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
    });
    if !ok {
        return Err(format!(
            "expected user:base64(sha1(user:password)) (28 base64 characters after the colon), got {v:?}"
        ));
    }
    Ok(t.to_string())
}

impl Settings {
    /// Applies one setting by its zoo.cfg name; Ok(Some(w)) is a warning for the caller.
    fn set(&mut self, key: &str, value: &str) -> Result<Option<String>, String> {
        let v = value.trim();
        match key {
            "tickTime" => self.tick_time_ms = Some(parse_int(v)?),
            "dataDir" => self.data_dir = Some(parse_path(v)?),
            "dataLogDir" => self.data_log_dir = Some(parse_path(v)?),
            "clientPort" => self.client_port = Some(parse_port(v, true)?),
            "clientPortAddress" => self.client_port_address = Some(parse_ip(v)?),
            "maxClientCnxns" => self.max_client_cnxns = Some(parse_u32(v)?),
            "minSessionTimeout" => self.min_session_timeout_ms = Some(parse_int(v)?),
            "maxSessionTimeout" => self.max_session_timeout_ms = Some(parse_int(v)?),
            "4lw.commands.whitelist" => {
                let w = FourLetterWords::parse_list(v);
                let unknown = w.unknown_commands();
                self.four_letter_words = Some(w);
                if !unknown.is_empty() {
                    return Ok(Some(format!(
                        "4lw.commands.whitelist: {} not a four-letter word concord knows; ignored",
                        unknown.join(", ")
                    )));
                }
            }
            "snapCount" => self.snap_count = Some(parse_uint(v, u64::MAX)?),
            "autopurge.snapRetainCount" => {
                let n = parse_u32(v)?;
                self.autopurge_snap_retain_count = Some(n.max(3));
                if n < 3 {
                    return Ok(Some(format!(
                        "autopurge.snapRetainCount={n} raised to the minimum of 3"
                    )));
                }
            }
            "autopurge.purgeInterval" => self.autopurge_purge_interval_hours = Some(parse_u32(v)?),
            "jute.maxbuffer" => {
                self.jute_max_buffer = Some(parse_uint(v, i32::MAX as u64)? as usize)
            }
            "extendedTypesEnabled" | "zookeeper.extendedTypesEnabled" => {
                self.extended_types_enabled = Some(parse_bool(v)?)
            }
            "admin.enableServer" => self.admin_enable_server = Some(parse_bool(v)?),
            "admin.serverAddress" => self.admin_server_address = Some(parse_ip(v)?),
            "admin.serverPort" => self.admin_server_port = Some(parse_port(v, true)?),
            "forceSync" => self.force_sync = Some(parse_bool(v)?),
            "reconfigEnabled" => self.reconfig_enabled = Some(parse_bool(v)?),
            "superDigest" | "zookeeper.DigestAuthenticationProvider.superDigest" => {
                self.super_digest = Some(parse_digest(v)?)
            }
            "initLimit" => self.init_limit = Some(parse_u32(v)?),
            "syncLimit" => self.sync_limit = Some(parse_u32(v)?),
            "peerType" => self.peer_type = Some(ServerRole::parse(v)?),
            "concord.raft.electionTimeoutMinMs" => {
                self.election_timeout_min_ms = Some(parse_uint(v, u64::MAX)?)
            }
            "concord.raft.electionTimeoutMaxMs" => {
                self.election_timeout_max_ms = Some(parse_uint(v, u64::MAX)?)
            }
            "concord.raft.heartbeatIntervalMs" => {
                self.heartbeat_interval_ms = Some(parse_uint(v, u64::MAX)?)
            }
            k if k.starts_with("server.") => {
                let id = parse_uint(&k["server.".len()..], u64::MAX)
                    .map_err(|_| format!("expected server.N with a numeric id, got {k:?}"))?;
                self.servers.insert(id, ServerSpec::parse(id, v)?);
            }
            k if SILENT_KEYS.contains(&k) || k.starts_with("multiAddress.") => {}
            "metricsProvider.className" => {
                if !v.is_empty() && !v.ends_with("NullMetricsProvider") {
                    return Ok(Some(format!(
                        "metricsProvider.className={v}: metrics providers are not supported (use the mntr four-letter word); ignored"
                    )));
                }
            }
            k if k.starts_with("metricsProvider.") => {}
            "localSessionsEnabled" | "localSessionsUpgradingEnabled" | "skipACL" => {
                if parse_bool(v)? {
                    let what = match key {
                        "skipACL" => "skipping ACL checks is",
                        _ => "local sessions are",
                    };
                    return Ok(Some(format!("{key}={v}: {what} not supported; ignored")));
                }
            }
            "maxCnxns" => {
                if parse_u32(v)? > 0 {
                    return Ok(Some(format!(
                        "maxCnxns={v}: a server-wide connection limit is not supported (maxClientCnxns, per client IP, is); ignored"
                    )));
                }
            }
            k if k == "secureClientPort"
                || k == "secureClientPortAddress"
                || k == "sslQuorum"
                || k.starts_with("ssl.")
                || k.starts_with("authProvider.")
                || k.starts_with("quorum.auth.") =>
            {
                return Ok(Some(format!(
                    "{k}: TLS and SASL are not supported; ignored"
                )));
            }
            k if k.starts_with("group.") || k.starts_with("weight.") => {
                return Ok(Some(format!(
                    "{k}: hierarchical quorums are not supported; ignored"
                )));
            }
            k => return Ok(Some(format!("unknown key {k:?} ignored"))),
        }
        Ok(None)
    }

    /// Lays `top` over `self`: every setting `top` has wins.
    fn overlay(&mut self, top: Settings) {
        macro_rules! take {
            ($($f:ident),*) => { $( if top.$f.is_some() { self.$f = top.$f; } )* };
        }
        take!(
            tick_time_ms,
            data_dir,
            data_log_dir,
            client_port,
            client_port_address,
            max_client_cnxns,
            min_session_timeout_ms,
            max_session_timeout_ms,
            four_letter_words,
            snap_count,
            autopurge_snap_retain_count,
            autopurge_purge_interval_hours,
            jute_max_buffer,
            extended_types_enabled,
            admin_enable_server,
            admin_server_address,
            admin_server_port,
            force_sync,
            super_digest,
            reconfig_enabled,
            init_limit,
            sync_limit,
            peer_type,
            my_id,
            election_timeout_min_ms,
            election_timeout_max_ms,
            heartbeat_interval_ms,
            log_level
        );
        self.servers.extend(top.servers);
    }

    fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("./concord-data"))
    }

    /// The configuration with defaults filled in (derived ones from the final values).
    fn build(&self) -> Config {
        let tick = self.tick_time_ms.unwrap_or(2000);
        let data_dir = self.data_dir();
        let raft = RaftTimings::default();
        Config {
            tick_time_ms: tick,
            data_log_dir: self
                .data_log_dir
                .clone()
                .unwrap_or_else(|| data_dir.clone()),
            data_dir,
            client_port: self.client_port.unwrap_or(2181),
            client_port_address: self
                .client_port_address
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            max_client_cnxns: self.max_client_cnxns.unwrap_or(60),
            min_session_timeout_ms: self
                .min_session_timeout_ms
                .unwrap_or_else(|| tick.saturating_mul(2)),
            max_session_timeout_ms: self
                .max_session_timeout_ms
                .unwrap_or_else(|| tick.saturating_mul(20)),
            four_letter_words: self.four_letter_words.clone().unwrap_or_default(),
            snap_count: self.snap_count.unwrap_or(100_000),
            autopurge_snap_retain_count: self.autopurge_snap_retain_count.unwrap_or(3),
            autopurge_purge_interval_hours: self.autopurge_purge_interval_hours.unwrap_or(0),
            jute_max_buffer: self
                .jute_max_buffer
                .unwrap_or(concord_jute::DEFAULT_MAX_BUFFER),
            extended_types_enabled: self.extended_types_enabled.unwrap_or(false),
            admin_enable_server: self.admin_enable_server.unwrap_or(false),
            admin_server_address: self
                .admin_server_address
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            admin_server_port: self.admin_server_port.unwrap_or(8080),
            force_sync: self.force_sync.unwrap_or(true),
            super_digest: self.super_digest.clone(),
            reconfig_enabled: self.reconfig_enabled.unwrap_or(false),
            init_limit: self.init_limit.unwrap_or(10),
            sync_limit: self.sync_limit.unwrap_or(5),
            servers: self.servers.values().cloned().collect(),
            my_id: self.my_id,
            raft: RaftTimings {
                election_timeout_min_ms: self
                    .election_timeout_min_ms
                    .unwrap_or(raft.election_timeout_min_ms),
                election_timeout_max_ms: self
                    .election_timeout_max_ms
                    .unwrap_or(raft.election_timeout_max_ms),
                heartbeat_interval_ms: self
                    .heartbeat_interval_ms
                    .unwrap_or(raft.heartbeat_interval_ms),
            },
            log_level: self.log_level.clone(),
        }
    }

    /// Builds, applies this server's own `server.N` line, and validates; `source` names the
    /// origin in errors and warnings.
    fn finish(&self, source: &str, warnings: &mut Vec<String>) -> Result<Config, ConfigError> {
        let mut c = self.build();
        if let Some(me) = self.my_id.and_then(|id| self.servers.get(&id)) {
            let key = format!("server.{}", me.id);
            if let Some((host, port)) = &me.client_addr {
                match self.client_port {
                    None => c.client_port = *port,
                    Some(p) if p != *port => {
                        return Err(invalid(
                            source,
                            None,
                            "clientPort",
                            format!("clientPort={p} differs from the client port {port} in this server's {key} line"),
                        ))
                    }
                    Some(_) => {}
                }
                if !host.is_empty() && self.client_port_address.is_none() {
                    c.client_port_address =
                        parse_ip(host).map_err(|e| invalid(source, None, &key, e))?;
                }
            }
            if let Some(t) = self.peer_type {
                if t != me.role {
                    warnings.push(format!(
                        "{source}: peerType={} does not match this server's {key} line ({}); using the {key} line",
                        t.as_str(),
                        me.role.as_str()
                    ));
                }
            }
        }
        c.validate_in(source)?;
        Ok(c)
    }
}

/// Splits Java-properties text into (line number, key, value) entries, keys and values trimmed.
fn parse_properties(text: &str, file: &str) -> Result<Vec<(usize, String, String)>, ConfigError> {
    const BLANK: [char; 3] = [' ', '\t', '\x0c'];
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let first = raw.trim_start_matches(BLANK);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        let mut logical = first.to_string();
        // An odd number of trailing backslashes continues the entry on the next line.
        while logical.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1 {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start_matches(BLANK)),
                None => break,
            }
        }
        // The key ends at the first unescaped '=', ':' or blank.
        let mut end = logical.len();
        let mut escaped = false;
        for (at, ch) in logical.char_indices() {
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '=' || ch == ':' || BLANK.contains(&ch) {
                end = at;
                break;
            }
        }
        let (key, mut rest) = logical.split_at(end);
        rest = rest.trim_start_matches(BLANK);
        if let Some(r) = rest.strip_prefix(['=', ':']) {
            rest = r;
        }
        let syntax = |message: String| ConfigError::Syntax {
            file: file.to_string(),
            line: Some(i + 1),
            message,
        };
        let key = unescape(key).map_err(syntax)?;
        let value = unescape(rest).map_err(syntax)?;
        out.push((i + 1, key.trim().to_string(), value.trim().to_string()));
    }
    Ok(out)
}

/// Decodes Java-properties escapes: `\t \n \r \f`, `\uXXXX`, and `\c` for any other `c`.
fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let ch = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("malformed \\uXXXX escape: \\u{hex}"))?;
                out.push(ch);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

/// Reads zoo.cfg text into settings (without myid); warnings are prefixed with the location.
fn zoo_cfg_settings(text: &str, source: &Path) -> Result<(Settings, Vec<String>), ConfigError> {
    let file = source.display().to_string();
    let mut s = Settings::default();
    let mut warnings = Vec::new();
    let mut dynamic = None;
    for (line, key, value) in parse_properties(text, &file)? {
        if key == "dynamicConfigFile" {
            dynamic = Some((line, value));
            continue;
        }
        match s.set(&key, &value) {
            Ok(Some(w)) => warnings.push(format!("{file}:{line}: {w}")),
            Ok(None) => {}
            Err(reason) => return Err(invalid(&file, Some(line), &key, reason)),
        }
    }
    // ZooKeeper reads the dynamic file after the static one; its server.N lines win.
    if let Some((line, dyn_path)) = dynamic {
        match std::fs::read_to_string(&dyn_path) {
            Ok(dyn_text) => {
                warnings.push(format!(
                    "{file}:{line}: dynamicConfigFile {dyn_path}: its server.N lines are read as static configuration: they form a new cluster, and later membership changes live in the Raft log, not in this file"
                ));
                for (l, k, v) in parse_properties(&dyn_text, &dyn_path)? {
                    if k.starts_with("server.") {
                        s.set(&k, &v)
                            .map_err(|reason| invalid(&dyn_path, Some(l), &k, reason))?;
                    } else if k != "version" {
                        warnings.push(format!(
                            "{dyn_path}:{l}: {k:?} ignored in a dynamic config file"
                        ));
                    }
                }
            }
            Err(e) => warnings.push(format!(
                "{file}:{line}: dynamicConfigFile {dyn_path} cannot be read ({e}); ignored"
            )),
        }
    }
    Ok((s, warnings))
}

/// Converts a TOML value into the text the zoo.cfg setter takes, checking its type.
fn toml_text(v: &toml::Value, kind: Kind) -> Result<String, String> {
    use toml::Value as V;
    match (kind, v) {
        (_, V::String(s)) => Ok(s.clone()),
        (Kind::Num, V::Integer(i)) => Ok(i.to_string()),
        (Kind::Bool, V::Boolean(b)) => Ok(b.to_string()),
        (Kind::List, V::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str().map(str::to_string).ok_or_else(|| {
                    format!("expected an array of strings, found a {}", x.type_str())
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join(",")),
        (k, other) => Err(format!(
            "expected {}, found a {}",
            match k {
                Kind::Num => "a whole number",
                Kind::Bool => "true or false",
                Kind::Str => "a string",
                Kind::List => "a string or an array of strings",
            },
            other.type_str()
        )),
    }
}

/// A server from a TOML table: `host`, `quorum_port`, `election_port`, optional `role`,
/// `client_address`, `client_port` (and `id` in `[[servers]]` form, passed as `id`).
fn toml_server(
    id: u64,
    t: &toml::Table,
    at: &str,
    file: &str,
    warnings: &mut Vec<String>,
) -> Result<ServerSpec, ConfigError> {
    let field = |name: &str, kind: Kind| -> Result<Option<String>, ConfigError> {
        t.get(name)
            .map(|v| {
                toml_text(v, kind).map_err(|e| invalid(file, None, &format!("{at}.{name}"), e))
            })
            .transpose()
    };
    let required = |name: &str, kind: Kind| -> Result<String, ConfigError> {
        field(name, kind)?.ok_or_else(|| invalid(file, None, &format!("{at}.{name}"), "missing"))
    };
    let bad = |name: &str| {
        let key = format!("{at}.{name}");
        move |e: String| invalid(file, None, &key, e)
    };
    let host = required("host", Kind::Str)?;
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(invalid(file, None, &format!("{at}.host"), "empty host"));
    }
    let quorum_port =
        parse_port(&required("quorum_port", Kind::Num)?, false).map_err(bad("quorum_port"))?;
    let election_port =
        parse_port(&required("election_port", Kind::Num)?, false).map_err(bad("election_port"))?;
    let role = match field("role", Kind::Str)? {
        Some(r) => ServerRole::parse(&r).map_err(bad("role"))?,
        None => ServerRole::Participant,
    };
    let client_host = field("client_address", Kind::Str)?;
    let client_addr = match field("client_port", Kind::Num)? {
        Some(p) => Some((
            client_host
                .unwrap_or_default()
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            parse_port(&p, true).map_err(bad("client_port"))?,
        )),
        None if client_host.is_some() => {
            return Err(invalid(
                file,
                None,
                &format!("{at}.client_address"),
                "client_address needs client_port",
            ))
        }
        None => None,
    };
    for k in t.keys() {
        let known = [
            "id",
            "host",
            "quorum_port",
            "election_port",
            "role",
            "client_address",
            "client_port",
        ];
        if !known.contains(&k.as_str()) {
            warnings.push(format!("{file}: unknown key {at}.{k} ignored"));
        }
    }
    Ok(ServerSpec {
        id,
        host: host.to_string(),
        quorum_port,
        election_port,
        role,
        client_addr,
    })
}

/// Reads TOML text into settings (without myid).
fn toml_settings(text: &str, source: &Path) -> Result<(Settings, Vec<String>), ConfigError> {
    let file = source.display().to_string();
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            file: file.clone(),
            line: None,
            message: e.to_string().trim_end().to_string(),
        })?;
    let mut s = Settings::default();
    let mut warnings = Vec::new();
    for (key, value) in &table {
        match key.as_str() {
            "servers" => match value {
                toml::Value::Table(map) => {
                    for (id_text, spec) in map {
                        let at = format!("servers.{id_text}");
                        let id = parse_uint(id_text, u64::MAX)
                            .map_err(|_| invalid(&file, None, &at, "server ids must be numbers"))?;
                        let server = match spec {
                            toml::Value::String(line) => ServerSpec::parse(id, line)
                                .map_err(|e| invalid(&file, None, &at, e))?,
                            toml::Value::Table(t) => {
                                if t.contains_key("id") {
                                    return Err(invalid(&file, None, &format!("{at}.id"), "the id is the key; do not repeat it"));
                                }
                                toml_server(id, t, &at, &file, &mut warnings)?
                            }
                            other => {
                                return Err(invalid(&file, None, &at, format!(
                                    "expected \"host:quorumPort:electionPort...\" or a table, found a {}",
                                    other.type_str()
                                )))
                            }
                        };
                        s.servers.insert(id, server);
                    }
                }
                toml::Value::Array(list) => {
                    for (i, item) in list.iter().enumerate() {
                        let at = format!("servers[{i}]");
                        let t = item.as_table().ok_or_else(|| {
                            invalid(&file, None, &at, "expected a table ([[servers]])")
                        })?;
                        let id = match t.get("id") {
                            Some(toml::Value::Integer(n)) if *n >= 0 => *n as u64,
                            Some(_) => {
                                return Err(invalid(
                                    &file,
                                    None,
                                    &format!("{at}.id"),
                                    "expected a non-negative whole number",
                                ))
                            }
                            None => {
                                return Err(invalid(&file, None, &format!("{at}.id"), "missing"))
                            }
                        };
                        if s.servers.contains_key(&id) {
                            return Err(invalid(
                                &file,
                                None,
                                &format!("{at}.id"),
                                format!("server id {id} appears twice"),
                            ));
                        }
                        let server = toml_server(id, t, &at, &file, &mut warnings)?;
                        s.servers.insert(id, server);
                    }
                }
                other => {
                    return Err(invalid(
                        &file,
                        None,
                        key,
                        format!(
                            "expected a [servers] table or [[servers]] entries, found a {}",
                            other.type_str()
                        ),
                    ))
                }
            },
            "raft" => {
                let t = value
                    .as_table()
                    .ok_or_else(|| invalid(&file, None, key, "expected a [raft] table"))?;
                for (rk, rv) in t {
                    let at = format!("raft.{rk}");
                    match TOML_RAFT_KEYS.iter().find(|(k, _)| k == rk) {
                        Some((_, zk)) => {
                            let text = toml_text(rv, Kind::Num)
                                .map_err(|e| invalid(&file, None, &at, e))?;
                            s.set(zk, &text).map_err(|e| invalid(&file, None, &at, e))?;
                        }
                        None => warnings.push(format!("{file}: unknown key {at} ignored")),
                    }
                }
            }
            "log_level" => {
                s.log_level =
                    Some(toml_text(value, Kind::Str).map_err(|e| invalid(&file, None, key, e))?)
            }
            other => match TOML_KEYS.iter().find(|(t, _, _)| *t == other) {
                Some((_, zk, kind)) => {
                    let text =
                        toml_text(value, *kind).map_err(|e| invalid(&file, None, other, e))?;
                    if let Some(w) = s
                        .set(zk, &text)
                        .map_err(|e| invalid(&file, None, other, e))?
                    {
                        warnings.push(format!("{file}: {other}: {w}"));
                    }
                }
                None => {
                    let hint = TOML_KEYS
                        .iter()
                        .find(|(_, zk, _)| *zk == other)
                        .map(|(t, _, _)| format!(" (the TOML spelling is {t})"))
                        .unwrap_or_default();
                    warnings.push(format!("{file}: unknown key {other:?} ignored{hint}"));
                }
            },
        }
    }
    Ok((s, warnings))
}

/// Reads a configuration file, choosing the format by extension.
fn file_settings(path: &Path) -> Result<(Settings, Vec<String>), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if path.extension().is_some_and(|e| e == "toml") {
        toml_settings(&text, path)
    } else {
        zoo_cfg_settings(&text, path)
    }
}

/// Reads `dir/myid` (ZooKeeper's file: the id on the first line); None when it does not exist.
fn read_myid(dir: &Path) -> Result<Option<u64>, ConfigError> {
    let path = dir.join("myid");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let first = text.lines().next().unwrap_or("").trim();
            let id = first.parse::<u64>().map_err(|_| {
                invalid(
                    &path.display().to_string(),
                    Some(1),
                    "myid",
                    format!("expected a server id (a whole number), got {first:?}"),
                )
            })?;
            Ok(Some(id))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Read { path, source }),
    }
}

impl Config {
    /// Parses zoo.cfg text (`source` names the file in messages); does not read `myid`.
    pub fn from_zoo_cfg(text: &str, source: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let (s, mut warnings) = zoo_cfg_settings(text, source)?;
        let c = s.finish(&source.display().to_string(), &mut warnings)?;
        Ok((c, warnings))
    }

    /// Parses a TOML configuration (format in the module docs); does not read `myid`.
    pub fn from_toml(text: &str, source: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let (s, mut warnings) = toml_settings(text, source)?;
        let c = s.finish(&source.display().to_string(), &mut warnings)?;
        Ok((c, warnings))
    }

    /// Loads a file (TOML when it ends in `.toml`, zoo.cfg otherwise) and reads `myid` from its dataDir.
    pub fn load(path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let (mut s, mut warnings) = file_settings(path)?;
        s.my_id = read_myid(&s.data_dir())?;
        let c = s.finish(&path.display().to_string(), &mut warnings)?;
        Ok((c, warnings))
    }

    /// The client listening address (clientPortAddress:clientPort).
    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::new(self.client_port_address, self.client_port)
    }

    /// Checks that the settings can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_in("configuration")
    }

    fn validate_in(&self, source: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: String| Err(invalid(source, None, key, reason));
        if self.tick_time_ms == 0 {
            return bad("tickTime", "must be greater than 0".into());
        }
        if self.min_session_timeout_ms > self.max_session_timeout_ms {
            return bad(
                "minSessionTimeout",
                format!(
                    "minSessionTimeout ({}) must not be larger than maxSessionTimeout ({})",
                    self.min_session_timeout_ms, self.max_session_timeout_ms
                ),
            );
        }
        if self.max_session_timeout_ms > i32::MAX as u32 {
            return bad("maxSessionTimeout", format!("must be at most {}", i32::MAX));
        }
        if self.jute_max_buffer < 1024 || self.jute_max_buffer > i32::MAX as usize {
            return bad(
                "jute.maxbuffer",
                format!(
                    "must be from 1024 to {} bytes, got {}",
                    i32::MAX,
                    self.jute_max_buffer
                ),
            );
        }
        if self.snap_count == 0 {
            return bad("snapCount", "must be greater than 0".into());
        }
        if self.admin_enable_server
            && self.admin_server_port == self.client_port
            && self.client_port != 0
            && self.admin_server_address == self.client_port_address
        {
            return bad(
                "admin.serverPort",
                format!("{} is also the client port", self.admin_server_port),
            );
        }
        let r = &self.raft;
        if r.heartbeat_interval_ms == 0 {
            return bad(
                "concord.raft.heartbeatIntervalMs",
                "must be greater than 0".into(),
            );
        }
        if r.election_timeout_min_ms <= r.heartbeat_interval_ms {
            return bad(
                "concord.raft.electionTimeoutMinMs",
                format!(
                    "({}) must be greater than the heartbeat interval ({})",
                    r.election_timeout_min_ms, r.heartbeat_interval_ms
                ),
            );
        }
        if r.election_timeout_max_ms <= r.election_timeout_min_ms {
            return bad(
                "concord.raft.electionTimeoutMaxMs",
                format!(
                    "({}) must be greater than electionTimeoutMinMs ({})",
                    r.election_timeout_max_ms, r.election_timeout_min_ms
                ),
            );
        }
        if !self.servers.is_empty() {
            if self.servers.iter().all(|s| s.role == ServerRole::Observer) {
                return bad(
                    "server.N",
                    "observers without participants cannot form a quorum".into(),
                );
            }
            if let Some(id) = self.my_id {
                if !self.servers.iter().any(|s| s.id == id) {
                    return bad(
                        "myid",
                        format!("this server's id {id} has no server.{id} line"),
                    );
                }
            }
            if self.servers.len() > 1 && self.init_limit == 0 {
                return bad("initLimit", "must be greater than 0 for an ensemble".into());
            }
            if self.servers.len() > 1 && self.sync_limit == 0 {
                return bad("syncLimit", "must be greater than 0 for an ensemble".into());
            }
        }
        // ZooKeeper packs the server id into a byte of TTL session ids.
        if let Some(id) = self
            .my_id
            .filter(|&id| self.extended_types_enabled && id > 254)
        {
            return bad(
                "myid",
                format!("server ids above 254 cannot be used with extendedTypesEnabled (got {id})"),
            );
        }
        Ok(())
    }

    /// The session timeout granted for a requested one: raised to min, then lowered to max, as ZooKeeper does.
    pub fn negotiate_timeout(&self, requested_ms: i32) -> i32 {
        let min = i32::try_from(self.min_session_timeout_ms).unwrap_or(i32::MAX);
        let max = i32::try_from(self.max_session_timeout_ms).unwrap_or(i32::MAX);
        let mut t = requested_ms;
        if t < min {
            t = min;
        }
        if t > max {
            t = max;
        }
        t
    }
}

const AFTER_HELP: &str =
    "Flags override the configuration file. Run with --help for the file formats.";

const AFTER_LONG_HELP: &str = "\
DEFAULTS
  With no flags and no file, concord serves ZooKeeper clients on 127.0.0.1:2181 (loopback only)
  with its data in ./concord-data, fsyncing every write before acknowledging it.

CONFIGURATION FILES
  A file whose name does not end in .toml is read as Apache ZooKeeper's zoo.cfg (Java
  properties: key=value, # comments):

      tickTime=2000
      dataDir=/var/lib/concord
      clientPort=2181
      clientPortAddress=0.0.0.0
      4lw.commands.whitelist=ruok,srvr,mntr
      server.1=10.0.0.1:2888:3888;2181

  A file ending in .toml takes the same settings in snake_case:

      tick_time = 2000
      data_dir = \"/var/lib/concord\"
      client_port = 2181
      client_port_address = \"0.0.0.0\"
      four_letter_words = [\"ruok\", \"srvr\", \"mntr\"]
      log_level = \"info\"

      [servers]
      1 = \"10.0.0.1:2888:3888;2181\"

      [raft]
      election_timeout_min_ms = 500
      election_timeout_max_ms = 1000

  Unknown keys are reported as warnings and ignored; invalid values stop the server with a
  message naming the file and key. The server id is read from the myid file in dataDir (as
  ZooKeeper does) unless --myid is given.

PRECEDENCE
  Flags override the file, which overrides the defaults. Defaults derived from other settings
  (session timeouts from tickTime, dataLogDir from dataDir) follow the final values.";

/// Flags of `concord server`; usable as a subcommand's whole argument struct or flattened.
#[derive(Args, Debug, Clone, Default)]
#[command(
    about = "Run a concord server",
    long_about = "Run a concord server: a ZooKeeper-compatible coordination service.\n\nWith no flags it serves ZooKeeper clients on 127.0.0.1:2181 with its data in ./concord-data. Settings come from an optional configuration file (zoo.cfg, or TOML when the name ends in .toml) and from these flags, which override the file.",
    after_help = AFTER_HELP,
    after_long_help = AFTER_LONG_HELP
)]
pub struct ServerArgs {
    /// Configuration file: ZooKeeper zoo.cfg, or TOML when the name ends in .toml [default: none].
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Client port; 0 picks a free port [overrides zoo.cfg clientPort; default 2181].
    #[arg(long, short = 'p', value_name = "PORT")]
    pub port: Option<u16>,
    /// Address (or host name) to listen on [overrides clientPortAddress; default 127.0.0.1].
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Snapshot directory, also holding myid [overrides dataDir; default ./concord-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Raft log directory [overrides dataLogDir; default: the data directory].
    #[arg(long, value_name = "DIR")]
    pub data_log_dir: Option<PathBuf>,
    /// Tick length in ms [overrides tickTime; default 2000].
    #[arg(long, value_name = "MS")]
    pub tick_time: Option<u32>,
    /// Connections allowed per client IP, 0 = no limit [overrides maxClientCnxns; default 60].
    #[arg(long, value_name = "N")]
    pub max_client_cnxns: Option<u32>,
    /// Smallest session timeout granted, ms [overrides minSessionTimeout; default 2 x tickTime].
    #[arg(long, value_name = "MS")]
    pub min_session_timeout: Option<u32>,
    /// Largest session timeout granted, ms [overrides maxSessionTimeout; default 20 x tickTime].
    #[arg(long, value_name = "MS")]
    pub max_session_timeout: Option<u32>,
    /// Transactions between snapshots [overrides snapCount; default 100000].
    #[arg(long, value_name = "N")]
    pub snap_count: Option<u64>,
    /// Four-letter words allowed, comma separated, or * for all [overrides 4lw.commands.whitelist; default ruok,srvr,stat,envi,conf,isro,mntr,dirs].
    #[arg(long = "4lw-whitelist", value_name = "LIST")]
    pub four_letter_words: Option<String>,
    /// Allow TTL nodes [overrides extendedTypesEnabled; default false].
    #[arg(long)]
    pub extended_types: bool,
    /// Super user digest, user:base64(sha1(user:password)) [overrides superDigest; default none].
    #[arg(long, value_name = "DIGEST")]
    pub super_digest: Option<String>,
    /// Largest packet accepted, bytes, decimal or 0x hex [overrides jute.maxbuffer; default 0xfffff].
    #[arg(long, value_name = "BYTES", value_parser = parse_size_arg)]
    pub jute_max_buffer: Option<usize>,
    /// Do not fsync the log before acknowledging writes; unsafe, for benchmarks [sets forceSync=no; default yes].
    #[arg(long)]
    pub no_fsync: bool,
    /// Serve the admin HTTP server on this port [sets admin.enableServer=true and admin.serverPort; default off, 8080].
    #[arg(long, value_name = "PORT")]
    pub admin_port: Option<u16>,
    /// This server's id [overrides the myid file in dataDir; default: that file, else none].
    #[arg(long, value_name = "ID")]
    pub myid: Option<u64>,
    /// Log filter, e.g. info or concord_server=debug [TOML log_level; default info].
    #[arg(long, env = "CONCORD_LOG", value_name = "FILTER")]
    pub log_level: Option<String>,
}

fn parse_size_arg(s: &str) -> Result<usize, String> {
    parse_uint(s, i32::MAX as u64).map(|n| n as usize)
}

impl ServerArgs {
    /// The flags as a settings layer; errors name the flag and the key it overrides.
    fn settings(&self) -> Result<Settings, ConfigError> {
        let cli = |flag: &str, r: Result<Option<String>, String>| {
            r.map_err(|reason| invalid("command line", None, flag, reason))
        };
        let mut s = Settings {
            tick_time_ms: self.tick_time,
            data_dir: self.data_dir.clone(),
            data_log_dir: self.data_log_dir.clone(),
            client_port: self.port,
            max_client_cnxns: self.max_client_cnxns,
            min_session_timeout_ms: self.min_session_timeout,
            max_session_timeout_ms: self.max_session_timeout,
            snap_count: self.snap_count,
            four_letter_words: self
                .four_letter_words
                .as_deref()
                .map(FourLetterWords::parse_list),
            extended_types_enabled: self.extended_types.then_some(true),
            jute_max_buffer: self.jute_max_buffer,
            force_sync: self.no_fsync.then_some(false),
            admin_server_port: self.admin_port,
            admin_enable_server: self.admin_port.map(|_| true),
            my_id: self.myid,
            log_level: self.log_level.clone(),
            ..Settings::default()
        };
        if let Some(b) = &self.bind {
            cli("--bind (clientPortAddress)", s.set("clientPortAddress", b))?;
        }
        if let Some(d) = &self.super_digest {
            cli("--super-digest (superDigest)", s.set("superDigest", d))?;
        }
        Ok(s)
    }

    /// Loads `--config` (or defaults), applies the flags, reads myid from the final dataDir, validates.
    pub fn resolve(&self) -> Result<(Config, Vec<String>), ConfigError> {
        let (mut settings, mut warnings, source) = match &self.config {
            Some(path) => {
                let (s, w) = file_settings(path)?;
                let file = path.display().to_string();
                // The file must make sense on its own, so its mistakes are reported against it.
                s.finish(&file, &mut Vec::new())?;
                (s, w, format!("{file} with command-line flags"))
            }
            None => (Settings::default(), Vec::new(), "command line".to_string()),
        };
        let flags = self.settings()?;
        if let Some(w) = flags
            .four_letter_words
            .as_ref()
            .map(FourLetterWords::unknown_commands)
        {
            if !w.is_empty() {
                warnings.push(format!(
                    "command line: --4lw-whitelist: {} not a four-letter word concord knows; ignored",
                    w.join(", ")
                ));
            }
        }
        settings.overlay(flags);
        if settings.my_id.is_none() {
            settings.my_id = read_myid(&settings.data_dir())?;
        }
        let config = settings.finish(&source, &mut warnings)?;
        Ok((config, warnings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser, Subcommand};

    /// The binary's shape: `concord server [FLAGS]`.
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Cmd,
    }

    #[derive(Subcommand)]
    enum Cmd {
        /// Run a server.
        Server(ServerArgs),
    }

    /// The other supported shape: flattened into a parser.
    #[derive(Parser)]
    struct Flat {
        #[command(flatten)]
        args: ServerArgs,
    }

    fn parse_cli(args: &[&str]) -> ServerArgs {
        let mut v = vec!["concord", "server"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).unwrap().command {
            Cmd::Server(a) => a,
        }
    }

    fn zoo(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        Config::from_zoo_cfg(text, Path::new("/etc/zoo.cfg"))
    }

    fn digest() -> &'static str {
        "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
    }

    /// Every key of the public Config, in zoo.cfg syntax (various separators and a continuation).
    fn full_zoo_cfg() -> String {
        format!(
            "# comment\n\
             ! also a comment\n\
             tickTime=1000\n\
             dataDir=/tmp/zk\n\
             dataLogDir = /tmp/zklog\n\
             clientPort: 2191\n\
             clientPortAddress=0.0.0.0\n\
             maxClientCnxns 0\n\
             minSessionTimeout=1500\n\
             maxSessionTimeout=9000\n\
             4lw.commands.whitelist=srvr, RUOK ,mntr\n\
             snapCount=500\n\
             autopurge.snapRetainCount=5\n\
             autopurge.purgeInterval=1\n\
             jute.maxbuffer=0x100000\n\
             extendedTypesEnabled=true\n\
             admin.enableServer=true\n\
             admin.serverAddress=::1\n\
             admin.serverPort=9090\n\
             forceSync=no\n\
             reconfigEnabled=true\n\
             zookeeper.DigestAuthenticationProvider.superDigest={}\n\
             initLimit=20\n\
             syncLimit=\\\n   7\n\
             server.1=h1:2888:3888\n\
             server.2=h2:2888:3888:participant;2181\n\
             server.3=h3:2888:3888:observer;0.0.0.0:2182\n\
             concord.raft.electionTimeoutMinMs=600\n\
             concord.raft.electionTimeoutMaxMs=1200\n\
             concord.raft.heartbeatIntervalMs=100\n",
            digest()
        )
    }

    fn expected_full() -> Config {
        Config {
            tick_time_ms: 1000,
            data_dir: "/tmp/zk".into(),
            data_log_dir: "/tmp/zklog".into(),
            client_port: 2191,
            client_port_address: "0.0.0.0".parse().unwrap(),
            max_client_cnxns: 0,
            min_session_timeout_ms: 1500,
            max_session_timeout_ms: 9000,
            four_letter_words: FourLetterWords::Only(
                ["mntr", "ruok", "srvr"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
            snap_count: 500,
            autopurge_snap_retain_count: 5,
            autopurge_purge_interval_hours: 1,
            jute_max_buffer: 0x100000,
            extended_types_enabled: true,
            admin_enable_server: true,
            admin_server_address: "::1".parse().unwrap(),
            admin_server_port: 9090,
            force_sync: false,
            super_digest: Some(digest().into()),
            reconfig_enabled: true,
            init_limit: 20,
            sync_limit: 7,
            servers: vec![
                ServerSpec {
                    id: 1,
                    host: "h1".into(),
                    quorum_port: 2888,
                    election_port: 3888,
                    role: ServerRole::Participant,
                    client_addr: None,
                },
                ServerSpec {
                    id: 2,
                    host: "h2".into(),
                    quorum_port: 2888,
                    election_port: 3888,
                    role: ServerRole::Participant,
                    client_addr: Some((String::new(), 2181)),
                },
                ServerSpec {
                    id: 3,
                    host: "h3".into(),
                    quorum_port: 2888,
                    election_port: 3888,
                    role: ServerRole::Observer,
                    client_addr: Some(("0.0.0.0".into(), 2182)),
                },
            ],
            my_id: None,
            raft: RaftTimings {
                election_timeout_min_ms: 600,
                election_timeout_max_ms: 1200,
                heartbeat_interval_ms: 100,
            },
            log_level: None,
        }
    }

    #[test]
    fn defaults() {
        let c = Config::default();
        assert_eq!(c.tick_time_ms, 2000);
        assert_eq!(c.data_dir, PathBuf::from("./concord-data"));
        assert_eq!(c.data_log_dir, PathBuf::from("./concord-data"));
        assert_eq!(c.client_addr(), "127.0.0.1:2181".parse().unwrap());
        assert_eq!(c.max_client_cnxns, 60);
        assert_eq!(c.min_session_timeout_ms, 4000);
        assert_eq!(c.max_session_timeout_ms, 40000);
        assert_eq!(
            c.four_letter_words.to_string(),
            "conf,dirs,envi,isro,mntr,ruok,srvr,stat"
        );
        assert!(c.four_letter_words.allows("ruok"));
        assert!(!c.four_letter_words.allows("dump"));
        assert_eq!(c.snap_count, 100_000);
        assert_eq!(c.autopurge_snap_retain_count, 3);
        assert_eq!(c.autopurge_purge_interval_hours, 0);
        assert_eq!(c.jute_max_buffer, 0xfffff);
        assert!(!c.extended_types_enabled);
        assert!(!c.admin_enable_server);
        assert_eq!(c.admin_server_address, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(c.admin_server_port, 8080);
        assert!(c.force_sync);
        assert_eq!(c.super_digest, None);
        assert_eq!((c.init_limit, c.sync_limit), (10, 5));
        assert!(c.servers.is_empty());
        assert_eq!(c.my_id, None);
        assert_eq!(
            c.raft,
            RaftTimings {
                election_timeout_min_ms: 150,
                election_timeout_max_ms: 300,
                heartbeat_interval_ms: 50,
            }
        );
        assert_eq!(c.log_level, None);
        c.validate().unwrap();
        // An empty file is the defaults.
        let (e, w) = zoo("").unwrap();
        assert_eq!(e, c);
        assert!(w.is_empty());
    }

    #[test]
    fn full_zoo_cfg_reads_every_key() {
        let (c, w) = zoo(&full_zoo_cfg()).unwrap();
        assert_eq!(c, expected_full());
        assert!(w.is_empty(), "{w:?}");
        assert!(c.four_letter_words.allows("ruok"));
        assert!(!c.four_letter_words.allows("stat"));
    }

    #[test]
    fn session_timeout_defaults_follow_tick_time_wherever_it_appears() {
        let (c, _) = zoo("minSessionTimeout=100\ntickTime=500").unwrap();
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (100, 10_000)
        );
        let (c, _) = zoo("maxSessionTimeout=60000\ntickTime=500").unwrap();
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (1000, 60_000)
        );
        let (c, _) = zoo("dataDir=rel/dir").unwrap();
        assert_eq!(c.data_log_dir, PathBuf::from("rel/dir"));
        // Last value wins, as with java.util.Properties.
        let (c, _) = zoo("clientPort=1\nclientPort=2").unwrap();
        assert_eq!(c.client_port, 2);
    }

    #[test]
    fn properties_syntax() {
        let text = "  # indented comment\n\
                    key1 = a\\\n   b\\\\\n\
                    key2:c\\:d\n\
                    key\\=3 e f\n\
                    key4\n\
                    key5=\\u0041\\tz\n\
                    key6=odd\\\\\\\n    tail\n\
                    # dangling\n\
                    \n\
                    key7=\\\n";
        let entries = parse_properties(text, "x").unwrap();
        let got: Vec<(usize, &str, &str)> = entries
            .iter()
            .map(|(l, k, v)| (*l, k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (2, "key1", "ab\\"),
                (4, "key2", "c:d"),
                (5, "key=3", "e f"),
                (6, "key4", ""),
                (7, "key5", "A\tz"),
                (8, "key6", "odd\\tail"),
                (12, "key7", ""),
            ]
        );
        let e = parse_properties("a=\\u12", "f.cfg").unwrap_err();
        assert!(e.to_string().starts_with("f.cfg:1: malformed"), "{e}");
    }

    #[test]
    fn server_lines_in_every_syntax() {
        let p = |v: &str| ServerSpec::parse(7, v);
        let s = p("zk1.example.com:2888:3888").unwrap();
        assert_eq!(
            s,
            ServerSpec {
                id: 7,
                host: "zk1.example.com".into(),
                quorum_port: 2888,
                election_port: 3888,
                role: ServerRole::Participant,
                client_addr: None,
            }
        );
        let s = p("h:1:2:observer").unwrap();
        assert_eq!(
            (s.role, s.quorum_port, s.election_port),
            (ServerRole::Observer, 1, 2)
        );
        assert_eq!(
            p("h:1:2:PARTICIPANT").unwrap().role,
            ServerRole::Participant
        );
        assert_eq!(
            p("h:1:2;2181").unwrap().client_addr,
            Some((String::new(), 2181))
        );
        assert_eq!(p("h:1:2:observer;2181").unwrap().role, ServerRole::Observer);
        assert_eq!(
            p("h:1:2:participant;10.0.0.1:2182").unwrap().client_addr,
            Some(("10.0.0.1".into(), 2182))
        );
        assert_eq!(p(" h : 1 : 2 ; ").unwrap().client_addr, None);
        let s = p("[::1]:2888:3888:observer;[fe80::1]:2183").unwrap();
        assert_eq!(s.host, "::1");
        assert_eq!((s.quorum_port, s.election_port), (2888, 3888));
        assert_eq!(s.role, ServerRole::Observer);
        assert_eq!(s.client_addr, Some(("fe80::1".into(), 2183)));
        assert_eq!(s.to_string(), "[::1]:2888:3888:observer;[fe80::1]:2183");
        assert_eq!(p("[2001:db8::5]:1:2").unwrap().host, "2001:db8::5");
        for bad in [
            "h:1",
            "h",
            ":1:2",
            "h:1:2:3:4",
            "h:1:2:leader",
            "h:x:2",
            "h:1:70000",
            "h:0:2",
            "[::1:1:2",
            "[::1]1:2",
            "h:1:2;abc",
            "a:1:2|b:1:2",
        ] {
            assert!(p(bad).is_err(), "{bad} should not parse");
        }

        // In a file: sorted by id, a later line for the same id wins.
        let (c, _) = zoo(
            "server.3=[::1]:2888:3888\nserver.1=a:1:2\nserver.2=b:3:4:observer;2181\nserver.1=c:5:6;0.0.0.0:2182",
        )
        .unwrap();
        let ids: Vec<u64> = c.servers.iter().map(|s| s.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(c.servers[0].host, "c");
        assert_eq!(c.servers[0].client_addr, Some(("0.0.0.0".into(), 2182)));
        assert_eq!(c.servers[1].role, ServerRole::Observer);
        assert_eq!(c.servers[2].host, "::1");
    }

    #[test]
    fn own_server_line_supplies_the_client_port() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("myid"), "2\n").unwrap();
        let cfg = dir.path().join("zoo.cfg");
        let base = format!(
            "dataDir={}\nserver.1=a:1:2;2181\nserver.2=b:1:2;127.0.0.2:2185\npeerType=observer\n",
            dir.path().display()
        );
        std::fs::write(&cfg, &base).unwrap();
        let (c, w) = Config::load(&cfg).unwrap();
        assert_eq!(c.my_id, Some(2));
        assert_eq!(c.client_addr(), "127.0.0.2:2185".parse().unwrap());
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("peerType=observer") && w[0].contains("server.2"),
            "{w:?}"
        );

        std::fs::write(&cfg, format!("{base}clientPort=2185\n")).unwrap();
        assert_eq!(Config::load(&cfg).unwrap().0.client_port, 2185);
        std::fs::write(&cfg, format!("{base}clientPort=3000\n")).unwrap();
        let e = Config::load(&cfg).unwrap_err().to_string();
        assert!(e.contains("clientPort") && e.contains("zoo.cfg"), "{e}");

        // An id with no server line is an error.
        std::fs::write(dir.path().join("myid"), "9").unwrap();
        std::fs::write(&cfg, &base).unwrap();
        let e = Config::load(&cfg).unwrap_err().to_string();
        assert!(e.contains("myid") && e.contains("server.9"), "{e}");
    }

    #[test]
    fn myid_is_read_from_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(&cfg, format!("dataDir={}\n", dir.path().display())).unwrap();
        assert_eq!(Config::load(&cfg).unwrap().0.my_id, None);
        std::fs::write(dir.path().join("myid"), " 5 \nignored\n").unwrap();
        let (c, _) = Config::load(&cfg).unwrap();
        assert_eq!(c.my_id, Some(5));
        assert_eq!(c.data_dir, dir.path());
        // from_zoo_cfg works on text alone and does not look at the disk.
        let text = std::fs::read_to_string(&cfg).unwrap();
        assert_eq!(Config::from_zoo_cfg(&text, &cfg).unwrap().0.my_id, None);

        std::fs::write(dir.path().join("myid"), "five").unwrap();
        let e = Config::load(&cfg).unwrap_err().to_string();
        assert!(e.contains("myid") && e.contains("five"), "{e}");

        let e = Config::load(&dir.path().join("missing.cfg")).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
        assert!(e.to_string().contains("missing.cfg"), "{e}");
    }

    #[test]
    fn unknown_and_unsupported_keys_warn() {
        let (c, w) = zoo(
            "bogusKey=1\n\
             secureClientPort=2281\n\
             metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n\
             metricsProvider.httpPort=7000\n\
             maxCnxns=100\n\
             skipACL=yes\n\
             group.1=1:2\n\
             4lw.commands.whitelist=ruok,rouk\n\
             autopurge.snapRetainCount=1\n\
             standaloneEnabled=false\n\
             reconfigEnabled=false\n\
             quorumListenOnAllIPs=true\n\
             admin.commandURL=/commands\n\
             globalOutstandingLimit=1000\n\
             preAllocSize=65536\n\
             leaderServes=yes\n\
             cnxTimeout=5\n\
             electionAlg=3\n\
             maxCnxns=0\n\
             clientPortAddress=127.0.0.1\n",
        )
        .unwrap();
        assert_eq!(c.autopurge_snap_retain_count, 3);
        assert!(!c.reconfig_enabled, "the last reconfigEnabled line wins");
        assert_eq!(c.four_letter_words.to_string(), "rouk,ruok");
        let expect = [
            ("/etc/zoo.cfg:1:", "bogusKey"),
            ("/etc/zoo.cfg:2:", "TLS"),
            ("/etc/zoo.cfg:3:", "metrics"),
            ("/etc/zoo.cfg:5:", "maxCnxns"),
            ("/etc/zoo.cfg:6:", "skipping ACL"),
            ("/etc/zoo.cfg:7:", "hierarchical"),
            ("/etc/zoo.cfg:8:", "rouk"),
            ("/etc/zoo.cfg:9:", "raised to the minimum of 3"),
        ];
        assert_eq!(w.len(), expect.len(), "{w:#?}");
        for (warning, (at, what)) in w.iter().zip(expect) {
            assert!(
                warning.starts_with(at) && warning.contains(what),
                "{warning}"
            );
        }
    }

    #[test]
    fn dynamic_config_file_servers_are_read_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let dynamic = dir.path().join("zoo.cfg.dynamic.100000000");
        std::fs::write(
            &dynamic,
            "server.1=a:2888:3888:participant;2181\nserver.2=b:2888:3888:observer;2181\nversion=100000000\n",
        )
        .unwrap();
        let (c, w) = zoo(&format!(
            "server.1=old:1:2\ndynamicConfigFile={}\n",
            dynamic.display()
        ))
        .unwrap();
        assert_eq!(c.servers.len(), 2);
        assert_eq!(c.servers[0].host, "a");
        assert_eq!(c.servers[1].role, ServerRole::Observer);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("dynamicConfigFile") && w[0].contains("static"),
            "{w:?}"
        );

        let (c, w) = zoo("dynamicConfigFile=/nonexistent/zoo.cfg.dynamic").unwrap();
        assert!(c.servers.is_empty());
        assert!(w[0].contains("cannot be read"), "{w:?}");

        std::fs::write(&dynamic, "server.1=a:nope:3888\n").unwrap();
        let e = zoo(&format!("dynamicConfigFile={}", dynamic.display()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("zoo.cfg.dynamic.100000000:1") && e.contains("server.1"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_are_errors_naming_the_file_and_key() {
        for (text, key) in [
            ("clientPort=abc", "clientPort"),
            ("clientPort=70000", "clientPort"),
            ("tickTime=0", "tickTime"),
            ("tickTime=-5", "tickTime"),
            (
                "minSessionTimeout=9000\nmaxSessionTimeout=100",
                "minSessionTimeout",
            ),
            ("maxSessionTimeout=3000", "minSessionTimeout"),
            ("maxClientCnxns=lots", "maxClientCnxns"),
            ("server.x=h:1:2", "server.x"),
            ("server.1=h:1", "server.1"),
            ("forceSync=maybe", "forceSync"),
            ("extendedTypesEnabled=2", "extendedTypesEnabled"),
            ("superDigest=nocolon", "superDigest"),
            ("superDigest=super:short", "superDigest"),
            ("clientPortAddress=", "clientPortAddress"),
            ("dataDir=", "dataDir"),
            ("jute.maxbuffer=10", "jute.maxbuffer"),
            ("snapCount=0", "snapCount"),
            ("peerType=leader", "peerType"),
            (
                "concord.raft.heartbeatIntervalMs=5000",
                "electionTimeoutMinMs",
            ),
            (
                "concord.raft.electionTimeoutMaxMs=100",
                "electionTimeoutMaxMs",
            ),
            ("server.1=h:1:2:observer", "server.N"),
            (
                "admin.enableServer=yes\nadmin.serverPort=2181",
                "admin.serverPort",
            ),
        ] {
            let e = zoo(text).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with("/etc/zoo.cfg") && msg.contains(key),
                "{text}: {msg}"
            );
        }
        let msg = zoo("tickTime=1\n\nclientPort=abc").unwrap_err().to_string();
        assert_eq!(
            msg,
            "/etc/zoo.cfg:3: invalid clientPort: expected a port number from 0 to 65535, got \"abc\""
        );
    }

    fn full_toml() -> String {
        format!(
            r#"
tick_time = 1000
data_dir = "/tmp/zk"
data_log_dir = "/tmp/zklog"
client_port = 2191
client_port_address = "0.0.0.0"
max_client_cnxns = 0
min_session_timeout = 1500
max_session_timeout = 9000
four_letter_words = ["srvr", "ruok", "mntr"]
snap_count = 500
autopurge_snap_retain_count = 5
autopurge_purge_interval = 1
jute_max_buffer = "0x100000"
extended_types_enabled = true
admin_enable_server = true
admin_server_address = "::1"
admin_server_port = 9090
force_sync = "no"
reconfig_enabled = true
super_digest = "{}"
init_limit = 20
sync_limit = 7

[raft]
election_timeout_min_ms = 600
election_timeout_max_ms = 1200
heartbeat_interval_ms = 100

[servers]
1 = "h1:2888:3888"
2 = {{ host = "h2", quorum_port = 2888, election_port = 3888, client_port = 2181 }}
3 = "h3:2888:3888:observer;0.0.0.0:2182"
"#,
            digest()
        )
    }

    #[test]
    fn toml_gives_the_same_config_as_zoo_cfg() {
        let (t, w) = Config::from_toml(&full_toml(), Path::new("concord.toml")).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(t, expected_full());
        assert_eq!(t, zoo(&full_zoo_cfg()).unwrap().0);

        // The [[servers]] form is equivalent.
        let array_form = full_toml().split("[servers]").next().unwrap().to_string()
            + r#"
[[servers]]
id = 3
host = "h3"
quorum_port = 2888
election_port = 3888
role = "observer"
client_address = "0.0.0.0"
client_port = 2182

[[servers]]
id = 1
host = "h1"
quorum_port = 2888
election_port = 3888

[[servers]]
id = 2
host = "h2"
quorum_port = 2888
election_port = 3888
client_port = 2181
"#;
        let (a, w) = Config::from_toml(&array_form, Path::new("concord.toml")).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(a, expected_full());

        let (c, _) = Config::from_toml("log_level = \"debug\"", Path::new("c.toml")).unwrap();
        assert_eq!(c.log_level.as_deref(), Some("debug"));
        assert_eq!(
            Config {
                log_level: None,
                ..c
            },
            Config::default()
        );
    }

    #[test]
    fn toml_warnings_and_errors() {
        let (_, w) = Config::from_toml(
            "tickTime = 100\nwhatever = 1\n[raft]\nspeed = 3\n[[servers]]\nid = 1\nhost = \"h\"\nquorum_port = 1\nelection_port = 2\nweight = 1\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(w[0].contains("raft.speed"), "{w:?}");
        assert!(w[1].contains("servers[0].weight"), "{w:?}");
        assert!(
            w[2].contains("\"tickTime\"") && w[2].contains("tick_time"),
            "{w:?}"
        );
        assert!(w[3].contains("whatever"), "{w:?}");

        for (text, key) in [
            ("client_port = \"x\"", "client_port"),
            ("client_port = -1", "client_port"),
            ("tick_time = 1.5", "tick_time"),
            ("data_dir = 5", "data_dir"),
            ("force_sync = 1", "force_sync"),
            ("four_letter_words = [1]", "four_letter_words"),
            ("[raft]\nheartbeat_interval_ms = true", "raft.heartbeat_interval_ms"),
            ("[servers]\nx = \"h:1:2\"", "servers.x"),
            ("[servers]\n1 = \"h:1\"", "servers.1"),
            ("[servers]\n1 = { host = \"h\", quorum_port = 1 }", "servers.1.election_port"),
            ("[[servers]]\nhost = \"h\"", "servers[0].id"),
            (
                "[[servers]]\nid = 1\nhost = \"h\"\nquorum_port = 1\nelection_port = 2\n[[servers]]\nid = 1\nhost = \"g\"\nquorum_port = 1\nelection_port = 2",
                "servers[1].id",
            ),
            ("servers = 3", "servers"),
            ("tick_time = 0", "tickTime"),
        ] {
            let msg = Config::from_toml(text, Path::new("/etc/concord.toml"))
                .unwrap_err()
                .to_string();
            assert!(msg.starts_with("/etc/concord.toml") && msg.contains(key), "{text}: {msg}");
        }
        let e = Config::from_toml("tick_time = ", Path::new("c.toml")).unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");
        assert!(e.to_string().starts_with("c.toml: "), "{e}");
    }

    #[test]
    fn load_picks_the_format_by_extension() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("concord.toml");
        std::fs::write(&toml_path, full_toml()).unwrap();
        assert_eq!(Config::load(&toml_path).unwrap().0, expected_full());
        // The same TOML text in a file not named .toml is read as zoo.cfg: nothing is known.
        let cfg_path = dir.path().join("concord.conf");
        std::fs::write(&cfg_path, full_toml()).unwrap();
        let (c, w) = Config::load(&cfg_path).unwrap();
        assert_eq!(c.tick_time_ms, 2000);
        assert!(
            w[0].contains("concord.conf:2: unknown key \"tick_time\""),
            "{w:?}"
        );
        std::fs::write(&cfg_path, full_zoo_cfg()).unwrap();
        assert_eq!(Config::load(&cfg_path).unwrap().0, expected_full());
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("myid"), "3\n").unwrap();
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=1000\nclientPort=2000\nmaxClientCnxns=10\nforceSync=yes\ndataDir={}\n",
                data.display()
            ),
        )
        .unwrap();
        let cfg_arg = cfg.to_str().unwrap();

        let (c, w) = parse_cli(&["--config", cfg_arg]).resolve().unwrap();
        assert!(w.is_empty());
        assert_eq!(c.client_port, 2000);
        assert_eq!(c.my_id, Some(3));
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (2000, 20000)
        );
        assert_eq!(c.data_log_dir, data);

        let other = dir.path().join("other");
        let (c, _) = parse_cli(&[
            "-c",
            cfg_arg,
            "-p",
            "2500",
            "--bind",
            "0.0.0.0",
            "--data-dir",
            other.to_str().unwrap(),
            "--tick-time",
            "100",
            "--max-client-cnxns",
            "0",
            "--max-session-timeout",
            "5000",
            "--snap-count",
            "42",
            "--4lw-whitelist",
            "*",
            "--extended-types",
            "--super-digest",
            digest(),
            "--jute-max-buffer",
            "0x2000",
            "--no-fsync",
            "--admin-port",
            "9999",
            "--log-level",
            "debug",
        ])
        .resolve()
        .unwrap();
        assert_eq!(c.client_addr(), "0.0.0.0:2500".parse().unwrap());
        assert_eq!(c.data_dir, other);
        // dataLogDir follows the overridden dataDir; myid is read from it (none there).
        assert_eq!(c.data_log_dir, other);
        assert_eq!(c.my_id, None);
        assert_eq!(c.tick_time_ms, 100);
        // The derived minimum follows the new tick; the explicit maximum is kept.
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (200, 5000)
        );
        assert_eq!(c.max_client_cnxns, 0);
        assert_eq!(c.snap_count, 42);
        assert_eq!(c.four_letter_words, FourLetterWords::All);
        assert!(c.extended_types_enabled);
        assert_eq!(c.super_digest.as_deref(), Some(digest()));
        assert_eq!(c.jute_max_buffer, 0x2000);
        assert!(!c.force_sync);
        assert_eq!(c.admin_server_port, 9999);
        assert_eq!(c.log_level.as_deref(), Some("debug"));

        let (c, _) = parse_cli(&["-c", cfg_arg, "--myid", "7", "--data-log-dir", "/l"])
            .resolve()
            .unwrap();
        assert_eq!(c.my_id, Some(7));
        assert_eq!(c.data_log_dir, PathBuf::from("/l"));
        assert_eq!(c.data_dir, data);

        // Bad flag values name the flag; combinations that cannot work name both sources.
        let e = parse_cli(&["--bind", ""])
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("command line: invalid --bind"), "{e}");
        let e = parse_cli(&["-c", cfg_arg, "--min-session-timeout", "99999"])
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("zoo.cfg with command-line flags") && e.contains("minSessionTimeout"),
            "{e}"
        );
        assert!(Cli::try_parse_from(["concord", "server", "--port", "x"]).is_err());

        // A file that is wrong on its own is reported against the file.
        std::fs::write(&cfg, "clientPort=2000\nmaxSessionTimeout=100\n").unwrap();
        let e = parse_cli(&["-c", cfg_arg, "--max-session-timeout", "90000"])
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(cfg_arg), "{e}");
    }

    #[test]
    fn no_flags_give_the_defaults() {
        let args = ServerArgs {
            log_level: None,
            ..parse_cli(&[])
        };
        let mut expected = Config::default();
        expected.my_id = read_myid(&expected.data_dir).unwrap();
        assert_eq!(args.resolve().unwrap(), (expected, Vec::new()));
        let flat = Flat::try_parse_from(["concord", "-p", "1234"])
            .unwrap()
            .args;
        assert_eq!(flat.port, Some(1234));
    }

    #[test]
    fn help_text_documents_flags_and_formats() {
        Cli::command().debug_assert();
        Flat::command().debug_assert();
        let mut cmd = Cli::command();
        let server = cmd.find_subcommand_mut("server").unwrap();
        let long = server.render_long_help().to_string();
        for needle in [
            "127.0.0.1:2181",
            "./concord-data",
            "tickTime=2000",
            "tick_time = 2000",
            "[servers]",
            "Flags override the file",
            "--4lw-whitelist",
            "overrides clientPort",
            "CONCORD_LOG",
        ] {
            assert!(long.contains(needle), "long help lacks {needle:?}:\n{long}");
        }
        let short = server.render_help().to_string();
        assert!(short.contains("Run with --help"), "{short}");
    }

    #[test]
    fn negotiate_timeout_clamps() {
        let c = Config::default();
        assert_eq!(c.negotiate_timeout(-1), 4000);
        assert_eq!(c.negotiate_timeout(0), 4000);
        assert_eq!(c.negotiate_timeout(3999), 4000);
        assert_eq!(c.negotiate_timeout(10_000), 10_000);
        assert_eq!(c.negotiate_timeout(40_001), 40_000);
        assert_eq!(c.negotiate_timeout(i32::MAX), 40_000);
        // Never panics, even on a hand-built config that validate() rejects: max wins.
        let odd = Config {
            min_session_timeout_ms: 5000,
            max_session_timeout_ms: 1000,
            ..Config::default()
        };
        assert!(odd.validate().is_err());
        assert_eq!(odd.negotiate_timeout(3000), 1000);
        let huge = Config {
            max_session_timeout_ms: u32::MAX,
            ..Config::default()
        };
        assert_eq!(huge.negotiate_timeout(i32::MAX), i32::MAX);
    }

    #[test]
    fn extended_types_limit_server_ids() {
        let c = Config {
            extended_types_enabled: true,
            my_id: Some(255),
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("myid"));
        let c = Config {
            my_id: Some(254),
            ..c
        };
        c.validate().unwrap();
    }
}

//! Server configuration: ZooKeeper's `zoo.cfg`, a native TOML file, and command-line overrides.
//!
//! Every source goes through one setter keyed by zoo.cfg names ([`Config::set`]): TOML keys are
//! the snake_case spelling of the same settings (see [`TOML_KEYS`]) and flags override the file.
//! Keys concord does not know produce a warning, not a failure; values that cannot work are
//! errors naming the file and the key.
//!
//! | zoo.cfg key | treatment |
//! |---|---|
//! | tickTime, dataDir, dataLogDir, clientPort, clientPortAddress, maxClientCnxns, minSessionTimeout, maxSessionTimeout, 4lw.commands.whitelist, snapCount, autopurge.snapRetainCount, autopurge.purgeInterval, jute.maxbuffer, extendedTypesEnabled, admin.enableServer, admin.serverAddress, admin.serverPort, forceSync, superDigest, initLimit, syncLimit, server.N, peerType | used |
//! | zookeeper.extendedTypesEnabled, zookeeper.DigestAuthenticationProvider.superDigest | used (JVM property names accepted) |
//! | concord.raft.electionTimeoutMinMs / electionTimeoutMaxMs / heartbeatIntervalMs | concord's own Raft timings |
//! | standaloneEnabled, reconfigEnabled, quorumListenOnAllIPs, dynamicConfigFile, metricsProvider.*, admin.commandURL, globalOutstandingLimit, preAllocSize, leaderServes, cnxTimeout, electionAlg, maxCnxns, clientPortListenBacklog, syncEnabled, localSessionsEnabled, localSessionsUpgradingEnabled, electionPortBindRetry | accepted; no effect (dynamicConfigFile's server.N lines are read) |
//! | secureClientPort, secureClientPortAddress, ssl.*, authProvider.*, sslQuorum, quorum.auth.* | warning: TLS and SASL are not supported |

use clap::Args;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// Which four-letter words may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FourLetterWords {
    /// Every command (`*`).
    All,
    /// Only these commands.
    Only(BTreeSet<String>),
}

impl FourLetterWords {
    /// Whether `cmd` may run.
    pub fn allows(&self, cmd: &str) -> bool {
        match self {
            FourLetterWords::All => true,
            FourLetterWords::Only(set) => set.contains(cmd),
        }
    }

    fn parse(v: &str) -> FourLetterWords {
        if v.split(',').any(|s| s.trim() == "*") {
            FourLetterWords::All
        } else {
            FourLetterWords::Only(
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
            )
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

/// One `server.N=host:quorumPort:electionPort[:role][;[clientAddr:]clientPort]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// The server id N.
    pub id: u64,
    /// Host name or address for peer traffic.
    pub host: String,
    /// Quorum (peer) port.
    pub quorum_port: u16,
    /// Election port (accepted; concord carries all peer traffic on the quorum port).
    pub election_port: u16,
    /// Participant or observer.
    pub role: ServerRole,
    /// Client address (host may be empty, meaning all addresses) and port, when given.
    pub client_addr: Option<(String, u16)>,
}

impl ServerSpec {
    /// Parses the value of a `server.N` line.
    pub fn parse(id: u64, v: &str) -> Result<ServerSpec, String> {
        let (peer, client) = match v.split_once(';') {
            Some((p, c)) => (p.trim(), Some(c.trim())),
            None => (v.trim(), None),
        };
        let (host, rest) = split_host(peer)?;
        let parts: Vec<&str> = rest.split(':').collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(format!(
                "expected host:quorumPort:electionPort[:role], got {v:?}"
            ));
        }
        let port = |s: &str| {
            s.parse::<u16>()
                .map_err(|_| format!("bad port {s:?} in {v:?}"))
        };
        let role = match parts.get(2).map(|s| s.trim()) {
            None | Some("participant") => ServerRole::Participant,
            Some("observer") => ServerRole::Observer,
            Some(other) => return Err(format!("unknown role {other:?} in {v:?}")),
        };
        let client_addr = match client {
            None | Some("") => None,
            Some(c) => Some(match c.rsplit_once(':') {
                Some((h, p)) => (
                    h.trim_matches(|ch| ch == '[' || ch == ']').to_string(),
                    port(p)?,
                ),
                None => (String::new(), port(c)?),
            }),
        };
        Ok(ServerSpec {
            id,
            host,
            quorum_port: port(parts[0])?,
            election_port: port(parts[1])?,
            role,
            client_addr,
        })
    }
}

/// Splits `host:rest` where host may be a bracketed IPv6 address.
fn split_host(s: &str) -> Result<(String, &str), String> {
    if let Some(r) = s.strip_prefix('[') {
        let (h, rest) = r
            .split_once(']')
            .ok_or_else(|| format!("unclosed [ in {s:?}"))?;
        let rest = rest
            .strip_prefix(':')
            .ok_or_else(|| format!("expected : after ] in {s:?}"))?;
        Ok((h.to_string(), rest))
    } else {
        let (h, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("expected host:port in {s:?}"))?;
        Ok((h.to_string(), rest))
    }
}

/// concord's own Raft timings (not derived from tickTime/syncLimit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftTimings {
    /// Shortest election timeout (ms).
    pub election_timeout_min_ms: u64,
    /// Longest election timeout (ms).
    pub election_timeout_max_ms: u64,
    /// Leader heartbeat interval (ms).
    pub heartbeat_interval_ms: u64,
}

impl Default for RaftTimings {
    fn default() -> Self {
        RaftTimings {
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            heartbeat_interval_ms: 250,
        }
    }
}

/// A configuration error, naming the file and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {file}: {err}")]
    Io {
        /// The file.
        file: PathBuf,
        /// Why.
        err: std::io::Error,
    },
    /// A value is invalid.
    #[error("{file}: {key}: {msg}")]
    Invalid {
        /// The file (or `command line`).
        file: String,
        /// The key.
        key: String,
        /// What is wrong.
        msg: String,
    },
}

/// The effective server configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// tickTime in ms (default 2000).
    pub tick_time_ms: u32,
    /// dataDir: snapshots and `myid` (default ./concord-data).
    pub data_dir: PathBuf,
    /// dataLogDir: the Raft log (default = data_dir).
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
    /// autopurge.snapRetainCount (default 3, at least 3).
    pub autopurge_snap_retain_count: u32,
    /// autopurge.purgeInterval in hours (accepted; see operations.md).
    pub autopurge_purge_interval_hours: u32,
    /// jute.maxbuffer: largest packet accepted (default 0xfffff).
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
    /// superDigest: `user:base64(sha1(user:password))` of the super user.
    pub super_digest: Option<String>,
    /// initLimit in ticks (default 10).
    pub init_limit: u32,
    /// syncLimit in ticks (default 5).
    pub sync_limit: u32,
    /// server.N lines.
    pub servers: Vec<ServerSpec>,
    /// This server's id, from `myid` in dataDir (or --myid).
    pub my_id: Option<u64>,
    /// concord's Raft timings.
    pub raft: RaftTimings,
    /// Log level / filter (flag, env CONCORD_LOG, or TOML log_level).
    pub log_level: Option<String>,
}

const DEFAULT_4LW: [&str; 8] = [
    "ruok", "srvr", "stat", "envi", "conf", "isro", "mntr", "dirs",
];

impl Default for Config {
    fn default() -> Self {
        let mut c = Config::unfinished();
        c.finish();
        c
    }
}

/// TOML key → zoo.cfg key. TOML files use these snake_case names.
pub const TOML_KEYS: [(&str, &str); 22] = [
    ("tick_time", "tickTime"),
    ("data_dir", "dataDir"),
    ("data_log_dir", "dataLogDir"),
    ("client_port", "clientPort"),
    ("client_port_address", "clientPortAddress"),
    ("max_client_cnxns", "maxClientCnxns"),
    ("min_session_timeout", "minSessionTimeout"),
    ("max_session_timeout", "maxSessionTimeout"),
    ("four_letter_words", "4lw.commands.whitelist"),
    ("snap_count", "snapCount"),
    ("autopurge_snap_retain_count", "autopurge.snapRetainCount"),
    ("autopurge_purge_interval", "autopurge.purgeInterval"),
    ("jute_max_buffer", "jute.maxbuffer"),
    ("extended_types_enabled", "extendedTypesEnabled"),
    ("admin_enable_server", "admin.enableServer"),
    ("admin_server_address", "admin.serverAddress"),
    ("admin_server_port", "admin.serverPort"),
    ("force_sync", "forceSync"),
    ("super_digest", "superDigest"),
    ("init_limit", "initLimit"),
    ("sync_limit", "syncLimit"),
    ("my_id", "concord.myid"),
];

const IGNORED_KEYS: [&str; 17] = [
    "standaloneEnabled",
    "reconfigEnabled",
    "quorumListenOnAllIPs",
    "admin.commandURL",
    "globalOutstandingLimit",
    "preAllocSize",
    "leaderServes",
    "cnxTimeout",
    "electionAlg",
    "maxCnxns",
    "clientPortListenBacklog",
    "syncEnabled",
    "localSessionsEnabled",
    "localSessionsUpgradingEnabled",
    "electionPortBindRetry",
    "connectToLearnerMasterLimit",
    "minSessionTimeoutMs",
];

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("expected true/false or yes/no, got {v:?}")),
    }
}

fn parse_num<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    let t = v.trim();
    let r = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16)
            .ok()
            .and_then(|n| n.to_string().parse::<T>().ok())
    } else {
        t.parse::<T>().ok()
    };
    r.ok_or_else(|| format!("expected a number, got {v:?}"))
}

fn parse_ip(v: &str) -> Result<IpAddr, String> {
    let t = v.trim();
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(ip);
    }
    (t, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map(|a| a.ip())
        .ok_or_else(|| format!("not an address or resolvable host name: {v:?}"))
}

impl Config {
    /// Defaults with the derived settings (session timeouts, dataLogDir) left for `finish`.
    fn unfinished() -> Config {
        Config {
            tick_time_ms: 2000,
            data_dir: PathBuf::from("./concord-data"),
            data_log_dir: PathBuf::new(),
            client_port: 2181,
            client_port_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            max_client_cnxns: 60,
            min_session_timeout_ms: 0,
            max_session_timeout_ms: 0,
            four_letter_words: FourLetterWords::Only(
                DEFAULT_4LW.iter().map(|s| s.to_string()).collect(),
            ),
            snap_count: 100_000,
            autopurge_snap_retain_count: 3,
            autopurge_purge_interval_hours: 0,
            jute_max_buffer: concord_jute::DEFAULT_MAX_BUFFER,
            extended_types_enabled: false,
            admin_enable_server: false,
            admin_server_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            admin_server_port: 8080,
            force_sync: true,
            super_digest: None,
            init_limit: 10,
            sync_limit: 5,
            servers: Vec::new(),
            my_id: None,
            raft: RaftTimings::default(),
            log_level: None,
        }
    }

    /// Fills in settings derived from others (after every source and override is applied).
    fn finish(&mut self) {
        if self.data_log_dir.as_os_str().is_empty() {
            self.data_log_dir = self.data_dir.clone();
        }
        if self.min_session_timeout_ms == 0 {
            self.min_session_timeout_ms = self.tick_time_ms.saturating_mul(2);
        }
        if self.max_session_timeout_ms == 0 {
            self.max_session_timeout_ms = self.tick_time_ms.saturating_mul(20);
        }
        self.servers.sort_by_key(|s| s.id);
    }

    /// Applies one setting by its zoo.cfg name. Returns Ok(Some(warning)) for keys that are
    /// accepted with a caveat or unknown.
    pub fn set(&mut self, key: &str, value: &str) -> Result<Option<String>, String> {
        let v = value.trim();
        match key {
            "tickTime" => self.tick_time_ms = parse_num(v)?,
            "dataDir" => self.data_dir = PathBuf::from(v),
            "dataLogDir" => self.data_log_dir = PathBuf::from(v),
            "clientPort" => self.client_port = parse_num(v)?,
            "clientPortAddress" => self.client_port_address = parse_ip(v)?,
            "maxClientCnxns" => self.max_client_cnxns = parse_num(v)?,
            "minSessionTimeout" => self.min_session_timeout_ms = parse_num(v)?,
            "maxSessionTimeout" => self.max_session_timeout_ms = parse_num(v)?,
            "4lw.commands.whitelist" => self.four_letter_words = FourLetterWords::parse(v),
            "snapCount" => self.snap_count = parse_num(v)?,
            "autopurge.snapRetainCount" => {
                let n: u32 = parse_num(v)?;
                self.autopurge_snap_retain_count = n.max(3);
                if n < 3 {
                    return Ok(Some(format!(
                        "autopurge.snapRetainCount={n} raised to the minimum of 3"
                    )));
                }
            }
            "autopurge.purgeInterval" => self.autopurge_purge_interval_hours = parse_num(v)?,
            "jute.maxbuffer" => self.jute_max_buffer = parse_num(v)?,
            "extendedTypesEnabled" | "zookeeper.extendedTypesEnabled" => {
                self.extended_types_enabled = parse_bool(v)?
            }
            "admin.enableServer" => self.admin_enable_server = parse_bool(v)?,
            "admin.serverAddress" => self.admin_server_address = parse_ip(v)?,
            "admin.serverPort" => self.admin_server_port = parse_num(v)?,
            "forceSync" => self.force_sync = parse_bool(v)?,
            "superDigest" | "zookeeper.DigestAuthenticationProvider.superDigest" => {
                if v.split(':').count() != 2 {
                    return Err("expected user:base64-sha1-digest".into());
                }
                self.super_digest = Some(v.to_string());
            }
            "initLimit" => self.init_limit = parse_num(v)?,
            "syncLimit" => self.sync_limit = parse_num(v)?,
            "peerType" => {
                if v != "observer" && v != "participant" {
                    return Err(format!("expected observer or participant, got {v:?}"));
                }
            }
            "concord.myid" => self.my_id = Some(parse_num(v)?),
            "concord.raft.electionTimeoutMinMs" => {
                self.raft.election_timeout_min_ms = parse_num(v)?
            }
            "concord.raft.electionTimeoutMaxMs" => {
                self.raft.election_timeout_max_ms = parse_num(v)?
            }
            "concord.raft.heartbeatIntervalMs" => self.raft.heartbeat_interval_ms = parse_num(v)?,
            k if k.starts_with("server.") => {
                let id: u64 = k["server.".len()..]
                    .parse()
                    .map_err(|_| format!("bad server id in {k:?}"))?;
                let spec = ServerSpec::parse(id, v)?;
                self.servers.retain(|s| s.id != id);
                self.servers.push(spec);
            }
            k if k.starts_with("metricsProvider.") || IGNORED_KEYS.contains(&k) => {}
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
            k => return Ok(Some(format!("unknown setting {k:?} ignored"))),
        }
        Ok(None)
    }

    /// Parses zoo.cfg text (Java properties syntax). `source` names the file in messages.
    pub fn from_zoo_cfg(text: &str, source: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let mut c = Config::unfinished();
        let mut warnings = Vec::new();
        c.apply_properties(text, source, &mut warnings)?;
        c.finish();
        c.validate_in(&source.display().to_string())?;
        Ok((c, warnings))
    }

    fn apply_properties(
        &mut self,
        text: &str,
        source: &Path,
        warnings: &mut Vec<String>,
    ) -> Result<(), ConfigError> {
        let file = source.display().to_string();
        let mut logical = String::new();
        for raw in text.lines() {
            let line = raw.trim_start();
            if logical.is_empty()
                && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
            {
                continue;
            }
            // A trailing backslash continues the value on the next line.
            if let Some(stripped) = line.strip_suffix('\\') {
                logical.push_str(stripped);
                continue;
            }
            logical.push_str(line);
            let entry = std::mem::take(&mut logical);
            let at = entry.find(['=', ':']);
            let (key, value) = match at {
                Some(i) => (entry[..i].trim(), entry[i + 1..].trim()),
                None => (entry.trim(), ""),
            };
            if key == "dynamicConfigFile" {
                match std::fs::read_to_string(value) {
                    Ok(dyn_text) => {
                        for l in dyn_text.lines() {
                            if let Some((k, v)) = l.split_once('=') {
                                if k.trim().starts_with("server.") {
                                    self.set(k.trim(), v).map_err(|msg| ConfigError::Invalid {
                                        file: value.to_string(),
                                        key: k.trim().to_string(),
                                        msg,
                                    })?;
                                }
                            }
                        }
                    }
                    Err(e) => warnings.push(format!(
                        "{file}: dynamicConfigFile {value}: cannot read ({e}); ignored"
                    )),
                }
                continue;
            }
            match self.set(key, value) {
                Ok(Some(w)) => warnings.push(format!("{file}: {w}")),
                Ok(None) => {}
                Err(msg) => {
                    return Err(ConfigError::Invalid {
                        file,
                        key: key.to_string(),
                        msg,
                    })
                }
            }
        }
        Ok(())
    }

    /// Parses a TOML config: the snake_case keys of [`TOML_KEYS`], a `[servers]` table mapping
    /// ids to `server.N` values, a `[raft]` table, and `log_level`.
    ///
    /// ```toml
    /// tick_time = 2000
    /// data_dir = "/var/lib/concord"
    /// client_port = 2181
    /// four_letter_words = "ruok,srvr,mntr"
    /// [servers]
    /// 1 = "10.0.0.1:2888:3888;2181"
    /// [raft]
    /// election_timeout_min_ms = 1000
    /// ```
    pub fn from_toml(text: &str, source: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let file = source.display().to_string();
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    file: file.clone(),
                    key: "(syntax)".into(),
                    msg: e.to_string(),
                })?;
        let mut c = Config::unfinished();
        let mut warnings = Vec::new();
        let invalid = |key: &str, msg: String| ConfigError::Invalid {
            file: file.clone(),
            key: key.to_string(),
            msg,
        };
        let scalar = |v: &toml::Value| -> Option<String> {
            match v {
                toml::Value::String(s) => Some(s.clone()),
                toml::Value::Integer(i) => Some(i.to_string()),
                toml::Value::Boolean(b) => Some(b.to_string()),
                toml::Value::Array(a) => Some(
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                _ => None,
            }
        };
        for (k, v) in &table {
            match k.as_str() {
                "servers" => {
                    let t = v.as_table().ok_or_else(|| {
                        invalid(k, "expected a table of id = \"host:port:port\"".into())
                    })?;
                    for (id, spec) in t {
                        let s = spec.as_str().ok_or_else(|| {
                            invalid(&format!("servers.{id}"), "expected a string".into())
                        })?;
                        c.set(&format!("server.{id}"), s)
                            .map_err(|m| invalid(&format!("servers.{id}"), m))?;
                    }
                }
                "raft" => {
                    let t = v
                        .as_table()
                        .ok_or_else(|| invalid(k, "expected a table".into()))?;
                    for (rk, rv) in t {
                        let zk = match rk.as_str() {
                            "election_timeout_min_ms" => "concord.raft.electionTimeoutMinMs",
                            "election_timeout_max_ms" => "concord.raft.electionTimeoutMaxMs",
                            "heartbeat_interval_ms" => "concord.raft.heartbeatIntervalMs",
                            other => {
                                warnings.push(format!(
                                    "{file}: unknown setting raft.{other:?} ignored"
                                ));
                                continue;
                            }
                        };
                        let s =
                            scalar(rv).ok_or_else(|| invalid(rk, "expected a number".into()))?;
                        c.set(zk, &s)
                            .map_err(|m| invalid(&format!("raft.{rk}"), m))?;
                    }
                }
                "log_level" => c.log_level = scalar(v),
                other => match TOML_KEYS.iter().find(|(t, _)| *t == other) {
                    Some((_, zk)) => {
                        let s =
                            scalar(v).ok_or_else(|| invalid(other, "expected a value".into()))?;
                        if let Some(w) = c.set(zk, &s).map_err(|m| invalid(other, m))? {
                            warnings.push(format!("{file}: {w}"));
                        }
                    }
                    None => warnings.push(format!("{file}: unknown setting {other:?} ignored")),
                },
            }
        }
        c.finish();
        c.validate_in(&file)?;
        Ok((c, warnings))
    }

    /// Loads a file: TOML when it ends in `.toml`, zoo.cfg otherwise; then reads `myid`.
    pub fn load(path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Io {
            file: path.to_path_buf(),
            err,
        })?;
        let (mut c, w) = if path.extension().is_some_and(|e| e == "toml") {
            Config::from_toml(&text, path)?
        } else {
            Config::from_zoo_cfg(&text, path)?
        };
        c.read_myid()?;
        Ok((c, w))
    }

    /// Reads `myid` from dataDir when it exists and no id was given (ZooKeeper semantics).
    fn read_myid(&mut self) -> Result<(), ConfigError> {
        if self.my_id.is_some() {
            return Ok(());
        }
        let p = self.data_dir.join("myid");
        match std::fs::read_to_string(&p) {
            Ok(t) => {
                let id = t.trim().parse::<u64>().map_err(|_| ConfigError::Invalid {
                    file: p.display().to_string(),
                    key: "myid".into(),
                    msg: format!("expected a server id, got {:?}", t.trim()),
                })?;
                self.my_id = Some(id);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(ConfigError::Io { file: p, err }),
        }
    }

    /// The client listening address.
    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::new(self.client_port_address, self.client_port)
    }

    /// Checks that the settings can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_in("configuration")
    }

    fn validate_in(&self, file: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, msg: &str| {
            Err(ConfigError::Invalid {
                file: file.to_string(),
                key: key.to_string(),
                msg: msg.to_string(),
            })
        };
        if self.tick_time_ms == 0 {
            return bad("tickTime", "must be greater than 0");
        }
        if self.min_session_timeout_ms > self.max_session_timeout_ms {
            return bad(
                "minSessionTimeout",
                "must not be larger than maxSessionTimeout",
            );
        }
        if self.jute_max_buffer < 1024 {
            return bad("jute.maxbuffer", "must be at least 1024 bytes");
        }
        if self.snap_count == 0 {
            return bad("snapCount", "must be greater than 0");
        }
        let r = &self.raft;
        if r.heartbeat_interval_ms == 0 || r.election_timeout_min_ms <= r.heartbeat_interval_ms {
            return bad(
                "concord.raft.electionTimeoutMinMs",
                "must be greater than the heartbeat interval (and both above 0)",
            );
        }
        if r.election_timeout_max_ms <= r.election_timeout_min_ms {
            return bad(
                "concord.raft.electionTimeoutMaxMs",
                "must be greater than electionTimeoutMinMs",
            );
        }
        Ok(())
    }

    /// The session timeout granted for a requested one: clamped into [min, max], as ZooKeeper does.
    pub fn negotiate_timeout(&self, requested_ms: i32) -> i32 {
        let r = requested_ms.max(0) as u32;
        r.clamp(self.min_session_timeout_ms, self.max_session_timeout_ms) as i32
    }
}

/// Options of `concord server`.
#[derive(Args, Debug, Clone, Default)]
#[command(
    about = "Run a concord server",
    long_about = "Run a concord server.\n\nWith no flags it serves ZooKeeper clients on 127.0.0.1:2181 with its data in ./concord-data, fsyncing every write before acknowledging it.",
    after_long_help = CONFIG_HELP
)]
pub struct ServerArgs {
    /// Configuration file: Apache ZooKeeper's zoo.cfg format, or TOML when the name ends in .toml.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Client port [zoo.cfg clientPort; default 2181; 0 picks a free port].
    #[arg(long, short = 'p')]
    pub port: Option<u16>,
    /// Address to listen on [clientPortAddress; default 127.0.0.1].
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Snapshot directory, also holding myid [dataDir; default ./concord-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Raft log directory [dataLogDir; default: the data directory].
    #[arg(long, value_name = "DIR")]
    pub data_log_dir: Option<PathBuf>,
    /// Tick length in ms [tickTime; default 2000].
    #[arg(long, value_name = "MS")]
    pub tick_time: Option<u32>,
    /// Connections allowed per client IP, 0 for no limit [maxClientCnxns; default 60].
    #[arg(long, value_name = "N")]
    pub max_client_cnxns: Option<u32>,
    /// Smallest session timeout granted, ms [minSessionTimeout; default 2 x tickTime].
    #[arg(long, value_name = "MS")]
    pub min_session_timeout: Option<u32>,
    /// Largest session timeout granted, ms [maxSessionTimeout; default 20 x tickTime].
    #[arg(long, value_name = "MS")]
    pub max_session_timeout: Option<u32>,
    /// Txns between snapshots [snapCount; default 100000].
    #[arg(long, value_name = "N")]
    pub snap_count: Option<u64>,
    /// Four-letter words allowed, comma separated or * [4lw.commands.whitelist; default ruok,srvr,stat,envi,conf,isro,mntr,dirs].
    #[arg(long = "4lw-whitelist", value_name = "LIST")]
    pub four_letter_words: Option<String>,
    /// Allow TTL nodes [extendedTypesEnabled; default false].
    #[arg(long)]
    pub extended_types: bool,
    /// Super user digest, user:base64(sha1(user:password)) [superDigest].
    #[arg(long, value_name = "DIGEST")]
    pub super_digest: Option<String>,
    /// Largest packet accepted, bytes [jute.maxbuffer; default 1048575].
    #[arg(long, value_name = "BYTES")]
    pub jute_max_buffer: Option<usize>,
    /// Do not fsync the log before acknowledging writes [forceSync=no]. Unsafe: for benchmarks only.
    #[arg(long)]
    pub no_fsync: bool,
    /// Admin HTTP port [admin.serverPort; default 8080].
    #[arg(long, value_name = "PORT")]
    pub admin_port: Option<u16>,
    /// This server's id [the myid file in dataDir].
    #[arg(long, value_name = "ID")]
    pub myid: Option<u64>,
    /// Log filter, e.g. info or concord_server=debug [env CONCORD_LOG; default info].
    #[arg(long, env = "CONCORD_LOG", value_name = "FILTER")]
    pub log_level: Option<String>,
}

const CONFIG_HELP: &str = "CONFIGURATION FILES
  A file whose name does not end in .toml is read as Apache ZooKeeper's zoo.cfg:
      tickTime=2000
      dataDir=/var/lib/concord
      clientPort=2181
      clientPortAddress=0.0.0.0
      4lw.commands.whitelist=ruok,srvr,mntr
      server.1=10.0.0.1:2888:3888;2181
  Keys: tickTime dataDir dataLogDir clientPort clientPortAddress maxClientCnxns
  minSessionTimeout maxSessionTimeout 4lw.commands.whitelist snapCount
  autopurge.snapRetainCount autopurge.purgeInterval jute.maxbuffer extendedTypesEnabled
  admin.enableServer admin.serverAddress admin.serverPort forceSync superDigest initLimit
  syncLimit server.N peerType, plus concord.raft.electionTimeoutMinMs,
  concord.raft.electionTimeoutMaxMs and concord.raft.heartbeatIntervalMs.
  Unknown keys are reported and ignored. The server id is read from dataDir/myid.

  A .toml file takes the same settings in snake_case:
      tick_time = 2000
      data_dir = \"/var/lib/concord\"
      client_port = 2181
      four_letter_words = \"ruok,srvr,mntr\"
      [servers]
      1 = \"10.0.0.1:2888:3888;2181\"
      [raft]
      election_timeout_min_ms = 1000

  Command-line flags override the file.";

impl ServerArgs {
    /// Loads the file (if any), applies the flags, reads myid and validates.
    pub fn resolve(&self) -> Result<(Config, Vec<String>), ConfigError> {
        let (mut c, warnings) = match &self.config {
            Some(p) => Config::load(p)?,
            None => (Config::default(), Vec::new()),
        };
        // Re-derive defaults that depend on overridden values (tickTime, dataDir).
        let explicit_min = c.min_session_timeout_ms != c.tick_time_ms.saturating_mul(2);
        let explicit_max = c.max_session_timeout_ms != c.tick_time_ms.saturating_mul(20);
        let explicit_log_dir = c.data_log_dir != c.data_dir;
        let cli = |key: &str, r: Result<Option<String>, String>| -> Result<(), ConfigError> {
            r.map(|_| ()).map_err(|msg| ConfigError::Invalid {
                file: "command line".into(),
                key: key.into(),
                msg,
            })
        };
        if let Some(p) = self.port {
            c.client_port = p;
        }
        if let Some(b) = &self.bind {
            cli("--bind", c.set("clientPortAddress", b))?;
        }
        if let Some(d) = &self.data_dir {
            c.data_dir = d.clone();
            if !explicit_log_dir {
                c.data_log_dir = PathBuf::new();
            }
        }
        if let Some(d) = &self.data_log_dir {
            c.data_log_dir = d.clone();
        }
        if let Some(t) = self.tick_time {
            c.tick_time_ms = t;
            if !explicit_min {
                c.min_session_timeout_ms = 0;
            }
            if !explicit_max {
                c.max_session_timeout_ms = 0;
            }
        }
        if let Some(n) = self.max_client_cnxns {
            c.max_client_cnxns = n;
        }
        if let Some(n) = self.min_session_timeout {
            c.min_session_timeout_ms = n;
        }
        if let Some(n) = self.max_session_timeout {
            c.max_session_timeout_ms = n;
        }
        if let Some(n) = self.snap_count {
            c.snap_count = n;
        }
        if let Some(w) = &self.four_letter_words {
            c.four_letter_words = FourLetterWords::parse(w);
        }
        if self.extended_types {
            c.extended_types_enabled = true;
        }
        if let Some(d) = &self.super_digest {
            cli("--super-digest", c.set("superDigest", d))?;
        }
        if let Some(n) = self.jute_max_buffer {
            c.jute_max_buffer = n;
        }
        if self.no_fsync {
            c.force_sync = false;
        }
        if let Some(p) = self.admin_port {
            c.admin_server_port = p;
        }
        if let Some(id) = self.myid {
            c.my_id = Some(id);
        }
        if self.log_level.is_some() {
            c.log_level = self.log_level.clone();
        }
        c.finish();
        c.read_myid()?;
        c.validate_in("command line")?;
        Ok((c, warnings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ServerArgs,
    }

    fn parse_cli(args: &[&str]) -> ServerArgs {
        let mut v = vec!["concord"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).unwrap().args
    }

    #[test]
    fn defaults_are_safe() {
        let c = Config::default();
        assert_eq!(c.client_addr(), "127.0.0.1:2181".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("./concord-data"));
        assert_eq!(c.data_log_dir, c.data_dir);
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (4000, 40000)
        );
        assert!(c.force_sync);
        assert!(c.four_letter_words.allows("ruok"));
        assert!(!c.four_letter_words.allows("dump"));
        assert_eq!(c.jute_max_buffer, 0xfffff);
        assert_eq!(c.negotiate_timeout(100), 4000);
        assert_eq!(c.negotiate_timeout(10_000), 10_000);
        assert_eq!(c.negotiate_timeout(999_999), 40000);
    }

    #[test]
    fn full_zoo_cfg() {
        let text = "# comment\n! also a comment\ntickTime=1000\ndataDir=/tmp/zk\ndataLogDir = /tmp/zklog\nclientPort: 2191\nclientPortAddress=0.0.0.0\nmaxClientCnxns=0\nminSessionTimeout=1500\nmaxSessionTimeout=9000\n4lw.commands.whitelist=srvr, ruok\nsnapCount=500\nautopurge.snapRetainCount=5\nautopurge.purgeInterval=1\njute.maxbuffer=0x100000\nextendedTypesEnabled=true\nadmin.enableServer=false\nadmin.serverPort=9090\nforceSync=no\nzookeeper.DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\ninitLimit=20\nsyncLimit=\\\n 7\nserver.1=h1:2888:3888\nserver.2=h2:2888:3888:participant;2181\nserver.3=h3:2888:3888:observer;0.0.0.0:2182\nserver.4=[::1]:2888:3888;[::1]:2183\nconcord.raft.heartbeatIntervalMs=100\nmetricsProvider.className=x\nbogusKey=1\nsecureClientPort=2281\n";
        let (c, w) = Config::from_zoo_cfg(text, Path::new("zoo.cfg")).unwrap();
        assert_eq!(c.tick_time_ms, 1000);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/zk"));
        assert_eq!(c.data_log_dir, PathBuf::from("/tmp/zklog"));
        assert_eq!(c.client_addr(), "0.0.0.0:2191".parse().unwrap());
        assert_eq!(c.max_client_cnxns, 0);
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (1500, 9000)
        );
        assert_eq!(
            c.four_letter_words,
            FourLetterWords::Only(["srvr".to_string(), "ruok".to_string()].into())
        );
        assert_eq!(c.snap_count, 500);
        assert_eq!(c.autopurge_snap_retain_count, 5);
        assert_eq!(c.autopurge_purge_interval_hours, 1);
        assert_eq!(c.jute_max_buffer, 0x100000);
        assert!(c.extended_types_enabled);
        assert_eq!(c.admin_server_port, 9090);
        assert!(!c.force_sync);
        assert_eq!(
            c.super_digest.as_deref(),
            Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=")
        );
        assert_eq!((c.init_limit, c.sync_limit), (20, 7));
        assert_eq!(c.raft.heartbeat_interval_ms, 100);
        assert_eq!(c.servers.len(), 4);
        assert_eq!(
            c.servers[1],
            ServerSpec {
                id: 2,
                host: "h2".into(),
                quorum_port: 2888,
                election_port: 3888,
                role: ServerRole::Participant,
                client_addr: Some((String::new(), 2181)),
            }
        );
        assert_eq!(c.servers[2].role, ServerRole::Observer);
        assert_eq!(c.servers[2].client_addr, Some(("0.0.0.0".into(), 2182)));
        assert_eq!(c.servers[3].host, "::1");
        assert_eq!(c.servers[3].client_addr, Some(("::1".into(), 2183)));
        assert_eq!(c.servers[0].client_addr, None);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().any(|x| x.contains("bogusKey")));
        assert!(w.iter().any(|x| x.contains("secureClientPort")));
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, key) in [
            ("clientPort=abc", "clientPort"),
            ("tickTime=0", "tickTime"),
            (
                "minSessionTimeout=9000\nmaxSessionTimeout=100",
                "minSessionTimeout",
            ),
            ("server.x=h:1:2", "server.x"),
            ("server.1=h:1", "server.1"),
            ("forceSync=maybe", "forceSync"),
        ] {
            let e = Config::from_zoo_cfg(text, Path::new("/etc/zoo.cfg")).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(key) && msg.contains("/etc/zoo.cfg"), "{msg}");
        }
    }

    #[test]
    fn toml_matches_zoo_cfg() {
        let (a, _) = Config::from_zoo_cfg(
            "tickTime=500\ndataDir=/d\nclientPort=3000\n4lw.commands.whitelist=*\nextendedTypesEnabled=true\nserver.1=h:1:2;3000\nconcord.raft.electionTimeoutMinMs=600",
            Path::new("zoo.cfg"),
        )
        .unwrap();
        let (b, w) = Config::from_toml(
            "tick_time = 500\ndata_dir = \"/d\"\nclient_port = 3000\nfour_letter_words = \"*\"\nextended_types_enabled = true\nunknown_thing = 1\n[servers]\n1 = \"h:1:2;3000\"\n[raft]\nelection_timeout_min_ms = 600\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(w.len(), 1);
        assert!(
            Config::from_toml("client_port = \"x\"", Path::new("c.toml"))
                .unwrap_err()
                .to_string()
                .contains("client_port")
        );
    }

    #[test]
    fn flags_override_the_file_and_myid_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=1000\nclientPort=2000\ndataDir={}\n",
                dir.path().display()
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("myid"), "3\n").unwrap();
        let (c, _) = parse_cli(&["--config", cfg.to_str().unwrap()])
            .resolve()
            .unwrap();
        assert_eq!(
            (c.client_port, c.my_id, c.max_session_timeout_ms),
            (2000, Some(3), 20000)
        );
        let (c, _) = parse_cli(&[
            "--config",
            cfg.to_str().unwrap(),
            "-p",
            "2500",
            "--tick-time",
            "100",
            "--4lw-whitelist",
            "*",
            "--no-fsync",
            "--myid",
            "7",
        ])
        .resolve()
        .unwrap();
        assert_eq!(c.client_port, 2500);
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (200, 2000)
        );
        assert_eq!(c.four_letter_words, FourLetterWords::All);
        assert!(!c.force_sync);
        assert_eq!(c.my_id, Some(7));
        let (c, _) = parse_cli(&[]).resolve().unwrap();
        assert_eq!(c, Config::default());
        std::fs::write(dir.path().join("myid"), "x").unwrap();
        assert!(parse_cli(&["--config", cfg.to_str().unwrap()])
            .resolve()
            .is_err());
    }
}

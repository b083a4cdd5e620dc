//! Shared helpers for integration tests: an in-process concord server on a scratch directory.

#![allow(dead_code)]

use concord_server::config::{Config, FourLetterWords};
use concord_server::ServerHandle;
use std::time::Duration;

/// A server running in this process, with its data directory.
pub struct TestServer {
    /// The running server.
    pub handle: ServerHandle,
    /// Its data directory (removed on drop).
    pub dir: tempfile::TempDir,
}

impl TestServer {
    /// The `host:port` string clients connect to.
    pub fn connect_string(&self) -> String {
        self.handle.addr.to_string()
    }
}

/// A configuration for tests: an ephemeral port, short ticks, every 4lw, TTL nodes enabled.
pub fn test_config(dir: &std::path::Path) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        data_log_dir: dir.to_path_buf(),
        client_port: 0,
        tick_time_ms: 100,
        min_session_timeout_ms: 200,
        max_session_timeout_ms: 20_000,
        four_letter_words: FourLetterWords::All,
        extended_types_enabled: true,
        super_digest: Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=".into()),
        ..Config::default()
    }
}

/// Sends server logs to the test output when CONCORD_TEST_LOG is set (e.g. `debug`).
pub fn init_logs() {
    if let Ok(filter) = std::env::var("CONCORD_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Starts a server with [`test_config`], adjusted by `tweak`.
pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut c = test_config(dir.path());
    tweak(&mut c);
    let handle = concord_server::start(c).await.expect("server starts");
    TestServer { handle, dir }
}

/// Starts a server with [`test_config`].
pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

/// Connects a `zookeeper-client` session.
pub async fn client(s: &TestServer) -> zookeeper_client::Client {
    zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(&s.connect_string())
        .await
        .expect("client connects")
}

/// Runs a four-letter word against the server and returns its answer.
pub async fn four_letter(addr: std::net::SocketAddr, cmd: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(cmd.as_bytes()).await.expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

/// A TCP port that was free a moment ago (for servers run as separate processes).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Connects a `zookeeper-client` session to `addr` (one server or a list), retrying for up to
/// 30 s while servers start or elect a leader.
pub async fn connect_retry(addr: &str, session_timeout: Duration) -> zookeeper_client::Client {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match zookeeper_client::Client::connector()
            .with_session_timeout(session_timeout)
            .with_connection_timeout(Duration::from_millis(500))
            .connect(addr)
            .await
        {
            Ok(c) => return c,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot connect to {addr}: {e}"),
        }
    }
}

/// The `srvr` answer of the server at `addr`, or "" when it does not answer within `wait`
/// (a stopped or cut-off server, for process tests).
pub async fn srvr(addr: &str, wait: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(Ok(mut s)) = tokio::time::timeout(wait, tokio::net::TcpStream::connect(addr)).await
    else {
        return String::new();
    };
    let _ = s.write_all(b"srvr").await;
    let mut out = String::new();
    let _ = tokio::time::timeout(wait, s.read_to_string(&mut out)).await;
    out
}

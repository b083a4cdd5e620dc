//! Crash test: the real `concord` binary is killed with SIGKILL again and again while clients
//! write. After each restart every acknowledged write must be there with its data and version,
//! no sequential number may have been handed out twice, and the zxid never goes backwards.

mod common;

use common::free_port;
use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zookeeper_client::{Acls, Client, CreateMode};

const ROUNDS: usize = 6;
const WRITERS: usize = 4;

fn spawn_server(dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(["server", "--port", &port.to_string(), "--data-dir"])
        .arg(dir)
        .args([
            "--snap-count",
            "3000",
            "--tick-time",
            "200",
            "--log-level",
            "warn",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn concord")
}

async fn connect(addr: &str) -> Client {
    common::connect_retry(addr, Duration::from_secs(5)).await
}

#[derive(Default)]
struct Acked {
    /// Sequential node path -> data written.
    creates: HashMap<String, Vec<u8>>,
    /// Writer key -> (version, data) of the last acknowledged setData.
    sets: HashMap<String, (i32, Vec<u8>)>,
    /// Highest zxid any client was told about.
    max_zxid: i64,
    /// Every sequential name ever acknowledged (to catch reuse).
    names: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut server = spawn_server(dir.path(), port);
    {
        let c = connect(&addr).await;
        let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
        c.create("/crash", b"", &opts).await.unwrap();
        for w in 0..WRITERS {
            c.create(&format!("/crash/w{w}"), b"", &opts).await.unwrap();
        }
    }
    for round in 0..ROUNDS {
        // Writers run until the server dies under them.
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let acked = acked.clone();
            let addr = addr.clone();
            tasks.push(tokio::spawn(async move {
                let c = connect(&addr).await;
                let key = format!("/crash/w{w}");
                let opts = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
                for i in 0u64.. {
                    let token = format!("r{round}-w{w}-i{i}").into_bytes();
                    match c.create("/crash/n-", &token, &opts).await {
                        Ok((stat, seq)) => {
                            let path = format!("/crash/n-{seq}");
                            let mut a = acked.lock().unwrap();
                            a.max_zxid = a.max_zxid.max(stat.czxid);
                            a.names.push(path.clone());
                            a.creates.insert(path, token.clone());
                        }
                        Err(_) => return,
                    }
                    match c.set_data(&key, &token, None).await {
                        Ok(stat) => {
                            let mut a = acked.lock().unwrap();
                            a.max_zxid = a.max_zxid.max(stat.mzxid);
                            a.sets.insert(key.clone(), (stat.version, token));
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        // Let them write, then kill -9 the server at a varying moment.
        tokio::time::sleep(Duration::from_millis(300 + 170 * round as u64)).await;
        server.kill().expect("SIGKILL");
        server.wait().unwrap();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
        server = spawn_server(dir.path(), port);
        let c = connect(&addr).await;
        let a = std::mem::take(&mut *acked.lock().unwrap());
        assert!(
            !a.creates.is_empty(),
            "round {round}: no write was acknowledged"
        );
        for (path, data) in &a.creates {
            match c.get_data(path).await {
                Ok((d, _)) => assert_eq!(&d, data, "round {round}: {path} has other data"),
                Err(e) => panic!("round {round}: acknowledged create {path} lost: {e}"),
            }
        }
        for (key, (version, data)) in &a.sets {
            let (d, stat) = c.get_data(key).await.unwrap();
            assert!(
                stat.version >= *version,
                "round {round}: {key} went back from version {version} to {}",
                stat.version
            );
            if stat.version == *version {
                assert_eq!(
                    &d, data,
                    "round {round}: {key} lost its last acknowledged data"
                );
            }
        }
        let unique: HashSet<&String> = a.names.iter().collect();
        assert_eq!(
            unique.len(),
            a.names.len(),
            "a sequential number was handed out twice"
        );
        // The server's zxid after restart is at least every zxid a client saw before the crash.
        let probe = c
            .create(
                "/crash/probe-",
                b"",
                &CreateMode::EphemeralSequential.with_acls(Acls::anyone_all()),
            )
            .await
            .unwrap();
        assert!(
            probe.0.czxid > a.max_zxid,
            "round {round}: zxid went backwards: {} after {}",
            probe.0.czxid,
            a.max_zxid
        );
        // Keep the record: later rounds check everything acknowledged so far.
        *acked.lock().unwrap() = a;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    // The run crossed snapCount many times: restarts went through snapshots, and old ones
    // were pruned to the retained three.
    let snaps = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".snap")
        })
        .count();
    assert!((1..=3).contains(&snaps), "{snaps} snapshot files");
}

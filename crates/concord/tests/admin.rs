//! The admin HTTP server: ZooKeeper's AdminServer commands as JSON, checked against the
//! four-letter words and against what a real client did.

mod common;

use serde_json::Value;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zookeeper_client as zk;

/// GETs `path` from the admin server and returns (status code, JSON body).
async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_report_the_server_state() {
    let s = common::start_with(|c| {
        c.admin_enable_server = true;
        c.admin_server_port = 0;
    })
    .await;
    let admin = s.handle.admin_addr.expect("admin server is listening");
    let client = common::client(&s).await;
    let sid = format!("{:#x}", client.session_id().0);
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    client.create("/app", b"x", &persistent).await.unwrap();
    client.create("/app/e", b"", &ephemeral).await.unwrap();
    let _watch = client.get_and_watch_data("/app").await.unwrap();

    let (code, ruok) = get(admin, "/commands/ruok").await;
    assert_eq!(code, 200);
    assert_eq!(ruok["command"], "ruok");
    assert!(ruok["error"].is_null());

    // monitor agrees with mntr on the client port, and the alias answers as the primary name.
    let (code, mon) = get(admin, "/commands/mntr").await;
    assert_eq!(code, 200);
    assert_eq!(mon["command"], "monitor");
    let mntr = common::four_letter(s.handle.addr, "mntr").await;
    let znodes: u64 = mntr
        .lines()
        .find_map(|l| l.strip_prefix("zk_znode_count\t"))
        .and_then(|v| v.parse().ok())
        .expect("zk_znode_count in mntr");
    assert_eq!(mon["znode_count"], znodes);
    // /, /zookeeper, /zookeeper/quota, /zookeeper/config, /app, /app/e
    assert_eq!(znodes, 6);
    assert_eq!(mon["ephemerals_count"], 1);
    assert_eq!(mon["server_state"], "standalone");
    assert!(mon["version"].as_str().unwrap().starts_with("3.9.2"));

    let (_, conns) = get(admin, "/commands/connections").await;
    let rows = conns["connections"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{conns}");
    assert_eq!(rows[0]["session_id"], sid.as_str());

    let (_, dump) = get(admin, "/commands/dump").await;
    assert_eq!(
        dump["session_id_to_ephemeral_paths"][sid.as_str()],
        serde_json::json!(["/app/e"])
    );
    assert!(dump["session_id_to_timeout_ms"][sid.as_str()].is_number());

    let (_, w) = get(admin, "/commands/watches").await;
    assert_eq!(
        w["session_id_to_watched_paths"][sid.as_str()],
        serde_json::json!(["/app"])
    );
    let (_, wp) = get(admin, "/commands/wchp").await;
    assert_eq!(
        wp["path_to_session_ids"]["/app"],
        serde_json::json!([sid.as_str()])
    );
    let (_, ws) = get(admin, "/commands/watch_summary").await;
    assert_eq!(ws["num_total_watches"], 1);

    let (_, srvr) = get(admin, "/commands/srvr").await;
    assert_eq!(srvr["node_count"], 6);
    assert_eq!(srvr["server_stats"]["num_alive_client_connections"], 1);

    let (_, conf) = get(admin, "/commands/configuration").await;
    assert_eq!(conf["clientPort"], s.handle.addr.port().to_string());

    let (_, list) = get(admin, "/commands").await;
    let names: Vec<&str> = list["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"monitor") && names.contains(&"dump"),
        "{list}"
    );

    let (code, unknown) = get(admin, "/commands/no_such_command").await;
    assert_eq!(code, 404);
    assert_eq!(unknown["error"], "Unknown command: no_such_command");

    // Closing the session removes its ephemeral, which the admin view then reflects.
    drop(client);
    let mut left = Value::Null;
    for _ in 0..100 {
        let (_, m) = get(admin, "/commands/monitor").await;
        left = m["ephemerals_count"].clone();
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "the closed session's ephemeral is gone");
    s.handle.shutdown().await;
}

#[tokio::test]
async fn admin_server_is_off_by_default() {
    let s = common::start().await;
    assert!(s.handle.admin_addr.is_none());
    s.handle.shutdown().await;
}

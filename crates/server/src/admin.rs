//! The admin HTTP server (`admin.enableServer`): ZooKeeper's AdminServer commands as JSON under
//! `/commands/<name>`, with the same names and four-letter aliases ZooKeeper uses.
//!
//! Every command is rendered from the same structures as the four-letter words in
//! [`crate::fourlw`], so the two never disagree. The four-letter-word whitelist does not apply
//! here (as in ZooKeeper); the server is off by default and binds to `admin.serverAddress`.

use crate::config::ServerSpec;
use crate::core::Core;
use crate::fourlw::{self, object};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::net::TcpListener;

/// The commands served: (primary name, aliases).
pub const COMMANDS: &[(&str, &[&str])] = &[
    ("ruok", &[]),
    ("server_stats", &["srvr"]),
    ("stats", &["stat"]),
    ("monitor", &["mntr"]),
    ("connections", &["cons"]),
    ("environment", &["envi", "env"]),
    ("configuration", &["conf", "config"]),
    ("watch_summary", &["wchs"]),
    ("watches", &["wchc"]),
    ("watches_by_path", &["wchp"]),
    ("dump", &[]),
    ("is_read_only", &["isro"]),
    ("dirs", &[]),
    ("hash", &[]),
    ("stat_reset", &["srst"]),
    ("connection_stat_reset", &["crst"]),
    ("leader", &["lead"]),
    ("voting_view", &[]),
    ("observers", &["obsr"]),
];

/// The primary name of a command given by its name or one of its aliases.
pub fn primary_name(name: &str) -> Option<&'static str> {
    COMMANDS
        .iter()
        .find(|(n, aliases)| *n == name || aliases.contains(&name))
        .map(|(n, _)| *n)
}

/// The admin HTTP routes.
pub fn router(core: Arc<Core>) -> Router {
    Router::new()
        .route("/commands", get(list))
        .route("/commands/", get(list))
        .route("/commands/{name}", get(command))
        .with_state(core)
}

/// Serves the admin routes on `listener` until the task is aborted.
pub async fn serve(core: Arc<Core>, listener: TcpListener) {
    if let Err(e) = axum::serve(listener, router(core)).await {
        tracing::error!("admin server stopped: {e}");
    }
}

async fn list() -> Json<Value> {
    let names: Vec<Value> = COMMANDS
        .iter()
        .map(|(n, aliases)| json!({"name": n, "aliases": aliases, "url": format!("/commands/{n}")}))
        .collect();
    Json(json!({"commands": names, "error": null}))
}

async fn command(State(core): State<Arc<Core>>, Path(name): Path<String>) -> Response {
    match primary_name(&name) {
        Some(cmd) => {
            // The handlers take short locks on the state machine; keep them off the runtime's
            // reactor threads like any other blocking work.
            let core2 = core.clone();
            match tokio::task::spawn_blocking(move || run(&core2, cmd)).await {
                Ok(mut v) => {
                    if let Value::Object(m) = &mut v {
                        m.insert("command".into(), json!(cmd));
                        m.entry("error").or_insert(Value::Null);
                    }
                    Json(v).into_response()
                }
                Err(e) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({"command": cmd, "error": e.to_string()})),
                )
                    .into_response(),
            }
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"command": name, "error": format!("Unknown command: {name}")})),
        )
            .into_response(),
    }
}

/// The JSON body of one command (without the `command` and `error` fields).
pub fn run(core: &Core, cmd: &str) -> Value {
    match cmd {
        "ruok" => json!({}),
        "server_stats" => server_stats(core),
        "stats" => {
            let mut v = server_stats(core);
            v["connections"] = connections(core);
            v
        }
        "monitor" => object(fourlw::monitor(core)),
        "connections" => json!({"connections": connections(core), "secure_connections": []}),
        "environment" => object(
            fourlw::environment(core)
                .into_iter()
                .map(|(k, v)| (k, json!(v))),
        ),
        "configuration" => object(
            fourlw::configuration(core)
                .into_iter()
                .map(|(k, v)| (k, json!(v))),
        ),
        "watch_summary" => {
            let (conns, paths, total) = core.watches.lock().summary();
            json!({"num_connections": conns, "num_paths": paths, "num_total_watches": total})
        }
        "watches" => object([(
            "session_id_to_watched_paths",
            object(
                fourlw::watches_by_session(core)
                    .into_iter()
                    .map(|(sid, paths)| (format!("{sid:#x}"), json!(paths))),
            ),
        )]),
        "watches_by_path" => object([(
            "path_to_session_ids",
            object(fourlw::watches_by_path(core).into_iter().map(|(p, sids)| {
                let sids: Vec<String> = sids.iter().map(|s| format!("{s:#x}")).collect();
                (p, json!(sids))
            })),
        )]),
        "dump" => {
            let d = fourlw::dump(core);
            json!({
                "session_id_to_timeout_ms": object(d.sessions.iter().map(|(id, t)| (format!("{id:#x}"), json!(t)))),
                "session_id_to_ephemeral_paths": object(d.ephemerals.iter().map(|(id, p)| (format!("{id:#x}"), json!(p)))),
            })
        }
        "is_read_only" => json!({"read_only": false}),
        "dirs" => {
            let (d, l) = fourlw::dirs(core);
            json!({"datadir_size": d, "logdir_size": l})
        }
        "hash" => json!({"last_zxid": format!("{:#x}", core.sm.read().tree.last_zxid())}),
        "stat_reset" => {
            fourlw::reset_server_stats(core);
            json!({})
        }
        "connection_stat_reset" => {
            fourlw::reset_connection_stats(core);
            json!({})
        }
        "leader" => leader(core),
        "voting_view" => voting_view(core),
        "observers" => observers(core),
        _ => json!({}),
    }
}

/// Whether this server leads, and which server does (ZooKeeper's `leader` command).
fn leader(core: &Core) -> Value {
    let st = core.status.lock().clone();
    let Some(id) = st.leader.filter(|_| st.mode != "standalone") else {
        return json!({"error": "server is not initialized"});
    };
    let host = st
        .peers
        .iter()
        .find(|p| p.id == id)
        .and_then(|p| ServerSpec::parse(id, &p.spec).ok())
        .map(|s| s.host);
    json!({"is_leader": id == core.my_id, "leader_id": id, "leader_ip": host})
}

/// The voting members and their addresses (ZooKeeper's `voting_view` command).
fn voting_view(core: &Core) -> Value {
    let st = core.status.lock().clone();
    if st.mode == "standalone" {
        return json!({"current_config": {}});
    }
    let voters = st.peers.iter().filter(|p| p.role == "participant");
    let config = object(voters.filter_map(|p| {
        let s = ServerSpec::parse(p.id, &p.spec).ok()?;
        let host = if s.host.contains(':') {
            format!("[{}]", s.host)
        } else {
            s.host.clone()
        };
        let client = s.client_addr.as_ref().map(|(h, port)| {
            let h = if h.is_empty() { "0.0.0.0" } else { h };
            format!("{h}:{port}")
        });
        Some((
            p.id.to_string(),
            json!({
                "server_addresses": [format!("{host}:{}", s.quorum_port)],
                "election_addresses": [format!("{host}:{}", s.election_port)],
                "client_address": client,
                "learner_type": "participant",
            }),
        ))
    }));
    json!({"current_config": config})
}

/// On the leader, the observers and how far each has replicated (ZooKeeper's `observers`).
fn observers(core: &Core) -> Value {
    let st = core.status.lock().clone();
    if st.mode != "leader" {
        return json!({"synced_observers": 0, "observers": []});
    }
    let rows: Vec<Value> = st
        .peers
        .iter()
        .filter(|p| p.role == "observer")
        .map(|p| {
            json!({
                "sid": p.id,
                "server": p.spec,
                "matched_index": p.matched,
                "lag": p.matched.map(|m| st.last_log_index.saturating_sub(m)),
            })
        })
        .collect();
    let synced = st
        .peers
        .iter()
        .filter(|p| p.role == "observer" && p.matched.is_some())
        .count();
    json!({"synced_observers": synced, "observers": rows})
}

fn server_stats(core: &Core) -> Value {
    let st = fourlw::server_stats(core);
    let (dsize, lsize) = fourlw::dirs(core);
    let (min, avg, max) = st.latency;
    json!({
        "version": fourlw::version_string(),
        "read_only": false,
        "server_stats": {
            "packets_sent": st.sent,
            "packets_received": st.received,
            "min_latency": min,
            "avg_latency": avg,
            "max_latency": max,
            "outstanding_requests": st.outstanding,
            "last_processed_zxid": st.zxid,
            "num_alive_client_connections": st.connections,
            "server_state": st.mode,
            "data_dir_size": dsize,
            "log_dir_size": lsize,
            "uptime": core.started.elapsed().as_millis() as u64,
        },
        "node_count": st.nodes,
    })
}

fn connections(core: &Core) -> Value {
    let rows: Vec<Value> = fourlw::connections(core)
        .into_iter()
        .map(|r| {
            json!({
                "remote_socket_address": r.peer.to_string(),
                "outstanding_requests": r.queued,
                "packets_received": r.received,
                "packets_sent": r.sent,
                "session_id": format!("{:#x}", r.session),
                "last_cxid": format!("{:#x}", r.last_xid),
                "last_zxid": format!("{:#x}", r.last_zxid),
                "session_timeout": r.timeout,
            })
        })
        .collect();
    Value::Array(rows)
}

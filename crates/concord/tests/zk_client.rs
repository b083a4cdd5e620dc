//! Every opcode, its error codes and its watch events, through the `zookeeper-client` crate
//! (a client nobody here wrote) against a real concord server.

// `remove()` on watchers is deprecated in favour of drop, but it is the call that sends
// removeWatches and reports the server's answer, which is what these tests check.
#![allow(deprecated)]

mod common;

use common::*;
use std::time::Duration;
use zookeeper_client::{
    Acl, Acls, AddWatchMode, AuthId, AuthUser, Client, CreateMode, Error, EventType,
    MultiReadResult, MultiWriteResult, Permission,
};

const TIMEOUT: Duration = Duration::from_secs(10);

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, f)
        .await
        .expect("no answer within 10 s")
}

fn persistent() -> zookeeper_client::CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_set_delete_and_their_errors() {
    let s = start().await;
    let c = client(&s).await;
    let (stat, _) = c.create("/a", b"hello", &persistent()).await.unwrap();
    assert_eq!(stat.version, 0);
    assert_eq!(stat.data_length, 5);
    assert_eq!(stat.czxid, stat.mzxid);
    let (data, got) = c.get_data("/a").await.unwrap();
    assert_eq!(data, b"hello");
    assert_eq!(got, stat);
    assert_eq!(
        c.create("/a", b"", &persistent()).await.unwrap_err(),
        Error::NodeExists
    );
    assert_eq!(
        c.create("/none/x", b"", &persistent()).await.unwrap_err(),
        Error::NoNode
    );
    assert_eq!(c.get_data("/none").await.unwrap_err(), Error::NoNode);
    let s2 = c.set_data("/a", b"bye", Some(0)).await.unwrap();
    assert_eq!(s2.version, 1);
    assert!(s2.mzxid > stat.mzxid);
    assert_eq!(
        c.set_data("/a", b"x", Some(0)).await.unwrap_err(),
        Error::BadVersion
    );
    c.create("/a/b", b"", &persistent()).await.unwrap();
    assert_eq!(c.delete("/a", None).await.unwrap_err(), Error::NotEmpty);
    assert_eq!(
        c.delete("/a/b", Some(7)).await.unwrap_err(),
        Error::BadVersion
    );
    c.delete("/a/b", Some(0)).await.unwrap();
    c.delete("/a", None).await.unwrap();
    assert_eq!(c.check_stat("/a").await.unwrap(), None);
    assert_eq!(c.delete("/a", None).await.unwrap_err(), Error::NoNode);
    // The system nodes are there and protected.
    assert!(c.check_stat("/zookeeper").await.unwrap().is_some());
    assert!(c.check_stat("/zookeeper/quota").await.unwrap().is_some());
    assert!(matches!(
        c.delete("/zookeeper", None).await.unwrap_err(),
        Error::BadArguments(_)
    ));
    s.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_kinds() {
    let s = start().await;
    let c = client(&s).await;
    c.create("/q", b"", &persistent()).await.unwrap();
    let (_, seq0) = c
        .create(
            "/q/n-",
            b"",
            &CreateMode::PersistentSequential.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
    let (_, seq1) = c
        .create(
            "/q/n-",
            b"",
            &CreateMode::EphemeralSequential.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
    assert_eq!(seq0.into_i64(), 0);
    assert_eq!(seq1.into_i64(), 1);
    let mut kids = c.list_children("/q").await.unwrap();
    kids.sort();
    assert_eq!(kids, vec!["n-0000000000", "n-0000000001"]);
    let (e, _) = c
        .create(
            "/eph",
            b"",
            &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
    assert_eq!(e.ephemeral_owner, c.session_id().0);
    assert_eq!(
        c.create("/eph/child", b"", &persistent())
            .await
            .unwrap_err(),
        Error::NoChildrenForEphemerals
    );
    let mut eph = c.list_ephemerals("/").await.unwrap();
    eph.sort();
    assert_eq!(eph, vec!["/eph", "/q/n-0000000001"]);
    // Containers disappear with their last child.
    c.create(
        "/box",
        b"",
        &CreateMode::Container.with_acls(Acls::anyone_all()),
    )
    .await
    .unwrap();
    c.create("/box/item", b"", &persistent()).await.unwrap();
    c.delete("/box/item", None).await.unwrap();
    assert_eq!(c.check_stat("/box").await.unwrap(), None);
    // TTL nodes go once their TTL passes with no change and no children.
    let ttl = CreateMode::Persistent
        .with_acls(Acls::anyone_all())
        .with_ttl(Duration::from_millis(200));
    let (st, _) = c.create("/ttl", b"", &ttl).await.unwrap();
    // The TTL marker is internal: clients see ephemeralOwner 0, as from ZooKeeper.
    assert_eq!(st.ephemeral_owner, 0);
    within(async {
        while c.check_stat("/ttl").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(c.count_descendants_number("/q").await.unwrap(), 2);
    s.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_with_stat_sync_and_config() {
    let s = start().await;
    let c = client(&s).await;
    c.create("/p", b"", &persistent()).await.unwrap();
    for n in ["x", "y", "z"] {
        c.create(&format!("/p/{n}"), b"", &persistent())
            .await
            .unwrap();
    }
    let (mut kids, stat) = c.get_children("/p").await.unwrap();
    kids.sort();
    assert_eq!(kids, vec!["x", "y", "z"]);
    assert_eq!(stat.num_children, 3);
    assert_eq!(stat.cversion, 3);
    c.sync("/p").await.unwrap();
    let (cfg, _) = c.get_config().await.unwrap();
    assert!(cfg.is_empty());
    assert_eq!(
        c.update_ensemble(
            zookeeper_client::EnsembleUpdate::Incremental {
                joinings: ["server.2=127.0.0.1:2888:3888"].iter().copied(),
                leavings: [].iter().copied(),
            },
            None
        )
        .await
        .unwrap_err(),
        Error::ReconfigDisabled
    );
    s.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_auth_and_who_am_i() {
    let s = start().await;
    let c = client(&s).await;
    let users = c.list_auth_users().await.unwrap();
    assert_eq!(users, vec![AuthUser::new("ip", "127.0.0.1")]);
    c.auth("digest", b"bob:secret").await.unwrap();
    let mut users = c.list_auth_users().await.unwrap();
    users.sort_by(|a, b| a.scheme().cmp(b.scheme()));
    // ZooKeeper names a digest identity by its user only, never with the password hash.
    assert_eq!(users[0], AuthUser::new("digest", "bob"));
    c.create(
        "/mine",
        b"s",
        &CreateMode::Persistent.with_acls(Acls::creator_all()),
    )
    .await
    .unwrap();
    let (acl, _) = c.get_acl("/mine").await.unwrap();
    assert_eq!(acl.len(), 1);
    assert_eq!(acl[0].scheme(), "digest");
    assert!(acl[0].id().starts_with("bob:"));
    let other = client(&s).await;
    assert_eq!(other.get_data("/mine").await.unwrap_err(), Error::NoAuth);
    assert_eq!(
        other.set_data("/mine", b"x", None).await.unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(other.get_acl("/mine").await.unwrap_err(), Error::NoAuth);
    // setACL checks ADMIN and the ACL version
    let read_only = [Acl::new(Permission::READ, AuthId::anyone())];
    assert_eq!(
        c.set_acl("/mine", &read_only, Some(5)).await.unwrap_err(),
        Error::BadVersion
    );
    let st = c.set_acl("/mine", &read_only, Some(0)).await.unwrap();
    assert_eq!(st.aversion, 1);
    assert_eq!(other.get_data("/mine").await.unwrap().0, b"s");
    assert_eq!(
        c.set_data("/mine", b"x", None).await.unwrap_err(),
        Error::NoAuth
    );
    // creator ACL without authentication is invalid
    assert_eq!(
        other
            .create(
                "/x",
                b"",
                &CreateMode::Persistent.with_acls(Acls::creator_all())
            )
            .await
            .unwrap_err(),
        Error::InvalidAcl
    );
    // the configured super user may do anything
    let su = client(&s).await;
    su.auth("digest", b"super:test").await.unwrap();
    su.set_data("/mine", b"su", None).await.unwrap();
    s.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_write_read_and_check() {
    let s = start().await;
    let c = client(&s).await;
    c.create("/m", b"0", &persistent()).await.unwrap();
    let mut w = c.new_multi_writer();
    w.add_create("/m/a", b"a", &persistent()).unwrap();
    w.add_set_data("/m", b"1", Some(0)).unwrap();
    w.add_check_version("/m", 1).unwrap();
    w.add_delete("/m/a", None).unwrap();
    let r = w.commit().await.unwrap();
    assert_eq!(r.len(), 4);
    assert!(matches!(r[0], MultiWriteResult::Create { ref path, .. } if path == "/m/a"));
    assert!(matches!(r[1], MultiWriteResult::SetData { stat } if stat.version == 1));
    assert!(matches!(r[2], MultiWriteResult::Check));
    assert!(matches!(r[3], MultiWriteResult::Delete));
    let mut w = c.new_multi_writer();
    w.add_create("/m/b", b"", &persistent()).unwrap();
    w.add_set_data("/m", b"2", Some(0)).unwrap();
    w.add_delete("/m", None).unwrap();
    let err = w.commit().await.unwrap_err();
    assert!(
        matches!(
            err,
            zookeeper_client::MultiWriteError::OperationFailed {
                index: 1,
                source: Error::BadVersion
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        c.check_stat("/m/b").await.unwrap(),
        None,
        "failed multi changed nothing"
    );
    let mut r = c.new_multi_reader();
    r.add_get_data("/m").unwrap();
    r.add_get_children("/m").unwrap();
    r.add_get_data("/missing").unwrap();
    let res = r.commit().await.unwrap();
    assert!(matches!(&res[0], MultiReadResult::Data { data, .. } if data == b"1"));
    assert!(matches!(&res[1], MultiReadResult::Children { children } if children.is_empty()));
    assert!(matches!(
        &res[2],
        MultiReadResult::Error { err: Error::NoNode }
    ));
    s.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_watches() {
    let s = start().await;
    let c = client(&s).await;
    let other = client(&s).await;
    // exists watch on a missing node fires NodeCreated
    let (st, w) = c.check_and_watch_stat("/w").await.unwrap();
    assert!(st.is_none());
    other.create("/w", b"", &persistent()).await.unwrap();
    let e = within(w.changed()).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeCreated, "/w")
    );
    // data watch fires NodeDataChanged once
    let (_, _, w) = c.get_and_watch_data("/w").await.unwrap();
    other.set_data("/w", b"1", None).await.unwrap();
    let e = within(w.changed()).await;
    assert_eq!(e.event_type, EventType::NodeDataChanged);
    // child watch fires NodeChildrenChanged
    let (_, w) = c.list_and_watch_children("/w").await.unwrap();
    other.create("/w/k", b"", &persistent()).await.unwrap();
    let e = within(w.changed()).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeChildrenChanged, "/w")
    );
    // data watch fires NodeDeleted
    let (_, _, w) = c.get_and_watch_data("/w/k").await.unwrap();
    other.delete("/w/k", None).await.unwrap();
    let e = within(w.changed()).await;
    assert_eq!(e.event_type, EventType::NodeDeleted);
    // an event arrives before the reply to a later read that sees the change
    let (_, _, w) = c.get_and_watch_data("/w").await.unwrap();
    other.set_data("/w", b"2", None).await.unwrap();
    let (data, _) = c.get_data("/w").await.unwrap();
    assert_eq!(data, b"2");
    let e = within(w.changed()).await;
    assert_eq!(e.event_type, EventType::NodeDataChanged);
    // removeWatches: a removed watch no longer fires
    let (_, _, w) = c.get_and_watch_data("/w").await.unwrap();
    w.remove().await.unwrap();
    s.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_and_recursive_watches() {
    let s = start().await;
    let c = client(&s).await;
    let other = client(&s).await;
    c.create("/r", b"", &persistent()).await.unwrap();
    let mut p = c.watch("/r", AddWatchMode::Persistent).await.unwrap();
    let mut rec = c
        .watch("/r", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    other.create("/r/a", b"", &persistent()).await.unwrap();
    let e = within(p.changed()).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeChildrenChanged, "/r")
    );
    let e = within(rec.changed()).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeCreated, "/r/a")
    );
    other.create("/r/a/b", b"", &persistent()).await.unwrap();
    let e = within(rec.changed()).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeCreated, "/r/a/b")
    );
    other.set_data("/r", b"x", None).await.unwrap();
    let e = within(p.changed()).await;
    assert_eq!(e.event_type, EventType::NodeDataChanged);
    let e = within(rec.changed()).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeDataChanged, "/r")
    );
    // still there after firing
    other.set_data("/r/a/b", b"y", None).await.unwrap();
    let e = within(rec.changed()).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeDataChanged, "/r/a/b")
    );
    p.remove().await.unwrap();
    rec.remove().await.unwrap();
    s.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_close_expire_and_resume() {
    let s = start().await;
    let watcher = client(&s).await;
    // closing a session removes its ephemerals at once
    let c = client(&s).await;
    c.create(
        "/gone",
        b"",
        &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
    )
    .await
    .unwrap();
    let (_, _, w) = watcher.get_and_watch_data("/gone").await.unwrap();
    drop(c);
    let e = within(w.changed()).await;
    assert_eq!(e.event_type, EventType::NodeDeleted);
    // a session whose client goes silent expires, and its ephemerals with it
    let detached = Client::connector()
        .with_session_timeout(Duration::from_millis(400))
        .with_detached()
        .connect(&s.connect_string())
        .await
        .unwrap();
    detached
        .create(
            "/expiring",
            b"",
            &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
    let (_, _, w) = watcher.get_and_watch_data("/expiring").await.unwrap();
    let session = detached.into_session();
    let e = within(w.changed()).await;
    assert_eq!(e.event_type, EventType::NodeDeleted);
    // and resuming it is refused as expired
    let err = Client::connector()
        .with_session(session)
        .connect(&s.connect_string())
        .await
        .unwrap_err();
    assert_eq!(err, Error::SessionExpired);
    // a live session can be resumed on a new connection, keeping its ephemerals
    let c = Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .with_detached()
        .connect(&s.connect_string())
        .await
        .unwrap();
    c.create(
        "/kept",
        b"",
        &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
    )
    .await
    .unwrap();
    let id = c.session_id();
    let session = c.into_session();
    let resumed = Client::connector()
        .with_session(session)
        .connect(&s.connect_string())
        .await
        .unwrap();
    assert_eq!(resumed.session_id(), id);
    assert_eq!(resumed.list_ephemerals("/").await.unwrap(), vec!["/kept"]);
    s.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_letter_words() {
    let s = start().await;
    let _c = client(&s).await;
    assert_eq!(four_letter(s.handle.addr, "ruok").await, "imok");
    assert_eq!(four_letter(s.handle.addr, "isro").await, "rw");
    let srvr = four_letter(s.handle.addr, "srvr").await;
    assert!(srvr.contains("Mode: standalone"), "{srvr}");
    assert!(srvr.contains("Node count: 4"), "{srvr}");
    let envi = four_letter(s.handle.addr, "envi").await;
    assert!(envi.contains("zookeeper.version=3."), "{envi}");
    let mntr = four_letter(s.handle.addr, "mntr").await;
    assert!(mntr.contains("zk_znode_count\t4"), "{mntr}");
    assert!(four_letter(s.handle.addr, "cons").await.contains("sid=0x"));
    _c.create("/w", b"", &persistent()).await.unwrap();
    let _watch = _c.get_and_watch_data("/w").await.unwrap();
    let sid = format!("{:#x}", _c.session_id().0);
    for (cmd, want) in [
        ("stat", "Clients:".to_string()),
        ("conf", "clientPort=".to_string()),
        ("wchs", "1 connections watching 1 paths".to_string()),
        ("wchc", format!("{sid}\n\t/w")),
        ("wchp", format!("/w\n\t{sid}")),
        ("dump", format!("Session Sets (1):\n{sid}")),
        ("dirs", "datadir_size: ".to_string()),
    ] {
        let got = four_letter(s.handle.addr, cmd).await;
        assert!(got.contains(&want), "{cmd}: {got:?} lacks {want:?}");
    }
    s.handle.shutdown().await;
    let limited = start_with(|c| {
        c.four_letter_words =
            concord_server::config::FourLetterWords::Only(["ruok".to_string()].into());
    })
    .await;
    assert_eq!(four_letter(limited.handle.addr, "ruok").await, "imok");
    assert_eq!(
        four_letter(limited.handle.addr, "srvr").await,
        "srvr is not executed because it is not in the whitelist.\n"
    );
    limited.handle.shutdown().await;
}

use crate::snapshot::{read_snapshot, write_snapshot};
use crate::*;
use concord_jute::consts::{create_mode::*, event, op};
use concord_jute::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn anyone() -> Vec<Id> {
    vec![Id::new("ip", "127.0.0.1")]
}

struct T {
    tree: DataTree,
    session: i64,
    time: i64,
    events: Vec<Event>,
}

impl T {
    fn new() -> T {
        let mut t = T {
            tree: DataTree::new(true),
            session: 0,
            time: 1_700_000_000_000,
            events: vec![],
        };
        t.session = t.new_session();
        t
    }

    fn txn(&mut self, session: i64, op: TxnOp) -> Applied {
        self.time += 1;
        self.events.clear();
        let txn = Txn {
            session,
            time: self.time,
            auth: anyone(),
            op,
        };
        self.tree.apply(&txn, &mut self.events)
    }

    fn new_session(&mut self) -> i64 {
        match self
            .txn(
                0,
                TxnOp::CreateSession {
                    timeout: 10000,
                    passwd: vec![1; 16],
                },
            )
            .outcome
        {
            Outcome::SessionCreated(id) => id,
            o => panic!("{o:?}"),
        }
    }

    fn write(&mut self, req: Request) -> Result<Response, ErrorCode> {
        self.write_as(self.session, req)
    }

    fn write_as(&mut self, session: i64, req: Request) -> Result<Response, ErrorCode> {
        match self.txn(session, TxnOp::Write(req)).outcome {
            Outcome::Reply(r) => Ok(r),
            Outcome::Error(e) => Err(e),
            o => panic!("{o:?}"),
        }
    }

    fn create(&mut self, path: &str, data: &[u8], flags: i32) -> Result<String, ErrorCode> {
        match self.write(create_req(path, data, flags))? {
            Response::Create2(p, _) => Ok(p),
            r => panic!("{r:?}"),
        }
    }

    fn stat(&self, path: &str) -> Stat {
        self.tree.exists(path).unwrap().unwrap()
    }
}

fn create_req(path: &str, data: &[u8], flags: i32) -> Request {
    Request::Create(CreateRequest {
        op: op::CREATE2,
        path: path.into(),
        data: Some(data.to_vec()),
        acl: Acl::open_unsafe(),
        flags,
        ttl: 0,
    })
}

fn set(path: &str, data: &[u8], version: i32) -> Request {
    Request::SetData {
        path: path.into(),
        data: Some(data.to_vec()),
        version,
    }
}

fn del(path: &str, version: i32) -> Request {
    Request::Delete {
        path: path.into(),
        version,
    }
}

/// Every node's path, data, Stat and ACL: two trees with equal dumps hold the same state.
fn dump(t: &DataTree) -> BTreeMap<String, (Vec<u8>, Stat, Vec<Acl>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec!["/".to_string()];
    let su = vec![Id::new("super", "")];
    while let Some(p) = stack.pop() {
        let (data, stat) = t.get_data(&p, &su).unwrap();
        let (acl, _) = t.get_acl(&p, &su).unwrap();
        let (kids, _) = t.get_children(&p, &su).unwrap();
        for k in kids {
            stack.push(path::join(&p, k));
        }
        out.insert(p, (data.unwrap_or_default().to_vec(), stat, acl));
    }
    out
}

#[test]
fn fresh_tree_has_system_nodes() {
    let t = DataTree::new(false);
    for p in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        assert!(t.exists(p).unwrap().is_some(), "{p}");
    }
    assert_eq!(t.node_count(), 4);
    let (acl, _) = t.get_acl("/zookeeper/config", &anyone()).unwrap();
    assert_eq!(acl, Acl::read_unsafe());
}

#[test]
fn create_sets_stat_and_parent() {
    let mut t = T::new();
    let before = t.stat("/");
    t.create("/a", b"hello", PERSISTENT).unwrap();
    let zxid = t.tree.last_zxid();
    let s = t.stat("/a");
    assert_eq!((s.czxid, s.mzxid, s.pzxid), (zxid, zxid, zxid));
    assert_eq!((s.version, s.cversion, s.aversion), (0, 0, 0));
    assert_eq!(s.data_length, 5);
    assert_eq!(s.ctime, t.time);
    assert_eq!(s.ephemeral_owner, 0);
    let r = t.stat("/");
    assert_eq!(r.cversion, before.cversion + 1);
    assert_eq!(r.num_children, before.num_children + 1);
    assert_eq!(r.pzxid, zxid);
    assert_eq!(
        t.events,
        vec![
            Event {
                event_type: event::NODE_CREATED,
                path: "/a".into()
            },
            Event {
                event_type: event::NODE_CHILDREN_CHANGED,
                path: "/".into()
            }
        ]
    );
    assert_eq!(t.create("/a", b"", PERSISTENT), Err(ErrorCode::NodeExists));
    assert_eq!(t.create("/x/y", b"", PERSISTENT), Err(ErrorCode::NoNode));
    assert_eq!(t.create("/", b"", PERSISTENT), Err(ErrorCode::NodeExists));
    for bad in ["a", "/a/", "/a//b", "/a/./b", "/a/.."] {
        assert_eq!(
            t.create(bad, b"", PERSISTENT),
            Err(ErrorCode::BadArguments),
            "{bad}"
        );
    }
    assert_eq!(t.create("/q", b"", 9), Err(ErrorCode::BadArguments));
    // A plain create replies with the path only.
    let r = t
        .write(Request::Create(CreateRequest {
            op: op::CREATE,
            path: "/plain".into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: 0,
        }))
        .unwrap();
    assert_eq!(r, Response::Create("/plain".into()));
    // Null data stays null (not empty), as in ZooKeeper.
    assert_eq!(t.tree.get_data("/plain", &anyone()).unwrap().0, None);
    assert_eq!(
        t.tree.get_data("/a", &anyone()).unwrap().0,
        Some(&b"hello"[..])
    );
}

#[test]
fn sequential_names_use_parent_cversion() {
    let mut t = T::new();
    t.create("/q", b"", PERSISTENT).unwrap();
    assert_eq!(
        t.create("/q/n-", b"", PERSISTENT_SEQUENTIAL).unwrap(),
        "/q/n-0000000000"
    );
    t.create("/q/other", b"", PERSISTENT).unwrap();
    assert_eq!(
        t.create("/q/n-", b"", EPHEMERAL_SEQUENTIAL).unwrap(),
        "/q/n-0000000002"
    );
    t.write(del("/q/n-0000000000", -1)).unwrap();
    // The reported cversion counts the 3 creates and the delete, as ZooKeeper's does; the
    // sequence number counts creates only, so numbers are never reused.
    assert_eq!(t.stat("/q").cversion, 4);
    assert_eq!(
        t.create("/q/", b"", PERSISTENT_SEQUENTIAL).unwrap(),
        "/q/0000000003"
    );
}

#[test]
fn ephemerals_belong_to_sessions() {
    let mut t = T::new();
    let s = t.session;
    t.create("/e", b"", EPHEMERAL).unwrap();
    assert_eq!(t.stat("/e").ephemeral_owner, s);
    assert_eq!(
        t.create("/e/child", b"", PERSISTENT),
        Err(ErrorCode::NoChildrenForEphemerals)
    );
    t.create("/p", b"", PERSISTENT).unwrap();
    t.create("/p/e2", b"", EPHEMERAL).unwrap();
    assert_eq!(t.tree.ephemerals(s, "/"), vec!["/e", "/p/e2"]);
    assert_eq!(t.tree.ephemerals(s, "/p"), vec!["/p/e2"]);
    let other = t.new_session();
    t.txn(s, TxnOp::CloseSession { expired: true });
    assert!(t.tree.session(s).is_none());
    assert!(t.tree.exists("/e").unwrap().is_none());
    assert!(t.tree.exists("/p/e2").unwrap().is_none());
    let deleted: Vec<_> = t
        .events
        .iter()
        .filter(|e| e.event_type == event::NODE_DELETED)
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(deleted, vec!["/e", "/p/e2"]);
    // A closed session can no longer write.
    assert_eq!(
        t.write_as(s, create_req("/z", b"", EPHEMERAL)),
        Err(ErrorCode::SessionExpired)
    );
    assert!(t.tree.session(other).is_some());
}

#[test]
fn session_ids_are_unique_and_increasing() {
    let mut t = T::new();
    let a = t.new_session();
    let b = t.new_session();
    assert!(b > a && a > t.session);
    assert!(a > 0);
}

#[test]
fn delete_and_set_check_versions() {
    let mut t = T::new();
    t.create("/a", b"1", PERSISTENT).unwrap();
    t.create("/a/b", b"", PERSISTENT).unwrap();
    assert_eq!(t.write(del("/a", -1)), Err(ErrorCode::NotEmpty));
    assert_eq!(t.write(set("/a", b"2", 5)), Err(ErrorCode::BadVersion));
    let Response::Stat(s) = t.write(set("/a", b"22", 0)).unwrap() else {
        panic!()
    };
    assert_eq!(
        (s.version, s.data_length, s.mzxid),
        (1, 2, t.tree.last_zxid())
    );
    assert!(s.mzxid > s.czxid);
    assert_eq!(t.events[0].event_type, event::NODE_DATA_CHANGED);
    assert_eq!(t.write(set("/nope", b"", -1)), Err(ErrorCode::NoNode));
    assert_eq!(t.write(del("/a/b", 3)), Err(ErrorCode::BadVersion));
    t.write(del("/a/b", 0)).unwrap();
    assert_eq!(t.write(del("/a/b", -1)), Err(ErrorCode::NoNode));
    for special in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        assert_eq!(t.write(del(special, -1)), Err(ErrorCode::BadArguments));
    }
    assert_eq!(
        t.write(Request::Check {
            path: "/a".into(),
            version: 0
        }),
        Err(ErrorCode::BadVersion)
    );
    assert!(t
        .write(Request::Check {
            path: "/a".into(),
            version: 1
        })
        .is_ok());
}

#[test]
fn acls_are_enforced() {
    let mut t = T::new();
    let bob = Id::new("digest", acl::digest_id("bob:pw").unwrap());
    t.create("/open", b"", PERSISTENT).unwrap();
    let req = Request::Create(CreateRequest {
        op: op::CREATE2,
        path: "/locked".into(),
        data: Some(b"secret".to_vec()),
        acl: vec![
            Acl {
                perms: perms::ALL,
                id: bob.clone(),
            },
            Acl {
                perms: perms::CREATE,
                id: Id::new("world", "anyone"),
            },
        ],
        flags: 0,
        ttl: 0,
    });
    t.write(req).unwrap();
    let anon = anyone();
    assert_eq!(
        t.tree.get_data("/locked", &anon).unwrap_err(),
        ErrorCode::NoAuth
    );
    assert_eq!(
        t.tree.get_children("/locked", &anon).unwrap_err(),
        ErrorCode::NoAuth
    );
    // exists needs no permission
    assert!(t.tree.exists("/locked").unwrap().is_some());
    assert_eq!(
        t.tree
            .get_data("/locked", std::slice::from_ref(&bob))
            .unwrap()
            .0,
        Some(&b"secret"[..])
    );
    assert_eq!(t.write(set("/locked", b"x", -1)), Err(ErrorCode::NoAuth));
    // anyone may CREATE children, but not DELETE them
    t.create("/locked/kid", b"", PERSISTENT).unwrap();
    assert_eq!(t.write(del("/locked/kid", -1)), Err(ErrorCode::NoAuth));
    // getACL without READ/ADMIN is refused; with ADMIN shows the hash
    assert_eq!(
        t.tree.get_acl("/locked", &anon).unwrap_err(),
        ErrorCode::NoAuth
    );
    let (acl, _) = t
        .tree
        .get_acl("/locked", std::slice::from_ref(&bob))
        .unwrap();
    assert_eq!(acl[0].id, bob);
    // setACL needs ADMIN and checks aversion
    let set_acl = |v: i32| Request::SetAcl {
        path: "/open".into(),
        acl: Acl::read_unsafe(),
        version: v,
    };
    assert_eq!(t.write(set_acl(3)), Err(ErrorCode::BadVersion));
    let Response::Stat(s) = t.write(set_acl(0)).unwrap() else {
        panic!()
    };
    assert_eq!(s.aversion, 1);
    assert_eq!(t.write(set("/open", b"x", -1)), Err(ErrorCode::NoAuth));
    assert_eq!(t.write(set_acl(-1)), Err(ErrorCode::NoAuth));
    // 'auth' ACL without an authenticated id is invalid
    let bad = Request::SetAcl {
        path: "/locked".into(),
        acl: vec![Acl {
            perms: 31,
            id: Id::new("auth", ""),
        }],
        version: -1,
    };
    assert_eq!(t.write(bad), Err(ErrorCode::InvalidAcl));
}

#[test]
fn multi_is_all_or_nothing() {
    let mut t = T::new();
    t.create("/m", b"0", PERSISTENT).unwrap();
    let before = dump(&t.tree);
    let ops = vec![
        create_req("/m/a", b"", PERSISTENT),
        set("/m", b"1", -1),
        set("/m", b"2", 7),
        del("/m/a", -1),
    ];
    let r = t.write(Request::Multi(ops)).unwrap();
    assert_eq!(
        r,
        Response::Multi(vec![
            OpResult::Error(0),
            OpResult::Error(0),
            OpResult::Error(ErrorCode::BadVersion.code()),
            OpResult::Error(ErrorCode::RuntimeInconsistency.code()),
        ])
    );
    assert!(t.events.is_empty());
    assert_eq!(dump(&t.tree), before, "a failed multi changes nothing");
    // A multi that deletes then re-creates, and checks, succeeds in one zxid.
    let ops = vec![
        create_req("/m/a", b"", PERSISTENT),
        Request::Check {
            path: "/m".into(),
            version: 0,
        },
        set("/m", b"1", 0),
        del("/m/a", -1),
        create_req("/m/a", b"again", EPHEMERAL),
    ];
    let Response::Multi(rs) = t.write(Request::Multi(ops)).unwrap() else {
        panic!()
    };
    assert!(matches!(rs[0], OpResult::Create2(ref p, _) if p == "/m/a"));
    assert_eq!(rs[1], OpResult::Check);
    assert!(matches!(rs[2], OpResult::SetData(s) if s.version == 1));
    assert_eq!(rs[3], OpResult::Delete);
    let zxid = t.tree.last_zxid();
    let s = t.stat("/m/a");
    assert_eq!(s.czxid, zxid);
    assert_eq!(s.ephemeral_owner, t.session);
    assert_eq!(t.tree.ephemerals(t.session, "/"), vec!["/m/a"]);
    // A rolled-back delete of an ephemeral restores its session registration.
    let ops = vec![del("/m/a", -1), set("/nope", b"", -1)];
    t.write(Request::Multi(ops)).unwrap();
    assert_eq!(t.tree.ephemerals(t.session, "/"), vec!["/m/a"]);
    assert_eq!(t.stat("/m/a").data_length, 5);
}

#[test]
fn containers_go_with_their_last_child() {
    let mut t = T::new();
    t.create("/c", b"", CONTAINER).unwrap();
    // The container marker is internal: clients see ephemeralOwner 0, as from ZooKeeper.
    assert_eq!(t.stat("/c").ephemeral_owner, 0);
    t.create("/c/a", b"", PERSISTENT).unwrap();
    t.create("/c/b", b"", PERSISTENT).unwrap();
    t.write(del("/c/a", -1)).unwrap();
    assert!(t.tree.exists("/c").unwrap().is_some());
    t.write(del("/c/b", -1)).unwrap();
    assert!(t.tree.exists("/c").unwrap().is_none());
    assert!(t
        .events
        .iter()
        .any(|e| e.event_type == event::NODE_DELETED && e.path == "/c"));
    // Never-used containers stay.
    t.create("/c2", b"", CONTAINER).unwrap();
    assert!(!t.tree.has_stale(t.time));
}

#[test]
fn ttl_nodes_expire_and_need_extended_types() {
    let mut t = T::new();
    let ttl = |path: &str, ttl: i64, flags: i32| {
        Request::Create(CreateRequest {
            op: op::CREATE_TTL,
            path: path.into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags,
            ttl,
        })
    };
    t.write(ttl("/t", 100, PERSISTENT_WITH_TTL)).unwrap();
    // The TTL marker is internal: clients see ephemeralOwner 0, as from ZooKeeper.
    assert_eq!(t.stat("/t").ephemeral_owner, 0);
    assert_eq!(
        t.write(ttl("/t0", 0, PERSISTENT_WITH_TTL)),
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        t.write(ttl("/t1", 10, PERSISTENT)),
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        t.write(create_req("/t2", b"", PERSISTENT_WITH_TTL)),
        Err(ErrorCode::BadArguments)
    );
    assert!(!t.tree.has_stale(t.time + 50));
    assert!(t.tree.has_stale(t.time + 200));
    t.time += 200;
    t.txn(0, TxnOp::PurgeStale);
    assert!(t.tree.exists("/t").unwrap().is_none());
    let mut plain = DataTree::new(false);
    let mut ev = vec![];
    let Outcome::SessionCreated(s) = plain
        .apply(
            &Txn {
                session: 0,
                time: 1,
                auth: vec![],
                op: TxnOp::CreateSession {
                    timeout: 1,
                    passwd: vec![],
                },
            },
            &mut ev,
        )
        .outcome
    else {
        panic!()
    };
    let out = plain.apply(
        &Txn {
            session: s,
            time: 2,
            auth: anyone(),
            op: TxnOp::Write(ttl("/t", 100, PERSISTENT_WITH_TTL)),
        },
        &mut ev,
    );
    assert_eq!(out.outcome, Outcome::Error(ErrorCode::Unimplemented));
}

#[test]
fn quota_stats_follow_the_subtree_like_zookeeper() {
    let mut t = T::new();
    let stats = |t: &T| -> String {
        let (d, _) = t
            .tree
            .get_data("/zookeeper/quota/q/zookeeper_stats", &[])
            .unwrap();
        String::from_utf8(d.unwrap().to_vec()).unwrap()
    };
    t.create("/q", b"", PERSISTENT).unwrap();
    t.create("/q/a", b"12345", PERSISTENT).unwrap();
    t.create("/qq", b"not under /q", PERSISTENT).unwrap();
    t.create("/zookeeper/quota/q", b"", PERSISTENT).unwrap();
    t.create(
        "/zookeeper/quota/q/zookeeper_limits",
        b"count=10,bytes=-1",
        PERSISTENT,
    )
    .unwrap();
    // Creating the stats node fills it from the subtree, whatever the client wrote: /q and /q/a.
    t.create(
        "/zookeeper/quota/q/zookeeper_stats",
        b"count=0,bytes=0",
        PERSISTENT,
    )
    .unwrap();
    assert_eq!(stats(&t), "count=2,bytes=5");
    let version_before = t.stat("/zookeeper/quota/q/zookeeper_stats").version;
    t.create("/q/b", b"x", PERSISTENT).unwrap();
    assert_eq!(stats(&t), "count=3,bytes=6");
    t.write(set("/q/a", b"123", -1)).unwrap();
    assert_eq!(stats(&t), "count=3,bytes=4");
    t.write(del("/q/b", -1)).unwrap();
    assert_eq!(stats(&t), "count=2,bytes=3");
    // /qq shares a prefix but not a path segment: not counted.
    t.write(set("/qq", b"", -1)).unwrap();
    assert_eq!(stats(&t), "count=2,bytes=3");
    // Like ZooKeeper, the stats node changes without a new version.
    assert_eq!(
        t.stat("/zookeeper/quota/q/zookeeper_stats").version,
        version_before
    );
    // A failed multi leaves the stats as they were.
    let r = t.write(Request::Multi(vec![
        create_req("/q/c", b"abc", PERSISTENT),
        del("/nope", -1),
    ]));
    assert!(matches!(r, Ok(Response::Multi(_))));
    assert_eq!(stats(&t), "count=2,bytes=3");
    // The quota survives a snapshot round trip, and keeps counting.
    let mut bytes = Vec::new();
    write_snapshot(&t.tree.freeze(), &mut bytes).unwrap();
    t.tree = read_snapshot(&bytes, true).unwrap();
    assert_eq!(t.tree.quota_paths().collect::<Vec<_>>(), vec!["/q"]);
    t.create("/q/d", b"zz", PERSISTENT).unwrap();
    assert_eq!(stats(&t), "count=3,bytes=5");
    // Removing the limits node removes the quota: the stats stop changing.
    t.write(del("/zookeeper/quota/q/zookeeper_limits", -1))
        .unwrap();
    t.create("/q/e", b"zz", PERSISTENT).unwrap();
    assert_eq!(stats(&t), "count=3,bytes=5");
    assert_eq!(t.tree.quota_paths().count(), 0);
}

#[test]
fn snapshot_round_trips_and_detects_damage() {
    let mut t = T::new();
    t.create("/a", b"data", PERSISTENT).unwrap();
    t.create("/a/e", b"", EPHEMERAL).unwrap();
    t.create("/c", b"", CONTAINER).unwrap();
    let bob = Id::new("digest", "bob:x");
    t.write(Request::SetAcl {
        path: "/a".into(),
        acl: vec![Acl { perms: 31, id: bob }],
        version: -1,
    })
    .unwrap();
    for i in 0..3000 {
        t.create(&format!("/n{i}"), format!("{i}").as_bytes(), PERSISTENT)
            .unwrap();
    }
    for i in 0..1000 {
        t.write(del(&format!("/n{i}"), -1)).unwrap();
    }
    let frozen = t.tree.freeze();
    // Writes after the freeze must not show up in the snapshot.
    let expect = dump(&t.tree);
    t.create("/later", b"", PERSISTENT).unwrap();
    let mut bytes = Vec::new();
    write_snapshot(&frozen, &mut bytes).unwrap();
    let back = read_snapshot(&bytes, true).unwrap();
    assert_eq!(dump(&back), expect);
    assert_eq!(back.last_zxid(), frozen.last_zxid());
    assert_eq!(back.ephemerals(t.session, "/"), vec!["/a/e"]);
    assert_eq!(back.data_bytes(), {
        let mut x = t.tree.data_bytes();
        x -= "later".len() as u64;
        x
    });
    // Applying the same txn to the original and the restored tree agrees.
    let mut t2 = T {
        tree: back,
        session: t.session,
        time: t.time,
        events: vec![],
    };
    t2.create("/later", b"", PERSISTENT).unwrap();
    assert_eq!(t2.stat("/later").czxid, t.stat("/later").czxid);
    // Damage anywhere is caught.
    for at in [3, bytes.len() / 2, bytes.len() - 13, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x40;
        assert!(read_snapshot(&bad, true).is_err(), "flip at {at}");
    }
    assert!(read_snapshot(&bytes[..bytes.len() - 5], true).is_err());
}

// ----- property test against a simple model -----

#[derive(Debug, Clone)]
enum MOp {
    Create {
        parent: u8,
        name: u8,
        eph: bool,
        seq: bool,
    },
    Delete {
        node: u8,
        version: Option<i32>,
    },
    Set {
        node: u8,
        version: Option<i32>,
        data: u8,
    },
    Multi {
        a: u8,
        b: u8,
        version: Option<i32>,
    },
    Close,
}

fn mop() -> impl Strategy<Value = MOp> {
    let v = prop_oneof![Just(None), (0..3i32).prop_map(Some)];
    prop_oneof![
        4 => (0..6u8, 0..4u8, any::<bool>(), any::<bool>())
            .prop_map(|(parent, name, eph, seq)| MOp::Create { parent, name, eph, seq }),
        2 => (0..6u8, v.clone()).prop_map(|(node, version)| MOp::Delete { node, version }),
        2 => (0..6u8, v.clone(), any::<u8>()).prop_map(|(node, version, data)| MOp::Set { node, version, data }),
        1 => (0..6u8, 0..6u8, v).prop_map(|(a, b, version)| MOp::Multi { a, b, version }),
        1 => Just(MOp::Close),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct MNode {
    data: Vec<u8>,
    version: i32,
    cversion: i32,
    owner: i64,
}

/// The model: a map from path to node, with ZooKeeper's rules written as plainly as possible.
#[derive(Default)]
struct Model {
    nodes: BTreeMap<String, MNode>,
}

impl Model {
    fn children(&self, p: &str) -> usize {
        self.nodes
            .keys()
            .filter(|k| path::split_parent(k).map(|(pp, _)| pp) == Some(p))
            .count()
    }

    fn create(
        &mut self,
        parent: &str,
        name: &str,
        eph: bool,
        seq: bool,
        session: i64,
    ) -> Result<String, ErrorCode> {
        let pn = self.nodes.get(parent).ok_or(ErrorCode::NoNode)?.clone();
        let name = if seq {
            format!("{name}{:010}", pn.cversion)
        } else {
            name.to_string()
        };
        let full = path::join(parent, &name);
        if self.nodes.contains_key(&full) {
            return Err(ErrorCode::NodeExists);
        }
        if pn.owner != 0 {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        self.nodes.get_mut(parent).unwrap().cversion += 1;
        self.nodes.insert(
            full.clone(),
            MNode {
                data: vec![],
                version: 0,
                cversion: 0,
                owner: if eph { session } else { 0 },
            },
        );
        Ok(full)
    }

    fn delete(&mut self, p: &str, version: i32) -> Result<(), ErrorCode> {
        let n = self.nodes.get(p).ok_or(ErrorCode::NoNode)?;
        if version != -1 && version != n.version {
            return Err(ErrorCode::BadVersion);
        }
        if self.children(p) > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        self.nodes.remove(p);
        Ok(())
    }

    fn set(&mut self, p: &str, version: i32, data: Vec<u8>) -> Result<(), ErrorCode> {
        let n = self.nodes.get_mut(p).ok_or(ErrorCode::NoNode)?;
        if version != -1 && version != n.version {
            return Err(ErrorCode::BadVersion);
        }
        n.data = data;
        n.version += 1;
        Ok(())
    }
}

fn pick(paths: &[String], i: u8) -> String {
    paths[i as usize % paths.len()].clone()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn tree_matches_model(ops in proptest::collection::vec(mop(), 1..60)) {
        let mut t = T::new();
        let mut m = Model::default();
        m.nodes.insert("/".into(), MNode { data: vec![], version: 0, cversion: 0, owner: 0 });
        m.nodes.insert("/zookeeper".into(), MNode { data: vec![], version: 0, cversion: 0, owner: 0 });
        m.nodes.insert("/zookeeper/quota".into(), MNode { data: vec![], version: 0, cversion: 0, owner: 0 });
        m.nodes.insert("/zookeeper/config".into(), MNode { data: vec![], version: 0, cversion: 0, owner: 0 });
        let names = ["a", "b", "c", "d"];
        for o in ops {
            let paths: Vec<String> = m.nodes.keys().filter(|p| !p.starts_with("/zookeeper")).cloned().collect();
            match o {
                MOp::Create { parent, name, eph, seq } => {
                    let parent = pick(&paths, parent);
                    let base = path::join(&parent, names[name as usize]);
                    let flags = match (eph, seq) { (false, false) => 0, (true, false) => 1, (false, true) => 2, (true, true) => 3 };
                    let got = t.create(&base, b"", flags);
                    let want = m.create(&parent, names[name as usize], eph, seq, t.session);
                    prop_assert_eq!(got, want);
                }
                MOp::Delete { node, version } => {
                    let p = pick(&paths, node);
                    if p == "/" { continue; }
                    let v = version.unwrap_or(-1);
                    let got = t.write(del(&p, v)).map(|_| ());
                    prop_assert_eq!(got, m.delete(&p, v));
                }
                MOp::Set { node, version, data } => {
                    let p = pick(&paths, node);
                    let v = version.unwrap_or(-1);
                    let got = t.write(set(&p, &[data], v)).map(|_| ());
                    prop_assert_eq!(got, m.set(&p, v, vec![data]));
                }
                MOp::Multi { a, b, version } => {
                    let pa = pick(&paths, a);
                    let pb = pick(&paths, b);
                    let v = version.unwrap_or(-1);
                    let got = t.write(Request::Multi(vec![set(&pa, b"m", -1), set(&pb, b"n", v)])).unwrap();
                    let saved = m.nodes.clone();
                    let r1 = m.set(&pa, -1, b"m".to_vec());
                    let r2 = if r1.is_ok() { m.set(&pb, v, b"n".to_vec()) } else { Ok(()) };
                    let ok = r1.is_ok() && r2.is_ok();
                    if !ok { m.nodes = saved; }
                    let Response::Multi(rs) = got else { panic!() };
                    prop_assert_eq!(rs.iter().all(|r| !matches!(r, OpResult::Error(_))), ok);
                }
                MOp::Close => {
                    let s = t.session;
                    t.txn(s, TxnOp::CloseSession { expired: false });
                    let doomed: Vec<String> = m.nodes.iter().filter(|(_, n)| n.owner == s).map(|(k, _)| k.clone()).collect();
                    for d in doomed { m.nodes.remove(&d); }
                    t.session = t.new_session();
                }
            }
        }
        let got = dump(&t.tree);
        prop_assert_eq!(got.len(), m.nodes.len());
        for (p, n) in &m.nodes {
            let (data, stat, _) = &got[p];
            prop_assert_eq!(data, &n.data, "data of {}", p);
            prop_assert_eq!(stat.version, n.version, "version of {}", p);
            // ZooKeeper reports cversion as creates + deletes of children (it stores creates).
            let deletes = n.cversion - m.children(p) as i32;
            prop_assert_eq!(stat.cversion, n.cversion + deletes, "cversion of {}", p);
            prop_assert_eq!(stat.ephemeral_owner, n.owner, "owner of {}", p);
            prop_assert_eq!(stat.num_children as usize, m.children(p), "children of {}", p);
        }
        // And the snapshot of whatever state we reached loads back identical.
        let mut bytes = Vec::new();
        write_snapshot(&t.tree.freeze(), &mut bytes).unwrap();
        prop_assert_eq!(dump(&read_snapshot(&bytes, true).unwrap()), got);
    }
}

#[test]
fn zxids_end_at_48_bits_and_writes_are_then_refused() {
    use crate::store::MAX_ZXID;
    let mut t = T::new();
    t.create("/a", b"x", PERSISTENT).unwrap();
    t.tree.last_zxid = MAX_ZXID - 2;
    t.create("/b", b"y", PERSISTENT).unwrap();
    assert_eq!(t.stat("/b").czxid, MAX_ZXID - 1);
    t.write(set("/a", b"z", -1)).unwrap();
    let st = t.stat("/a");
    assert_eq!((st.mzxid, st.czxid < st.mzxid), (MAX_ZXID, true));
    assert_eq!(t.tree.last_zxid(), MAX_ZXID);
    // The last zxid a node can hold has been handed out: every later txn is refused and
    // consumes nothing, sessions included.
    assert_eq!(t.create("/c", b"", PERSISTENT), Err(ErrorCode::SystemError));
    let r = t.txn(
        0,
        TxnOp::CreateSession {
            timeout: 10000,
            passwd: vec![2; 16],
        },
    );
    assert_eq!(
        (r.zxid, r.outcome),
        (MAX_ZXID, Outcome::Error(ErrorCode::SystemError))
    );
    assert_eq!(t.tree.last_zxid(), MAX_ZXID);
    // The stamps survive a snapshot.
    let mut bytes = Vec::new();
    write_snapshot(&t.tree.freeze(), &mut bytes).unwrap();
    let back = read_snapshot(&bytes, true).unwrap();
    assert_eq!(back.exists("/a"), t.tree.exists("/a"));
    assert_eq!(back.exists("/b").unwrap().unwrap().czxid, MAX_ZXID - 1);
}

#[test]
fn a_session_taken_over_by_another_server_refuses_the_old_servers_requests() {
    let mut ev = Vec::new();
    let mut t = DataTree::new(false);
    let txn = |session, op| Txn {
        session,
        time: 1,
        auth: anyone(),
        op,
    };
    let create = |path: &str| TxnOp::Write(create_req(path, b"", 0));
    let created = t.apply_from(
        &txn(
            0,
            TxnOp::CreateSession {
                timeout: 10000,
                passwd: vec![1; 16],
            },
        ),
        1,
        &mut ev,
    );
    let Outcome::SessionCreated(s) = created.outcome else {
        panic!("{created:?}")
    };
    // No owner yet: a log written before owners existed replays the same way.
    assert_eq!(t.session(s).unwrap().owner, 0);
    assert!(matches!(
        t.apply_from(&txn(s, create("/a")), 1, &mut ev).outcome,
        Outcome::Reply(_)
    ));
    // The client resumes on server 2, which takes the session over.
    assert!(matches!(
        t.apply_from(&txn(s, TxnOp::MoveSession), 2, &mut ev)
            .outcome,
        Outcome::Reply(_)
    ));
    assert_eq!(t.session(s).unwrap().owner, 2);
    // A request still coming through server 1 is refused, and changes nothing.
    let stale = t.apply_from(&txn(s, create("/b")), 1, &mut ev);
    assert_eq!(stale.outcome, Outcome::Error(ErrorCode::SessionMoved));
    let close = t.apply_from(&txn(s, TxnOp::CloseSession { expired: false }), 1, &mut ev);
    assert_eq!(close.outcome, Outcome::Error(ErrorCode::SessionMoved));
    assert!(t.session(s).is_some());
    assert!(t.get_data("/b", &anyone()).is_err());
    // Through server 2 it works, and an expiry (the leader's) is never refused.
    assert!(matches!(
        t.apply_from(&txn(s, create("/b")), 2, &mut ev).outcome,
        Outcome::Reply(_)
    ));
    // Owners survive a snapshot.
    let mut bytes = Vec::new();
    crate::snapshot::write_snapshot(&t.freeze(), &mut bytes).unwrap();
    let back = crate::snapshot::read_snapshot(&bytes, false).unwrap();
    assert_eq!(back.session(s).unwrap().owner, 2);
    let expire = t.apply_from(&txn(s, TxnOp::CloseSession { expired: true }), 1, &mut ev);
    assert!(matches!(expire.outcome, Outcome::Reply(_)));
    assert!(t.session(s).is_none());
    // Moving a session that is gone fails.
    let gone = t.apply_from(&txn(s, TxnOp::MoveSession), 3, &mut ev);
    assert_eq!(gone.outcome, Outcome::Error(ErrorCode::SessionExpired));
}

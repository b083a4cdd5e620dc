use crate::frame::*;
use crate::*;
use proptest::prelude::*;

fn all_requests() -> Vec<Request> {
    let acl = Acl::open_unsafe();
    let create = |op: i32, ttl: i64| {
        Request::Create(CreateRequest {
            op,
            path: "/a".into(),
            data: Some(b"x".to_vec()),
            acl: acl.clone(),
            flags: 3,
            ttl,
        })
    };
    vec![
        create(op::CREATE, 0),
        create(op::CREATE2, 0),
        create(op::CREATE_CONTAINER, 0),
        create(op::CREATE_TTL, 500),
        Request::Delete {
            path: "/a".into(),
            version: -1,
        },
        Request::DeleteContainer { path: "/c".into() },
        Request::Exists {
            path: "/a".into(),
            watch: true,
        },
        Request::GetData {
            path: "/a".into(),
            watch: false,
        },
        Request::SetData {
            path: "/a".into(),
            data: None,
            version: 4,
        },
        Request::GetAcl { path: "/a".into() },
        Request::SetAcl {
            path: "/a".into(),
            acl: acl.clone(),
            version: 0,
        },
        Request::GetChildren {
            path: "/".into(),
            watch: true,
            with_stat: false,
        },
        Request::GetChildren {
            path: "/".into(),
            watch: false,
            with_stat: true,
        },
        Request::Sync { path: "/".into() },
        Request::Ping,
        Request::Check {
            path: "/a".into(),
            version: 1,
        },
        Request::Multi(vec![
            create(op::CREATE, 0),
            Request::Check {
                path: "/a".into(),
                version: 1,
            },
            Request::Delete {
                path: "/a".into(),
                version: -1,
            },
        ]),
        Request::MultiRead(vec![
            Request::GetData {
                path: "/a".into(),
                watch: false,
            },
            Request::GetChildren {
                path: "/".into(),
                watch: false,
                with_stat: false,
            },
        ]),
        Request::Reconfig(ReconfigRequest {
            joining: Some("server.4=h:1:2".into()),
            leaving: Some("".into()),
            new_members: None,
            cur_config_id: -1,
        }),
        Request::CheckWatches(WatchesRequest {
            path: "/a".into(),
            watcher_type: 3,
        }),
        Request::RemoveWatches(WatchesRequest {
            path: "/a".into(),
            watcher_type: 1,
        }),
        Request::Auth {
            auth_type: 0,
            scheme: "digest".into(),
            auth: b"u:p".to_vec(),
        },
        Request::SetWatches {
            watches: SetWatches {
                relative_zxid: 9,
                data: vec!["/a".into()],
                exist: vec![],
                child: vec!["/".into()],
                ..Default::default()
            },
            v2: false,
        },
        Request::SetWatches {
            watches: SetWatches {
                relative_zxid: 9,
                data: vec![],
                exist: vec!["/b".into()],
                child: vec![],
                persistent: vec!["/p".into()],
                persistent_recursive: vec!["/r".into()],
            },
            v2: true,
        },
        Request::Sasl {
            token: vec![1, 2, 3],
        },
        Request::GetEphemerals { prefix: "/".into() },
        Request::GetAllChildrenNumber { path: "/".into() },
        Request::AddWatch {
            path: "/".into(),
            mode: 1,
        },
        Request::WhoAmI,
        Request::CloseSession,
    ]
}

#[test]
fn every_request_round_trips() {
    for req in all_requests() {
        let mut w = Vec::new();
        RequestHeader {
            xid: 7,
            op: req.op_code(),
        }
        .encode(&mut w);
        req.encode(&mut w);
        let (h, back) = decode_request(&w).unwrap();
        assert_eq!(h.xid, 7);
        assert_eq!(back, req, "round trip of {:?}", req.op_code());
    }
}

#[test]
fn every_response_round_trips() {
    let stat = Stat {
        czxid: 1,
        mzxid: 2,
        version: 3,
        ..Default::default()
    };
    let cases = vec![
        (op::CREATE, Response::Create("/a".into())),
        (op::CREATE2, Response::Create2("/a".into(), stat)),
        (op::EXISTS, Response::Stat(stat)),
        (op::GET_DATA, Response::GetData(Some(b"d".to_vec()), stat)),
        (op::GET_DATA, Response::GetData(None, stat)),
        (op::GET_ACL, Response::GetAcl(Acl::open_unsafe(), stat)),
        (op::GET_CHILDREN, Response::GetChildren(vec!["x".into()])),
        (
            op::GET_CHILDREN2,
            Response::GetChildren2(vec!["x".into(), "y".into()], stat),
        ),
        (op::SYNC, Response::Sync("/".into())),
        (
            op::MULTI,
            Response::Multi(vec![
                OpResult::Create("/a".into()),
                OpResult::Create2("/b".into(), stat),
                OpResult::Delete,
                OpResult::SetData(stat),
                OpResult::Check,
                OpResult::Error(-101),
            ]),
        ),
        (
            op::MULTI_READ,
            Response::Multi(vec![
                OpResult::GetChildren(vec!["c".into()]),
                OpResult::GetData(Some(vec![9]), stat),
                OpResult::GetData(None, stat),
            ]),
        ),
        (
            op::GET_EPHEMERALS,
            Response::GetEphemerals(vec!["/e".into()]),
        ),
        (op::GET_ALL_CHILDREN_NUMBER, Response::AllChildrenNumber(4)),
        (
            op::WHO_AM_I,
            Response::WhoAmI(vec![ClientInfo {
                auth_scheme: "ip".into(),
                user: "127.0.0.1".into(),
            }]),
        ),
        (op::DELETE, Response::Empty),
    ];
    for (code, resp) in cases {
        let mut w = Vec::new();
        resp.encode(&mut w);
        let mut r = Reader::new(&w);
        assert_eq!(Response::decode(code, &mut r).unwrap(), resp);
        assert_eq!(r.remaining(), 0);
    }
}

#[test]
fn failed_multi_encodes_error_results_like_zookeeper() {
    let resp = Response::Multi(vec![OpResult::Error(0), OpResult::Error(-103)]);
    let mut w = Vec::new();
    resp.encode(&mut w);
    // header(-1,false,0) + err 0, header(-1,false,-103) + err -103, terminator(-1,true,-1)
    let expect: Vec<u8> = [
        &(-1i32).to_be_bytes()[..],
        &[0],
        &0i32.to_be_bytes(),
        &0i32.to_be_bytes(),
        &(-1i32).to_be_bytes(),
        &[0],
        &(-103i32).to_be_bytes(),
        &(-103i32).to_be_bytes(),
        &(-1i32).to_be_bytes(),
        &[1],
        &(-1i32).to_be_bytes(),
    ]
    .concat();
    assert_eq!(w, expect);
}

#[test]
fn unknown_opcode_and_bad_multi_are_errors() {
    let mut w = Vec::new();
    RequestHeader { xid: 1, op: 999 }.encode(&mut w);
    assert_eq!(
        decode_request(&w).unwrap_err(),
        (
            Some(RequestHeader { xid: 1, op: 999 }),
            DecodeError::UnknownOpCode(999)
        )
    );
    let mut w = Vec::new();
    RequestHeader {
        xid: 1,
        op: op::MULTI,
    }
    .encode(&mut w);
    MultiHeader {
        op: op::GET_DATA,
        done: false,
        err: -1,
    }
    .encode(&mut w);
    assert!(matches!(
        decode_request(&w),
        Err((Some(_), DecodeError::BadValue(_)))
    ));
}

#[test]
fn frame_checks() {
    assert_eq!(check_frame(&[0, 0], 100), FrameStatus::Incomplete(4));
    assert_eq!(
        check_frame(&[0, 0, 0, 2, 1], 100),
        FrameStatus::Incomplete(6)
    );
    assert_eq!(
        check_frame(&[0, 0, 0, 2, 1, 2, 3], 100),
        FrameStatus::Ready(2)
    );
    assert_eq!(check_frame(&[0, 0, 1, 0], 100), FrameStatus::TooLarge(256));
    assert_eq!(
        check_frame(&[0xff, 0xff, 0xff, 0xff], 100),
        FrameStatus::TooLarge(-1)
    );
    assert!(is_four_letter_word(b"ruok"));
    assert!(!is_four_letter_word(&[0, 0, 0, 45]));
}

proptest! {
    #[test]
    fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_request(&bytes);
        let _ = decode_connect(&bytes);
        for code in [op::MULTI, op::GET_DATA, op::WHO_AM_I, op::GET_ACL] {
            let _ = Response::decode(code, &mut Reader::new(&bytes));
        }
    }

    #[test]
    fn truncated_requests_are_errors_not_panics(cut in 0usize..64) {
        for req in all_requests() {
            let mut w = Vec::new();
            RequestHeader { xid: 1, op: req.op_code() }.encode(&mut w);
            req.encode(&mut w);
            if cut < w.len() {
                let truncated = &w[..w.len() - cut - 1];
                // Either an error, or (for bodies that end in optional bytes) a shorter request.
                let _ = decode_request(truncated);
            }
        }
    }
}

//! Hostile input against a running server while a well-behaved client keeps working: absurd and
//! negative lengths, oversize packets, truncated and malformed bodies, unknown opcodes, invalid
//! paths, random bytes. Each gets a ZooKeeper error code or a closed connection; the server never
//! stops serving the good client.

mod common;

use common::*;
use concord_jute::codec::{begin_frame, finish_frame, write_i32, write_string};
use concord_jute::{op, ConnectRequest, ErrorCode, Reader, ReplyHeader, RequestHeader};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zookeeper_client::{Acls, CreateMode};

/// A raw connection that has completed the handshake.
async fn raw_session(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut w = Vec::new();
    let at = begin_frame(&mut w);
    ConnectRequest {
        timeout: 10_000,
        passwd: vec![0; 16],
        ..Default::default()
    }
    .encode(&mut w);
    finish_frame(&mut w, at);
    s.write_all(&w).await.unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.unwrap();
    s
}

/// Reads one reply header, or None if the server closed the connection.
async fn read_reply(s: &mut TcpStream) -> Option<ReplyHeader> {
    let mut len = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut len))
        .await
        .expect("server answers or closes within 10 s")
        .ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.ok()?;
    Some(ReplyHeader::decode(&mut Reader::new(&body)).unwrap())
}

/// Waits for the server to close the connection (reading anything it still sends).
async fn expect_closed(s: &mut TcpStream) {
    let mut sink = vec![0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut sink))
            .await
            .expect("server closes within 10 s");
        match n {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn frame(xid: i32, opcode: i32, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut w = Vec::new();
    let at = begin_frame(&mut w);
    RequestHeader { xid, op: opcode }.encode(&mut w);
    body(&mut w);
    finish_frame(&mut w, at);
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_never_hurts_other_clients() {
    let s = start_with(|c| c.jute_max_buffer = 64 * 1024).await;
    let addr = s.handle.addr;

    // A well-behaved client works throughout.
    let good = client(&s).await;
    good.create(
        "/good",
        b"",
        &CreateMode::Persistent.with_acls(Acls::anyone_all()),
    )
    .await
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let worker = {
        let (stop, done) = (stop.clone(), done.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let v = i.to_string();
                good.set_data("/good", v.as_bytes(), None)
                    .await
                    .expect("good client set");
                let (d, _) = good.get_data("/good").await.expect("good client get");
                assert_eq!(d, v.as_bytes());
                i += 1;
                done.store(i, Ordering::Relaxed);
            }
        })
    };

    // 1. Absurd and negative length prefixes, before and after the handshake: closed.
    for prefix in [0x7fff_ffffu32, 0xffff_ffff, 0x8000_0000, 64 * 1024 + 1] {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(&prefix.to_be_bytes()).await.unwrap();
        expect_closed(&mut c).await;
        let mut c = raw_session(addr).await;
        c.write_all(&prefix.to_be_bytes()).await.unwrap();
        expect_closed(&mut c).await;
    }

    // 2. A packet over jute.maxbuffer with a real body: closed.
    let mut c = raw_session(addr).await;
    let big = frame(1, op::SET_DATA, |w| {
        write_string(w, "/good");
        concord_jute::codec::write_buffer(w, &vec![7u8; 70 * 1024]);
        write_i32(w, -1);
    });
    let _ = c.write_all(&big).await;
    expect_closed(&mut c).await;

    // 3. Unknown opcodes: UNIMPLEMENTED, and the connection stays usable.
    let mut c = raw_session(addr).await;
    for (xid, code) in [(1, 999), (2, -77), (3, 50)] {
        c.write_all(&frame(xid, code, |_| {})).await.unwrap();
        let h = read_reply(&mut c).await.expect("reply to unknown opcode");
        assert_eq!((h.xid, h.err), (xid, ErrorCode::Unimplemented.code()));
    }
    // 4. Malformed bodies: MARSHALLINGERROR, connection stays.
    let bad_string = frame(4, op::GET_DATA, |w| write_i32(w, 1_000_000));
    c.write_all(&bad_string).await.unwrap();
    let h = read_reply(&mut c).await.unwrap();
    assert_eq!((h.xid, h.err), (4, ErrorCode::MarshallingError.code()));
    let not_utf8 = frame(5, op::EXISTS, |w| {
        concord_jute::codec::write_buffer(w, &[0xff, 0xfe, b'/']);
        w.push(0);
    });
    c.write_all(&not_utf8).await.unwrap();
    let h = read_reply(&mut c).await.unwrap();
    assert_eq!((h.xid, h.err), (5, ErrorCode::MarshallingError.code()));
    let bad_multi = frame(6, op::MULTI, |w| {
        concord_jute::MultiHeader {
            op: op::GET_DATA,
            done: false,
            err: -1,
        }
        .encode(w)
    });
    c.write_all(&bad_multi).await.unwrap();
    let h = read_reply(&mut c).await.unwrap();
    assert_eq!((h.xid, h.err), (6, ErrorCode::MarshallingError.code()));

    // 5. Invalid paths: BADARGUMENTS for reads and writes.
    for (i, path) in [
        "relative", "/a/", "/a//b", "/a/./b", "/..", "/a\0b", "", "/\u{1}",
    ]
    .into_iter()
    .enumerate()
    {
        let xid = 100 + i as i32 * 2;
        let create = frame(xid, op::CREATE, |w| {
            write_string(w, path);
            concord_jute::codec::write_buffer(w, b"");
            concord_jute::records::write_acl_vec(w, &concord_jute::Acl::open_unsafe());
            write_i32(w, 0);
        });
        c.write_all(&create).await.unwrap();
        let h = read_reply(&mut c).await.unwrap();
        assert_eq!(
            (h.xid, h.err),
            (xid, ErrorCode::BadArguments.code()),
            "create {path:?}"
        );
        let get = frame(xid + 1, op::GET_DATA, |w| {
            write_string(w, path);
            w.push(1);
        });
        c.write_all(&get).await.unwrap();
        let h = read_reply(&mut c).await.unwrap();
        assert_eq!(
            (h.xid, h.err),
            (xid + 1, ErrorCode::BadArguments.code()),
            "get {path:?}"
        );
    }

    // 6. A header cut short: the connection is closed.
    let mut w = Vec::new();
    w.extend_from_slice(&3u32.to_be_bytes());
    w.extend_from_slice(&[0, 0, 1]);
    c.write_all(&w).await.unwrap();
    expect_closed(&mut c).await;

    // 7. A body truncated by the client hanging up mid-frame, a malformed connect request, and
    //    random bytes: closed without harm.
    let mut c = raw_session(addr).await;
    c.write_all(&100u32.to_be_bytes()).await.unwrap();
    c.write_all(&[1, 2, 3]).await.unwrap();
    drop(c);
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(&[0, 0, 0, 3, 0, 0, 0]).await.unwrap();
    expect_closed(&mut c).await;
    let mut seed = 0x1234_5678_9abc_def0u64;
    for _ in 0..50 {
        let mut bytes = vec![0u8; 200];
        for b in bytes.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = seed as u8;
        }
        if let Ok(mut c) = TcpStream::connect(addr).await {
            let _ = c.write_all(&bytes).await;
            drop(c);
        }
    }
    // 8. Unknown four-letter words get nothing and a close.
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"zzzz").await.unwrap();
    expect_closed(&mut c).await;

    // The good client kept going the whole time, and keeps going.
    let before = done.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(done.load(Ordering::Relaxed) > before, "good client stalled");
    stop.store(true, Ordering::Relaxed);
    worker.await.unwrap();
    assert_eq!(four_letter(addr, "ruok").await, "imok");
    s.handle.shutdown().await;
}

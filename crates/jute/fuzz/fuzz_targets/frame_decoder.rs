//! Fuzzes everything the server does with bytes from a client socket before touching state:
//! framing (the length check, under the default and a small limit), the connect request,
//! request headers and every request body, and re-encoding.
//!
//! Properties checked:
//! - `check_frame` never panics and its answer is consistent with the buffer and the limit;
//!   every proper prefix of a ready frame reports `Incomplete`.
//! - `decode_connect` and `decode_request` never panic, on the raw input (no framing gate in
//!   front) and on every frame of the input walked as a connection would.
//! - `decode_request` returns the header with its error exactly when 8 header bytes were there.
//! - Whatever decodes re-encodes to no more bytes than it came from, and decodes back to the
//!   same value.
#![no_main]

use concord_jute::frame::{
    check_frame, decode_connect, decode_request, is_four_letter_word, FrameStatus,
};
use concord_jute::{Reader, Request, RequestHeader, DEFAULT_MAX_BUFFER};
use libfuzzer_sys::fuzz_target;

/// Checks what `check_frame` says about `buf` against what the bytes say.
fn check_frame_consistent(buf: &[u8], max_len: usize) -> FrameStatus {
    let st = check_frame(buf, max_len);
    match st {
        FrameStatus::Incomplete(n) => {
            assert!(n > buf.len(), "Incomplete({n}) with {} bytes", buf.len());
            if buf.len() >= 4 {
                let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                assert!(len >= 0 && len as usize <= max_len);
                assert_eq!(n, 4 + len as usize);
            } else {
                assert_eq!(n, 4);
            }
        }
        FrameStatus::TooLarge(len) => {
            assert!(buf.len() >= 4);
            assert!(
                len < 0 || len as u64 > max_len as u64,
                "TooLarge({len}) under {max_len}"
            );
        }
        FrameStatus::Ready(len) => {
            assert!(len <= max_len);
            assert!(buf.len() >= 4 + len);
            assert_eq!(
                i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as i64,
                len as i64
            );
            // A connection reading byte by byte sees Incomplete until the whole frame is in.
            for cut in [0, 3, 4, 4 + len / 2, 3 + len] {
                if cut < 4 + len {
                    assert!(matches!(
                        check_frame(&buf[..cut], max_len),
                        FrameStatus::Incomplete(_)
                    ));
                }
            }
        }
    }
    st
}

fn check_connect(body: &[u8]) {
    if let Ok(c) = decode_connect(body) {
        let mut w = Vec::new();
        c.encode(&mut w);
        assert!(
            w.len() <= body.len(),
            "connect re-encodes longer than its input"
        );
        let back = decode_connect(&w).expect("re-encoded connect request decodes");
        assert_eq!(back, c);
    }
}

fn check_request(body: &[u8]) {
    match decode_request(body) {
        Ok((h, req)) => {
            assert_eq!(
                h.op,
                req.op_code(),
                "decoded request reports another opcode"
            );
            let mut w = Vec::new();
            h.encode(&mut w);
            req.encode(&mut w);
            assert!(
                w.len() <= body.len(),
                "request re-encodes longer than its input"
            );
            let (h2, back) = decode_request(&w).expect("re-encoded request decodes");
            assert_eq!(h2, h);
            assert_eq!(back, req);
            // The body alone decodes the same way.
            let mut r = Reader::new(&w[8..]);
            assert_eq!(Request::decode(h.op, &mut r).as_ref(), Ok(&req));
            assert_eq!(r.remaining(), 0, "decode left re-encoded bytes unread");
        }
        Err((Some(h), _)) => {
            assert!(body.len() >= 8);
            let mut r = Reader::new(body);
            assert_eq!(RequestHeader::decode(&mut r), Ok(h));
        }
        Err((None, _)) => assert!(body.len() < 8, "header lost with {} bytes", body.len()),
    }
}

fuzz_target!(|data: &[u8]| {
    // No framing in front: every byte pattern reaches both decoders directly.
    check_connect(data);
    check_request(data);
    if data.len() >= 4 {
        let _ = is_four_letter_word(&data[..4]);
    }

    // The length check under a small limit picked by the input, so TooLarge is reachable too.
    if let Some(&b) = data.first() {
        check_frame_consistent(&data[1..], b as usize);
    }

    // Walk the input as a stream of frames, as a connection would: the connect request
    // first, then requests. Each frame also goes through the other decoder.
    let mut buf = data;
    let mut first = true;
    while let FrameStatus::Ready(len) = check_frame_consistent(buf, DEFAULT_MAX_BUFFER) {
        let body = &buf[4..4 + len];
        if first {
            check_connect(body);
            first = false;
        }
        check_request(body);
        buf = &buf[4 + len..];
    }
});

//! Fuzzes everything the server does with bytes from a client socket before touching state:
//! framing, the connect request, request headers and every request body, and re-encoding.
#![no_main]

use concord_jute::frame::{check_frame, decode_connect, decode_request, FrameStatus};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    let mut first = true;
    // Walk the input as a stream of frames, as a connection would.
    while let FrameStatus::Ready(len) = check_frame(buf, 1 << 20) {
        let body = &buf[4..4 + len];
        if first {
            let _ = decode_connect(body);
            first = false;
        } else if let Ok((_, req)) = decode_request(body) {
            // Whatever decodes must re-encode and decode to the same request.
            let mut w = Vec::new();
            req.encode(&mut w);
            let back = concord_jute::Request::decode(req.op_code(), &mut concord_jute::Reader::new(&w))
                .expect("re-encoded request decodes");
            assert_eq!(back, req);
        }
        buf = &buf[4 + len..];
    }
});

//! Length-prefixed framing and whole-packet decoding, shared by the server and the fuzz target.

use crate::codec::Reader;
use crate::records::{ConnectRequest, RequestHeader};
use crate::request::Request;
use crate::DecodeError;

/// What the next frame in a receive buffer looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus {
    /// A whole frame is present: its body starts at byte 4 and is `len` bytes long.
    Ready(usize),
    /// More bytes are needed; at least this many in total.
    Incomplete(usize),
    /// The length prefix is negative or larger than the limit.
    TooLarge(i64),
}

/// Inspects the start of `buf` for a frame of at most `max_len` body bytes.
pub fn check_frame(buf: &[u8], max_len: usize) -> FrameStatus {
    if buf.len() < 4 {
        return FrameStatus::Incomplete(4);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 0 || len as usize > max_len {
        return FrameStatus::TooLarge(len as i64);
    }
    let len = len as usize;
    if buf.len() < 4 + len {
        FrameStatus::Incomplete(4 + len)
    } else {
        FrameStatus::Ready(len)
    }
}

/// Decodes the body of the first packet of a session.
pub fn decode_connect(body: &[u8]) -> Result<ConnectRequest, DecodeError> {
    ConnectRequest::decode(&mut Reader::new(body))
}

/// Decodes the body of a request packet: the header, then the body for its opcode.
///
/// When the header decodes but the body does not, the header is returned with the error so the
/// server can answer that xid.
pub fn decode_request(
    body: &[u8],
) -> Result<(RequestHeader, Request), (Option<RequestHeader>, DecodeError)> {
    let mut r = Reader::new(body);
    let h = RequestHeader::decode(&mut r).map_err(|e| (None, e))?;
    let req = Request::decode(h.op, &mut r).map_err(|e| (Some(h), e))?;
    Ok((h, req))
}

/// Returns true when the first four bytes of a connection spell a four-letter-word command.
pub fn is_four_letter_word(first4: &[u8]) -> bool {
    first4.len() == 4 && first4.iter().all(|b| b.is_ascii_lowercase())
}

//! A minimal ZooKeeper client for the simulation: one request at a time over a turmoil TCP
//! stream, a session that moves between servers, and the last zxid it has seen.

use bytes::{Buf, BytesMut};
use concord_jute::codec::{begin_frame, finish_frame};
use concord_jute::frame::{check_frame, FrameStatus};
use concord_jute::{
    ConnectRequest, ConnectResponse, ReplyHeader, Request, RequestHeader, Response,
};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::TcpStream;

/// Why a call has no answer: its outcome is unknown.
#[derive(Debug)]
pub struct Lost(pub String);

/// A session: its id and password, kept across connections.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// Session id (0 before the first connection).
    pub id: i64,
    /// Session password.
    pub passwd: Vec<u8>,
    /// Highest zxid in any reply this session has had.
    pub last_zxid: i64,
}

/// How a connection attempt ended.
#[derive(Debug)]
pub enum Connected {
    /// Connected, with the session (new or resumed).
    Yes(Conn),
    /// The server said the session has expired.
    Expired,
    /// No connection (refused, closed, or timed out).
    No(String),
}

/// One connection to a server.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    rbuf: BytesMut,
    xid: i32,
}

impl Conn {
    /// Connects to `addr` and creates or resumes `session`, within `timeout`.
    pub async fn connect(
        addr: &str,
        session: &mut Session,
        session_timeout_ms: i32,
        timeout: Duration,
    ) -> Connected {
        match tokio::time::timeout(timeout, Self::handshake(addr, session, session_timeout_ms))
            .await
        {
            Ok(r) => r,
            Err(_) => Connected::No("connect timed out".into()),
        }
    }

    async fn handshake(addr: &str, session: &mut Session, session_timeout_ms: i32) -> Connected {
        let stream = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(e) => return Connected::No(format!("connect: {e}")),
        };
        let mut c = Conn {
            stream,
            rbuf: BytesMut::new(),
            xid: 0,
        };
        let mut w = Vec::new();
        let at = begin_frame(&mut w);
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: session.last_zxid,
            timeout: session_timeout_ms,
            session_id: session.id,
            passwd: if session.id == 0 {
                vec![0; 16]
            } else {
                session.passwd.clone()
            },
            read_only: Some(false),
        }
        .encode(&mut w);
        finish_frame(&mut w, at);
        if let Err(e) = c.stream.write_all(&w).await {
            return Connected::No(format!("send connect: {e}"));
        }
        let body = match c.read_frame().await {
            Ok(b) => b,
            Err(e) => return Connected::No(e.0),
        };
        let resp = match ConnectResponse::decode(&mut concord_jute::Reader::new(&body)) {
            Ok(r) => r,
            Err(e) => return Connected::No(format!("bad connect response: {e}")),
        };
        if resp.timeout <= 0 {
            return Connected::Expired;
        }
        if session.id != 0 && resp.session_id != session.id {
            return Connected::No(format!(
                "asked to resume session {:#x}, got {:#x}",
                session.id, resp.session_id
            ));
        }
        session.id = resp.session_id;
        session.passwd = resp.passwd;
        Connected::Yes(c)
    }

    async fn read_frame(&mut self) -> Result<BytesMut, Lost> {
        loop {
            match check_frame(&self.rbuf, 1 << 20) {
                FrameStatus::Ready(len) => {
                    self.rbuf.advance(4);
                    return Ok(self.rbuf.split_to(len));
                }
                FrameStatus::TooLarge(n) => return Err(Lost(format!("frame of {n} bytes"))),
                FrameStatus::Incomplete(_) => match self.stream.read_buf(&mut self.rbuf).await {
                    Ok(0) => return Err(Lost("closed by the server".into())),
                    Ok(_) => {}
                    Err(e) => return Err(Lost(format!("read: {e}"))),
                },
            }
        }
    }

    /// Sends `req` and waits up to `timeout` for its reply: the reply header and, when the
    /// error code is 0, the decoded body. Watch events are skipped.
    pub async fn call(
        &mut self,
        req: &Request,
        timeout: Duration,
    ) -> Result<(ReplyHeader, Option<Response>), Lost> {
        match tokio::time::timeout(timeout, self.call_inner(req)).await {
            Ok(r) => r,
            Err(_) => Err(Lost("timed out".into())),
        }
    }

    async fn call_inner(&mut self, req: &Request) -> Result<(ReplyHeader, Option<Response>), Lost> {
        self.xid += 1;
        let mut w = Vec::new();
        let at = begin_frame(&mut w);
        RequestHeader {
            xid: self.xid,
            op: req.op_code(),
        }
        .encode(&mut w);
        req.encode(&mut w);
        finish_frame(&mut w, at);
        self.stream
            .write_all(&w)
            .await
            .map_err(|e| Lost(format!("send: {e}")))?;
        loop {
            let body = self.read_frame().await?;
            let mut r = concord_jute::Reader::new(&body);
            let h = ReplyHeader::decode(&mut r).map_err(|e| Lost(format!("bad header: {e}")))?;
            if h.xid == concord_jute::xid::NOTIFICATION {
                continue;
            }
            if h.xid != self.xid {
                return Err(Lost(format!(
                    "reply xid {} for request {}",
                    h.xid, self.xid
                )));
            }
            if h.err != 0 {
                return Ok((h, None));
            }
            let resp = Response::decode(req.op_code(), &mut r)
                .map_err(|e| Lost(format!("bad reply body: {e}")))?;
            return Ok((h, Some(resp)));
        }
    }
}

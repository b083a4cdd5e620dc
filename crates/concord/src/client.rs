//! A minimal ZooKeeper-protocol client: what `concord bench` and `concord admin` need.

use anyhow::{bail, Context};
use bytes::{Buf, BytesMut};
use concord_jute::codec::{begin_frame, finish_frame};
use concord_jute::frame::{check_frame, FrameStatus};
use concord_jute::{
    ConnectRequest, ConnectResponse, ReplyHeader, Request, RequestHeader, Response,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One ZooKeeper session over TCP, sending requests and reading replies in order.
pub struct Client {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    xid: i32,
}

impl Client {
    /// Opens a session at `addr` (host:port).
    pub async fn connect(addr: &str) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut c = Client {
            stream,
            rbuf: BytesMut::with_capacity(1 << 16),
            wbuf: Vec::with_capacity(1 << 16),
            xid: 0,
        };
        let at = begin_frame(&mut c.wbuf);
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout: 30000,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        }
        .encode(&mut c.wbuf);
        finish_frame(&mut c.wbuf, at);
        c.flush().await?;
        let body = c.read_frame().await?;
        let resp = ConnectResponse::decode(&mut concord_jute::Reader::new(&body))?;
        if resp.timeout <= 0 {
            bail!("server refused the session");
        }
        Ok(c)
    }

    /// Appends `req` to the send buffer.
    pub fn queue(&mut self, req: &Request) {
        self.xid += 1;
        let at = begin_frame(&mut self.wbuf);
        RequestHeader {
            xid: self.xid,
            op: req.op_code(),
        }
        .encode(&mut self.wbuf);
        req.encode(&mut self.wbuf);
        finish_frame(&mut self.wbuf, at);
    }

    /// Sends what is buffered.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    async fn read_frame(&mut self) -> anyhow::Result<BytesMut> {
        loop {
            match check_frame(&self.rbuf, 16 << 20) {
                FrameStatus::Ready(len) => {
                    self.rbuf.advance(4);
                    return Ok(self.rbuf.split_to(len));
                }
                FrameStatus::TooLarge(n) => bail!("reply length {n} out of range"),
                FrameStatus::Incomplete(_) => {
                    if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                        bail!("server closed the connection");
                    }
                }
            }
        }
    }

    /// Whether a whole frame is already buffered (so reading it needs no system call).
    pub fn has_frame(&self) -> bool {
        matches!(check_frame(&self.rbuf, 16 << 20), FrameStatus::Ready(_))
    }

    /// Reads the next reply header, skipping watch notifications.
    pub async fn read_reply(&mut self) -> anyhow::Result<ReplyHeader> {
        Ok(self.read_reply_frame().await?.0)
    }

    /// Reads the next reply, skipping watch notifications: its header and the whole frame.
    async fn read_reply_frame(&mut self) -> anyhow::Result<(ReplyHeader, BytesMut)> {
        loop {
            let body = self.read_frame().await?;
            let h = ReplyHeader::decode(&mut concord_jute::Reader::new(&body))?;
            if h.xid != concord_jute::xid::NOTIFICATION {
                return Ok((h, body));
            }
        }
    }

    /// Sends `req` and returns the error code of its reply.
    pub async fn call(&mut self, req: &Request) -> anyhow::Result<i32> {
        self.queue(req);
        self.flush().await?;
        Ok(self.read_reply().await?.err)
    }
}

impl Client {
    /// Sends `req` and waits for its reply: the header and, on success, the decoded body.
    pub async fn request(
        &mut self,
        req: &Request,
    ) -> anyhow::Result<(ReplyHeader, Option<Response>)> {
        self.queue(req);
        self.flush().await?;
        let (h, body) = self.read_reply_frame().await?;
        if h.err != 0 {
            return Ok((h, None));
        }
        let mut r = concord_jute::Reader::new(&body);
        ReplyHeader::decode(&mut r)?;
        let resp = Response::decode(req.op_code(), &mut r)?;
        Ok((h, Some(resp)))
    }
}

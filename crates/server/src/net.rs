//! The network the server runs on: TCP for a real server; a deterministic simulation supplies
//! its own [`Net`] (see the `concord-sim` crate).
//!
//! Streams are handed out as boxed reading and writing halves, so the connection code is the
//! same whichever network carries it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite};

/// A boxed reading half of a stream.
pub type BoxRead = Box<dyn AsyncRead + Unpin + Send>;
/// A boxed writing half of a stream.
pub type BoxWrite = Box<dyn AsyncWrite + Unpin + Send>;
/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A future of a connected stream.
pub type DialFuture = BoxFuture<'static, io::Result<(BoxRead, BoxWrite)>>;
/// An accepted stream and the address it came from.
pub type Accepted = (BoxRead, BoxWrite, SocketAddr);

/// Opens connections to peers.
pub trait Dial: Send + Sync + 'static {
    /// Connects to `addr` (`host:port`).
    fn dial(&self, addr: String) -> DialFuture;
}

/// A bound listening socket.
pub trait Listener: Send + 'static {
    /// Waits for the next connection.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>>;
    /// The address it is bound to.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// Opens connections and binds listeners.
pub trait Net: Dial {
    /// Binds a listener on `addr` (`host:port`).
    fn bind(&self, addr: String) -> BoxFuture<'static, io::Result<Box<dyn Listener>>>;
}

/// tokio's TCP, with Nagle's delay off on every stream.
pub struct TcpNet;

impl Dial for TcpNet {
    fn dial(&self, addr: String) -> DialFuture {
        Box::pin(async move {
            let s = tokio::net::TcpStream::connect(&addr).await?;
            s.set_nodelay(true)?;
            let (r, w) = s.into_split();
            Ok((Box::new(r) as BoxRead, Box::new(w) as BoxWrite))
        })
    }
}

impl Net for TcpNet {
    fn bind(&self, addr: String) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let l = tokio::net::TcpListener::bind(&addr).await?;
            Ok(Box::new(TcpListen(l)) as Box<dyn Listener>)
        })
    }
}

struct TcpListen(tokio::net::TcpListener);

impl Listener for TcpListen {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let (s, addr) = self.0.accept().await?;
            let _ = s.set_nodelay(true);
            let (r, w) = s.into_split();
            Ok((Box::new(r) as BoxRead, Box::new(w) as BoxWrite, addr))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

//! concord's [`Net`] on turmoil's simulated TCP.

use concord_server::net::{
    Accepted, BoxFuture, BoxRead, BoxWrite, Dial, DialFuture, Listener, Net,
};
use std::io;
use std::net::SocketAddr;

/// Dials and listens on turmoil's network.
pub struct SimNet;

impl Dial for SimNet {
    fn dial(&self, addr: String) -> DialFuture {
        Box::pin(async move {
            let s = turmoil::net::TcpStream::connect(addr).await?;
            let (r, w) = s.into_split();
            Ok((Box::new(r) as BoxRead, Box::new(w) as BoxWrite))
        })
    }
}

impl Net for SimNet {
    fn bind(&self, addr: String) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            // A simulated host listens on every address it has: keep only the port.
            let port: u16 = addr
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| io::Error::other(format!("no port in {addr}")))?;
            let l = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
            Ok(Box::new(SimListener(l)) as Box<dyn Listener>)
        })
    }
}

struct SimListener(turmoil::net::TcpListener);

impl Listener for SimListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let (s, addr) = self.0.accept().await?;
            let (r, w) = s.into_split();
            Ok((Box::new(r) as BoxRead, Box::new(w) as BoxWrite, addr))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

//! How long a probe spent opening a connection, when it had to open one. Probes share a pooled
//! client, so whether a probe pays for DNS, TCP and TLS depends on what the pool holds; the
//! time is measured where it happens, in the client's TCP connector and the stream it returns,
//! and credited to the probe whose request asked for the connection (the one being polled on
//! this thread when the connector is called; awc connects inside the request's own future).
//!
//! The connection counts as open when the client first writes after hearing from the server:
//! for plain HTTP, once TCP is connected; for HTTPS, when the client sends its first bytes after
//! the server's handshake flight (its `Finished` and the request, in TLS 1.3; in TLS 1.2 this
//! is one round trip short of the end of the handshake).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_rt::net::{ActixStream, Ready, TcpStream};
use actix_service::Service;
use actix_tls::connect::{ConnectError, ConnectInfo, Connection, ConnectorService};
use awc::http::Uri;
use futures_util::future::LocalBoxFuture;

use crate::proxy::{OpenError, Proxy, ProxyError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Where one probe's connection time is written.
#[derive(Default)]
pub struct ConnectTime(Cell<Option<Duration>>);

impl ConnectTime {
    pub fn get(&self) -> Option<Duration> {
        self.0.get()
    }
}

thread_local! {
    /// The probe whose future is being polled on this thread.
    static CURRENT: RefCell<Option<Rc<ConnectTime>>> = const { RefCell::new(None) };
}

/// Runs `future` as the probe that owns `time`: a connection opened while it is polled is
/// credited to it.
pub async fn credited<F: Future>(time: Rc<ConnectTime>, future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(move |cx| {
        let previous = CURRENT.with(|c| c.replace(Some(time.clone())));
        let result = future.as_mut().poll(cx);
        CURRENT.with(|c| *c.borrow_mut() = previous);
        result
    })
    .await
}

/// awc's TCP connector (DNS and TCP), timed; or, with a proxy, a tunnel through it to the
/// target (the time then includes the proxy's handshake). awc runs TLS over what this returns,
/// for the target's name: end to end through the tunnel.
#[derive(Clone, Default)]
pub struct TimedConnector {
    tcp: ConnectorService,
    proxy: Option<Rc<Proxy>>,
}

impl TimedConnector {
    pub fn new(proxy: Option<Proxy>) -> Self {
        TimedConnector { tcp: ConnectorService::default(), proxy: proxy.map(Rc::new) }
    }
}

/// A proxy's failure as awc carries it: an I/O error holding the [`ProxyError`] (awc panics on
/// some other connect errors, and keeps an I/O error's source).
fn proxy_failure(error: ProxyError) -> ConnectError {
    ConnectError::Io(io::Error::other(error))
}

/// The proxy's failure inside an error awc returned, if that is what it is.
pub fn proxy_error_of(error: &io::Error) -> Option<&ProxyError> {
    error.get_ref().and_then(|inner| inner.downcast_ref::<ProxyError>())
}

impl Service<ConnectInfo<Uri>> for TimedConnector {
    type Response = Connection<Uri, TimedStream>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_service::always_ready!();

    fn call(&self, req: ConnectInfo<Uri>) -> Self::Future {
        let owner = CURRENT.with(|c| c.borrow().clone());
        let tls = req.request().scheme_str() == Some("https");
        let started = Instant::now();
        let (tcp, proxy) = (self.tcp.clone(), self.proxy.clone());
        Box::pin(async move {
            let (stream, uri) = match proxy {
                None => {
                    let (stream, connection) = tcp.call(req).await?.replace_io(());
                    (stream, connection.into_parts().1)
                }
                Some(proxy) => {
                    let (host, port) = (req.hostname().to_owned(), req.port());
                    let stream = crate::proxy::open(&proxy, &host, port).await.map_err(|e| match e {
                        OpenError::Proxy(error) => proxy_failure(error),
                        OpenError::Resolve(error) => ConnectError::Resolver(Box::new(error)),
                    })?;
                    (stream, req.request().clone())
                }
            };
            let mut timed = TimedStream { io: stream, owner, started, heard: false };
            if !tls {
                timed.opened();
            }
            Ok(Connection::new(uri, timed))
        })
    }
}

/// A TCP stream that reports when it has become usable to the probe that opened it.
pub struct TimedStream {
    io: TcpStream,
    /// Until the connection counts as open.
    owner: Option<Rc<ConnectTime>>,
    started: Instant,
    /// The server has sent something (its handshake flight).
    heard: bool,
}

impl TimedStream {
    fn opened(&mut self) {
        if let Some(owner) = self.owner.take() {
            owner.0.set(Some(self.started.elapsed()));
        }
    }
}

impl fmt::Debug for TimedStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimedStream").field("io", &self.io).finish_non_exhaustive()
    }
}

impl AsyncRead for TimedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.heard = true;
        }
        result
    }
}

impl AsyncWrite for TimedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if self.heard && self.owner.is_some() {
            self.opened();
        }
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl ActixStream for TimedStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        ActixStream::poll_read_ready(&self.io, cx)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        ActixStream::poll_write_ready(&self.io, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An HTTPS connection counts as open at the client's first write after the server's
    /// handshake flight; the probe polled when it was opened gets the time, no other.
    #[test]
    fn the_probe_that_opens_a_connection_gets_its_time() {
        actix_rt::System::new().block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = actix_rt::spawn(async move {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut hello = [0u8; 5];
                socket.read_exact(&mut hello).await.unwrap();
                actix_rt::time::sleep(Duration::from_millis(50)).await;
                socket.write_all(b"flight").await.unwrap();
                let mut rest = [0u8; 7];
                socket.read_exact(&mut rest).await.unwrap();
            });
            let time = Rc::new(ConnectTime::default());
            let other = Rc::new(ConnectTime::default());
            let uri: Uri = format!("https://{addr}/").parse().unwrap();
            let mut stream = credited(time.clone(), async {
                TimedConnector::default().call(ConnectInfo::new(uri)).await.unwrap().into_parts().0
            })
            .await;
            credited(other.clone(), async {
                stream.write_all(b"hello").await.unwrap();
                assert_eq!(time.get(), None, "the first flight is not the end of the handshake");
                let mut flight = [0u8; 6];
                stream.read_exact(&mut flight).await.unwrap();
                stream.write_all(b"request").await.unwrap();
            })
            .await;
            server.await.unwrap();
            let took = time.get().expect("the opening probe has its connect time");
            assert!(took >= Duration::from_millis(50), "{took:?}");
            assert_eq!(other.get(), None);
        });
    }

    /// Plain HTTP is open once TCP is.
    #[test]
    fn plain_http_is_open_when_tcp_is() {
        actix_rt::System::new().block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let time = Rc::new(ConnectTime::default());
            let uri: Uri = format!("http://{addr}/").parse().unwrap();
            let _stream =
                credited(time.clone(), async { TimedConnector::default().call(ConnectInfo::new(uri)).await.unwrap() })
                    .await;
            assert!(time.get().is_some());
        });
    }
}

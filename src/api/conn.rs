//! One HTTP connection's I/O, paced so a client cannot make the server hold more than a
//! couple of its requests at a time. actix-http decodes every request it has read (about 7 KB
//! each) and answers them in turn, so a client that pipelines hundreds of requests and never
//! reads the answers made the daemon hold all of them: 100 such connections took 154 MiB, and
//! the allocator kept it afterwards. [`Paced`] hands the server a request head only once the
//! server has written something since the previous one (its answer), and fails a connection
//! whose client has accepted nothing for [`WRITE_STALL`]. What the client sent beyond that waits
//! in the kernel's socket buffer, where it costs the daemon nothing.
//!
//! Only the pace changes, never the bytes: everything read is handed over, in order.
//!
//! [`PeerLimit`] caps the connections one address holds at once, so a single client cannot
//! take every connection slot from the others.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_rt::time::{sleep, Sleep};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A client that has accepted no byte of an answer for this long is dropped.
pub const WRITE_STALL: Duration = Duration::from_secs(10);
/// How much is read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;

pub struct Paced<IO> {
    io: IO,
    /// Read from the socket, not yet handed to the server.
    pending: Vec<u8>,
    start: usize,
    /// The server may take the next request head: it has written since the last one (or none
    /// was handed over yet).
    may_deliver: bool,
    /// The last three bytes handed over, to find a head's end split between two reads.
    tail: [u8; 3],
    stall: Duration,
    /// Armed while a write waits for the client.
    stalled: Option<Pin<Box<Sleep>>>,
    /// This connection's place in its address's count, given back when it closes.
    _peer: Option<PeerGuard>,
}

/// Connections one client address may hold at once; more are closed as they arrive.
pub const MAX_CONNECTIONS_PER_PEER: usize = 128;

/// How many connections each client address holds.
#[derive(Clone)]
pub struct PeerLimit {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max: usize,
}

impl PeerLimit {
    pub fn new(max: usize) -> Self {
        PeerLimit { open: Arc::default(), max }
    }

    /// A place for one more connection from `ip`, or `None` when it holds `max` already.
    pub fn admit(&self, ip: IpAddr) -> Option<PeerGuard> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(PeerGuard { limit: self.clone(), ip })
    }

    /// Addresses with a connection open (the map never outgrows the open connections).
    pub fn addresses(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

pub struct PeerGuard {
    limit: PeerLimit,
    ip: IpAddr,
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        let mut open = self.limit.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl<IO> Paced<IO> {
    pub fn new(io: IO) -> Self {
        Self::with_stall(io, WRITE_STALL)
    }

    pub fn with_stall(io: IO, stall: Duration) -> Self {
        Paced { io, pending: Vec::new(), start: 0, may_deliver: true, tail: [0; 3], stall, stalled: None, _peer: None }
    }

    /// Holds `guard` (its address's place) for as long as the connection lives.
    pub fn holding(mut self, guard: PeerGuard) -> Self {
        self._peer = Some(guard);
        self
    }

    /// Hands over what is pending, up to and including the end of one request head (an empty
    /// line: `\r\n\r\n`, or with bare LFs as HTTP parsers also accept, `\n\n` or `\n\r\n`);
    /// after a head, nothing more until the server writes.
    fn deliver(&mut self, buf: &mut ReadBuf<'_>) {
        let available = &self.pending[self.start..];
        let room = available.len().min(buf.remaining());
        let mut take = room;
        let mut ended_head = false;
        for (i, &byte) in available[..room].iter().enumerate() {
            let [_, before, last] = self.tail;
            let ends = byte == b'\n' && (last == b'\n' || (last == b'\r' && before == b'\n'));
            self.tail = [self.tail[1], self.tail[2], byte];
            if ends {
                take = i + 1;
                ended_head = true;
                break;
            }
        }
        buf.put_slice(&available[..take]);
        self.start += take;
        if self.start == self.pending.len() {
            self.pending.clear();
            self.start = 0;
        }
        if ended_head {
            self.may_deliver = false;
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Paced<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.may_deliver {
            // The server answers when its current request is done, and its write wakes it.
            return Poll::Pending;
        }
        if this.start == this.pending.len() {
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.io).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => this.pending.extend_from_slice(read.filled()),
                other => return other,
            }
        }
        this.deliver(buf);
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Paced<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                this.stalled = None;
                if n > 0 && !this.may_deliver {
                    this.may_deliver = true;
                    // The server may be waiting to read: let it look again.
                    cx.waker().wake_by_ref();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => {
                let stall = this.stall;
                let timer = this.stalled.get_or_insert_with(|| Box::pin(sleep(stall)));
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client has accepted nothing for too long",
                    )));
                }
                Poll::Pending
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_holds_at_most_max_connections() {
        let limit = PeerLimit::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let first = limit.admit(a).expect("first");
        let second = limit.admit(a).expect("second");
        assert!(limit.admit(a).is_none(), "a third from the same address");
        let other = limit.admit(b).expect("another address is not affected");
        drop(first);
        let third = limit.admit(a).expect("a place was given back");
        assert_eq!(limit.addresses(), 2);
        drop((second, third, other));
        assert_eq!(limit.addresses(), 0, "closed addresses are forgotten");
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Two pipelined heads: the second is handed over only after an answer to the first.
    #[test]
    fn one_request_head_until_the_server_answers() {
        actix_rt::System::new().block_on(async {
            let (mut client, server) = tokio::io::duplex(64 * 1024);
            let mut paced = Paced::new(server);
            client.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
            let mut buf = [0u8; 1024];
            let n = paced.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
            // Nothing more until something is written.
            let more = futures_util::FutureExt::now_or_never(paced.read(&mut buf));
            assert!(more.is_none(), "a second head before any answer");
            paced.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
            let n = paced.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
            // A head split across reads still counts as one.
            paced.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
            client.write_all(b"GET /c HTTP/1.1\r\n\r").await.unwrap();
            let n = paced.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"GET /c HTTP/1.1\r\n\r");
            client.write_all(b"\nGET /d").await.unwrap();
            let n = paced.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"\n");
            assert!(futures_util::FutureExt::now_or_never(paced.read(&mut buf)).is_none());
            // Bare LF line endings end a head too.
            paced.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
            client.write_all(b" HTTP/1.1\nHost: x\n\nGET /e HTTP/1.1\n\r\nGET /f").await.unwrap();
            let n = paced.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"GET /d", "what was read before goes first");
            let n = paced.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b" HTTP/1.1\nHost: x\n\n");
            assert!(futures_util::FutureExt::now_or_never(paced.read(&mut buf)).is_none());
            paced.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
            let n = paced.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"GET /e HTTP/1.1\n\r\n");
            drop(client);
        });
    }

    /// A client that reads nothing is dropped once the stall time has passed.
    #[test]
    fn a_client_that_accepts_nothing_is_dropped() {
        actix_rt::System::new().block_on(async {
            let (_client, server) = tokio::io::duplex(1024);
            let mut paced = Paced::with_stall(server, Duration::from_millis(200));
            let started = std::time::Instant::now();
            let error = loop {
                match paced.write(&[b'x'; 512]).await {
                    Ok(_) => continue,
                    Err(e) => break e,
                }
            };
            assert_eq!(error.kind(), io::ErrorKind::TimedOut);
            assert!(started.elapsed() >= Duration::from_millis(200));
        });
    }
}

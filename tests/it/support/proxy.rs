//! Two small proxies served in-process, on std threads: an HTTP one (CONNECT, with Basic auth)
//! and a SOCKS5 one (RFC 1928, with RFC 1929's user and password). Each logs the tunnels it
//! opened (what the client asked for, how it named the target, and the address the proxy's own
//! connection to the target came from) and the handshakes it refused.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;

#[derive(Debug, Clone)]
pub struct Tunnel {
    /// `host:port` as the client asked for it.
    pub target: String,
    /// SOCKS5: how the client sent the target (1 an IPv4 address, 3 a name, 4 an IPv6 address).
    pub address_type: Option<u8>,
    /// The local address of the proxy's connection to the target: what the target sees.
    pub outbound: SocketAddr,
}

pub struct TestProxy {
    pub port: u16,
    tunnels: Arc<Mutex<Vec<Tunnel>>>,
    refused: Arc<Mutex<Vec<String>>>,
}

impl TestProxy {
    pub fn tunnels(&self) -> Vec<Tunnel> {
        self.tunnels.lock().unwrap().clone()
    }

    /// Why each refused handshake was refused (`407`, `auth`).
    pub fn refused(&self) -> Vec<String> {
        self.refused.lock().unwrap().clone()
    }

    /// `scheme://[user:pass@]127.0.0.1:port`.
    pub fn url(&self, scheme: &str, credentials: Option<(&str, &str)>) -> String {
        match credentials {
            Some((user, pass)) => format!("{scheme}://{user}:{pass}@127.0.0.1:{}", self.port),
            None => format!("{scheme}://127.0.0.1:{}", self.port),
        }
    }

    /// Whether a connection from `peer` is one of this proxy's tunnels.
    pub fn opened(&self, peer: SocketAddr) -> bool {
        self.tunnels().iter().any(|t| t.outbound == peer)
    }
}

type Handler = fn(TcpStream, Option<(String, String)>, &Mutex<Vec<Tunnel>>, &Mutex<Vec<String>>) -> Option<()>;

fn serve(credentials: Option<(&str, &str)>, handler: Handler) -> TestProxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tunnels = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(Mutex::new(Vec::new()));
    let credentials = credentials.map(|(u, p)| (u.to_string(), p.to_string()));
    let (log, refusals) = (tunnels.clone(), refused.clone());
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let (log, refusals, credentials) = (log.clone(), refusals.clone(), credentials.clone());
            std::thread::spawn(move || {
                client.set_read_timeout(Some(Duration::from_secs(30))).ok();
                handler(client, credentials, &log, &refusals);
            });
        }
    });
    TestProxy { port, tunnels, refused }
}

/// An HTTP proxy that takes CONNECT only, and with `credentials` requires Basic auth.
pub fn http_connect(credentials: Option<(&str, &str)>) -> TestProxy {
    serve(credentials, handle_connect)
}

/// A SOCKS5 proxy; with `credentials` it requires RFC 1929 user/password auth.
pub fn socks5(credentials: Option<(&str, &str)>) -> TestProxy {
    serve(credentials, handle_socks5)
}

fn handle_connect(
    mut client: TcpStream,
    credentials: Option<(String, String)>,
    log: &Mutex<Vec<Tunnel>>,
    refused: &Mutex<Vec<String>>,
) -> Option<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        client.read_exact(&mut byte).ok()?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?;
    let target = request_line.strip_prefix("CONNECT ")?.split(' ').next()?.to_string();
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, value)| value.trim().to_string());
    if let Some((user, pass)) = &credentials {
        let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")));
        if authorization.as_deref() != Some(expected.as_str()) {
            refused.lock().unwrap().push("407".to_string());
            let _ = client.write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n",
            );
            return None;
        }
    }
    let Ok(upstream) = TcpStream::connect(&target) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return None;
    };
    log.lock().unwrap().push(Tunnel { target, address_type: None, outbound: upstream.local_addr().ok()? });
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").ok()?;
    pipe(client, upstream);
    Some(())
}

fn handle_socks5(
    mut client: TcpStream,
    credentials: Option<(String, String)>,
    log: &Mutex<Vec<Tunnel>>,
    refused: &Mutex<Vec<String>>,
) -> Option<()> {
    let mut greeting = [0u8; 2];
    client.read_exact(&mut greeting).ok()?;
    let mut methods = vec![0u8; greeting[1] as usize];
    client.read_exact(&mut methods).ok()?;
    let method = if credentials.is_some() { 2 } else { 0 };
    if greeting[0] != 5 || !methods.contains(&method) {
        refused.lock().unwrap().push("method".to_string());
        let _ = client.write_all(&[5, 0xff]);
        return None;
    }
    client.write_all(&[5, method]).ok()?;
    if let Some((user, pass)) = &credentials {
        let mut version_and_len = [0u8; 2];
        client.read_exact(&mut version_and_len).ok()?;
        let mut name = vec![0u8; version_and_len[1] as usize];
        client.read_exact(&mut name).ok()?;
        let mut len = [0u8; 1];
        client.read_exact(&mut len).ok()?;
        let mut password = vec![0u8; len[0] as usize];
        client.read_exact(&mut password).ok()?;
        if name != user.as_bytes() || password != pass.as_bytes() {
            refused.lock().unwrap().push("auth".to_string());
            let _ = client.write_all(&[1, 1]);
            return None;
        }
        client.write_all(&[1, 0]).ok()?;
    }
    let mut request = [0u8; 4];
    client.read_exact(&mut request).ok()?;
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).ok()?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        4 => {
            let mut ip = [0u8; 16];
            client.read_exact(&mut ip).ok()?;
            format!("[{}]", std::net::Ipv6Addr::from(ip))
        }
        3 => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len).ok()?;
            let mut name = vec![0u8; len[0] as usize];
            client.read_exact(&mut name).ok()?;
            String::from_utf8(name).ok()?
        }
        _ => return None,
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port).ok()?;
    let target = format!("{host}:{}", u16::from_be_bytes(port));
    let Ok(upstream) = TcpStream::connect(&target) else {
        let _ = client.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]);
        return None;
    };
    log.lock().unwrap().push(Tunnel { target, address_type: Some(request[3]), outbound: upstream.local_addr().ok()? });
    // The bound address, as a real proxy sends it (the client must read it all).
    client.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90]).ok()?;
    pipe(client, upstream);
    Some(())
}

/// Copies both ways until each side has closed.
fn pipe(client: TcpStream, upstream: TcpStream) {
    client.set_read_timeout(None).ok();
    let (mut client_in, mut upstream_out) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let forward = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_in, &mut upstream_out);
        let _ = upstream_out.shutdown(Shutdown::Write);
    });
    let (mut upstream_in, mut client_out) = (upstream, client);
    let _ = std::io::copy(&mut upstream_in, &mut client_out);
    let _ = client_out.shutdown(Shutdown::Write);
    let _ = forward.join();
}

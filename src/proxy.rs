//! Outbound proxies, for probes and alert channels: an HTTP proxy (a CONNECT tunnel, with Basic
//! auth) or a SOCKS5 one (RFC 1928, with RFC 1929's user and password; `socks5h` has the proxy
//! resolve the target's name, `socks5` resolves it here and sends the address). Every target,
//! plain HTTP included, goes through a tunnel, so TLS runs end to end from here to the target.
//!
//! The credentials are secrets: a [`Proxy`] prints without them, and no error quotes the URL.
//! A proxy that fails says how, as the detail of `proxy_error`: the HTTP status it answered
//! the CONNECT with, or the SOCKS stage that failed and the reply code.

use std::fmt;
use std::net::IpAddr;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::secret::Secret;

/// At most this much of a proxy's answer to CONNECT is read, headers included.
const MAX_CONNECT_ANSWER: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Socks5,
    /// SOCKS5 with the name resolved at the proxy.
    Socks5h,
}

impl Scheme {
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Socks5 => "socks5",
            Scheme::Socks5h => "socks5h",
        }
    }
}

/// A parsed proxy URL: `http://[user:pass@]host:port`, `socks5://...`, `socks5h://...`.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    pub scheme: Scheme,
    /// As in the URL: an IPv6 address keeps its brackets.
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<Secret>,
}

/// Without the credentials.
impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proxy({})", self.shown())
    }
}

impl Proxy {
    /// Parses a proxy URL. The errors name what is wrong, never the URL's text (it may hold a
    /// password).
    pub fn parse(text: &str) -> Result<Proxy, String> {
        let (scheme, rest) = text.split_once("://").ok_or("is not a URL (scheme://host:port)")?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "socks5" => Scheme::Socks5,
            "socks5h" => Scheme::Socks5h,
            "https" => return Err("an https:// proxy is not supported: use http:// (the tunnel to the target is still TLS), socks5:// or socks5h://".to_string()),
            _ => return Err("the scheme must be http, socks5 or socks5h".to_string()),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err("a proxy URL has no path, query or fragment".to_string());
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, rest),
        };
        let (host, port) = split_host_port(hostport)?;
        let (user, password) = match userinfo {
            None => (None, None),
            Some(userinfo) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let decode = |part: &str, what: &str| {
                    percent_encoding::percent_decode_str(part)
                        .decode_utf8()
                        .map(|s| s.into_owned())
                        .map_err(|_| format!("the {what} is not valid UTF-8 once percent-decoded"))
                };
                (Some(decode(user, "user name")?), Some(Secret::new(decode(password, "password")?)))
            }
        };
        if matches!(scheme, Scheme::Socks5 | Scheme::Socks5h) {
            if let (Some(user), Some(password)) = (&user, &password) {
                if user.is_empty() || user.len() > 255 || password.expose().is_empty() || password.expose().len() > 255
                {
                    return Err("a SOCKS5 user name and password must each be 1 to 255 bytes".to_string());
                }
            }
        }
        Ok(Proxy { scheme, host, port, user, password })
    }

    /// `scheme://host:port`, without the credentials.
    pub fn shown(&self) -> String {
        format!("{}://{}:{}", self.scheme.name(), self.host, self.port)
    }

    /// `host:port` to connect to.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

fn split_host_port(hostport: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').ok_or("an IPv6 address needs its closing ]")?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("the host in brackets is not an IPv6 address".to_string());
        }
        (format!("[{addr}]"), after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (hostport.to_string(), None),
        }
    };
    let Some(port) = port else {
        return Err("the port is required (host:port)".to_string());
    };
    let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or("the port must be a number from 1 to 65535")?;
    let name_ok = host.starts_with('[')
        || (!host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                // `_` too: container names (`squid_proxy`) have it.
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            }));
    if !name_ok {
        return Err("the host is required: a name or an IP address".to_string());
    }
    Ok((host, port))
}

/// How a proxy failed, as `proxy_error`'s detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyError(pub String);

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProxyError {}

fn closed(stage: &str) -> impl Fn(std::io::Error) -> ProxyError + '_ {
    move |e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            ProxyError(format!("{stage}: the proxy closed the connection"))
        } else {
            ProxyError(format!("{stage}: {e}"))
        }
    }
}

/// Clients kept per proxy setting, the most recently used last: past `cap`, the least recently
/// used is dropped (with its pool), so proxies a reload removed do not stay forever and a
/// busy setting never loses its pool to a rarely used one.
pub struct PerProxy<K, V> {
    entries: Vec<(K, V)>,
    cap: usize,
}

impl<K: PartialEq, V: Clone> PerProxy<K, V> {
    pub const fn new(cap: usize) -> Self {
        PerProxy { entries: Vec::new(), cap }
    }

    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce(&K) -> V) -> V {
        if let Some(at) = self.entries.iter().position(|(k, _)| *k == key) {
            let entry = self.entries.remove(at);
            self.entries.push(entry);
        } else {
            if self.entries.len() >= self.cap.max(1) {
                self.entries.remove(0);
            }
            let value = make(&key);
            self.entries.push((key, value));
        }
        self.entries.last().map(|(_, v)| v.clone()).expect("just pushed")
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Why no tunnel was opened.
#[derive(Debug)]
pub enum OpenError {
    /// The proxy could not be reached, or refused.
    Proxy(ProxyError),
    /// `socks5`: the target's name did not resolve here (no proxy was asked).
    Resolve(std::io::Error),
}

/// Connects to the proxy and opens a tunnel through it to `host:port` (a name, or an address;
/// an IPv6 one may keep its brackets). A proxy that cannot be reached is a proxy failure too.
/// For `socks5`, a name is resolved here first, and each of its addresses is asked for in turn
/// (as a direct connection tries each) until the proxy reaches one.
pub async fn open(proxy: &Proxy, host: &str, port: u16) -> Result<tokio::net::TcpStream, OpenError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let targets: Vec<String> = if proxy.scheme == Scheme::Socks5 && bare.parse::<IpAddr>().is_err() {
        let found: Vec<String> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(OpenError::Resolve)?
            .map(|a| a.ip().to_string())
            .collect();
        if found.is_empty() {
            return Err(OpenError::Resolve(std::io::Error::new(std::io::ErrorKind::NotFound, "no address")));
        }
        found
    } else {
        vec![host.to_string()]
    };
    let mut last = None;
    for target in &targets {
        let mut stream = tokio::net::TcpStream::connect(proxy.address())
            .await
            .map_err(|e| OpenError::Proxy(ProxyError(format!("the proxy is unreachable: {}", io_words(&e)))))?;
        let _ = stream.set_nodelay(true);
        match tunnel(proxy, &mut stream, target, port).await {
            Ok(()) => return Ok(stream),
            // The proxy could not reach this address: the next one, if any.
            Err(error) if error.0.starts_with("connect: ") => last = Some(error),
            Err(error) => return Err(OpenError::Proxy(error)),
        }
    }
    Err(OpenError::Proxy(last.unwrap_or_else(|| ProxyError("connect: no address to ask for".to_string()))))
}

/// An I/O error in words that never name an address.
fn io_words(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_string(),
        ErrorKind::ConnectionReset => "connection reset".to_string(),
        ErrorKind::TimedOut => "timed out".to_string(),
        _ => e.to_string(),
    }
}

/// Opens a tunnel to `host:port` through `proxy` on `stream`, a connection to the proxy. On
/// success the stream carries the target's bytes, and nothing of the proxy's answer.
pub async fn tunnel<S: AsyncRead + AsyncWrite + Unpin>(
    proxy: &Proxy,
    stream: &mut S,
    host: &str,
    port: u16,
) -> Result<(), ProxyError> {
    match proxy.scheme {
        Scheme::Http => http_connect(proxy, stream, host, port).await,
        Scheme::Socks5 | Scheme::Socks5h => socks5_connect(proxy, stream, host, port).await,
    }
}

async fn http_connect<S: AsyncRead + AsyncWrite + Unpin>(
    proxy: &Proxy,
    stream: &mut S,
    host: &str,
    port: u16,
) -> Result<(), ProxyError> {
    let authority = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(user) = &proxy.user {
        let password = proxy.password.as_ref().map(Secret::expose).unwrap_or("");
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.map_err(closed("CONNECT"))?;
    // Byte by byte up to the blank line: what follows it is the target's.
    let mut answer = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() >= MAX_CONNECT_ANSWER {
            return Err(ProxyError(format!("CONNECT: the proxy's answer is longer than {MAX_CONNECT_ANSWER} bytes")));
        }
        stream.read_exact(&mut byte).await.map_err(closed("CONNECT"))?;
        answer.push(byte[0]);
    }
    let status_line = String::from_utf8_lossy(answer.split(|b| *b == b'\n').next().unwrap_or_default());
    let mut parts = status_line.trim_end().splitn(3, ' ');
    let (version, status, reason) =
        (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let status: u16 = match (version.starts_with("HTTP/1."), status.parse()) {
        (true, Ok(status)) => status,
        _ => return Err(ProxyError("CONNECT: the proxy did not answer in HTTP".to_string())),
    };
    if (200..300).contains(&status) {
        return Ok(());
    }
    let reason: String = reason.chars().filter(|c| !c.is_control()).take(100).collect();
    Err(ProxyError(format!("CONNECT: HTTP {status} {reason}").trim_end().to_string()))
}

/// RFC 1928's reply codes.
fn socks_reply(code: u8) -> &'static str {
    match code {
        1 => "general failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown reply",
    }
}

async fn socks5_connect<S: AsyncRead + AsyncWrite + Unpin>(
    proxy: &Proxy,
    stream: &mut S,
    host: &str,
    port: u16,
) -> Result<(), ProxyError> {
    let credentials = proxy.user.as_deref().zip(proxy.password.as_ref().map(Secret::expose));
    // The target: an address as it is; a name sent to the proxy (socks5h) or resolved here.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match bare.parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) if proxy.scheme == Scheme::Socks5 => {
            let mut found = tokio::net::lookup_host((bare, port))
                .await
                .map_err(|e| ProxyError(format!("resolving {bare} for the SOCKS5 proxy: {e}")))?;
            Some(
                found
                    .next()
                    .ok_or_else(|| ProxyError(format!("resolving {bare} for the SOCKS5 proxy: no address")))?
                    .ip(),
            )
        }
        Err(_) => None,
    };
    if ip.is_none() && bare.len() > 255 {
        return Err(ProxyError("connect: the host name is longer than SOCKS5 allows (255 bytes)".to_string()));
    }

    let greeting: &[u8] = if credentials.is_some() { &[5, 2, 0, 2] } else { &[5, 1, 0] };
    stream.write_all(greeting).await.map_err(closed("greeting"))?;
    let mut reply = [0u8; 2];
    stream.read_exact(&mut reply).await.map_err(closed("greeting"))?;
    if reply[0] != 5 {
        return Err(ProxyError("greeting: not a SOCKS5 proxy".to_string()));
    }
    match (reply[1], credentials) {
        (0, _) => {}
        (2, Some((user, password))) => {
            let mut auth = vec![1, user.len() as u8];
            auth.extend_from_slice(user.as_bytes());
            auth.push(password.len() as u8);
            auth.extend_from_slice(password.as_bytes());
            stream.write_all(&auth).await.map_err(closed("auth"))?;
            let mut status = [0u8; 2];
            stream.read_exact(&mut status).await.map_err(closed("auth"))?;
            if status[0] != 1 {
                return Err(ProxyError("auth: not an RFC 1929 reply".to_string()));
            }
            if status[1] != 0 {
                return Err(ProxyError(format!("auth: user name and password refused (status {:#04x})", status[1])));
            }
        }
        (2, None) => return Err(ProxyError("greeting: the proxy requires a user name and password".to_string())),
        (0xff, _) => return Err(ProxyError("greeting: no acceptable authentication method (0xff)".to_string())),
        (other, _) => return Err(ProxyError(format!("greeting: the proxy chose a method not offered ({other:#04x})"))),
    }

    let mut request = vec![5, 1, 0];
    match ip {
        Some(IpAddr::V4(v4)) => {
            request.push(1);
            request.extend_from_slice(&v4.octets());
        }
        Some(IpAddr::V6(v6)) => {
            request.push(4);
            request.extend_from_slice(&v6.octets());
        }
        None => {
            request.push(3);
            request.push(bare.len() as u8);
            request.extend_from_slice(bare.as_bytes());
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    stream.write_all(&request).await.map_err(closed("connect"))?;
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await.map_err(closed("connect"))?;
    if head[0] != 5 {
        return Err(ProxyError("connect: not a SOCKS5 reply".to_string()));
    }
    if head[1] != 0 {
        return Err(ProxyError(format!("connect: {} (reply {:#04x})", socks_reply(head[1]), head[1])));
    }
    // The bound address, read and dropped: what follows is the target's.
    let rest = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut len = [0u8; 1];
            stream.read_exact(&mut len).await.map_err(closed("connect"))?;
            len[0] as usize + 2
        }
        other => return Err(ProxyError(format!("connect: unknown address type in the reply ({other:#04x})"))),
    };
    let mut bound = vec![0u8; rest];
    stream.read_exact(&mut bound).await.map_err(closed("connect"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn per_proxy_keeps_the_most_recently_used() {
        let mut cache = PerProxy::new(2);
        let mut made = 0;
        let mut get = |cache: &mut PerProxy<&str, u32>, key| {
            cache.get_or_insert_with(key, |_| {
                made += 1;
                made
            })
        };
        assert_eq!((get(&mut cache, "a"), get(&mut cache, "b"), get(&mut cache, "a")), (1, 2, 1));
        // "b" is the least recently used: it goes when "c" comes.
        assert_eq!(get(&mut cache, "c"), 3);
        assert_eq!((get(&mut cache, "a"), cache.len()), (1, 2));
        assert_eq!(get(&mut cache, "b"), 4);
    }

    use super::*;
    use tokio::io::duplex;

    #[test]
    fn urls_parse_and_say_what_is_wrong_without_quoting_them() {
        let p = Proxy::parse("socks5h://us%40er:p%3Ass@127.0.0.1:1080").unwrap();
        assert_eq!((p.scheme, p.host.as_str(), p.port), (Scheme::Socks5h, "127.0.0.1", 1080));
        assert_eq!(p.user.as_deref(), Some("us@er"));
        assert_eq!(p.password.as_ref().unwrap().expose(), "p:ss");
        assert_eq!(p.shown(), "socks5h://127.0.0.1:1080");
        assert!(!format!("{p:?}").contains("p:ss") && !format!("{p:?}").contains("us@er"));
        let p = Proxy::parse("http://proxy.internal:3128").unwrap();
        assert_eq!((p.scheme, p.host.as_str(), p.port, p.user.is_none()), (Scheme::Http, "proxy.internal", 3128, true));
        assert_eq!(Proxy::parse("HTTP://[::1]:8080/").unwrap().address(), "[::1]:8080");
        assert_eq!(Proxy::parse("socks5://u:pw@proxy:80").unwrap().port, 80);
        for (bad, why) in [
            ("https://u:secret@proxy:443", "https:// proxy is not supported"),
            ("ftp://u:secret@proxy:21", "scheme must be"),
            ("proxy:3128", "not a URL"),
            ("http://u:secret@proxy", "port is required"),
            ("socks5://u:secret@proxy:0", "port must be"),
            ("socks5://u:secret@proxy:99999", "port must be"),
            ("http://u:secret@:3128", "host is required"),
            ("http://u:secret@pro xy:3128", "host is required"),
            ("http://u:secret@proxy:3128/path", "no path"),
            ("socks5://:secret@proxy:1080", "1 to 255 bytes"),
            ("http://u:secret@[zz]:1", "not an IPv6"),
        ] {
            let e = Proxy::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("secret"), "{bad}: the error quotes the password: {e}");
        }
    }

    /// Runs `tunnel` against a scripted proxy: `script` gets the proxy's end.
    async fn against<F, Fut>(proxy: &str, host: &str, port: u16, script: F) -> Result<(), ProxyError>
    where
        F: FnOnce(tokio::io::DuplexStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (mut ours, theirs) = duplex(64 * 1024);
        let server = tokio::spawn(script(theirs));
        let result = tunnel(&Proxy::parse(proxy).unwrap(), &mut ours, host, port).await;
        if result.is_ok() {
            // The target's first bytes are the stream's, nothing of the proxy's answer.
            let mut first = [0u8; 6];
            ours.read_exact(&mut first).await.unwrap();
            assert_eq!(&first, b"TARGET");
        }
        drop(ours);
        server.await.unwrap();
        result
    }

    async fn read_head(stream: &mut tokio::io::DuplexStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        String::from_utf8(head).unwrap()
    }

    #[actix_rt::test]
    async fn an_http_proxy_is_asked_to_connect_with_basic_auth() {
        let result = against("http://user:pa%20ss@proxy:3128", "api.example.com", 443, |mut s| async move {
            let head = read_head(&mut s).await;
            assert!(
                head.starts_with("CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n"),
                "{head}"
            );
            let token = base64::engine::general_purpose::STANDARD.encode("user:pa ss");
            assert!(head.contains(&format!("Proxy-Authorization: Basic {token}\r\n")), "{head}");
            s.write_all(b"HTTP/1.0 200 Connection established\r\nProxy-Agent: test\r\n\r\nTARGET").await.unwrap();
        })
        .await;
        assert_eq!(result, Ok(()));
        // An IPv6 target is bracketed; no credentials, no header.
        let result = against("http://proxy:3128", "::1", 8080, |mut s| async move {
            let head = read_head(&mut s).await;
            assert!(
                head.starts_with("CONNECT [::1]:8080 HTTP/1.1\r\n") && !head.contains("Proxy-Authorization"),
                "{head}"
            );
            s.write_all(b"HTTP/1.1 200 OK\r\n\r\nTARGET").await.unwrap();
        })
        .await;
        assert_eq!(result, Ok(()));
    }

    #[actix_rt::test]
    async fn an_http_proxy_that_refuses_says_its_status() {
        let result = against("http://user:wrong@proxy:3128", "h", 443, |mut s| async move {
            read_head(&mut s).await;
            s.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\n\r\n")
                .await
                .unwrap();
        })
        .await;
        assert_eq!(result, Err(ProxyError("CONNECT: HTTP 407 Proxy Authentication Required".into())));
        let result = against("http://proxy:3128", "h", 443, |mut s| async move {
            read_head(&mut s).await;
        })
        .await;
        assert_eq!(result, Err(ProxyError("CONNECT: the proxy closed the connection".into())));
        let result = against("http://proxy:3128", "h", 443, |mut s| async move {
            read_head(&mut s).await;
            s.write_all(b"SSH-2.0-OpenSSH\r\n\r\n").await.unwrap();
        })
        .await;
        assert_eq!(result, Err(ProxyError("CONNECT: the proxy did not answer in HTTP".into())));
        // A proxy that never ends its headers is cut off.
        let result = against("http://proxy:3128", "h", 443, |mut s| async move {
            read_head(&mut s).await;
            let _ = s.write_all(&vec![b'a'; MAX_CONNECT_ANSWER + 10]).await;
        })
        .await;
        assert!(result.unwrap_err().0.contains("longer than"));
    }

    #[actix_rt::test]
    async fn socks5h_sends_the_name_with_user_and_password() {
        let result = against("socks5h://user:secret@proxy:1080", "api.example.com", 443, |mut s| async move {
            let mut greeting = [0u8; 4];
            s.read_exact(&mut greeting).await.unwrap();
            assert_eq!(greeting, [5, 2, 0, 2]);
            s.write_all(&[5, 2]).await.unwrap();
            let mut auth = [0u8; 1 + 1 + 4 + 1 + 6];
            s.read_exact(&mut auth).await.unwrap();
            assert_eq!(&auth, b"\x01\x04user\x06secret");
            s.write_all(&[1, 0]).await.unwrap();
            let mut request = [0u8; 4 + 1 + 15 + 2];
            s.read_exact(&mut request).await.unwrap();
            assert_eq!(&request[..5], &[5, 1, 0, 3, 15]);
            assert_eq!(&request[5..20], b"api.example.com");
            assert_eq!(&request[20..], &443u16.to_be_bytes());
            // A bound address given as a name: read to its end.
            s.write_all(&[5, 0, 0, 3, 4]).await.unwrap();
            s.write_all(b"bind\x01\xbbTARGET").await.unwrap();
        })
        .await;
        assert_eq!(result, Ok(()));
    }

    #[actix_rt::test]
    async fn socks5_sends_an_address_and_reports_the_failing_stage() {
        // socks5 resolves here: an address literal is sent as one.
        let result = against("socks5://proxy:1080", "[::1]", 8443, |mut s| async move {
            let mut greeting = [0u8; 3];
            s.read_exact(&mut greeting).await.unwrap();
            assert_eq!(greeting, [5, 1, 0]);
            s.write_all(&[5, 0]).await.unwrap();
            let mut request = [0u8; 4 + 16 + 2];
            s.read_exact(&mut request).await.unwrap();
            assert_eq!(&request[..4], &[5, 1, 0, 4]);
            assert_eq!(request[19], 1);
            s.write_all(&[5, 0, 0, 1, 10, 0, 0, 1, 0x1f, 0x90]).await.unwrap();
            s.write_all(b"TARGET").await.unwrap();
        })
        .await;
        assert_eq!(result, Ok(()));
        let result = against("socks5://localhost:1080", "localhost", 80, |mut s| async move {
            let mut greeting = [0u8; 3];
            s.read_exact(&mut greeting).await.unwrap();
            s.write_all(&[5, 0]).await.unwrap();
            let mut head = [0u8; 4];
            s.read_exact(&mut head).await.unwrap();
            assert!(head[3] == 1 || head[3] == 4, "a resolved name goes as an address: {head:?}");
            let mut rest = vec![0u8; if head[3] == 1 { 6 } else { 18 }];
            s.read_exact(&mut rest).await.unwrap();
            s.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await.unwrap();
        })
        .await;
        assert_eq!(result, Err(ProxyError("connect: connection refused (reply 0x05)".into())));
        let result = against("socks5h://user:wrong@proxy:1080", "h", 443, |mut s| async move {
            let mut greeting = [0u8; 4];
            s.read_exact(&mut greeting).await.unwrap();
            s.write_all(&[5, 2]).await.unwrap();
            let mut auth = [0u8; 1 + 1 + 4 + 1 + 5];
            s.read_exact(&mut auth).await.unwrap();
            s.write_all(&[1, 1]).await.unwrap();
        })
        .await;
        assert_eq!(result, Err(ProxyError("auth: user name and password refused (status 0x01)".into())));
        let result = against("socks5h://proxy:1080", "h", 443, |mut s| async move {
            let mut greeting = [0u8; 3];
            s.read_exact(&mut greeting).await.unwrap();
            s.write_all(&[5, 2]).await.unwrap();
        })
        .await;
        assert_eq!(result, Err(ProxyError("greeting: the proxy requires a user name and password".into())));
        // A bound address that is IPv6 is read whole: the target's first bytes come through.
        let result = against("socks5h://proxy:1080", "h", 443, |mut s| async move {
            let mut greeting = [0u8; 3];
            s.read_exact(&mut greeting).await.unwrap();
            s.write_all(&[5, 0]).await.unwrap();
            let mut request = [0u8; 4 + 1 + 1 + 2];
            s.read_exact(&mut request).await.unwrap();
            let mut reply = vec![5, 0, 0, 4];
            reply.extend_from_slice(&[0xfe; 16]);
            reply.extend_from_slice(&[0x01, 0xbb]);
            s.write_all(&reply).await.unwrap();
            s.write_all(b"TARGET").await.unwrap();
        })
        .await;
        assert_eq!(result, Ok(()));
        let result = against("socks5h://proxy:1080", "h", 443, |mut s| async move {
            let mut greeting = [0u8; 3];
            s.read_exact(&mut greeting).await.unwrap();
            s.write_all(&[5, 0xff]).await.unwrap();
        })
        .await;
        assert_eq!(result, Err(ProxyError("greeting: no acceptable authentication method (0xff)".into())));
        let result = against("socks5h://proxy:1080", "h", 443, |mut s| async move {
            let mut greeting = [0u8; 3];
            s.read_exact(&mut greeting).await.unwrap();
        })
        .await;
        assert_eq!(result, Err(ProxyError("greeting: the proxy closed the connection".into())));
        let result = against("socks5h://proxy:1080", "h", 443, |mut s| async move {
            let mut greeting = [0u8; 3];
            s.read_exact(&mut greeting).await.unwrap();
            s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await.unwrap();
        })
        .await;
        assert_eq!(result, Err(ProxyError("greeting: not a SOCKS5 proxy".into())));
    }
}

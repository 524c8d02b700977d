//! `llm-monitor health`: asks the running daemon's `GET /health` and turns the answer into an
//! exit status, for a container's HEALTHCHECK (the image has no curl). The address is the one the
//! daemon itself listens on: `MONITOR_LISTEN`, else `PORT`, else the config's `listen`, else the
//! default; an address on every interface is asked on the loopback.

use std::path::Path;
use std::time::Duration;

use crate::config;

/// The whole check, connection included, ends within this. Docker's and podman's HEALTHCHECK
/// and the issue give it 5 s; the rest is the process's own start.
pub const DEADLINE: Duration = Duration::from_secs(4);
/// At most this much of the answer's body is read, and printed.
const BODY_LIMIT: usize = 4096;
/// At most this much of it is printed (a container runtime keeps the check's output).
const SHOWN: usize = 300;

/// Where the daemon started with this config and environment listens (as `config::load`
/// decides it), and which setting said so. A config that cannot be read or has no usable
/// `listen` counts as not saying (the daemon may still be running an earlier one): the
/// environment, then the default, decide; `note` says why the file was passed over.
pub struct Address {
    pub listen: String,
    pub source: &'static str,
    pub note: Option<String>,
}

pub fn daemon_address(config_path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Address {
    if let Some((var, listen)) = config::listen_from_env(env) {
        return Address { listen, source: var, note: None };
    }
    match config_listen(config_path) {
        Ok(Some(listen)) => Address { listen, source: "listen", note: None },
        Ok(None) => Address { listen: config::DEFAULT_LISTEN.to_string(), source: "the default", note: None },
        Err(why) => Address {
            listen: config::DEFAULT_LISTEN.to_string(),
            source: "the default",
            note: Some(format!("{}: {why}", config_path.display())),
        },
    }
}

/// The config file's `listen`, read on its own: the rest of the file is the daemon's business.
fn config_listen(path: &Path) -> Result<Option<String>, String> {
    let text = config::read_bounded(path)?;
    let root: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| format!("not YAML ({e})"))?;
    match root.get("listen") {
        None | Some(serde_yaml::Value::Null) => Ok(None),
        Some(serde_yaml::Value::String(listen)) => Ok(Some(listen.clone())),
        Some(_) => Err("`listen` is not a string".to_string()),
    }
}

/// The `host:port` to connect to for a listening address: the unspecified addresses become
/// the loopback of their family. Port 0 (chosen by the system at start) cannot be asked.
pub fn target(listen: &str) -> Result<String, String> {
    let (host, port) = listen.rsplit_once(':').ok_or_else(|| format!("{listen:?} is not HOST:PORT"))?;
    let port: u16 = port.parse().map_err(|_| format!("{listen:?}: the port is not a number"))?;
    if port == 0 {
        return Err(format!("{listen:?}: port 0 is chosen when the daemon starts; set MONITOR_LISTEN to its address"));
    }
    let host = match listen.parse::<std::net::SocketAddr>() {
        Ok(addr) if addr.ip().is_unspecified() && addr.is_ipv4() => "127.0.0.1",
        Ok(addr) if addr.ip().is_unspecified() => "[::1]",
        _ => host,
    };
    Ok(format!("{host}:{port}"))
}

/// GETs `http://{target}/health`: `Ok` with a line to print on a 200, `Err` with the reason
/// otherwise. Never takes longer than [`DEADLINE`].
pub async fn check(target: &str) -> Result<String, String> {
    let url = format!("http://{target}/health");
    // awc's own limits are looser: the deadline below is the one that ends it.
    let client = awc::Client::builder()
        .timeout(DEADLINE * 2)
        .connector(awc::Connector::new().timeout(DEADLINE * 2))
        .disable_redirects()
        .finish();
    let ask = async {
        let mut response = client.get(&url).send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.body().limit(BODY_LIMIT).await.unwrap_or_default();
        Ok::<_, String>((status, body))
    };
    match tokio::time::timeout(DEADLINE, ask).await {
        Err(_) => Err(format!("{url}: no answer within {} s", DEADLINE.as_secs())),
        Ok(Err(e)) => Err(format!("{url}: {e}")),
        Ok(Ok((status, body))) => {
            let shown = shown(&body);
            if status == awc::http::StatusCode::OK {
                Ok(format!("{url}: {status} {shown}"))
            } else {
                Err(format!("{url}: {status} {shown}"))
            }
        }
    }
}

/// The start of a body, on one line.
fn shown(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(SHOWN)]);
    let line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if body.len() > SHOWN {
        format!("{}...", line.trim_end())
    } else {
        line.trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
    }

    fn config(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn the_address_is_the_one_the_daemon_listens_on() {
        let file = config("listen: \"127.0.0.1:9001\"\nmonitors: []\n");
        let path = file.path();
        // The config's `listen`, unless the environment overrides it, as the daemon decides.
        let a = daemon_address(path, &env_of(&[]));
        assert_eq!((a.listen.as_str(), a.source), ("127.0.0.1:9001", "listen"));
        let a = daemon_address(path, &env_of(&[("PORT", "7000")]));
        assert_eq!((a.listen.as_str(), a.source), ("0.0.0.0:7000", "PORT"));
        let a = daemon_address(path, &env_of(&[("PORT", "7000"), ("MONITOR_LISTEN", "[::1]:7100")]));
        assert_eq!((a.listen.as_str(), a.source), ("[::1]:7100", "MONITOR_LISTEN"));
        // Empty variables count as unset, as in the daemon.
        let a = daemon_address(path, &env_of(&[("PORT", ""), ("MONITOR_LISTEN", "")]));
        assert_eq!(a.listen, "127.0.0.1:9001");
        for (var, value) in [("PORT", "7000"), ("MONITOR_LISTEN", "10.1.2.3:7100")] {
            let vars: Vec<(&str, &str)> = vec![(var, value)];
            let env = |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string());
            let daemon = config::load_with_env(path, &env).unwrap();
            assert_eq!(daemon_address(path, &env).listen, daemon.listen, "{var}");
        }
    }

    #[test]
    fn an_unreadable_config_leaves_it_to_the_environment_and_the_default() {
        let missing = Path::new("/nonexistent/llm-monitor/config.yaml");
        let a = daemon_address(missing, &env_of(&[]));
        assert_eq!((a.listen.as_str(), a.source), (config::DEFAULT_LISTEN, "the default"));
        assert!(a.note.unwrap().contains("cannot open"));
        let a = daemon_address(missing, &env_of(&[("PORT", "7000")]));
        assert_eq!(a.listen, "0.0.0.0:7000");
        assert!(a.note.is_none());
        // A file the daemon would refuse still gives its `listen` (an earlier config may be
        // running on it); one without `listen` is the default.
        let file = config("listen: \"127.0.0.1:9002\"\nmonitors: [{provider: x}]\n");
        assert_eq!(daemon_address(file.path(), &env_of(&[])).listen, "127.0.0.1:9002");
        let file = config("monitors: []\n");
        assert_eq!(daemon_address(file.path(), &env_of(&[])).listen, config::DEFAULT_LISTEN);
        let file = config("listen: [1, 2]\n");
        assert!(daemon_address(file.path(), &env_of(&[])).note.unwrap().contains("`listen` is not a string"));
        let file = config("listen: \"a\n");
        assert!(daemon_address(file.path(), &env_of(&[])).note.unwrap().contains("not YAML"));
    }

    #[test]
    fn every_interface_is_asked_on_the_loopback() {
        for (listen, target) in [
            ("0.0.0.0:8080", Ok("127.0.0.1:8080")),
            ("[::]:8080", Ok("[::1]:8080")),
            ("[::0]:8080", Ok("[::1]:8080")),
            ("[0:0::0]:8080", Ok("[::1]:8080")),
            ("0.0.0.0:80", Ok("127.0.0.1:80")),
            ("127.0.0.1:9000", Ok("127.0.0.1:9000")),
            ("10.0.0.5:80", Ok("10.0.0.5:80")),
            ("[::1]:8080", Ok("[::1]:8080")),
            ("localhost:8080", Ok("localhost:8080")),
        ] {
            assert_eq!(
                super::target(listen).as_deref(),
                target.map_err(|e: &str| e.to_string()).as_deref(),
                "{listen}"
            );
        }
        assert!(super::target("127.0.0.1:0").unwrap_err().contains("port 0"));
        assert!(super::target("8080").unwrap_err().contains("HOST:PORT"));
        assert!(super::target("h:x").unwrap_err().contains("not a number"));
    }

    #[test]
    fn a_body_is_shown_on_one_bounded_line() {
        assert_eq!(shown(b"{\"status\":\"ok\"}\n"), "{\"status\":\"ok\"}");
        assert_eq!(shown(b"a\nb\r\nc"), "a b  c");
        let long = vec![b'x'; 1000];
        assert_eq!(shown(&long), format!("{}...", "x".repeat(SHOWN)));
    }
}

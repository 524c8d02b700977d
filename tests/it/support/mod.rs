//! Test helpers: start the real daemon binary on port 0 in a temp dir, talk HTTP to it, send
//! it signals, and poll with deadlines.

pub mod llm;
pub mod pg;
pub mod proxy;
pub mod receiver;
pub mod switchboard;
pub mod upstream;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_llm-monitor");

/// Runs the actix-web server `start` builds (bound to 127.0.0.1:0; it gives its address and
/// the running server) on a thread and System of its own; gives its address and handle.
pub fn serve_on_thread(
    what: &str,
    start: impl FnOnce() -> (std::net::SocketAddr, actix_web::dev::Server) + Send + 'static,
) -> (std::net::SocketAddr, actix_web::dev::ServerHandle) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let (addr, server) = start();
            tx.send((addr, server.handle())).unwrap();
            server.await.unwrap();
        })
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("{what} did not start"))
}

/// Stops a server [`serve_on_thread`] started, without waiting (for `Drop`).
pub fn stop_server(handle: &actix_web::dev::ServerHandle) {
    let handle = handle.clone();
    std::thread::spawn(move || actix_rt::System::new().block_on(handle.stop(false)));
}

/// Polls `f` every 50 ms until it returns `Some`, or panics naming `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub fn http_get(url: &str, headers: &[(&str, &str)]) -> Response {
    let agent = ureq::Agent::new_with_config(
        ureq::config::Config::builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build(),
    );
    let mut request = agent.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let headers =
        response.headers().iter().map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    Response { status, headers, text }
}

/// One request over a fresh connection, exactly as sent (any method), and the response as it
/// came: status, headers, and the raw body bytes (none for HEAD).
pub fn raw_http(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':').map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string())))
        .collect();
    (status, headers, raw[split + 4..].to_vec())
}

/// Whether this run's daemons store in PostgreSQL: `LLM_MONITOR_TEST_BACKEND=postgres` runs
/// the whole suite so (each workspace gets a database of its own on the server that
/// `LLM_MONITOR_TEST_POSTGRES` names, as `.ci/run` sets up).
pub fn on_postgres() -> bool {
    std::env::var("LLM_MONITOR_TEST_BACKEND").is_ok_and(|v| v == "postgres")
}

/// For a test of SQLite itself (its locks, its files): `true`, after saying SKIPPED, when the
/// suite runs on PostgreSQL (where `nodes.rs` tests the same behaviour).
pub fn sqlite_only(test: &str) -> bool {
    if on_postgres() {
        eprintln!("SKIPPED on PostgreSQL {test}: it tests SQLite's own locks or files");
    }
    on_postgres()
}

/// An open connection to a workspace's database, either kind; [`with_store!`] runs the same
/// diesel code on either.
pub enum Store {
    Sqlite(diesel::SqliteConnection),
    Pg(diesel::PgConnection),
}

/// `with_store!(ws, |conn| body)`: `body` with `conn` the workspace's database connection
/// (SQLite or PostgreSQL), compiled for both.
#[macro_export]
macro_rules! with_store {
    ($ws:expr, |$conn:ident| $body:expr) => {
        match $ws.store() {
            $crate::support::Store::Sqlite(mut c) => {
                let $conn = &mut c;
                $body
            }
            $crate::support::Store::Pg(mut c) => {
                let $conn = &mut c;
                $body
            }
        }
    };
}

/// A temp dir holding `config.yaml`, `data/` and the database (or, on PostgreSQL, the URL of
/// a database of its own).
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub database: Option<String>,
}

impl Workspace {
    pub fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let database = on_postgres().then(|| {
            let server = pg::server("the suite on PostgreSQL")
                .expect("LLM_MONITOR_TEST_BACKEND=postgres needs LLM_MONITOR_TEST_POSTGRES or a local PostgreSQL");
            server.database()
        });
        let ws = Workspace { dir, database };
        ws.write_config(config);
        ws
    }

    /// A workspace on SQLite whatever the suite runs on (a test of SQLite's own history).
    pub fn sqlite(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let ws = Workspace { dir, database: None };
        ws.write_config(config);
        ws
    }

    /// The database, as the daemon has it: the SQLite file or the PostgreSQL database.
    pub fn store(&self) -> Store {
        match &self.database {
            Some(url) => {
                let url = llm_monitor::config::PgUrl::parse(url).unwrap();
                Store::Pg(llm_monitor::store::db::open_postgres(&url, "test").unwrap())
            }
            None => Store::Sqlite(llm_monitor::store::db::open(&self.db_path()).unwrap()),
        }
    }

    /// [`Workspace::store`] as a [`llm_monitor::store::sql::Db`] (to prepare history).
    pub fn db(&self) -> llm_monitor::store::sql::Db {
        match self.store() {
            Store::Sqlite(c) => llm_monitor::store::sql::Db::Sqlite(c),
            Store::Pg(c) => llm_monitor::store::sql::Db::Pg(c),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("config.yaml")
    }

    pub fn db_path(&self) -> PathBuf {
        self.path().join("monitor.db")
    }

    /// Writes the config atomically (temp file + rename), as editors do.
    pub fn write_config(&self, config: &str) {
        let database = self.database.clone().unwrap_or_else(|| self.db_path().display().to_string());
        self.write_raw(&format!("listen: \"127.0.0.1:0\"\ndatabase: \"{database}\"\n{config}"));
    }

    /// Writes exactly `text` as the config file, by rename.
    pub fn write_raw(&self, text: &str) {
        let tmp = self.path().join(".config.yaml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, self.config_path()).unwrap();
    }

    /// Writes a file under data/, by rename.
    pub fn write_data(&self, name: &str, text: &str) {
        let tmp = self.path().join("data").join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, self.path().join("data").join(name)).unwrap();
    }

    pub fn start(&self) -> Daemon {
        self.start_with_env(&[])
    }

    pub fn start_with_env(&self, env: &[(&str, &str)]) -> Daemon {
        let mut daemon = Daemon::spawn(self.path(), &self.config_path(), env);
        daemon.wait_listening();
        daemon
    }

    /// Starts the daemon without waiting for it to listen.
    pub fn spawn_with_env(&self, env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn(self.path(), &self.config_path(), env)
    }

    /// Starts the daemon with its limit on open files set to (soft, hard), as a shell's
    /// `ulimit -Sn` / `-Hn` or a unit's `LimitNOFILE=` would.
    pub fn start_with_open_files(&self, soft: u64, hard: u64) -> Daemon {
        let mut daemon = Daemon::spawn_with(self.path(), &self.config_path(), &[], Some((soft, hard)));
        daemon.wait_listening();
        daemon
    }
}

/// Collects a child's piped stderr and stdout, line by line, as they come.
pub fn capture_output(child: &mut Child) -> Arc<Mutex<Vec<String>>> {
    let logs = Arc::new(Mutex::new(Vec::new()));
    for stream in [
        Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stdout.take().unwrap()),
    ] {
        let logs = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                logs.lock().unwrap().push(line);
            }
        });
    }
    logs
}

pub struct Daemon {
    child: Child,
    pub base: String,
    logs: Arc<Mutex<Vec<String>>>,
    exit: Option<ExitStatus>,
}

impl Daemon {
    fn spawn(cwd: &Path, config: &Path, env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn_with(cwd, config, env, None)
    }

    fn spawn_with(cwd: &Path, config: &Path, env: &[(&str, &str)], open_files: Option<(u64, u64)>) -> Daemon {
        let mut command = Command::new(BIN);
        if let Some((soft, hard)) = open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec only setrlimit runs, which is async-signal-safe.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        command
            .arg("--config")
            .arg(config)
            .current_dir(cwd)
            .env("RUST_LOG", "info")
            .env_remove("PORT")
            .env_remove("MONITOR_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("spawn llm-monitor");
        let logs = capture_output(&mut child);
        Daemon { child, base: String::new(), logs, exit: None }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the daemon says where it listens.
    pub fn wait_listening(&mut self) {
        let base = wait_for("the daemon to listen", Duration::from_secs(20), || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("daemon exited early ({status}):\n{}", self.logs());
            }
            self.logs.lock().unwrap().iter().find_map(|l| {
                l.split("listening on ").nth(1).map(|rest| rest.split(',').next().unwrap().trim().to_string())
            })
        });
        self.base = base;
    }

    /// The value of one sample in `/metrics` (the one whose labels include `labels`), if any.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        metric_value(&self.get("/metrics").text, name, labels)
    }

    pub fn get(&self, path_and_query: &str) -> Response {
        http_get(&format!("{}{path_and_query}", self.base), &[])
    }

    pub fn status(&self, query: &str) -> Value {
        let response = self.get(&format!("/api/status{query}"));
        assert_eq!(response.status, 200, "{}", response.text);
        response.json()
    }

    /// The `/api/status` entry of one monitor (by provider and service).
    pub fn monitor(&self, provider: &str, service: &str) -> Value {
        let all = self.status("");
        all["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["provider"] == provider && m["service"] == service)
            .cloned()
            .unwrap_or_else(|| panic!("{provider}/{service} not listed: {all}"))
    }

    /// Waits until the monitor has a current status, and returns it.
    pub fn wait_current(&self, provider: &str, service: &str, timeout: Duration) -> Value {
        wait_for(&format!("a probe of {provider}/{service}"), timeout, || {
            let current = self.monitor(provider, service)["current_status"].clone();
            (!current.is_null()).then_some(current)
        })
    }

    /// `provider/service` of every listed monitor, in order.
    pub fn listed(&self) -> Vec<String> {
        self.status("")["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| format!("{}/{}", m["provider"].as_str().unwrap(), m["service"].as_str().unwrap()))
            .collect()
    }

    pub fn last_reload(&self) -> Value {
        self.get("/health").json()["config"]["last_reload"].clone()
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Waits for the process to exit and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let status = wait_for("the daemon to exit", timeout, || self.child.try_wait().unwrap());
        self.exit = Some(status);
        status
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The value of the first sample of `name` whose labels include `labels`, in Prometheus text.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, label_text) = match series.split_once('{') {
            Some((m, rest)) => (m, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if metric != name {
            return None;
        }
        let all = labels.iter().all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
        all.then(|| value.parse().ok()).flatten()
    })
}

/// Sum of the probe counts over a monitor's timeline.
pub fn probe_count(monitor: &Value) -> i64 {
    monitor["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            b["counts"]["green"].as_i64().unwrap()
                + b["counts"]["yellow"].as_i64().unwrap()
                + b["counts"]["red"].as_i64().unwrap()
        })
        .sum()
}

//! A real PostgreSQL server for tests. `LLM_MONITOR_TEST_POSTGRES` (an admin URL, as `.ci/run`
//! sets it) names a running one; otherwise a test starts its own from Debian's `postgresql`
//! package (`initdb` and `pg_ctl` in a temp dir, as the `postgres` user when run as root, on
//! 127.0.0.1 and a free port) and stops it when done, even when the test fails. Without either,
//! [`server`] prints SKIPPED and gives `None`, unless `LLM_MONITOR_REQUIRE_POSTGRES=1`, which
//! makes that a failure (CI sets it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use diesel::connection::SimpleConnection;
use diesel::Connection;

/// The password tests give PostgreSQL, to look for where it must never appear.
pub const PASSWORD: &str = "pg-Secret-7f3Kq9";

pub struct PgServer {
    /// host:port
    pub address: String,
    admin: String,
    own: Option<OwnServer>,
}

struct OwnServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = pg_command(&self.bin, "pg_ctl", self.as_postgres)
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// A PostgreSQL server, or `None` (after printing SKIPPED) when there is none to be had.
pub fn server(test: &str) -> Option<PgServer> {
    shared_or_own(test, true)
}

/// A server this test starts itself (to stop and start it), whatever `LLM_MONITOR_TEST_POSTGRES`
/// says.
pub fn own_server(test: &str) -> Option<PgServer> {
    shared_or_own(test, false)
}

fn shared_or_own(test: &str, shared: bool) -> Option<PgServer> {
    if let Some(admin) = std::env::var("LLM_MONITOR_TEST_POSTGRES").ok().filter(|v| shared && !v.is_empty()) {
        let url = url::Url::parse(&admin).expect("LLM_MONITOR_TEST_POSTGRES is a URL");
        let address = format!("{}:{}", url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(5432));
        return Some(PgServer { address, admin, own: None });
    }
    match start_own() {
        Ok(server) => Some(server),
        Err(why) => {
            if std::env::var("LLM_MONITOR_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("{test}: PostgreSQL is required (LLM_MONITOR_REQUIRE_POSTGRES=1) but {why}");
            }
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}

fn find_bin() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").is_file() && p.join("pg_ctl").is_file())
        .collect();
    candidates.sort();
    candidates.pop()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn pg_command(bin: &Path, name: &str, as_postgres: bool) -> Command {
    if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(bin.join(name));
        command
    } else {
        Command::new(bin.join(name))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_own() -> Result<PgServer, String> {
    let bin = find_bin().ok_or("no PostgreSQL server here (Debian's postgresql package is not installed)")?;
    let as_postgres = is_root();
    // Under /tmp, enterable by the postgres user (a root-only TMPDIR is not).
    let dir = tempfile::Builder::new().prefix("llm-monitor-pg").tempdir_in("/tmp").map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    std::fs::create_dir(&data).map_err(|e| e.to_string())?;
    let pwfile = dir.path().join("pw");
    std::fs::write(&pwfile, PASSWORD).map_err(|e| e.to_string())?;
    if as_postgres {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        let status = Command::new("chown").arg("-R").arg("postgres:postgres").arg(dir.path()).status();
        if !status.is_ok_and(|s| s.success()) {
            return Err("cannot hand the data directory to the postgres user".to_string());
        }
    }
    let init = pg_command(&bin, "initdb", as_postgres)
        .arg("-D")
        .arg(&data)
        .args(["-U", "monitor", "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync"])
        .arg(format!("--pwfile={}", pwfile.display()))
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !init.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&init.stderr)));
    }
    let port = free_port();
    let own = OwnServer { dir, bin: bin.clone(), as_postgres };
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
        own.dir.path().display()
    );
    let start = pg_command(&bin, "pg_ctl", as_postgres)
        .arg("-D")
        .arg(&data)
        .args(["-o", &options, "-l"])
        .arg(own.dir.path().join("log"))
        .args(["-w", "start"])
        .output()
        .map_err(|e| format!("pg_ctl: {e}"))?;
    if !start.status.success() {
        let log = std::fs::read_to_string(own.dir.path().join("log")).unwrap_or_default();
        return Err(format!("pg_ctl start failed: {}{log}", String::from_utf8_lossy(&start.stderr)));
    }
    let address = format!("127.0.0.1:{port}");
    let admin = format!("postgres://monitor:{PASSWORD}@{address}/postgres");
    Ok(PgServer { address, admin, own: Some(own) })
}

static DATABASES: AtomicU32 = AtomicU32::new(0);

impl PgServer {
    /// A new empty database; its URL (with the password).
    pub fn database(&self) -> String {
        let name =
            format!("t_{}_{}_{}", std::process::id(), DATABASES.fetch_add(1, Ordering::Relaxed), fastrand::u32(..));
        let mut admin = diesel::PgConnection::establish(&self.admin).expect("connect to PostgreSQL as admin");
        admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("create a test database");
        let mut url = url::Url::parse(&self.admin).unwrap();
        url.set_path(&name);
        url.to_string()
    }

    /// The data directory of a server started here (None for the shared one).
    #[allow(dead_code)] // bench/nodes.rs reads the postmaster's pid there
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.own.as_ref().map(|own| own.dir.path().join("data"))
    }

    /// Stops the server (`pg_ctl stop -m fast`): an outage, until [`PgServer::restart`].
    pub fn stop(&self) {
        let own = self.own.as_ref().expect("only a server the test started itself is stopped");
        let stopped = pg_command(&own.bin, "pg_ctl", own.as_postgres)
            .arg("-D")
            .arg(own.dir.path().join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(stopped, "pg_ctl stop");
    }

    /// Starts the stopped server again, on the same port.
    pub fn restart(&self) {
        let own = self.own.as_ref().expect("only a server the test started itself is restarted");
        let port = self.address.rsplit(':').next().unwrap();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off",
            own.dir.path().display()
        );
        let started = pg_command(&own.bin, "pg_ctl", own.as_postgres)
            .arg("-D")
            .arg(own.dir.path().join("data"))
            .args(["-o", &options, "-l"])
            .arg(own.dir.path().join("log"))
            .args(["-w", "start"])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(started, "pg_ctl start");
    }

    /// The number of rows of `SELECT count(*) ...` on the database at `url`.
    pub fn count(url: &str, table_and_filter: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = diesel::PgConnection::establish(url).expect("connect to PostgreSQL");
        let rows: Vec<Count> = diesel::RunQueryDsl::load(
            diesel::sql_query(format!("SELECT count(*) AS n FROM {table_and_filter}")),
            &mut conn,
        )
        .expect("count");
        rows[0].n
    }
}

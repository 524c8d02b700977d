//! The Debian package, installed on this machine with dpkg, run as systemd would run it, upgraded
//! and purged. It changes the machine (a system user, files under /usr and /etc) until the purge
//! at its end, so it runs only when asked: `LLM_MONITOR_TEST_DEB` names the .deb that
//! `bash debian/build` made (CI sets it); otherwise SKIPPED. Needs root and dpkg.
//!
//! The "minimal runner" stands in for systemd, which does not run here: it reads the installed
//! unit's User=, Group=, WorkingDirectory=, EnvironmentFile=, Environment= and ExecStart=, gives
//! the daemon a NOTIFY_SOCKET and waits for its READY=1. The unit's sandboxing is checked by
//! `systemd-analyze verify`, not applied.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{capture_output, http_get, on_postgres, probe_count, upstream, wait_for};

const PACKAGE: &str = "llm-monitor";

fn sh(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

fn ok(program: &str, args: &[&str]) -> String {
    let (success, text) = sh(program, args);
    assert!(success, "{program} {args:?}:\n{text}");
    text
}

/// (uid, gid, home, shell) of a user, or None.
fn user(name: &str) -> Option<(u32, u32, String, String)> {
    let (found, line) = sh("getent", &["passwd", name]);
    if !found {
        return None;
    }
    let f: Vec<&str> = line.trim().split(':').collect();
    Some((f[2].parse().unwrap(), f[3].parse().unwrap(), f[5].to_string(), f[6].to_string()))
}

fn group_name(gid: u32) -> String {
    ok("getent", &["group", &gid.to_string()]).split(':').next().unwrap().to_string()
}

fn user_name(uid: u32) -> String {
    ok("getent", &["passwd", &uid.to_string()]).split(':').next().unwrap().to_string()
}

/// (mode, owner, group) of a path.
fn stat(path: &str) -> (u32, String, String) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    (meta.permissions().mode() & 0o7777, user_name(meta.uid()), group_name(meta.gid()))
}

/// Everything that says what is on the machine, to compare before and after.
fn machine() -> (BTreeSet<String>, BTreeSet<String>, String) {
    let lines = |db: &str| ok("getent", &[db]).lines().map(str::to_string).collect();
    (lines("passwd"), lines("group"), sh("dpkg-statoverride", &["--list"]).1)
}

/// Purges the package however the test ends.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let (_, text) = sh("dpkg", &["--purge", PACKAGE]);
        if std::thread::panicking() {
            eprintln!("purged after the failure: {text}");
        }
    }
}

/// The [Service] settings the runner uses, from the installed unit.
struct Unit {
    user: String,
    group: String,
    working_directory: PathBuf,
    environment_files: Vec<PathBuf>,
    environment: Vec<(String, String)>,
    exec_start: Vec<String>,
}

impl Unit {
    fn read(path: &Path) -> Unit {
        let text = std::fs::read_to_string(path).unwrap();
        let values = |key: &str| -> Vec<String> {
            text.lines().filter_map(|l| l.strip_prefix(&format!("{key}="))).map(str::to_string).collect()
        };
        let one = |key: &str| values(key).pop().unwrap_or_else(|| panic!("no {key}= in {}", path.display()));
        Unit {
            user: one("User"),
            group: one("Group"),
            working_directory: PathBuf::from(one("WorkingDirectory")),
            environment_files: values("EnvironmentFile")
                .iter()
                .map(|f| PathBuf::from(f.trim_start_matches('-')))
                .collect(),
            environment: values("Environment")
                .iter()
                .filter_map(|v| v.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                .collect(),
            exec_start: one("ExecStart").split_whitespace().map(str::to_string).collect(),
        }
    }

    /// Starts ExecStart as the unit's user, in its working directory, with its environment and
    /// a notify socket; returns once the daemon said READY=1.
    fn start(&self) -> Runner {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket_path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&socket_path).unwrap();
        std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o777)).unwrap();
        let (uid, _, _, _) = user(&self.user).unwrap();
        let gid: u32 = ok("getent", &["group", &self.group]).split(':').nth(2).unwrap().parse().unwrap();
        let mut command = Command::new(&self.exec_start[0]);
        command
            .args(&self.exec_start[1..])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("NOTIFY_SOCKET", &socket_path)
            .current_dir(&self.working_directory)
            .uid(uid)
            .gid(gid)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for file in &self.environment_files {
            let Ok(text) = std::fs::read_to_string(file) else { continue };
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
                if let Some((key, value)) = line.split_once('=') {
                    command.env(key, value);
                }
            }
        }
        for (key, value) in &self.environment {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let logs = capture_output(&mut child);
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 4096];
        loop {
            assert!(Instant::now() < deadline, "no READY=1 within 30 s:\n{}", logs.lock().unwrap().join("\n"));
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the daemon exited ({status}):\n{}", logs.lock().unwrap().join("\n"));
            }
            if let Ok(n) = socket.recv(&mut buf) {
                if String::from_utf8_lossy(&buf[..n]).lines().any(|l| l == "READY=1") {
                    break;
                }
            }
        }
        Runner { child, logs, _dir: dir }
    }
}

struct Runner {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Runner {
    fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// systemd's stop: SIGTERM, then wait.
    fn stop(mut self) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM)
            .unwrap();
        let status = wait_for("the daemon to exit", Duration::from_secs(30), || self.child.try_wait().unwrap());
        assert!(status.success(), "exit {status}:\n{}", self.logs());
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stored_probes() -> usize {
    use diesel::prelude::*;
    use llm_monitor::store::schema::probes::dsl::*;
    let mut db = llm_monitor::store::db::open(Path::new("/var/lib/llm-monitor/monitor.db")).unwrap();
    let count: i64 = probes.count().get_result(&mut db).unwrap();
    count as usize
}

/// The package with its version raised and its example config changed, as the next release
/// would be.
fn next_version(deb: &Path, dir: &Path) -> (PathBuf, String) {
    let tree = dir.join("tree");
    ok("dpkg-deb", &["-R", deb.to_str().unwrap(), tree.to_str().unwrap()]);
    let example = tree.join("etc/llm-monitor/config.yaml");
    let mut text = std::fs::read_to_string(&example).unwrap();
    text.push_str("# a line the next release added\n");
    std::fs::write(&example, text).unwrap();
    let sums = ok("sh", &["-c", &format!("cd {} && find etc usr -type f | sort | xargs md5sum", tree.display())]);
    std::fs::write(tree.join("DEBIAN/md5sums"), sums).unwrap();
    let control_path = tree.join("DEBIAN/control");
    let control = std::fs::read_to_string(&control_path).unwrap();
    let version = control.lines().find_map(|l| l.strip_prefix("Version: ")).unwrap().to_string();
    let next = format!("{version}+upgrade1");
    std::fs::write(&control_path, control.replace(&format!("Version: {version}"), &format!("Version: {next}")))
        .unwrap();
    let out = dir.join("next.deb");
    ok("dpkg-deb", &["-b", tree.to_str().unwrap(), out.to_str().unwrap()]);
    (out, next)
}

#[test]
fn the_debian_package_installs_runs_as_its_user_upgrades_and_purges_cleanly() {
    let Some(deb) = std::env::var_os("LLM_MONITOR_TEST_DEB").map(PathBuf::from) else {
        println!(
            "SKIPPED: set LLM_MONITOR_TEST_DEB to the .deb `bash debian/build` made (it installs and purges it on this machine)"
        );
        return;
    };
    if on_postgres() {
        println!("SKIPPED on PostgreSQL: the package's own SQLite state is what it tests");
        return;
    }
    assert!(deb.is_file(), "LLM_MONITOR_TEST_DEB={}: no such file", deb.display());
    assert_eq!(unsafe { libc::geteuid() }, 0, "installing a package needs root");
    let (installed, _) = sh("dpkg-query", &["-W", "-f", "${Status}", PACKAGE]);
    assert!(!installed && user(PACKAGE).is_none(), "{PACKAGE} is already on this machine: this test would replace it");
    assert!(!Path::new("/var/lib/llm-monitor").exists() && !Path::new("/etc/llm-monitor").exists());
    let before = machine();

    let _purge = Purge;
    ok("dpkg", &["-i", deb.to_str().unwrap()]);

    // The user, system-wide and unable to log in.
    let (uid, _, home, shell) = user(PACKAGE).expect("the llm-monitor user");
    assert!(uid < 1000, "a system user: uid {uid}");
    assert_eq!((home.as_str(), shell.as_str()), ("/var/lib/llm-monitor", "/usr/sbin/nologin"));
    // The files, their modes and owners.
    let unit_path = ["/usr/lib/systemd/system/llm-monitor.service", "/lib/systemd/system/llm-monitor.service"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("the unit is installed");
    let root = || "root".to_string();
    let ours = || PACKAGE.to_string();
    for (path, mode, owner, group) in [
        ("/usr/bin/llm-monitor", 0o755, root(), root()),
        ("/etc/llm-monitor/config.yaml", 0o640, root(), ours()),
        ("/etc/llm-monitor/env", 0o640, root(), ours()),
        ("/etc/llm-monitor/data/openai_chat.json", 0o644, root(), root()),
        ("/usr/share/doc/llm-monitor/README.md", 0o644, root(), root()),
        ("/usr/share/bash-completion/completions/llm-monitor", 0o644, root(), root()),
        ("/usr/share/zsh/vendor-completions/_llm-monitor", 0o644, root(), root()),
        ("/usr/share/fish/vendor_completions.d/llm-monitor.fish", 0o644, root(), root()),
        ("/usr/share/man/man1/llm-monitor.1.gz", 0o644, root(), root()),
        (unit_path, 0o644, root(), root()),
        ("/var/lib/llm-monitor", 0o750, ours(), ours()),
    ] {
        assert_eq!(stat(path), (mode, owner, group), "{path}");
    }
    let conffiles = std::fs::read_to_string("/var/lib/dpkg/info/llm-monitor.conffiles").unwrap();
    for conffile in ["/etc/llm-monitor/config.yaml", "/etc/llm-monitor/env"] {
        assert!(conffiles.lines().any(|l| l == conffile), "{conffile} is not a conffile:\n{conffiles}");
    }
    let man = ok("sh", &["-c", "gzip -dc /usr/share/man/man1/llm-monitor.1.gz"]);
    assert!(man.contains(".TH llm-monitor 1") && man.contains("health"), "{man}");
    // The pages it refers to are there too.
    for sub in ["check", "health", "alert-test", "migrate-store", "completions", "manpage"] {
        let page = format!("/usr/share/man/man1/llm-monitor-{sub}.1.gz");
        assert_eq!(stat(&page), (0o644, root(), root()), "{page}");
    }
    let completion =
        ok("bash", &["-c", "source /usr/share/bash-completion/completions/llm-monitor && complete -p llm-monitor"]);
    assert!(completion.contains("llm-monitor"), "{completion}");
    assert!(ok("/usr/bin/llm-monitor", &["--version"]).starts_with("llm-monitor "));
    // The unit as installed: what it documents is there, and systemd accepts it.
    let unit_text = std::fs::read_to_string(unit_path).unwrap();
    let doc = unit_text.lines().find_map(|l| l.strip_prefix("Documentation=file://")).unwrap();
    assert!(Path::new(doc).is_file(), "Documentation={doc} is not installed");
    let (verified, text) = sh("systemd-analyze", &["verify", unit_path]);
    assert!(verified && !text.contains("llm-monitor.service:"), "systemd-analyze verify {unit_path}:\n{text}");
    // The packaged config is valid, read as the daemon's user.
    let check = ok(
        "runuser",
        &["-u", PACKAGE, "--", "/usr/bin/llm-monitor", "check", "--config", "/etc/llm-monitor/config.yaml"],
    );
    assert!(check.contains(": OK"), "{check}");

    // Edited to a local monitor, with its key in the env file, as an operator would.
    let up = upstream::start();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = format!(
        "listen: \"127.0.0.1:{port}\"\nmonitors:\n  - {{provider: pkg, service: s, url: \"{}/ok\", method: GET, interval: 1s, \
         headers: {{Authorization: \"Bearer {{{{API_KEY}}}}\"}}}}\n",
        up.base
    );
    std::fs::write("/etc/llm-monitor/config.yaml", &config).unwrap();
    let mut env = std::fs::read_to_string("/etc/llm-monitor/env").unwrap();
    env.push_str("MONITOR_PKG_S_API_KEY=sk-from-etc-env\n");
    std::fs::write("/etc/llm-monitor/env", &env).unwrap();

    let unit = Unit::read(Path::new(unit_path));
    assert_eq!(unit.exec_start[0], "/usr/bin/llm-monitor");
    let base = format!("http://127.0.0.1:{port}");
    let runner = unit.start();
    let status = std::fs::read_to_string(format!("/proc/{}/status", runner.child.id())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid_line.split_whitespace().skip(1).all(|u| u == uid.to_string()), "{uid_line}");
    let probes_seen = wait_for("two probes of the local monitor", Duration::from_secs(20), || {
        let monitor = http_get(&format!("{base}/api/status"), &[]).json()["data"][0].clone();
        (probe_count(&monitor) >= 2).then(|| probe_count(&monitor))
    });
    assert_eq!(up.log.for_path("/ok")[0].header("authorization"), Some("Bearer sk-from-etc-env"));
    runner.stop();
    let stored = stored_probes();
    assert!(stored as i64 >= probes_seen, "{stored} stored, {probes_seen} seen");
    assert_eq!(stat("/var/lib/llm-monitor/monitor.db").1, PACKAGE);

    // An upgrade keeps the edited config (whose packaged version changed: an unattended
    // upgrade keeps the old one, and puts the new one beside it), the env file (unchanged in
    // the package: kept without asking), their modes, and the database.
    let dir = tempfile::tempdir().unwrap();
    let (next, version) = next_version(&deb, dir.path());
    ok("dpkg", &["-i", "--force-confdef", "--force-confold", next.to_str().unwrap()]);
    assert_eq!(ok("dpkg-query", &["-W", "-f", "${Version}", PACKAGE]), version);
    assert_eq!(std::fs::read_to_string("/etc/llm-monitor/config.yaml").unwrap(), config);
    assert!(std::fs::read_to_string("/etc/llm-monitor/config.yaml.dpkg-dist").unwrap().ends_with("added\n"));
    assert_eq!(std::fs::read_to_string("/etc/llm-monitor/env").unwrap(), env);
    assert!(!Path::new("/etc/llm-monitor/env.dpkg-dist").exists());
    for path in ["/etc/llm-monitor/config.yaml", "/etc/llm-monitor/env"] {
        assert_eq!(stat(path), (0o640, root(), ours()), "{path} after the upgrade");
    }
    assert_eq!(stored_probes(), stored, "the database after the upgrade");
    let runner = unit.start();
    wait_for("the history from before the upgrade, and a new probe", Duration::from_secs(20), || {
        let monitor = http_get(&format!("{base}/api/status"), &[]).json()["data"][0].clone();
        (probe_count(&monitor) > stored as i64).then_some(())
    });
    runner.stop();
    let stored = stored_probes();

    // A removal keeps the config, the state and the user; a purge takes them, and the
    // overrides, with it.
    ok("dpkg", &["-r", PACKAGE]);
    assert!(!Path::new("/usr/bin/llm-monitor").exists());
    assert_eq!(std::fs::read_to_string("/etc/llm-monitor/config.yaml").unwrap(), config);
    assert_eq!(stored_probes(), stored, "the database after a removal");
    assert!(user(PACKAGE).is_some());
    ok("dpkg", &["--purge", PACKAGE]);
    assert!(user(PACKAGE).is_none(), "the user is still there");
    assert!(!sh("getent", &["group", PACKAGE]).0, "the group is still there");
    for path in ["/var/lib/llm-monitor", "/etc/llm-monitor", "/usr/bin/llm-monitor", unit_path] {
        assert!(!Path::new(path).exists(), "{path} is still there");
    }
    assert_eq!(machine(), before, "the machine is not as it was");
}

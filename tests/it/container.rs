//! The container image, built and run with podman (there is no Docker engine on these
//! machines): the Dockerfile's runtime stage around the binary under test, run with a config
//! and an env file against a fake upstream. SKIPPED without podman (as root) unless
//! `LLM_MONITOR_REQUIRE_PODMAN` is set, as CI does.
//!
//! podman here needs runc, cgroupfs and no default ulimits (a containers.conf of its own),
//! and host networking; base images cannot be pulled, so `debian:bookworm-slim` is made from
//! Debian's packages with debootstrap (once: it stays in podman's image store).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{http_get, on_postgres, upstream, wait_for, BIN};

/// The name the runtime stage's FROM uses.
const BASE: &str = "docker.io/library/debian:bookworm-slim";
const CONTAINERS_CONF: &str =
    "[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\nruntime = \"runc\"\n";

struct Podman {
    conf: tempfile::NamedTempFile,
}

impl Podman {
    fn find() -> Option<Podman> {
        let required = std::env::var_os("LLM_MONITOR_REQUIRE_PODMAN").is_some();
        let root = unsafe { libc::geteuid() } == 0;
        let found = Command::new("podman").arg("--version").output().is_ok_and(|o| o.status.success());
        if !(found && root) {
            let why = if found {
                "podman needs root here"
            } else {
                "podman not installed (apt-get install podman runc debootstrap)"
            };
            assert!(!required, "LLM_MONITOR_REQUIRE_PODMAN is set but {why}");
            println!("SKIPPED: {why}");
            return None;
        }
        let conf = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(conf.path(), CONTAINERS_CONF).unwrap();
        Some(Podman { conf })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("podman");
        command.env("CONTAINERS_CONF", self.conf.path()).args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Runs podman and insists on success; gives stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `debian:bookworm-slim`, made with debootstrap when podman's store lacks it.
    fn base_image(&self) {
        if self.run(&["image", "exists", BASE]).status.success() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        let started = Instant::now();
        let out = Command::new("debootstrap")
            .args(["--variant=minbase", "bookworm"])
            .arg(&rootfs)
            .arg(debian_mirror())
            .output()
            .expect("debootstrap (apt-get install debootstrap)");
        assert!(out.status.success(), "debootstrap: {}", String::from_utf8_lossy(&out.stderr));
        // What debootstrap downloaded is not part of an image.
        for cache in ["var/cache/apt/archives", "var/lib/apt/lists"] {
            for entry in std::fs::read_dir(rootfs.join(cache)).unwrap().flatten() {
                if entry.path().is_file() {
                    std::fs::remove_file(entry.path()).unwrap();
                }
            }
        }
        let mut tar =
            Command::new("tar").arg("-C").arg(&rootfs).args(["-c", "."]).stdout(Stdio::piped()).spawn().unwrap();
        let out = self.command(&["import", "-", BASE]).stdin(tar.stdout.take().unwrap()).output().unwrap();
        assert!(tar.wait().unwrap().success(), "tar of the debootstrap tree failed");
        assert!(out.status.success(), "podman import: {}", String::from_utf8_lossy(&out.stderr));
        println!("made {BASE} with debootstrap in {:?}", started.elapsed());
    }
}

/// The Debian mirror apt already uses (debootstrap fetches from it), or Debian's own.
fn debian_mirror() -> String {
    if let Ok(mirror) = std::env::var("LLM_MONITOR_DEBIAN_MIRROR") {
        return mirror;
    }
    let sources = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources").unwrap_or_default();
    let from_deb822 = sources.lines().find_map(|l| l.strip_prefix("URIs:")).and_then(|u| u.split_whitespace().next());
    let list = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    let from_list = list.lines().find_map(|l| l.strip_prefix("deb ")).and_then(|rest| {
        rest.split_whitespace().find(|w| w.starts_with("http")).filter(|_| !rest.contains("security"))
    });
    from_deb822.or(from_list).unwrap_or("http://deb.debian.org/debian").to_string()
}

/// The repository's Dockerfile from its runtime stage on, with the binary taken from the
/// build context instead of the build stage.
fn runtime_containerfile() -> String {
    let dockerfile = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap();
    let start = dockerfile.find(&format!("FROM {BASE} AS runtime")).expect("a runtime stage FROM debian:bookworm-slim");
    let runtime = &dockerfile[start..];
    let copies: Vec<&str> = runtime.lines().filter(|l| l.starts_with("COPY --from=build ")).collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    runtime.replace(copies[0], "COPY llm-monitor /usr/bin/llm-monitor")
}

/// The build context: what the runtime stage copies from the repository, and the binary.
fn context(dir: &Path) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ctx = dir.join("context");
    std::fs::create_dir_all(ctx.join("data")).unwrap();
    std::fs::copy(repo.join("config.yaml.example"), ctx.join("config.yaml.example")).unwrap();
    for entry in std::fs::read_dir(repo.join("data")).unwrap().flatten() {
        std::fs::copy(entry.path(), ctx.join("data").join(entry.file_name())).unwrap();
    }
    // The test binary without its debug info (a smaller layer); as it is if strip is missing.
    let stripped = Command::new("strip").arg("--strip-debug").arg("-o").arg(ctx.join("llm-monitor")).arg(BIN).status();
    if !stripped.is_ok_and(|s| s.success()) {
        std::fs::copy(BIN, ctx.join("llm-monitor")).unwrap();
    }
    std::fs::write(ctx.join("Containerfile"), runtime_containerfile()).unwrap();
    ctx
}

/// Removes the container and the image however the test ends.
struct Cleanup<'a> {
    podman: &'a Podman,
    container: String,
    image: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        self.podman.run(&["rm", "-f", "-t", "0", &self.container]);
        self.podman.run(&["rmi", "-f", &self.image]);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn the_image_runs_non_root_passes_its_healthcheck_and_stores_the_probes_in_flight_on_stop() {
    if on_postgres() {
        println!("SKIPPED on PostgreSQL: the image's own SQLite volume is what it tests");
        return;
    }
    let Some(podman) = Podman::find() else { return };
    podman.base_image();

    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let tag = format!("localhost/llm-monitor-test:{}", std::process::id());
    let name = format!("llm-monitor-test-{}", std::process::id());
    let _cleanup = Cleanup { podman: &podman, container: name.clone(), image: tag.clone() };
    // Docker's format keeps HEALTHCHECK (OCI's has no such field).
    let ctx_arg = ctx.to_str().unwrap();
    let containerfile = ctx.join("Containerfile");
    podman.ok(&[
        "build",
        "--format",
        "docker",
        "--pull=never",
        "-t",
        &tag,
        "-f",
        containerfile.to_str().unwrap(),
        ctx_arg,
    ]);
    let health: serde_json::Value =
        serde_json::from_str(&podman.ok(&["image", "inspect", "--format", "{{json .Config.Healthcheck}}", &tag]))
            .unwrap();
    let test: Vec<&str> = health["Test"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(&test[..3], ["CMD", "/usr/bin/llm-monitor", "health"], "{health}");

    // As compose.yaml runs it: the config in a directory of its own mounted at /config and
    // named by MONITOR_CONFIG, a key from an env file, the data in a volume the user owns.
    let up = upstream::start();
    let config_dir = dir.path().join("config");
    std::fs::create_dir(&config_dir).unwrap();
    let monitor = |service: &str| {
        format!(
            "  - {{provider: dock, service: {service}, url: \"{}/delay/1500\", method: GET, interval: 1s, timeout: 5s, \
             slow_latency: 4s, headers: {{Authorization: \"Bearer {{{{API_KEY}}}}\"}}}}\n",
            up.base
        )
    };
    // Saved as editors save: a new file renamed over the old one.
    let save = |text: String| {
        let tmp = config_dir.join(".config.yaml.swp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, config_dir.join("config.yaml")).unwrap();
    };
    save(format!("monitors:\n{}", monitor("s")));
    let env_file = dir.path().join("llm-monitor.env");
    std::fs::write(&env_file, "MONITOR_DOCK_S_API_KEY=sk-from-the-env-file\n").unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(10001), Some(10001)).unwrap();
    let port = free_port();
    let listen = format!("MONITOR_LISTEN=0.0.0.0:{port}");
    let config_mount = format!("{}:/config:ro", config_dir.display());
    let data_mount = format!("{}:/var/lib/llm-monitor", data.display());
    podman.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "host",
        "--hostname",
        "llm-monitor-test",
        "-e",
        &listen,
        "-e",
        "MONITOR_CONFIG=/config/config.yaml",
        "--env-file",
        env_file.to_str().unwrap(),
        "-v",
        &config_mount,
        "-v",
        &data_mount,
        &tag,
    ]);
    let base = format!("http://127.0.0.1:{port}");
    let logs = || podman.ok(&["logs", &name]) + &String::from_utf8_lossy(&podman.run(&["logs", &name]).stderr);
    wait_for("the container's first probe result", Duration::from_secs(60), || {
        let running = podman.ok(&["inspect", "--format", "{{.State.Running}}", &name]);
        assert_eq!(running, "true", "the container stopped:\n{}", logs());
        let response = std::panic::catch_unwind(|| http_get(&format!("{base}/api/status"), &[])).ok()?;
        let monitor = response.json()["data"].as_array()?.first()?.clone();
        // 1: green.
        (monitor["current_status"]["status"].as_i64() == Some(1)).then_some(())
    });
    let requests = up.log.for_path("/delay/1500");
    assert_eq!(requests[0].header("authorization"), Some("Bearer sk-from-the-env-file"));

    // PID 1 is the daemon, not root.
    let status = podman.ok(&["exec", &name, "cat", "/proc/1/status"]);
    let field =
        |key: &str| status.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.split_whitespace().collect::<Vec<_>>());
    assert_eq!(field("Name:").unwrap(), ["llm-monitor"], "{status}");
    assert!(field("Uid:").unwrap().iter().all(|uid| *uid == "10001"), "{status}");
    assert!(field("Gid:").unwrap().iter().all(|gid| *gid == "10001"), "{status}");
    // The image's HEALTHCHECK, run as the runtime runs it.
    let check = podman.run(&["healthcheck", "run", &name]);
    assert!(check.status.success(), "healthcheck: {}", String::from_utf8_lossy(&check.stderr));
    let out = podman.ok(&["exec", &name, "/usr/bin/llm-monitor", "health"]);
    assert!(out.starts_with(&format!("healthy: http://127.0.0.1:{port}/health: 200 OK")), "{out}");

    // Saving the config on the host reloads it in the container.
    save(format!("monitors:\n{}{}", monitor("s"), monitor("t")));
    wait_for("the saved config's new monitor", Duration::from_secs(20), || {
        let data = http_get(&format!("{base}/api/status"), &[]).json()["data"].clone();
        (data.as_array()?.len() == 2).then_some(())
    });

    // `podman stop` (SIGTERM) while a probe is in flight: it finishes and is stored.
    wait_for("a probe in flight", Duration::from_secs(10), || {
        up.log.for_path("/delay/1500").iter().any(|r| r.finished.is_none()).then_some(())
    });
    let stopping = Instant::now();
    podman.ok(&["stop", "-t", "30", &name]);
    let took = stopping.elapsed();
    assert_eq!(podman.ok(&["inspect", "--format", "{{.State.ExitCode}}", &name]), "0", "{}", logs());
    assert!(took < Duration::from_secs(15), "stopped in {took:?}, not by the SIGKILL after 30 s");
    assert!(logs().contains("shutdown complete"), "{}", logs());
    let requests = up.log.for_path("/delay/1500");
    assert!(requests.iter().all(|r| r.finished.is_some()));
    let mut db = llm_monitor::store::db::open(&data.join("monitor.db")).unwrap();
    let stored: Vec<(i16, i16)> = {
        use diesel::prelude::*;
        use llm_monitor::store::schema::probes::dsl::*;
        probes.select((status, reason)).load(&mut db).unwrap()
    };
    assert_eq!(stored.len(), requests.len(), "every probe made is stored, the one in flight at the stop too");
    assert!(stored.iter().all(|(s, _)| *s == 1), "nothing red because we stopped: {stored:?}");
}

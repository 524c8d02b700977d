//! Hot reload (SPEC section 7): saves by rename, data/ includes, SIGHUP, bad configs, bursts,
//! and the systemd notify protocol.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use nix::sys::signal::Signal;

use crate::support::upstream::{self, Upstream};
use crate::support::{wait_for, Workspace};

fn m(name: &str, up: &Upstream, interval: &str) -> String {
    format!("  - {{provider: r, service: {name}, url: \"{}/m/{name}\", method: GET, interval: {interval}}}\n", up.base)
}

fn requests(up: &Upstream, name: &str) -> Vec<Instant> {
    up.log.for_path(&format!("/m/{name}")).iter().map(|r| r.started).collect()
}

/// Waits until `name` has been probed `more` more times than now.
fn wait_probes(up: &Upstream, name: &str, more: usize) {
    let target = requests(up, name).len() + more;
    wait_for(&format!("{more} more probes of {name}"), Duration::from_secs(15), || {
        (requests(up, name).len() >= target).then_some(())
    });
}

#[test]
fn saving_by_rename_adds_removes_and_changes_monitors() {
    let up = upstream::start();
    let ws =
        Workspace::new(&format!("monitors:\n{}{}{}", m("keep", &up, "1s"), m("gone", &up, "1s"), m("old", &up, "1s")));
    let daemon = ws.start();
    for name in ["keep", "gone", "old"] {
        daemon.wait_current("r", name, Duration::from_secs(10));
    }
    // "old" becomes "changed" under the same key: same provider/service, new url.
    let changed =
        format!("  - {{provider: r, service: old, url: \"{}/m/new-url\", method: GET, interval: 1s}}\n", up.base);
    ws.write_config(&format!("monitors:\n{}{changed}{}", m("keep", &up, "1s"), m("added", &up, "1s")));
    wait_for("the new monitor list", Duration::from_secs(5), || {
        (daemon.listed() == ["r/keep", "r/old", "r/added"]).then_some(())
    });
    wait_probes(&up, "added", 1);
    wait_probes(&up, "new-url", 1);
    let first_new = requests(&up, "new-url")[0];
    assert!(requests(&up, "old").iter().all(|t| *t < first_new), "the old url was probed after the change");

    let gone_before = requests(&up, "gone").len();
    wait_probes(&up, "keep", 3);
    assert_eq!(requests(&up, "gone").len(), gone_before, "a removed monitor was probed after the reload");
    assert!(
        daemon.logs().contains("reload succeeded with 3 monitors (1 added, 1 changed, 1 removed)"),
        "{}",
        daemon.logs()
    );
    assert_eq!(daemon.last_reload()["trigger"], "file");
}

#[test]
fn an_unchanged_monitor_keeps_its_schedule_through_reloads() {
    let up = upstream::start();
    let steady = m("steady", &up, "2s");
    let ws = Workspace::new(&format!("monitors:\n{steady}"));
    let daemon = ws.start();
    wait_probes(&up, "steady", 2);
    for i in 0..3 {
        ws.write_config(&format!("monitors:\n{steady}{}", m(&format!("extra{i}"), &up, "1s")));
        wait_for("the reload", Duration::from_secs(5), || {
            daemon.listed().contains(&format!("r/extra{i}")).then_some(())
        });
    }
    wait_probes(&up, "steady", 2);
    let times = requests(&up, "steady");
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(1_850) && gap <= Duration::from_millis(2_300), "gap {gap:?}: {times:?}");
    }
}

#[test]
fn a_removed_monitors_probe_in_flight_is_not_stored() {
    let up = upstream::start();
    let slow = format!(
        "  - {{provider: r, service: slow, url: \"{}/delay/3000\", method: GET, interval: 1s, timeout: 5s, slow_latency: 4s}}\n",
        up.base
    );
    let ws = Workspace::new(&format!("monitors:\n{}{slow}", m("clock", &up, "1s")));
    let daemon = ws.start();
    // Probes of "slow" run back to back; wait for the second one to be in flight.
    wait_for("a second slow probe in flight", Duration::from_secs(15), || {
        let log = up.log.for_path("/delay/3000");
        (log.len() >= 2 && log.last().unwrap().finished.is_none()).then_some(())
    });
    ws.write_config(&format!("monitors:\n{}", m("clock", &up, "1s")));
    wait_for("slow to be removed", Duration::from_secs(5), || (daemon.listed() == ["r/clock"]).then_some(()));
    let started = up.log.for_path("/delay/3000").len();
    // Let the abandoned request run out at the upstream, and a bit more.
    wait_for("the abandoned request to end", Duration::from_secs(10), || {
        up.log.for_path("/delay/3000").iter().all(|r| r.finished.is_some()).then_some(())
    });
    wait_probes(&up, "clock", 2);
    assert_eq!(up.log.for_path("/delay/3000").len(), started, "probed after removal");

    use llm_monitor::store::schema::{monitors, probes};
    let stored: i64 = crate::with_store!(ws, |conn| {
        let slow_id: i32 =
            monitors::table.filter(monitors::service.eq("slow")).select(monitors::id).first(conn).unwrap();
        probes::table.filter(probes::monitor_id.eq(slow_id)).count().get_result(conn).unwrap()
    });
    assert_eq!(stored as usize, started - 1, "the probe in flight at removal was stored");
}

/// One monitor every second whose body is `!include data/body.json`, which holds `{"v":1}`.
fn included_body_workspace(up: &Upstream) -> Workspace {
    let ws = Workspace::new(&format!(
        "monitors:\n  - {{provider: r, service: inc, url: \"{}/m/inc\", method: POST, interval: 1s, body: \"!include data/body.json\"}}\n",
        up.base
    ));
    ws.write_data("body.json", r#"{"v":1}"#);
    ws
}

#[test]
fn a_changed_include_file_changes_the_body() {
    let up = upstream::start();
    let ws = included_body_workspace(&up);
    let daemon = ws.start();
    wait_for("a probe with body v1", Duration::from_secs(10), || {
        up.log.for_path("/m/inc").iter().any(|r| r.body == r#"{"v":1}"#).then_some(())
    });
    ws.write_data("body.json", r#"{"v":2}"#);
    wait_for("a probe with body v2", Duration::from_secs(10), || {
        up.log.for_path("/m/inc").iter().any(|r| r.body == r#"{"v":2}"#).then_some(())
    });
    assert!(daemon.logs().contains("1 changed"), "{}", daemon.logs());
}

#[test]
fn sighup_reloads() {
    let up = upstream::start();
    let ws = Workspace::new(&format!("monitors:\n{}", m("a", &up, "1s")));
    let daemon = ws.start();
    assert_eq!(daemon.last_reload()["trigger"], "startup");
    daemon.signal(Signal::SIGHUP);
    let reload = wait_for("a SIGHUP reload", Duration::from_secs(5), || {
        let r = daemon.last_reload();
        (r["trigger"] == "sighup").then_some(r)
    });
    assert_eq!(reload["ok"], true);
    // The log line is written before the status changes, but read from the pipe by a thread.
    wait_for("the reload in the log", Duration::from_secs(5), || {
        daemon.logs().contains("reloaded, no changes").then_some(())
    });
    // Still alive and probing.
    wait_probes(&up, "a", 1);
}

#[test]
fn an_invalid_save_keeps_the_old_config_and_a_good_save_recovers() {
    let up = upstream::start();
    let ws = Workspace::new(&format!("monitors:\n{}", m("a", &up, "1s")));
    let daemon = ws.start();
    daemon.wait_current("r", "a", Duration::from_secs(10));
    ws.write_config(&format!(
        "interval: 1x\nmonitors:\n  - {{provider: r, service: b, url: \"{}/m/b\", method: FETCH}}\n",
        up.base
    ));
    let reload = wait_for("the rejected reload on /health", Duration::from_secs(5), || {
        let r = daemon.last_reload();
        (r["ok"] == false).then_some(r)
    });
    let errors: Vec<String> =
        reload["errors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string()).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].starts_with("interval: unknown unit"), "{errors:?}");
    // /health is public: it says where each problem is, with quoted values elided.
    assert!(errors[1].starts_with("monitors[0] r/b: method: \"…\" is not one of"), "{errors:?}");
    assert_eq!(daemon.get("/health").status, 200, "a rejected reload does not make the daemon unhealthy");
    let logs = daemon.logs();
    assert!(logs.contains("reload rejected (2 problems), keeping the running config"), "{logs}");
    assert!(logs.contains("monitors[0] r/b: method: \"FETCH\" is not one of"), "the log says what: {logs}");
    // The old monitor keeps running.
    wait_probes(&up, "a", 2);
    assert_eq!(daemon.listed(), ["r/a"]);

    ws.write_config(&format!("monitors:\n{}", m("b", &up, "1s")));
    wait_for("the good save", Duration::from_secs(5), || (daemon.listed() == ["r/b"]).then_some(()));
    assert_eq!(daemon.last_reload()["ok"], true);
    wait_probes(&up, "b", 1);
}

#[test]
fn an_empty_save_is_rejected_not_taken_as_no_monitors() {
    let up = upstream::start();
    let ws = Workspace::new(&format!("monitors:\n{}", m("a", &up, "1s")));
    let daemon = ws.start();
    daemon.wait_current("r", "a", Duration::from_secs(10));
    std::fs::write(ws.config_path(), "").unwrap();
    let reload = wait_for("the rejected empty file", Duration::from_secs(5), || {
        let r = daemon.last_reload();
        (r["ok"] == false).then_some(r)
    });
    assert!(reload["errors"][0].as_str().unwrap().contains("the file is empty"), "{reload}");
    wait_probes(&up, "a", 2);
    assert_eq!(daemon.listed(), ["r/a"]);
}

#[test]
fn a_data_folder_created_after_start_is_watched() {
    let up = upstream::start();
    let ws = Workspace::new(&format!("monitors:\n{}", m("a", &up, "1s")));
    std::fs::remove_dir(ws.path().join("data")).unwrap();
    let daemon = ws.start();
    daemon.wait_current("r", "a", Duration::from_secs(10));
    std::fs::create_dir(ws.path().join("data")).unwrap();
    ws.write_data("body.json", r#"{"v":1}"#);
    ws.write_config(&format!(
        "monitors:\n  - {{provider: r, service: inc, url: \"{}/m/inc\", method: POST, interval: 1s, body: \"!include data/body.json\"}}\n",
        up.base
    ));
    wait_for("a probe with body v1", Duration::from_secs(10), || {
        up.log.for_path("/m/inc").iter().any(|r| r.body == r#"{"v":1}"#).then_some(())
    });
    ws.write_data("body.json", r#"{"v":2}"#);
    wait_for("a probe with body v2", Duration::from_secs(10), || {
        up.log.for_path("/m/inc").iter().any(|r| r.body == r#"{"v":2}"#).then_some(())
    });
    assert_eq!(daemon.listed(), ["r/inc"]);
}

/// `data/` replaced by another folder (as a deploy tool swaps in a new copy): edits in the
/// new folder are seen, and so is the swap itself.
#[test]
fn a_data_folder_swapped_for_another_is_watched() {
    let up = upstream::start();
    let ws = included_body_workspace(&up);
    let daemon = ws.start();
    let sent = |body: &'static str| {
        wait_for(&format!("a probe with body {body}"), Duration::from_secs(10), || {
            up.log.for_path("/m/inc").iter().any(|r| r.body == body).then_some(())
        })
    };
    sent(r#"{"v":1}"#);
    let fresh = ws.path().join("data.new");
    std::fs::create_dir(&fresh).unwrap();
    std::fs::write(fresh.join("body.json"), r#"{"v":2}"#).unwrap();
    std::fs::rename(ws.path().join("data"), ws.path().join("data.old")).unwrap();
    std::fs::rename(&fresh, ws.path().join("data")).unwrap();
    sent(r#"{"v":2}"#);
    // An edit inside the folder swapped in, and none in the one swapped out.
    std::fs::write(ws.path().join("data.old/body.json"), r#"{"v":"old"}"#).unwrap();
    ws.write_data("body.json", r#"{"v":3}"#);
    sent(r#"{"v":3}"#);
    assert!(!up.log.for_path("/m/inc").iter().any(|r| r.body.contains("old")));
    drop(daemon);
}

#[test]
fn a_burst_of_20_saves_ends_in_the_last_config() {
    let up = upstream::start();
    let ws = Workspace::new(&format!("monitors:\n{}", m("v0", &up, "1s")));
    let daemon = ws.start();
    for i in 1..=20 {
        ws.write_config(&format!("monitors:\n{}{}", m("base", &up, "5s"), m(&format!("v{i}"), &up, "1s")));
    }
    wait_for("the last config", Duration::from_secs(10), || (daemon.listed() == ["r/base", "r/v20"]).then_some(()));
    wait_probes(&up, "v20", 1);
    // Stays there, and nothing panicked.
    wait_probes(&up, "v20", 1);
    assert_eq!(daemon.listed(), ["r/base", "r/v20"]);
    assert!(!daemon.logs().contains("panicked"), "{}", daemon.logs());
    assert_eq!(daemon.get("/health").status, 200);
}

#[test]
fn listen_database_and_node_changes_need_a_restart() {
    let up = upstream::start();
    let ws = Workspace::new(&format!("monitors:\n{}", m("a", &up, "1s")));
    let daemon = ws.start();
    ws.write_raw(&format!(
        "listen: \"127.0.0.1:1\"\ndatabase: \"elsewhere.db\"\nnode: elsewhere\nmonitors:\n{}",
        m("a", &up, "2s")
    ));
    wait_for("the reload", Duration::from_secs(5), || daemon.logs().contains("reload succeeded").then_some(()));
    let logs = daemon.logs();
    assert!(logs.contains("listen changed to \"127.0.0.1:1\"; that needs a restart"), "{logs}");
    assert!(logs.contains("database changed to elsewhere.db; that needs a restart"), "{logs}");
    assert!(logs.contains("node changed to \"elsewhere\"; that needs a restart"), "{logs}");
    assert_ne!(daemon.get("/health").json()["node"]["name"], "elsewhere");
    assert_eq!(daemon.get("/health").status, 200, "still serving on the old address");
    assert!(!ws.path().join("elsewhere.db").exists());
}

#[test]
fn systemd_notify_protocol() {
    let up = upstream::start();
    let ws = Workspace::new(&format!("monitors:\n{}", m("a", &up, "1s")));
    let socket_path = ws.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut daemon =
        ws.start_with_env(&[("NOTIFY_SOCKET", socket_path.to_str().unwrap()), ("WATCHDOG_USEC", "400000")]);
    let mut received: Vec<String> = Vec::new();
    let next_until = |want: &str, received: &mut Vec<String>| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let mut buf = [0u8; 512];
            let n = socket.recv(&mut buf).expect("a notify message");
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            received.push(message.clone());
            if message.contains(want) {
                return message;
            }
        }
        panic!("no {want} in {received:?}");
    };
    next_until("READY=1", &mut received);
    next_until("WATCHDOG=1", &mut received);
    next_until("WATCHDOG=1", &mut received);
    daemon.signal(Signal::SIGHUP);
    let reloading = next_until("RELOADING=1", &mut received);
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    next_until("READY=1", &mut received);
    daemon.signal(Signal::SIGTERM);
    next_until("STOPPING=1", &mut received);
    assert!(daemon.wait_exit(Duration::from_secs(5)).success());
}

#[test]
fn reading_the_config_or_its_includes_never_reloads() {
    let up = upstream::start();
    let ws = included_body_workspace(&up);
    let daemon = ws.start();
    wait_probes(&up, "inc", 2);
    // Every read of the files a file event causes is counted, whether it changed anything or not.
    let checks = || daemon.metric("llm_monitor_config_file_checks_total", &[]).expect("the checks metric");
    let checks_before = checks();
    // What `cat`, a backup tool or an editor opening the files does: open, read, close.
    for _ in 0..20 {
        std::fs::read(ws.config_path()).unwrap();
        std::fs::read(ws.path().join("data/body.json")).unwrap();
    }
    // Well past the debounce: any reload these reads caused has happened by now.
    wait_probes(&up, "inc", 2);
    let logs = daemon.logs();
    assert!(!logs.contains("change detected") && !logs.contains("reloaded"), "reads caused reloads:\n{logs}");
    let reloads = |trigger: &str, result: &str| {
        daemon.metric("llm_monitor_config_reloads_total", &[("trigger", trigger), ("result", result)]).unwrap_or(0.0)
    };
    assert_eq!(reloads("startup", "success"), 1.0);
    assert_eq!(reloads("file", "success") + reloads("file", "failure"), 0.0);
    assert_eq!(checks(), checks_before, "reads made the daemon look at its config again");

    // Real changes count, once each.
    ws.write_data("body.json", r#"{"v":2}"#);
    wait_for("a probe with body v2", Duration::from_secs(10), || {
        up.log.for_path("/m/inc").iter().any(|r| r.body == r#"{"v":2}"#).then_some(())
    });
    daemon.signal(Signal::SIGHUP);
    wait_for("the SIGHUP reload", Duration::from_secs(5), || {
        (daemon.last_reload()["trigger"] == "sighup").then_some(())
    });
    ws.write_config("monitors: [{provider: r, service: x, method: FETCH, url: \"http://h/\"}]\n");
    wait_for("the rejected save", Duration::from_secs(5), || (daemon.last_reload()["ok"] == false).then_some(()));
    assert_eq!(reloads("file", "success"), 1.0);
    assert_eq!(reloads("sighup", "success"), 1.0);
    assert_eq!(reloads("file", "failure"), 1.0);
}

#[test]
fn an_edit_saved_during_start_up_is_applied() {
    if crate::support::sqlite_only("an_edit_saved_during_start_up_is_applied") {
        return;
    }
    let up = upstream::start();
    let ws = Workspace::new(&format!("monitors:\n{}", m("a", &up, "1s")));
    // Only the config file's own events may tell the daemon about the edit.
    std::fs::remove_dir(ws.path().join("data")).unwrap();
    // Hold the database's write lock, so start-up waits in opening it, after the config is read.
    let mut lock = llm_monitor::store::db::open(&ws.db_path()).unwrap();
    lock.batch_execute("BEGIN EXCLUSIVE").unwrap();
    let mut daemon = ws.spawn_with_env(&[]);
    // It opens the database only after reading its config.
    let db = ws.db_path();
    wait_for("the daemon to open its database", Duration::from_secs(10), || {
        let fds = std::fs::read_dir(format!("/proc/{}/fd", daemon.pid())).ok()?;
        fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok()).any(|target| target == db).then_some(())
    });
    ws.write_config(&format!("monitors:\n{}{}", m("a", &up, "1s"), m("b", &up, "1s")));
    lock.batch_execute("COMMIT").unwrap();
    drop(lock);
    daemon.wait_listening();
    wait_for("the edit made during start-up", Duration::from_secs(10), || {
        (daemon.listed() == ["r/a", "r/b"]).then_some(())
    });
    wait_probes(&up, "b", 1);
}

#[test]
fn a_reload_applies_while_the_database_refuses_writes() {
    if crate::support::sqlite_only("a_reload_applies_while_the_database_refuses_writes") {
        return;
    }
    let up = upstream::start();
    let ws = Workspace::new(&format!("monitors:\n{}", m("a", &up, "1s")));
    let daemon = ws.start();
    daemon.wait_current("r", "a", Duration::from_secs(10));
    let mut lock = llm_monitor::store::db::open(&ws.db_path()).unwrap();
    lock.batch_execute("BEGIN EXCLUSIVE").unwrap();
    ws.write_config(&format!("monitors:\n{}{}", m("a", &up, "1s"), m("b", &up, "1s")));
    // Added and probed although nothing can be written.
    wait_for("the added monitor probed twice", Duration::from_secs(30), || {
        (requests(&up, "b").len() >= 2).then_some(())
    });
    lock.batch_execute("COMMIT").unwrap();
    drop(lock);
    // Its results are stored once the lock is gone.
    wait_for("b's results stored", Duration::from_secs(20), || {
        (crate::support::probe_count(&daemon.monitor("r", "b")) >= 2).then_some(())
    });
}

#[test]
fn a_fifo_swapped_in_for_the_config_never_wedges_the_daemon() {
    let up = upstream::start();
    let ws = Workspace::new(&format!("monitors:\n{}", m("a", &up, "1s")));
    let mut daemon = ws.start();
    daemon.wait_current("r", "a", Duration::from_secs(10));
    let fifo = ws.path().join(".fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    std::fs::rename(&fifo, ws.config_path()).unwrap();
    daemon.signal(Signal::SIGHUP);
    let reload = wait_for("the refused FIFO", Duration::from_secs(10), || {
        let r = daemon.last_reload();
        (r["ok"] == false).then_some(r)
    });
    assert!(reload["errors"][0].as_str().unwrap().ends_with("is not a regular file"), "{reload}");
    assert_eq!(daemon.get("/health").status, 200);
    wait_probes(&up, "a", 2);
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn a_log_file_beside_the_config_does_not_feed_the_watcher() {
    let up = upstream::start();
    let ws = Workspace::new(&format!("monitors:\n{}", m("a", &up, "1s")));
    let log_path = ws.path().join("daemon.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = std::process::Command::new(crate::support::BIN)
        .arg("--config")
        .arg(ws.config_path())
        .current_dir(ws.path())
        .env("RUST_LOG", "trace")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_probes(&up, "a", 3);
    child.kill().unwrap();
    child.wait().unwrap();
    let size = std::fs::metadata(&log_path).unwrap().len();
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(text.contains("llm_monitor"), "nothing was logged");
    assert!(!text.contains("change detected"), "the log file's writes caused reloads");
    assert!(size < 5 * 1024 * 1024, "{size} bytes of log in three seconds");
}

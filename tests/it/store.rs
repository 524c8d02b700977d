//! The store as an operator meets it (issue 10): another process holding SQLite's write lock,
//! wall-clock steps (under Debian's `faketime`), and the schedule across a restart.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use nix::sys::signal::Signal;

use crate::support::upstream::{self, Upstream};
use crate::support::{http_get, wait_for, Daemon, Workspace};

/// Rows in the `probes` table.
fn stored_rows(ws: &Workspace) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    crate::with_store!(ws, |conn| diesel::sql_query("SELECT COUNT(*) AS n FROM probes")
        .get_result::<Count>(conn)
        .unwrap()
        .n)
}

/// Probes the fake upstream has answered on `/m/...` paths.
fn answered(up: &Upstream) -> usize {
    up.log.all().iter().filter(|r| r.path.starts_with("/m/") && r.finished.is_some()).count()
}

fn monitors(up: &Upstream, count: usize, interval: &str) -> String {
    (0..count)
        .map(|i| {
            format!(
                "  - {{provider: lock, service: m{i}, url: \"{}/m/{i}\", method: GET, interval: {interval}}}\n",
                up.base
            )
        })
        .collect()
}

/// GET with its duration.
fn timed(daemon: &Daemon, path: &str) -> (crate::support::Response, Duration) {
    let started = Instant::now();
    let response = http_get(&format!("{}{path}", daemon.base), &[]);
    (response, started.elapsed())
}

/// 100 monitors at 1 s while another process holds an exclusive lock for 15 s: health and
/// status answer within 100 ms throughout, a reload applies meanwhile, the outage costs a
/// handful of write errors (backoff, not one per flush), and afterwards everything is stored.
#[test]
fn a_write_lock_held_for_15_s_blocks_no_reader_reload_or_result() {
    if crate::support::sqlite_only("a_write_lock_held_for_15_s_blocks_no_reader_reload_or_result") {
        return;
    }
    let up = upstream::start();
    let ws = Workspace::new(&format!("monitors:\n{}", monitors(&up, 100, "1s")));
    let mut daemon = ws.start();
    wait_for("every monitor probed", Duration::from_secs(10), || (answered(&up) >= 100).then_some(()));
    daemon.get("/health");
    let errors_before = daemon.metric("llm_monitor_store_write_errors_total", &[]).unwrap();

    let mut lock = llm_monitor::store::db::open(&ws.db_path()).unwrap();
    lock.batch_execute("BEGIN EXCLUSIVE").unwrap();
    let locked = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut pendings = Vec::new();
    let mut reloaded = false;
    while locked.elapsed() < Duration::from_secs(15) {
        let (health, took) = timed(&daemon, "/health");
        slowest = slowest.max(took);
        let (status, took) = timed(&daemon, "/api/status");
        slowest = slowest.max(took);
        assert_eq!(status.status, 200);
        let store = health.json()["store"].clone();
        if locked.elapsed() > Duration::from_secs(2) {
            assert_eq!(health.status, 503, "{}", health.text);
            assert_eq!(store["writable"], false, "{store}");
            pendings.push(store["pending"].as_u64().expect("a pending count"));
        }
        if !reloaded && locked.elapsed() > Duration::from_secs(3) {
            ws.write_config(&format!(
                "monitors:\n{}  - {{provider: lock, service: added, url: \"{}/m/added\", method: GET, interval: 1s}}\n",
                monitors(&up, 100, "1s"),
                up.base
            ));
            reloaded = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let added_probed = up.log.for_path("/m/added").len();
    let listed = daemon.listed().len();
    let errors = daemon.metric("llm_monitor_store_write_errors_total", &[]).unwrap() - errors_before;
    lock.batch_execute("COMMIT").unwrap();
    drop(lock);

    assert!(slowest < Duration::from_millis(100), "the slowest answer took {slowest:?}");
    assert!(pendings.windows(2).all(|w| w[0] <= w[1]) && pendings.last() > pendings.first(), "{pendings:?}");
    assert!(*pendings.last().unwrap() >= 1_000, "100 probes a second wait: {pendings:?}");
    assert!(added_probed >= 3, "the monitor the reload added was probed {added_probed} times");
    assert_eq!(listed, 101);
    // Backoff from 250 ms doubling to 5 s: about 7 attempts in 15 s, not 60 flush ticks.
    assert!((3.0..=10.0).contains(&errors), "{errors} write errors in 15 s");

    wait_for("the backlog written", Duration::from_secs(20), || {
        let store = daemon.get("/health").json()["store"].clone();
        (store["writable"] == true && store["pending"].as_u64() < Some(300)).then_some(())
    });
    // Stopped cleanly, every probe the upstream answered is a stored row.
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(20)).success(), "{}", daemon.logs());
    assert_eq!(stored_rows(&ws), answered(&up) as i64, "every result stored");
}

/// SIGTERM while another process holds the write lock: the daemon waits for it, within
/// bounds, and exits within 20 s with every result stored.
#[test]
fn sigterm_during_a_write_lock_exits_in_time_with_everything_stored() {
    if crate::support::sqlite_only("sigterm_during_a_write_lock_exits_in_time_with_everything_stored") {
        return;
    }
    let up = upstream::start();
    let ws = Workspace::new(&format!("monitors:\n{}", monitors(&up, 100, "1s")));
    let mut daemon = ws.start();
    wait_for("every monitor probed", Duration::from_secs(10), || (answered(&up) >= 100).then_some(()));
    let mut lock = llm_monitor::store::db::open(&ws.db_path()).unwrap();
    lock.batch_execute("BEGIN EXCLUSIVE").unwrap();
    let locked = Instant::now();
    wait_for("results waiting", Duration::from_secs(10), || {
        (daemon.get("/health").json()["store"]["pending"].as_u64() >= Some(300)).then_some(())
    });
    daemon.signal(Signal::SIGTERM);
    let signalled = Instant::now();
    // The lock is let go 15 s after it was taken.
    std::thread::sleep(Duration::from_secs(15).saturating_sub(locked.elapsed()));
    lock.batch_execute("COMMIT").unwrap();
    drop(lock);
    let exit = daemon.wait_exit(Duration::from_secs(30));
    let took = signalled.elapsed();
    assert!(exit.success(), "{exit}: {}", daemon.logs());
    assert!(took < Duration::from_secs(20), "exited {took:?} after SIGTERM");
    assert_eq!(stored_rows(&ws), answered(&up) as i64, "every result stored");
}

/// `writable` is tested at least every 15 s even when there is nothing to write.
#[test]
fn health_retests_writability_with_nothing_to_write() {
    if crate::support::sqlite_only("health_retests_writability_with_nothing_to_write") {
        return;
    }
    let ws = Workspace::new("monitors: []\n");
    let daemon = ws.start();
    // After the start-up purge (a write that would notice the lock on its own).
    wait_for("the start-up purge", Duration::from_secs(10), || {
        daemon.logs().contains("retention purge done").then_some(())
    });
    assert_eq!(daemon.get("/health").json()["store"]["writable"], true);
    let mut lock = llm_monitor::store::db::open(&ws.db_path()).unwrap();
    lock.batch_execute("BEGIN EXCLUSIVE").unwrap();
    let locked = Instant::now();
    let health = wait_for("the lock noticed", Duration::from_secs(30), || {
        let r = daemon.get("/health");
        (r.status == 503).then(|| r.json())
    });
    assert!(locked.elapsed() <= Duration::from_millis(15_500), "noticed after {:?}", locked.elapsed());
    assert_eq!(health["store"]["writable"], false, "{health}");
    assert_eq!(health["store"]["pending"], 0, "{health}");
    lock.batch_execute("COMMIT").unwrap();
    wait_for("writable again", Duration::from_secs(10), || (daemon.get("/health").status == 200).then_some(()));
}

/// A restart keeps each monitor's phase: the first probe after it comes one interval after
/// the last probe before it, not at a point counted from the new start.
#[test]
fn a_restart_keeps_the_monitors_phase() {
    let interval = Duration::from_secs(4);
    // A key whose offset in its interval is short, so a schedule counted from the start would
    // probe well before the interval is up.
    let service = (0..)
        .map(|n| format!("phase{n}"))
        .find(|s| {
            llm_monitor::probe::schedule::jitter(&format!("r\u{1f}{s}\u{1f}"), interval) < Duration::from_millis(800)
        })
        .unwrap();
    let up = upstream::start();
    let ws = Workspace::new(&format!(
        "monitors:\n  - {{provider: r, service: {service}, url: \"{}/m/x\", method: GET, interval: 4s}}\n",
        up.base
    ));
    let times = || up.log.for_path("/m/x").iter().map(|r| r.started).collect::<Vec<_>>();
    let mut daemon = ws.start();
    let before = wait_for("two probes", Duration::from_secs(15), || {
        let t = times();
        (t.len() >= 2).then_some(t)
    });
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(10)).success());
    let last = *before.last().unwrap();
    let _restarted = ws.start();
    let after = wait_for("a probe after the restart", Duration::from_secs(10), || {
        times().into_iter().find(|t| *t > last + Duration::from_millis(1))
    });
    let gap = after - last;
    assert!(
        gap >= interval - Duration::from_secs(1) && gap <= interval + Duration::from_secs(1),
        "{gap:?} between the probes around the restart (interval {interval:?})"
    );
}

/// Debian's libfaketime, or None (and SKIPPED) when it is not installed, unless CI requires it.
fn libfaketime() -> Option<PathBuf> {
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ];
    let found = candidates.iter().map(PathBuf::from).find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("LLM_MONITOR_REQUIRE_FAKETIME").is_none(),
            "libfaketime is required (LLM_MONITOR_REQUIRE_FAKETIME is set) but not installed"
        );
        println!("SKIPPED: libfaketime not installed (apt-get install faketime)");
    }
    found
}

/// The daemon under libfaketime, its offset read from `offset_file` at every clock reading
/// (write `+0`, `-2h`, `+30d` to it); timers stay on the real monotonic clock.
fn start_faked(ws: &Workspace, lib: &std::path::Path, offset_file: &std::path::Path) -> Daemon {
    ws.start_with_env(&[
        ("LD_PRELOAD", lib.to_str().unwrap()),
        ("FAKETIME_TIMESTAMP_FILE", offset_file.to_str().unwrap()),
        ("FAKETIME_NO_CACHE", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ])
}

/// The clock stepped back two hours (an NTP correction): the current status keeps following
/// the probes, it does not wait two hours for the clock to pass the last stored time.
#[test]
fn a_clock_stepped_back_keeps_the_current_status_moving() {
    let Some(lib) = libfaketime() else { return };
    let up = upstream::start();
    let ws = Workspace::new(&format!(
        "monitors:\n  - {{provider: t, service: s, url: \"{}/m/s\", method: GET, interval: 1s}}\n",
        up.base
    ));
    let offset = ws.path().join("faketime");
    std::fs::write(&offset, "+0\n").unwrap();
    let daemon = start_faked(&ws, &lib, &offset);
    let stamp = || daemon.monitor("t", "s")["current_status"]["timestamp"].as_i64();
    let before = wait_for("a probe", Duration::from_secs(10), stamp);
    assert!((before - llm_monitor::clock::unix_now()).abs() < 5, "not yet faked: {before}");
    std::fs::write(&offset, "-2h\n").unwrap();
    let stepped = wait_for("a probe on the stepped-back clock", Duration::from_secs(10), || {
        stamp().filter(|t| *t < before - 3_000)
    });
    let later = wait_for("the next one", Duration::from_secs(10), || stamp().filter(|t| *t > stepped));
    assert!(later < before, "{later} {before}");
    // The endpoint breaks: the status and the badge say so at once.
    ws.write_config(&format!(
        "monitors:\n  - {{provider: t, service: s, url: \"{}/status/500\", method: GET, interval: 1s}}\n",
        up.base
    ));
    wait_for("the badge to say down", Duration::from_secs(10), || {
        let badge = daemon.get("/api/badge/t/s.svg");
        badge.text.contains(">down<").then_some(())
    });
    assert_eq!(daemon.monitor("t", "s")["current_status"]["status"], 0);
}

/// The clock 30 days ahead when the daemon starts (a dead RTC battery, a bad NTP answer): the
/// start-up purge keeps every result within retention of the newest stored one.
#[test]
fn a_clock_ahead_at_start_up_does_not_purge_history() {
    let Some(lib) = libfaketime() else { return };
    let up = upstream::start();
    let config = format!(
        "retention: 7d\nmonitors:\n  - {{provider: t, service: s, url: \"{}/m/s\", method: GET, interval: 1s}}\n",
        up.base
    );
    let ws = Workspace::new(&config);
    let mut daemon = ws.start();
    wait_for("three probes", Duration::from_secs(10), || (answered(&up) >= 3).then_some(()));
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(10)).success());
    let stored = stored_rows(&ws);
    assert!(stored >= 3);

    let offset = ws.path().join("faketime");
    std::fs::write(&offset, "+30d\n").unwrap();
    let mut ahead = start_faked(&ws, &lib, &offset);
    // Stopped only once the start-up purge (2 s after start) has run.
    wait_for("the start-up purge", Duration::from_secs(15), || {
        ahead.logs().contains("store: retention purge done").then_some(())
    });
    ahead.signal(Signal::SIGTERM);
    assert!(ahead.wait_exit(Duration::from_secs(10)).success());
    assert!(stored_rows(&ws) >= stored, "history within retention of the newest result was purged: {}", ahead.logs());
}

//! Scheduling, persistence across restarts, graceful shutdown and a store that cannot write.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use nix::sys::signal::Signal;

use crate::support::upstream;
use crate::support::{probe_count, wait_for, Workspace};

/// Every stored row as (status, reason).
fn stored_rows(ws: &Workspace) -> Vec<(i16, String)> {
    use llm_monitor::store::schema::probes::dsl::*;
    let rows: Vec<(i16, i16)> = crate::with_store!(ws, |conn| probes.select((status, reason)).load(conn).unwrap());
    rows.into_iter().map(|(s, r)| (s, llm_monitor::probe::Reason::from_code(r).unwrap().as_str().to_string())).collect()
}

#[test]
fn a_probe_slower_than_its_interval_never_overlaps_the_next() {
    let up = upstream::start();
    let ws = Workspace::new(&format!(
        "monitors:\n  - {{provider: slow, service: s, url: \"{}/delay/1500\", method: GET, interval: 1s, timeout: 5s, slow_latency: 4s}}\n",
        up.base
    ));
    let _daemon = ws.start();
    let requests = wait_for("four finished probes", Duration::from_secs(15), || {
        let done: Vec<_> = up.log.for_path("/delay/1500").into_iter().filter(|r| r.finished.is_some()).collect();
        (done.len() >= 4).then_some(done)
    });
    for pair in requests.windows(2) {
        let previous_end = pair[0].finished.unwrap();
        assert!(pair[1].started >= previous_end, "a probe started before the previous one finished");
        // An overrun makes the next probe wait, not skip a whole interval.
        let gap = pair[1].started - previous_end;
        assert!(gap < Duration::from_millis(500), "gap {gap:?} after an overrun");
    }
}

#[test]
fn probes_keep_their_interval() {
    let up = upstream::start();
    let ws = Workspace::new(&format!(
        "monitors:\n  - {{provider: p, service: s, url: \"{}/ok\", method: GET, interval: 1s}}\n",
        up.base
    ));
    let _daemon = ws.start();
    let requests = wait_for("five probes", Duration::from_secs(15), || {
        let all = up.log.for_path("/ok");
        (all.len() >= 5).then_some(all)
    });
    // Slot n is due at start + n * interval: four intervals, without drift (a drifting
    // schedule adds each probe's own duration to every interval).
    let span = requests[4].started - requests[0].started;
    assert!(span >= Duration::from_millis(3_900) && span <= Duration::from_millis(4_300), "span {span:?}");
}

#[test]
fn history_survives_a_restart() {
    let up = upstream::start();
    let ws = Workspace::new(&format!(
        "monitors:\n  - {{provider: keep, service: s, url: \"{}/ok\", method: GET, interval: 1s}}\n",
        up.base
    ));
    let mut daemon = ws.start();
    wait_for("three stored probes", Duration::from_secs(15), || {
        (probe_count(&daemon.monitor("keep", "s")) >= 3).then_some(())
    });
    let current_before = daemon.monitor("keep", "s")["current_status"].clone();
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(10)).success());
    let requests = up.log.for_path("/ok").len() as i64;

    let daemon = ws.start();
    let after = daemon.monitor("keep", "s");
    assert!(
        probe_count(&after) >= requests,
        "{} stored after restart, {requests} probes were made",
        probe_count(&after)
    );
    assert!(after["current_status"]["timestamp"].as_i64() >= current_before["timestamp"].as_i64());
    assert_eq!(after["current_status"]["status"], 1);
}

#[test]
fn sigterm_lets_the_probe_in_flight_finish_and_stores_it() {
    let up = upstream::start();
    let ws = Workspace::new(&format!(
        "monitors:\n  - {{provider: term, service: s, url: \"{}/delay/1500\", method: GET, interval: 1s, timeout: 5s, slow_latency: 4s}}\n",
        up.base
    ));
    let mut daemon = ws.start();
    // Wait until a probe is in flight, then stop.
    wait_for("a probe in flight", Duration::from_secs(10), || {
        up.log.for_path("/delay/1500").iter().any(|r| r.finished.is_none()).then_some(())
    });
    let stop = Instant::now();
    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(6));
    assert!(status.success(), "exit {status}: {}", daemon.logs());
    assert!(stop.elapsed() < Duration::from_millis(1500 + 2500), "took {:?}", stop.elapsed());
    // The daemon exits only after the database is closed: SQLite then checkpoints the WAL into
    // the database file and removes it.
    let wal = ws.db_path().with_extension("db-wal");
    assert!(ws.database.is_some() || !wal.exists(), "{} is still there after the exit", wal.display());

    let requests = up.log.for_path("/delay/1500");
    assert!(requests.iter().all(|r| r.finished.is_some()));
    let rows = stored_rows(&ws);
    assert_eq!(rows.len(), requests.len(), "every probe made is stored: {rows:?}");
    assert!(rows.iter().all(|(s, reason)| *s == 1 && reason == "ok"), "nothing red because we stopped: {rows:?}");
}

#[test]
fn sigint_exits_0_when_idle() {
    let ws = Workspace::new("monitors: []\n");
    let mut daemon = ws.start();
    daemon.signal(Signal::SIGINT);
    assert!(daemon.wait_exit(Duration::from_secs(5)).success());
    assert!(daemon.logs().contains("shutdown complete"));
}

#[test]
fn a_store_that_cannot_write_turns_health_503_and_loses_nothing() {
    let up = upstream::start();
    let ws = Workspace::new(&format!(
        "monitors:\n  - {{provider: w, service: s, url: \"{}/ok\", method: GET, interval: 1s}}\n",
        up.base
    ));
    let daemon = ws.start();
    assert_eq!(daemon.get("/health").status, 200);
    daemon.wait_current("w", "s", Duration::from_secs(10));

    // A trigger refuses every insert (SQLite's RAISE, or PostgreSQL's plpgsql).
    let sqlite = "CREATE TRIGGER block_writes BEFORE INSERT ON probes BEGIN SELECT RAISE(ABORT, 'writes blocked by the test'); END;";
    let postgres = "CREATE FUNCTION block_writes() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'writes blocked by the test'; END $$ LANGUAGE plpgsql; \
                    CREATE TRIGGER block_writes BEFORE INSERT ON probes FOR EACH ROW EXECUTE FUNCTION block_writes();";
    let mut store = ws.store();
    match &mut store {
        crate::support::Store::Sqlite(conn) => conn.batch_execute(sqlite).unwrap(),
        crate::support::Store::Pg(conn) => conn.batch_execute(postgres).unwrap(),
    }
    let health = wait_for("health to turn 503", Duration::from_secs(10), || {
        let r = daemon.get("/health");
        (r.status == 503).then(|| r.json())
    });
    assert_eq!(health["status"], "unavailable");
    assert!(health["store"]["last_error"].as_str().unwrap().contains("writes blocked by the test"), "{health}");
    // Keep writes blocked while three more probes are made; they wait in memory.
    let blocked_at = up.log.for_path("/ok").len();
    wait_for("three probes while blocked", Duration::from_secs(10), || {
        (up.log.for_path("/ok").len() >= blocked_at + 3).then_some(())
    });
    let pending = daemon.get("/health").json()["store"]["pending"].as_i64().unwrap();
    assert!(pending >= 3, "results wait while the database refuses them: {pending}");
    let made_while_blocked = up.log.for_path("/ok").len();

    match &mut store {
        crate::support::Store::Sqlite(conn) => conn.batch_execute("DROP TRIGGER block_writes;").unwrap(),
        crate::support::Store::Pg(conn) => conn.batch_execute("DROP TRIGGER block_writes ON probes;").unwrap(),
    }
    wait_for("health to recover", Duration::from_secs(10), || (daemon.get("/health").status == 200).then_some(()));
    let stored = probe_count(&daemon.monitor("w", "s"));
    assert!(stored as usize >= made_while_blocked, "{stored} stored, {made_while_blocked} made");
}

#[test]
fn a_busy_port_fails_the_start_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let ws = Workspace::new("monitors: []\n");
    ws.write_raw(&format!(
        "listen: \"127.0.0.1:{port}\"\ndatabase: \"{}\"\nmonitors:\n  - {{provider: a, service: b, url: \"https://127.0.0.1:1/\", method: GET}}\n",
        ws.db_path().display()
    ));
    let out = std::process::Command::new(crate::support::BIN)
        .arg("--config")
        .arg(ws.config_path())
        .current_dir(ws.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_second_stop_signal_exits_at_once_and_says_what_it_abandoned() {
    let up = upstream::start();
    let ws = Workspace::new(&format!(
        "monitors:\n  - {{provider: h, service: s, url: \"{}/hang\", method: GET, interval: 1s, timeout: 60s, slow_latency: 30s}}\n",
        up.base
    ));
    let mut daemon = ws.start();
    wait_for("a probe in flight", Duration::from_secs(10), || (!up.log.for_path("/hang").is_empty()).then_some(()));
    daemon.signal(Signal::SIGTERM);
    // The first waits for the probe in flight (up to its 60 s timeout); the second does not.
    wait_for("the shutdown to begin", Duration::from_secs(5), || {
        daemon.logs().contains("shutdown: stopping 1 probes").then_some(())
    });
    let second = Instant::now();
    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(10));
    assert!(second.elapsed() < Duration::from_secs(5), "took {:?}", second.elapsed());
    assert_eq!(status.code(), Some(1));
    let logs = daemon.logs();
    assert!(
        logs.contains(
            "SIGTERM received again while waiting for the probes in flight: exiting now; abandoned 1 probes in flight"
        ),
        "{logs}"
    );
}

/// The soft limit on open files (/proc/<pid>/limits).
fn open_files_soft_limit(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

#[test]
fn the_soft_limit_on_open_files_is_raised_and_a_config_beyond_it_is_named() {
    let (_, hard) = llm_monitor::limits::open_files().unwrap();
    if hard < 1_024 {
        println!("SKIPPED: this machine's hard limit on open files is {hard}");
        return;
    }
    let up = upstream::start();
    let ws = Workspace::new(&format!(
        "interval: 1h\nmonitors:\n  - {{provider: p, service: s, url: \"{}/ok\", method: GET}}\n",
        up.base
    ));
    // A shell's default soft limit under a higher hard one: raised to the hard one.
    let daemon = ws.start_with_open_files(256, 1_024);
    assert_eq!(open_files_soft_limit(daemon.pid()), 1_024);
    assert!(daemon.logs().contains("open files: limit raised from 256 to 1024"), "{}", daemon.logs());
    assert!(!daemon.logs().contains("monitors may keep"), "{}", daemon.logs());
    drop(daemon);

    // 900 monitors under a hard limit of 1,024 (plus what the daemon needs beside them).
    let mut config = String::from("interval: 24h\nmonitors:\n");
    for i in 0..900 {
        config.push_str(&format!("  - {{provider: p, service: s{i}, url: \"{}/ok\", method: GET}}\n", up.base));
    }
    ws.write_config(&config);
    let daemon = ws.start_with_open_files(1_024, 1_024);
    let logs = daemon.logs();
    assert!(
        logs.contains("900 monitors may keep 900 connections open") && logs.contains("the limit on open files is 1024"),
        "{logs}"
    );

    // A reload that grows the config past the limit says so too.
    let monitors = |n: usize| {
        let mut config = String::from("interval: 24h\nmonitors:\n");
        for i in 0..n {
            config.push_str(&format!("  - {{provider: p, service: s{i}, url: \"{}/ok\", method: GET}}\n", up.base));
        }
        config
    };
    ws.write_config(&monitors(2));
    wait_for("the reload to 2 monitors", Duration::from_secs(10), || (daemon.listed().len() == 2).then_some(()));
    ws.write_config(&monitors(950));
    wait_for("the warning at the reload to 950", Duration::from_secs(10), || {
        daemon.logs().contains("950 monitors may keep 950 connections open").then_some(())
    });
}

#[derive(diesel::QueryableByName)]
struct StatusLatency {
    #[diesel(sql_type = diesel::sql_types::SmallInt)]
    status: i16,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    latency_ms: i32,
}

/// The shutdown waits for a probe by the running config's timeout, not the start-up one's: a
/// monitor a reload added with a longer timeout still finishes its probe and is stored.
#[test]
fn shutdown_waits_for_a_probe_by_the_timeout_a_reload_gave_it() {
    let up = upstream::start();
    let ws = Workspace::new(&format!(
        "monitors:\n  - {{provider: short, service: s, url: \"{}/ok\", method: GET, interval: 1h, timeout: 1s, slow_latency: 900ms}}\n",
        up.base
    ));
    let mut daemon = ws.start();
    ws.write_config(&format!(
        "monitors:\n  - {{provider: short, service: s, url: \"{0}/ok\", method: GET, interval: 1h, timeout: 1s, slow_latency: 900ms}}\n  - {{provider: long, service: s, url: \"{0}/delay/14000\", method: GET, interval: 1s, timeout: 20s, slow_latency: 19s}}\n",
        up.base
    ));
    wait_for("the added monitor's probe in flight", Duration::from_secs(10), || {
        up.log.for_path("/delay/14000").iter().any(|r| r.finished.is_none()).then_some(())
    });
    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "exit {status}: {}", daemon.logs());
    assert!(!daemon.logs().contains("did not all finish"), "{}", daemon.logs());
    let stored: Vec<StatusLatency> = crate::with_store!(ws, |conn| {
        diesel::sql_query(
        "SELECT p.status AS status, p.latency_ms AS latency_ms FROM probes p JOIN monitors m ON m.id = p.monitor_id WHERE m.provider = 'long'",
    )
    .load::<StatusLatency>(conn)
    .unwrap()
    });
    let long: Vec<(i16, i32)> = stored.into_iter().map(|r| (r.status, r.latency_ms)).collect();
    assert!(long.iter().any(|(s, l)| *s == 1 && *l >= 14_000), "the 14 s probe was stored green: {long:?}");
}

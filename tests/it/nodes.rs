//! Several probing nodes sharing one PostgreSQL database (issue 12): each the real daemon with
//! its own config, all on one machine, against one fake upstream that some nodes reach and
//! one does not. Needs PostgreSQL (see `support::pg`): SKIPPED without it.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::pg::{self, PASSWORD};
use crate::support::upstream::{self, Upstream};
use crate::support::{wait_for, Daemon, Workspace};

/// A node's config: one monitor `r/a` probing `path` every second; alerts (after 2 failing
/// probes) to a webhook at the upstream's `/m/hook`.
fn node_config(name: &str, up: &Upstream, path: &str, quorum: &str) -> String {
    format!(
        "node: {name}\nquorum: {quorum}\nalerts:\n  failure_threshold: 2\n  storm: {{min_monitors: 0}}\n  channels:\n    - {{name: ops, type: webhook, url: \"{base}/m/hook\"}}\n  default_channels: [ops]\nmonitors:\n  - {{provider: r, service: a, url: \"{base}{path}\", method: GET, interval: 1s}}\n",
        base = up.base
    )
}

fn event_types(daemon: &Daemon) -> Vec<String> {
    let events = daemon.get("/api/events").json();
    events["data"].as_array().unwrap().iter().filter_map(|e| e["type"].as_str().map(str::to_string)).collect()
}

struct Node {
    ws: Workspace,
    daemon: Daemon,
}

fn start_node(url: &str, name: &str, up: &Upstream, path: &str, quorum: &str) -> Node {
    let ws = Workspace::new(&node_config(name, up, path, quorum));
    // The URL from the environment wins over the file's `database:` (a SQLite path here).
    let daemon = ws.start_with_env(&[("MONITOR_DATABASE_URL", url)]);
    Node { ws, daemon }
}

/// `r/a` as `daemon` answers it, once it shows every node in `names` with a current status.
fn wait_nodes(daemon: &Daemon, names: &[&str]) -> Value {
    wait_for(&format!("nodes {names:?} in the answer"), Duration::from_secs(20), || {
        let monitor = daemon.monitor("r", "a");
        names.iter().all(|n| !monitor["nodes"][n]["current_status"].is_null()).then_some(monitor)
    })
}

#[test]
fn three_nodes_see_each_other_and_a_minority_red_is_not_red_under_majority() {
    let Some(server) = pg::server("three_nodes_see_each_other") else { return };
    let url = server.database();
    let up = upstream::start();
    let alpha = start_node(&url, "alpha", &up, "/m/a", "majority");
    wait_for("alpha to lead", Duration::from_secs(10), || {
        (alpha.daemon.get("/health").json()["node"]["leader"] == true).then_some(())
    });
    let beta = start_node(&url, "beta", &up, "/m/a", "majority");
    // gamma's route to the relay is broken: every probe of it is red. It also probes a monitor
    // no other node has.
    let ws_gamma = Workspace::new(&format!(
        "{}  - {{provider: r, service: only-gamma, url: \"{}/m/og\", method: GET, interval: 1s}}\n",
        node_config("gamma", &up, "/status/500", "majority"),
        up.base
    ));
    let gamma = Node { daemon: ws_gamma.start_with_env(&[("MONITOR_DATABASE_URL", &url)]), ws: ws_gamma };

    for node in [&alpha, &beta, &gamma] {
        let monitor = wait_nodes(&node.daemon, &["alpha", "beta", "gamma"]);
        assert_eq!(monitor["nodes"]["gamma"]["current_status"]["status"], 0, "{monitor}");
        assert_eq!(monitor["nodes"]["gamma"]["current_status"]["reason"], "server_error");
        assert_eq!(monitor["nodes"]["alpha"]["current_status"]["status"], 1);
        assert_eq!(monitor["nodes"]["beta"]["stale"], false);
        // One node of three is not a majority: combined, the relay is up.
        assert_eq!(monitor["current_status"]["status"], 1, "{monitor}");
        let buckets = monitor["timeline"].as_array().unwrap();
        let last = buckets.last().unwrap();
        assert_ne!(last["status"], 0, "a minority's red probes do not make the bucket red: {last}");
        assert!(last["counts"]["red"].as_i64().unwrap() == 0, "{last}");
        assert!(monitor["uptime"].as_f64().unwrap() > 99.0, "{monitor}");
        // gamma's own uptime is its own.
        assert!(monitor["nodes"]["gamma"]["uptime"].as_f64().unwrap() < 1.0, "{monitor}");
    }

    // A monitor only gamma probes is listed on every node, after the configured ones.
    wait_for("gamma's own monitor on alpha", Duration::from_secs(10), || {
        (alpha.daemon.listed() == ["r/a", "r/only-gamma"]).then_some(())
    });
    // /metrics counts a node's own probes: alpha never saw a server error, gamma did.
    assert_eq!(alpha.daemon.metric("llm_monitor_probes_total", &[("reason", "server_error")]), None);
    assert!(gamma.daemon.metric("llm_monitor_probes_total", &[("reason", "server_error")]).unwrap_or(0.0) >= 1.0);
    // Each node's connections say whose they are.
    let admin = url.rsplit_once('/').unwrap().0.to_string() + "/postgres";
    for name in ["alpha", "beta", "gamma"] {
        let filter = format!("pg_stat_activity WHERE application_name = 'llm-monitor/{name}'");
        assert!(pg::PgServer::count(&admin, &filter) >= 2, "{name}: its writer and its leader lock");
    }

    // ?node= answers the same shape from that node's probes only.
    let only_gamma = alpha.daemon.status("?node=gamma");
    let entry = &only_gamma["data"][0];
    assert_eq!(entry["current_status"]["status"], 0, "{entry}");
    assert_eq!(entry["current_status"]["node"], "gamma");
    assert_eq!(entry["timeline"].as_array().unwrap().last().unwrap()["status"], 0);
    let unknown = alpha.daemon.get("/api/status?node=delta");
    assert_eq!(unknown.status, 400, "{}", unknown.text);
    assert_eq!(unknown.json()["error"]["code"], "invalid_param", "{}", unknown.text);
    assert!(unknown.text.contains("delta"), "{}", unknown.text);

    // A probe is visible on every node within 2 s of the node that made it showing it.
    let newest = |daemon: &Daemon| daemon.monitor("r", "a")["nodes"]["alpha"]["last_probe"].as_i64().unwrap_or(0);
    let before = newest(&alpha.daemon);
    let seen = wait_for("alpha's next probe on alpha", Duration::from_secs(10), || {
        let ts = newest(&alpha.daemon);
        (ts > before).then_some(ts)
    });
    let started = Instant::now();
    for other in [&beta, &gamma] {
        wait_for("alpha's probe on another node", Duration::from_secs(10), || {
            (newest(&other.daemon) >= seen).then_some(())
        });
    }
    let lag = started.elapsed();
    assert!(lag <= Duration::from_secs(2), "alpha's probe reached the other nodes after {lag:?}");

    // The leader's alerts follow the combined status: gamma's bad route pages no one.
    let gamma_red_probes = |n: usize| up.log.for_path("/status/500").len() >= n;
    let seen = up.log.for_path("/status/500").len();
    wait_for("5 more red probes from gamma", Duration::from_secs(15), || gamma_red_probes(seen + 5).then_some(()));
    assert!(!event_types(&alpha.daemon).contains(&"down".to_string()), "{:?}", event_types(&alpha.daemon));
    assert!(up.log.for_path("/m/hook").is_empty());

    // Under `quorum: 1` (a reload on alpha only), one red node is enough.
    alpha.ws.write_config(&node_config("alpha", &up, "/m/a", "1"));
    wait_for("combined red under quorum 1", Duration::from_secs(10), || {
        (alpha.daemon.monitor("r", "a")["current_status"]["status"] == 0).then_some(())
    });
    let monitor = alpha.daemon.monitor("r", "a");
    assert_eq!(monitor["current_status"]["node"], "gamma", "{monitor}");
    let last = monitor["timeline"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["status"], 0, "{last}");
    // beta still says majority: up.
    assert_eq!(beta.daemon.monitor("r", "a")["current_status"]["status"], 1);
    // alpha leads, so its rule decides alerts: now the relay is down for it, and it says so.
    wait_for("a down alert", Duration::from_secs(15), || (!up.log.for_path("/m/hook").is_empty()).then_some(()));
    wait_for("the down event on beta", Duration::from_secs(10), || {
        event_types(&beta.daemon).contains(&"down".to_string()).then_some(())
    });

    // The password appears nowhere: not in /health, not in any log.
    for node in [&alpha, &beta, &gamma] {
        let health = node.daemon.get("/health").text;
        assert!(!health.contains(PASSWORD), "{health}");
        let logs = node.daemon.logs();
        assert!(!logs.contains(PASSWORD), "{logs}");
        assert!(logs.contains("as node"), "{logs}");
    }
}

#[test]
fn a_killed_node_goes_stale_is_never_counted_red_and_is_reported_lost_then_back() {
    let Some(server) = pg::server("a_killed_node_goes_stale") else { return };
    let url = server.database();
    let up = upstream::start();
    let alpha = start_node(&url, "alpha", &up, "/m/a", "1");
    wait_for("alpha to lead", Duration::from_secs(10), || {
        (alpha.daemon.get("/health").json()["node"]["leader"] == true).then_some(())
    });
    let mut gamma = start_node(&url, "gamma", &up, "/status/500", "1");
    wait_nodes(&alpha.daemon, &["alpha", "gamma"]);
    // Under quorum 1, gamma's red makes the combined status red.
    wait_for("combined red", Duration::from_secs(10), || {
        (alpha.daemon.monitor("r", "a")["current_status"]["status"] == 0).then_some(())
    });
    gamma.daemon.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = gamma.daemon.wait_exit(Duration::from_secs(10));
    // 3 intervals (1 s) without a probe from gamma: stale, out of the quorum.
    let monitor = wait_for("gamma stale", Duration::from_secs(15), || {
        let monitor = alpha.daemon.monitor("r", "a");
        (monitor["nodes"]["gamma"]["stale"] == true).then_some(monitor)
    });
    let stale_at = Instant::now();
    assert!(monitor["nodes"]["gamma"]["current_status"].is_null(), "{monitor}");
    assert!(monitor["nodes"]["gamma"]["last_probe"].as_i64().is_some(), "{monitor}");
    wait_for("combined green without gamma", Duration::from_secs(5), || {
        (alpha.daemon.monitor("r", "a")["current_status"]["status"] == 1).then_some(())
    });
    // One "node lost" event, with the node and no monitor, within 30 s of going stale.
    let node_events = |daemon: &Daemon| -> Vec<Value> {
        let events = daemon.get("/api/events").json();
        events["data"].as_array().unwrap().iter().filter(|e| e["node"].is_string()).cloned().collect()
    };
    let lost = wait_for("a node_lost event", Duration::from_secs(30), || {
        let events = node_events(&alpha.daemon);
        (!events.is_empty()).then_some(events)
    });
    assert!(stale_at.elapsed() <= Duration::from_secs(30));
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0]["type"], "node_lost");
    assert_eq!(lost[0]["node"], "gamma");
    assert_eq!(lost[0]["provider"], "");
    assert_eq!(lost[0]["service"], "");
    assert_eq!(lost[0]["channel"], "");
    // ... and sent to the default channels.
    let hook_events = || -> Vec<Value> {
        up.log.for_path("/m/hook").iter().filter_map(|r| serde_json::from_str::<Value>(&r.body).ok()).collect()
    };
    let sent = wait_for("the node_lost message", Duration::from_secs(10), || {
        let sent: Vec<Value> = hook_events().into_iter().filter(|m| m["event"] == "node_lost").collect();
        (!sent.is_empty()).then_some(sent)
    });
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["node"], "gamma");
    // gamma comes back: one "node back".
    gamma.daemon = gamma.ws.start_with_env(&[("MONITOR_DATABASE_URL", &url)]);
    let back = wait_for("a node_back event", Duration::from_secs(30), || {
        let events = node_events(&alpha.daemon);
        (events.len() >= 2).then_some(events)
    });
    assert_eq!(back[1]["type"], "node_back", "{back:?}");
    assert_eq!(back[1]["node"], "gamma");
    // And no more than that, a while later.
    let monitor = wait_nodes(&alpha.daemon, &["alpha", "gamma"]);
    assert_eq!(monitor["nodes"]["gamma"]["stale"], false);
    assert_eq!(node_events(&alpha.daemon).len(), 2);
}

#[test]
fn a_node_that_loses_the_database_keeps_probing_and_loses_nothing() {
    let Some(server) = pg::own_server("a_node_that_loses_the_database") else { return };
    let url = server.database();
    let up = upstream::start();
    let monitors: String = (0..5)
        .map(|i| {
            format!("  - {{provider: r, service: m{i}, url: \"{}/m/m{i}\", method: GET, interval: 1s}}\n", up.base)
        })
        .collect();
    let ws = Workspace::new(&format!("node: solo\nmonitors:\n{monitors}"));
    let mut daemon = ws.start_with_env(&[("MONITOR_DATABASE_URL", &url)]);
    daemon.wait_current("r", "m4", Duration::from_secs(10));

    server.stop();
    let outage = Instant::now();
    // /health says so: 503, not writable, the buffered results counted, the error without the
    // password.
    let health = wait_for("/health to show the outage", Duration::from_secs(15), || {
        let response = daemon.get("/health");
        let body = response.json();
        (response.status == 503 && body["store"]["writable"] == false && body["store"]["pending"].as_i64() > Some(0))
            .then_some(body)
    });
    let error = health["store"]["last_error"].as_str().unwrap_or_default().to_string();
    assert!(!error.is_empty(), "{health}");
    assert!(!error.contains(PASSWORD), "{error}");
    // Probing goes on meanwhile.
    let before = up.log.all().len();
    wait_for("probes during the outage", Duration::from_secs(10), || (up.log.all().len() >= before + 10).then_some(()));
    while outage.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
    }
    server.restart();
    wait_for("/health to recover", Duration::from_secs(30), || {
        let response = daemon.get("/health");
        (response.status == 200 && response.json()["store"]["pending"] == 0).then_some(())
    });
    // Every probe made (one upstream request each) is stored once, the ones in flight at the
    // stop included.
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(30)).success(), "{}", daemon.logs());
    let probed = up.log.all().len() as i64;
    assert_eq!(pg::PgServer::count(&url, "probes"), probed, "{}", daemon.logs());
    assert!(!daemon.logs().contains(PASSWORD));
}

/// Old probes of a monitor no node probes, stored as node `archive` (what the purge removes).
fn store_old_probes(url: &str, count: usize) {
    use llm_monitor::store::db::{self, Row, WriteCache, Writing};
    use llm_monitor::store::sql::pg;
    let pg_url = llm_monitor::config::PgUrl::parse(url).unwrap();
    let mut conn = db::open_postgres(&pg_url, "archive").unwrap();
    let node = pg::claim_node(&mut conn, "archive").unwrap();
    let ids = pg::monitor_ids(&mut conn, &[llm_monitor::config::MonitorKey::new("old", "gone", "")]).unwrap();
    let old =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 - 40 * 86_400;
    let rows: Vec<Row> = (0..count)
        .map(|i| Row {
            monitor_id: ids[0],
            ts: old + i as i64,
            status: 1,
            latency_ms: 100,
            reason: "ok".into(),
            http_code: 200,
            ..Row::default()
        })
        .collect();
    pg::insert_staged(&mut conn, &rows, &WriteCache::default(), Writing { node, seq: 1 }).unwrap();
}

#[test]
fn killing_the_leader_hands_purge_and_alerts_to_another_node_and_nothing_is_sent_twice() {
    use crate::support::switchboard::Switchboard;
    let Some(server) = pg::server("killing_the_leader") else { return };
    let url = server.database();
    let sb = Switchboard::start();
    let config = |name: &str| {
        format!(
            "node: {name}\nalerts:\n  failure_threshold: 2\n  success_threshold: 2\n  storm: {{min_monitors: 0}}\n  channels:\n    - {{name: ops, type: webhook, url: \"{base}/hook/ops\"}}\n  default_channels: [ops]\nmonitors:\n  - {{provider: relay, service: a, url: \"{base}/up/a\", method: GET, interval: 1s, timeout: 2s, slow_latency: 1s}}\n",
            base = sb.base
        )
    };
    let leader_of = |daemon: &Daemon| daemon.get("/health").json()["node"]["leader"] == true;
    let ws_alpha = Workspace::new(&config("alpha"));
    let mut alpha = ws_alpha.start_with_env(&[("MONITOR_DATABASE_URL", &url)]);
    wait_for("alpha to lead", Duration::from_secs(10), || leader_of(&alpha).then_some(()));
    let others: Vec<(Workspace, Daemon)> = ["beta", "gamma"]
        .iter()
        .map(|name| {
            let ws = Workspace::new(&config(name));
            let daemon = ws.start_with_env(&[("MONITOR_DATABASE_URL", &url)]);
            (ws, daemon)
        })
        .collect();
    for (_, daemon) in &others {
        wait_nodes_relay(daemon, &["alpha", "beta", "gamma"]);
        let health = daemon.get("/health").json();
        assert_eq!(health["node"]["leader"], false, "{health}");
    }
    assert_eq!(alpha.get("/health").json()["node"]["name"], "alpha");

    // Down, sent once by the leader.
    sb.set("a", "red");
    wait_for("the down message", Duration::from_secs(20), || {
        sb.accepted_events("ops").contains(&"down".to_string()).then_some(())
    });
    wait_for("the down recorded as sent", Duration::from_secs(10), || {
        (pg::PgServer::count(&url, "outbox WHERE state = 1") >= 1).then_some(())
    });
    // Every node's /api/events shows it (the leader wrote it).
    for (_, daemon) in &others {
        wait_for("the down event on another node", Duration::from_secs(5), || {
            let events = daemon.get("/api/events").json();
            events["data"].as_array().unwrap().iter().any(|e| e["type"] == "down").then_some(())
        });
    }

    // History only the purge removes, then the leader dies.
    store_old_probes(&url, 500);
    assert_eq!(pg::PgServer::count(&url, "probes WHERE node_id = (SELECT id FROM nodes WHERE name = 'archive')"), 500);
    alpha.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = alpha.wait_exit(Duration::from_secs(10));
    let killed = Instant::now();
    let new_leader = wait_for("another node to lead", Duration::from_secs(30), || {
        others.iter().position(|(_, daemon)| leader_of(daemon))
    });
    // It purges (within 30 s of the death) ...
    wait_for("the new leader's purge", Duration::from_secs(30), || {
        (pg::PgServer::count(&url, "probes WHERE ts < extract(epoch from now())::bigint - 35 * 86400") == 0)
            .then_some(())
    });
    assert!(killed.elapsed() <= Duration::from_secs(30), "takeover and purge took {:?}", killed.elapsed());
    // ... and sends what comes next, exactly once.
    sb.set("a", "green");
    wait_for("the up message", Duration::from_secs(30), || {
        sb.accepted_events("ops").contains(&"up".to_string()).then_some(())
    });
    let leader = &others[new_leader].1;
    let sent = sb.accepted_events("ops");
    assert_eq!(sent.iter().filter(|e| *e == "down").count(), 1, "{sent:?}\n{}", leader.logs());
    assert_eq!(sent.iter().filter(|e| *e == "up").count(), 1, "{sent:?}\n{}", leader.logs());
    let events = leader.get("/api/events").json();
    let kinds: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .filter(|k| *k == "down" || *k == "up")
        .collect();
    assert_eq!(kinds, ["down", "up"], "{events}");
}

fn wait_nodes_relay(daemon: &Daemon, names: &[&str]) -> Value {
    wait_for(&format!("nodes {names:?} in the answer"), Duration::from_secs(20), || {
        let monitor = daemon.monitor("relay", "a");
        names.iter().all(|n| !monitor["nodes"][n]["current_status"].is_null()).then_some(monitor)
    })
}

/// A config whose monitors never store a probe while a test runs (a black hole, a 5 min
/// timeout, a 24 h interval): the history is what the test wrote.
fn quiet_config(node: &str, black_hole: &str) -> String {
    format!(
        "node: {node}\ninterval: 24h\ntimeout: 5m\nslow_latency: 4m\nmonitors:\n  - {{provider: Hist, service: chat, url: \"{black_hole}\", method: GET}}\n  - {{provider: hist, service: code, channel: vip, url: \"{black_hole}\", method: GET}}\n"
    )
}

/// 30 days of probes every 2 minutes for two monitors, with red and yellow spells and LLM
/// figures, written to the SQLite database as the daemon would.
fn generate_history(path: &std::path::Path) -> usize {
    use llm_monitor::store::db::{self, Row};
    let mut conn = db::open(path).unwrap();
    let keys = [
        llm_monitor::config::MonitorKey::new("Hist", "chat", ""),
        llm_monitor::config::MonitorKey::new("hist", "code", "vip"),
    ];
    let ids = db::monitor_ids(&mut conn, &keys).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let mut rows = Vec::new();
    let mut x: u64 = 7;
    for step in 0..(30 * 720) {
        let ts = now - 30 * 86_400 + step * 120;
        for (n, id) in ids.iter().enumerate() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let status = match (x >> 33) % 50 {
                0 => 0,
                1 | 2 => 2,
                _ => 1,
            };
            let latency = 200 + ((x >> 40) % 2_000) as i32;
            rows.push(Row {
                monitor_id: *id,
                ts: ts + n as i64,
                status,
                latency_ms: latency,
                reason: if status == 0 { "server_error".into() } else { "ok".into() },
                http_code: if status == 0 { 502 } else { 200 },
                detail: (status == 0).then(|| "HTTP 502".to_string()),
                ttft_ms: (status != 0).then_some(latency / 2),
                tokens_per_s: (status != 0).then_some(42.5),
                model: (status != 0).then(|| format!("model-{}", (x >> 20) % 3)),
                prompt_tokens: (status != 0).then_some(12),
                completion_tokens: (status != 0).then_some(2),
                cost_nanos: None,
                ..Row::default()
            });
        }
    }
    for chunk in rows.chunks(5_000) {
        db::insert(&mut conn, chunk).unwrap();
    }
    rows.len()
}

fn migrate(ws: &Workspace, url: &str, node: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_llm-monitor"))
        .args(["migrate-store", "--from"])
        .arg(ws.db_path())
        .args(["--node", node])
        .env("MONITOR_DATABASE_URL", url)
        .output()
        .unwrap()
}

/// The `/api/status` answer without `meta.generated_at`.
fn answer_without_time(daemon: &Daemon, query: &str) -> Value {
    let mut answer = daemon.status(query);
    answer["meta"].as_object_mut().unwrap().remove("generated_at");
    answer
}

#[test]
fn migrate_store_copies_30_days_once_and_both_stores_answer_the_same() {
    let Some(server) = pg::server("migrate_store_copies_30_days") else { return };
    let url = server.database();
    let quiet = upstream::black_hole();
    let ws = Workspace::sqlite(&quiet_config("n1", &quiet.url));
    let rows = generate_history(&ws.db_path());

    let first = migrate(&ws, &url, "n1");
    let said = String::from_utf8_lossy(&first.stdout).to_string() + &String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{said}");
    assert!(said.contains(&format!("{rows} probes copied")), "{said}");
    assert!(!said.contains(PASSWORD), "{said}");
    assert_eq!(pg::PgServer::count(&url, "probes"), rows as i64);
    // On a terminal it draws a progress bar (run again under `script`, a pseudo-terminal:
    // nothing left to copy, so the bar is at its end).
    if std::path::Path::new("/usr/bin/script").exists() {
        let command =
            format!("{} migrate-store --from {} --node n1", env!("CARGO_BIN_EXE_llm-monitor"), ws.db_path().display());
        let shown = std::process::Command::new("/usr/bin/script")
            .args(["-qec", &command, "/dev/null"])
            .env("MONITOR_DATABASE_URL", &url)
            .output()
            .unwrap();
        let screen = String::from_utf8_lossy(&shown.stdout).to_string();
        assert!(shown.status.success(), "{screen}");
        assert!(screen.contains(&format!("{rows}/{rows} probes")), "{screen}");
        assert!(!screen.contains(PASSWORD), "{screen}");
    }
    // Again: nothing more.
    let again = migrate(&ws, &url, "n1");
    let said = String::from_utf8_lossy(&again.stdout).to_string();
    assert!(again.status.success(), "{said}");
    assert!(said.contains(&format!("0 probes copied to postgres://monitor:***@{}", server.address)), "{said}");
    assert_eq!(pg::PgServer::count(&url, "probes"), rows as i64);

    let on_sqlite = ws.start();
    let ws_pg = Workspace::new(&quiet_config("n1", &quiet.url));
    let on_pg = ws_pg.start_with_env(&[("MONITOR_DATABASE_URL", &url)]);
    for query in ["?period=24h", "?period=7d", "?period=30d", "?period=30d&provider=hist&service=code"] {
        // Asked of both within one second (answers are per second).
        let (a, b) = wait_for("both answers in one second", Duration::from_secs(10), || {
            let a = answer_without_time(&on_sqlite, query);
            let b = answer_without_time(&on_pg, query);
            (a == b).then_some((a, b))
        });
        assert_eq!(a, b, "{query}");
        assert!(a["data"][0]["uptime"].as_f64().unwrap() < 100.0, "{a}");
    }
}

#[test]
fn migrate_store_resumes_where_it_was_cut_off() {
    let Some(server) = pg::server("migrate_store_resumes") else { return };
    let url = server.database();
    let quiet = upstream::black_hole();
    let ws = Workspace::sqlite(&quiet_config("n1", &quiet.url));
    let rows = generate_history(&ws.db_path()) as u64;
    let target = llm_monitor::config::PgUrl::parse(&url).unwrap();
    // Cut off after the second slice.
    let cut = std::panic::catch_unwind(|| {
        let mut slices = 0;
        llm_monitor::store::migrate::migrate_store(&ws.db_path(), &target, "n1", |_, _| {
            slices += 1;
            assert!(slices <= 2, "cut off");
        })
    });
    assert!(cut.is_err());
    let copied = pg::PgServer::count(&url, "probes") as u64;
    assert_eq!(copied, 2 * llm_monitor::store::migrate::SLICE as u64);
    let rest = llm_monitor::store::migrate::migrate_store(&ws.db_path(), &target, "n1", |_, _| {}).unwrap();
    assert_eq!(rest.skipped, copied);
    assert_eq!(rest.probes, rows - copied);
    assert_eq!(pg::PgServer::count(&url, "probes") as u64, rows);
}

/// The status page with two nodes: each monitor shows every node's own status under the
/// combined one, and the node switch shows one node's view.
#[test]
fn the_status_page_shows_each_node_and_switches_between_them() {
    use headless_chrome::{Browser, LaunchOptions};
    let Some(server) = pg::server("the_status_page_shows_each_node") else { return };
    let Some(path) = crate::web::chromium() else {
        if std::env::var_os("LLM_MONITOR_REQUIRE_BROWSER").is_some() {
            panic!("LLM_MONITOR_REQUIRE_BROWSER is set but no Chromium was found (apt-get install chromium)");
        }
        eprintln!("SKIPPED the_status_page_shows_each_node: no Chromium");
        return;
    };
    let url = server.database();
    let up = upstream::start();
    let alpha = start_node(&url, "alpha", &up, "/m/a", "majority");
    let _gamma = start_node(&url, "gamma", &up, "/status/500", "majority");
    wait_nodes(&alpha.daemon, &["alpha", "gamma"]);

    let profile = tempfile::tempdir().unwrap();
    let args: Vec<String> = [
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        &format!("--user-data-dir={}", profile.path().display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let options = LaunchOptions::default_builder()
        .path(Some(path))
        .headless(true)
        .sandbox(false)
        .idle_browser_timeout(Duration::from_secs(120))
        .args(args.iter().map(std::ffi::OsStr::new).collect())
        .build()
        .unwrap();
    let browser = Browser::new(options).expect("Chromium starts");
    let tab = browser.new_tab().unwrap();
    tab.navigate_to(&format!("{}/?lang=en", alpha.daemon.base)).unwrap().wait_until_navigated().unwrap();
    let eval = |js: &str| -> Value {
        let result = tab.evaluate(js, false).unwrap_or_else(|e| panic!("{js}: {e}"));
        let text = result.value.and_then(|v| v.as_str().map(String::from)).unwrap_or_else(|| "null".into());
        serde_json::from_str(&text).unwrap()
    };
    let chips = wait_for("a chip per node", Duration::from_secs(20), || {
        let chips = eval(
            r#"JSON.stringify([...document.querySelectorAll('.monitor-row .node-chip')].map(c => [c.dataset.node, Number(c.dataset.status)]))"#,
        );
        (chips.as_array().map(Vec::len) == Some(2)).then_some(chips)
    });
    assert_eq!(chips, serde_json::json!([["alpha", 1], ["gamma", 0]]));
    // Combined (majority of two needs both): not red.
    let combined = eval("JSON.stringify(Number(document.querySelector('.monitor-row').dataset.status))");
    assert_eq!(combined, 1);
    let options = eval(
        r#"JSON.stringify([document.getElementById('node-switch').hidden, [...document.getElementById('node').options].map(o => o.value)])"#,
    );
    assert_eq!(options, serde_json::json!([false, ["", "alpha", "gamma"]]));
    // gamma's own view.
    eval("(() => { const s = document.getElementById('node'); s.value = 'gamma'; s.dispatchEvent(new Event('change')); return '1'; })()");
    wait_for("gamma's view", Duration::from_secs(10), || {
        let loaded = eval("JSON.stringify(document.body.dataset.loaded || '')");
        let status = eval("JSON.stringify(Number(document.querySelector('.monitor-row').dataset.status))");
        (loaded == "24h@gamma" && status == 0).then_some(())
    });
    assert_eq!(eval("JSON.stringify(document.querySelectorAll('.node-chip').length)"), 0);
}

/// Nodes starting together on an empty database create the schema once, without tripping over
/// each other.
#[test]
fn nodes_starting_together_create_the_schema_once() {
    let Some(server) = pg::server("nodes_starting_together") else { return };
    let url = llm_monitor::config::PgUrl::parse(&server.database()).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || llm_monitor::store::db::open_postgres(&url, &format!("n{i}")).map(drop))
        })
        .collect();
    for thread in threads {
        thread.join().unwrap().unwrap();
    }
    // Each migration recorded once (a second run of one would have failed on its CREATE TABLE).
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations_postgres")).unwrap().count();
    assert!(migrations >= 2);
    assert_eq!(pg::PgServer::count(&url.expose(), "__diesel_schema_migrations"), migrations as i64);
}

/// TLS is built in: asking for it of a server without it fails for the server's reason, not
/// because the client cannot.
#[test]
fn the_postgres_client_speaks_tls() {
    let Some(server) = pg::server("the_postgres_client_speaks_tls") else { return };
    let url = server.database() + "?sslmode=require";
    let url = llm_monitor::config::PgUrl::parse(&url).unwrap();
    let error = llm_monitor::store::db::open_postgres(&url, "tls").map(drop).unwrap_err().to_string();
    assert!(error.contains("server does not support SSL"), "{error}");
    assert!(!error.contains(PASSWORD), "{error}");
}

/// A node that cannot reach its database at start-up exits, saying so without the password.
#[test]
fn a_node_without_its_database_at_start_up_exits_with_the_error() {
    let port = crate::support::upstream::closed_port();
    let ws = Workspace::new("node: lonely\nmonitors: []\n");
    let url = format!("postgres://monitor:{PASSWORD}@127.0.0.1:{port}/llm_monitor");
    let mut daemon = ws.spawn_with_env(&[("MONITOR_DATABASE_URL", &url)]);
    let exit = daemon.wait_exit(Duration::from_secs(20));
    assert!(!exit.success());
    let logs = daemon.logs();
    assert!(logs.contains(&format!("postgres://monitor:***@127.0.0.1:{port}/llm_monitor")), "{logs}");
    assert!(!logs.contains(PASSWORD), "{logs}");
}

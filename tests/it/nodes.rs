//! Several probing nodes sharing one PostgreSQL database (issue 12): each the real daemon with
//! its own config, all on one machine, against one fake upstream that some nodes reach and
//! one does not. Needs PostgreSQL (see `support::pg`): SKIPPED without it.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::pg::{self, PASSWORD};
use crate::support::upstream::{self, Upstream};
use crate::support::{wait_for, Daemon, Workspace};

/// A node's config: one monitor `r/a` probing `path` every second.
fn node_config(name: &str, up: &Upstream, path: &str, quorum: &str) -> String {
    format!(
        "node: {name}\nquorum: {quorum}\nmonitors:\n  - {{provider: r, service: a, url: \"{}{path}\", method: GET, interval: 1s}}\n",
        up.base
    )
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
    let beta = start_node(&url, "beta", &up, "/m/a", "majority");
    // gamma's route to the relay is broken: every probe of it is red.
    let gamma = start_node(&url, "gamma", &up, "/status/500", "majority");

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
fn a_killed_node_goes_stale_and_is_never_counted_red() {
    let Some(server) = pg::server("a_killed_node_goes_stale") else { return };
    let url = server.database();
    let up = upstream::start();
    let alpha = start_node(&url, "alpha", &up, "/m/a", "1");
    let gamma = start_node(&url, "gamma", &up, "/status/500", "1");
    wait_nodes(&alpha.daemon, &["alpha", "gamma"]);
    // Under quorum 1, gamma's red makes the combined status red.
    wait_for("combined red", Duration::from_secs(10), || {
        (alpha.daemon.monitor("r", "a")["current_status"]["status"] == 0).then_some(())
    });
    gamma.daemon.signal(nix::sys::signal::Signal::SIGKILL);
    // 3 intervals (1 s) without a probe from gamma: stale, out of the quorum.
    let monitor = wait_for("gamma stale", Duration::from_secs(15), || {
        let monitor = alpha.daemon.monitor("r", "a");
        (monitor["nodes"]["gamma"]["stale"] == true).then_some(monitor)
    });
    assert!(monitor["nodes"]["gamma"]["current_status"].is_null(), "{monitor}");
    assert!(monitor["nodes"]["gamma"]["last_probe"].as_i64().is_some(), "{monitor}");
    wait_for("combined green without gamma", Duration::from_secs(5), || {
        (alpha.daemon.monitor("r", "a")["current_status"]["status"] == 1).then_some(())
    });
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

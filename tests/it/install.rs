//! What installing it takes beyond the binary: `llm-monitor health` (the container's
//! HEALTHCHECK), the completions and man page the Debian package ships, and the Dockerfile,
//! .dockerignore and compose.yaml themselves. The image and the package are built, run and
//! installed in `container.rs` and `package.rs`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::{receiver, upstream, Workspace, BIN};

fn repo(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// `llm-monitor health` with exactly these variables (the test's own PORT or MONITOR_LISTEN
/// must not leak in).
fn health(config: &Path, env: &[(&str, &str)]) -> (Output, Duration) {
    let mut command = Command::new(BIN);
    command.arg("health").arg("--config").arg(config).env_remove("PORT").env_remove("MONITOR_LISTEN");
    for (name, value) in env {
        command.env(name, value);
    }
    let started = Instant::now();
    let out = command.output().unwrap();
    (out, started.elapsed())
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn health_asks_the_running_daemon_where_it_listens() {
    let ws = Workspace::new("monitors: []\n");
    let daemon = ws.start();
    let addr = daemon.base.trim_start_matches("http://").to_string();
    let port = addr.rsplit_once(':').unwrap().1.to_string();

    // The environment wins, as in the daemon: MONITOR_LISTEN, then PORT (on every interface,
    // asked on the loopback).
    let (out, _) = health(&ws.config_path(), &[("MONITOR_LISTEN", &addr)]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).starts_with(&format!("healthy: http://{addr}/health: 200 OK")), "{}", stdout(&out));
    assert!(stdout(&out).contains("\"status\""), "the body is shown: {}", stdout(&out));
    let (out, _) = health(&ws.config_path(), &[("PORT", &port)]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains(&format!("http://127.0.0.1:{port}/health")), "{}", stdout(&out));

    // The config's `listen` when the environment says nothing, 0.0.0.0 asked on the loopback.
    let other = tempfile::tempdir().unwrap();
    let config = other.path().join("config.yaml");
    std::fs::write(&config, format!("listen: \"0.0.0.0:{port}\"\nmonitors: []\n")).unwrap();
    let (out, _) = health(&config, &[]);
    assert!(out.status.success(), "{}", stdout(&out));
    // The daemon's own config says port 0 (chosen at start): that cannot be asked.
    let (out, _) = health(&ws.config_path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("port 0"), "{}", stdout(&out));
}

#[test]
fn health_fails_on_anything_but_a_200_and_within_5_s() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    // Nothing listens.
    let closed = upstream::closed_port();
    std::fs::write(&config, format!("listen: \"127.0.0.1:{closed}\"\n")).unwrap();
    let (out, took) = health(&config, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("unhealthy: ") && stdout(&out).contains("refused"), "{}", stdout(&out));
    assert!(took < Duration::from_secs(5), "{took:?}");

    // A 503 (a daemon whose store cannot write).
    let sick = receiver::answering(503, r#"{"status":"degraded"}"#);
    let addr = sick.base.trim_start_matches("http://");
    let (out, _) = health(&config, &[("MONITOR_LISTEN", addr)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("503 Service Unavailable") && stdout(&out).contains("degraded"), "{}", stdout(&out));
    assert_eq!(sick.only_request().path, "/health");

    // A server that accepts and never answers: given up on within the 5 s.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hung = listener.local_addr().unwrap().to_string();
    let held = std::thread::spawn(move || listener.accept().map(|(stream, _)| stream));
    let (out, took) = health(&config, &[("MONITOR_LISTEN", &hung)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("no answer within"), "{}", stdout(&out));
    assert!(took < Duration::from_secs(5), "{took:?}");
    drop(held.join());

    // A config that cannot be read leaves it to the environment, and says so.
    let well = receiver::answering(200, r#"{"status":"ok"}"#);
    let (out, _) =
        health(&dir.path().join("missing.yaml"), &[("MONITOR_LISTEN", well.base.trim_start_matches("http://"))]);
    assert!(out.status.success(), "{}", stdout(&out));
    let (out, _) = health(&dir.path().join("missing.yaml"), &[("PORT", &closed.to_string())]);
    assert!(stdout(&out).contains(&format!("127.0.0.1:{closed}")), "{}", stdout(&out));
    let (out, _) = health(&dir.path().join("missing.yaml"), &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.yaml: cannot open"), "{out:?}");
}

#[test]
fn monitor_config_names_the_config_when_config_is_not_given() {
    let up = upstream::start();
    let ws = Workspace::new(&format!(
        "monitors:\n  - {{provider: env, service: cfg, url: \"{}/ok\", method: GET}}\n",
        up.base
    ));
    let check = |args: &[&str], env: Option<&Path>| {
        let mut command = Command::new(BIN);
        command.args(args).current_dir(ws.path().join("data")).env_remove("MONITOR_CONFIG");
        if let Some(path) = env {
            command.env("MONITOR_CONFIG", path);
        }
        command.output().unwrap()
    };
    let out = check(&["check"], Some(&ws.config_path()));
    assert!(out.status.success() && stdout(&out).contains("1 monitors"), "{out:?}");
    // Without it, config.yaml in the working directory (here there is none).
    let out = check(&["check"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("config.yaml"), "{out:?}");
    // --config wins over it.
    let out = check(&["check", "--config", "/nonexistent/x.yaml"], Some(&ws.config_path()));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.yaml"), "{out:?}");
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line_definition() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let subcommands = ["check", "health", "alert-test", "migrate-store", "completions", "manpage"];
    for (shell, marker) in
        [("bash", "complete -F"), ("zsh", "#compdef llm-monitor"), ("fish", "complete -c llm-monitor")]
    {
        let script = run(&["completions", shell]);
        assert!(script.contains(marker), "{shell}: {script}");
        for sub in subcommands {
            assert!(script.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let man = run(&["manpage"]);
    assert!(man.starts_with(".ie") && man.contains(".TH llm-monitor 1"), "{man}");
    // Every page the main page refers to is written with --dir, each with its options.
    let dir = tempfile::tempdir().unwrap();
    run(&["manpage", "--dir", dir.path().to_str().unwrap()]);
    for sub in subcommands {
        let name = format!("llm-monitor-{sub}");
        assert!(man.contains(&format!("{}(1)", name.replace('-', "\\-"))), "the man page does not name {name}(1)");
        let page = std::fs::read_to_string(dir.path().join(format!("{name}.1")))
            .unwrap_or_else(|e| panic!("{name}.1 is not written: {e}"));
        assert!(page.contains(&format!(".TH {name} 1")), "{page}");
    }
    let migrate = std::fs::read_to_string(dir.path().join("llm-monitor-migrate-store.1")).unwrap();
    for option in ["\\-\\-from", "\\-\\-to", "\\-\\-node"] {
        assert!(migrate.contains(option), "migrate-store's page lacks {option}");
    }
    assert!(std::fs::read_to_string(dir.path().join("llm-monitor.1")).unwrap() == man);
    // bash itself accepts the script and registers it.
    if let Ok(out) = Command::new("bash")
        .arg("-c")
        .arg(format!("source <({BIN} completions bash) && complete -p llm-monitor"))
        .output()
    {
        assert!(out.status.success() && stdout(&out).contains("llm-monitor"), "{}", stdout(&out));
    }
    let bad = Command::new(BIN).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("tcsh"));
}

/// One instruction of the runtime stage (continuation lines joined).
fn instructions(dockerfile: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                if !current.trim().is_empty() {
                    out.push(current.split_whitespace().collect::<Vec<_>>().join(" "));
                }
                current.clear();
            }
        }
    }
    out
}

#[test]
fn the_dockerfile_builds_in_one_stage_and_runs_in_another_from_debian_slim_as_non_root() {
    let all = instructions(&repo("Dockerfile"));
    let froms: Vec<&String> = all.iter().filter(|i| i.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(froms[0].contains("rust:") && froms[0].ends_with(" AS build"), "{}", froms[0]);
    assert!(froms[1].contains("debian:") && froms[1].contains("-slim"), "{}", froms[1]);
    let runtime: Vec<&String> = all.iter().skip_while(|i| *i != froms[1]).collect();
    // Only the binary comes from the build stage.
    let from_build: Vec<&&String> = runtime.iter().filter(|i| i.contains("--from=")).collect();
    assert_eq!(from_build.len(), 1, "{from_build:?}");
    assert!(from_build[0].starts_with("COPY --from=build ") && from_build[0].ends_with("/usr/bin/llm-monitor"));
    let has = |prefix: &str| runtime.iter().find(|i| i.starts_with(prefix)).map(|i| i.to_string());
    let user = has("USER ").expect("a USER");
    assert!(!user.contains("root") && !user.ends_with(" 0") && !user.contains(" 0:"), "{user}");
    assert_eq!(has("EXPOSE ").as_deref(), Some("EXPOSE 8080"));
    assert_eq!(has("VOLUME ").as_deref(), Some("VOLUME [\"/var/lib/llm-monitor\"]"));
    assert_eq!(has("WORKDIR ").as_deref(), Some("WORKDIR /var/lib/llm-monitor"));
    let health = has("HEALTHCHECK ").expect("a HEALTHCHECK");
    assert!(health.contains("\"/usr/bin/llm-monitor\", \"health\""), "{health}");
    assert!(!runtime.iter().any(|i| i.contains("curl") || i.contains("wget")), "no curl in the image");
    // Arguments go to the binary; the config is the image's own unless MONITOR_CONFIG or
    // --config says otherwise.
    assert_eq!(has("ENTRYPOINT ").as_deref(), Some("ENTRYPOINT [\"/usr/bin/llm-monitor\"]"));
    assert!(has("ENV MONITOR_CONFIG=/etc/llm-monitor/config.yaml").is_some());
    assert!(has("COPY config.yaml.example /etc/llm-monitor/config.yaml").is_some());
    assert!(health.contains("--timeout=5s"), "{health}");
}

#[test]
fn the_build_context_leaves_out_output_databases_and_secrets() {
    let ignore = repo(".dockerignore");
    let patterns: Vec<&str> = ignore.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).collect();
    // At any depth (a pattern without ** matches at the top only).
    for needed in ["/target", "/.git", "**/*.db", "**/*.db-wal", "/config.yaml", "/config", "**/*.env", "**/.env"] {
        assert!(patterns.contains(&needed), "{needed} is not ignored: {patterns:?}");
    }
    // What the runtime stage copies is not ignored.
    for copied in ["config.yaml.example", "data", "Cargo.toml", "src", "migrations"] {
        assert!(!patterns.iter().any(|p| p.trim_start_matches('/') == copied), "{copied} is ignored");
    }
}

#[test]
fn compose_runs_the_image_with_its_volume_env_file_and_a_stable_node_name() {
    let compose: serde_yaml::Value = serde_yaml::from_str(&repo("compose.yaml")).unwrap();
    let services = compose["services"].as_mapping().unwrap();
    assert_eq!(services.len(), 1, "one service; PostgreSQL and the second node are commented out");
    let daemon = &compose["services"]["llm-monitor"];
    assert_eq!(daemon["build"].as_str(), Some("."));
    assert_eq!(daemon["pull_policy"].as_str(), Some("build"), "a local image name must not be pulled");
    assert!(daemon["hostname"].as_str().is_some(), "the node name must not be the container id");
    assert_eq!(daemon["env_file"].as_str(), Some("llm-monitor.env"));
    let volumes: Vec<&str> = daemon["volumes"].as_sequence().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(volumes.contains(&"llm-monitor-data:/var/lib/llm-monitor"), "{volumes:?}");
    // The config's own directory, over nothing the image has, and MONITOR_CONFIG naming it.
    assert!(volumes.contains(&"./config:/config:ro"), "{volumes:?}");
    assert!(!volumes.iter().any(|v| v.contains(":/etc/llm-monitor")), "{volumes:?}");
    assert_eq!(daemon["environment"]["MONITOR_CONFIG"].as_str(), Some("/config/config.yaml"));
    assert!(compose["volumes"].as_mapping().unwrap().contains_key("llm-monitor-data"));
    assert_eq!(daemon["ports"][0].as_str(), Some("8080:8080"));
    assert_eq!(daemon["stop_grace_period"].as_str(), Some("400s"), "the unit's TimeoutStopSec");
    // No secret in the file itself.
    assert!(!repo("compose.yaml").contains("change-me") && !repo("compose.yaml").contains("PASSWORD:"));
    // The commented parts are valid compose once uncommented, the volume they use included.
    let text = repo("compose.yaml");
    let postgres = commented_block(&text, "  # postgres:");
    assert!(postgres["postgres"]["image"].as_str().unwrap().starts_with("postgres:"));
    let data = postgres["postgres"]["volumes"][0].as_str().unwrap();
    let volume = data.split(':').next().unwrap();
    assert!(text.lines().any(|l| l == format!("  # {volume}:")), "the volume {volume} is not there to uncomment");
    let b = commented_block(&text, "  # llm-monitor-b:");
    assert_eq!(b["llm-monitor-b"]["hostname"].as_str(), Some("node-b"));
    assert_eq!(b["llm-monitor-b"]["env_file"], daemon["env_file"]);
    let shared = commented_block(&text, "    # depends_on:");
    assert_eq!(shared["depends_on"]["postgres"]["condition"].as_str(), Some("service_healthy"));
}

/// The YAML commented out from the line `first` on: the lines after it with the same
/// indentation and `# `, uncommented.
fn commented_block(text: &str, first: &str) -> serde_yaml::Value {
    let prefix = &first[..first.find("# ").unwrap() + 2];
    let block: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != first)
        .take_while(|l| l.starts_with(prefix))
        .map(|l| &l[prefix.len()..])
        .collect();
    assert!(!block.is_empty(), "no {first:?} in compose.yaml");
    serde_yaml::from_str(&block.join("\n")).unwrap_or_else(|e| panic!("{first}: {e}\n{}", block.join("\n")))
}

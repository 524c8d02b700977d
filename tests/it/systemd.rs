//! The systemd unit: the hardening it promises, a Documentation= that its install steps
//! install, and `systemd-analyze verify` / `security` when systemd-analyze is there.

use std::path::Path;
use std::process::Command;

fn unit() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/llm-monitor.service")).unwrap()
}

fn values(unit: &str, key: &str) -> Vec<String> {
    unit.lines().filter_map(|l| l.strip_prefix(&format!("{key}="))).map(str::to_string).collect()
}

#[test]
fn the_unit_is_hardened_and_documented() {
    let unit = unit();
    for (key, value) in [
        ("Type", "notify"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Restart", "on-failure"),
        ("LimitNOFILE", "65536"),
        ("PrivateMounts", "yes"),
        ("ProcSubset", "pid"),
        ("RemoveIPC", "yes"),
        ("UMask", "0077"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("StateDirectory", "llm-monitor"),
    ] {
        assert!(values(&unit, key).iter().any(|v| v == value), "{key}={value} missing");
    }
    assert!(values(&unit, "After").iter().any(|v| v.split(' ').any(|u| u == "time-sync.target")));
    assert!(values(&unit, "SystemCallFilter").iter().any(|v| v == "~@resources"));
    // The documentation it names is a file the install steps in its header put there.
    let documentation = values(&unit, "Documentation");
    assert_eq!(documentation.len(), 1);
    let path = documentation[0].strip_prefix("file://").expect("a file:// documentation link");
    assert!(
        unit.lines().any(|l| l.starts_with("#   install") && l.ends_with(path)),
        "no install step puts {path} in place"
    );
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        println!("SKIPPED: systemd-analyze not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Verified as installed: the binary where ExecStart says it is (here, the one under test).
    let unit = unit().replace("/usr/bin/llm-monitor", env!("CARGO_BIN_EXE_llm-monitor"));
    let path = dir.path().join("llm-monitor.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !text.contains(".service:"), "{text}");
    let out = Command::new("systemd-analyze").args(["security", "--offline=true"]).arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if text.contains("Overall exposure level") {
        let level: f64 = text
            .split("Overall exposure level for llm-monitor.service: ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!(level <= 1.5, "exposure {level}:\n{text}");
    }
}

//! Arbitrary text as a config file: the loader may refuse it, never panic, and what it accepts
//! keeps the invariants the daemon relies on (unique monitor keys, intervals and timeouts that
//! are not zero, errors that are one line each and bounded).
#![no_main]

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// An empty folder: `!include` and template files resolve here and find nothing.
fn base_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("llm-monitor-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).expect("a scratch folder");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let env = |name: &str| (name == "MONITOR_FUZZ_KEY").then(|| "sk-fuzz-secret-0123456789".to_string());
    match llm_monitor::config::parse_str(&text, base_dir(), &env) {
        Ok(config) => {
            let mut keys = HashSet::new();
            for monitor in &config.monitors {
                assert!(keys.insert(monitor.key.normalized().to_string()), "duplicate key {}", monitor.key);
                assert!(!monitor.interval.is_zero() && !monitor.timeout.is_zero());
            }
        }
        Err(errors) => {
            for line in &errors.0 {
                assert!(!line.is_empty());
                assert!(!line.contains("sk-fuzz-secret"), "a secret in an error: {line}");
            }
        }
    }
});

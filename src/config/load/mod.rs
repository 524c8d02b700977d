//! Reads `config.yaml` into a [`Config`]: strict keys, Go durations, `!include data/...`,
//! API-key env overrides and `{{API_KEY}}` placeholders. Every problem is collected and
//! reported at once, each naming the monitor and the field.

mod alerts;
mod checks;
mod env;
mod fields;
mod files;
mod monitor;
mod page;
mod prices;
mod proxy;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::Value;

use super::duration;
use super::{Config, Database, PgUrl, Quorum, Redactor, SharedRedactor};
use checks::{check_database, check_interval, check_listen, check_timeout, parse_cors};
use fields::{describe, Errors, Fields};
use monitor::{parse_monitor, MonitorContext, Shared};

pub use alerts::alert_env_name;
pub use env::env_var_names;
pub(crate) use files::{read_bounded, read_include};

/// Where the daemon listens when neither the config nor the environment says.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
const DEFAULT_DATABASE: &str = "monitor.db";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_SLOW_LATENCY: Duration = Duration::from_secs(5);
const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 86_400);
const DEFAULT_DEGRADED_WEIGHT: f64 = 0.7;

pub(super) const MIN_INTERVAL: Duration = Duration::from_secs(1);
pub(super) const MAX_INTERVAL: Duration = Duration::from_secs(86_400);
pub(super) const MAX_TIMEOUT: Duration = Duration::from_secs(300);
const MIN_RETENTION: Duration = Duration::from_secs(3_600);
const MAX_RETENTION: Duration = Duration::from_secs(3_650 * 86_400);
/// The config file and every included body are read up to this size; larger is an error.
pub(super) const MAX_FILE_BYTES: u64 = 1024 * 1024;

pub(crate) const API_KEY_PLACEHOLDER: &str = "{{API_KEY}}";
pub(crate) const MODEL_PLACEHOLDER: &str = "{{MODEL}}";
/// Replaced at probe time by a fresh arithmetic question.
pub const CHALLENGE_PLACEHOLDER: &str = "{{CHALLENGE}}";

const GLOBAL_KEYS: &[&str] = &[
    "listen",
    "database",
    "node",
    "quorum",
    "interval",
    "timeout",
    "slow_latency",
    "slow_ttft",
    "retention",
    "degraded_weight",
    "cors",
    "proxy",
    "public_url",
    "alerts",
    "maintenance",
    "page",
    "prices",
    "monitors",
];
pub(super) const MONITOR_KEYS: &[&str] = &[
    "provider",
    "service",
    "channel",
    "url",
    "base_url",
    "template",
    "stream",
    "model",
    "expect_model",
    "method",
    "api_key",
    "api_key_env",
    "headers",
    "body",
    "interval",
    "timeout",
    "slow_latency",
    "slow_ttft",
    "success_contains",
    "fresh_connection",
    "disabled",
    "alerts",
    "failure_threshold",
    "success_threshold",
    "group",
    "daily_budget_usd",
    "confirm",
    "interval_when_failing",
    "integrity_status",
    "stream_check_every",
    "proxy",
    "models",
    "model_rule",
];
pub(super) const CORS_KEYS: &[&str] = &["allowed_origins"];

/// Every problem found in a config file, each a line naming where it is. No configured secret
/// appears in them (values that may be secret are removed before they are returned).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<String>);

impl ConfigErrors {
    /// "1 problem", "3 problems".
    pub fn summary(&self) -> String {
        match self.0.len() {
            1 => "1 problem".to_string(),
            n => format!("{n} problems"),
        }
    }

    /// The errors as a public page may show them: where each problem is, with every quoted
    /// value elided (`method: "…" is not one of ...`), since an operator may have pasted a key
    /// into the wrong field.
    pub fn public(&self) -> Vec<String> {
        self.0.iter().map(|line| elide_quoted(line)).collect()
    }
}

/// Replaces the inside of every double-quoted part of `line` with `…`.
fn elide_quoted(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut inside = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' if inside => {
                out.push_str("…\"");
                inside = false;
            }
            '"' => {
                out.push('"');
                inside = true;
            }
            '\\' if inside => {
                chars.next();
            }
            _ if inside => {}
            c => out.push(c),
        }
    }
    if inside {
        out.push_str("…\"");
    }
    out
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The listening address the environment sets, over the config's `listen`: `MONITOR_LISTEN`
/// (HOST:PORT), else `PORT` (on every interface); empty variables count as unset. Returns the
/// variable's name with the address. `llm-monitor health` asks the same address.
pub fn listen_from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<(&'static str, String)> {
    env("MONITOR_LISTEN")
        .filter(|v| !v.is_empty())
        .map(|v| ("MONITOR_LISTEN", v))
        .or_else(|| env("PORT").filter(|v| !v.is_empty()).map(|p| ("PORT", format!("0.0.0.0:{p}"))))
}

/// Loads `path` with the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with_env(path, &|name| std::env::var(name).ok())
}

/// Loads `path`, reading environment variables through `env` (injected for tests).
pub fn load_with_env(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    let text = files::read_bounded(path).map_err(|e| ConfigErrors(vec![format!("{}: {e}", path.display())]))?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base_dir = if base_dir.as_os_str().is_empty() { PathBuf::from(".") } else { base_dir };
    parse(&text, path, &base_dir, env)
}

/// Parses config `text` as if it were read from `base_dir/config.yaml` (includes and template
/// files resolved under `base_dir`), with environment variables from `env`. For the fuzzer.
pub fn parse_str(text: &str, base_dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    parse(text, &base_dir.join("config.yaml"), base_dir, env)
}

pub(super) struct Globals {
    pub interval: Duration,
    pub timeout: Duration,
    pub slow_latency: Duration,
    pub slow_ttft: Option<Duration>,
    /// Which of these the file sets (the others are defaults).
    pub set: Vec<&'static str>,
    /// `proxy`: the probes' default proxy (`None`: direct).
    pub proxy: Option<crate::proxy::Proxy>,
}

fn parse(
    text: &str,
    path: &Path,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut errors = Errors { lines: Vec::new() };
    let mut warnings = Vec::new();
    let root: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => return Err(ConfigErrors(vec![format!("{}: invalid YAML: {e}", path.display())])),
    };
    let root = match root {
        Value::Mapping(m) => m,
        // Start and reload agree: an empty file (often an editor mid-write) is never "no monitors".
        Value::Null => {
            return Err(ConfigErrors(vec![format!(
                "{}: the file is empty (write `monitors: []` to run with no monitors)",
                path.display()
            )]))
        }
        other => {
            return Err(ConfigErrors(vec![format!(
                "{}: the top level must be a mapping, found {}",
                path.display(),
                describe(&other)
            )]))
        }
    };
    let top = Fields { map: &root, place: String::new() };
    top.check_keys(GLOBAL_KEYS, &mut errors);

    let listen = match listen_from_env(env) {
        Some((var, value)) => {
            if let Err(e) = check_listen(&value) {
                errors.push("", var, e);
            }
            value
        }
        None => {
            let value = top.get::<String>("listen", &mut errors).unwrap_or_else(|| DEFAULT_LISTEN.to_string());
            if let Err(e) = check_listen(&value) {
                errors.push("", "listen", e);
            }
            value
        }
    };
    let database = match env("MONITOR_DATABASE_URL").filter(|v| !v.is_empty()) {
        Some(url) => parse_database(&url, "MONITOR_DATABASE_URL", &mut errors),
        None => {
            let value = top.get::<String>("database", &mut errors).unwrap_or_else(|| DEFAULT_DATABASE.to_string());
            parse_database(&value, "database", &mut errors)
        }
    };
    let database_secrets = match &database {
        Database::Postgres(url) => url.secrets(),
        Database::Sqlite(_) => Vec::new(),
    };
    let node = match top.get::<String>("node", &mut errors) {
        Some(name) => {
            if let Err(e) = check_node(&name) {
                errors.push("", "node", e);
            }
            name
        }
        None => default_node_name(),
    };
    let quorum = match top.map.get("quorum") {
        None => Quorum::default(),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Quorum::One,
        Some(Value::String(text)) if text == "1" => Quorum::One,
        Some(Value::String(text)) if text == "majority" => Quorum::Majority,
        Some(Value::String(text)) if text == "all" => Quorum::All,
        Some(other) => {
            errors.push("", "quorum", format!("must be 1, \"majority\" or \"all\", found {}", describe(other)));
            Quorum::default()
        }
    };
    let mut global_secrets = Vec::new();
    let global_proxy = top
        .get::<String>("proxy", &mut errors)
        .and_then(|text| proxy::parse_proxy(&text, "", "proxy", &mut global_secrets, &mut errors));
    let globals = Globals {
        proxy: global_proxy,
        interval: top.duration("interval", false, &mut errors).unwrap_or(DEFAULT_INTERVAL),
        timeout: top.duration("timeout", false, &mut errors).unwrap_or(DEFAULT_TIMEOUT),
        slow_latency: top.duration("slow_latency", false, &mut errors).unwrap_or(DEFAULT_SLOW_LATENCY),
        slow_ttft: top.duration("slow_ttft", false, &mut errors),
        set: ["interval", "timeout", "slow_latency", "slow_ttft"]
            .into_iter()
            .filter(|k| top.raw(k).is_some())
            .collect(),
    };
    check_interval("", "interval", globals.interval, &mut errors);
    check_timeout("", "timeout", globals.timeout, &mut errors);
    if globals.slow_latency > globals.timeout {
        errors.push(
            "",
            "slow_latency",
            format!(
                "{} exceeds timeout {}: such a probe would time out before it could be slow",
                duration::format(globals.slow_latency),
                duration::format(globals.timeout)
            ),
        );
    }
    if let Some(ttft) = globals.slow_ttft.filter(|t| *t > globals.timeout) {
        errors.push(
            "",
            "slow_ttft",
            format!("{} exceeds timeout {}", duration::format(ttft), duration::format(globals.timeout)),
        );
    }
    let retention = top.duration("retention", true, &mut errors).unwrap_or(DEFAULT_RETENTION);
    if !(MIN_RETENTION..=MAX_RETENTION).contains(&retention) {
        errors.push("", "retention", format!("{} is outside 1h..3650d", duration::format(retention)));
    }
    let degraded_weight = top.get::<f64>("degraded_weight", &mut errors).unwrap_or(DEFAULT_DEGRADED_WEIGHT);
    if !(0.0..=1.0).contains(&degraded_weight) {
        errors.push("", "degraded_weight", format!("{degraded_weight} is outside 0..1"));
    }
    let cors = parse_cors(top.raw("cors"), &mut errors);
    let mut page = page::parse_page(top.raw("page"), &mut errors);
    let prices = prices::parse_prices(top.raw("prices"), &mut errors);

    let mut monitors = Vec::new();
    let mut disabled = 0;
    let mut shared = Shared::default();
    shared.secrets.extend(database_secrets);
    shared.secrets.extend(global_secrets);
    let mut alerts = alerts::parse_alerts(&alerts::AlertInput { root: &top, env }, &mut shared.secrets, &mut errors);
    let mut enabled = Vec::new();
    match top.raw("monitors") {
        None => warnings.push("no monitors configured: nothing will be probed".to_string()),
        Some(Value::Sequence(items)) => {
            if items.is_empty() {
                warnings.push("no monitors configured: nothing will be probed".to_string());
            }
            for (index, item) in items.iter().enumerate() {
                // A monitor of several models is one series per model, each parsed as if it
                // named that model (problems reported once, from the first).
                let series = monitor::model_series(index, item, &mut errors);
                let models: Vec<Option<&str>> = match &series {
                    Some((models, _)) => models.iter().map(|m| Some(m.as_str())).collect(),
                    None => vec![None],
                };
                for (nth, model) in models.into_iter().enumerate() {
                    let context = MonitorContext { index, globals: &globals, base_dir, env, model, first: nth == 0 };
                    let (mut scratch, mut scratch_warnings) = (Errors { lines: Vec::new() }, Vec::new());
                    let (errors, warnings) =
                        if nth == 0 { (&mut errors, &mut warnings) } else { (&mut scratch, &mut scratch_warnings) };
                    let parsed = parse_monitor(&context, item, &mut shared, errors, warnings);
                    let Some((mut monitor, is_disabled)) = parsed else { continue };
                    if let (Some(model), Some((_, rule))) = (model, &series) {
                        monitor.key = monitor.key.with_model(model);
                        monitor.model_rule = Some(*rule);
                    }
                    if is_disabled {
                        disabled += usize::from(nth == 0);
                        continue;
                    }
                    if let (Value::Mapping(map), 0) = (item, nth) {
                        let key = monitor.key.monitor();
                        let place = format!("monitors[{index}] {key}");
                        page.monitor_groups.extend(page::monitor_group(map, &place, &key, errors));
                        enabled.push((index, map, key.clone(), place));
                    }
                    monitors.push(monitor);
                }
            }
        }
        Some(other) => errors.push("", "monitors", format!("must be a list, found {}", describe(other))),
    }

    alerts.monitors = alerts::monitor_alerts(&alerts, &enabled, &mut errors);
    let redactor = Redactor::new(&shared.secrets);
    if !errors.lines.is_empty() {
        return Err(ConfigErrors(errors.lines.iter().map(|line| redactor.redact(line)).collect()));
    }
    // One redactor for all: a relay or cache shared by several monitors may echo one
    // monitor's key in another monitor's reply.
    let redactor = SharedRedactor(std::sync::Arc::new(redactor));
    for monitor in &mut monitors {
        monitor.redactor = redactor.clone();
        monitor.price = monitor.model.as_deref().and_then(|model| prices.lookup(model));
        if monitor.daily_budget_usd.is_some() && monitor.price.is_none() {
            warnings.push(format!(
                "{}: daily_budget_usd is set, but no price is known for its model (give it a model and a price under prices:): the budget never runs out",
                monitor.key
            ));
        }
    }
    alerts.redactor = redactor;
    Ok(Config {
        path: path.to_path_buf(),
        listen,
        database,
        node,
        quorum,
        retention,
        degraded_weight,
        cors,
        page,
        prices,
        monitors,
        disabled,
        alerts,
        warnings,
    })
}

/// `database`: a `postgres://` URL, or a SQLite file path.
fn parse_database(value: &str, key: &str, errors: &mut Errors) -> Database {
    if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        match PgUrl::parse(value) {
            Ok(url) => return Database::Postgres(url),
            Err(e) => {
                errors.push("", key, e);
                return Database::Sqlite(PathBuf::from(DEFAULT_DATABASE));
            }
        }
    }
    if value.contains("://") {
        errors.push("", key, "a URL must start with postgres:// or postgresql:// (otherwise: a SQLite file path)");
        return Database::Sqlite(PathBuf::from(DEFAULT_DATABASE));
    }
    if let Err(e) = check_database(value) {
        errors.push("", key, e);
    }
    Database::Sqlite(PathBuf::from(value))
}

/// A node name is shown in the API and the status page and sent to PostgreSQL.
fn check_node(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters".to_string());
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err("may hold only letters, digits, '-', '_' and '.'".to_string());
    }
    Ok(())
}

/// The host name (the default `node`), or "local" when it cannot be read.
pub fn default_node_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).split('.').next().unwrap_or("").to_string()
    } else {
        String::new()
    };
    let cleaned: String =
        name.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')).take(64).collect();
    if cleaned.is_empty() {
        "local".to_string()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::checks::{check_listen, normalize_origin};
    use super::*;
    use crate::config::{Method, MonitorKey, Secret};
    use std::collections::BTreeMap;

    /// The config file is read up to 1 MiB; 10,000 monitors of one short line each fit.
    #[test]
    fn a_config_file_over_1_mib_is_refused_and_10000_short_monitors_fit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        let mut text = String::from("monitors:\n");
        for i in 0..10_000 {
            text.push_str(&format!(
                "  - {{provider: p, service: m{i}, url: \"http://127.0.0.1:40000/m/{i}/50\", method: GET}}\n"
            ));
        }
        assert!(text.len() < MAX_FILE_BYTES as usize);
        std::fs::write(&path, &text).unwrap();
        assert_eq!(load_with_env(&path, &|_| None).unwrap().monitors.len(), 10_000);

        text.push_str(&"#".repeat(MAX_FILE_BYTES as usize + 1 - text.len()));
        std::fs::write(&path, &text).unwrap();
        let errors = load_with_env(&path, &|_| None).unwrap_err().to_string();
        assert!(errors.contains("larger than 1048576 bytes"), "{errors}");

        // So is every file it includes.
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/big.json"), "x".repeat(MAX_FILE_BYTES as usize + 1)).unwrap();
        std::fs::write(
            &path,
            "monitors:\n  - {provider: p, service: s, url: \"http://127.0.0.1:1/\", method: POST, body: \"!include data/big.json\"}\n",
        )
        .unwrap();
        let errors = load_with_env(&path, &|_| None).unwrap_err().to_string();
        assert!(errors.contains("p/s") && errors.contains("larger than 1048576 bytes"), "{errors}");
    }

    #[test]
    fn env_names_are_mangled() {
        let cases = [
            (("88code", "cc", ""), vec!["MONITOR_88CODE_CC_API_KEY"]),
            (("88code", "cc", "vip"), vec!["MONITOR_88CODE_CC_VIP_API_KEY", "MONITOR_88CODE_CC_API_KEY"]),
            (
                ("open-ai", "gpt.4o", "eu west"),
                vec!["MONITOR_OPEN_AI_GPT_4O_EU_WEST_API_KEY", "MONITOR_OPEN_AI_GPT_4O_API_KEY"],
            ),
            (("Ünï", "x/y", ""), vec!["MONITOR__N__X_Y_API_KEY"]),
        ];
        for ((p, s, c), expected) in cases {
            assert_eq!(env_var_names(&MonitorKey::new(p, s, c)), expected, "{p}/{s}/{c}");
        }
    }

    fn write_config(dir: &Path, yaml: &str) -> PathBuf {
        let path = dir.join("config.yaml");
        std::fs::write(&path, yaml).unwrap();
        path
    }

    const ONE: &str = "monitors:\n  - provider: acme\n    service: chat\n    channel: vip\n    url: \"https://x.test/v1?key={{API_KEY}}\"\n    method: post\n    api_key: file-key\n    headers:\n      Authorization: \"Bearer {{API_KEY}}\"\n      A-First: \"1\"\n    body: '{\"k\": \"{{API_KEY}}\"}'\n";

    #[test]
    fn env_overrides_file_key_and_fills_placeholders() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), ONE);
        let env: BTreeMap<&str, &str> =
            [("MONITOR_ACME_CHAT_API_KEY", "generic"), ("MONITOR_ACME_CHAT_VIP_API_KEY", "specific")].into();
        let cfg = load_with_env(&path, &|n| env.get(n).map(|v| v.to_string())).unwrap();
        let m = &cfg.monitors[0];
        assert_eq!(m.api_key.as_ref().map(Secret::expose), Some("specific"));
        assert_eq!(m.url.expose(), "https://x.test/v1?key=specific");
        assert_eq!(m.headers, vec![("Authorization".into(), "Bearer specific".into()), ("A-First".into(), "1".into())]);
        assert_eq!(m.body.as_ref().map(Secret::expose), Some("{\"k\": \"specific\"}"));
        assert_eq!(m.method, Method::Post);

        let generic_only: BTreeMap<&str, &str> = [("MONITOR_ACME_CHAT_API_KEY", "generic")].into();
        let cfg = load_with_env(&path, &|n| generic_only.get(n).map(|v| v.to_string())).unwrap();
        assert_eq!(cfg.monitors[0].api_key.as_ref().map(Secret::expose), Some("generic"));

        let cfg = load_with_env(&path, &|_| None).unwrap();
        assert_eq!(cfg.monitors[0].api_key.as_ref().map(Secret::expose), Some("file-key"));
        let debug = format!("{:?}", cfg.monitors[0]);
        assert!(!debug.contains("file-key"), "{debug}");
    }

    #[test]
    fn defaults_apply_and_listen_env_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), "interval: 30s\nmonitors:\n  - {provider: a, service: b, url: \"http://h/\", method: GET, timeout: 2s, slow_latency: 1s}\n");
        let cfg = load_with_env(&path, &|_| None).unwrap();
        assert_eq!(cfg.listen, DEFAULT_LISTEN);
        assert_eq!(cfg.retention, DEFAULT_RETENTION);
        let m = &cfg.monitors[0];
        assert_eq!(
            (m.interval, m.timeout, m.slow_latency),
            (Duration::from_secs(30), Duration::from_secs(2), Duration::from_secs(1))
        );
        let cfg = load_with_env(&path, &|n| (n == "PORT").then(|| "9999".to_string())).unwrap();
        assert_eq!(cfg.listen, "0.0.0.0:9999");
        let cfg = load_with_env(&path, &|n| match n {
            "PORT" => Some("9999".into()),
            "MONITOR_LISTEN" => Some("127.0.0.1:7000".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:7000");
    }

    #[test]
    fn a_monitor_gets_its_models_price_and_a_budget_without_one_is_warned_of() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "prices:\n  my-model: {input: 1, output: 2}\nmonitors:\n  - {provider: a, service: b, url: \"http://h/\", method: GET, model: my-model-2025-01-01, daily_budget_usd: 1}\n  - {provider: a, service: c, url: \"http://h/\", method: GET, model: gpt-4o, confirm: 2, interval_when_failing: 10s}\n  - {provider: a, service: d, url: \"http://h/\", method: GET, model: unknown-x, daily_budget_usd: 1}\n";
        let cfg = load_with_env(&write_config(dir.path(), yaml), &|_| None).unwrap();
        let prices: Vec<Option<f64>> = cfg.monitors.iter().map(|m| m.price.map(|p| p.output)).collect();
        assert_eq!(prices, vec![Some(2.0), Some(10.0), None]);
        assert_eq!(
            (cfg.monitors[1].confirm, cfg.monitors[1].interval_when_failing),
            (2, Some(Duration::from_secs(10)))
        );
        assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
        assert!(cfg.warnings[0].starts_with("a/d: daily_budget_usd is set, but no price"), "{:?}", cfg.warnings);
    }

    #[test]
    fn include_reads_from_data_and_as_a_tag() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/b.json"), "{\"key\":\"{{API_KEY}}\"}").unwrap();
        let yaml = "monitors:\n  - {provider: a, service: b, url: \"http://h/\", method: POST, api_key: k1, body: \"!include data/b.json\"}\n  - {provider: a, service: c, url: \"http://h/\", method: POST, body: !include data/b.json}\n";
        let cfg = load_with_env(&write_config(dir.path(), yaml), &|_| None).unwrap();
        assert_eq!(cfg.monitors[0].body.as_ref().map(Secret::expose), Some("{\"key\":\"k1\"}"));
        assert_eq!(cfg.monitors[1].body.as_ref().map(Secret::expose), Some("{\"key\":\"\"}"));
        assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    }

    #[test]
    fn type_errors_never_echo_a_key_or_header_value() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "monitors:\n  - {provider: a, service: b, url: \"http://h/\", method: GET, api_key: 88372612345, headers: {X-Key: 99887766554}}\n";
        let errors = load_with_env(&write_config(dir.path(), yaml), &|_| None).unwrap_err().to_string();
        assert!(errors.contains("monitors[0] a/b: api_key: must be a quoted string"), "{errors}");
        assert!(errors.contains("monitors[0] a/b: headers: must be a mapping of names to quoted strings"), "{errors}");
        assert!(!errors.contains("88372612345") && !errors.contains("99887766554"), "{errors}");
    }

    #[test]
    fn secrets_include_the_key_long_header_values_and_url_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "monitors:\n  - {provider: a, service: b, url: \"https://h/v1?key=AIzaLiteralKey123&alt=sse\", method: GET, api_key: k-1, headers: {Cookie: \"session=abcdef\", Accept: \"*/*\", Content-Type: application/json-long-enough}}\n";
        let cfg = load_with_env(&write_config(dir.path(), yaml), &|_| None).unwrap();
        let mut secrets = cfg.monitors[0].secrets();
        secrets.sort();
        assert_eq!(secrets, vec!["AIzaLiteralKey123", "abcdef", "k-1", "session=abcdef"]);
    }

    #[test]
    fn a_template_fills_url_headers_and_body() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "monitors:\n  - {provider: a, service: b, base_url: \"https://relay.test/\", template: anthropic-messages, model: claude-3-opus, api_key: k1, headers: {anthropic-version: \"2024-01-01\"}}\n  - {provider: a, service: c, base_url: \"https://g.test\", template: gemini, model: gemini-2.0-flash, stream: false}\n";
        let cfg = load_with_env(&write_config(dir.path(), yaml), &|_| None).unwrap();
        let m = &cfg.monitors[0];
        assert_eq!((m.method, m.url.expose()), (Method::Post, "https://relay.test/v1/messages"));
        assert_eq!(
            m.headers,
            vec![
                ("x-api-key".to_string(), "k1".into()),
                ("Content-Type".to_string(), "application/json".into()),
                ("anthropic-version".to_string(), "2024-01-01".into()),
            ]
        );
        let body = m.body.as_ref().unwrap().expose();
        assert!(
            body.contains("\"model\": \"claude-3-opus\"")
                && body.contains("{{CHALLENGE}}")
                && body.contains("\"stream\": true")
        );
        assert!(m.challenge && m.llm);
        assert_eq!(m.expect_model.as_deref(), Some("claude-3-opus"));
        let g = &cfg.monitors[1];
        assert_eq!(g.url.expose(), "https://g.test/v1beta/models/gemini-2.0-flash:generateContent");
        assert!(!g.body.as_ref().unwrap().expose().contains("stream"));
    }

    #[test]
    fn no_configured_secret_appears_in_any_error() {
        let dir = tempfile::tempdir().unwrap();
        let key = "relaykey_0123456789abcdef";
        let env_key = "envkey_fedcba9876543210";
        let yaml = format!(
            "monitors:\n  - {{provider: a, service: b, url: \"https://h/\", method: GET, api_key: {key}, disabled: \"{key}\"}}\n  - {{provider: a, service: c, url: \"https://h/\", method: \"{env_key}\", headers: {{Authorization: \"Bearer {{{{API_KEY}}}}\", X-Token: \"tok_{key}\"}}, timeout: \"{key}\"}}\n"
        );
        let errors =
            load_with_env(&write_config(dir.path(), &yaml), &|n| (n == "MONITOR_A_C_API_KEY").then(|| env_key.into()))
                .unwrap_err();
        let all = errors.0.join("\n");
        assert_eq!(errors.0.len(), 3, "{all}");
        assert!(all.contains("monitors[0] a/b: disabled: must be true or false, found a string"), "{all}");
        assert!(all.contains("monitors[1] a/c: method: \"[REDACTED]\" is not one of"), "{all}");
        for secret in [key, env_key] {
            assert!(!all.contains(secret), "{all}");
            assert!(!all.contains(&secret[..8]), "a prefix survives: {all}");
        }
        // What /health shows: where, not what.
        let public = errors.public().join("\n");
        assert!(public.contains("monitors[1] a/c: method: \"…\" is not one of"), "{public}");
        assert!(public.contains("monitors[1] a/c: timeout: invalid duration \"…\""), "{public}");
        assert_eq!(errors.summary(), "3 problems");
        assert_eq!(ConfigErrors(vec!["x".into()]).summary(), "1 problem");
    }

    #[test]
    fn an_empty_file_is_refused_at_start_as_on_reload() {
        let dir = tempfile::tempdir().unwrap();
        for text in ["", "\n\n", "# nothing yet\n"] {
            let errors = load_with_env(&write_config(dir.path(), text), &|_| None).unwrap_err();
            assert!(
                errors.0[0].ends_with("the file is empty (write `monitors: []` to run with no monitors)"),
                "{errors}"
            );
        }
        assert!(load_with_env(&write_config(dir.path(), "monitors: []\n"), &|_| None).is_ok());
    }

    #[test]
    fn cors_origins_are_normalised_as_browsers_send_them() {
        let rows = [
            ("https://status.example", "https://status.example"),
            ("https://status.example/", "https://status.example"),
            ("HTTPS://Status.Example:443", "https://status.example"),
            ("http://status.example:8080/", "http://status.example:8080"),
            ("https://bücher.example", "https://xn--bcher-kva.example"),
            ("http://[::1]:3000", "http://[::1]:3000"),
        ];
        let mut cors = actix_cors::Cors::default();
        for (written, normalized) in rows {
            assert_eq!(normalize_origin(written).as_deref(), Ok(normalized), "{written}");
            cors = cors.allowed_origin(normalized);
        }
        // Every normalised origin builds a middleware (a bad one fails every HTTP worker).
        actix_rt::System::new().block_on(async {
            use actix_web::dev::Transform;
            let service = actix_web::test::status_service(actix_web::http::StatusCode::OK);
            assert!(cors.new_transform(service).await.is_ok());
        });
        for bad in ["https://", "https://x.example:99999", "https://x.example/p", "ftp://x.example", "x.example"] {
            assert!(normalize_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn listen_addresses() {
        let rows = [
            ("0.0.0.0:8080", true),
            ("[::1]:8080", true),
            ("[::]:0", true),
            ("localhost:8080", true),
            ("status.internal:80", true),
            ("::1:8080", false),
            ("8080", false),
            (":8080", false),
            ("host:99999", false),
            ("ho st:80", false),
        ];
        for (listen, ok) in rows {
            assert_eq!(check_listen(listen).is_ok(), ok, "{listen}: {:?}", check_listen(listen));
        }
    }

    #[test]
    fn includes_refuse_fifos_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        nix::unistd::mkfifo(&dir.path().join("data/pipe.json"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        // Would block forever in open() without O_NONBLOCK.
        assert_eq!(read_include(dir.path(), "data/pipe.json"), Err("is not a regular file".to_string()));
        nix::unistd::mkfifo(&dir.path().join("config.yaml"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let errors = load_with_env(&dir.path().join("config.yaml"), &|_| None).unwrap_err();
        assert!(errors.0[0].ends_with("is not a regular file"), "{errors}");
    }

    /// `database` takes a path or a postgres:// URL, `MONITOR_DATABASE_URL` wins over the file,
    /// and the URL's password is a secret: in the redactor, never in `shown()` or `Debug`.
    #[test]
    fn database_node_and_quorum() {
        let dir = tempfile::tempdir().unwrap();
        let parse = |text: &str, env: &dyn Fn(&str) -> Option<String>| parse_str(text, dir.path(), env);
        let sqlite = parse("monitors: []\n", &|_| None).unwrap();
        assert_eq!(sqlite.database, Database::Sqlite(PathBuf::from("monitor.db")));
        assert_eq!(sqlite.quorum, Quorum::Majority);
        assert_eq!(sqlite.node, default_node_name());
        let url = "postgres://monitor:s3cr%40t-pw@db.internal:5433/llm?sslmode=require";
        let from_env = |name: &str| (name == "MONITOR_DATABASE_URL").then(|| url.to_string());
        let pg = parse("database: other.db\nnode: fra-1\nquorum: 1\nmonitors: []\n", &from_env).unwrap();
        let Database::Postgres(pg_url) = &pg.database else { panic!("{:?}", pg.database) };
        assert_eq!(pg_url.shown(), "postgres://monitor:***@db.internal:5433/llm?sslmode=require");
        assert_eq!(
            format!("{:?}", pg.database),
            "Postgres(postgres://monitor:***@db.internal:5433/llm?sslmode=require)"
        );
        assert!(pg_url.expose().contains("s3cr%40t-pw") && pg_url.expose().ends_with("&connect_timeout=10"));
        assert_eq!(pg.node, "fra-1");
        assert_eq!(pg.quorum, Quorum::One);
        // Decoded or not, the password is redacted wherever it appears.
        let said = pg.alerts.redactor.redact("auth failed for s3cr@t-pw (s3cr%40t-pw)");
        assert!(!said.contains("s3cr"), "{said}");
        assert_eq!(pg_url.redact("password s3cr@t-pw refused"), "password *** refused");
        for (text, quorum) in
            [("quorum: all", Quorum::All), ("quorum: majority", Quorum::Majority), ("quorum: \"1\"", Quorum::One)]
        {
            assert_eq!(parse(&format!("{text}\nmonitors: []\n"), &|_| None).unwrap().quorum, quorum);
        }
        let bad = parse("database: \"mysql://u:pw@db.internal/x\"\nmonitors: []\n", &|_| None).unwrap_err();
        assert!(bad.to_string().contains("database: a URL must start with postgres://"), "{bad}");
        assert!(!bad.to_string().contains("pw"), "{bad}");
        let errors = parse("monitors: []\n", &|name: &str| {
            (name == "MONITOR_DATABASE_URL").then(|| "postgres://u:pw@/x".to_string())
        })
        .unwrap_err();
        assert!(errors.to_string().contains("MONITOR_DATABASE_URL: is not a valid postgres:// URL"), "{errors}");
        assert!(!errors.to_string().contains("pw"), "{errors}");
    }

    /// One fixture per mistake under tests/fixtures/invalid/, each starting with
    /// `# expect: <text>` lines that must all appear among the reported errors.
    #[test]
    fn invalid_fixtures_fail_with_their_message() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
        let mut count = 0;
        let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries.into_iter().filter(|p| p.extension().is_some_and(|e| e == "yaml")) {
            count += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            let expected: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# expect: ")).collect();
            assert!(!expected.is_empty(), "{} has no '# expect:' line", path.display());
            let errors = match load_with_env(&path, &|_| None) {
                Ok(_) => panic!("{} loaded but should fail", path.display()),
                Err(e) => e,
            };
            let all = errors.to_string();
            for want in &expected {
                assert!(all.contains(want), "{}: expected {want:?} in:\n{all}", path.display());
            }
            assert_eq!(errors.0.len(), expected.len(), "{}: one error per expect line, got:\n{all}", path.display());
        }
        assert!(count >= 15, "only {count} fixtures");
    }
}

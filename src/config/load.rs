//! Reads `config.yaml` into a [`Config`]: strict keys, Go durations, `!include data/...`,
//! API-key env overrides and `{{API_KEY}}` placeholders. Every problem is collected and
//! reported at once, each naming the monitor and the field.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::duration::{self, GoDuration};
use super::template;
use super::{Config, Cors, Method, Monitor, MonitorKey, Redactor, Secret};

const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
const DEFAULT_DATABASE: &str = "monitor.db";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_SLOW_LATENCY: Duration = Duration::from_secs(5);
const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 86_400);
const DEFAULT_DEGRADED_WEIGHT: f64 = 0.7;

const MIN_INTERVAL: Duration = Duration::from_secs(1);
const MAX_INTERVAL: Duration = Duration::from_secs(86_400);
const MAX_TIMEOUT: Duration = Duration::from_secs(300);
const MIN_RETENTION: Duration = Duration::from_secs(3_600);
const MAX_RETENTION: Duration = Duration::from_secs(3_650 * 86_400);
/// The config file and every included body are read up to this size; larger is an error.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

pub(crate) const API_KEY_PLACEHOLDER: &str = "{{API_KEY}}";
pub(crate) const MODEL_PLACEHOLDER: &str = "{{MODEL}}";
/// Replaced at probe time by a fresh arithmetic question.
pub const CHALLENGE_PLACEHOLDER: &str = "{{CHALLENGE}}";

const GLOBAL_KEYS: &[&str] = &[
    "listen",
    "database",
    "interval",
    "timeout",
    "slow_latency",
    "slow_ttft",
    "retention",
    "degraded_weight",
    "cors",
    "monitors",
];
const MONITOR_KEYS: &[&str] = &[
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
];
const CORS_KEYS: &[&str] = &["allowed_origins"];

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

/// Loads `path` with the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with_env(path, &|name| std::env::var(name).ok())
}

/// Loads `path`, reading environment variables through `env` (injected for tests).
pub fn load_with_env(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    let text = read_bounded(path).map_err(|e| ConfigErrors(vec![format!("{}: {e}", path.display())]))?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base_dir = if base_dir.as_os_str().is_empty() { PathBuf::from(".") } else { base_dir };
    parse(&text, path, &base_dir, env)
}

/// The env names that may carry a monitor's API key, most specific first:
/// `MONITOR_<PROVIDER>_<SERVICE>_<CHANNEL>_API_KEY`, then `MONITOR_<PROVIDER>_<SERVICE>_API_KEY`.
pub fn env_var_names(key: &MonitorKey) -> Vec<String> {
    let mut names = Vec::with_capacity(2);
    if !key.channel.is_empty() {
        names.push(format!(
            "MONITOR_{}_{}_{}_API_KEY",
            mangle(&key.provider),
            mangle(&key.service),
            mangle(&key.channel)
        ));
    }
    names.push(format!("MONITOR_{}_{}_API_KEY", mangle(&key.provider), mangle(&key.service)));
    names
}

/// The implicit env names of a monitor with whose key each one is: the channel's own name is
/// the monitor's; the provider/service name is shared by the channels of that pair.
fn env_claims(key: &MonitorKey) -> Vec<(String, String)> {
    let names = env_var_names(key);
    let pair = format!("{}\u{1f}{}", key.provider, key.service).to_ascii_lowercase();
    let mut owners = Vec::with_capacity(2);
    if !key.channel.is_empty() {
        owners.push(key.normalized().to_string());
    }
    owners.push(pair);
    names.into_iter().zip(owners).collect()
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn mangle(part: &str) -> String {
    part.chars()
        .map(|c| {
            let c = c.to_ascii_uppercase();
            if c.is_ascii_uppercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Opens `path` for reading without blocking and checks what was opened: a FIFO or a device
/// swapped in for a file must neither hang the daemon nor be read.
fn open_regular(path: &Path) -> Result<std::fs::File, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot open: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".to_string());
    }
    Ok(file)
}

fn read_bounded(path: &Path) -> Result<String, String> {
    read_file(open_regular(path)?)
}

fn read_file(file: std::fs::File) -> Result<String, String> {
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {} bytes", MAX_FILE_BYTES));
    }
    String::from_utf8(bytes).map_err(|_| "not valid UTF-8".to_string())
}

/// Collects errors for one place in the file (`interval`, `monitors[2] 88code/cc`).
struct Errors {
    lines: Vec<String>,
}

impl Errors {
    fn push(&mut self, place: &str, field: &str, message: impl fmt::Display) {
        match (place.is_empty(), field.is_empty()) {
            (true, _) => self.lines.push(format!("{field}: {message}")),
            (false, true) => self.lines.push(format!("{place}: {message}")),
            (false, false) => self.lines.push(format!("{place}: {field}: {message}")),
        }
    }
}

/// Typed access to one YAML mapping, reporting unknown keys and type errors with their place.
struct Fields<'a> {
    map: &'a Mapping,
    place: String,
}

impl<'a> Fields<'a> {
    fn check_keys(&self, known: &[&str], errors: &mut Errors) {
        for key in self.map.keys() {
            match key.as_str() {
                Some(k) if known.contains(&k) => {}
                Some(k) => errors.push(&self.place, k, format!("unknown key (expected one of {})", known.join(", "))),
                None => errors.push(&self.place, "", format!("keys must be strings, found {}", describe(key))),
            }
        }
    }

    fn raw(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn get<T: DeserializeOwned>(&self, key: &str, errors: &mut Errors) -> Option<T> {
        let value = self.raw(key)?;
        match serde_yaml::from_value::<T>(value.clone()) {
            Ok(v) => Some(v),
            // Never serde's message: it quotes the value, and a key pasted into the wrong field
            // would be printed, logged and shown on /health.
            Err(_) => {
                errors.push(&self.place, key, format!("must be {}, found {}", expected::<T>(), describe(value)));
                None
            }
        }
    }

    fn duration(&self, key: &str, allow_days: bool, errors: &mut Errors) -> Option<Duration> {
        let text: String = self.get(key, errors)?;
        match duration::parse(&text, allow_days) {
            Ok(GoDuration { negative: true, .. }) => {
                errors.push(&self.place, key, format!("{text:?} is negative; it must be positive"));
                None
            }
            Ok(GoDuration { duration, .. }) if duration.is_zero() => {
                errors.push(&self.place, key, format!("{text:?} is zero; it must be positive"));
                None
            }
            Ok(GoDuration { duration, .. }) => Some(duration),
            Err(e) => {
                errors.push(&self.place, key, e);
                None
            }
        }
    }
}

/// What a field of type `T` takes, in words.
fn expected<T>() -> &'static str {
    let name = std::any::type_name::<T>();
    if name.ends_with("String") {
        "a quoted string"
    } else if name == "bool" {
        "true or false"
    } else if name == "f64" {
        "a number"
    } else if name.contains("Vec<") {
        "a list of quoted strings"
    } else if name.contains("Map<") {
        "a mapping of names to quoted strings"
    } else {
        "a value of another type"
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

struct Globals {
    interval: Duration,
    timeout: Duration,
    slow_latency: Duration,
    slow_ttft: Option<Duration>,
    /// Which of these the file sets (the others are defaults).
    set: Vec<&'static str>,
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

    let listen_env = env("MONITOR_LISTEN")
        .filter(|v| !v.is_empty())
        .map(|v| ("MONITOR_LISTEN", v))
        .or_else(|| env("PORT").filter(|v| !v.is_empty()).map(|p| ("PORT", format!("0.0.0.0:{p}"))));
    let listen = match listen_env {
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
    let database = top.get::<String>("database", &mut errors).unwrap_or_else(|| DEFAULT_DATABASE.to_string());
    if let Err(e) = check_database(&database) {
        errors.push("", "database", e);
    }
    let globals = Globals {
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

    let mut monitors = Vec::new();
    let mut disabled = 0;
    let mut shared = Shared::default();
    match top.raw("monitors") {
        None => warnings.push("no monitors configured: nothing will be probed".to_string()),
        Some(Value::Sequence(items)) => {
            if items.is_empty() {
                warnings.push("no monitors configured: nothing will be probed".to_string());
            }
            for (index, item) in items.iter().enumerate() {
                let context = MonitorContext { index, globals: &globals, base_dir, env };
                let parsed = parse_monitor(&context, item, &mut shared, &mut errors, &mut warnings);
                let Some((monitor, is_disabled)) = parsed else { continue };
                if is_disabled {
                    disabled += 1;
                } else {
                    monitors.push(monitor);
                }
            }
        }
        Some(other) => errors.push("", "monitors", format!("must be a list, found {}", describe(other))),
    }

    if !errors.lines.is_empty() {
        let redactor = Redactor::new(&shared.secrets);
        return Err(ConfigErrors(errors.lines.iter().map(|line| redactor.redact(line)).collect()));
    }
    Ok(Config {
        path: path.to_path_buf(),
        listen,
        database: PathBuf::from(database),
        retention,
        degraded_weight,
        cors,
        monitors,
        disabled,
        warnings,
    })
}

fn check_listen(value: &str) -> Result<(), String> {
    if value.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err(format!("{value:?} is not HOST:PORT"));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!("{value:?}: the port must be a number from 0 to 65535"));
    }
    if host.contains(':') {
        return Err(format!("{value:?}: an IPv6 address needs brackets, as in [::1]:8080"));
    }
    let name_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty() && label.len() <= 63 && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !name_ok {
        return Err(format!("{value:?} is not HOST:PORT (HOST an IP address or a host name)"));
    }
    Ok(())
}

/// The database is a file path (relative to the working directory) whose directory exists.
fn check_database(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("must not be empty".to_string());
    }
    if value == ":memory:" || value.starts_with("file:") {
        return Err(format!("{value:?} must be a file path (not :memory: or a file: URI: the history must persist)"));
    }
    let parent = Path::new(value).parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = parent.filter(|dir| !dir.is_dir()) {
        return Err(format!("the directory {} does not exist", dir.display()));
    }
    Ok(())
}

/// An allowed CORS origin, as browsers send it: `scheme://host[:port]`, lower-case, an
/// internationalised host in its ASCII (punycode) form, no trailing slash. Anything else could
/// never match a request's `Origin`.
fn normalize_origin(origin: &str) -> Result<String, String> {
    let url = url::Url::parse(origin).map_err(|e| format!("{origin:?} is not an origin ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{origin:?}: an origin is http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{origin:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{origin:?}: an origin has no user, query or fragment"));
    }
    if url.path() != "/" {
        return Err(format!("{origin:?}: an origin has no path (browsers send scheme://host[:port])"));
    }
    Ok(url.origin().ascii_serialization())
}

fn check_interval(place: &str, field: &str, value: Duration, errors: &mut Errors) {
    if value < MIN_INTERVAL {
        errors.push(place, field, format!("{} is below the minimum of 1s", duration::format(value)));
    } else if value > MAX_INTERVAL {
        errors.push(place, field, format!("{} is above the maximum of 24h", duration::format(value)));
    }
}

fn check_timeout(place: &str, field: &str, value: Duration, errors: &mut Errors) {
    if value > MAX_TIMEOUT {
        errors.push(place, field, format!("{} is above the maximum of 5m", duration::format(value)));
    }
}

fn parse_cors(value: Option<&Value>, errors: &mut Errors) -> Cors {
    let default = Cors { allowed_origins: vec!["*".to_string()] };
    let Some(value) = value else { return default };
    let Value::Mapping(map) = value else {
        errors.push("", "cors", format!("must be a mapping, found {}", describe(value)));
        return default;
    };
    let fields = Fields { map, place: "cors".to_string() };
    fields.check_keys(CORS_KEYS, errors);
    let origins: Vec<String> = fields.get("allowed_origins", errors).unwrap_or_else(|| default.allowed_origins.clone());
    let mut allowed = Vec::with_capacity(origins.len());
    for origin in &origins {
        if origin == "*" {
            allowed.push(origin.clone());
            continue;
        }
        match normalize_origin(origin) {
            Ok(normalized) => allowed.push(normalized),
            Err(e) => errors.push("cors", "allowed_origins", e),
        }
    }
    Cors { allowed_origins: allowed }
}

/// What the monitors of one file share while they are read: keys for duplicates, env names for
/// collisions, and every value that may be secret (kept out of error messages).
#[derive(Default)]
struct Shared {
    /// Keys of earlier monitors (valid or not) and their index.
    seen: HashMap<MonitorKey, usize>,
    /// Implicit API-key env names claimed so far: name -> (whose key it is, which monitor).
    env_claims: HashMap<String, (String, String)>,
    secrets: Vec<String>,
}

struct MonitorContext<'a> {
    index: usize,
    globals: &'a Globals,
    base_dir: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
}

/// Parses one monitor; returns it (with its `disabled` flag) if it is valid.
fn parse_monitor(
    context: &MonitorContext<'_>,
    item: &Value,
    shared: &mut Shared,
    errors: &mut Errors,
    warnings: &mut Vec<String>,
) -> Option<(Monitor, bool)> {
    let MonitorContext { index, globals, base_dir, env } = *context;
    let before = errors.lines.len();
    let Value::Mapping(map) = item else {
        errors.push(&format!("monitors[{index}]"), "", format!("must be a mapping, found {}", describe(item)));
        return None;
    };
    // Name the monitor in messages as soon as its key is readable.
    let mut probe = Errors { lines: Vec::new() };
    let mut name_part = |key: &str| -> Option<String> {
        let fields = Fields { map, place: String::new() };
        fields.get::<String>(key, &mut probe)
    };
    let provider = name_part("provider").unwrap_or_default();
    let service = name_part("service").unwrap_or_default();
    let channel = name_part("channel").unwrap_or_default();
    let place = if provider.trim().is_empty() && service.trim().is_empty() {
        format!("monitors[{index}]")
    } else if channel.trim().is_empty() {
        format!("monitors[{index}] {provider}/{service}")
    } else {
        format!("monitors[{index}] {provider}/{service}/{channel}")
    };
    let fields = Fields { map, place: place.clone() };
    fields.check_keys(MONITOR_KEYS, errors);

    let provider: Option<String> = fields.get("provider", errors);
    let service: Option<String> = fields.get("service", errors);
    let channel: String = fields.get("channel", errors).unwrap_or_default();
    for (name, value) in [("provider", &provider), ("service", &service)] {
        match value {
            None if fields.raw(name).is_none() => errors.push(&place, name, "is required"),
            Some(v) if v.trim().is_empty() => errors.push(&place, name, "must not be empty"),
            _ => {}
        }
    }
    let key = MonitorKey::new(
        provider.as_deref().unwrap_or_default().trim(),
        service.as_deref().unwrap_or_default().trim(),
        channel.trim(),
    );
    if !key.provider.is_empty() && !key.service.is_empty() {
        if let Some(first) = shared.seen.get(&key) {
            errors.push(
                &place,
                "",
                format!("provider/service/channel duplicates monitors[{first}] (keys compare case-insensitively)"),
            );
        } else {
            shared.seen.insert(key.clone(), index);
        }
    }

    // A template supplies method, path, headers and body; explicit fields override it.
    let template_name: Option<String> = fields.get("template", errors);
    let template = template_name.as_deref().and_then(|name| match template::find(name, base_dir) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(&place, "template", e);
            None
        }
    });
    let stream = fields.get::<bool>("stream", errors).unwrap_or(true);
    if fields.raw("stream").is_some() && template_name.is_none() {
        errors.push(&place, "stream", "only applies with a template (the body decides otherwise)");
    }
    let form = template.as_ref().map(|t| t.form(stream));

    let method_text = fields.get::<String>("method", errors).or_else(|| template.as_ref().map(|t| t.method.clone()));
    let method = match method_text {
        // An unknown template is reported once, not again as a missing method.
        None if fields.raw("method").is_none() && template_name.is_none() => {
            errors.push(&place, "method", "is required (or use a template)");
            None
        }
        None => None,
        Some(m) => {
            let parsed = Method::parse(&m);
            if parsed.is_none() {
                let all: Vec<&str> = Method::ALL.iter().map(|m| m.as_str()).collect();
                errors.push(&place, "method", format!("{m:?} is not one of {}", all.join(", ")));
            }
            parsed
        }
    };

    // Env wins over the file; an empty variable counts as unset. `api_key_env` names the one
    // variable to read; without it the names derive from the monitor's key.
    let api_key_env: Option<String> = fields.get("api_key_env", errors);
    if let Some(name) = api_key_env.as_deref().filter(|n| !is_env_name(n)) {
        errors.push(
            &place,
            "api_key_env",
            format!("{name:?} is not an environment variable name (A-Z, a-z, 0-9 and _, not starting with a digit)"),
        );
    }
    let env_names = match &api_key_env {
        Some(name) => vec![name.clone()],
        None => env_var_names(&key),
    };
    let file_key = fields.get::<String>("api_key", errors).filter(|k| !k.is_empty());
    let api_key = env_names.iter().find_map(|name| env(name).filter(|v| !v.is_empty())).or_else(|| file_key.clone());
    shared.secrets.extend(file_key.iter().chain(api_key.iter()).cloned());
    let model: Option<String> = fields.get("model", errors);
    let expect_model: Option<String> = fields.get("expect_model", errors);
    for (name, value) in [("model", &model), ("expect_model", &expect_model)] {
        if let Some(v) = value {
            if !super::is_model_name(v) {
                errors.push(&place, name, format!("{v:?} is not a model name (letters, digits and ._:/@+-)"));
            }
        }
    }

    let base_url: Option<String> = fields.get("base_url", errors);
    if base_url.as_deref().is_some_and(|b| b.contains(['?', '#'])) {
        errors.push(&place, "base_url", "must not have a query or fragment (the template appends a path to it)");
    }
    let explicit_url: Option<String> = fields.get("url", errors);
    let url_template = match (&explicit_url, &base_url, form) {
        (Some(url), _, _) => Some(url.clone()),
        (None, Some(base), Some(form)) => Some(format!("{}{}", base.trim_end_matches('/'), form.path)),
        (None, Some(_), None) => {
            if template_name.is_none() {
                errors.push(&place, "base_url", "needs a template (or give the full url)");
            }
            None
        }
        (None, None, _) if fields.raw("url").is_none() => {
            let what = if template_name.is_some() { "base_url" } else { "url" };
            errors.push(&place, what, "is required");
            None
        }
        (None, None, _) => None,
    };
    let explicit_headers: Vec<(String, String)> = fields
        .get::<std::collections::BTreeMap<String, String>>("headers", errors)
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    // Keep the order the operator wrote the headers in; they replace a template's same-named ones.
    let explicit_headers = order_like_yaml(map, explicit_headers);
    let mut headers_raw: Vec<(String, String)> = template
        .as_ref()
        .map(|t| t.headers())
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, _)| !explicit_headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)))
        .collect();
    headers_raw.extend(explicit_headers);
    let body_template = match (fields.raw("body"), form, &template, &model) {
        (Some(_), _, _, _) => parse_body(fields.raw("body"), &place, base_dir, errors),
        // The template's body, as its `models:` table has it for this model.
        (None, Some(form), Some(template), Some(model)) => {
            match form.body.as_deref().map(|b| template.body_for(b, model)) {
                Some(Ok(body)) => Some(body),
                Some(Err(e)) => {
                    errors.push(&place, "template", e);
                    None
                }
                None => None,
            }
        }
        (None, form, _, _) => form.and_then(|f| f.body.clone()),
    };

    let texts = || {
        url_template
            .iter()
            .chain(body_template.iter())
            .map(String::as_str)
            .chain(headers_raw.iter().map(|(_, v)| v.as_str()))
    };
    let uses_key = texts().any(|s| s.contains(API_KEY_PLACEHOLDER));
    let uses_model = texts().any(|s| s.contains(MODEL_PLACEHOLDER));
    let challenge = texts().any(|s| s.contains(CHALLENGE_PLACEHOLDER));
    if uses_model && model.is_none() && fields.raw("model").is_none() {
        errors.push(&place, "model", format!("is required ({MODEL_PLACEHOLDER} is used)"));
    }
    let fill = |s: &str| {
        s.replace(API_KEY_PLACEHOLDER, api_key.as_deref().unwrap_or(""))
            .replace(MODEL_PLACEHOLDER, model.as_deref().unwrap_or(""))
    };
    let is_disabled = fields.get::<bool>("disabled", errors).unwrap_or(false);
    if uses_key && api_key.is_none() && !is_disabled {
        warnings.push(format!(
            "{place}: {API_KEY_PLACEHOLDER} is used but no api_key is set (nor {}); probes will go out without a key",
            env_names.join(" / ")
        ));
    }
    // Two monitors whose names mangle to the same variable would be sent one key.
    if uses_key && !is_disabled && api_key_env.is_none() && !key.provider.is_empty() && !key.service.is_empty() {
        for (name, owner) in env_claims(&key) {
            match shared.env_claims.get(&name) {
                Some((other_owner, other_place)) if *other_owner != owner => errors.push(
                    &place,
                    "",
                    format!(
                        "its API key variable {name} is also {other_place}'s (names map to A-Z, 0-9 and _); \
                         set api_key_env on one of them"
                    ),
                ),
                Some(_) => {}
                None => {
                    shared.env_claims.insert(name, (owner, place.clone()));
                }
            }
        }
    }

    // Checked with a sample question where the real one goes in at probe time.
    let sample = |s: &str| s.replace(CHALLENGE_PLACEHOLDER, "What is 1 + 2?");
    let url = url_template.as_deref().map(fill);
    if let Some(url) = &url {
        if let Err(e) = check_url(&sample(url)) {
            errors.push(&place, "url", e);
        }
    }
    let mut headers = Vec::with_capacity(headers_raw.len());
    for (name, value) in &headers_raw {
        let value = fill(value);
        if awc::http::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            errors.push(&place, &format!("headers.{name}"), "is not a valid HTTP header name");
        } else if awc::http::header::HeaderValue::from_str(&sample(&value)).is_err() {
            // The value may hold a key: describe the problem, never echo it.
            errors.push(
                &place,
                &format!("headers.{name}"),
                "value is not a valid HTTP header value (control characters or non-ASCII)",
            );
        }
        headers.push((name.clone(), Secret::new(value)));
    }
    let url = url.map(Secret::new);
    let body = body_template.as_deref().map(fill).map(Secret::new);
    let api_key = api_key.map(Secret::new);
    let secrets = super::secrets_of(api_key.as_ref(), &headers, url.as_ref().unwrap_or(&Secret::default()));
    shared.secrets.extend(secrets.iter().cloned());
    // An LLM-aware monitor: its reply must be a recognisable answer from the expected model.
    let llm = template.is_some() || model.is_some() || expect_model.is_some() || challenge;
    let require_model = expect_model.is_some();
    let expect_model = expect_model.or_else(|| model.clone());

    let interval = fields.duration("interval", false, errors).unwrap_or(globals.interval);
    let timeout = fields.duration("timeout", false, errors).unwrap_or(globals.timeout);
    let slow_latency = fields.duration("slow_latency", false, errors).unwrap_or(globals.slow_latency);
    if fields.raw("interval").is_some() {
        check_interval(&place, "interval", interval, errors);
    }
    if fields.raw("timeout").is_some() {
        check_timeout(&place, "timeout", timeout, errors);
    }
    // A conflict between two inherited values is the globals' own, reported once for them.
    let own = |key: &str| fields.raw(key).is_some();
    let origin = |key: &str| {
        if own(key) {
            ""
        } else if globals.set.contains(&key) {
            " (global)"
        } else {
            " (default)"
        }
    };
    if slow_latency > timeout && (own("slow_latency") || own("timeout")) {
        errors.push(
            &place,
            "slow_latency",
            format!(
                "{}{} exceeds timeout {}{}: such a probe would time out before it could be slow",
                duration::format(slow_latency),
                origin("slow_latency"),
                duration::format(timeout),
                origin("timeout"),
            ),
        );
    }
    let slow_ttft = fields.duration("slow_ttft", false, errors).or(globals.slow_ttft);
    if let Some(ttft) = slow_ttft.filter(|t| *t > timeout && (own("slow_ttft") || own("timeout"))) {
        errors.push(
            &place,
            "slow_ttft",
            format!(
                "{}{} exceeds timeout {}{}",
                duration::format(ttft),
                origin("slow_ttft"),
                duration::format(timeout),
                origin("timeout")
            ),
        );
    }
    let fresh_connection = fields.get::<bool>("fresh_connection", errors).unwrap_or(false);
    let success_contains: Option<String> = fields.get("success_contains", errors);
    if success_contains.as_deref() == Some("") {
        errors.push(&place, "success_contains", "must not be empty (leave it out instead)");
    }

    if errors.lines.len() > before {
        return None;
    }
    Some((
        Monitor {
            key,
            method: method?,
            url: url?,
            headers,
            body,
            interval,
            timeout,
            slow_latency,
            slow_ttft,
            success_contains,
            api_key,
            redactor: Redactor::new(&secrets),
            model,
            expect_model,
            require_model,
            challenge,
            llm,
            fresh_connection,
        },
        is_disabled,
    ))
}

/// serde gives a map back sorted; restore the file's order of header names.
fn order_like_yaml(map: &Mapping, mut headers: Vec<(String, String)>) -> Vec<(String, String)> {
    if let Some(Value::Mapping(raw)) = map.get("headers") {
        let order: Vec<&str> = raw.keys().filter_map(Value::as_str).collect();
        headers.sort_by_key(|(name, _)| order.iter().position(|n| n == name));
    }
    headers
}

fn check_url(url: &str) -> Result<(), String> {
    match url.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase()) {
        Some(scheme) if scheme == "http" || scheme == "https" => {}
        Some(scheme)
            if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            return Err(format!("scheme {scheme:?} is not http or https"))
        }
        _ => return Err("must start with http:// or https://".to_string()),
    }
    let uri: awc::http::Uri = url.parse().map_err(|_| "is not a valid URL".to_string())?;
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host".to_string());
    }
    Ok(())
}

/// The body: a literal string, or `!include <path>` (quoted or as a YAML tag).
fn parse_body(value: Option<&Value>, place: &str, base_dir: &Path, errors: &mut Errors) -> Option<String> {
    let include_path = match value? {
        Value::String(s) => match s.trim_start().strip_prefix("!include") {
            Some(rest) if rest.starts_with(char::is_whitespace) => rest.trim().to_string(),
            _ => return Some(s.clone()),
        },
        Value::Tagged(tagged) if tagged.tag == "include" => match &tagged.value {
            Value::String(s) => s.trim().to_string(),
            other => {
                errors.push(place, "body", format!("!include needs a path, found {}", describe(other)));
                return None;
            }
        },
        Value::Tagged(tagged) => {
            errors.push(place, "body", format!("unknown tag {} (only !include is supported)", tagged.tag));
            return None;
        }
        other => {
            errors.push(place, "body", format!("must be a string, found {}", describe(other)));
            return None;
        }
    };
    match read_include(base_dir, &include_path) {
        Ok(body) => Some(body),
        Err(e) => {
            errors.push(place, "body", format!("!include {include_path:?}: {e}"));
            None
        }
    }
}

/// Reads an included file, which must resolve (after following symlinks) to a regular file
/// inside `<config dir>/data/`. The file is opened first (without blocking) and what was opened
/// is checked, so a symlink swapped in between a check and the open cannot lead outside.
pub(crate) fn read_include(base_dir: &Path, relative: &str) -> Result<String, String> {
    use std::os::unix::fs::MetadataExt;
    if relative.is_empty() {
        return Err("empty path".to_string());
    }
    let rel = Path::new(relative);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::Prefix(_) | Component::RootDir)) {
        return Err("absolute paths are not allowed; give a path under data/".to_string());
    }
    let data_dir = base_dir.join("data");
    let data_dir =
        data_dir.canonicalize().map_err(|e| format!("the data/ folder beside the config cannot be opened: {e}"))?;
    let path = base_dir.join(rel);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&path)
        .map_err(|e| format!("cannot open: {e}"))?;
    let opened = file.metadata().map_err(|e| format!("cannot open: {e}"))?;
    let target = path.canonicalize().map_err(|e| format!("cannot open: {e}"))?;
    if !target.starts_with(&data_dir) || target == data_dir {
        return Err(
            "resolves outside the data/ folder beside the config (.. and symlinks may not escape it)".to_string()
        );
    }
    // The file opened must be the one found inside data/, not one swapped in meanwhile.
    let found = std::fs::metadata(&target).map_err(|e| format!("cannot open: {e}"))?;
    if (found.dev(), found.ino()) != (opened.dev(), opened.ino()) {
        return Err("changed while it was being opened; try again".to_string());
    }
    if !opened.is_file() {
        return Err("is not a regular file".to_string());
    }
    read_file(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

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

//! The configuration as the rest of the daemon sees it: fully resolved (durations parsed,
//! includes read, env overrides and placeholders applied) and validated once, at the edge.

mod diff;
pub mod duration;
mod load;
pub mod template;
pub mod watch;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::domain::MonitorKey;
pub use crate::secret::{Redactor, Secret, SharedRedactor};
pub use diff::{diff, MonitorDiff};
pub(crate) use load::read_bounded;
pub use load::{
    alert_env_name, default_node_name, env_var_names, listen_from_env, load, load_with_env, parse_str, ConfigErrors,
    CHALLENGE_PLACEHOLDER, DEFAULT_LISTEN,
};

/// Whether `name` looks like a model name: 1-128 letters, digits and `._:/@+-`. Anything else a
/// reply calls its model is refused rather than stored or served.
pub fn is_model_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric() || "._:/@+-".contains(c))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
    Patch,
}

impl Method {
    pub const ALL: [Method; 5] = [Method::Get, Method::Post, Method::Put, Method::Delete, Method::Patch];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str().eq_ignore_ascii_case(s))
    }
}

/// One enabled monitor, ready to probe. Its url, header values, body and key may hold secrets:
/// they are [`Secret`]s, and its `Debug` prints none of them.
#[derive(Clone, PartialEq)]
pub struct Monitor {
    pub key: MonitorKey,
    pub method: Method,
    /// With `{{API_KEY}}` substituted.
    pub url: Secret,
    /// With `{{API_KEY}}` substituted.
    pub headers: Vec<(String, Secret)>,
    pub body: Option<Secret>,
    pub interval: Duration,
    pub timeout: Duration,
    pub slow_latency: Duration,
    /// A stream whose first token comes later than this is yellow `slow`.
    pub slow_ttft: Option<Duration>,
    pub success_contains: Option<String>,
    pub api_key: Option<Secret>,
    /// The model asked for (`{{MODEL}}`).
    pub model: Option<String>,
    /// The model the response must report (`expect_model`, else `model`).
    pub expect_model: Option<String>,
    /// `expect_model` was given explicitly: a reply must name its model.
    pub require_model: bool,
    /// The request holds `{{CHALLENGE}}`: each probe asks a fresh question and checks the answer.
    pub challenge: bool,
    /// The reply must be a recognisable LLM answer (template, model or challenge in use).
    pub llm: bool,
    /// Every probe opens a connection of its own (and measures it) instead of reusing one.
    pub fresh_connection: bool,
    /// The proxy probes go through (`None`: direct): the monitor's own, else the global one.
    pub proxy: Option<crate::proxy::Proxy>,
    /// One series of a monitor of several models (`models:`): how many of the models must be
    /// red for the monitor to be (`model_rule`: any = one, majority, all). `None` otherwise.
    pub model_rule: Option<Quorum>,
    /// The price of `model` (from `prices:`, else the built-in table): what a probe's reported
    /// usage costs. `None`: no model, or no price for it.
    pub price: Option<crate::probe::cost::Price>,
    /// `daily_budget_usd`: once the probes since 00:00 UTC cost this much, probe hourly until
    /// the next UTC day.
    pub daily_budget_usd: Option<f64>,
    /// `confirm`: a red result is probed again at once this many times (0 to 3) before it is
    /// stored; the first try that is not red is stored instead.
    pub confirm: u32,
    /// `interval_when_failing`: the interval while the latest stored result is red.
    pub interval_when_failing: Option<Duration>,
    /// The output limit the request asks for (`max_tokens` and its kin, read from the body).
    pub max_tokens: Option<u64>,
    /// `stream_check_every`: every N-th probe is a stream check (a longer reply, whose stream
    /// must not arrive all at once).
    pub stream_check_every: Option<u32>,
    /// `integrity_status`: the status of `prompt_inflated` and `usage_inflated` (yellow, or red).
    pub integrity_status: crate::domain::Status,
    /// Removes secrets from everything an upstream sends back: the config-wide redactor (every
    /// monitor's secrets), shared by all monitors.
    pub redactor: SharedRedactor,
}

impl Monitor {
    /// Strings that must never appear in a log line, an error detail or an API answer: the
    /// key, the credential parts of header values, and URL query values.
    pub fn secrets(&self) -> Vec<String> {
        secrets_of(self.api_key.as_ref(), &self.headers, &self.url)
    }
}

/// The secrets of a monitor's resolved key, headers and url (see [`Monitor::secrets`]).
pub fn secrets_of(api_key: Option<&Secret>, headers: &[(String, Secret)], url: &Secret) -> Vec<String> {
    let mut secrets: Vec<String> = Vec::new();
    if let Some(key) = api_key.filter(|k| !k.is_empty()) {
        secrets.push(key.expose().to_string());
    }
    // Header values often are credentials of their own (a cookie, a second token), and an
    // upstream may echo just the token of `Bearer <token>`.
    for (name, value) in headers {
        if crate::secret::is_secret_header(name) {
            secrets.extend(crate::secret::credential_parts(value.expose()));
        }
    }
    // A key written straight into the URL (`?key=AIza...`) is as secret as one in a header.
    if let Some((_, query)) = url.expose().split_once('?') {
        for pair in query.split('&') {
            let value = pair.split_once('=').map_or("", |(_, v)| v);
            if value.len() >= 6 {
                secrets.push(value.to_string());
            }
        }
    }
    secrets
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("key", &self.key)
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("body", &self.body)
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("slow_latency", &self.slow_latency)
            .field("slow_ttft", &self.slow_ttft)
            .field("model", &self.model)
            .field("expect_model", &self.expect_model)
            .field("challenge", &self.challenge)
            .field("api_key", &self.api_key)
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

/// Where history is stored: a SQLite file (the default), or a PostgreSQL server shared by
/// several probing nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(PgUrl),
}

impl Database {
    /// What logs and errors may show: the path, or the URL without its password.
    pub fn shown(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(url) => url.shown(),
        }
    }
}

/// A `postgres://` (or `postgresql://`) URL. Its password is a secret: `Debug` and
/// [`PgUrl::shown`] replace it, and [`PgUrl::redact`] takes it out of any text.
#[derive(Clone, PartialEq)]
pub struct PgUrl {
    url: String,
    password: Option<String>,
}

impl PgUrl {
    pub fn parse(text: &str) -> Result<PgUrl, String> {
        let url = url::Url::parse(text).map_err(|_| "is not a valid postgres:// URL".to_string())?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err("must start with postgres:// or postgresql://".to_string());
        }
        if url.host_str().is_none_or(str::is_empty) && !url.query_pairs().any(|(k, _)| k == "host") {
            return Err("names no host".to_string());
        }
        let password = url.password().map(|p| percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned());
        Ok(PgUrl { url: text.to_string(), password: password.filter(|p| !p.is_empty()) })
    }

    /// The URL as libpq takes it (with the password), with a connect timeout (10 s) unless it
    /// sets one: a database that does not answer must not hold a connection attempt forever.
    pub fn expose(&self) -> String {
        if self.url.contains("connect_timeout=") {
            return self.url.clone();
        }
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{separator}connect_timeout=10", self.url)
    }

    pub fn shown(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("***"));
                }
                let mut shown = url.to_string();
                if url.query().is_some_and(|q| q.contains("password")) {
                    url.set_query(None);
                    shown = format!("{url}?...");
                }
                shown
            }
            Err(_) => "postgres://***".to_string(),
        }
    }

    /// `text` with the password (as written, and decoded) replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        if let Some(password) = &self.password {
            out = out.replace(password.as_str(), "***");
        }
        if let Ok(url) = url::Url::parse(&self.url) {
            if let Some(raw) = url.password().filter(|p| !p.is_empty()) {
                out = out.replace(raw, "***");
            }
        }
        out
    }

    /// The secrets in it, for the config-wide redactor.
    pub fn secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = self.password.iter().cloned().collect();
        if let Some(raw) = url::Url::parse(&self.url).ok().and_then(|u| u.password().map(str::to_string)) {
            if !raw.is_empty() {
                out.push(raw);
            }
        }
        out
    }
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

/// `quorum`: how many of the non-stale nodes probing a monitor must see red for its combined
/// status to be red.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quorum {
    /// Any one node.
    One,
    /// More than half.
    #[default]
    Majority,
    All,
}

impl Quorum {
    /// How many of `nodes` nodes must agree (at least 1).
    pub fn needed(self, nodes: usize) -> usize {
        match self {
            Quorum::One => 1,
            Quorum::Majority => nodes / 2 + 1,
            Quorum::All => nodes.max(1),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Quorum::One => "1",
            Quorum::Majority => "majority",
            Quorum::All => "all",
        }
    }
}

/// Which origins may read the API from a browser. `["*"]` (the default) allows any.
#[derive(Debug, Clone, PartialEq)]
pub struct Cors {
    pub allowed_origins: Vec<String>,
}

/// `page:`: what the status page shows besides the monitors, and each monitor's `group:`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PageConfig {
    pub title: Option<String>,
    pub description: Option<String>,
    /// An http(s) URL, or a path on this daemon.
    pub logo_url: Option<String>,
    pub footer: Option<String>,
    /// The order of groups on the page (groups not named here follow, in config order).
    pub groups: Vec<String>,
    /// `provider/service[/channel]` patterns (`*` for any part) of monitors left off the page.
    pub hidden: Vec<String>,
    /// The monitors with a `group:`, and it.
    pub monitor_groups: Vec<(MonitorKey, String)>,
}

/// The origin (`scheme://host[:port]`) a `page.logo_url` loads from, for the status page's
/// Content-Security-Policy: None for a path on this daemon. Only a DNS name, an IPv4 address or
/// a bracketed IPv6 address is a host here, and no user name or password is allowed, so the
/// origin can never carry another CSP directive, a wildcard or a credential.
pub fn logo_origin(url: &str) -> Result<Option<String>, String> {
    if url.starts_with('/') && !url.starts_with("//") {
        return Ok(None);
    }
    let (scheme, rest) = url.split_once("://").ok_or("must start with http:// or https://, or /")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("scheme {scheme:?} is not http or https"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("must not hold a user name or password (it is shown to every visitor)".to_string());
    }
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (ip, after) = inner.split_once(']').ok_or("has an unclosed [ in its host")?;
        ip.parse::<std::net::Ipv6Addr>().map_err(|_| "has an invalid IPv6 address".to_string())?;
        (format!("[{ip}]"), after.strip_prefix(':'))
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let label_ok =
            |l: &str| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
            return Err("has a host that is not a DNS name or an IP address".to_string());
        }
        (host.to_ascii_lowercase(), port)
    };
    match port {
        None => Ok(Some(format!("{scheme}://{host}"))),
        Some(port) => match port.parse::<u16>() {
            Ok(n) if n > 0 && port.chars().all(|c| c.is_ascii_digit()) => Ok(Some(format!("{scheme}://{host}:{n}"))),
            _ => Err("has an invalid port".to_string()),
        },
    }
}

impl Config {
    /// How many monitors are enabled: a monitor of several models counts once.
    pub fn monitor_count(&self) -> usize {
        let mut seen = std::collections::HashSet::new();
        self.monitors.iter().filter(|m| m.key.model.is_empty() || seen.insert(m.key.monitor())).count()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this was loaded from.
    pub path: PathBuf,
    pub listen: String,
    pub database: Database,
    /// This daemon's probing location (`node`; default: the host name).
    pub node: String,
    /// How many nodes must see red for the combined status to be red.
    pub quorum: Quorum,
    pub retention: Duration,
    pub degraded_weight: f64,
    pub cors: Cors,
    pub page: PageConfig,
    /// `prices:` over the built-in price table (USD per million tokens, by model).
    pub prices: crate::probe::cost::PriceTable,
    /// Enabled monitors, in config order.
    pub monitors: Vec<Monitor>,
    pub disabled: usize,
    /// `public_url`, `alerts:` and `maintenance:`, and each monitor's alert settings.
    pub alerts: crate::alert::AlertConfig,
    /// Things that load but are probably not what the operator meant.
    pub warnings: Vec<String>,
}

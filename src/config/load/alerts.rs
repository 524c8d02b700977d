//! `public_url`, `alerts:` (thresholds, channels, storms) and `maintenance:`, and each monitor's
//! own `alerts` and thresholds. Channel secrets may come from `MONITOR_ALERT_<NAME>_<FIELD>`,
//! which wins over the file; every secret is kept out of the error messages.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use chrono::{NaiveTime, Weekday};
use serde_yaml::{Mapping, Value};

use super::checks::check_url;
use super::env::mangle;
use super::fields::{describe, Errors, Fields};
use crate::alert::maintenance::{Maintenance, Pattern, Recurrence};
use crate::alert::{AlertConfig, Channel, ChannelKind, Language, MonitorAlerts, Storm, Tls};
use crate::config::{MonitorKey, Secret};

const ALERT_KEYS: &[&str] = &[
    "language",
    "timezone",
    "failure_threshold",
    "success_threshold",
    "remind_every",
    "send_resolved",
    "on",
    "channels",
    "default_channels",
    "give_up_after",
    "storm",
];
const STORM_KEYS: &[&str] = &["min_monitors", "min_fraction", "window"];
const MAINTENANCE_KEYS: &[&str] =
    &["name", "monitors", "start", "end", "every", "weekday", "at", "duration", "timezone"];
const MAX_THRESHOLD: u32 = 10_000;

/// The keys each channel type takes (besides `name` and `type`).
fn channel_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "webhook" | "feishu" | "dingtalk" => &["url", "secret"],
        "slack" | "discord" | "wecom" => &["url"],
        "ntfy" => &["url", "token"],
        "telegram" => &["bot_token", "chat_id", "api_url"],
        "email" => &["host", "port", "tls", "username", "password", "from", "to"],
        _ => &[],
    }
}

/// Fields that are secret: they may come from the environment and never appear anywhere.
const SECRET_FIELDS: &[&str] = &["url", "secret", "token", "bot_token", "password", "proxy"];

/// A field's text as the file has it, if it is a non-empty string.
fn fields_text(map: &serde_yaml::Mapping, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).filter(|t| !t.trim().is_empty()).map(str::to_string)
}

/// `MONITOR_ALERT_<NAME>_<FIELD>`: the environment variable that may carry a channel's field.
pub fn alert_env_name(channel: &str, field: &str) -> String {
    format!("MONITOR_ALERT_{}_{}", mangle(channel), mangle(field))
}

pub(super) struct AlertInput<'a> {
    pub root: &'a Fields<'a>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// Reads `public_url`, `alerts:` and `maintenance:`; every channel secret is added to `secrets`.
pub(super) fn parse_alerts(input: &AlertInput<'_>, secrets: &mut Vec<String>, errors: &mut Errors) -> AlertConfig {
    let mut config = AlertConfig::default();
    let top = input.root;
    if let Some(url) = top.get::<String>("public_url", errors) {
        match check_url(&url) {
            Ok(()) => config.public_url = Some(url.trim_end_matches('/').to_string()),
            Err(e) => errors.push("", "public_url", e),
        }
    }
    let alerts_map;
    let alerts = match top.raw("alerts") {
        None => None,
        Some(Value::Mapping(map)) => {
            alerts_map = map;
            Some(Fields { map: alerts_map, place: "alerts".to_string() })
        }
        Some(other) => {
            errors.push("", "alerts", format!("must be a mapping, found {}", describe(other)));
            None
        }
    };
    if let Some(alerts) = &alerts {
        alerts.check_keys(ALERT_KEYS, errors);
        match alerts.get::<String>("language", errors).as_deref() {
            None | Some("en") => {}
            Some("zh") => config.language = Language::Zh,
            Some(other) => errors.push("alerts", "language", format!("{other:?} is not one of en, zh")),
        }
        if let Some(tz) = alerts.get::<String>("timezone", errors) {
            match timezone(&tz) {
                Ok(tz) => config.timezone = tz,
                Err(e) => errors.push("alerts", "timezone", e),
            }
        }
        if let Some(n) = threshold(alerts, "failure_threshold", errors) {
            config.failure_threshold = n;
        }
        if let Some(n) = threshold(alerts, "success_threshold", errors) {
            config.success_threshold = n;
        }
        config.remind_every = alerts.duration("remind_every", true, errors);
        if let Some(d) = config.remind_every.filter(|d| *d < Duration::from_secs(1)) {
            errors.push("alerts", "remind_every", format!("{} is under 1s", crate::config::duration::format(d)));
            config.remind_every = None;
        }
        config.send_resolved = alerts.get::<bool>("send_resolved", errors).unwrap_or(true);
        if let Some(on) = alerts.get::<Vec<String>>("on", errors) {
            let mut colours: Vec<&str> = on.iter().map(|s| s.trim()).collect();
            colours.sort_unstable();
            colours.dedup();
            match colours.as_slice() {
                ["red"] => {}
                ["red", "yellow"] => config.on_yellow = true,
                _ => errors.push("alerts", "on", "must be [red] or [red, yellow]"),
            }
        }
        if let Some(d) = alerts.duration("give_up_after", true, errors) {
            config.give_up_after = d;
        }
        config.storm = storm(alerts, errors);
        config.channels = channels(alerts, input.env, secrets, errors);
        let names: HashSet<&str> = config.channels.iter().map(|c| c.name.as_str()).collect();
        let defaults = alerts.get::<Vec<String>>("default_channels", errors).unwrap_or_default();
        for name in &defaults {
            if !names.contains(name.as_str()) {
                errors.push("alerts", "default_channels", format!("{name:?} is not a channel in alerts.channels"));
            }
        }
        config.default_channels = defaults;
    }
    let tz = config.timezone;
    config.maintenance = maintenance(top, tz, errors);
    config
}

/// Each enabled monitor's `alerts`, `failure_threshold` and `success_threshold`.
pub(super) fn monitor_alerts(
    config: &AlertConfig,
    monitors: &[(usize, &Mapping, MonitorKey, String)],
    errors: &mut Errors,
) -> HashMap<MonitorKey, MonitorAlerts> {
    let names: HashSet<&str> = config.channels.iter().map(|c| c.name.as_str()).collect();
    let mut out = HashMap::with_capacity(monitors.len());
    for (_, map, key, place) in monitors {
        let fields = Fields { map, place: place.clone() };
        let channels = match fields.get::<Vec<String>>("alerts", errors) {
            Some(list) => {
                for name in &list {
                    if !names.contains(name.as_str()) {
                        errors.push(place, "alerts", format!("{name:?} is not a channel in alerts.channels"));
                    }
                }
                list
            }
            None => config.default_channels.clone(),
        };
        let failure_threshold = threshold(&fields, "failure_threshold", errors).unwrap_or(config.failure_threshold);
        let success_threshold = threshold(&fields, "success_threshold", errors).unwrap_or(config.success_threshold);
        out.insert(key.clone(), MonitorAlerts { channels, failure_threshold, success_threshold });
    }
    out
}

fn timezone(name: &str) -> Result<chrono_tz::Tz, String> {
    chrono_tz::Tz::from_str(name.trim())
        .map_err(|_| format!("{name:?} is not an IANA time zone (e.g. Asia/Shanghai, UTC)"))
}

fn threshold(fields: &Fields<'_>, key: &str, errors: &mut Errors) -> Option<u32> {
    let value = fields.raw(key)?;
    match value.as_u64() {
        Some(n) if (1..=u64::from(MAX_THRESHOLD)).contains(&n) => Some(n as u32),
        _ => {
            errors.push(&fields.place, key, format!("must be a whole number from 1 to {MAX_THRESHOLD}"));
            None
        }
    }
}

fn storm(alerts: &Fields<'_>, errors: &mut Errors) -> Storm {
    let mut storm = Storm::default();
    let map = match alerts.raw("storm") {
        None => return storm,
        Some(Value::Mapping(map)) => map,
        Some(other) => {
            errors.push("alerts", "storm", format!("must be a mapping, found {}", describe(other)));
            return storm;
        }
    };
    let fields = Fields { map, place: "alerts.storm".to_string() };
    fields.check_keys(STORM_KEYS, errors);
    if let Some(value) = fields.raw("min_monitors") {
        match value.as_u64() {
            Some(n) if n <= 1_000_000 => storm.min_monitors = n as u32,
            _ => errors.push("alerts.storm", "min_monitors", "must be a whole number (0 disables storms)"),
        }
    }
    if let Some(f) = fields.get::<f64>("min_fraction", errors) {
        if (0.0..=1.0).contains(&f) {
            storm.min_fraction = f;
        } else {
            errors.push("alerts.storm", "min_fraction", format!("{f} is outside 0..1"));
        }
    }
    if let Some(d) = fields.duration("window", false, errors) {
        storm.window = d;
    }
    storm
}

/// A channel's field: from `MONITOR_ALERT_<NAME>_<FIELD>` (secret fields only), else the file.
struct ChannelFields<'a> {
    fields: Fields<'a>,
    name: String,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl ChannelFields<'_> {
    fn text(&self, key: &str, errors: &mut Errors) -> Option<String> {
        if SECRET_FIELDS.contains(&key) {
            if let Some(v) = (self.env)(&alert_env_name(&self.name, key)).filter(|v| !v.trim().is_empty()) {
                return Some(v);
            }
        }
        // A chat id or a port may be written as a number.
        match self.fields.raw(key) {
            Some(Value::Number(n)) if key == "chat_id" => Some(n.to_string()),
            _ => self.fields.get::<String>(key, errors).filter(|v| !v.trim().is_empty()),
        }
    }

    fn required(&self, key: &str, errors: &mut Errors) -> Option<String> {
        let value = self.text(key, errors);
        if value.is_none() && self.fields.raw(key).is_none() {
            let hint = if SECRET_FIELDS.contains(&key) {
                format!(" (or set {})", alert_env_name(&self.name, key))
            } else {
                String::new()
            };
            errors.push(&self.fields.place, key, format!("is required for type {}{hint}", self.kind()));
        }
        value
    }

    fn kind(&self) -> String {
        self.fields.map.get("type").and_then(Value::as_str).unwrap_or_default().to_string()
    }

    fn secret(&self, key: &str, errors: &mut Errors, secrets: &mut Vec<String>) -> Option<Secret> {
        let value = self.text(key, errors)?;
        secrets.push(value.clone());
        Some(Secret::new(value))
    }

    fn url(&self, key: &str, errors: &mut Errors, secrets: &mut Vec<String>) -> Option<Secret> {
        let value = self.required(key, errors)?;
        secrets.push(value.clone());
        // Never the URL itself in the message: it carries the robot's token.
        if let Err(e) = check_url(&value) {
            errors.push(&self.fields.place, key, e);
            return None;
        }
        Some(Secret::new(value))
    }
}

fn channels(
    alerts: &Fields<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: &mut Vec<String>,
    errors: &mut Errors,
) -> Vec<Channel> {
    let items = match alerts.raw("channels") {
        None => return Vec::new(),
        Some(Value::Sequence(items)) => items,
        Some(other) => {
            errors.push("alerts", "channels", format!("must be a list, found {}", describe(other)));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, item) in items.iter().enumerate() {
        let Value::Mapping(map) = item else {
            errors.push(
                &format!("alerts.channels[{index}]"),
                "",
                format!("must be a mapping, found {}", describe(item)),
            );
            continue;
        };
        let name = map.get("name").and_then(Value::as_str).unwrap_or_default().trim().to_string();
        let place = if name.is_empty() {
            format!("alerts.channels[{index}]")
        } else {
            format!("alerts.channels[{index}] {name}")
        };
        let fields = Fields { map, place: place.clone() };
        let before = errors.lines.len();
        if name.is_empty() {
            errors.push(&place, "name", "is required (monitors refer to a channel by its name)");
        } else if let Some(first) = seen.get(&name.to_ascii_lowercase()) {
            errors.push(&place, "name", format!("duplicates alerts.channels[{first}]"));
        } else {
            seen.insert(name.to_ascii_lowercase(), index);
        }
        let kind: Option<String> = fields.get("type", errors);
        let kind = match kind.as_deref().map(str::trim) {
            None => {
                errors.push(&place, "type", format!("is required (one of {})", ChannelKind::TYPES.join(", ")));
                continue;
            }
            Some(k) if ChannelKind::TYPES.contains(&k) => k.to_string(),
            Some(other) => {
                errors.push(&place, "type", format!("{other:?} is not one of {}", ChannelKind::TYPES.join(", ")));
                continue;
            }
        };
        let mut known = vec!["name", "type", "proxy"];
        known.extend_from_slice(channel_keys(&kind));
        fields.check_keys(&known, errors);
        let f = ChannelFields { fields, name: name.clone(), env };
        let proxy_source = if (env)(&alert_env_name(&name, "proxy")).is_some_and(|v| !v.trim().is_empty()) {
            // What the file says is still hidden wherever it might show.
            secrets.extend(fields_text(map, "proxy"));
            alert_env_name(&name, "proxy")
        } else {
            "proxy".to_string()
        };
        let proxy = f
            .text("proxy", errors)
            .and_then(|text| super::proxy::parse_proxy(&text, &place, &proxy_source, secrets, errors));
        let parsed = match kind.as_str() {
            "webhook" | "feishu" | "dingtalk" => {
                let url = f.url("url", errors, secrets);
                let secret = f.secret("secret", errors, secrets);
                url.map(|url| match kind.as_str() {
                    "webhook" => ChannelKind::Webhook { url, secret },
                    "feishu" => ChannelKind::Feishu { url, secret },
                    _ => ChannelKind::Dingtalk { url, secret },
                })
            }
            "slack" | "discord" | "wecom" => f.url("url", errors, secrets).map(|url| match kind.as_str() {
                "slack" => ChannelKind::Slack { url },
                "discord" => ChannelKind::Discord { url },
                _ => ChannelKind::Wecom { url },
            }),
            "ntfy" => {
                let url = f.url("url", errors, secrets);
                if let Some(u) = url.as_ref().and_then(|u| url::Url::parse(u.expose()).ok()) {
                    if u.path_segments().and_then(|mut s| s.next_back()).is_none_or(str::is_empty) {
                        errors.push(&place, "url", "must name the topic (https://ntfy.sh/<topic>)");
                    }
                }
                let token = f.secret("token", errors, secrets);
                url.map(|url| ChannelKind::Ntfy { url, token })
            }
            "telegram" => {
                let bot_token = f.required("bot_token", errors);
                if let Some(t) = &bot_token {
                    secrets.push(t.clone());
                }
                let chat_id = f.required("chat_id", errors);
                let api_url = f.text("api_url", errors).unwrap_or_else(|| "https://api.telegram.org".to_string());
                if let Err(e) = check_url(&api_url) {
                    errors.push(&place, "api_url", e);
                }
                match (bot_token, chat_id) {
                    (Some(bot_token), Some(chat_id)) => Some(ChannelKind::Telegram {
                        bot_token: Secret::new(bot_token),
                        chat_id,
                        api_url: api_url.trim_end_matches('/').to_string(),
                    }),
                    _ => None,
                }
            }
            _ => email(&f, &place, errors, secrets),
        };
        if errors.lines.len() > before {
            continue;
        }
        if let Some(kind) = parsed {
            let channel = Channel { name, kind, proxy };
            // The token-carrying parts of its URL too: a receiver may echo its path or query alone.
            secrets.extend(channel.secrets());
            out.push(channel);
        }
    }
    out
}

fn email(f: &ChannelFields<'_>, place: &str, errors: &mut Errors, secrets: &mut Vec<String>) -> Option<ChannelKind> {
    let host = f.required("host", errors);
    let tls = match f.text("tls", errors).as_deref() {
        None | Some("starttls") => Tls::Starttls,
        Some("tls") => Tls::Tls,
        Some("none") => Tls::None,
        Some(other) => {
            errors.push(place, "tls", format!("{other:?} is not one of none, starttls, tls"));
            Tls::Starttls
        }
    };
    let port = match f.fields.raw("port") {
        None => match tls {
            Tls::Tls => 465,
            Tls::Starttls => 587,
            Tls::None => 25,
        },
        Some(v) => match v.as_u64().and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0) {
            Some(p) => p,
            None => {
                errors.push(place, "port", "must be a port number from 1 to 65535");
                0
            }
        },
    };
    let username = f.text("username", errors);
    let password = f.secret("password", errors, secrets);
    if username.is_some() != password.is_some() {
        errors.push(place, if username.is_some() { "password" } else { "username" }, "is required with the other");
    }
    let from = f.required("from", errors);
    if let Some(from) = &from {
        if from.parse::<lettre::message::Mailbox>().is_err() {
            errors.push(place, "from", format!("{from:?} is not an e-mail address (name <user@host> or user@host)"));
        }
    }
    let to: Vec<String> = match f.fields.raw("to") {
        Some(Value::String(one)) => vec![one.clone()],
        Some(_) => f.fields.get::<Vec<String>>("to", errors).unwrap_or_default(),
        None => Vec::new(),
    };
    if to.is_empty() && f.fields.raw("to").is_none() {
        errors.push(place, "to", "is required for type email (a list of addresses)");
    }
    for address in &to {
        if address.parse::<lettre::message::Mailbox>().is_err() {
            errors.push(place, "to", format!("{address:?} is not an e-mail address"));
        }
    }
    Some(ChannelKind::Email { host: host?.trim().to_string(), port, tls, username, password, from: from?, to })
}

fn maintenance(top: &Fields<'_>, default_tz: chrono_tz::Tz, errors: &mut Errors) -> Vec<Maintenance> {
    let items = match top.raw("maintenance") {
        None => return Vec::new(),
        Some(Value::Sequence(items)) => items,
        Some(other) => {
            errors.push("", "maintenance", format!("must be a list, found {}", describe(other)));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, item) in items.iter().enumerate() {
        let Value::Mapping(map) = item else {
            errors.push(&format!("maintenance[{index}]"), "", format!("must be a mapping, found {}", describe(item)));
            continue;
        };
        let name = map.get("name").and_then(Value::as_str).unwrap_or_default().trim().to_string();
        let place =
            if name.is_empty() { format!("maintenance[{index}]") } else { format!("maintenance[{index}] {name}") };
        let fields = Fields { map, place: place.clone() };
        let before = errors.lines.len();
        fields.check_keys(MAINTENANCE_KEYS, errors);
        if name.is_empty() {
            errors.push(&place, "name", "is required");
        } else if let Some(first) = seen.get(&name) {
            // Windows are told apart by name (their start and end events, their state).
            errors.push(&place, "name", format!("duplicates maintenance[{first}]"));
        } else {
            seen.insert(name.clone(), index);
        }
        let patterns: Vec<String> = fields.get("monitors", errors).unwrap_or_default();
        if patterns.is_empty() && errors.lines.len() == before {
            errors.push(&place, "monitors", "is required (a list of provider/service[/channel] patterns, * for any)");
        }
        let monitors: Vec<Pattern> = patterns
            .iter()
            .filter_map(|p| Pattern::parse(p).map_err(|e| errors.push(&place, "monitors", e)).ok())
            .collect();
        let once = fields.raw("start").is_some() || fields.raw("end").is_some();
        let schedule = if once {
            for key in ["every", "weekday", "at", "duration", "timezone"] {
                if fields.raw(key).is_some() {
                    errors.push(&place, key, "does not go with start/end (a window is either once or recurring)");
                }
            }
            let time = |key: &str, errors: &mut Errors| -> Option<i64> {
                let text: String = fields.get(key, errors)?;
                match chrono::DateTime::parse_from_rfc3339(text.trim()) {
                    Ok(t) => Some(t.timestamp()),
                    Err(_) => {
                        errors.push(
                            &place,
                            key,
                            format!("{text:?} is not an RFC 3339 time (2026-12-01T02:00:00+08:00)"),
                        );
                        None
                    }
                }
            };
            let (start, end) = (time("start", errors), time("end", errors));
            for (key, value) in [("start", start), ("end", end)] {
                if value.is_none() && fields.raw(key).is_none() {
                    errors.push(&place, key, "is required with the other");
                }
            }
            match (start, end) {
                (Some(start), Some(end)) if end > start => Some(Recurrence::Once { start, end }),
                (Some(_), Some(_)) => {
                    errors.push(&place, "end", "must be after start");
                    None
                }
                _ => None,
            }
        } else {
            recurring(&fields, &place, default_tz, errors)
        };
        if errors.lines.len() > before {
            continue;
        }
        if let Some(schedule) = schedule {
            out.push(Maintenance { name, monitors, schedule });
        }
    }
    out
}

fn recurring(fields: &Fields<'_>, place: &str, default_tz: chrono_tz::Tz, errors: &mut Errors) -> Option<Recurrence> {
    let every: Option<String> = fields.get("every", errors);
    let weekday_text: Option<String> = fields.get("weekday", errors);
    let weekly = match every.as_deref().map(str::trim) {
        Some("daily") => false,
        Some("weekly") => true,
        Some(other) => {
            errors.push(place, "every", format!("{other:?} is not one of daily, weekly"));
            return None;
        }
        None => {
            errors.push(place, "", "needs start and end, or every (daily | weekly), at and duration");
            return None;
        }
    };
    let weekday = match (weekly, weekday_text.as_deref()) {
        (true, Some(w)) => match w.trim().parse::<Weekday>() {
            Ok(day) if w.trim().len() == 3 => Some(day),
            _ => {
                errors.push(place, "weekday", format!("{w:?} is not one of mon, tue, wed, thu, fri, sat, sun"));
                None
            }
        },
        (true, None) => {
            errors.push(place, "weekday", "is required with every: weekly (mon..sun)");
            None
        }
        (false, Some(_)) => {
            errors.push(place, "weekday", "goes with every: weekly only");
            None
        }
        (false, None) => None,
    };
    let at = match fields.get::<String>("at", errors) {
        Some(text) => match NaiveTime::parse_from_str(text.trim(), "%H:%M") {
            Ok(t) => Some(t),
            Err(_) => {
                errors.push(place, "at", format!("{text:?} is not a time of day (HH:MM)"));
                None
            }
        },
        None => {
            errors.push(place, "at", "is required with every (HH:MM)");
            None
        }
    };
    let duration = fields.duration("duration", true, errors);
    let period = if weekly { 7 * 86_400 } else { 86_400 };
    match duration {
        None if fields.raw("duration").is_none() => errors.push(place, "duration", "is required with every"),
        Some(d) if d.as_secs() >= period => errors.push(
            place,
            "duration",
            format!("{} is as long as the period or longer", crate::config::duration::format(d)),
        ),
        _ => {}
    }
    let timezone = match fields.get::<String>("timezone", errors) {
        Some(name) => match timezone(&name) {
            Ok(tz) => tz,
            Err(e) => {
                errors.push(place, "timezone", e);
                return None;
            }
        },
        None => default_tz,
    };
    Some(Recurrence::Every {
        weekday: if weekly { Some(weekday?) } else { None },
        at: at?,
        duration: duration?,
        timezone,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::alert::{ChannelKind, Language, Recurrence, Tls};
    use crate::config::{parse_str, MonitorKey};

    const FULL: &str = r#"
public_url: "https://status.example.com/"
alerts:
  language: zh
  timezone: "Asia/Shanghai"
  failure_threshold: 3
  remind_every: 2h
  on: [yellow, red]
  give_up_after: 1h
  storm: {min_monitors: 0, window: 30s}
  channels:
    - {name: ops, type: webhook, url: "https://hooks.example.com/llm", secret: "whsec_0123456789"}
    - {name: tg, type: telegram, chat_id: -1001234567}
    - {name: mail, type: email, host: smtp.example.com, username: u, password: "pw-0123456789", from: "llm-monitor <monitor@example.com>", to: ["oncall@example.com"]}
    - {name: push, type: ntfy, url: "https://ntfy.sh/llm-alerts", token: "tk_abcdef"}
  default_channels: [ops]
maintenance:
  - {name: "relay upgrade", monitors: ["88code/*"], start: "2026-12-01T02:00:00+08:00", end: "2026-12-01T04:00:00+08:00"}
  - {name: nightly, monitors: ["*/*"], every: weekly, weekday: sun, at: "03:00", duration: 15m}
monitors:
  - {provider: 88code, service: cc, url: "http://h/", method: GET, alerts: [tg, mail], failure_threshold: 5}
  - {provider: 88code, service: cx, url: "http://h/", method: GET}
  - {provider: quiet, service: q, url: "http://h/", method: GET, alerts: []}
"#;

    #[test]
    fn a_full_alerts_section_reads_with_env_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let env: BTreeMap<&str, &str> =
            [("MONITOR_ALERT_TG_BOT_TOKEN", "123456:ABCDEFGHIJ"), ("MONITOR_ALERT_OPS_SECRET", "from-env-secret")]
                .into();
        let cfg = parse_str(FULL, dir.path(), &|n| env.get(n).map(|v| v.to_string())).unwrap();
        let a = &cfg.alerts;
        assert_eq!(a.public_url.as_deref(), Some("https://status.example.com"));
        assert_eq!(
            (a.language, a.timezone, a.failure_threshold, a.success_threshold),
            (Language::Zh, chrono_tz::Asia::Shanghai, 3, 2)
        );
        assert_eq!(a.remind_every, Some(std::time::Duration::from_secs(7_200)));
        assert!(a.on_yellow && a.send_resolved);
        assert_eq!((a.storm.min_monitors, a.storm.window.as_secs()), (0, 30));
        match &a.channel("ops").unwrap().kind {
            ChannelKind::Webhook { secret, .. } => assert_eq!(secret.as_ref().unwrap().expose(), "from-env-secret"),
            other => panic!("{other:?}"),
        }
        match &a.channel("tg").unwrap().kind {
            ChannelKind::Telegram { bot_token, chat_id, api_url } => {
                assert_eq!(
                    (bot_token.expose(), chat_id.as_str(), api_url.as_str()),
                    ("123456:ABCDEFGHIJ", "-1001234567", "https://api.telegram.org")
                )
            }
            other => panic!("{other:?}"),
        }
        match &a.channel("mail").unwrap().kind {
            ChannelKind::Email { port, tls, .. } => assert_eq!((*port, *tls), (587, Tls::Starttls)),
            other => panic!("{other:?}"),
        }
        let of = |p, s| a.monitors.get(&MonitorKey::new(p, s, "")).unwrap();
        assert_eq!(
            (of("88code", "cc").channels.clone(), of("88code", "cc").failure_threshold),
            (vec!["tg".to_string(), "mail".into()], 5)
        );
        assert_eq!(
            (of("88code", "cx").channels.clone(), of("88code", "cx").failure_threshold),
            (vec!["ops".to_string()], 3)
        );
        assert!(of("quiet", "q").channels.is_empty());
        assert_eq!(a.maintenance.len(), 2);
        assert!(matches!(
            a.maintenance[1].schedule,
            Recurrence::Every { weekday: Some(chrono::Weekday::Sun), timezone: chrono_tz::Asia::Shanghai, .. }
        ));
        // Every channel secret is in the redactor.
        let shown = a
            .redactor
            .redact("123456:ABCDEFGHIJ pw-0123456789 from-env-secret tk_abcdef https://hooks.example.com/llm");
        for secret in ["123456:ABCDEFGHIJ", "pw-0123456789", "from-env-secret", "tk_abcdef", "hooks.example.com/llm"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once_and_no_secret_in_them() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = r#"
public_url: "ftp://x"
alerts:
  language: fr
  timezone: "Mars/Olympus"
  failure_threshold: 0
  on: [green]
  storm: {min_fraction: 2}
  channels:
    - {name: ops, type: webhook, url: "not a url with sekrit-token-123456"}
    - {name: ops, type: slack, url: "https://hooks.slack.com/services/T/B/X"}
    - {name: x, type: pager}
    - {name: tg, type: telegram, chat_id: "1", bot_tokn: "123:abc"}
    - {name: mail, type: email, host: h, from: "nobody", to: []}
  default_channels: [nope]
maintenance:
  - {name: m, monitors: ["a"], every: weekly, at: "25:00", duration: 8d}
  - {name: n, monitors: ["*/*"], start: "2026-12-01T04:00:00Z", end: "2026-12-01T02:00:00Z"}
monitors:
  - {provider: a, service: b, url: "http://h/", method: GET, alerts: [ghost], success_threshold: -1}
"#;
        let errors = parse_str(yaml, dir.path(), &|_| None).unwrap_err();
        let all = errors.to_string();
        for want in [
            "public_url: scheme \"ftp\" is not http or https",
            "alerts: language: \"fr\" is not one of en, zh",
            "alerts: timezone: \"Mars/Olympus\" is not an IANA time zone",
            "alerts: failure_threshold: must be a whole number from 1 to 10000",
            "alerts: on: must be [red] or [red, yellow]",
            "alerts.storm: min_fraction: 2 is outside 0..1",
            "alerts.channels[0] ops: url: must start with http:// or https://",
            "alerts.channels[1] ops: name: duplicates alerts.channels[0]",
            "alerts.channels[2] x: type: \"pager\" is not one of webhook, slack",
            "alerts.channels[3] tg: bot_tokn: unknown key",
            "alerts.channels[3] tg: bot_token: is required for type telegram (or set MONITOR_ALERT_TG_BOT_TOKEN)",
            "alerts.channels[4] mail: from: \"nobody\" is not an e-mail address",
            "alerts: default_channels: \"nope\" is not a channel in alerts.channels",
            "maintenance[0] m: monitors: \"a\" is not provider/service",
            "maintenance[0] m: weekday: is required with every: weekly",
            "maintenance[0] m: at: \"25:00\" is not a time of day (HH:MM)",
            "maintenance[0] m: duration: 8d is as long as the period or longer",
            "maintenance[1] n: end: must be after start",
            "monitors[0] a/b: alerts: \"ghost\" is not a channel in alerts.channels",
            "monitors[0] a/b: success_threshold: must be a whole number from 1 to 10000",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
        assert!(!all.contains("sekrit-token-123456") && !all.contains("123:abc"), "{all}");
    }

    #[test]
    fn a_field_given_only_in_the_environment_satisfies_check() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "alerts:\n  channels:\n    - {name: ops-hook, type: slack}\nmonitors: []\n";
        let errors = parse_str(yaml, dir.path(), &|_| None).unwrap_err().to_string();
        assert!(errors.contains("url: is required for type slack (or set MONITOR_ALERT_OPS_HOOK_URL)"), "{errors}");
        let cfg = parse_str(yaml, dir.path(), &|n| {
            (n == "MONITOR_ALERT_OPS_HOOK_URL").then(|| "https://hooks.slack.com/services/T0/B0/XYZ".into())
        })
        .unwrap();
        assert_eq!(cfg.alerts.channels.len(), 1);
    }
}

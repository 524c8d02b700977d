//! Alerting: who is told when a monitor goes down or recovers, and how. The configuration
//! types live here; the state machine ([`engine`]) runs inside the store's writer, in the same
//! transaction as the results that move it; the [`delivery`] actor sends what it put in the
//! outbox through each channel ([`send`]) in words rendered by [`message`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::{MonitorKey, Reason, Status};
use crate::secret::Secret;

pub mod delivery;
pub mod engine;
pub mod maintenance;
pub mod message;
pub mod send;

pub use maintenance::{Maintenance, Recurrence};

/// The language of the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    #[default]
    En,
    Zh,
}

/// Storm detection: many monitors failing within one short window get one summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Storm {
    /// 0 disables storm detection.
    pub min_monitors: u32,
    pub min_fraction: f64,
    pub window: Duration,
}

impl Default for Storm {
    fn default() -> Self {
        Storm { min_monitors: 5, min_fraction: 0.5, window: Duration::from_secs(60) }
    }
}

/// The whole `alerts:` section (plus `public_url` and `maintenance:`), resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertConfig {
    /// Links in messages point here (no trailing slash).
    pub public_url: Option<String>,
    pub language: Language,
    pub timezone: chrono_tz::Tz,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    pub remind_every: Option<Duration>,
    pub send_resolved: bool,
    /// `on: [red, yellow]`: yellow probes count as failing too.
    pub on_yellow: bool,
    pub give_up_after: Duration,
    pub storm: Storm,
    pub channels: Vec<Channel>,
    pub default_channels: Vec<String>,
    pub maintenance: Vec<Maintenance>,
    /// Each enabled monitor's own settings (channels and thresholds), resolved.
    pub monitors: std::collections::HashMap<MonitorKey, MonitorAlerts>,
    /// The config-wide redactor (every monitor's and every channel's secrets).
    pub redactor: crate::secret::SharedRedactor,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            public_url: None,
            language: Language::En,
            timezone: chrono_tz::UTC,
            failure_threshold: 2,
            success_threshold: 2,
            remind_every: None,
            send_resolved: true,
            on_yellow: false,
            give_up_after: Duration::from_secs(24 * 3_600),
            storm: Storm::default(),
            channels: Vec::new(),
            default_channels: Vec::new(),
            maintenance: Vec::new(),
            monitors: std::collections::HashMap::new(),
            redactor: Default::default(),
        }
    }
}

impl AlertConfig {
    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.name == name)
    }

    /// Every secret of every channel (for the config-wide redactor).
    pub fn secrets(&self) -> Vec<String> {
        self.channels.iter().flat_map(Channel::secrets).collect()
    }
}

/// A monitor's own alert settings, resolved against the `alerts:` defaults.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MonitorAlerts {
    /// The channels its messages go to (`alerts: []` silences it; absent: `default_channels`).
    pub channels: Vec<String>,
    pub failure_threshold: u32,
    pub success_threshold: u32,
}

/// One configured channel: a unique name and where and how messages go.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub name: String,
    pub kind: ChannelKind,
    /// The proxy its messages go through (`proxy`, or `MONITOR_ALERT_<NAME>_PROXY`; `None`:
    /// direct; the global `proxy` is for probes only).
    pub proxy: Option<crate::proxy::Proxy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChannelKind {
    Webhook {
        url: Secret,
        secret: Option<Secret>,
    },
    Slack {
        url: Secret,
    },
    Discord {
        url: Secret,
    },
    Telegram {
        bot_token: Secret,
        chat_id: String,
        api_url: String,
    },
    Feishu {
        url: Secret,
        secret: Option<Secret>,
    },
    Dingtalk {
        url: Secret,
        secret: Option<Secret>,
    },
    Wecom {
        url: Secret,
    },
    /// `url` is the server and topic (`https://ntfy.sh/my-topic`).
    Ntfy {
        url: Secret,
        token: Option<Secret>,
    },
    Email {
        host: String,
        port: u16,
        tls: Tls,
        username: Option<String>,
        password: Option<Secret>,
        from: String,
        to: Vec<String>,
    },
}

impl ChannelKind {
    pub const TYPES: [&'static str; 9] =
        ["webhook", "slack", "discord", "telegram", "feishu", "dingtalk", "wecom", "ntfy", "email"];

    pub fn type_name(&self) -> &'static str {
        match self {
            ChannelKind::Webhook { .. } => "webhook",
            ChannelKind::Slack { .. } => "slack",
            ChannelKind::Discord { .. } => "discord",
            ChannelKind::Telegram { .. } => "telegram",
            ChannelKind::Feishu { .. } => "feishu",
            ChannelKind::Dingtalk { .. } => "dingtalk",
            ChannelKind::Wecom { .. } => "wecom",
            ChannelKind::Ntfy { .. } => "ntfy",
            ChannelKind::Email { .. } => "email",
        }
    }

    /// At most this many messages a minute (the receivers' own limits: a DingTalk or WeCom robot
    /// takes 20 a minute, a Telegram group about 20, a Discord webhook 30).
    pub fn per_minute(&self) -> Option<u32> {
        match self {
            ChannelKind::Dingtalk { .. } | ChannelKind::Wecom { .. } | ChannelKind::Telegram { .. } => Some(20),
            ChannelKind::Discord { .. } => Some(30),
            ChannelKind::Slack { .. } | ChannelKind::Feishu { .. } => Some(60),
            _ => None,
        }
    }
}

impl Channel {
    /// Strings that must never be shown: tokens, passwords, signing secrets, and the URLs
    /// (with their path and query) that carry a robot's token.
    pub fn secrets(&self) -> Vec<String> {
        let (urls, others): (Vec<&Secret>, Vec<Option<&Secret>>) = match &self.kind {
            ChannelKind::Webhook { url, secret }
            | ChannelKind::Feishu { url, secret }
            | ChannelKind::Dingtalk { url, secret } => (vec![url], vec![secret.as_ref()]),
            ChannelKind::Slack { url } | ChannelKind::Discord { url } | ChannelKind::Wecom { url } => {
                (vec![url], vec![])
            }
            ChannelKind::Ntfy { url, token } => (vec![url], vec![token.as_ref()]),
            ChannelKind::Telegram { bot_token, .. } => (vec![], vec![Some(bot_token)]),
            ChannelKind::Email { password, .. } => (vec![], vec![password.as_ref()]),
        };
        let mut out = Vec::new();
        for url in urls {
            out.push(url.expose().to_string());
            url_secrets(url, &mut out);
        }
        out.extend(others.into_iter().flatten().map(|s| s.expose().to_string()));
        if let Some(proxy) = &self.proxy {
            out.extend(proxy.password.iter().map(|p| p.expose().to_string()));
        }
        out.retain(|s| !s.is_empty());
        out
    }
}

/// The parts of a URL that carry a token: path segments and query values of 6 or more
/// characters (`/robot/send?access_token=...`, `/services/T000/B000/XXXX`).
fn url_secrets(url: &Secret, out: &mut Vec<String>) {
    let Ok(parsed) = url::Url::parse(url.expose()) else { return };
    for segment in parsed.path_segments().into_iter().flatten() {
        if segment.len() >= 16 {
            out.push(segment.to_string());
        }
    }
    for (_, value) in parsed.query_pairs() {
        if value.len() >= 6 {
            out.push(value.into_owned());
        }
    }
}

/// What an alert message is about. The names are the webhook's `event` and `/api/events`'
/// `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Down,
    Up,
    Reminder,
    StormDown,
    StormUp,
    MaintenanceStart,
    MaintenanceEnd,
    /// A probing node stored nothing for 3 of its intervals (several nodes on one database).
    NodeLost,
    /// A lost node stored a probe again.
    NodeBack,
    Test,
}

impl EventKind {
    pub const STORED: [EventKind; 9] = [
        EventKind::Down,
        EventKind::Up,
        EventKind::Reminder,
        EventKind::StormDown,
        EventKind::StormUp,
        EventKind::MaintenanceStart,
        EventKind::MaintenanceEnd,
        EventKind::NodeLost,
        EventKind::NodeBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Down => "down",
            EventKind::Up => "up",
            EventKind::Reminder => "reminder",
            EventKind::StormDown => "storm_down",
            EventKind::StormUp => "storm_up",
            EventKind::MaintenanceStart => "maintenance_start",
            EventKind::MaintenanceEnd => "maintenance_end",
            EventKind::NodeLost => "node_lost",
            EventKind::NodeBack => "node_back",
            EventKind::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::STORED.into_iter().chain([EventKind::Test]).find(|k| k.as_str() == s)
    }
}

/// The names of a monitor as messages show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorName {
    pub provider: String,
    pub service: String,
    pub channel: String,
}

impl From<&MonitorKey> for MonitorName {
    fn from(key: &MonitorKey) -> Self {
        MonitorName { provider: key.provider.clone(), service: key.service.clone(), channel: key.channel.clone() }
    }
}

/// One message to send: everything a channel renders, stored in the outbox as JSON (so a
/// restart sends what was decided, rendered in the language configured when it goes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The `/api/events` id of the event (0 for a test message).
    pub id: i64,
    pub event: EventKind,
    /// The monitor, for down, up and reminder.
    pub monitor: Option<MonitorName>,
    /// The monitors of a storm.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monitors: Vec<MonitorName>,
    /// The status of the probe that caused it ("red", "yellow", "green").
    pub status: Option<String>,
    /// The reason code of that probe (`server_error`).
    pub reason: Option<String>,
    /// Its detail, already redacted.
    pub detail: Option<String>,
    /// When the failing streak began (unix seconds).
    pub started_at: Option<i64>,
    /// When it recovered (unix seconds).
    pub resolved_at: Option<i64>,
    /// When this was decided (unix seconds).
    pub time: i64,
    /// For a resolved or a reminder: the event id of the down it follows (not sent to
    /// receivers; delivery sends neither where that down was given up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_id: Option<i64>,
    /// The probing node, for node_lost and node_back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl Message {
    pub fn status_of(status: Status) -> Option<String> {
        Some(status.name().to_string())
    }

    pub fn reason_of(reason: Reason) -> Option<String> {
        Some(reason.as_str().to_string())
    }

    /// How long the outage lasted, for a resolved message.
    pub fn duration_s(&self) -> Option<i64> {
        Some(self.resolved_at? - self.started_at?).filter(|d| *d >= 0)
    }
}

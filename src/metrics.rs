//! Prometheus metrics (`GET /metrics`), through `prometheus-client`: per-monitor probe counts,
//! latency and TTFT histograms, last status and time, and the daemon's own health (config
//! reloads, the store's queue and write errors, build info). Labels carry names, never a key.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::config::MonitorKey;
use crate::domain::{Reason, Status};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MonitorLabels {
    pub provider: String,
    pub service: String,
    pub channel: String,
    /// The model of one series of a monitor of several models; empty otherwise.
    pub model: String,
}

impl From<&MonitorKey> for MonitorLabels {
    fn from(key: &MonitorKey) -> Self {
        MonitorLabels {
            provider: key.provider.clone(),
            service: key.service.clone(),
            channel: key.channel.clone(),
            model: key.model.clone(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    pub provider: String,
    pub service: String,
    pub channel: String,
    pub model: String,
    pub status: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    trigger: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    channel: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type Histograms = Family<MonitorLabels, Histogram, fn() -> Histogram>;

/// Seconds: 50 ms doubling to ~205 s, then 300 s, the longest timeout a probe may have.
pub const BUCKETS: [f64; 14] = [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 102.4, 204.8, 300.0];

fn seconds_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Every metric the daemon exports. Cheap to share (`Arc`): the metrics are atomics.
pub struct Metrics {
    registry: Registry,
    probes: Family<ProbeLabels, Counter>,
    latency: Histograms,
    ttft: Histograms,
    last_status: Family<MonitorLabels, Gauge>,
    last_probe: Family<MonitorLabels, Gauge>,
    cost: Family<MonitorLabels, Counter<f64, AtomicU64>>,
    reloads: Family<ReloadLabels, Counter>,
    pub reload_successful: Gauge,
    pub reload_success_time: Gauge,
    pub store_queue: Gauge,
    pub store_write_errors: Counter,
    pub store_dropped: Counter,
    pub probes_in_flight: Gauge,
    pub config_file_checks: Counter,
    notifications: Family<NotificationLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("llm_monitor");
        let probes = Family::<ProbeLabels, Counter>::default();
        registry.register("probes", "Probes made, by monitor, status and reason", probes.clone());
        let latency: Histograms = Family::new_with_constructor(seconds_histogram);
        registry.register_with_unit(
            "probe_latency",
            "Probe latency: send to the end of the body",
            Unit::Seconds,
            latency.clone(),
        );
        let ttft: Histograms = Family::new_with_constructor(seconds_histogram);
        registry.register_with_unit(
            "probe_ttft",
            "Time to the first token of streamed answers",
            Unit::Seconds,
            ttft.clone(),
        );
        let last_status = Family::<MonitorLabels, Gauge>::default();
        registry.register("last_status", "Status of the latest probe: 0 red, 1 green, 2 yellow", last_status.clone());
        let last_probe = Family::<MonitorLabels, Gauge>::default();
        registry.register_with_unit(
            "last_probe_timestamp",
            "When the latest probe started (unix time)",
            Unit::Seconds,
            last_probe.clone(),
        );
        let cost = Family::<MonitorLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "probe_cost_usd",
            "What the probes cost, USD, from the usage each reply reported at the monitor's price",
            cost.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration loads, by trigger (startup, file, sighup) and result (success, failure)",
            reloads.clone(),
        );
        let reload_successful = Gauge::default();
        registry.register(
            "config_last_reload_successful",
            "Whether the last configuration load succeeded",
            reload_successful.clone(),
        );
        let reload_success_time = Gauge::default();
        registry.register_with_unit(
            "config_last_reload_success_timestamp",
            "When the configuration last loaded successfully (unix time)",
            Unit::Seconds,
            reload_success_time.clone(),
        );
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "notifications",
            "Alert messages by channel and result: sent, failed (an attempt; retried) or given_up",
            notifications.clone(),
        );
        let store_queue = Gauge::default();
        registry.register("store_queue_depth", "Results waiting to be written", store_queue.clone());
        let store_write_errors = Counter::default();
        registry.register(
            "store_write_errors",
            "Attempts to write that the database refused (retried with backoff)",
            store_write_errors.clone(),
        );
        let store_dropped = Counter::default();
        registry.register(
            "store_dropped",
            "Results dropped unwritten because too many were waiting",
            store_dropped.clone(),
        );
        let config_file_checks = Counter::default();
        registry.register(
            "config_file_checks",
            "Times a file event made the daemon read its configuration (changed or not)",
            config_file_checks.clone(),
        );
        let probes_in_flight = Gauge::default();
        registry.register("probes_in_flight", "Probes sent and not yet answered", probes_in_flight.clone());
        let build = Family::<BuildLabels, Gauge<i64, std::sync::atomic::AtomicI64>>::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        registry.register("build_info", "Build information", build);
        Metrics {
            registry,
            probes,
            latency,
            ttft,
            last_status,
            last_probe,
            cost,
            reloads,
            reload_successful,
            reload_success_time,
            store_queue,
            store_write_errors,
            store_dropped,
            probes_in_flight,
            config_file_checks,
            notifications,
        }
    }

    /// One alert message outcome on `channel`: `sent`, `failed` (an attempt) or `given_up`.
    pub fn notification(&self, channel: &str, result: &'static str) {
        self.notifications.get_or_create(&NotificationLabels { channel: channel.to_string(), result }).inc();
    }

    /// Records one classified probe.
    pub fn probe(
        &self,
        key: &MonitorKey,
        status: Status,
        reason: Reason,
        latency_ms: u32,
        ttft_ms: Option<u32>,
        timestamp: i64,
    ) {
        let labels = MonitorLabels::from(key);
        self.probes
            .get_or_create(&ProbeLabels {
                provider: labels.provider.clone(),
                service: labels.service.clone(),
                channel: labels.channel.clone(),
                model: labels.model.clone(),
                status: status.name(),
                reason: reason.as_str(),
            })
            .inc();
        self.latency.get_or_create(&labels).observe(f64::from(latency_ms) / 1_000.0);
        if let Some(ttft) = ttft_ms {
            self.ttft.get_or_create(&labels).observe(f64::from(ttft) / 1_000.0);
        }
        self.last_status.get_or_create(&labels).set(i64::from(i16::from(status)));
        self.last_probe.get_or_create(&labels).set(timestamp);
    }

    /// Drops every series of a removed monitor.
    pub fn forget(&self, key: &MonitorKey) {
        let labels = MonitorLabels::from(key);
        for status in [Status::Red, Status::Green, Status::Yellow] {
            for reason in Reason::ALL {
                self.probes.remove(&ProbeLabels {
                    provider: labels.provider.clone(),
                    service: labels.service.clone(),
                    channel: labels.channel.clone(),
                    model: labels.model.clone(),
                    status: status.name(),
                    reason: reason.as_str(),
                });
            }
        }
        self.latency.remove(&labels);
        self.ttft.remove(&labels);
        self.last_status.remove(&labels);
        self.last_probe.remove(&labels);
        self.cost.remove(&labels);
    }

    /// A probe's cost, nano-USD.
    pub fn cost(&self, key: &MonitorKey, nanos: u64) {
        self.cost.get_or_create(&MonitorLabels::from(key)).inc_by(nanos as f64 / 1e9);
    }

    /// The outcome of a config load: `trigger` is `startup`, `file` or `sighup`.
    pub fn reloaded(&self, trigger: &'static str, ok: bool, time: i64) {
        let result = if ok { "success" } else { "failure" };
        self.reloads.get_or_create(&ReloadLabels { trigger, result }).inc();
        self.reload_successful.set(i64::from(ok));
        if ok {
            self.reload_success_time.set(time);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The classic Prometheus text format (0.0.4), for scrapers and tools that ask for it
    /// (`promtool check metrics`, `curl`). prometheus-client writes only OpenMetrics; for the
    /// counters, gauges and histograms here the two differ only in a counter's family name in
    /// `# HELP`/`# TYPE` (OpenMetrics leaves off the `_total` its samples carry), the `# UNIT`
    /// lines and the closing `# EOF`.
    pub fn encode_classic(&self) -> String {
        let open = self.encode();
        let counters: Vec<String> = open
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter").map(str::to_string))
            .collect();
        let mut out = String::with_capacity(open.len());
        for line in open.lines() {
            if line.starts_with("# UNIT ") || line == "# EOF" {
                continue;
            }
            let family = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
                let rest = line.strip_prefix(prefix)?;
                let name = rest.split(' ').next()?;
                counters.iter().any(|c| c == name).then(|| format!("{prefix}{name}_total{}", &rest[name.len()..]))
            });
            out.push_str(family.as_deref().unwrap_or(line));
            out.push('\n');
        }
        out
    }
}

//! `GET /api/status?period=24h|7d|30d&provider=&service=&channel=`: the answer's shape, built on
//! the HTTP worker's thread from a snapshot of the store's read model, serialized once (and
//! gzipped once, for clients that ask) and reused for the same question within the same
//! second and the same store version: never a time-to-live cache, every answer counts every
//! stored probe.

use std::cell::RefCell;
use std::collections::HashMap;

use actix_web::http::header::{self, AcceptEncoding, Encoding, Header};
use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{json_error, AppState, ACTOR_TIMEOUT};
use crate::store::combine::{self, Part};
use crate::store::db::Row;
use crate::store::timeline::{self, Period};
use crate::store::{GetSnapshot, MonitorModel, Nodes, Snapshot};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusParams {
    period: Option<String>,
    provider: Option<String>,
    service: Option<String>,
    channel: Option<String>,
    node: Option<String>,
    view: Option<String>,
    model: Option<String>,
}

/// One `/api/status` question: filters compare case-insensitively; `now` is unix seconds.
#[derive(Debug, Clone)]
pub struct Query {
    pub period: Period,
    pub provider: Option<String>,
    pub service: Option<String>,
    pub channel: Option<String>,
    /// `node=`: that node's probes only.
    pub node: Option<String>,
    /// `view=compact`: the same figures in columns (see [`CompactMonitor`]).
    pub compact: bool,
    /// `model=`: that model's series of the monitors of several models.
    pub model: Option<String>,
    pub now: i64,
}

/// An absent filter lists all; an empty one is almost surely a bug in the caller.
fn filter(name: &str, value: Option<String>) -> Result<Option<String>, String> {
    match value {
        Some(v) if v.trim().is_empty() => Err(format!("{name} must not be empty (leave it out to list all)")),
        other => Ok(other),
    }
}

fn parse(params: StatusParams, now: i64) -> Result<Query, String> {
    let period_text = params.period.unwrap_or_else(|| "24h".to_string());
    let period =
        Period::parse(&period_text).ok_or_else(|| format!("period {period_text:?} is not one of 24h, 7d, 30d"))?;
    Ok(Query {
        period,
        provider: filter("provider", params.provider)?,
        service: filter("service", params.service)?,
        channel: params.channel,
        node: filter("node", params.node)?,
        compact: match params.view.as_deref() {
            None | Some("full") => false,
            Some("compact") => true,
            Some(other) => return Err(format!("view {other:?} is not one of full, compact")),
        },
        model: filter("model", params.model)?,
        now,
    })
}

/// How to read a monitor's model: the nodes and quorum, this node's interval for it, and
/// whether to answer from one node's probes only.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub nodes: &'a Nodes,
    /// The monitor's interval on this node (seconds), if this node probes it.
    pub interval: Option<i64>,
    /// Answer from this node's probes only (`?node=`).
    pub only: Option<i32>,
}

/// Every node's part of a monitor: this node's first, then the others by id.
fn parts<'a>(model: &'a MonitorModel, view: &View<'_>) -> Vec<Part<'a>> {
    let mine = Part {
        node: view.nodes.me,
        history: &model.history,
        latest: model.latest.as_ref(),
        interval: view.interval.or_else(|| model.latest.as_ref().and_then(|r| r.interval_s).map(i64::from)),
    };
    let others = model.others.iter().map(|(node, part)| Part {
        node: *node,
        history: &part.history,
        latest: part.latest.as_ref(),
        interval: part.latest.as_ref().and_then(|r| r.interval_s).map(i64::from),
    });
    let has_mine = model.latest.is_some() || view.interval.is_some() || model.history != Default::default();
    has_mine.then_some(mine).into_iter().chain(others).collect()
}

/// The parts `view.only` asks for: one node's, or all.
fn only<'a>(all: &[Part<'a>], node: Option<i32>) -> Vec<Part<'a>> {
    all.iter().copied().filter(|p| node.is_none_or(|n| p.node == n)).collect()
}

/// What every node's probes cost over the period (summed in whole nano-USD, not in floats).
fn period_cost(timeline: &[timeline::Bucket]) -> Option<f64> {
    let nanos =
        timeline.iter().filter_map(|b| b.cost_usd).map(|usd| (usd * 1e9).round() as u64).reduce(u64::saturating_add);
    nanos.map(timeline::usd)
}

/// One monitor's entry, from its part of the read model: combined over the nodes under the
/// quorum rule (or one node's, with `view.only`), with each node's own status in `nodes`.
pub fn monitor_status(
    key: &crate::domain::MonitorKey,
    model: Option<&MonitorModel>,
    view: View<'_>,
    period: Period,
    now: i64,
    degraded_weight: f64,
) -> MonitorStatus {
    let empty = MonitorModel::default();
    let model = model.unwrap_or(&empty);
    let all = parts(model, &view);
    let chosen = only(&all, view.only);
    let histories: Vec<&crate::store::rollup::History> = chosen.iter().map(|p| p.history).collect();
    let (timeline, uptime) = if histories.is_empty() {
        crate::store::rollup::History::default().timeline(period, now, degraded_weight)
    } else {
        combine::timeline(&histories, view.nodes.quorum, period, now, degraded_weight)
    };
    let current = match (view.only, chosen.as_slice()) {
        // One node asked for, or only one probing: its latest, as ever (stale or not).
        (Some(_), [part]) | (None, [part]) => part.latest,
        _ => combine::current(&chosen, view.nodes.quorum, now),
    };
    let nodes = all
        .iter()
        .map(|part| {
            let stale = part.stale(now);
            let (_, uptime) = part.history.timeline(period, now, degraded_weight);
            let status = NodeStatus {
                current_status: if stale { None } else { part.latest.map(|row| CurrentStatus::of(row, view.nodes)) },
                uptime,
                stale,
                last_probe: part.latest.map(|row| row.ts),
            };
            (view.nodes.name(part.node), status)
        })
        .collect();
    MonitorStatus {
        provider: key.provider.clone(),
        service: key.service.clone(),
        channel: key.channel.clone(),
        current_status: current.map(|row| CurrentStatus::of(row, view.nodes)),
        uptime,
        cost_usd: period_cost(&timeline),
        timeline,
        maintenance: MaintenanceStatus::default(),
        nodes,
        model: None,
        model_rule: None,
        models: None,
    }
}

/// A monitor of several models: each model's series combined over the nodes, then the models
/// combined under `rule` (red when `rule` of them are red, else the worst of the others), with
/// each model's own figures under `models`.
fn models_status(
    key: &crate::domain::MonitorKey,
    series: &[(&crate::domain::MonitorKey, Option<&MonitorModel>)],
    rule: crate::config::Quorum,
    view: View<'_>,
    period: Period,
    now: i64,
    degraded_weight: f64,
) -> MonitorStatus {
    let empty = MonitorModel::default();
    let each: Vec<MonitorStatus> =
        series.iter().map(|(k, m)| monitor_status(k, *m, view, period, now, degraded_weight)).collect();
    // The bars: every model's nodes, as each model's own bars combine them, then the models.
    let all_parts: Vec<Vec<Part<'_>>> = series.iter().map(|(_, m)| parts(m.unwrap_or(&empty), &view)).collect();
    let per_model: Vec<Vec<Part<'_>>> = all_parts.iter().map(|all| only(all, view.only)).collect();
    let histories: Vec<Vec<&crate::store::rollup::History>> =
        per_model.iter().map(|parts| parts.iter().map(|p| p.history).collect()).collect();
    let (timeline, uptime) =
        combine::models_timeline(&histories, view.nodes.quorum, rule, period, now, degraded_weight);
    // The current status: each model's as its entry shows it, combined under the rule; a model
    // whose every part is stale (3 intervals without a probe: removed, say) is left out, as
    // the alerts leave it out.
    let current: Vec<&CurrentStatus> = each
        .iter()
        .zip(&per_model)
        .filter(|(_, parts)| parts.iter().any(|p| !p.stale(now)))
        .filter_map(|(m, _)| m.current_status.as_ref())
        .collect();
    let statuses: Vec<(i16, i64)> = current.iter().map(|c| (c.status, c.timestamp)).collect();
    let current_status = combine::pick(&statuses, rule).map(|i| current[i].clone());
    // Each node's view: its part of every model, combined under the rule.
    let mut nodes = std::collections::BTreeMap::new();
    for name in each.iter().flat_map(|m| m.nodes.keys()).collect::<std::collections::BTreeSet<_>>() {
        let parts: Vec<&NodeStatus> = each.iter().filter_map(|m| m.nodes.get(name)).collect();
        let live: Vec<&CurrentStatus> = parts.iter().filter_map(|p| p.current_status.as_ref()).collect();
        let statuses: Vec<(i16, i64)> = live.iter().map(|c| (c.status, c.timestamp)).collect();
        let node_histories: Vec<Vec<&crate::store::rollup::History>> = all_parts
            .iter()
            .map(|parts| parts.iter().filter(|p| view.nodes.name(p.node) == *name).map(|p| p.history).collect())
            .collect();
        let (_, node_uptime) =
            combine::models_timeline(&node_histories, view.nodes.quorum, rule, period, now, degraded_weight);
        let status = NodeStatus {
            current_status: combine::pick(&statuses, rule).map(|i| live[i].clone()),
            uptime: node_uptime,
            stale: parts.iter().all(|p| p.stale),
            last_probe: parts.iter().filter_map(|p| p.last_probe).max(),
        };
        nodes.insert(name.clone(), status);
    }
    let models = series
        .iter()
        .zip(each)
        .map(|((k, _), m)| {
            (k.model.clone(), ModelStatus { current_status: m.current_status, uptime: m.uptime, timeline: m.timeline })
        })
        .collect();
    MonitorStatus {
        provider: key.provider.clone(),
        service: key.service.clone(),
        channel: key.channel.clone(),
        current_status,
        uptime,
        cost_usd: period_cost(&timeline),
        timeline,
        maintenance: MaintenanceStatus::default(),
        nodes,
        model: None,
        model_rule: Some(rule_name(rule)),
        models: Some(models),
    }
}

/// `model_rule` as configured.
pub fn rule_name(rule: crate::config::Quorum) -> &'static str {
    match rule {
        crate::config::Quorum::One => "any",
        crate::config::Quorum::Majority => "majority",
        crate::config::Quorum::All => "all",
    }
}

/// The answer's entries: the listed monitors that match the filters, in config order (then
/// those only other nodes probe). An unknown `node` is an error.
pub fn answer(snapshot: &Snapshot, q: &Query) -> Result<Vec<MonitorStatus>, String> {
    let only = match &q.node {
        None => None,
        Some(name) => Some(
            snapshot
                .nodes
                .names
                .iter()
                .find(|(_, n)| n.as_str() == name.as_str())
                .map(|(id, _)| *id)
                .ok_or_else(|| format!("node {name:?} is not a node of this database"))?,
        ),
    };
    let matches =
        |filter: &Option<String>, value: &str| filter.as_deref().is_none_or(|f| f.eq_ignore_ascii_case(value));
    // The series of a monitor of several models are listed once, where its first one is.
    type Series<'a> = Vec<(&'a crate::domain::MonitorKey, Option<&'a MonitorModel>)>;
    let mut entries: Vec<(std::borrow::Cow<'_, crate::domain::MonitorKey>, Series<'_>)> = Vec::new();
    // Where each monitor of several models is in `entries`.
    let mut groups: std::collections::HashMap<crate::domain::MonitorKey, usize> = std::collections::HashMap::new();
    for (key, model) in snapshot.monitors.iter() {
        if !(matches(&q.provider, &key.provider)
            && matches(&q.service, &key.service)
            && matches(&q.channel, &key.channel))
        {
            continue;
        }
        if key.model.is_empty() {
            entries.push((std::borrow::Cow::Borrowed(key), vec![(key, model.as_deref())]));
            continue;
        }
        let base = key.monitor();
        match groups.get(&base) {
            Some(&at) => entries[at].1.push((key, model.as_deref())),
            None => {
                groups.insert(base.clone(), entries.len());
                entries.push((std::borrow::Cow::Owned(base), vec![(key, model.as_deref())]));
            }
        }
    }
    if let Some(wanted) = &q.model {
        // A model no monitor has is the caller's mistake; one the other filters leave out is
        // an empty answer.
        if !snapshot.monitors.iter().any(|(key, _)| key.model.eq_ignore_ascii_case(wanted)) {
            return Err(format!("model {wanted:?} is not a model of any monitor (see a monitor's `models`)"));
        }
        entries.retain_mut(|(_, series)| {
            series.retain(|(k, _)| k.model.eq_ignore_ascii_case(wanted));
            !series.is_empty()
        });
    }
    Ok(entries
        .into_iter()
        .map(|(base, series)| {
            let view = |key| View { nodes: &snapshot.nodes, interval: snapshot.intervals.get(key).copied(), only };
            let mut status = match (series.as_slice(), &q.model) {
                ([(key, model)], Some(_)) => {
                    let mut status = monitor_status(key, *model, view(key), q.period, q.now, snapshot.degraded_weight);
                    status.model = Some(key.model.clone());
                    status
                }
                ([(key, model)], None) if key.model.is_empty() => {
                    monitor_status(key, *model, view(key), q.period, q.now, snapshot.degraded_weight)
                }
                _ => {
                    let rule = snapshot.model_rules.get(&base).copied().unwrap_or(crate::config::Quorum::One);
                    let view = view(series[0].0);
                    models_status(&base, &series, rule, view, q.period, q.now, snapshot.degraded_weight)
                }
            };
            status.maintenance = MaintenanceStatus::of(&snapshot.maintenance, &base, q.now);
            status
        })
        .collect())
}

/// Fast compression: a 600 KB answer shrinks about tenfold in a few milliseconds, once per
/// question, second and store version at most.
fn gzip(json: &[u8]) -> bytes::Bytes {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(json.len() / 8), flate2::Compression::fast());
    encoder.write_all(json).expect("writing to a Vec cannot fail");
    bytes::Bytes::from(encoder.finish().expect("writing to a Vec cannot fail"))
}

/// What makes two answers the same: the question, the second it is asked in, and the store
/// version it is answered from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AnswerKey {
    period: &'static str,
    compact: bool,
    filters: [Option<String>; 5],
    now: i64,
    version: u64,
}

#[derive(Clone)]
struct Serialized {
    json: bytes::Bytes,
    gzip: Option<bytes::Bytes>,
    /// A weak validator of what the answer says, whatever second it was generated in.
    etag: String,
}

/// `W/"<16 hex digits>"` of the answer without `meta.generated_at`: the same monitors, figures
/// and buckets give the same tag a minute later, so a client that has them gets a 304.
fn etag_of(json: &[u8], period: &str) -> String {
    use std::hash::{Hash, Hasher};
    // `meta` comes first and holds no string that could contain `,"data":`.
    let data = json.windows(8).position(|w| w == b",\"data\":").map_or(json, |at| &json[at..]);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    period.hash(&mut hasher);
    data.hash(&mut hasher);
    format!("W/\"{:016x}\"", hasher.finish())
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 has it for GET), or is `*`.
pub(super) fn not_modified(req: &HttpRequest, etag: &str) -> bool {
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .any(|value| value.split(',').any(|tag| tag.trim() == "*" || opaque(tag) == opaque(etag)))
}

const MAX_ANSWERS: usize = 64;

thread_local! {
    /// Each HTTP worker's reusable answers (dropped whenever the second or the version moves on).
    static ANSWERS: RefCell<HashMap<AnswerKey, Serialized>> = RefCell::new(HashMap::new());
}

/// The serialized answer to `q` from `snapshot`, reused within the same second and version.
fn serialized(snapshot: &Snapshot, q: &Query, want_gzip: bool) -> Result<Result<Serialized, String>, String> {
    let lower = |f: &Option<String>| f.as_ref().map(|s| s.to_ascii_lowercase());
    let key = AnswerKey {
        period: q.period.as_str(),
        compact: q.compact,
        filters: [lower(&q.provider), lower(&q.service), lower(&q.channel), q.node.clone(), lower(&q.model)],
        now: q.now,
        version: snapshot.version,
    };
    let cached = ANSWERS.with(|answers| {
        let mut answers = answers.borrow_mut();
        let hit = answers.get_mut(&key)?;
        if want_gzip && hit.gzip.is_none() {
            hit.gzip = Some(gzip(&hit.json));
        }
        Some(hit.clone())
    });
    if let Some(hit) = cached {
        return Ok(Ok(hit));
    }
    let data = match answer(snapshot, q) {
        Ok(data) => data,
        Err(invalid) => return Ok(Err(invalid)),
    };
    let meta = Meta {
        period: q.period.as_str(),
        count: data.len(),
        generated_at: q.now,
        view: q.compact.then_some("compact"),
    };
    let json = if q.compact {
        let data: Vec<CompactMonitor<'_>> = data.iter().map(|m| CompactMonitor::of(m, q.period)).collect();
        serde_json::to_vec(&CompactBody { meta, data: &data })
    } else {
        serde_json::to_vec(&StatusBody { meta, data: &data })
    };
    let json = bytes::Bytes::from(json.map_err(|e| e.to_string())?);
    let tagged = format!("{}{}", q.period.as_str(), if q.compact { "/compact" } else { "" });
    let fresh = Serialized { gzip: want_gzip.then(|| gzip(&json)), etag: etag_of(&json, &tagged), json };
    ANSWERS.with(|answers| {
        let mut answers = answers.borrow_mut();
        if answers.len() >= MAX_ANSWERS || answers.keys().any(|k| k.now != key.now || k.version != key.version) {
            answers.clear();
        }
        answers.insert(key, fresh.clone());
    });
    Ok(Ok(fresh))
}

/// Whether the client prefers gzip to an uncompressed body (it halves nothing, it divides a
/// 600 KB answer by ten).
fn wants_gzip(req: &HttpRequest) -> bool {
    let supported = [Encoding::gzip(), Encoding::identity()];
    AcceptEncoding::parse(req).ok().and_then(|accept| accept.negotiate(supported.iter())) == Some(Encoding::gzip())
}

/// Finishes `response` with `body`, gzipped when the client prefers it and it is over 1 KB
/// (`Vary: Accept-Encoding` either way).
pub(super) fn body_for(req: &HttpRequest, mut response: actix_web::HttpResponseBuilder, body: Vec<u8>) -> HttpResponse {
    response.insert_header((header::VARY, "Accept-Encoding"));
    if body.len() > 1_024 && wants_gzip(req) {
        return response.insert_header((header::CONTENT_ENCODING, "gzip")).body(gzip(&body));
    }
    response.body(body)
}

pub async fn status(req: HttpRequest, state: web::Data<AppState>, params: web::Query<StatusParams>) -> HttpResponse {
    let gzip = wants_gzip(&req);
    let query = match parse(params.into_inner(), state.clock.now()) {
        Ok(q) => q,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, "invalid_param", message),
    };
    let snapshot = match state.store.send(GetSnapshot).timeout(ACTOR_TIMEOUT).await {
        Ok(snapshot) => snapshot,
        Err(e) => {
            log::error!("api: the store did not answer: {e}");
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the store did not answer in time",
            );
        }
    };
    match serialized(&snapshot, &query, gzip) {
        Ok(Err(invalid)) => json_error(StatusCode::BAD_REQUEST, "invalid_param", invalid),
        Ok(Ok(answer)) => {
            // Browsers keep it and ask again each time (the page refreshes every 30 s).
            let validators = [
                (header::VARY, "Accept-Encoding".to_string()),
                (header::ETAG, answer.etag.clone()),
                (header::CACHE_CONTROL, "no-cache".to_string()),
            ];
            if not_modified(&req, &answer.etag) {
                let mut response = HttpResponse::NotModified();
                for (name, value) in validators {
                    response.insert_header((name, value));
                }
                return response.finish();
            }
            let mut response = HttpResponse::Ok();
            response.content_type("application/json");
            for (name, value) in validators {
                response.insert_header((name, value));
            }
            match answer.gzip.filter(|_| gzip) {
                Some(compressed) => response.insert_header((header::CONTENT_ENCODING, "gzip")).body(compressed),
                None => response.body(answer.json),
            }
        }
        Err(e) => {
            log::error!("api: the status answer could not be written: {e}");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "store_error", "the history could not be read")
        }
    }
}

/// The latest probe of a monitor, as `/api/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CurrentStatus {
    /// The node whose probe this is.
    pub node: String,
    pub status: i16,
    pub latency: i64,
    pub timestamp: i64,
    pub reason: String,
    pub http_code: i32,
    /// Why a red probe failed; redacted before it was stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Opening the connection (DNS, TCP, TLS), ms, when the probe had to open one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<i64>,
    /// Time to the response headers, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttfb: Option<i64>,
    /// Time to the first token of a streamed answer, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    /// The model the response said served it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<i64>,
    /// What the probe cost, USD; null without a price for its model or a reported usage.
    pub cost_usd: Option<f64>,
}

impl CurrentStatus {
    pub fn of(row: &Row, nodes: &Nodes) -> Self {
        CurrentStatus {
            node: nodes.name(if row.node_id == 0 { nodes.me } else { row.node_id }),
            status: row.status,
            latency: i64::from(row.latency_ms),
            timestamp: row.ts,
            reason: row.reason.clone(),
            http_code: row.http_code,
            detail: row.detail.clone(),
            connect: row.connect_ms.map(i64::from),
            ttfb: row.ttfb_ms.map(i64::from),
            ttft: row.ttft_ms.map(i64::from),
            tokens_per_s: row.tokens_per_s,
            model: row.model.clone(),
            prompt_tokens: row.prompt_tokens,
            completion_tokens: row.completion_tokens,
            cost_usd: row.cost_nanos.map(|c| timeline::usd(c.max(0) as u64)),
        }
    }
}

/// `/api/status`'s `meta`.
#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    pub period: &'static str,
    pub count: usize,
    pub generated_at: i64,
    /// `"compact"` for `view=compact`; absent for the full answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view: Option<&'static str>,
}

/// The `view=compact` document.
#[derive(Serialize)]
struct CompactBody<'a> {
    meta: Meta,
    data: &'a [CompactMonitor<'a>],
}

/// A monitor in `view=compact`: what a status page draws. The full answer's fields but the
/// timeline, which keeps each bucket's worst `status` and `availability` in two columns (oldest
/// first, from `start` every `step` seconds; counts, latencies and labels are left to the
/// full answer of one monitor), and each node as `{status, uptime, stale, last_probe}`
/// (`status` null when stale or never probed).
#[derive(Serialize)]
pub struct CompactMonitor<'a> {
    provider: &'a str,
    service: &'a str,
    channel: &'a str,
    current_status: &'a Option<CurrentStatus>,
    uptime: f64,
    cost_usd: Option<f64>,
    maintenance: &'a MaintenanceStatus,
    nodes: std::collections::BTreeMap<&'a str, CompactNode>,
    timeline: CompactTimeline,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_rule: Option<&'static str>,
    /// A monitor of several models: each model's latest status (null before its first probe)
    /// and uptime.
    #[serde(skip_serializing_if = "Option::is_none")]
    models: Option<std::collections::BTreeMap<&'a str, CompactModel>>,
}

#[derive(Serialize)]
struct CompactModel {
    status: Option<i16>,
    uptime: f64,
}

#[derive(Serialize)]
struct CompactNode {
    status: Option<i16>,
    uptime: f64,
    stale: bool,
    last_probe: Option<i64>,
}

#[derive(Serialize, Default)]
struct CompactTimeline {
    start: i64,
    step: i64,
    status: Vec<i16>,
    availability: Vec<f64>,
}

impl<'a> CompactMonitor<'a> {
    fn of(m: &'a MonitorStatus, period: Period) -> Self {
        let timeline = CompactTimeline {
            start: m.timeline.first().map_or(0, |b| b.timestamp),
            step: if period.as_str() == "24h" { 3_600 } else { 86_400 },
            status: m.timeline.iter().map(|b| b.status).collect(),
            availability: m.timeline.iter().map(|b| b.availability).collect(),
        };
        CompactMonitor {
            provider: &m.provider,
            service: &m.service,
            channel: &m.channel,
            current_status: &m.current_status,
            uptime: m.uptime,
            cost_usd: m.cost_usd,
            maintenance: &m.maintenance,
            nodes: m
                .nodes
                .iter()
                .map(|(name, n)| {
                    let node = CompactNode {
                        status: n.current_status.as_ref().map(|c| c.status),
                        uptime: n.uptime,
                        stale: n.stale,
                        last_probe: n.last_probe,
                    };
                    (name.as_str(), node)
                })
                .collect(),
            timeline,
            model: m.model.as_deref(),
            model_rule: m.model_rule,
            models: m.models.as_ref().map(|models| {
                models
                    .iter()
                    .map(|(name, model)| {
                        let compact = CompactModel {
                            status: model.current_status.as_ref().map(|c| c.status),
                            uptime: model.uptime,
                        };
                        (name.as_str(), compact)
                    })
                    .collect()
            }),
        }
    }
}

/// The whole `/api/status` document.
#[derive(Debug, Serialize)]
pub struct StatusBody<'a> {
    pub meta: Meta,
    pub data: &'a [MonitorStatus],
}

/// A serialized `/api/status` answer, and its gzip form when the client takes it.
#[derive(Debug, Clone)]
pub struct StatusAnswer {
    pub json: bytes::Bytes,
    pub gzip: Option<bytes::Bytes>,
}

/// One monitor's entry in `/api/status`.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorStatus {
    pub provider: String,
    pub service: String,
    pub channel: String,
    pub current_status: Option<CurrentStatus>,
    pub uptime: f64,
    /// What the period's probes cost (every node's), USD; null when none had a cost.
    pub cost_usd: Option<f64>,
    pub timeline: Vec<timeline::Bucket>,
    pub maintenance: MaintenanceStatus,
    /// Each node's own view of the monitor, by node name.
    pub nodes: std::collections::BTreeMap<String, NodeStatus>,
    /// `?model=`: the model whose series this entry is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A monitor of several models: its `model_rule` (any, majority, all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_rule: Option<&'static str>,
    /// A monitor of several models: each model's own figures, by model name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<std::collections::BTreeMap<String, ModelStatus>>,
}

/// One model of a monitor of several models in `/api/status`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    pub current_status: Option<CurrentStatus>,
    pub uptime: f64,
    pub timeline: Vec<timeline::Bucket>,
}

/// One node's part of a monitor in `/api/status`.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    /// Its latest probe; `null` when it is stale.
    pub current_status: Option<CurrentStatus>,
    /// Its own uptime over the period.
    pub uptime: f64,
    /// It has stored nothing for this monitor for 3 of its intervals: left out of the quorum.
    pub stale: bool,
    /// When its newest probe of this monitor was made (unix seconds), even when stale.
    pub last_probe: Option<i64>,
}

/// The maintenance window covering a monitor now, and the next one to start.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MaintenanceStatus {
    pub current: Option<MaintenanceWindow>,
    pub next: Option<MaintenanceWindow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MaintenanceWindow {
    pub name: String,
    /// Unix seconds.
    pub start: i64,
    pub end: i64,
}

impl MaintenanceStatus {
    pub fn of(windows: &[crate::alert::Maintenance], key: &crate::domain::MonitorKey, now: i64) -> Self {
        use crate::alert::maintenance;
        let window = |(w, start, end): (&crate::alert::Maintenance, i64, i64)| MaintenanceWindow {
            name: w.name.clone(),
            start,
            end,
        };
        MaintenanceStatus {
            current: maintenance::current(windows, key, now).map(window),
            next: maintenance::next(windows, key, now).map(window),
        }
    }
}

//! What is read from the stored history rather than the read model, through the Reader:
//!
//! - `GET /api/incidents?period=24h|7d|30d&node=`: the period's incidents, newest first;
//! - `GET /api/report?month=YYYY-MM&format=json|csv&node=`: a UTC calendar month per monitor;
//! - `GET /api/export?from=&to=&format=csv|jsonl&limit=&cursor=`: raw probes of `[from, to)`,
//!   at most [`EXPORT_MAX_ROWS`] a response, `Link: <...>; rel="next"` while more remain.

use std::collections::HashMap;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{json_error, AppState, ACTOR_TIMEOUT};
use crate::domain::{MonitorKey, Reason};
use crate::store::db::{ExportAfter, Row};
use crate::store::incidents::{self, Incident, Run};
use crate::store::reader::{Names, ReadExport, ReadReport, ReadRuns};
use crate::store::rollup::{Agg, HOUR};
use crate::store::timeline::Period;
use crate::supervisor::{GetListing, Listing};

/// The most probes one export response holds (and the default `limit`).
pub const EXPORT_MAX_ROWS: i64 = 10_000;

fn bad(message: impl Into<String>) -> HttpResponse {
    json_error(StatusCode::BAD_REQUEST, "invalid_param", message)
}

fn unavailable(what: &str) -> HttpResponse {
    json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("{what} did not answer"))
}

fn store_failed(e: crate::store::db::StoreError) -> HttpResponse {
    log::warn!("history read failed: {e}");
    json_error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "the database could not be read; try again")
}

/// How long a handler waits for the Reader (queries queue behind the two reader threads).
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub(super) async fn listing(state: &AppState) -> Result<Listing, Box<HttpResponse>> {
    state.supervisor.send(GetListing).timeout(ACTOR_TIMEOUT).await.map_err(|_| Box::new(unavailable("the supervisor")))
}

/// The id of `?node=` (an unknown name is a 400, as on `/api/status`).
fn node_of(names: &Names, node: Option<&str>) -> Result<Option<i32>, Box<HttpResponse>> {
    let Some(name) = node else { return Ok(None) };
    if name.trim().is_empty() {
        return Err(Box::new(bad("node must not be empty (leave it out for every node)")));
    }
    names
        .nodes
        .iter()
        .find(|(_, n)| n == name)
        .map(|(id, _)| Some(*id))
        .ok_or_else(|| Box::new(bad(format!("node {name:?} is not a node of this database"))))
}

/// One incident with its monitor and node names.
pub(super) struct Named {
    pub key: MonitorKey,
    pub incident: Incident,
    pub nodes: Vec<String>,
}

/// The incidents among `runs` as of `now`: of configured monitors at their
/// `failure_threshold`, of any other (removed from the config, or probed by other nodes only)
/// at the default one; of one node with `only`.
pub(super) fn named_incidents(
    runs: Vec<Run>,
    names: &Names,
    listing: &Listing,
    only: Option<i32>,
    now: i64,
) -> Vec<Named> {
    let key_of: HashMap<i32, &MonitorKey> = names.monitors.iter().map(|(k, id)| (*id, k)).collect();
    let configured: HashMap<&MonitorKey, u32> = listing.monitors.iter().map(|(k, t)| (k, *t)).collect();
    let runs: Vec<Run> =
        runs.into_iter().filter(|r| only.is_none_or(|n| r.node_id == n)).map(|r| r.as_of(now)).collect();
    let threshold = |monitor: i32| {
        let key = key_of.get(&monitor)?;
        Some(configured.get(key).copied().unwrap_or(listing.default_threshold))
    };
    let node_name: HashMap<i32, &str> = names.nodes.iter().map(|(id, n)| (*id, n.as_str())).collect();
    incidents::incidents(runs, threshold)
        .into_iter()
        .filter_map(|incident| {
            let key = (*key_of.get(&incident.monitor_id)?).clone();
            let nodes = incident
                .nodes
                .iter()
                .map(|id| node_name.get(id).map_or(format!("node-{id}"), |n| n.to_string()))
                .collect();
            Some(Named { key, incident, nodes })
        })
        .collect()
}

fn rfc3339(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0).map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default()
}

pub(super) fn incident_json(named: &Named, now: i64) -> Value {
    let i = &named.incident;
    let mut incident = json!({
        "provider": named.key.provider,
        "service": named.key.service,
        "channel": named.key.channel,
        "start": i.start,
        "end": i.end,
        "start_time": rfc3339(i.start),
        "end_time": i.end.map(rfc3339),
        "duration_s": i.end.unwrap_or(now) - i.start,
        "ongoing": i.end.is_none(),
        "red_probes": i.reds,
        "reasons": i.reasons.named(),
        "nodes": named.nodes,
    });
    // One model's series of a monitor of several models.
    if !named.key.model.is_empty() {
        incident["model"] = json!(named.key.model);
    }
    incident
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentParams {
    period: Option<String>,
    node: Option<String>,
}

/// The lowest `failure_threshold` of any monitor: shorter runs of red probes are never read.
fn min_reds(listing: &Listing) -> i64 {
    let lowest = listing.monitors.iter().map(|(_, t)| *t).chain([listing.default_threshold]).min();
    i64::from(lowest.unwrap_or(1).max(1))
}

/// The most incidents `/api/incidents` lists (the newest).
pub const MAX_INCIDENTS: usize = 1_000;

/// Incidents read for an answer, and whether a limit cut them (the newest are kept).
pub(super) struct Found {
    pub incidents: Vec<Named>,
    pub truncated: bool,
    pub listing: Listing,
}

/// Reads the incidents overlapping `[from, to)`.
pub(super) async fn read_incidents(
    state: &AppState,
    (from, to): (i64, i64),
    node: Option<&str>,
) -> Result<Found, Box<HttpResponse>> {
    let listing = listing(state).await?;
    let (runs, names) = state
        .reader
        .send(ReadRuns { from, to, min_reds: min_reds(&listing) })
        .timeout(READ_TIMEOUT)
        .await
        .map_err(|_| unavailable("the reader"))?
        .map_err(store_failed)?;
    let only = node_of(&names, node)?;
    let incidents = named_incidents(runs.runs, &names, &listing, only, state.clock.now());
    Ok(Found { incidents, truncated: runs.truncated, listing })
}

pub async fn incidents(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    params: web::Query<IncidentParams>,
) -> HttpResponse {
    let params = params.into_inner();
    let text = params.period.unwrap_or_else(|| "24h".to_string());
    let Some(period) = Period::parse(&text) else {
        return bad(format!("period {text:?} is not one of 24h, 7d, 30d"));
    };
    let now = state.clock.now();
    let key = (period.as_str(), params.node.clone());
    let cached = recent().lock().ok().and_then(|c| c.get(&key).filter(|(at, ..)| *at == now).cloned());
    let (etag, body) = match cached {
        Some((_, etag, body)) => (etag, body),
        None => {
            let from = period.window(now).first_start;
            let found = match read_incidents(&state, (from, now + 1), params.node.as_deref()).await {
                Ok(found) => found,
                Err(response) => return *response,
            };
            let (etag, body) = incidents_answer(&found, period, params.node.as_deref(), (from, now));
            if let Ok(mut cache) = recent().lock() {
                if cache.len() >= 64 {
                    cache.clear();
                }
                cache.insert(key, (now, etag.clone(), body.clone()));
            }
            (etag, body)
        }
    };
    if super::status::not_modified(&req, &etag) {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .finish();
    }
    let mut response = HttpResponse::Ok();
    response
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::ETAG, etag));
    super::status::body_for(&req, response, body.to_vec())
}

/// `/api/incidents` answers of the current second, by period and node: as many visitors'
/// refreshes as arrive in one second cost one read.
type Recent = HashMap<(&'static str, Option<String>), (i64, String, bytes::Bytes)>;

fn recent() -> &'static std::sync::Mutex<Recent> {
    static RECENT: std::sync::OnceLock<std::sync::Mutex<Recent>> = std::sync::OnceLock::new();
    RECENT.get_or_init(Default::default)
}

/// The answer's weak tag (of the incidents, not of `from` and `to`, which move every second: a
/// page's refresh that finds nothing new is a 304 without a body) and its JSON.
fn incidents_answer(
    found: &Found,
    period: Period,
    node: Option<&str>,
    (from, now): (i64, i64),
) -> (String, bytes::Bytes) {
    use std::hash::{Hash, Hasher};
    let list: Vec<Value> = found.incidents.iter().take(MAX_INCIDENTS).map(|n| incident_json(n, now)).collect();
    let truncated = found.truncated || found.incidents.len() > MAX_INCIDENTS;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (period.as_str(), node, truncated, serde_json::to_string(&list).unwrap_or_default()).hash(&mut hasher);
    let etag = format!("W/\"{:016x}\"", hasher.finish());
    let body = json!({
        "period": period.as_str(),
        "from": from,
        "to": now,
        "incidents": list,
        "truncated": truncated,
    });
    (etag, bytes::Bytes::from(serde_json::to_vec(&body).unwrap_or_default()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    month: Option<String>,
    format: Option<String>,
    node: Option<String>,
}

/// `YYYY-MM` to the month's first second and the next month's (UTC).
fn month_range(text: &str) -> Result<(i64, i64), String> {
    let wrong = || format!("month {text:?} is not a month like 2026-11");
    let (year, month) = text.split_once('-').ok_or_else(wrong)?;
    if year.len() != 4 || month.len() != 2 {
        return Err(wrong());
    }
    let (year, month): (i32, u32) = (year.parse().map_err(|_| wrong())?, month.parse().map_err(|_| wrong())?);
    let first = chrono::NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(wrong)?;
    let next = if month == 12 {
        chrono::NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        chrono::NaiveDate::from_ymd_opt(year, month + 1, 1)
    }
    .ok_or_else(wrong)?;
    let start = |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).ok_or_else(wrong);
    Ok((start(first)?, start(next)?))
}

/// One monitor's line of a report.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ReportLine {
    pub key: MonitorKey,
    pub uptime: Option<f64>,
    pub probes: u64,
    pub downtime_s: i64,
    pub incidents: usize,
    pub mttr_s: Option<i64>,
    pub latency_p50: Option<u32>,
    pub latency_p95: Option<u32>,
    pub ttft_p50: Option<u32>,
    pub ttft_p95: Option<u32>,
}

const REPORT_COLUMNS: [&str; 13] = [
    "provider",
    "service",
    "channel",
    "uptime",
    "downtime_s",
    "incidents",
    "mttr_s",
    "latency_p50",
    "latency_p95",
    "ttft_p50",
    "ttft_p95",
    "probes",
    "model",
];

pub async fn report(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    params: web::Query<ReportParams>,
) -> HttpResponse {
    let params = params.into_inner();
    let Some(month) = params.month else { return bad("month is required, like month=2026-11") };
    let (from, to) = match month_range(&month) {
        Ok(range) => range,
        Err(e) => return bad(e),
    };
    let csv = match params.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return bad(format!("format {other:?} is not one of json, csv")),
    };
    let now = state.clock.now();
    if from > now {
        return bad(format!("month {month} has not started yet"));
    }
    let Ok(listing) = listing(&state).await else { return unavailable("the supervisor") };
    if params.node.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return bad("node must not be empty (leave it out for every node)");
    }
    let ask = ReadReport { from, to, min_reds: min_reds(&listing), quorum: listing.quorum, only: params.node.clone() };
    let read = match state.reader.send(ask).timeout(READ_TIMEOUT).await {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => return store_failed(e),
        Err(_) => return unavailable("the reader"),
    };
    if read.unknown_node {
        return bad(format!("node {:?} is not a node of this database", params.node.unwrap_or_default()));
    }
    let truncated = read.runs.truncated;
    let found = named_incidents(read.runs.runs, &read.names, &listing, read.only, now);
    let lines = report_lines(&listing, &read.names, &read.totals, &found, (from, to.min(now + 1)), now);
    // What retention has kept: a month that began before it is only partly there.
    let retained_from = (now - listing.retention_s).div_euclid(HOUR) * HOUR;
    if csv {
        let mut out = csv::Writer::from_writer(Vec::new());
        let _ = out.write_record(REPORT_COLUMNS);
        for line in &lines {
            let opt = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
            let _ = out.write_record([
                csv_text(&line.key.provider),
                csv_text(&line.key.service),
                csv_text(&line.key.channel),
                line.uptime.map(|u| format!("{u:.2}")).unwrap_or_default(),
                line.downtime_s.to_string(),
                line.incidents.to_string(),
                line.mttr_s.map(|m| m.to_string()).unwrap_or_default(),
                opt(line.latency_p50),
                opt(line.latency_p95),
                opt(line.ttft_p50),
                opt(line.ttft_p95),
                line.probes.to_string(),
                csv_text(&line.key.model),
            ]);
        }
        let body = out.into_inner().unwrap_or_default();
        let mut response = HttpResponse::Ok();
        response
            .content_type("text/csv; charset=utf-8")
            .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"report-{month}.csv\"")));
        return super::status::body_for(&req, response, body);
    }
    let monitors: Vec<Value> = lines
        .iter()
        .map(|l| {
            let mut line = json!({
                "provider": l.key.provider,
                "service": l.key.service,
                "channel": l.key.channel,
                "uptime": l.uptime,
                "downtime_s": l.downtime_s,
                "incidents": l.incidents,
                "mttr_s": l.mttr_s,
                "latency_p50": l.latency_p50,
                "latency_p95": l.latency_p95,
                "ttft_p50": l.ttft_p50,
                "ttft_p95": l.ttft_p95,
                "probes": l.probes,
            });
            if !l.key.model.is_empty() {
                line["model"] = json!(l.key.model);
            }
            line
        })
        .collect();
    let body = json!({
        "month": month,
        "from": from,
        "to": to,
        "complete": to <= now && from >= retained_from,
        "retained_from": retained_from,
        "incidents_truncated": truncated,
        "monitors": monitors,
    });
    let mut response = HttpResponse::Ok();
    response.content_type("application/json");
    super::status::body_for(&req, response, serde_json::to_vec(&body).unwrap_or_default())
}

/// Each monitor's figures for `[from, to)`: uptime and percentiles from the hourly rollups
/// (several nodes combined per hour under the quorum, as `/api/status` does), downtime and
/// incidents from the incidents overlapping the range (downtime cut to it).
pub(super) fn report_lines(
    listing: &Listing,
    names: &Names,
    totals: &HashMap<i32, Agg>,
    found: &[Named],
    (from, to): (i64, i64),
    now: i64,
) -> Vec<ReportLine> {
    let key_of: HashMap<i32, &MonitorKey> = names.monitors.iter().map(|(k, id)| (*id, k)).collect();
    let mut sums: HashMap<&MonitorKey, Agg> = HashMap::new();
    for (monitor, agg) in totals {
        if let Some(key) = key_of.get(monitor) {
            sums.entry(*key).or_default().merge(agg);
        }
    }
    let mut by_key: HashMap<&MonitorKey, Vec<&Named>> = HashMap::new();
    for named in found {
        by_key.entry(&named.key).or_default().push(named);
    }
    // Configured monitors in config order, then any other with probes or incidents, by name.
    let mut keys: Vec<MonitorKey> = listing.monitors.iter().map(|(k, _)| k.clone()).collect();
    let listed: std::collections::HashSet<MonitorKey> = keys.iter().cloned().collect();
    let mut extra: Vec<MonitorKey> = sums
        .keys()
        .chain(by_key.keys())
        .filter(|k| !listed.contains(**k))
        .map(|k| (*k).clone())
        .collect::<std::collections::HashSet<_>>()
        .into_iter()
        .collect();
    extra.sort_by_key(|k| k.to_string());
    keys.extend(extra);
    let empty = Agg::default();
    keys.into_iter()
        .map(|key| {
            let total = sums.get(&key).unwrap_or(&empty);
            let counts = total.counts();
            let mine: &[&Named] = by_key.get(&key).map_or(&[], Vec::as_slice);
            let downtimes: Vec<i64> = mine.iter().map(|n| n.incident.downtime_within(from, to, now)).collect();
            let downtime_s: i64 = downtimes.iter().sum();
            let incidents = downtimes.iter().filter(|d| **d > 0).count();
            ReportLine {
                uptime: (counts.total() > 0).then(|| counts.availability(listing.degraded_weight)),
                probes: (counts.total() + counts.maintenance) as u64,
                downtime_s,
                incidents,
                mttr_s: (incidents > 0).then(|| downtime_s / incidents as i64),
                latency_p50: total.latency.percentile(50.0),
                latency_p95: total.latency.percentile(95.0),
                ttft_p50: total.ttft.percentile(50.0),
                ttft_p95: total.ttft.percentile(95.0),
                key,
            }
        })
        .collect()
}

/// A text cell as a spreadsheet cannot take for a formula: one starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return gets a leading `'` (upstream details are hostile).
pub(super) fn csv_text(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Unix seconds, or an RFC 3339 time.
fn parse_time(name: &str, text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp())
        .map_err(|_| format!("{name} {text:?} is neither unix seconds nor an RFC 3339 time"))
}

fn parse_cursor(text: &str) -> Result<ExportAfter, String> {
    let wrong = || format!("cursor {text:?} is not one this endpoint gave (copy it from the Link header)");
    if let Some(id) = text.strip_prefix('i') {
        return id.parse().map(ExportAfter::Id).map_err(|_| wrong());
    }
    let (ts, id) = text.strip_prefix('t').and_then(|rest| rest.split_once('.')).ok_or_else(wrong)?;
    Ok(ExportAfter::Time(ts.parse().map_err(|_| wrong())?, id.parse().map_err(|_| wrong())?))
}

pub async fn export(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    params: web::Query<ExportParams>,
) -> HttpResponse {
    let params = params.into_inner();
    let now = state.clock.now();
    let from = match params.from.as_deref().map(|t| parse_time("from", t)) {
        Some(Ok(from)) => from,
        Some(Err(e)) => return bad(e),
        None => return bad("from is required (unix seconds or RFC 3339)"),
    };
    let to = match params.to.as_deref().map(|t| parse_time("to", t)) {
        Some(Ok(to)) => to,
        Some(Err(e)) => return bad(e),
        None => now + 1,
    };
    if to <= from {
        return bad(format!("to ({to}) must be after from ({from}): the range is [from, to)"));
    }
    let format = params.format.unwrap_or_else(|| "csv".to_string());
    if format != "csv" && format != "jsonl" {
        return bad(format!("format {format:?} is not one of csv, jsonl"));
    }
    let limit = match params.limit.as_deref().map(str::parse::<i64>) {
        None => EXPORT_MAX_ROWS,
        Some(Ok(n)) if (1..=EXPORT_MAX_ROWS).contains(&n) => n,
        Some(_) => return bad(format!("limit must be a number from 1 to {EXPORT_MAX_ROWS}")),
    };
    let after = match params.cursor.as_deref().map(parse_cursor) {
        None => ExportAfter::Start,
        Some(Ok(after)) => after,
        Some(Err(e)) => return bad(e),
    };
    let Ok(listing) = listing(&state).await else { return unavailable("the supervisor") };
    // A cursor of the other store's kind (a link kept across a move to PostgreSQL, say).
    let by_time = listing.postgres;
    if matches!((after, by_time), (ExportAfter::Id(_), true) | (ExportAfter::Time(..), false)) {
        return bad("cursor is not one this store gives (copy it from the Link header)");
    }
    let read = state.reader.send(ReadExport { from, to, after, limit: limit + 1 }).timeout(READ_TIMEOUT).await;
    let (mut rows, names) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => return store_failed(e),
        Err(_) => return unavailable("the reader"),
    };
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let key_of: HashMap<i32, &MonitorKey> = names.monitors.iter().map(|(k, id)| (*id, k)).collect();
    let node_name: HashMap<i32, &str> = names.nodes.iter().map(|(id, n)| (*id, n.as_str())).collect();
    let redactor = &listing.redactor.0;
    let mut body: Vec<u8> = Vec::with_capacity(rows.len() * 200);
    let mut writer = (format == "csv").then(|| csv::Writer::from_writer(Vec::new()));
    if let Some(w) = writer.as_mut() {
        let _ = w.write_record(EXPORT_COLUMNS);
    }
    for (id, row) in &rows {
        let key = key_of.get(&row.monitor_id).copied();
        let node = node_name.get(&row.node_id).copied().unwrap_or("");
        let fields = export_fields(*id, row, key, node, redactor);
        match writer.as_mut() {
            Some(w) => {
                let cells: Vec<String> = fields
                    .iter()
                    .map(|(_, v)| match v {
                        Value::Null => String::new(),
                        Value::String(s) => csv_text(s),
                        other => other.to_string(),
                    })
                    .collect();
                let _ = w.write_record(&cells);
            }
            None => {
                let object: serde_json::Map<String, Value> =
                    fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                let _ = serde_json::to_writer(&mut body, &object);
                body.push(b'\n');
            }
        }
    }
    if let Some(w) = writer {
        body = w.into_inner().unwrap_or_default();
    }
    let mut response = HttpResponse::Ok();
    response.content_type(if format == "csv" { "text/csv; charset=utf-8" } else { "application/jsonl; charset=utf-8" });
    response.insert_header(("X-Export-Rows", rows.len().to_string()));
    if let (true, Some((id, row))) = (more, rows.last()) {
        let cursor = if by_time { format!("t{}.{id}", row.ts) } else { format!("i{id}") };
        let next =
            format!("</api/export?from={from}&to={to}&format={format}&limit={limit}&cursor={cursor}>; rel=\"next\"");
        response.insert_header((header::LINK, next));
    }
    super::status::body_for(&req, response, body)
}

const EXPORT_COLUMNS: [&str; 22] = [
    "id",
    "time",
    "ts",
    "provider",
    "service",
    "channel",
    "node",
    "status",
    "reason",
    "http_code",
    "latency_ms",
    "connect_ms",
    "ttfb_ms",
    "ttft_ms",
    "tokens_per_s",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "maintenance",
    "detail",
    "monitor_id",
    "cost_usd",
];

/// One probe's exported fields, in [`EXPORT_COLUMNS`] order. The detail was redacted before it
/// was stored and is redacted again with today's secrets.
fn export_fields(
    id: i64,
    row: &Row,
    key: Option<&MonitorKey>,
    node: &str,
    redactor: &crate::secret::Redactor,
) -> Vec<(&'static str, Value)> {
    let status = crate::domain::Status::from_i16(row.status).map_or("unknown", |s| s.name());
    let reason = Reason::parse(&row.reason).map_or("server_error", Reason::as_str);
    let part = |f: fn(&MonitorKey) -> &String| key.map(|k| f(k).clone()).unwrap_or_default();
    vec![
        ("id", json!(id)),
        ("time", json!(rfc3339(row.ts))),
        ("ts", json!(row.ts)),
        ("provider", json!(part(|k| &k.provider))),
        ("service", json!(part(|k| &k.service))),
        ("channel", json!(part(|k| &k.channel))),
        ("node", json!(node)),
        ("status", json!(status)),
        ("reason", json!(reason)),
        ("http_code", json!(row.http_code)),
        ("latency_ms", if row.status == 0 { Value::Null } else { json!(row.latency_ms) }),
        ("connect_ms", json!(row.connect_ms)),
        ("ttfb_ms", json!(row.ttfb_ms)),
        ("ttft_ms", json!(row.ttft_ms)),
        ("tokens_per_s", json!(row.tokens_per_s)),
        ("model", json!(row.model.as_deref().map(|m| redactor.redact(m)))),
        ("prompt_tokens", json!(row.prompt_tokens)),
        ("completion_tokens", json!(row.completion_tokens)),
        ("maintenance", json!(row.maintenance)),
        ("detail", json!(row.detail.as_deref().map(|d| redactor.redact(d)))),
        ("monitor_id", json!(row.monitor_id)),
        ("cost_usd", json!(row.cost_nanos.map(|c| crate::store::timeline::usd(c.max(0) as u64)))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_utc_calendar_months_and_bad_ones_are_named() {
        assert_eq!(month_range("2026-11"), Ok((1_793_491_200, 1_796_083_200)));
        assert_eq!(month_range("2026-12").map(|(a, b)| b - a), Ok(31 * 86_400));
        assert_eq!(month_range("2028-02").map(|(a, b)| b - a), Ok(29 * 86_400));
        for wrong in ["2026-13", "2026-1", "26-11", "2026/11", "", "2026-00"] {
            assert!(month_range(wrong).unwrap_err().contains("is not a month"), "{wrong}");
        }
    }

    #[test]
    fn times_are_unix_seconds_or_rfc3339_and_cursors_roundtrip() {
        assert_eq!(parse_time("from", "1793491200"), Ok(1_793_491_200));
        assert_eq!(parse_time("from", "2026-11-01T00:00:00Z"), Ok(1_793_491_200));
        assert_eq!(parse_time("from", "2026-11-01T08:00:00+08:00"), Ok(1_793_491_200));
        assert!(parse_time("from", "yesterday").unwrap_err().contains("from \"yesterday\""));
        assert_eq!(parse_cursor("i42"), Ok(ExportAfter::Id(42)));
        assert_eq!(parse_cursor("t1793491200.7"), Ok(ExportAfter::Time(1_793_491_200, 7)));
        assert!(parse_cursor("x1").is_err() && parse_cursor("t1").is_err() && parse_cursor("i").is_err());
    }

    #[test]
    fn spreadsheet_formulas_in_text_cells_are_defused() {
        assert_eq!(csv_text("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_text("-1+1"), "'-1+1");
        assert_eq!(csv_text("HTTP 502"), "HTTP 502");
    }
}

//! One entry of `monitors:`, read in steps: its identity, its request (a template or its own
//! url, method, headers and body), its key, its placeholders filled and checked, and its
//! thresholds. Every step reports its problems and goes on, so all are reported at once.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::checks::{check_interval, check_timeout, check_url};
use super::env::{env_claims, env_var_names, is_env_name, proxy_env_names};
use super::fields::{describe, Errors, Fields};
use super::files::parse_body;
use super::{Globals, API_KEY_PLACEHOLDER, CHALLENGE_PLACEHOLDER, MODEL_PLACEHOLDER, MONITOR_KEYS};
use crate::config::template::{self, Template};
use crate::config::{duration, is_model_name, secrets_of, Method, Monitor, MonitorKey, Secret};
use crate::domain::Status;

/// What the monitors of one file share while they are read: keys for duplicates, env names for
/// collisions, and every value that may be secret (kept out of error messages).
#[derive(Default)]
pub(super) struct Shared {
    /// Keys of earlier monitors (valid or not) and their index.
    pub seen: HashMap<MonitorKey, usize>,
    /// Implicit API-key env names claimed so far: name -> (whose key it is, which monitor).
    pub env_claims: HashMap<String, (String, String)>,
    pub secrets: Vec<String>,
}

pub(super) struct MonitorContext<'a> {
    pub index: usize,
    /// The series being read of a monitor of several models: its model.
    pub model: Option<&'a str>,
    /// The first series read of this monitor (the others are not duplicates of it).
    pub first: bool,
    pub globals: &'a Globals,
    pub base_dir: &'a Path,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// A monitor's request before its placeholders are filled.
struct Request {
    template: Option<Template>,
    method: Option<Method>,
    url: Option<String>,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

/// The request with its key and model filled in, as the monitor sends it.
struct Resolved {
    url: Option<Secret>,
    headers: Vec<(String, Secret)>,
    body: Option<Secret>,
    uses_key: bool,
    challenge: bool,
}

struct Thresholds {
    interval: Duration,
    timeout: Duration,
    slow_latency: Duration,
    slow_ttft: Option<Duration>,
}

/// The most immediate re-probes of a red result: more would hammer a failing upstream.
const MAX_CONFIRM: u32 = 3;
/// A larger daily budget is a typo (cents for dollars, say).
const MAX_DAILY_BUDGET_USD: f64 = 100_000.0;

/// Parses one monitor; returns it (with its `disabled` flag) if it is valid.
pub(super) fn parse_monitor(
    context: &MonitorContext<'_>,
    item: &Value,
    shared: &mut Shared,
    errors: &mut Errors,
    warnings: &mut Vec<String>,
) -> Option<(Monitor, bool)> {
    let before = errors.lines.len();
    let Value::Mapping(map) = item else {
        errors.push(
            &format!("monitors[{}]", context.index),
            "",
            format!("must be a mapping, found {}", describe(item)),
        );
        return None;
    };
    let fields = Fields { map, place: place_of(context.index, map) };
    fields.check_keys(MONITOR_KEYS, errors);
    let key = identity(&fields, context.index, context.first, shared, errors);
    let (model, expect_model) = match context.model {
        Some(model) => (Some(model.to_string()), None),
        None => model_names(&fields, errors),
    };
    let request = request(&fields, map, model.as_deref(), context.base_dir, errors);

    // Env wins over the file; an empty variable counts as unset. `api_key_env` names the one
    // variable to read; without it the names derive from the monitor's key.
    let api_key_env: Option<String> = fields.get("api_key_env", errors);
    if let Some(name) = api_key_env.as_deref().filter(|n| !is_env_name(n)) {
        errors.push(
            &fields.place,
            "api_key_env",
            format!("{name:?} is not an environment variable name (A-Z, a-z, 0-9 and _, not starting with a digit)"),
        );
    }
    let env_names = match &api_key_env {
        Some(name) => vec![name.clone()],
        None => env_var_names(&key),
    };
    let file_key = fields.get::<String>("api_key", errors).filter(|k| !k.is_empty());
    let api_key = env_names.iter().find_map(|name| (context.env)(name).filter(|v| !v.is_empty())).or(file_key.clone());
    shared.secrets.extend(file_key.iter().chain(api_key.iter()).cloned());

    let resolved = resolve(&fields, &request, api_key.as_deref(), model.as_deref(), errors);
    let is_disabled = fields.get::<bool>("disabled", errors).unwrap_or(false);
    if resolved.uses_key && api_key.is_none() && !is_disabled {
        warnings.push(format!(
            "{}: {API_KEY_PLACEHOLDER} is used but no api_key is set (nor {}); probes will go out without a key",
            fields.place,
            env_names.join(" / ")
        ));
    }
    if resolved.uses_key && !is_disabled && api_key_env.is_none() {
        claim_env_names(
            &key,
            env_claims(&key, env_var_names(&key)),
            "API key",
            "set api_key_env on one of them",
            &fields.place,
            shared,
            errors,
        );
    }
    let proxy = monitor_proxy(context, &fields, &key, is_disabled, shared, errors);
    let api_key = api_key.map(Secret::new);
    let secrets = secrets_of(api_key.as_ref(), &resolved.headers, resolved.url.as_ref().unwrap_or(&Secret::default()));
    shared.secrets.extend(secrets.iter().cloned());

    let thresholds = thresholds(&fields, context.globals, errors);
    let fresh_connection = fields.get::<bool>("fresh_connection", errors).unwrap_or(false);
    let success_contains: Option<String> = fields.get("success_contains", errors);
    let confirm = fields.get::<i64>("confirm", errors).unwrap_or(0);
    if !(0..=i64::from(MAX_CONFIRM)).contains(&confirm) {
        errors.push(
            &fields.place,
            "confirm",
            format!("{confirm} is outside 0..{MAX_CONFIRM} (immediate re-probes of a red result)"),
        );
    }
    let interval_when_failing = fields.duration("interval_when_failing", false, errors);
    if let Some(interval) = interval_when_failing {
        check_interval(&fields.place, "interval_when_failing", interval, errors);
    }
    let integrity_status = match fields.get::<String>("integrity_status", errors).as_deref() {
        None | Some("yellow") => Status::Yellow,
        Some("red") => Status::Red,
        Some(other) => {
            errors.push(&fields.place, "integrity_status", format!("{other:?} is not one of yellow, red"));
            Status::Yellow
        }
    };
    let stream_check_every = fields.get::<i64>("stream_check_every", errors);
    if let Some(n) = stream_check_every {
        if !(1..=10_000).contains(&n) {
            errors.push(&fields.place, "stream_check_every", format!("{n} is outside 1..10000 (every N-th probe)"));
        } else if !resolved.challenge {
            errors.push(
                &fields.place,
                "stream_check_every",
                format!("needs a request that asks {CHALLENGE_PLACEHOLDER} (a template does), to ask to count after the answer"),
            );
        }
    }
    let daily_budget_usd = fields.get::<f64>("daily_budget_usd", errors);
    if let Some(budget) = daily_budget_usd.filter(|b| !(b.is_finite() && *b > 0.0 && *b <= MAX_DAILY_BUDGET_USD)) {
        errors.push(
            &fields.place,
            "daily_budget_usd",
            format!("{budget} is not a budget: USD per UTC day, above 0 and at most {MAX_DAILY_BUDGET_USD}"),
        );
    }
    if success_contains.as_deref() == Some("") {
        errors.push(&fields.place, "success_contains", "must not be empty (leave it out instead)");
    }
    if errors.lines.len() > before {
        return None;
    }
    // An LLM-aware monitor: its reply must be a recognisable answer from the expected model.
    let llm = request.template.is_some() || model.is_some() || expect_model.is_some() || resolved.challenge;
    let max_tokens = resolved.body.as_ref().and_then(|b| crate::probe::integrity::max_tokens_of(b.expose()));
    let monitor = Monitor {
        key,
        method: request.method?,
        url: resolved.url?,
        headers: resolved.headers,
        body: resolved.body,
        interval: thresholds.interval,
        timeout: thresholds.timeout,
        slow_latency: thresholds.slow_latency,
        slow_ttft: thresholds.slow_ttft,
        success_contains,
        api_key,
        // Filled in with the config-wide one once every monitor is read.
        redactor: Default::default(),
        require_model: expect_model.is_some(),
        expect_model: expect_model.or_else(|| model.clone()),
        model,
        challenge: resolved.challenge,
        llm,
        fresh_connection,
        proxy,
        // Set by the caller for a series of a monitor of several models.
        model_rule: None,
        // Looked up in the price table once every monitor is read.
        price: None,
        daily_budget_usd,
        confirm: u32::try_from(confirm).unwrap_or(0),
        interval_when_failing,
        max_tokens,
        integrity_status,
        stream_check_every: stream_check_every.and_then(|n| u32::try_from(n).ok()),
    };
    Some((monitor, is_disabled))
}

/// `monitors[2] 88code/cc/vip`: how messages name a monitor, as soon as its key is readable.
fn place_of(index: usize, map: &Mapping) -> String {
    let part = |key: &str| map.get(key).and_then(Value::as_str).unwrap_or_default().trim().to_string();
    let (provider, service, channel) = (part("provider"), part("service"), part("channel"));
    if provider.is_empty() && service.is_empty() {
        format!("monitors[{index}]")
    } else if channel.is_empty() {
        format!("monitors[{index}] {provider}/{service}")
    } else {
        format!("monitors[{index}] {provider}/{service}/{channel}")
    }
}

/// provider/service/channel: required, and unique (case-insensitively) in the file.
fn identity(fields: &Fields<'_>, index: usize, first: bool, shared: &mut Shared, errors: &mut Errors) -> MonitorKey {
    let provider: Option<String> = fields.get("provider", errors);
    let service: Option<String> = fields.get("service", errors);
    let channel: String = fields.get("channel", errors).unwrap_or_default();
    for (name, value) in [("provider", &provider), ("service", &service)] {
        match value {
            None if fields.raw(name).is_none() => errors.push(&fields.place, name, "is required"),
            Some(v) if v.trim().is_empty() => errors.push(&fields.place, name, "must not be empty"),
            _ => {}
        }
    }
    let key = MonitorKey::new(
        provider.as_deref().unwrap_or_default().trim(),
        service.as_deref().unwrap_or_default().trim(),
        channel.trim(),
    );
    if !key.provider.is_empty() && !key.service.is_empty() && first {
        match shared.seen.get(&key) {
            Some(first) => errors.push(
                &fields.place,
                "",
                format!("provider/service/channel duplicates monitors[{first}] (keys compare case-insensitively)"),
            ),
            None => {
                shared.seen.insert(key.clone(), index);
            }
        }
    }
    key
}

/// Most models one monitor may serve.
const MAX_MODELS: usize = 32;

/// `models:` (with `model_rule:`), when the monitor has it: its model names, and how many of
/// them must be red for the monitor to be.
pub(super) fn model_series(
    index: usize,
    item: &Value,
    errors: &mut Errors,
) -> Option<(Vec<String>, crate::config::Quorum)> {
    use crate::config::Quorum;
    let Value::Mapping(map) = item else { return None };
    let fields = Fields { map, place: place_of(index, map) };
    let place = fields.place.as_str();
    let rule_text: Option<String> = fields.get("model_rule", errors);
    let rule = match rule_text.as_deref() {
        None | Some("any") => Quorum::One,
        Some("majority") => Quorum::Majority,
        Some("all") => Quorum::All,
        Some(other) => {
            errors.push(place, "model_rule", format!("{other:?} is not one of any, all, majority"));
            Quorum::One
        }
    };
    let Some(raw) = fields.raw("models") else {
        if rule_text.is_some() {
            errors.push(place, "model_rule", "only applies with models");
        }
        return None;
    };
    let Value::Sequence(items) = raw else {
        errors.push(place, "models", format!("must be a list of model names, found {}", describe(raw)));
        return None;
    };
    for other in ["model", "expect_model"] {
        if fields.raw(other).is_some() {
            errors.push(place, other, "cannot be used with models (each model is asked for, and expected, as itself)");
        }
    }
    let mut models: Vec<String> = Vec::new();
    for item in items {
        match item.as_str().map(str::trim) {
            Some(name) if is_model_name(name) => {
                if models.iter().any(|m| m.eq_ignore_ascii_case(name)) {
                    errors.push(place, "models", format!("{name:?} is listed twice"));
                } else {
                    models.push(name.to_string());
                }
            }
            Some(name) => {
                errors.push(place, "models", format!("{name:?} is not a model name (letters, digits and ._:/@+-)"))
            }
            None => {
                errors.push(place, "models", format!("must be a list of model names, found {} in it", describe(item)))
            }
        }
    }
    if models.is_empty() || models.len() > MAX_MODELS {
        errors.push(place, "models", format!("must name 1 to {MAX_MODELS} models"));
        return None;
    }
    Some((models, rule))
}

/// `model` (the one asked for) and `expect_model` (the one the reply must name).
fn model_names(fields: &Fields<'_>, errors: &mut Errors) -> (Option<String>, Option<String>) {
    let model: Option<String> = fields.get("model", errors);
    let expect_model: Option<String> = fields.get("expect_model", errors);
    for (name, value) in [("model", &model), ("expect_model", &expect_model)] {
        if let Some(v) = value.as_deref().filter(|v| !is_model_name(v)) {
            errors.push(&fields.place, name, format!("{v:?} is not a model name (letters, digits and ._:/@+-)"));
        }
    }
    (model, expect_model)
}

/// The request: a template supplies method, path, headers and body (its `models:` table
/// adjusting the body for the model); explicit fields override it.
fn request(fields: &Fields<'_>, map: &Mapping, model: Option<&str>, base_dir: &Path, errors: &mut Errors) -> Request {
    let place = fields.place.as_str();
    let template_name: Option<String> = fields.get("template", errors);
    let template = template_name.as_deref().and_then(|name| match template::find(name, base_dir) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(place, "template", e);
            None
        }
    });
    let stream = fields.get::<bool>("stream", errors).unwrap_or(true);
    if fields.raw("stream").is_some() && template_name.is_none() {
        errors.push(place, "stream", "only applies with a template (the body decides otherwise)");
    }
    let form = template.as_ref().map(|t| t.form(stream));

    let method_text = fields.get::<String>("method", errors).or_else(|| template.as_ref().map(|t| t.method.clone()));
    let method = match method_text {
        // An unknown template is reported once, not again as a missing method.
        None if fields.raw("method").is_none() && template_name.is_none() => {
            errors.push(place, "method", "is required (or use a template)");
            None
        }
        None => None,
        Some(m) => {
            let parsed = Method::parse(&m);
            if parsed.is_none() {
                let all: Vec<&str> = Method::ALL.iter().map(|m| m.as_str()).collect();
                errors.push(place, "method", format!("{m:?} is not one of {}", all.join(", ")));
            }
            parsed
        }
    };

    let base_url: Option<String> = fields.get("base_url", errors);
    if base_url.as_deref().is_some_and(|b| b.contains(['?', '#'])) {
        errors.push(place, "base_url", "must not have a query or fragment (the template appends a path to it)");
    }
    let explicit_url: Option<String> = fields.get("url", errors);
    let url = match (&explicit_url, &base_url, form) {
        (Some(url), _, _) => Some(url.clone()),
        (None, Some(base), Some(form)) => Some(format!("{}{}", base.trim_end_matches('/'), form.path)),
        (None, Some(_), None) => {
            if template_name.is_none() {
                errors.push(place, "base_url", "needs a template (or give the full url)");
            }
            None
        }
        (None, None, _) if fields.raw("url").is_none() => {
            let what = if template_name.is_some() { "base_url" } else { "url" };
            errors.push(place, what, "is required");
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
    let mut headers: Vec<(String, String)> = template
        .as_ref()
        .map(|t| t.headers())
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, _)| !explicit_headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)))
        .collect();
    headers.extend(explicit_headers);

    let body = match (fields.raw("body"), form, &template, model) {
        (Some(_), _, _, _) => parse_body(fields.raw("body"), place, base_dir, errors),
        // The template's body, as its `models:` table has it for this model.
        (None, Some(form), Some(template), Some(model)) => {
            match form.body.as_deref().map(|b| template.body_for(b, model)) {
                Some(Ok(body)) => Some(body),
                Some(Err(e)) => {
                    errors.push(place, "template", e);
                    None
                }
                None => None,
            }
        }
        (None, form, _, _) => form.and_then(|f| f.body.clone()),
    };
    Request { template, method, url, headers, body }
}

/// Fills `{{API_KEY}}` and `{{MODEL}}` in and checks the url and headers as they will be
/// sent (with a sample question where `{{CHALLENGE}}` goes at probe time).
fn resolve(
    fields: &Fields<'_>,
    request: &Request,
    api_key: Option<&str>,
    model: Option<&str>,
    errors: &mut Errors,
) -> Resolved {
    let place = fields.place.as_str();
    let texts = || {
        request
            .url
            .iter()
            .chain(request.body.iter())
            .map(String::as_str)
            .chain(request.headers.iter().map(|(_, v)| v.as_str()))
    };
    let uses_key = texts().any(|s| s.contains(API_KEY_PLACEHOLDER));
    let uses_model = texts().any(|s| s.contains(MODEL_PLACEHOLDER));
    let challenge = texts().any(|s| s.contains(CHALLENGE_PLACEHOLDER));
    if uses_model && model.is_none() && fields.raw("model").is_none() {
        errors.push(place, "model", format!("is required ({MODEL_PLACEHOLDER} is used)"));
    }
    let fill =
        |s: &str| s.replace(API_KEY_PLACEHOLDER, api_key.unwrap_or("")).replace(MODEL_PLACEHOLDER, model.unwrap_or(""));
    let sample = |s: &str| s.replace(CHALLENGE_PLACEHOLDER, "What is 1 + 2?");
    let url = request.url.as_deref().map(fill);
    if let Some(url) = &url {
        if let Err(e) = check_url(&sample(url)) {
            errors.push(place, "url", e);
        }
    }
    let mut headers = Vec::with_capacity(request.headers.len());
    for (name, value) in &request.headers {
        let value = fill(value);
        if awc::http::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            errors.push(place, &format!("headers.{name}"), "is not a valid HTTP header name");
        } else if awc::http::header::HeaderValue::from_str(&sample(&value)).is_err() {
            // The value may hold a key: describe the problem, never echo it.
            errors.push(
                place,
                &format!("headers.{name}"),
                "value is not a valid HTTP header value (control characters or non-ASCII)",
            );
        }
        headers.push((name.clone(), Secret::new(value)));
    }
    Resolved {
        url: url.map(Secret::new),
        headers,
        body: request.body.as_deref().map(fill).map(Secret::new),
        uses_key,
        challenge,
    }
}

/// Two monitors whose names mangle to the same variable would be sent one key: an error
/// naming both (the channels of one provider/service sharing its name is intended).
fn claim_env_names(
    key: &MonitorKey,
    claims: Vec<(String, String)>,
    what: &str,
    hint: &str,
    place: &str,
    shared: &mut Shared,
    errors: &mut Errors,
) {
    if key.provider.is_empty() || key.service.is_empty() {
        return;
    }
    for (name, owner) in claims {
        match shared.env_claims.get(&name) {
            Some((other_owner, other_place)) if *other_owner != owner => errors.push(
                place,
                "",
                format!("its {what} variable {name} is also {other_place}'s (names map to A-Z, 0-9 and _); {hint}"),
            ),
            Some(_) => {}
            None => {
                shared.env_claims.insert(name, (owner, place.to_string()));
            }
        }
    }
}

/// The monitor's proxy: `MONITOR_<PROVIDER>_<SERVICE>[_<CHANNEL>]_PROXY` (an empty variable
/// counts as unset), else its `proxy` (`""`: direct), else the global `proxy`. A variable that
/// is set claims its name as an API key's does: two monitors whose names map to it are an error.
fn monitor_proxy(
    context: &MonitorContext<'_>,
    fields: &Fields<'_>,
    key: &MonitorKey,
    is_disabled: bool,
    shared: &mut Shared,
    errors: &mut Errors,
) -> Option<crate::proxy::Proxy> {
    let names = proxy_env_names(key);
    let set = |name: &String| (context.env)(name).filter(|v| !v.trim().is_empty());
    let from_env = names.iter().find_map(|name| Some(name).zip(set(name)));
    let in_file = fields.get::<String>("proxy", errors);
    let (text, source) = match (from_env, in_file) {
        (Some((name, value)), in_file) => {
            // What the file says is still hidden wherever it might show.
            shared.secrets.extend(in_file.filter(|t| !t.trim().is_empty()));
            if !is_disabled {
                let mut claims = env_claims(key, names.clone());
                claims.retain(|(name, _)| set(name).is_some());
                let hint = "unset it, or rename one of the monitors";
                claim_env_names(key, claims, "proxy", hint, &fields.place, shared, errors);
            }
            (value, name.clone())
        }
        (None, Some(value)) => (value, "proxy".to_string()),
        (None, None) => return context.globals.proxy.clone(),
    };
    super::proxy::parse_proxy(&text, &fields.place, &source, &mut shared.secrets, errors)
}

/// Interval, timeout and the slow thresholds, the monitor's own or inherited. A conflict
/// between two inherited values is the globals' own, reported once for them.
fn thresholds(fields: &Fields<'_>, globals: &Globals, errors: &mut Errors) -> Thresholds {
    let place = fields.place.as_str();
    let interval = fields.duration("interval", false, errors).unwrap_or(globals.interval);
    let timeout = fields.duration("timeout", false, errors).unwrap_or(globals.timeout);
    let slow_latency = fields.duration("slow_latency", false, errors).unwrap_or(globals.slow_latency);
    if fields.raw("interval").is_some() {
        check_interval(place, "interval", interval, errors);
    }
    if fields.raw("timeout").is_some() {
        check_timeout(place, "timeout", timeout, errors);
    }
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
            place,
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
            place,
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
    Thresholds { interval, timeout, slow_latency, slow_ttft }
}

/// serde gives a map back sorted; restore the file's order of header names.
fn order_like_yaml(map: &Mapping, mut headers: Vec<(String, String)>) -> Vec<(String, String)> {
    if let Some(Value::Mapping(raw)) = map.get("headers") {
        let order: Vec<&str> = raw.keys().filter_map(Value::as_str).collect();
        headers.sort_by_key(|(name, _)| order.iter().position(|n| n == name));
    }
    headers
}

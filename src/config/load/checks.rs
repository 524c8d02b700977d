//! Checks of single settings: listen addresses, database paths, CORS origins, URLs, and the
//! bounds of intervals and timeouts.

use std::path::Path;
use std::time::Duration;

use serde_yaml::Value;

use super::fields::{describe, Errors, Fields};
use super::{CORS_KEYS, MAX_INTERVAL, MAX_TIMEOUT, MIN_INTERVAL};
use crate::config::{duration, Cors};

pub(super) fn check_listen(value: &str) -> Result<(), String> {
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
pub(super) fn check_database(value: &str) -> Result<(), String> {
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
pub(super) fn normalize_origin(origin: &str) -> Result<String, String> {
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

pub(super) fn check_interval(place: &str, field: &str, value: Duration, errors: &mut Errors) {
    if value < MIN_INTERVAL {
        errors.push(place, field, format!("{} is below the minimum of 1s", duration::format(value)));
    } else if value > MAX_INTERVAL {
        errors.push(place, field, format!("{} is above the maximum of 24h", duration::format(value)));
    }
}

pub(super) fn check_timeout(place: &str, field: &str, value: Duration, errors: &mut Errors) {
    if value > MAX_TIMEOUT {
        errors.push(place, field, format!("{} is above the maximum of 5m", duration::format(value)));
    }
}

pub(super) fn parse_cors(value: Option<&Value>, errors: &mut Errors) -> Cors {
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

pub(super) fn check_url(url: &str) -> Result<(), String> {
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

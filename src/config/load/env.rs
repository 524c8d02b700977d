//! API-key environment variables: the names derived from a monitor's key, and which monitor
//! each name belongs to (two monitors must not share one by accident).

use crate::config::MonitorKey;

/// The env names that may carry a monitor's API key, most specific first:
/// `MONITOR_<PROVIDER>_<SERVICE>_<CHANNEL>_API_KEY`, then `MONITOR_<PROVIDER>_<SERVICE>_API_KEY`.
pub fn env_var_names(key: &MonitorKey) -> Vec<String> {
    env_names_ending(key, "API_KEY")
}

/// The env names that may carry a monitor's proxy, most specific first:
/// `MONITOR_<PROVIDER>_<SERVICE>_<CHANNEL>_PROXY`, then `MONITOR_<PROVIDER>_<SERVICE>_PROXY`.
pub fn proxy_env_names(key: &MonitorKey) -> Vec<String> {
    env_names_ending(key, "PROXY")
}

fn env_names_ending(key: &MonitorKey, field: &str) -> Vec<String> {
    let mut names = Vec::with_capacity(2);
    if !key.channel.is_empty() {
        names.push(format!(
            "MONITOR_{}_{}_{}_{field}",
            mangle(&key.provider),
            mangle(&key.service),
            mangle(&key.channel)
        ));
    }
    names.push(format!("MONITOR_{}_{}_{field}", mangle(&key.provider), mangle(&key.service)));
    names
}

/// The implicit env names of a monitor with whose key each one is: the channel's own name is
/// the monitor's; the provider/service name is shared by the channels of that pair.
pub(super) fn env_claims(key: &MonitorKey, names: Vec<String>) -> Vec<(String, String)> {
    let pair = format!("{}\u{1f}{}", key.provider, key.service).to_ascii_lowercase();
    let mut owners = Vec::with_capacity(2);
    if !key.channel.is_empty() {
        owners.push(key.normalized().to_string());
    }
    owners.push(pair);
    names.into_iter().zip(owners).collect()
}

pub(super) fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn mangle(part: &str) -> String {
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

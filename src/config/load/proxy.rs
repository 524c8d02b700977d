//! `proxy:` settings: the global default for probes, a monitor's own, a channel's own. Their
//! errors never quote the URL (it may hold a password); their credentials join the secrets
//! every answer is redacted of.

use super::fields::Errors;
use crate::proxy::Proxy;

/// A proxy URL as written (or taken from the environment, named by `source`): `None` when it is
/// empty (direct) or invalid (an error is recorded).
pub(super) fn parse_proxy(
    text: &str,
    place: &str,
    source: &str,
    secrets: &mut Vec<String>,
    errors: &mut Errors,
) -> Option<Proxy> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    secrets.push(text.to_string());
    match Proxy::parse(text) {
        Ok(proxy) => {
            // A short user name (`proxy`, `admin`) is no secret worth blanking every such word
            // for: it is hidden as part of the URL, and alone from 8 bytes up.
            secrets.extend(proxy.user.iter().filter(|u| u.len() >= 8).cloned());
            secrets.extend(proxy.password.iter().map(|p| p.expose().to_string()));
            Some(proxy)
        }
        Err(problem) => {
            errors.push(place, source, problem);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field_never_the_url() {
        let mut errors = Errors { lines: Vec::new() };
        let mut secrets = Vec::new();
        assert!(parse_proxy("https://u:hunter2-secret@p:1", "monitors[0] a/b", "proxy", &mut secrets, &mut errors)
            .is_none());
        assert!(parse_proxy("socks5://p", "", "MONITOR_A_B_PROXY", &mut secrets, &mut errors).is_none());
        let text = errors.lines.join("\n");
        assert!(text.contains("monitors[0] a/b") && text.contains("https://"), "{text}");
        assert!(text.contains("MONITOR_A_B_PROXY") && text.contains("port is required"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(secrets.iter().any(|s| s.contains("hunter2")));
        let proxy = parse_proxy(" socks5h://user:pa%40ss@[::1]:1080 ", "", "proxy", &mut secrets, &mut errors);
        assert_eq!(proxy.unwrap().address(), "[::1]:1080");
        assert!(secrets.contains(&"pa@ss".to_string()));
        assert_eq!(parse_proxy("", "", "proxy", &mut secrets, &mut errors), None);
    }
}

//! The status page: HTML, CSS and JS embedded in the binary (no build step, no CDN, works
//! offline). It reads `/api/status` like any other client.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

const INDEX: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const STYLE_CSS: &str = include_str!("../web/style.css");

/// Only this daemon's own scripts, styles and API; no inline code, no third party but the
/// configured logo's origin (images only). `?embed=1` may be framed by any site; the full page
/// by none.
fn csp(logo_origin: Option<&str>, embed: bool) -> String {
    let images = match logo_origin {
        Some(origin) => format!("img-src 'self' data: {origin}"),
        None => "img-src 'self' data:".to_string(),
    };
    let frames = if embed { "frame-ancestors *" } else { "frame-ancestors 'none'" };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; {images}; base-uri 'none'; \
         form-action 'none'; {frames}"
    )
}

pub async fn index(req: actix_web::HttpRequest, state: web::Data<super::AppState>) -> HttpResponse {
    // The first `embed`, as the page's script reads it.
    let embed = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "embed")
        .is_some_and(|(_, v)| v == "1");
    let logo = super::page::settings(&state).await.and_then(|p| p.logo_url);
    let origin = logo.as_deref().and_then(|url| crate::config::logo_origin(url).ok().flatten());
    let policy = csp(origin.as_deref(), embed);
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, policy))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(INDEX)
}

/// The page's icon (also at `/favicon.ico`, which browsers ask for on their own).
const FAVICON: &str = include_str!("../web/favicon.svg");

pub async fn favicon() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "max-age=86400"))
        .body(FAVICON)
}

pub async fn asset(file: web::Path<String>) -> HttpResponse {
    let (body, content_type) = match file.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "style.css" => (STYLE_CSS, "text/css; charset=utf-8"),
        _ => return super::json_error(actix_web::http::StatusCode::NOT_FOUND, "not_found", "no such asset"),
    };
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // The binary is the version: revalidate cheaply rather than serve a stale page.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::ETAG, concat!("\"", env!("CARGO_PKG_VERSION"), "\"")))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reason has its words on the page, in English and in Chinese.
    #[test]
    fn the_page_names_every_reason_in_both_languages() {
        for reason in crate::domain::Reason::ALL {
            let key = format!(" {}: \"", reason.as_str());
            assert_eq!(APP_JS.matches(&key).count(), 2, "{} in app.js's reasons", reason.as_str());
        }
    }

    #[test]
    fn the_policy_names_the_logo_origin_and_frames_only_embeds() {
        use crate::config::logo_origin;
        assert_eq!(
            logo_origin("https://CDN.example.com:8443/a/logo.png?x=1"),
            Ok(Some("https://cdn.example.com:8443".into()))
        );
        assert_eq!(logo_origin("http://[::1]:8080/l.png"), Ok(Some("http://[::1]:8080".into())));
        assert!(logo_origin("https://user:pw@cdn.example.com/logo.png").is_err());
        assert!(logo_origin("https://a.com;sandbox/x.png").is_err());
        assert!(logo_origin("https://*/x.png").is_err());
        assert_eq!(logo_origin("/favicon.svg"), Ok(None));
        let full = csp(Some("https://cdn.example.com"), false);
        assert!(full.contains("img-src 'self' data: https://cdn.example.com;"), "{full}");
        assert!(full.contains("frame-ancestors 'none'"), "{full}");
        assert!(csp(None, true).contains("frame-ancestors *"));
    }
}

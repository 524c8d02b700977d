//! The status page: HTML, CSS and JS embedded in the binary (no build step, no CDN, works
//! offline). It reads `/api/status` like any other client.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

const INDEX: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const STYLE_CSS: &str = include_str!("../web/style.css");

/// Only this daemon's own scripts, styles and API; no inline code, no third party.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
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

//! The HTTP API. Handlers are thin: they parse, send one message, and shape the answer.

pub mod badge;
mod health;
mod status;
mod web_page;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::{http::StatusCode, web, HttpResponse};
use serde_json::json;

use crate::config::Cors;
use crate::metrics::Metrics;
use crate::store::StoreActor;
use crate::supervisor::Supervisor;

/// How long a handler waits for an actor before answering 503.
const ACTOR_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct AppState {
    pub store: Addr<StoreActor>,
    pub supervisor: Addr<Supervisor>,
    pub metrics: Arc<Metrics>,
    pub started: Instant,
}

/// `{"error":{"code":...,"message":...}}` with the given HTTP status.
pub fn json_error(status: StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": {"code": code, "message": message.into()}}))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(|err, _| {
        let message = err.to_string();
        actix_web::error::InternalError::from_response(
            err,
            json_error(StatusCode::BAD_REQUEST, "invalid_param", message),
        )
        .into()
    }))
    .route("/api/status", web::get().to(status::status))
    .route("/health", web::get().to(health::health))
    .route("/metrics", web::get().to(metrics))
    .route("/api/badge/{provider}/{file}", web::get().to(badge::badge))
    .route("/", web::get().to(web_page::index))
    .route("/assets/{file}", web::get().to(web_page::asset))
    .default_service(web::to(|req: actix_web::HttpRequest| async move {
        json_error(StatusCode::NOT_FOUND, "not_found", format!("no such endpoint: {}", req.path()))
    }));
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}

/// GET from any origin by default (a public, read-only API), or only from the listed ones.
pub fn cors(config: &Cors) -> actix_cors::Cors {
    let cors = actix_cors::Cors::default().allowed_methods(["GET"]).max_age(3_600);
    if config.allowed_origins.iter().any(|o| o == "*") {
        return cors.allow_any_origin();
    }
    config.allowed_origins.iter().fold(cors, |cors, origin| cors.allowed_origin(origin))
}

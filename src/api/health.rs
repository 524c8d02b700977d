//! `GET /health`: 200 while the daemon can serve and store, 503 when the store cannot write.

use actix_web::{http::StatusCode, web, HttpResponse};
use serde_json::json;

use super::{AppState, ACTOR_TIMEOUT};
use crate::store::{GetStoreHealth, StoreHealth};
use crate::supervisor::GetConfigState;

pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let store = match state.store.send(GetStoreHealth).timeout(ACTOR_TIMEOUT).await {
        Ok(h) => h,
        Err(e) => StoreHealth {
            writable: false,
            pending: 0,
            dropped: 0,
            last_error: Some(format!("store did not answer: {e}")),
        },
    };
    let config = state.supervisor.send(GetConfigState).timeout(ACTOR_TIMEOUT).await.ok();
    // Only the store decides: a slow or failed reload does not stop serving or storing.
    let ok = store.writable;
    let body = json!({
        "status": if ok { "ok" } else { "unavailable" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "store": store,
        "config": config,
    });
    let code = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    HttpResponse::build(code).json(body)
}

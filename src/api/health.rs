//! `GET /health`: 200 while the daemon can serve and store, 503 when the store cannot write or
//! cannot say (then its fields are `null`, never a made-up `pending: 0`).

use actix_web::{http::StatusCode, web, HttpResponse};
use serde_json::json;

use std::time::Duration;

use super::AppState;
use crate::store::GetStoreHealth;
use crate::supervisor::GetConfigState;

/// The store answers at once; if it does not within this, it cannot say.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let (status, store) = match state.store.send(GetStoreHealth).timeout(HEALTH_TIMEOUT).await {
        // Not yet known (nothing written or tested since start-up) counts as able.
        Ok(h) if h.writable != Some(false) => ("ok", json!(h)),
        Ok(h) => ("unavailable", json!(h)),
        Err(e) => (
            "unknown",
            json!({"writable": null, "pending": null, "dropped": null, "last_error": format!("the store did not answer: {e}")}),
        ),
    };
    let config = state.supervisor.send(GetConfigState).timeout(HEALTH_TIMEOUT).await.ok();
    // Only the store decides: a slow or failed reload does not stop serving or storing.
    let ok = status == "ok";
    let body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "store": store,
        "config": config,
    });
    let code = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    HttpResponse::build(code).json(body)
}

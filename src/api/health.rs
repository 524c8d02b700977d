//! `GET /health`: 200 while the daemon can serve and store, 503 when the store cannot write or
//! cannot say (then its fields are `null`, never a made-up `pending: 0`).

use actix_web::{http::StatusCode, web, HttpResponse};
use serde_json::json;

use std::time::Duration;

use super::AppState;
use crate::alert::delivery::GetDeliveryHealth;
use crate::store::GetStoreHealth;
use crate::supervisor::GetConfigState;

/// The store answers at once; if it does not within this, it cannot say.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let (status, store, node) = match state.store.send(GetStoreHealth).timeout(HEALTH_TIMEOUT).await {
        // Not yet known (nothing written or tested since start-up) counts as able.
        Ok(h) => {
            let node = json!({"name": h.node.0, "leader": h.node.1});
            (if h.writable != Some(false) { "ok" } else { "unavailable" }, json!(h), node)
        }
        Err(e) => (
            "unknown",
            json!({"writable": null, "pending": null, "dropped": null, "last_error": format!("the store did not answer: {e}")}),
            json!(null),
        ),
    };
    let config = state.supervisor.send(GetConfigState).timeout(HEALTH_TIMEOUT).await.ok();
    let alerts = match &state.delivery {
        Some(delivery) => delivery.send(GetDeliveryHealth).timeout(HEALTH_TIMEOUT).await.ok(),
        None => None,
    };
    // Only the store decides: a slow or failed reload does not stop serving or storing.
    let ok = status == "ok";
    let body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "node": node,
        "store": store,
        "config": config,
        "alerts": alerts,
    });
    let code = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    HttpResponse::build(code).json(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Close, LoadHistory};
    use actix::Actor;
    use std::sync::Arc;

    /// A store that cannot answer (here: closed) makes `/health` say unknown, with its fields
    /// null, never a made-up `pending: 0`; a store that answers says what it holds.
    #[actix_rt::test]
    async fn a_store_that_cannot_say_is_unknown_never_pending_zero() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::parse_str("monitors: []\n", dir.path(), &|_| None).unwrap();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let clock = crate::clock::system();
        let path = dir.path().join("t.db");
        let conn = crate::store::db::open(&path).unwrap();
        let (store, inbox) = crate::store::start(
            crate::store::sql::Db::Sqlite(conn),
            crate::store::Place { database: crate::config::Database::Sqlite(path.clone()), node: "local".to_string() },
            clock.clone(),
            config.retention,
            config.degraded_weight,
            metrics.clone(),
            Arc::new(config.alerts.clone()),
        );
        store.send(LoadHistory).await.unwrap().unwrap();
        let supervisor =
            crate::supervisor::Supervisor::new(config, store.clone(), inbox, None, metrics.clone(), clock.clone())
                .start();
        let state = AppState {
            clock,
            store: store.clone(),
            supervisor,
            reader: crate::store::reader::start(crate::config::Database::Sqlite(path.clone()), "local".to_string()),
            delivery: None,
            metrics,
            started: std::time::Instant::now(),
        };
        let ask = |state: AppState| async move {
            let response = health(web::Data::new(state)).await;
            let code = response.status();
            let body = actix_web::body::to_bytes(response.into_body()).await.unwrap();
            (code, serde_json::from_slice::<serde_json::Value>(&body).unwrap())
        };

        let (code, body) = ask(state.clone()).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!((body["status"].as_str(), body["store"]["pending"].as_u64()), (Some("ok"), Some(0)), "{body}");

        store.send(Close { deadline: Duration::from_secs(5) }).await.unwrap().unwrap();
        let (code, body) = ask(state).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["status"], "unknown", "{body}");
        assert!(body["store"]["pending"].is_null() && body["store"]["writable"].is_null(), "{body}");
    }
}

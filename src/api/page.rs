//! `GET /api/page`: what the status page shows besides the monitors (`page:` in the config and
//! each monitor's `group:`), as last applied.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::{json_error, AppState, ACTOR_TIMEOUT};
use crate::config::PageConfig;
use crate::supervisor::GetPage;

/// The settings, or None when the supervisor did not answer in time.
pub(super) async fn settings(state: &AppState) -> Option<PageConfig> {
    state.supervisor.send(GetPage).timeout(ACTOR_TIMEOUT).await.ok()
}

pub async fn page(state: web::Data<AppState>) -> HttpResponse {
    let Some(page) = settings(&state).await else {
        return json_error(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the supervisor did not answer",
        );
    };
    let groups: Vec<_> = page
        .monitor_groups
        .iter()
        .map(|(key, group)| json!({"provider": key.provider, "service": key.service, "channel": key.channel, "group": group}))
        .collect();
    HttpResponse::Ok().insert_header((actix_web::http::header::CACHE_CONTROL, "no-cache")).json(json!({
        "title": page.title,
        "description": page.description,
        "logo_url": page.logo_url,
        "footer": page.footer,
        "groups": page.groups,
        "hidden": page.hidden,
        "monitor_groups": groups,
    }))
}

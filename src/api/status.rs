//! `GET /api/status?period=24h|7d|30d&provider=&service=&channel=`

use actix_web::{http::StatusCode, web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{json_error, AppState, ACTOR_TIMEOUT};
use crate::probe::actor::unix_now;
use crate::store::timeline::Period;
use crate::store::{MonitorStatus, QueryStatus};

#[derive(Serialize)]
struct Meta {
    period: &'static str,
    count: usize,
    generated_at: i64,
}

#[derive(Serialize)]
struct StatusBody {
    meta: Meta,
    data: Vec<MonitorStatus>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusParams {
    period: Option<String>,
    provider: Option<String>,
    service: Option<String>,
    channel: Option<String>,
}

/// An absent filter lists all; an empty one is almost surely a bug in the caller.
fn filter(name: &str, value: Option<String>) -> Result<Option<String>, String> {
    match value {
        Some(v) if v.trim().is_empty() => Err(format!("{name} must not be empty (leave it out to list all)")),
        other => Ok(other),
    }
}

fn parse(params: StatusParams) -> Result<QueryStatus, String> {
    let period_text = params.period.unwrap_or_else(|| "24h".to_string());
    let period =
        Period::parse(&period_text).ok_or_else(|| format!("period {period_text:?} is not one of 24h, 7d, 30d"))?;
    Ok(QueryStatus {
        period,
        provider: filter("provider", params.provider)?,
        service: filter("service", params.service)?,
        channel: params.channel,
        now: unix_now(),
    })
}

pub async fn status(state: web::Data<AppState>, params: web::Query<StatusParams>) -> HttpResponse {
    let query = match parse(params.into_inner()) {
        Ok(q) => q,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, "invalid_param", message),
    };
    let (now, period) = (query.now, query.period);
    match state.store.send(query).timeout(ACTOR_TIMEOUT).await {
        Ok(Ok(data)) => HttpResponse::Ok()
            .json(StatusBody { meta: Meta { period: period.as_str(), count: data.len(), generated_at: now }, data }),
        Ok(Err(e)) => {
            log::error!("api: status query failed: {e}");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "store_error", "the history could not be read")
        }
        Err(e) => {
            log::error!("api: store did not answer: {e}");
            json_error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "the store did not answer in time")
        }
    }
}

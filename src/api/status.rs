//! `GET /api/status?period=24h|7d|30d&provider=&service=&channel=`

use actix_web::http::header::{self, AcceptEncoding, Encoding, Header};
use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{json_error, AppState, ACTOR_TIMEOUT};
use crate::clock::unix_now;
use crate::store::timeline::Period;
use crate::store::QueryStatus;

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

fn parse(params: StatusParams, gzip: bool) -> Result<QueryStatus, String> {
    let period_text = params.period.unwrap_or_else(|| "24h".to_string());
    let period =
        Period::parse(&period_text).ok_or_else(|| format!("period {period_text:?} is not one of 24h, 7d, 30d"))?;
    Ok(QueryStatus {
        period,
        provider: filter("provider", params.provider)?,
        service: filter("service", params.service)?,
        channel: params.channel,
        now: unix_now(),
        gzip,
    })
}

/// Whether the client prefers gzip to an uncompressed body (it halves nothing, it divides a
/// 600 KB answer by ten).
fn wants_gzip(req: &HttpRequest) -> bool {
    let supported = [Encoding::gzip(), Encoding::identity()];
    AcceptEncoding::parse(req).ok().and_then(|accept| accept.negotiate(supported.iter())) == Some(Encoding::gzip())
}

pub async fn status(req: HttpRequest, state: web::Data<AppState>, params: web::Query<StatusParams>) -> HttpResponse {
    let gzip = wants_gzip(&req);
    let query = match parse(params.into_inner(), gzip) {
        Ok(q) => q,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, "invalid_param", message),
    };
    match state.store.send(query).timeout(ACTOR_TIMEOUT).await {
        Ok(Ok(answer)) => {
            let mut response = HttpResponse::Ok();
            response.content_type("application/json").insert_header((header::VARY, "Accept-Encoding"));
            // A cached answer may carry a gzip form another client asked for: go by this one.
            match answer.gzip.filter(|_| gzip) {
                Some(compressed) => response.insert_header((header::CONTENT_ENCODING, "gzip")).body(compressed),
                None => response.body(answer.json),
            }
        }
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

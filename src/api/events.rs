//! `GET /api/events?since_id=&limit=`: alert state changes, oldest first, for external
//! notifiers to follow without losing any: ask again with `since_id` = `meta.next_since_id`.

use actix_web::{http::StatusCode, web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{json_error, AppState, ACTOR_TIMEOUT};
use crate::store::QueryEvents;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    since_id: Option<String>,
    limit: Option<String>,
}

fn parse(params: &EventParams) -> Result<(i64, usize), String> {
    let since_id = match params.since_id.as_deref() {
        None | Some("") => 0,
        Some(text) => match text.trim().parse::<i64>() {
            Ok(id) if id >= 0 => id,
            _ => return Err(format!("since_id {text:?} is not a whole number >= 0")),
        },
    };
    let limit = match params.limit.as_deref() {
        None | Some("") => DEFAULT_LIMIT,
        Some(text) => match text.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => return Err(format!("limit {text:?} is not a whole number from 1 to {MAX_LIMIT}")),
        },
    };
    Ok((since_id, limit))
}

pub async fn events(state: web::Data<AppState>, params: web::Query<EventParams>) -> HttpResponse {
    let (since_id, limit) = match parse(&params) {
        Ok(parsed) => parsed,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, "invalid_param", message),
    };
    match state.store.send(QueryEvents { since_id, limit }).timeout(ACTOR_TIMEOUT).await {
        Ok(Ok((data, has_more))) => {
            let next_since_id = data.last().map_or(since_id, |e| e.id);
            HttpResponse::Ok().json(json!({
                "data": data,
                "meta": {"next_since_id": next_since_id, "has_more": has_more},
            }))
        }
        Ok(Err(e)) => {
            log::error!("api: events could not be read: {e}");
            json_error(StatusCode::SERVICE_UNAVAILABLE, "store_error", "the events could not be read")
        }
        Err(e) => {
            log::error!("api: the store did not answer: {e}");
            json_error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "the store did not answer in time")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters() {
        let p = |since: Option<&str>, limit: Option<&str>| {
            parse(&EventParams { since_id: since.map(str::to_string), limit: limit.map(str::to_string) })
        };
        assert_eq!(p(None, None), Ok((0, 100)));
        assert_eq!(p(Some("42"), Some("500")), Ok((42, 500)));
        assert!(p(Some("-1"), None).unwrap_err().contains("since_id"));
        assert!(p(Some("x"), None).is_err());
        assert!(p(None, Some("0")).unwrap_err().contains("limit \"0\" is not a whole number from 1 to 500"));
        assert!(p(None, Some("501")).is_err());
    }
}

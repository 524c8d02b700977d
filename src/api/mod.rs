//! The HTTP API. Handlers are thin: they parse, send one message, and shape the answer.

pub mod badge;
pub mod conn;
mod events;
mod feed;
mod health;
mod history;
mod page;
pub mod status;
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
    pub clock: crate::clock::SharedClock,
    pub store: Addr<StoreActor>,
    pub supervisor: Addr<Supervisor>,
    /// Reads the stored history on threads of their own (incidents, reports, exports).
    pub reader: Addr<crate::store::reader::Reader>,
    pub delivery: Option<Addr<crate::alert::delivery::Delivery>>,
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
    .service(read_only("/api/status").to(status::status))
    .service(read_only("/api/events").to(events::events))
    .service(read_only("/api/page").to(page::page))
    .service(read_only("/api/incidents").to(history::incidents))
    .service(read_only("/api/report").to(history::report))
    .service(read_only("/api/export").to(history::export))
    .service(read_only("/feed.atom").to(feed::atom))
    .service(read_only("/feed.rss").to(feed::rss))
    .service(read_only("/health").to(health::health))
    .service(read_only("/metrics").to(metrics))
    .service(read_only("/api/badge/{provider}/{file}").to(badge::badge))
    .service(read_only("/").to(web_page::index))
    .service(read_only("/favicon.ico").to(web_page::favicon))
    .service(read_only("/favicon.svg").to(web_page::favicon))
    .service(read_only("/assets/{file}").to(web_page::asset))
    .default_service(web::to(|req: actix_web::HttpRequest| async move {
        json_error(StatusCode::NOT_FOUND, "not_found", format!("no such endpoint: {}", req.path()))
    }));
}

/// A read-only endpoint: GET, and HEAD (the same answer without its body, for `curl -I` and
/// load balancers); any other method is 405 with `Allow: GET, HEAD`.
fn read_only(path: &str) -> ReadOnly {
    ReadOnly(path.to_string())
}

struct ReadOnly(String);

impl ReadOnly {
    fn to<F, Args>(self, handler: F) -> actix_web::Resource
    where
        F: actix_web::Handler<Args> + Clone,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        web::resource(self.0)
            .route(web::get().to(handler.clone()))
            .route(web::head().to(handler))
            .default_service(web::to(method_not_allowed))
    }
}

async fn method_not_allowed(req: actix_web::HttpRequest) -> HttpResponse {
    let mut response = json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}; this API is read-only (GET, HEAD)", req.method(), req.path()),
    );
    response
        .headers_mut()
        .insert(actix_web::http::header::ALLOW, actix_web::http::header::HeaderValue::from_static("GET, HEAD"));
    response
}

/// OpenMetrics when the scraper asks for it (Prometheus does), else the classic text format
/// (`curl`, `promtool check metrics`, older scrapers).
async fn metrics(req: actix_web::HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if wants_openmetrics(&req) {
        HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .insert_header((actix_web::http::header::VARY, "Accept"))
            .body(state.metrics.encode())
    } else {
        HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .insert_header((actix_web::http::header::VARY, "Accept"))
            .body(state.metrics.encode_classic())
    }
}

/// Whether the client ranks OpenMetrics above the classic text format.
fn wants_openmetrics(req: &actix_web::HttpRequest) -> bool {
    use actix_web::http::header::{Accept, Header};
    let Ok(accept) = Accept::parse(req) else { return false };
    for mime in accept.ranked() {
        match (mime.type_().as_str(), mime.subtype().as_str()) {
            ("application", "openmetrics-text") => return true,
            ("text", "plain") | ("*", "*") | ("text", "*") => return false,
            _ => {}
        }
    }
    false
}

/// GET from any origin by default (a public, read-only API), or only from the listed ones.
pub fn cors(config: &Cors) -> actix_cors::Cors {
    // Headers a page on another origin may read: the export's paging and the validators.
    let cors = actix_cors::Cors::default()
        .allowed_methods(["GET"])
        .expose_headers(["Link", "X-Export-Rows", "ETag"])
        .max_age(3_600);
    if config.allowed_origins.iter().any(|o| o == "*") {
        return cors.allow_any_origin();
    }
    config.allowed_origins.iter().fold(cors, |cors, origin| cors.allowed_origin(origin))
}

/// Connections each of the two workers serves at once; more wait in the listen backlog.
const MAX_CONNECTIONS_PER_WORKER: usize = 512;

/// The HTTP server on `listener`: actix-web's app over actix-http's HTTP/1.1, each connection
/// [`conn::Paced`] so a client that pipelines requests and never reads the answers cannot grow
/// the daemon's memory.
pub fn serve(
    listener: std::net::TcpListener,
    state: AppState,
    cors_config: Cors,
) -> std::io::Result<actix_web::dev::Server> {
    use actix_service::{fn_service, map_config, ServiceFactoryExt as _};
    use actix_web::dev::AppConfig;
    let addr = listener.local_addr()?;
    let peers = conn::PeerLimit::new(conn::MAX_CONNECTIONS_PER_PEER);
    let server = actix_server::Server::build()
        .workers(2)
        .disable_signals()
        // At shutdown, requests in flight get 5 s to finish (actix's default is 30 s).
        .shutdown_timeout(5)
        .max_concurrent_connections(MAX_CONNECTIONS_PER_WORKER)
        .listen("llm-monitor-api", listener, move || {
            let app = actix_web::App::new()
                .app_data(web::Data::new(state.clone()))
                .wrap(cors(&cors_config))
                .configure(configure);
            let app = actix_service::IntoServiceFactory::into_factory(app)
                .map_err(|err: actix_web::Error| err.error_response());
            let http = actix_http::HttpService::<conn::Paced<actix_rt::net::TcpStream>, _, _, _, _>::build()
                .keep_alive(actix_http::KeepAlive::Timeout(Duration::from_secs(5)))
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                .local_addr(addr)
                .h1(map_config(app, |_| AppConfig::default()));
            let peers = peers.clone();
            fn_service(move |io: actix_rt::net::TcpStream| {
                let peers = peers.clone();
                async move {
                    let peer = io.peer_addr().ok();
                    // One address cannot take every slot: past its share it is closed at once.
                    let guard = peer.and_then(|p| peers.admit(p.ip())).ok_or_else(|| {
                        actix_http::error::DispatchError::Io(std::io::Error::new(
                            std::io::ErrorKind::ConnectionRefused,
                            "too many connections from one address",
                        ))
                    })?;
                    let _ = io.set_nodelay(true);
                    Ok::<_, actix_http::error::DispatchError>((conn::Paced::new(io).holding(guard), peer))
                }
            })
            .and_then(http)
        })?
        .run();
    Ok(server)
}

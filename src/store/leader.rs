//! Who runs the single-writer duties (the retention purge, alert delivery, storms, node
//! lost/back) when several nodes share a PostgreSQL database: the node holding a session-level
//! advisory lock on a connection of its own. A thread (diesel blocks) tries to take the lock
//! every [`TRY_EVERY`] and, while it holds it, checks the connection is alive; the StoreActor
//! hears of every change ([`Leadership`]).
//!
//! When the leader's process dies, its connection closes and PostgreSQL lets the lock go at
//! once; when its machine or network dies, the server's TCP keepalives (set on the session)
//! end the session within about 20 s, and the node itself, its connection gone, stops
//! counting itself leader. Another node takes the lock at its next try: within 30 s.
//! A SQLite database has one node, always the leader (no thread).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::config::PgUrl;

/// The advisory lock's key (any 64-bit number no other application of the database uses).
pub const LEADER_LOCK: i64 = 7_406_350_613;
pub const TRY_EVERY: Duration = Duration::from_secs(2);

/// This node now is (or no longer is) the leader.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Leadership(pub bool);

/// Stops the lock thread (and lets the lock go, so another node takes over at once).
pub struct LeaderLock {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LeaderLock {
    pub fn start(url: PgUrl, node: String, to: Recipient<Leadership>) -> LeaderLock {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("leader-lock".into())
            .spawn(move || run(&url, &node, &to, &stopping))
            .expect("start the leader-lock thread");
        LeaderLock { stop, thread: Some(thread) }
    }

    /// Lets the lock go (closes its connection) and waits for the thread.
    pub fn release(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn connect(url: &PgUrl, node: &str) -> Result<PgConnection, String> {
    let mut conn = PgConnection::establish(&url.expose()).map_err(|e| url.redact(&e.to_string()))?;
    let name = format!("llm-monitor/{node}").replace('\'', "''");
    conn.batch_execute(&format!(
        "SET application_name = '{name}'; SET statement_timeout = '10s'; \
         SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 5;"
    ))
    .map_err(|e| url.redact(&e.to_string()))?;
    Ok(conn)
}

fn run(url: &PgUrl, node: &str, to: &Recipient<Leadership>, stop: &AtomicBool) {
    let mut conn: Option<PgConnection> = None;
    let mut leader = false;
    let mut said_error = false;
    while !stop.load(Ordering::SeqCst) {
        let now_leader = match conn.as_mut() {
            None => {
                match connect(url, node) {
                    Ok(c) => {
                        conn = Some(c);
                        said_error = false;
                    }
                    Err(e) if !said_error => {
                        log::warn!("leader: cannot connect to the database: {e}");
                        said_error = true;
                    }
                    Err(_) => {}
                }
                false
            }
            Some(c) if leader => diesel::sql_query("SELECT 1").execute(c).is_ok(),
            Some(c) => diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
                "pg_try_advisory_lock({LEADER_LOCK})"
            )))
            .get_result::<bool>(c)
            .unwrap_or(false),
        };
        if leader && !now_leader {
            // Its session may be gone (and the lock with it): start afresh.
            conn = None;
        }
        if now_leader != leader {
            leader = now_leader;
            if leader {
                log::info!("leader: this node ({node}) is the leader: it purges and sends alerts");
            } else {
                log::warn!("leader: this node ({node}) is no longer the leader");
            }
            to.do_send(Leadership(leader));
        }
        // Sleep in short steps, so a release is quick.
        for _ in 0..(TRY_EVERY.as_millis() / 100) {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    drop(conn);
    if leader {
        to.do_send(Leadership(false));
    }
}

//! `ops.rs` on a PgConnection.

pub type Conn = diesel::PgConnection;

// The same statements for each backend, on purpose: see `sql/mod.rs`.
#[allow(clippy::duplicate_mod)]
#[path = "ops.rs"]
mod ops;
pub use ops::*;

//! `ops.rs` on a SqliteConnection.

pub type Conn = diesel::SqliteConnection;

// The same statements for each backend, on purpose: see `sql/mod.rs`.
#[allow(clippy::duplicate_mod)]
#[path = "ops.rs"]
mod ops;
pub use ops::*;

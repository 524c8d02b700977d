//! Logging: env_logger as `RUST_LOG` says (`info` by default), with the libraries that could
//! log a request's headers (the HTTP/1 and HTTP/2 client layers) or their own reaction to our
//! log file being written (the file watcher) capped, whatever `RUST_LOG` asks for.

use log::{LevelFilter, Log, Metadata, Record};

/// The most each of these targets may log. `h2` and `awc` print request heads at debug and
/// trace; `notify` logs every file event, including the writes of a log file kept beside the
/// config, which would feed on itself.
const CAPS: &[(&str, LevelFilter)] = &[
    ("h2", LevelFilter::Info),
    ("awc", LevelFilter::Info),
    ("actix_http::client", LevelFilter::Info),
    ("notify", LevelFilter::Warn),
    ("inotify", LevelFilter::Warn),
    ("mio", LevelFilter::Info),
];

struct Capped {
    inner: env_logger::Logger,
}

/// Whether a record of `target` at `level` passes the caps.
pub fn allowed(target: &str, level: log::Level) -> bool {
    CAPS.iter()
        .filter(|(prefix, _)| {
            target == *prefix || target.strip_prefix(prefix).is_some_and(|rest| rest.starts_with("::"))
        })
        .all(|(_, cap)| level <= *cap)
}

impl Log for Capped {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        allowed(metadata.target(), metadata.level()) && self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Installs the logger (once, at start-up).
pub fn init() {
    let inner = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Capped { inner })).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Level;

    #[test]
    fn header_printing_and_watcher_targets_are_capped() {
        let rows = [
            ("h2::codec::framed_write", Level::Debug, false),
            ("h2", Level::Trace, false),
            ("h2", Level::Info, true),
            ("awc::client::h2proto", Level::Trace, false),
            ("actix_http::client::pool", Level::Debug, false),
            ("notify::inotify", Level::Trace, false),
            ("notify::inotify", Level::Warn, true),
            ("h2o", Level::Trace, true),
            ("llm_monitor::probe::actor", Level::Trace, true),
            ("actix_http::h1::dispatcher", Level::Trace, true),
        ];
        for (target, level, allowed_) in rows {
            assert_eq!(allowed(target, level), allowed_, "{target} {level}");
        }
    }
}

//! Open files. Each monitor keeps up to one pooled connection open per host it probes, so a
//! large config needs more than the usual soft limit of 1,024: at start the soft limit is
//! raised to the hard one (as Go and nginx's `worker_rlimit_nofile` do), and a config that
//! could outgrow it is named in the log.

/// File descriptors the daemon needs beside its probe connections: the database and its WAL,
/// the listener and a few HTTP clients, the watcher, logs.
const BESIDE_PROBES: u64 = 256;

/// The soft and hard limits on open files, if the system says.
pub fn open_files() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    Some((limit.rlim_cur, limit.rlim_max))
}

/// Raises the soft limit on open files to the hard one; gives (before, after).
pub fn raise_open_files() -> Option<(u64, u64)> {
    let (soft, hard) = open_files()?;
    if soft >= hard {
        return Some((soft, soft));
    }
    let limit = libc::rlimit { rlim_cur: hard, rlim_max: hard };
    // SAFETY: setrlimit reads the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Some((soft, soft));
    }
    Some((soft, hard))
}

/// Gives freed heap memory back to the system. glibc keeps what a large config's parse freed
/// (its YAML tree is several times the file's size), so without this a 10,000-monitor daemon
/// would hold tens of MB it no longer uses. A no-op where the allocator is not glibc's.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A warning if `monitors` could need more open files than the limit allows.
pub fn check_open_files(monitors: usize) -> Option<String> {
    let (soft, _) = open_files()?;
    let needed = (monitors as u64).saturating_add(BESIDE_PROBES);
    (needed > soft).then(|| {
        format!(
            "{monitors} monitors may keep {monitors} connections open, and the daemon needs about {BESIDE_PROBES} \
             files beside them, but the limit on open files is {soft}: probes will fail with \
             \"Too many open files\"; raise it (LimitNOFILE= in the unit, --ulimit nofile= for a container)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_beyond_the_limit_is_named() {
        let (before, after) = raise_open_files().unwrap();
        assert!(after >= before);
        assert_eq!(open_files().unwrap().0, after);
        if after == libc::RLIM_INFINITY {
            return;
        }
        let warning = check_open_files(after as usize).expect("more monitors than files");
        assert!(warning.contains(&format!("{after} monitors")), "{warning}");
        assert!(warning.contains(&format!("is {after}")), "{warning}");
    }
}

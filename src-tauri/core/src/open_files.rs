//! The process's limit on open files. A running mailbox holds a socket per Graph request in
//! flight, the messages being written into a local folder and its IMAP connections, so a
//! thousand mailboxes at once (issue 17.3) need several thousand descriptors: more than the
//! soft limit many systems start programs with (1,024 on most Linux distributions, 256 on
//! macOS), while the hard limit a user may raise it to is far higher
//! (getrlimit(2): "the soft limit is the value that the kernel enforces ... an unprivileged
//! process may ... raise [it] up to the hard limit").

/// The most descriptors asked for: macOS refuses a soft limit above `OPEN_MAX` (10,240,
/// `<sys/syslimits.h>`) even when the hard limit is unlimited; elsewhere 65,536 is far above
/// what a run uses.
#[cfg(unix)]
const WANTED: u64 = if cfg!(target_os = "macos") {
    10_240
} else {
    65_536
};

/// Raises the soft limit on open files towards the hard limit (at most `WANTED`); never
/// lowers it, and says what it did in the log (info when raised). Returns the soft limit
/// before and after, or `None` where there is no such limit (Windows) or it cannot be read or
/// set (the run goes on with the limit it has).
pub fn raise_soft_limit() -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        let (soft, hard) = limits()?;
        let wanted = hard.min(WANTED);
        if soft >= wanted {
            tracing::debug!("open files: the soft limit is {soft}");
            return Some((soft, soft));
        }
        if set_soft(wanted, hard).is_none() {
            tracing::warn!("open files: cannot raise the soft limit from {soft} to {wanted}");
            return None;
        }
        let now = limits()?.0;
        tracing::info!("open files: the soft limit raised from {soft} to {now}");
        Some((soft, now))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The soft and hard limits on open files.
#[cfg(unix)]
fn limits() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through a valid pointer.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    // `rlim_t` is u64 on 64-bit targets, u32 on some 32-bit ones.
    #[allow(clippy::unnecessary_cast)]
    let limits = (limit.rlim_cur as u64, limit.rlim_max as u64);
    (read == 0).then_some(limits)
}

#[cfg(unix)]
fn set_soft(soft: u64, hard: u64) -> Option<()> {
    let limit = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: setrlimit reads one `rlimit` through a valid pointer.
    let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    (set == 0).then_some(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_low_soft_limit_is_raised_towards_the_hard_one_and_never_lowered() {
        let (_, hard) = limits().unwrap();
        set_soft(256.min(hard), hard).unwrap();
        let (before, after) = raise_soft_limit().unwrap();
        assert_eq!(before, 256.min(hard));
        assert_eq!(after, hard.min(WANTED));
        assert_eq!(limits().unwrap().0, after);
        // Already there: unchanged.
        assert_eq!(raise_soft_limit().unwrap(), (after, after));
    }
}

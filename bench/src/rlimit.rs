//! Raising RLIMIT_NOFILE: every simulated client and every server session is a socket.

/// Raises the soft (and if needed the hard) limit on open files to at least `want`.
/// Returns the soft limit in effect afterwards.
///
/// Raising the hard limit needs root (CAP_SYS_RESOURCE); without it the soft limit goes as
/// high as the hard limit allows and the caller sees the smaller number.
pub fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur >= want {
            return lim.rlim_cur;
        }
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max.max(want),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return want;
        }
        let soft = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &soft) == 0 {
            return lim.rlim_max;
        }
        lim.rlim_cur
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn never_lowers_the_limit() {
        let now = super::raise_nofile(0);
        assert!(super::raise_nofile(16) >= 16.min(now));
    }
}

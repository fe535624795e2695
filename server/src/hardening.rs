//! Process-level protection for a process that holds keys in memory: no core dumps (the process
//! is marked not dumpable and its core size limit is zero), so a crash or a `gcore` by another
//! user cannot write provider keys or the master keys to disk.

/// Turns core dumps off for this process; what could not be done is returned, to be logged.
/// Linux only (elsewhere it does nothing and says so).
pub fn disable_core_dumps() -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::resource::{setrlimit, Resource};
        let mut failed = Vec::new();
        if let Err(e) = nix::sys::prctl::set_dumpable(false) {
            failed.push(format!("PR_SET_DUMPABLE: {e}"));
        }
        if let Err(e) = setrlimit(Resource::RLIMIT_CORE, 0, 0) {
            failed.push(format!("RLIMIT_CORE: {e}"));
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err("core dumps can only be turned off on Linux".to_owned())
    }
}

/// Whether this process is marked not dumpable.
pub fn is_dumpable() -> bool {
    #[cfg(target_os = "linux")]
    {
        nix::sys::prctl::get_dumpable().unwrap_or(true)
    }
    #[cfg(not(target_os = "linux"))]
    {
        true
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn core_dumps_are_off_after_the_call() {
        assert_eq!(super::disable_core_dumps(), Ok(()));
        assert!(!super::is_dumpable());
        let (soft, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_CORE).expect("getrlimit");
        assert_eq!((soft, hard), (0, 0));
    }
}

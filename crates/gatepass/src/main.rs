//! The `gatepass` binary: reads `.env`, parses the command line, runs it.

/// mimalloc instead of glibc's malloc: the request path allocates small, short-lived
/// buffers on every request, and mimalloc serves them for about a sixth less CPU per
/// request, with less memory once tuned by [`return_freed_memory_to_the_os`] (BENCHMARKS.md,
/// `scripts/bench-compare`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // A malformed .env is worth saying; a missing one is normal.
    if let Err(e) = gatepass::config::load_dotenv() {
        eprintln!("warning: could not read .env: {e}");
    }
    let cli = gatepass::cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(gatepass::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// mimalloc's options (`mi_option_e` in mimalloc.h) that `libmimalloc-sys` does not name.
/// The unit tests below check them against the options the crate does name.
mod mi_option {
    /// Delay in ms before freed memory is given back to the OS (default 10).
    pub const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    /// Whether arenas are committed eagerly (default 2: where the OS overcommits).
    pub const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
}

/// Argon2id memory comes in blocks of its whole memory cost (19 MiB by default): the
/// hashing threads keep one each while busy and free it when idle, and one-off hashes (the
/// start-up dummy, costlier legacy hashes, scrypt imports) allocate their own. mimalloc's
/// defaults keep freed memory committed for a while and commit arenas eagerly, which left
/// the idle server at 54 MB instead of 26 MB; giving memory back at once and committing on
/// demand costs no measurable CPU on the request path (BENCHMARKS.md). The `MIMALLOC_*`
/// variables still override either.
///
/// It must run before the first allocation, which creates the first arena with the
/// setting of that moment, and Rust's runtime allocates before `main`: so it is a
/// constructor, run by the loader, and allocates nothing itself.
#[cfg(target_os = "linux")]
extern "C" fn return_freed_memory_to_the_os() {
    // SAFETY: getenv reads the environment, which no other thread can be changing yet;
    // mi_option_set only stores an option value.
    unsafe {
        if libc::getenv(c"MIMALLOC_PURGE_DELAY".as_ptr()).is_null() {
            libmimalloc_sys::mi_option_set(mi_option::PURGE_DELAY, 0);
        }
        if libc::getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() {
            libmimalloc_sys::mi_option_set(mi_option::ARENA_EAGER_COMMIT, 0);
        }
    }
}

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static TUNE_ALLOCATOR: extern "C" fn() = return_freed_memory_to_the_os;

#[cfg(test)]
mod tests {
    use super::mi_option;
    use libmimalloc_sys as mi;

    #[test]
    fn mimalloc_option_indices_sit_between_the_options_the_crate_names() {
        // mimalloc.h: verbose (2), deprecated_eager_commit, arena_eager_commit, purge_decommits,
        // allow_large_os_pages (6); ... reserve_os_memory (9), five deprecated options,
        // purge_delay, use_numa_nodes (16). The crate's constants move with the vendored
        // header.
        assert_eq!(mi::mi_option_verbose + 2, mi_option::ARENA_EAGER_COMMIT);
        assert_eq!(mi::mi_option_large_os_pages - 2, mi_option::ARENA_EAGER_COMMIT);
        assert_eq!(mi::mi_option_reserve_os_memory + 6, mi_option::PURGE_DELAY);
        assert_eq!(mi::mi_option_use_numa_nodes - 1, mi_option::PURGE_DELAY);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_constructor_set_both_options_before_main() {
        // SAFETY: reading an option has no preconditions.
        let (delay, eager) =
            unsafe { (mi::mi_option_get(mi_option::PURGE_DELAY), mi::mi_option_get(mi_option::ARENA_EAGER_COMMIT)) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(delay, 0);
        }
        if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
            assert_eq!(eager, 0);
        }
    }
}

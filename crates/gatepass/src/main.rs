//! The `gatepass` binary: reads `.env`, parses the command line, runs it.

fn main() -> std::process::ExitCode {
    return_freed_memory_to_the_os();
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

/// Argon2id memory comes in blocks of its whole memory cost (19 MiB by default): the
/// hashing threads keep one each while busy and free it when idle, and one-off hashes
/// (the start-up dummy, costlier legacy hashes, scrypt imports) allocate their own. glibc's
/// adaptive threshold would serve such blocks from per-thread arenas and keep them after
/// the free (RSS stayed at ~96 MB after a login burst instead of ~20 MB); a fixed
/// threshold makes them plain mmap/munmap, returned to the OS as soon as they are freed.
fn return_freed_memory_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes glibc's allocator; it runs before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

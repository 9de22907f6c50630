//! The `caseledger` binary: a shim over [`api::cli::run_from_env`].

/// mimalloc: scans of the log allocate and free millions of small buffers
/// across threads, where it costs far less than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    api::cli::run_from_env()
}

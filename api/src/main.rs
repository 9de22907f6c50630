//! The `caseledger` binary: a shim over [`api::cli::run_from_env`].

fn main() -> std::process::ExitCode {
    api::cli::run_from_env()
}

//! The caseledger program, built inside the test package so the black-box
//! tests can spawn it; identical to the `caseledger` binary.

fn main() -> std::process::ExitCode {
    api::cli::run_from_env()
}

//! Compiles the conformance kit into the tests only when
//! `CASELEDGER_TEST_KURRENTDB` names a server, so that a run without one
//! never counts the kit's cases as passed.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kurrentdb_server)");
    println!("cargo::rerun-if-env-changed=CASELEDGER_TEST_KURRENTDB");
    let named = std::env::var("CASELEDGER_TEST_KURRENTDB")
        .map(|url| !url.trim().is_empty())
        .unwrap_or(false);
    if named {
        println!("cargo::rustc-cfg=kurrentdb_server");
    }
}

//! caseledger projections crate.

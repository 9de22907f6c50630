//! caseledger migrations crate.

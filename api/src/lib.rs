//! caseledger API.
pub mod mail;

//! caseledger API.

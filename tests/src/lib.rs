//! Black-box tests of the caseledger binary live in tests/tests/.

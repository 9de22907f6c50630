//! How the client's errors become the port's: a wrong expected version is a
//! conflict, a deleted stream is [`StoreError::StreamDeleted`], a server out
//! of reach, without a leader or past its deadline is
//! [`StoreError::Unavailable`] (the API answers 503), anything else is
//! [`StoreError::Backend`].

use kurrentdb::Error;
use store::{CurrentRevision, StoreError};
use tonic::Code;

/// What a client error means to the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The stream was not as expected; `None` when the server did not say
    /// what it was (a tombstone's conflict says it only in its message).
    WrongExpectedVersion(Option<CurrentRevision>),
    /// The stream is tombstoned.
    Deleted,
    /// The stream does not exist.
    NotFound,
    /// The server cannot be reached now, has no leader, or ran out of time.
    Unavailable(String),
    /// Anything else.
    Backend(String),
}

/// Classify a client error.
pub fn classify(error: &Error) -> Failure {
    match error {
        Error::WrongExpectedVersion { current, .. } => {
            Failure::WrongExpectedVersion(Some(crate::mapping::current_revision(*current)))
        }
        Error::ResourceDeleted => Failure::Deleted,
        Error::ResourceNotFound => Failure::NotFound,
        Error::ConnectionClosed
        | Error::GrpcConnectionError(_)
        | Error::NotLeaderException(_)
        | Error::DeadlineExceeded => Failure::Unavailable(error.to_string()),
        // kurrentdb folds the gRPC codes Unavailable, Internal, DataLoss and
        // Unknown into one variant; only the first is "try again later".
        Error::ServerError(status) if status.contains("status: Unavailable") => {
            Failure::Unavailable(error.to_string())
        }
        Error::Grpc { code, message } => match code {
            Code::FailedPrecondition if is_wrong_expected_version(message) => {
                Failure::WrongExpectedVersion(actual_version(message))
            }
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Aborted
            | Code::ResourceExhausted => Failure::Unavailable(error.to_string()),
            _ => Failure::Backend(error.to_string()),
        },
        Error::AccessDenied => Failure::Backend(
            "KurrentDB denied access: the connection string's user must be allowed to read and write the namespace's streams and to read $all (an admin by default)".to_owned(),
        ),
        other => Failure::Backend(other.to_string()),
    }
}

/// Whether a gRPC message is KurrentDB's wrong-expected-version refusal (a
/// delete or tombstone reports it as a failed precondition).
fn is_wrong_expected_version(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("wrongexpectedversion") || lower.contains("wrong expected version")
}

/// The actual version a wrong-expected-version message names (`Actual
/// version: 3`; `-1` for no stream).
pub fn actual_version(message: &str) -> Option<CurrentRevision> {
    let lower = message.to_ascii_lowercase();
    let at = lower.find("actual version:")? + "actual version:".len();
    let number: String = lower[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    match number.parse::<i64>().ok()? {
        -1 => Some(CurrentRevision::NoStream),
        revision if revision >= 0 => Some(CurrentRevision::Current(revision as u64)),
        _ => None,
    }
}

/// The port's error for a failure on `stream` (a KurrentDB stream name is
/// never shown; the port's name is), for failures that are not conflicts.
pub fn to_store_error(failure: Failure, stream: &str) -> StoreError {
    match failure {
        Failure::Deleted => StoreError::StreamDeleted {
            stream: stream.to_owned(),
        },
        Failure::Unavailable(message) => StoreError::Unavailable(format!("KurrentDB: {message}")),
        Failure::Backend(message) => StoreError::Backend(format!("KurrentDB: {message}")),
        Failure::NotFound => StoreError::Backend(format!("KurrentDB: no stream {stream}")),
        Failure::WrongExpectedVersion(_) => StoreError::Backend(format!(
            "KurrentDB: unexpected wrong expected version on {stream}"
        )),
    }
}

/// The port's error for a client error that is not a conflict.
pub fn from_kurrent(error: &Error, stream: &str) -> StoreError {
    to_store_error(classify(error), stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kurrentdb::{Endpoint, StreamState};

    #[test]
    fn a_wrong_expected_version_is_a_conflict_with_the_actual_revision() {
        assert_eq!(
            classify(&Error::WrongExpectedVersion {
                expected: StreamState::StreamRevision(0),
                current: kurrentdb::CurrentRevision::Current(1),
            }),
            Failure::WrongExpectedVersion(Some(CurrentRevision::Current(1)))
        );
        assert_eq!(
            classify(&Error::WrongExpectedVersion {
                expected: StreamState::StreamExists,
                current: kurrentdb::CurrentRevision::NoStream,
            }),
            Failure::WrongExpectedVersion(Some(CurrentRevision::NoStream))
        );
    }

    #[test]
    fn a_tombstone_conflict_is_read_from_its_message() {
        let grpc = |message: &str| Error::Grpc {
            code: Code::FailedPrecondition,
            message: message.to_owned(),
        };
        assert_eq!(
            classify(&grpc(
                "Append failed due to WrongExpectedVersion. Stream: ns/doomed, Expected version: 0, Actual version: 1"
            )),
            Failure::WrongExpectedVersion(Some(CurrentRevision::Current(1)))
        );
        assert_eq!(
            classify(&grpc(
                "Delete failed due to WrongExpectedVersion. Stream: ns/absent, Expected version: -4, Actual version: -1"
            )),
            Failure::WrongExpectedVersion(Some(CurrentRevision::NoStream))
        );
        assert_eq!(
            classify(&grpc("Wrong expected version")),
            Failure::WrongExpectedVersion(None)
        );
        assert!(matches!(
            classify(&grpc("something else")),
            Failure::Backend(_)
        ));
    }

    #[test]
    fn actual_versions_parse_or_say_nothing() {
        assert_eq!(
            actual_version("Actual version: 12"),
            Some(CurrentRevision::Current(12))
        );
        assert_eq!(
            actual_version("... actual version:-1."),
            Some(CurrentRevision::NoStream)
        );
        assert_eq!(actual_version("Actual version: x"), None);
        assert_eq!(actual_version("Actual version: -2"), None);
        assert_eq!(actual_version("no version here"), None);
    }

    #[test]
    fn deleted_streams_and_missing_streams_are_told_apart() {
        assert_eq!(classify(&Error::ResourceDeleted), Failure::Deleted);
        assert_eq!(classify(&Error::ResourceNotFound), Failure::NotFound);
        assert!(matches!(
            from_kurrent(&Error::ResourceDeleted, "doomed"),
            StoreError::StreamDeleted { stream } if stream == "doomed"
        ));
    }

    #[test]
    fn a_server_out_of_reach_is_unavailable() {
        let unavailable = [
            Error::ConnectionClosed,
            Error::DeadlineExceeded,
            Error::NotLeaderException(Endpoint {
                host: "node2".to_owned(),
                port: 2113,
            }),
            Error::GrpcConnectionError(kurrentdb::GrpcConnectionError::MaxDiscoveryAttemptReached(
                10,
            )),
            Error::GrpcConnectionError(kurrentdb::GrpcConnectionError::Grpc(
                "connection refused".to_owned(),
            )),
            Error::ServerError(
                "status: Unavailable, message: \"tcp connect error\", details: [], metadata: MetadataMap { headers: {} }".to_owned(),
            ),
            Error::Grpc {
                code: Code::Unavailable,
                message: "not ready".to_owned(),
            },
            Error::Grpc {
                code: Code::DeadlineExceeded,
                message: String::new(),
            },
            Error::Grpc {
                code: Code::Cancelled,
                message: String::new(),
            },
            Error::Grpc {
                code: Code::ResourceExhausted,
                message: String::new(),
            },
            Error::Grpc {
                code: Code::Aborted,
                message: String::new(),
            },
        ];
        for error in unavailable {
            assert!(
                matches!(from_kurrent(&error, "s"), StoreError::Unavailable(_)),
                "{error:?}"
            );
        }
    }

    #[test]
    fn everything_else_is_a_backend_failure() {
        let backend = [
            Error::ServerError(
                "status: Internal, message: \"boom\", details: [], metadata: MetadataMap { headers: {} }".to_owned(),
            ),
            Error::AccessDenied,
            Error::UnsupportedFeature,
            Error::InternalParsingError("bad".to_owned()),
            Error::IllegalStateError("bad".to_owned()),
            Error::Grpc {
                code: Code::InvalidArgument,
                message: "bad".to_owned(),
            },
        ];
        for error in backend {
            assert!(
                matches!(from_kurrent(&error, "s"), StoreError::Backend(_)),
                "{error:?}"
            );
        }
        assert!(
            from_kurrent(&Error::AccessDenied, "s")
                .to_string()
                .contains("$all")
        );
    }
}

//! Where the port's data lives in KurrentDB: the namespace, the name of
//! every stream the adapter writes, and the connection string as given to
//! `--store` (with the namespace parameter taken out, and passwords kept
//! out of messages).

use store::StoreError;
use uuid::Uuid;

/// The namespace when the connection string names none.
pub const DEFAULT_NAMESPACE: &str = "caseledger";

/// The connection-string parameter that names the namespace; the client
/// itself never sees it.
pub const NAMESPACE_PARAMETER: &str = "caseledgerNamespace";

/// Longest namespace.
pub const MAX_NAMESPACE: usize = 64;

/// The streams of one namespace. A port stream `s` is the KurrentDB stream
/// `<namespace>/s`; what the adapter keeps beside the log lives in streams
/// that start with `<namespace>~`, which no port stream can be, so that
/// reading `$all` by the prefix `<namespace>/` sees the port's events and
/// nothing else (neither another namespace's nor a `$` system stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    namespace: String,
    events_prefix: String,
}

impl Names {
    /// The names of `namespace`: 1 to [`MAX_NAMESPACE`] ASCII letters,
    /// digits, `_`, `-` or `.`.
    pub fn new(namespace: &str) -> Result<Names, StoreError> {
        let valid = !namespace.is_empty()
            && namespace.len() <= MAX_NAMESPACE
            && namespace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid {
            return Err(StoreError::InvalidInput(format!(
                "a KurrentDB namespace has 1 to {MAX_NAMESPACE} letters, digits, '_', '-' or '.', not {namespace:?}"
            )));
        }
        Ok(Names {
            namespace: namespace.to_owned(),
            events_prefix: format!("{namespace}/"),
        })
    }

    /// The namespace itself.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The prefix every event stream of the namespace starts with.
    pub fn events_prefix(&self) -> &str {
        &self.events_prefix
    }

    /// The KurrentDB stream of the port's stream `stream`.
    pub fn event_stream(&self, stream: &str) -> String {
        format!("{}{stream}", self.events_prefix)
    }

    /// The port's stream of a KurrentDB stream; `None` for a stream outside
    /// the namespace's events (another namespace, a system stream, the
    /// adapter's own streams).
    pub fn port_stream<'a>(&self, kurrent_stream: &'a str) -> Option<&'a str> {
        kurrent_stream
            .strip_prefix(self.events_prefix.as_str())
            .filter(|stream| !stream.is_empty())
    }

    /// The stream of the hash chain: one event per linked event, in `$all`
    /// order.
    pub fn chain_stream(&self) -> String {
        format!("{}~chain", self.namespace)
    }

    /// The stream of the value `name` beside the log.
    pub fn value_stream(&self, name: &str) -> String {
        format!("{}~value/{name}", self.namespace)
    }

    /// The stream of the data key `id` (tombstoned when it is destroyed).
    pub fn key_stream(&self, id: Uuid) -> String {
        format!("{}~key/{}", self.namespace, id.as_hyphenated())
    }

    /// The index of every data key ever put: one event per key, in the
    /// order they were put.
    pub fn key_index_stream(&self) -> String {
        format!("{}~keys", self.namespace)
    }
}

/// A `--store` connection string split into what the client parses and the
/// namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The connection string without [`NAMESPACE_PARAMETER`].
    pub client_url: String,
    /// The namespace it names, or [`DEFAULT_NAMESPACE`].
    pub namespace: String,
}

pub use store::location::{is_kurrentdb_url, redacted};

/// Split `url` into the client's connection string and the namespace.
pub fn parse_location(url: &str) -> Result<Location, StoreError> {
    let url = url.trim();
    if !is_kurrentdb_url(url) {
        return Err(StoreError::InvalidInput(format!(
            "not a KurrentDB connection string: {}",
            redacted(url)
        )));
    }
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut namespace = None;
    let mut kept = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key.eq_ignore_ascii_case(NAMESPACE_PARAMETER) {
            namespace = Some(value.to_owned());
        } else {
            kept.push(pair);
        }
    }
    let namespace = namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    Names::new(&namespace)?;
    let client_url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(Location {
        client_url,
        namespace,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_streams_live_under_the_namespace_and_map_back_one_to_one() {
        let names = Names::new("caseledger").unwrap();
        for stream in ["account-1f2e", "a/b", "x~y", "$odd", "-"] {
            let kurrent = names.event_stream(stream);
            assert!(kurrent.starts_with("caseledger/"));
            assert_eq!(names.port_stream(&kurrent), Some(stream));
        }
    }

    #[test]
    fn streams_beside_the_log_and_foreign_streams_are_not_port_streams() {
        let names = Names::new("caseledger").unwrap();
        let id = Uuid::from_u128(7);
        for other in [
            names.chain_stream(),
            names.value_stream("outbox"),
            names.key_stream(id),
            names.key_index_stream(),
            "$stats-127.0.0.1:2113".to_owned(),
            "$$caseledger/account-1".to_owned(),
            "caseledger2/account-1".to_owned(),
            "caseledger/".to_owned(),
            "other/account-1".to_owned(),
        ] {
            assert_eq!(names.port_stream(&other), None, "{other}");
        }
        assert_eq!(
            names.key_stream(id),
            "caseledger~key/00000000-0000-0000-0000-000000000007"
        );
    }

    #[test]
    fn namespaces_cannot_reach_into_one_another() {
        for bad in ["", "a/b", "a~b", "$all", "with space", &"n".repeat(65)] {
            assert!(
                matches!(Names::new(bad), Err(StoreError::InvalidInput(_))),
                "{bad:?}"
            );
        }
        for good in ["caseledger", "test_0190c0de", "a.b-c"] {
            assert_eq!(Names::new(good).unwrap().namespace(), good);
        }
    }

    #[test]
    fn the_namespace_parameter_is_taken_out_of_the_connection_string() {
        let plain = parse_location("esdb://localhost:2113?tls=false").unwrap();
        assert_eq!(plain.client_url, "esdb://localhost:2113?tls=false");
        assert_eq!(plain.namespace, DEFAULT_NAMESPACE);
        let named = parse_location(
            "kurrentdb://admin:pw@node1:2113,node2:2113?tls=false&caseledgerNamespace=staging&nodePreference=leader",
        )
        .unwrap();
        assert_eq!(
            named.client_url,
            "kurrentdb://admin:pw@node1:2113,node2:2113?tls=false&nodePreference=leader"
        );
        assert_eq!(named.namespace, "staging");
        let only = parse_location("esdb://h?caseledgernamespace=t1").unwrap();
        assert_eq!(only.client_url, "esdb://h");
        assert_eq!(only.namespace, "t1");
        let error = parse_location("esdb://u:secret@h?caseledgerNamespace=a/b").unwrap_err();
        assert!(matches!(error, StoreError::InvalidInput(_)));
        let error = parse_location("postgres://u:secret@h/db").unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redacted("esdb://admin:changeit@node:2113?tls=true"),
            "esdb://admin:***@node:2113?tls=true"
        );
        assert_eq!(redacted("esdb://admin@node:2113"), "esdb://admin@node:2113");
        assert_eq!(redacted("esdb://node:2113"), "esdb://node:2113");
    }
}

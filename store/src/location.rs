//! Event store addresses as operators give them (`--store`): which
//! adapter a URL names, and how to show one without its password. Shared
//! by the server, its jobs, the auditors' CLI and the adapters, so that
//! every tool takes the same spellings.

/// Whether `url` names a PostgreSQL database (`postgres://`,
/// `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    let url = url.trim();
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Whether `url` is a KurrentDB connection string: `esdb://`,
/// `kurrentdb://` and the client's other spellings `kurrent://`, `kdb://`,
/// each also `+discover`; recognised whether or not a build can open one.
pub fn is_kurrentdb_url(url: &str) -> bool {
    let Some((scheme, _)) = url.trim().split_once("://") else {
        return false;
    };
    let scheme = scheme.to_ascii_lowercase();
    let base = scheme.strip_suffix("+discover").unwrap_or(&scheme);
    matches!(base, "esdb" | "kurrentdb" | "kurrent" | "kdb")
}

/// `url` with any password replaced by `***`.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_names_its_adapter() {
        for url in [
            "esdb://localhost:2113?tls=false",
            "esdb+discover://cluster.example:2113",
            "kurrentdb://admin:changeit@localhost:2113",
            "kurrentdb+discover://cluster.example",
            "KurrentDB://host",
            "kurrent://host",
            "kdb+discover://host",
            // As the auditors' CLI has always taken them.
            "esdb://node:2113?tls=false",
            "esdb+discover://cluster:2113",
            "kurrentdb://auditor:pw@node:2113",
            "KurrentDB+discover://cluster",
        ] {
            assert!(is_kurrentdb_url(url), "{url}");
            assert!(!is_postgres_url(url), "{url}");
        }
        for url in ["postgres://x@y/z", "postgresql://y/z"] {
            assert!(is_postgres_url(url), "{url}");
            assert!(!is_kurrentdb_url(url), "{url}");
        }
        for url in [
            "sqlite:/tmp/x",
            "sqlite:/x",
            "esdbx://host",
            "esdbx://node",
            "http://host",
            "esdb",
            "",
        ] {
            assert!(!is_kurrentdb_url(url) && !is_postgres_url(url), "{url}");
        }
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redacted("esdb://admin:changeit@node:2113?tls=true"),
            "esdb://admin:***@node:2113?tls=true"
        );
        assert_eq!(
            redacted("postgres://app:secret@db:5432/ledger"),
            "postgres://app:***@db:5432/ledger"
        );
        assert_eq!(redacted("esdb://admin@node:2113"), "esdb://admin@node:2113");
        assert_eq!(redacted("esdb://node:2113"), "esdb://node:2113");
    }
}

//! The connection URL: what tokio-postgres parses itself, the TLS modes it
//! does not know (`verify-ca`, `verify-full`, `sslrootcert`), the rustls
//! connector, and the endpoint named in errors (host, port, database; never
//! a user or password).

use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use store::StoreError;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How the connection is encrypted, after libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP (`disable`, and the default when the URL says nothing).
    Disable,
    /// TLS when the server offers it, the certificate unchecked (`prefer`).
    Prefer,
    /// TLS always, the certificate unchecked, as libpq does (`require`).
    Require,
    /// TLS always, the chain checked against the roots and the host name
    /// against the certificate (`verify-full`; `verify-ca` is held to the
    /// same, stricter rule).
    VerifyFull,
}

/// A parsed connection URL.
pub(crate) struct Target {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
    pub mode: TlsMode,
    /// `host:port/database`, for messages.
    pub endpoint: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("endpoint", &self.endpoint)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Parse `url` (a `postgres://` URL or libpq's `key=value` form).
pub(crate) fn parse(url: &str) -> Result<Target, StoreError> {
    let mut mode = TlsMode::Disable;
    let mut root_file = None;
    let mut take = |key: &str, value: &str| -> Result<bool, StoreError> {
        match key {
            "sslmode" => {
                mode = match value {
                    "disable" | "allow" => TlsMode::Disable,
                    "prefer" => TlsMode::Prefer,
                    "require" => TlsMode::Require,
                    "verify-ca" | "verify-full" => TlsMode::VerifyFull,
                    other => {
                        return Err(StoreError::InvalidInput(format!(
                            "unknown sslmode {other:?} in the PostgreSQL URL"
                        )));
                    }
                };
                Ok(true)
            }
            "sslrootcert" => {
                root_file = Some(value.to_owned());
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let rest = if let Some((base, query)) = url
        .starts_with("postgres://")
        .then_some(url)
        .or_else(|| url.starts_with("postgresql://").then_some(url))
        .and_then(|url| url.split_once('?'))
    {
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(key, &percent_decode(value))? {
                kept.push(pair);
            }
        }
        if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else if url.contains("://") {
        url.to_owned()
    } else {
        let mut kept = Vec::new();
        for pair in url.split_whitespace() {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(key.trim(), value.trim_matches('\''))? {
                kept.push(pair);
            }
        }
        kept.join(" ")
    };
    let mut config = tokio_postgres::Config::from_str(&rest).map_err(|error| {
        StoreError::InvalidInput(format!("the PostgreSQL URL does not parse: {error}"))
    })?;
    config.ssl_mode(match mode {
        TlsMode::Disable => SslMode::Disable,
        TlsMode::Prefer => SslMode::Prefer,
        TlsMode::Require | TlsMode::VerifyFull => SslMode::Require,
    });
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    let endpoint = endpoint(&config);
    let tls = connector(mode, root_file.as_deref())?;
    Ok(Target {
        config,
        tls,
        mode,
        endpoint,
    })
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `host:port/database` of a configuration (the first host, as tried first).
fn endpoint(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{host}:{port}/{database}")
}

fn connector(mode: TlsMode, root_file: Option<&str>) -> Result<MakeRustlsConnect, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| StoreError::Backend(format!("TLS set-up: {error}")))?;
    let config = match mode {
        TlsMode::VerifyFull => {
            let mut roots = rustls::RootCertStore::empty();
            match root_file {
                Some(path) => {
                    let certificates = CertificateDer::pem_file_iter(path)
                        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
                        .map_err(|error| {
                            StoreError::InvalidInput(format!(
                                "sslrootcert {path} cannot be read: {error}"
                            ))
                        })?;
                    for certificate in certificates {
                        roots.add(certificate).map_err(|error| {
                            StoreError::InvalidInput(format!(
                                "sslrootcert {path} holds a bad certificate: {error}"
                            ))
                        })?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// `sslmode=require` as libpq reads it: the channel is encrypted, the
/// server's certificate is not checked (use `verify-full` for that). The
/// handshake's signatures are still verified.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_modes_tokio_postgres_does_not_know_are_taken_out_of_the_url() {
        let target = parse(
            "postgres://app:secret@db.example:6543/ledger?sslmode=verify-full&application_name=x",
        )
        .expect("parse");
        assert_eq!(target.mode, TlsMode::VerifyFull);
        assert_eq!(target.endpoint, "db.example:6543/ledger");
        assert_eq!(target.config.get_application_name(), Some("x"));
        assert_eq!(target.config.get_ssl_mode(), SslMode::Require);
        assert!(!format!("{target:?}").contains("secret"));
    }

    #[test]
    fn require_disable_and_the_key_value_form() {
        let target = parse("postgres://u@127.0.0.1/db?sslmode=require").expect("parse");
        assert_eq!(target.mode, TlsMode::Require);
        assert_eq!(target.endpoint, "127.0.0.1:5432/db");
        let target =
            parse("host=10.0.0.5 port=7000 dbname=events sslmode=disable user=u").expect("parse");
        assert_eq!(target.mode, TlsMode::Disable);
        assert_eq!(target.endpoint, "10.0.0.5:7000/events");
        assert_eq!(target.config.get_ssl_mode(), SslMode::Disable);
        assert!(matches!(
            parse("postgres://u@h/db?sslmode=sometimes"),
            Err(StoreError::InvalidInput(_))
        ));
        assert!(matches!(
            parse("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
            Err(StoreError::InvalidInput(message)) if message.contains("/nonexistent/ca.pem")
        ));
    }
}

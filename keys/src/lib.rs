//! Keys, and what is derived from them, for the server, its jobs and the
//! auditors' tools alike (nothing here knows HTTP). Named `keys` rather than
//! `secrets`: it holds keys to derive with, not credentials to look up. Today
//! the server secret: email and ID-porten keys for reservation stream names,
//! emailed codes (derived, never stored), session token digests, device
//! cookies and the CSRF tokens bound to sessions.

pub mod ring;

pub use ring::KeyRing;

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use domain::address::DeviceId;
use domain::{Email, FlowId};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Name of the secret file in the data dir.
pub const SECRET_FILE: &str = "secret.key";

/// Why `<data-dir>/secret.key` could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// There is no secret file.
    #[error("{} does not exist", path.display())]
    Missing { path: PathBuf },
    /// There is a file already where a new secret was to be written.
    #[error("{} exists already; it is never overwritten", path.display())]
    Exists { path: PathBuf },
    /// The file exists but could not be read.
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The data dir or the secret file could not be created.
    #[error("creating {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file exists but is not hex.
    #[error("{} is not hex", path.display())]
    NotHex {
        path: PathBuf,
        #[source]
        source: hex::FromHexError,
    },
    /// The file is hex but not 32 bytes.
    #[error("{} must hold 32 bytes", path.display())]
    WrongLength { path: PathBuf },
    /// Writing the fresh secret to the new file failed.
    #[error(transparent)]
    Write(std::io::Error),
}

/// Keyed hashing under the server secret.
#[derive(Clone)]
pub struct Keyer {
    secret: [u8; 32],
}

impl std::fmt::Debug for Keyer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyer(***)")
    }
}

impl Keyer {
    /// Keyed hashing under `secret` (32 bytes, as held in the secret file).
    pub fn new(secret: [u8; 32]) -> Keyer {
        Keyer { secret }
    }

    /// Load `<data-dir>/secret.key` (hex), creating it with fresh random bytes
    /// and owner-only permissions on first use.
    pub fn load_or_create(data_dir: &Path) -> Result<Keyer, SecretFileError> {
        std::fs::create_dir_all(data_dir).map_err(|source| SecretFileError::Create {
            path: data_dir.to_path_buf(),
            source,
        })?;
        Keyer::load_or_create_file(&data_dir.join(SECRET_FILE))
    }

    /// Load the secret file at `path` (hex), creating it with fresh random
    /// bytes and owner-only permissions when it does not exist.
    pub fn load_or_create_file(path: &Path) -> Result<Keyer, SecretFileError> {
        match Keyer::load_file(path) {
            Err(SecretFileError::Missing { .. }) => {}
            other => return other,
        }
        match Keyer::create_new(path) {
            // Another process created it first: use theirs.
            Err(SecretFileError::Exists { .. }) => Keyer::load_file(path),
            other => other,
        }
    }

    /// Load the secret file at `path` (hex); it must exist.
    pub fn load_file(path: &Path) -> Result<Keyer, SecretFileError> {
        let path = path.to_path_buf();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SecretFileError::Missing { path });
            }
            Err(source) => return Err(SecretFileError::Read { path, source }),
        };
        let bytes = match hex::decode(text.trim()) {
            Ok(bytes) => bytes,
            Err(source) => return Err(SecretFileError::NotHex { path, source }),
        };
        match bytes.try_into() {
            Ok(secret) => Ok(Keyer { secret }),
            Err(_) => Err(SecretFileError::WrongLength { path }),
        }
    }

    /// Write a fresh random secret to a new file at `path` (mode 0600);
    /// an existing file is never overwritten.
    pub fn create_new(path: &Path) -> Result<Keyer, SecretFileError> {
        let secret: [u8; 32] = rand::random();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut file) => {
                file.write_all(hex::encode(secret).as_bytes())
                    .map_err(SecretFileError::Write)?;
                file.sync_all().map_err(SecretFileError::Write)?;
                Ok(Keyer { secret })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(SecretFileError::Exists {
                    path: path.to_path_buf(),
                })
            }
            Err(source) => Err(SecretFileError::Create {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// A fingerprint of the secret that a store records, so that a node
    /// given another secret can be refused (it reveals nothing of the
    /// secret itself).
    pub fn fingerprint(&self) -> String {
        hex::encode(&self.mac("fingerprint", &[])[..16])
    }

    fn mac(&self, purpose: &str, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("any key length");
        mac.update(purpose.as_bytes());
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The key that wrapped the data keys of the key table's first form
    /// (XChaCha20-Poly1305).
    pub(crate) fn wrapping_key(&self) -> [u8; 32] {
        self.mac("data key wrapping", &[])
    }

    /// The key that wraps the data keys in the store's key table
    /// (AES-256-GCM).
    pub(crate) fn aes_wrapping_key(&self) -> [u8; 32] {
        self.mac("data key wrapping aes-256-gcm", &[])
    }

    /// Key of a normalised email (reservation streams, legacy owners).
    pub fn email_key(&self, email: &Email) -> [u8; 32] {
        self.mac("email", &[email.as_str().as_bytes()])
    }

    /// Key of an ID-porten identity (issuer, pid).
    pub fn idporten_key(&self, issuer: &str, pid: &str) -> [u8; 32] {
        self.mac("idporten", &[issuer.as_bytes(), pid.as_bytes()])
    }

    /// Key of a national identity number alone (legacy owners).
    pub fn pid_key(&self, pid: &str) -> [u8; 32] {
        self.mac("pid", &[pid.as_bytes()])
    }

    /// Key of a legacy reference (legacy stream names).
    pub fn legacy_key(&self, reference: &str) -> [u8; 32] {
        self.mac("legacy", &[reference.as_bytes()])
    }

    /// The 6-digit code of `flow` derived from a random `nonce`.
    pub fn code(&self, flow: FlowId, nonce: &[u8; 16]) -> String {
        let mac = self.mac("code", &[flow.0.as_bytes(), nonce]);
        let n = u64::from_be_bytes(mac[..8].try_into().expect("8 bytes")) % 1_000_000;
        format!("{n:06}")
    }

    /// Keyed digest of a code typed for `flow`.
    pub fn code_digest(&self, flow: FlowId, code: &str) -> [u8; 32] {
        self.mac("code-digest", &[flow.0.as_bytes(), code.trim().as_bytes()])
    }

    /// The CSRF token of a session (hex): a keyed MAC of its token, so it
    /// fits that session only and needs no storage.
    pub fn csrf_token(&self, session_token: &str) -> String {
        hex::encode(self.mac("csrf", &[session_token.as_bytes()]))
    }

    /// The device cookie of a browser that logged in with the address of
    /// `email_key`: its random id and a MAC binding it to that address.
    pub fn device_token(&self, email_key: &[u8; 32], device: &DeviceId) -> String {
        let mac = self.mac("device", &[email_key, device]);
        let mut raw = [0u8; 32];
        raw[..16].copy_from_slice(device);
        raw[16..].copy_from_slice(&mac[..16]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// The device id in a device cookie, when the cookie was made by this
    /// server for the address of `email_key`.
    pub fn device_of(&self, email_key: &[u8; 32], token: &str) -> Option<DeviceId> {
        if token.len() > 64 {
            return None;
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim())
            .ok()?;
        let raw: [u8; 32] = raw.try_into().ok()?;
        let device: DeviceId = raw[..16].try_into().expect("16 bytes");
        let mac = self.mac("device", &[email_key, &device]);
        domain::constant_time_eq(&mac[..16], &raw[16..]).then_some(device)
    }

    /// A secret of an OpenID Connect login under way, derived from its
    /// `state` for `purpose` (the PKCE verifier, the nonce): the callback
    /// derives it again, so nothing secret is stored for it.
    pub fn login_secret(&self, purpose: &str, state: &str) -> [u8; 32] {
        self.mac("login secret", &[purpose.as_bytes(), state.as_bytes()])
    }

    /// Seal `plaintext` for keeping beside the log: XChaCha20-Poly1305
    /// under a key derived for `purpose`, bound to `context` (associated
    /// data), behind a random 24-byte nonce.
    pub fn seal(&self, purpose: &str, context: &[u8], plaintext: &[u8]) -> Vec<u8> {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        let cipher = chacha20poly1305::XChaCha20Poly1305::new(
            &self.mac("sealed value", &[purpose.as_bytes()]).into(),
        );
        let nonce: [u8; 24] = rand::random();
        let sealed = cipher
            .encrypt(
                chacha20poly1305::XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .expect("XChaCha20-Poly1305 seals any length kept beside the log");
        let mut out = Vec::with_capacity(24 + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// What [`Keyer::seal`] sealed for `purpose` and `context`; `None`
    /// when it was sealed for another, under another secret, or altered.
    pub fn open(&self, purpose: &str, context: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        let cipher = chacha20poly1305::XChaCha20Poly1305::new(
            &self.mac("sealed value", &[purpose.as_bytes()]).into(),
        );
        let (nonce, body) = sealed.split_at_checked(24)?;
        cipher
            .decrypt(
                chacha20poly1305::XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context,
                },
            )
            .ok()
    }
}

/// SHA-256 of a session token (256 random bits need no key).
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Stream of the reservation of an email.
pub fn email_stream(key: &[u8; 32]) -> String {
    format!("email-{}", hex::encode(key))
}

/// Stream of the reservation of an ID-porten identity.
pub fn idporten_stream(key: &[u8; 32]) -> String {
    format!("idporten-{}", hex::encode(key))
}

/// Stream of what happens to an email address (mails sent to it, logins
/// tried with it), whether or not an account has it.
pub fn address_stream(key: &[u8; 32]) -> String {
    format!("address-{}", hex::encode(key))
}

/// Stream of a legacy record.
pub fn legacy_stream(key: &[u8; 32]) -> String {
    format!("legacy-{}", hex::encode(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_sealed_value_opens_only_for_its_purpose_context_and_secret() {
        let keyer = Keyer::new([7; 32]);
        let sealed = keyer.seal("hint", b"session-1", b"eyJ.token.sig");
        assert!(!sealed.windows(5).any(|w| w == b"token"), "not in clear");
        assert_eq!(
            keyer.open("hint", b"session-1", &sealed).as_deref(),
            Some(&b"eyJ.token.sig"[..])
        );
        assert_eq!(keyer.open("hint", b"session-2", &sealed), None);
        assert_eq!(keyer.open("other", b"session-1", &sealed), None);
        assert_eq!(
            Keyer::new([8; 32]).open("hint", b"session-1", &sealed),
            None
        );
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(keyer.open("hint", b"session-1", &altered), None);
        assert_eq!(keyer.open("hint", b"session-1", &sealed[..10]), None);
        assert_ne!(
            keyer.seal("hint", b"session-1", b"x"),
            keyer.seal("hint", b"session-1", b"x")
        );
    }

    #[test]
    fn login_secrets_differ_by_purpose_state_and_secret() {
        let keyer = Keyer::new([7; 32]);
        let verifier = keyer.login_secret("pkce", "state-1");
        assert_eq!(verifier, keyer.login_secret("pkce", "state-1"));
        assert_ne!(verifier, keyer.login_secret("nonce", "state-1"));
        assert_ne!(verifier, keyer.login_secret("pkce", "state-2"));
        assert_ne!(
            verifier,
            Keyer::new([8; 32]).login_secret("pkce", "state-1")
        );
    }

    #[test]
    fn a_device_cookie_counts_only_for_its_address_and_its_server() {
        let keyer = Keyer::new([7; 32]);
        let (kari, ola) = ([1u8; 32], [2u8; 32]);
        let token = keyer.device_token(&kari, &[9; 16]);
        assert_eq!(keyer.device_of(&kari, &token), Some([9; 16]));
        assert_eq!(keyer.device_of(&ola, &token), None);
        assert_eq!(Keyer::new([8; 32]).device_of(&kari, &token), None);
        let mut forged = token.into_bytes();
        forged[3] ^= 1;
        assert_eq!(
            keyer.device_of(&kari, &String::from_utf8(forged).unwrap()),
            None
        );
        assert_eq!(keyer.device_of(&kari, "not base64 at all!"), None);
    }

    #[test]
    fn codes_are_six_digits_and_depend_on_flow_and_nonce() {
        let keyer = Keyer::new([7; 32]);
        let flow = FlowId(Uuid::from_u128(1));
        let a = keyer.code(flow, &[1; 16]);
        assert_eq!(a.len(), 6);
        assert!(a.chars().all(|c| c.is_ascii_digit()));
        assert_ne!(a, keyer.code(flow, &[2; 16]));
        assert_ne!(a, keyer.code(FlowId(Uuid::from_u128(2)), &[1; 16]));
    }

    #[test]
    fn keys_differ_by_secret() {
        let email = Email::parse("kari@example.no").unwrap();
        assert_ne!(
            Keyer::new([1; 32]).email_key(&email),
            Keyer::new([2; 32]).email_key(&email)
        );
    }

    #[test]
    fn csrf_tokens_differ_by_session_and_by_secret() {
        let keyer = Keyer::new([1; 32]);
        let token = keyer.csrf_token("session-a");
        assert_eq!(token.len(), 64);
        assert_eq!(token, keyer.csrf_token("session-a"));
        assert_ne!(token, keyer.csrf_token("session-b"));
        assert_ne!(token, Keyer::new([2; 32]).csrf_token("session-a"));
    }

    #[test]
    fn the_secret_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let email = Email::parse("kari@example.no").unwrap();
        let a = Keyer::load_or_create(dir.path()).unwrap().email_key(&email);
        let b = Keyer::load_or_create(dir.path()).unwrap().email_key(&email);
        assert_eq!(a, b);
    }

    #[cfg(unix)]
    #[test]
    fn the_secret_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        Keyer::load_or_create(dir.path()).unwrap();
        let metadata = std::fs::metadata(dir.path().join(SECRET_FILE)).unwrap();
        assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_new_secret_never_overwrites_a_file_and_loads_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let created = Keyer::create_new(&path).unwrap();
        assert!(matches!(
            Keyer::create_new(&path),
            Err(SecretFileError::Exists { .. })
        ));
        let loaded = Keyer::load_file(&path).unwrap();
        assert_eq!(created.fingerprint(), loaded.fingerprint());
        assert_eq!(loaded.fingerprint().len(), 32);
        assert_ne!(
            Keyer::new([1; 32]).fingerprint(),
            Keyer::new([2; 32]).fingerprint()
        );
        assert!(matches!(
            Keyer::load_file(&dir.path().join("none.key")),
            Err(SecretFileError::Missing { .. })
        ));
    }
}

//! Logins under way (bound to the browser that started them; their PKCE
//! verifier and nonce derived, not kept) and the ID tokens of live sessions for single logout,
//! both kept in the store for every node; and the provider's sessions
//! (`sid`) of the sessions this node started, for the provider's logout.

use store::{EventStore, StoreError};

use super::*;

/// A login under way as kept in the store: nothing secret (its PKCE
/// verifier and nonce are derived from `state`, see [`login_secrets`]).
pub(super) struct PendingLogin {
    /// SHA-256 of the browser's [`LOGIN_COOKIE`].
    pub(super) binding: [u8; 32],
    /// When it started (milliseconds since the epoch: any node may read it).
    pub(super) started_ms: i64,
}

/// The PKCE verifier and the nonce of the login of `state`: derived from
/// the server secret and `state` by the login's start and again by its
/// callback on any node, so that neither is stored.
pub(super) struct LoginSecrets {
    pub(super) verifier: PkceCodeVerifier,
    pub(super) nonce: Nonce,
}

pub(super) fn login_secrets(keyer: &keys::Keyer, state: &str) -> LoginSecrets {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    LoginSecrets {
        // 32 bytes: 43 characters, the shortest verifier RFC 7636 allows.
        verifier: PkceCodeVerifier::new(engine.encode(keyer.login_secret("pkce", state))),
        nonce: Nonce::new(engine.encode(keyer.login_secret("nonce", state))),
    }
}

/// How many slots a login's `state` (or a session's hint) may land in.
const PROBES: usize = 4;

/// The names of the values (`<prefix>.<slot>`, of `capacity`) `key` may be
/// kept in.
fn slots(prefix: &str, key: &[u8; 32], capacity: usize) -> Vec<String> {
    let first = u64::from_be_bytes(key[..8].try_into().expect("8 bytes")) as usize;
    let mut slots: Vec<String> = (0..PROBES.min(capacity))
        .map(|n| format!("{prefix}.{}", (first + n) % capacity))
        .collect();
    slots.dedup();
    slots
}

/// The logins under way, kept in the store beside the log so that a login
/// started on one node can be called back on another: `capacity` values
/// (`idporten.pending.<slot>`), a login in one of [`PROBES`] slots chosen by
/// the SHA-256 of its `state`. Each lives at most `ttl` and is taken once (a
/// compare-and-set empties its slot); when all its slots hold live logins,
/// the oldest of them gives way (a flood of started logins cannot stop new
/// ones, and nothing grows without bound).
pub(super) struct PendingLogins {
    pub(super) ttl: Duration,
    pub(super) capacity: usize,
}

impl PendingLogins {
    pub(super) fn new(ttl: Duration, capacity: usize) -> PendingLogins {
        PendingLogins {
            ttl,
            capacity: capacity.max(1),
        }
    }

    fn slots(&self, key: &[u8; 32]) -> Vec<String> {
        slots("idporten.pending", key, self.capacity)
    }

    fn live(&self, login: &PendingLogin, now_ms: i64) -> bool {
        now_ms.saturating_sub(login.started_ms) < self.ttl.as_millis() as i64
    }

    pub(super) async fn insert(
        &self,
        store: &dyn EventStore,
        state: &str,
        login: PendingLogin,
    ) -> Result<(), StoreError> {
        let key = sha256(state.as_bytes());
        let value = encode(&key, &login);
        for _ in 0..4 {
            // The slot to use: an empty one, else the oldest login's.
            let mut oldest: Option<(String, Option<Vec<u8>>, i64)> = None;
            for slot in self.slots(&key) {
                let current = store.read_value(&slot).await?;
                let started = match current.as_deref().and_then(decode) {
                    Some((_, held)) if self.live(&held, login.started_ms) => held.started_ms,
                    _ => i64::MIN,
                };
                if oldest.as_ref().is_none_or(|(_, _, at)| started < *at) {
                    oldest = Some((slot, current, started));
                }
                if started == i64::MIN {
                    break;
                }
            }
            let Some((slot, current, started)) = oldest else {
                break;
            };
            if started != i64::MIN {
                tracing::warn!("too many ID-porten logins under way: the oldest gives way");
            }
            if store.swap_value(&slot, current.as_deref(), &value).await? {
                return Ok(());
            }
        }
        Err(StoreError::Backend(
            "the pending ID-porten logins keep changing".to_owned(),
        ))
    }

    /// Take (once, on any node) the login of `state`, if it is live and
    /// `binding` is the one of the browser that started it.
    pub(super) async fn take(
        &self,
        store: &dyn EventStore,
        state: &str,
        binding: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<PendingLogin>, StoreError> {
        let key = sha256(state.as_bytes());
        for slot in self.slots(&key) {
            let Some(current) = store.read_value(&slot).await? else {
                continue;
            };
            let Some((held_key, login)) = decode(&current) else {
                continue;
            };
            if !domain::constant_time_eq(&held_key, &key) {
                continue;
            }
            // Used up by this try, whatever comes of it.
            if !store.swap_value(&slot, Some(&current), b"").await? {
                return Ok(None);
            }
            if !self.live(&login, now_ms) {
                return Ok(None);
            }
            let Some(binding) = binding else {
                return Ok(None);
            };
            let binding = sha256(binding.as_bytes());
            return Ok(domain::constant_time_eq(&binding, &login.binding).then_some(login));
        }
        Ok(None)
    }
}

/// `state` digest, binding, start.
fn encode(key: &[u8; 32], login: &PendingLogin) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(72);
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(&login.binding);
    bytes.extend_from_slice(&login.started_ms.to_be_bytes());
    bytes
}

/// Anything after the start (an entry of an earlier version held its
/// verifier and nonce there) is ignored.
fn decode(bytes: &[u8]) -> Option<([u8; 32], PendingLogin)> {
    let key: [u8; 32] = bytes.get(..32)?.try_into().ok()?;
    let binding: [u8; 32] = bytes.get(32..64)?.try_into().ok()?;
    let started_ms = i64::from_be_bytes(bytes.get(64..72)?.try_into().ok()?);
    Some((
        key,
        PendingLogin {
            binding,
            started_ms,
        },
    ))
}

/// A live ID-porten session started on this node: the provider's session
/// (`sid`) for the provider's logout.
pub(super) struct LiveSession {
    pub(super) caller: Caller,
    pub(super) sid: Option<String>,
    pub(super) expires_at: chrono::DateTime<Utc>,
}

/// What the server secret seals a hint for.
const HINT_PURPOSE: &str = "idporten id_token_hint";

/// The ID token of each live ID-porten session, for `id_token_hint` when
/// the session logs out on any node: the compact token, sealed under the
/// server secret and bound to the session (never in clear beside the log),
/// kept until the session's end in one of `capacity` values
/// (`idporten.hint.<slot>`), chosen among [`PROBES`] by the SHA-256 of the
/// session id, and taken once at logout. When all of a session's slots
/// hold live hints, the one that ends first gives way (that session's
/// logout then names the client instead of the token).
pub(super) struct LogoutHints {
    pub(super) capacity: usize,
}

impl LogoutHints {
    pub(super) fn new(capacity: usize) -> LogoutHints {
        LogoutHints {
            capacity: capacity.max(1),
        }
    }

    /// Keep `id_token` (compact JWT) of `session` until `expires_ms`.
    pub(super) async fn insert(
        &self,
        store: &dyn EventStore,
        keyer: &keys::Keyer,
        session: SessionId,
        id_token: &str,
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let key = sha256(session.0.as_bytes());
        let mut value = Vec::with_capacity(64 + id_token.len() + 40);
        value.extend_from_slice(&key);
        value.extend_from_slice(&expires_ms.to_be_bytes());
        value.extend_from_slice(&keyer.seal(
            HINT_PURPOSE,
            session.0.as_bytes(),
            id_token.as_bytes(),
        ));
        for _ in 0..4 {
            // An empty or ended slot, else the one that ends first.
            let mut chosen: Option<(String, Option<Vec<u8>>, i64)> = None;
            for slot in slots("idporten.hint", &key, self.capacity) {
                let current = store.read_value(&slot).await?;
                let ends = match current.as_deref().and_then(hint_header) {
                    Some((_, ends)) if ends > now_ms => ends,
                    _ => i64::MIN,
                };
                if chosen.as_ref().is_none_or(|(_, _, at)| ends < *at) {
                    chosen = Some((slot, current, ends));
                }
                if ends == i64::MIN {
                    break;
                }
            }
            let Some((slot, current, ends)) = chosen else {
                break;
            };
            if ends != i64::MIN {
                tracing::warn!("too many ID-porten sessions for single logout: one gives way");
            }
            if store.swap_value(&slot, current.as_deref(), &value).await? {
                return Ok(());
            }
        }
        Err(StoreError::Backend(
            "the ID-porten logout hints keep changing".to_owned(),
        ))
    }

    /// Take (once, on any node) the ID token of `session`, if it is kept
    /// and the session has not ended.
    pub(super) async fn take(
        &self,
        store: &dyn EventStore,
        keyer: &keys::Keyer,
        session: SessionId,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let key = sha256(session.0.as_bytes());
        for slot in slots("idporten.hint", &key, self.capacity) {
            let Some(current) = store.read_value(&slot).await? else {
                continue;
            };
            let Some((held_key, ends)) = hint_header(&current) else {
                continue;
            };
            if held_key != key {
                continue;
            }
            if !store.swap_value(&slot, Some(&current), b"").await? || ends <= now_ms {
                return Ok(None);
            }
            return Ok(keyer
                .open(HINT_PURPOSE, session.0.as_bytes(), &current[40..])
                .and_then(|token| String::from_utf8(token).ok()));
        }
        Ok(None)
    }
}

/// The session digest and the end (milliseconds) of a kept hint.
fn hint_header(bytes: &[u8]) -> Option<([u8; 32], i64)> {
    let key: [u8; 32] = bytes.get(..32)?.try_into().ok()?;
    let ends = i64::from_be_bytes(bytes.get(32..40)?.try_into().ok()?);
    Some((key, ends))
}

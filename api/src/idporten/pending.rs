//! Logins under way (PKCE verifier and nonce, bound to the browser that
//! started them), kept in the store for every node, and the live ID-porten
//! sessions kept for single logout.

use store::{EventStore, StoreError};

use super::*;

/// A login under way: what the callback needs, kept in the store, never
/// sent out.
pub(super) struct PendingLogin {
    pub(super) verifier: PkceCodeVerifier,
    pub(super) nonce: Nonce,
    /// SHA-256 of the browser's [`LOGIN_COOKIE`].
    pub(super) binding: [u8; 32],
    /// When it started (milliseconds since the epoch: any node may read it).
    pub(super) started_ms: i64,
}

/// How many slots a login's `state` may land in.
const PROBES: usize = 4;

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

    /// The names of the values `key` may be kept in.
    fn slots(&self, key: &[u8; 32]) -> Vec<String> {
        let first = u64::from_be_bytes(key[..8].try_into().expect("8 bytes")) as usize;
        let mut slots: Vec<String> = (0..PROBES.min(self.capacity))
            .map(|n| format!("idporten.pending.{}", (first + n) % self.capacity))
            .collect();
        slots.dedup();
        slots
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

/// `state` digest, binding, start, then the verifier and the nonce, each
/// behind its length.
fn encode(key: &[u8; 32], login: &PendingLogin) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(160);
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(&login.binding);
    bytes.extend_from_slice(&login.started_ms.to_be_bytes());
    for text in [login.verifier.secret(), login.nonce.secret()] {
        bytes.push(text.len().min(255) as u8);
        bytes.extend_from_slice(&text.as_bytes()[..text.len().min(255)]);
    }
    bytes
}

fn decode(bytes: &[u8]) -> Option<([u8; 32], PendingLogin)> {
    let key: [u8; 32] = bytes.get(..32)?.try_into().ok()?;
    let binding: [u8; 32] = bytes.get(32..64)?.try_into().ok()?;
    let started_ms = i64::from_be_bytes(bytes.get(64..72)?.try_into().ok()?);
    let mut rest = &bytes[72..];
    let mut text = || {
        let (&len, tail) = rest.split_first()?;
        let text = std::str::from_utf8(tail.get(..len as usize)?)
            .ok()?
            .to_owned();
        rest = &tail[len as usize..];
        Some(text)
    };
    let verifier = PkceCodeVerifier::new(text()?);
    let nonce = Nonce::new(text()?);
    Some((
        key,
        PendingLogin {
            verifier,
            nonce,
            binding,
            started_ms,
        },
    ))
}

/// A live ID-porten session: its ID token for `id_token_hint` at logout,
/// and the provider's session (`sid`) for the provider's logout.
pub(super) struct LiveSession {
    pub(super) caller: Caller,
    pub(super) id_token: IdPortenIdToken,
    pub(super) sid: Option<String>,
    pub(super) expires_at: chrono::DateTime<Utc>,
}

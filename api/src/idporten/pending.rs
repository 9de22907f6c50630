//! Logins under way (PKCE verifier and nonce, bound to the browser that
//! started them) and the live ID-porten sessions kept for single logout.

use super::*;

/// A login under way: what the callback needs, kept here, never sent out.
pub(super) struct PendingLogin {
    pub(super) verifier: PkceCodeVerifier,
    pub(super) nonce: Nonce,
    /// SHA-256 of the browser's [`LOGIN_COOKIE`].
    pub(super) binding: [u8; 32],
    pub(super) started: Instant,
}

/// The logins under way, keyed by the SHA-256 of their `state`: each lives
/// at most `ttl` and is taken once; when `capacity` live ones are under way,
/// the oldest gives way to a new one (a flood of started logins cannot stop
/// new ones, and nothing grows without bound).
pub(super) struct PendingLogins {
    pub(super) logins: Mutex<HashMap<[u8; 32], PendingLogin>>,
    pub(super) ttl: Duration,
    pub(super) capacity: usize,
}

impl PendingLogins {
    pub(super) fn new(ttl: Duration, capacity: usize) -> PendingLogins {
        PendingLogins {
            logins: Mutex::new(HashMap::new()),
            ttl,
            capacity: capacity.max(1),
        }
    }

    pub(super) fn insert(&self, state: &str, login: PendingLogin) {
        let mut logins = self.logins.lock().expect("pending logins lock");
        if logins.len() >= self.capacity {
            logins.retain(|_, l| l.started.elapsed() < self.ttl);
        }
        if logins.len() >= self.capacity
            && let Some(oldest) = logins
                .iter()
                .min_by_key(|(_, l)| l.started)
                .map(|(key, _)| *key)
        {
            tracing::warn!("too many ID-porten logins under way: the oldest gives way");
            logins.remove(&oldest);
        }
        logins.insert(sha256(state.as_bytes()), login);
    }

    /// Take (once) the login of `state`, if it is live and `binding` is the
    /// one of the browser that started it.
    pub(super) fn take(&self, state: &str, binding: Option<&str>) -> Option<PendingLogin> {
        let login = self
            .logins
            .lock()
            .expect("pending logins lock")
            .remove(&sha256(state.as_bytes()))?;
        if login.started.elapsed() >= self.ttl {
            return None;
        }
        let binding = sha256(binding?.as_bytes());
        domain::constant_time_eq(&binding, &login.binding).then_some(login)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.logins.lock().expect("pending logins lock").len()
    }
}

/// A live ID-porten session: its ID token for `id_token_hint` at logout,
/// and the provider's session (`sid`) for the provider's logout.
pub(super) struct LiveSession {
    pub(super) caller: Caller,
    pub(super) id_token: IdPortenIdToken,
    pub(super) sid: Option<String>,
    pub(super) expires_at: chrono::DateTime<Utc>,
}

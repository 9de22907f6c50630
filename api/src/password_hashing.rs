//! Argon2id password hashing for the API: hashing and verifying on the
//! blocking pool, with a bound on concurrent hashes and on callers waiting for
//! one, and a dummy verification so an unknown email costs as much as a known
//! one.
//!
//! Hashing costs about 19 MiB of memory and tens of milliseconds of one core.
//! Running it on the async workers would stall every other request, and
//! running unbounded numbers of them at once would only make each slower and
//! exhaust memory. So every hash runs on `tokio::task::spawn_blocking` while
//! holding a permit of a semaphore with `max_concurrent` permits (by default
//! one per core). Callers that find no free permit wait in line; when
//! `max_waiting` callers (by default [`DEFAULT_MAX_WAITING`], 64) are already
//! waiting, further callers are refused at once with
//! [`HashError::Overloaded`] instead of queueing without end. With the OWASP
//! parameters on two cores, 64 waiting callers is roughly half a second of
//! work: a login still answers within a second or so, and beyond that it is
//! better to say "try again" than to let requests pile up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{self, SaltString};
use argon2::{
    Algorithm, Argon2, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// Longest password, in bytes, that is hashed or verified. Longer input is
/// refused with [`HashError::TooLong`] before any hashing; the password
/// policies allow far less, so only hostile input reaches this limit.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// How many callers may wait for a hashing permit before further callers are
/// refused with [`HashError::Overloaded`], unless configured otherwise.
pub const DEFAULT_MAX_WAITING: usize = 64;

/// Length of the hash output, in bytes (the argon2 crate's default).
const OUTPUT_LEN: usize = 32;

/// The PHC version number of Argon2 version 0x13.
const ARGON2_VERSION_0X13: u32 = 0x13;

/// Argon2id cost parameters. Always argon2id, version 0x13, 32-byte output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
}

impl HashParams {
    /// OWASP's minimum for argon2id: 19 MiB (19456 KiB) of memory, 2
    /// iterations, 1 lane.
    pub const fn owasp() -> HashParams {
        HashParams {
            m_cost_kib: 19 * 1024,
            t_cost: 2,
            p_cost: 1,
        }
    }

    /// Other costs, checked by the argon2 crate's rules (for example at least
    /// 8 KiB of memory per lane and at least one iteration).
    pub fn new(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<HashParams, HashError> {
        argon2::Params::new(m_cost_kib, t_cost, p_cost, Some(OUTPUT_LEN))
            .map_err(|error| HashError::InvalidParams(error.to_string()))?;
        Ok(HashParams {
            m_cost_kib,
            t_cost,
            p_cost,
        })
    }

    /// Memory cost in KiB.
    pub fn m_cost_kib(&self) -> u32 {
        self.m_cost_kib
    }

    /// Number of iterations.
    pub fn t_cost(&self) -> u32 {
        self.t_cost
    }

    /// Degree of parallelism (lanes).
    pub fn p_cost(&self) -> u32 {
        self.p_cost
    }

    fn argon2(&self) -> Result<Argon2<'static>, HashError> {
        let params =
            argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(OUTPUT_LEN))
                .map_err(|error| HashError::InvalidParams(error.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Whether a stored hash was made with exactly these settings.
    fn matches(&self, hash: &PasswordHash<'_>) -> bool {
        let Ok(stored) = argon2::Params::try_from(hash) else {
            return false;
        };
        hash.algorithm == argon2::ARGON2ID_IDENT
            && hash.version == Some(ARGON2_VERSION_0X13)
            && stored.m_cost() == self.m_cost_kib
            && stored.t_cost() == self.t_cost
            && stored.p_cost() == self.p_cost
            && stored.keyid().is_empty()
            && stored.data().is_empty()
            && hash.hash.is_some_and(|output| output.len() == OUTPUT_LEN)
    }

    /// A PHC string with these settings, a fixed salt and an all-zero output
    /// that no password produces: verifying against it costs exactly what a
    /// real verification costs.
    fn dummy_phc(&self) -> String {
        format!(
            "$argon2id$v={ARGON2_VERSION_0X13}$m={},t={},p={}$AAAAAAAAAAAAAAAAAAAAAA${}",
            self.m_cost_kib,
            self.t_cost,
            self.p_cost,
            "A".repeat(43),
        )
    }
}

impl Default for HashParams {
    fn default() -> HashParams {
        HashParams::owasp()
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password matches the hash.
    pub ok: bool,
    /// The hash was made with another algorithm, version or cost than the
    /// current parameters; when `ok`, the caller should store a new hash.
    pub needs_rehash: bool,
}

/// Why a password could not be hashed or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// The password is longer than [`MAX_PASSWORD_BYTES`] bytes.
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    /// Too many callers are already waiting to hash; try again shortly.
    #[error("too many password hashes are waiting; try again shortly")]
    Overloaded,
    /// The stored hash is not a PHC string this hasher can verify.
    #[error("the stored password hash is malformed or of an unsupported kind")]
    MalformedHash,
    /// The cost parameters are not valid for argon2.
    #[error("invalid argon2 parameters: {0}")]
    InvalidParams(String),
    /// Hashing itself failed (an argon2 error, or the hashing task died).
    #[error("password hashing failed: {0}")]
    Internal(String),
}

/// The argon2id hasher. Cloning is cheap and clones share the same limits.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: HashParams,
    dummy_phc: String,
    permits: Arc<Semaphore>,
    max_concurrent: usize,
    max_waiting: usize,
    waiting: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight_seen: AtomicUsize,
    /// Argon2 working memory kept between verifications (at most one per
    /// permit): a fresh 19 MiB buffer per hash costs the kernel a page fault
    /// and a zeroed page for every 4 KiB of it.
    memory: std::sync::Mutex<Vec<Vec<argon2::Block>>>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.inner.params)
            .field("max_concurrent", &self.inner.max_concurrent)
            .field("max_waiting", &self.inner.max_waiting)
            .finish_non_exhaustive()
    }
}

/// The number of hashes run at once by default: one per core.
pub fn default_max_concurrent() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

impl PasswordHasher {
    /// A hasher running at most `max_concurrent` hashes at once (0 is read
    /// as 1), with at most [`DEFAULT_MAX_WAITING`] callers waiting.
    pub fn new(params: HashParams, max_concurrent: usize) -> PasswordHasher {
        PasswordHasher::with_limits(params, max_concurrent, DEFAULT_MAX_WAITING)
    }

    /// A hasher with the OWASP parameters, one hash per core at once and
    /// [`DEFAULT_MAX_WAITING`] callers waiting.
    pub fn with_defaults() -> PasswordHasher {
        PasswordHasher::new(HashParams::owasp(), default_max_concurrent())
    }

    /// A hasher running at most `max_concurrent` hashes at once (0 is read
    /// as 1) and refusing callers with [`HashError::Overloaded`] while
    /// `max_waiting` others are already waiting (0 means nobody waits: a
    /// caller either gets a permit at once or is refused).
    pub fn with_limits(
        params: HashParams,
        max_concurrent: usize,
        max_waiting: usize,
    ) -> PasswordHasher {
        let max_concurrent = max_concurrent.max(1);
        PasswordHasher {
            inner: Arc::new(Inner {
                params,
                dummy_phc: params.dummy_phc(),
                permits: Arc::new(Semaphore::new(max_concurrent)),
                max_concurrent,
                max_waiting,
                waiting: AtomicUsize::new(0),
                in_flight: AtomicUsize::new(0),
                max_in_flight_seen: AtomicUsize::new(0),
                memory: std::sync::Mutex::new(Vec::new()),
            }),
        }
    }

    /// The parameters new hashes are made with.
    pub fn params(&self) -> HashParams {
        self.inner.params
    }

    /// Hash `password` with a fresh random salt, as a PHC string
    /// (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        refuse_too_long(password)?;
        let params = self.inner.params;
        let password = password.to_owned();
        self.run_hashing(move || {
            let salt = SaltString::generate(&mut OsRng);
            let phc = params
                .argon2()?
                .hash_password(password.as_bytes(), &salt)
                .map_err(|error| HashError::Internal(error.to_string()))?;
            Ok(phc.to_string())
        })
        .await
    }

    /// Check `password` against a stored PHC string. The hash's own
    /// parameters are used to verify; `needs_rehash` says whether they differ
    /// from the current ones.
    pub async fn verify(&self, password: &str, phc: &str) -> Result<Verification, HashError> {
        refuse_too_long(password)?;
        let inner = Arc::clone(&self.inner);
        let password = password.to_owned();
        let phc = phc.to_owned();
        self.run_hashing(move || verify_blocking(&inner, &password, &phc))
            .await
    }

    /// Spend what [`PasswordHasher::verify`] spends on a real account, on a
    /// fixed dummy hash made with the current parameters, and throw the
    /// result away: the login of an unknown email then takes as long as one
    /// with a wrong password. Errors (too long, overloaded) are the same as
    /// `verify`'s, so the caller can answer both cases alike.
    pub async fn verify_dummy(&self, password: &str) -> Result<(), HashError> {
        let phc = self.inner.dummy_phc.clone();
        self.verify(password, &phc).await.map(|_| ())
    }

    /// Hashes running right now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::SeqCst)
    }

    /// Callers waiting for a permit right now.
    pub fn waiting(&self) -> usize {
        self.inner.waiting.load(Ordering::SeqCst)
    }

    /// The most hashes ever seen running at once (a high-water mark for
    /// metrics; never above `max_concurrent`).
    pub fn max_in_flight_seen(&self) -> usize {
        self.inner.max_in_flight_seen.load(Ordering::SeqCst)
    }

    /// Take a permit (waiting in line if there is room in the line), then
    /// run `job` on the blocking pool while holding it.
    async fn run_hashing<T, F>(&self, job: F) -> Result<T, HashError>
    where
        F: FnOnce() -> Result<T, HashError> + Send + 'static,
        T: Send + 'static,
    {
        let permit = self.acquire_permit().await?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            // The permit moves into the blocking task, so it stays taken
            // until the hash ends even if the caller stops waiting for it.
            let _permit = permit;
            let _in_flight = InFlight::enter(&inner);
            job()
        })
        .await
        .map_err(|error| HashError::Internal(format!("hashing task failed: {error}")))?
    }

    async fn acquire_permit(&self) -> Result<OwnedSemaphorePermit, HashError> {
        match Arc::clone(&self.inner.permits).try_acquire_owned() {
            Ok(permit) => return Ok(permit),
            Err(TryAcquireError::NoPermits) => {}
            Err(TryAcquireError::Closed) => {
                return Err(HashError::Internal("hashing permits closed".to_owned()));
            }
        }
        let place_in_line = Waiting::join(&self.inner.waiting);
        if place_in_line.ahead >= self.inner.max_waiting {
            tracing::warn!(
                waiting = place_in_line.ahead,
                max_waiting = self.inner.max_waiting,
                "password hashing overloaded; refusing the request"
            );
            return Err(HashError::Overloaded);
        }
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|_closed| HashError::Internal("hashing permits closed".to_owned()))?;
        drop(place_in_line);
        Ok(permit)
    }
}

fn refuse_too_long(password: &str) -> Result<(), HashError> {
    if password.len() > MAX_PASSWORD_BYTES {
        Err(HashError::TooLong)
    } else {
        Ok(())
    }
}

fn verify_blocking(inner: &Inner, password: &str, phc: &str) -> Result<Verification, HashError> {
    let params = &inner.params;
    let hash = PasswordHash::new(phc).map_err(|_| HashError::MalformedHash)?;
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return Err(HashError::MalformedHash);
    };
    let needs_rehash = !params.matches(&hash);
    if needs_rehash {
        // The hash's own algorithm, version and costs are used, not `params`.
        let ok = match params.argon2()?.verify_password(password.as_bytes(), &hash) {
            Ok(()) => true,
            Err(password_hash::Error::Password) => false,
            Err(_unsupported) => return Err(HashError::MalformedHash),
        };
        return Ok(Verification { ok, needs_rehash });
    }
    // Made with today's parameters: the same computation argon2's
    // `verify_password` does (raw salt bytes, 32-byte output, constant-time
    // comparison), in working memory kept from earlier verifications.
    let mut salt_buffer = [0u8; 64];
    let salt = salt
        .decode_b64(&mut salt_buffer)
        .map_err(|_| HashError::MalformedHash)?;
    let argon2 = params.argon2()?;
    let blocks = argon2.params().block_count();
    let mut memory = inner
        .memory
        .lock()
        .map_err(|_| HashError::Internal("argon2 memory pool poisoned".to_owned()))?
        .pop()
        .filter(|memory| memory.len() == blocks)
        .unwrap_or_else(|| vec![argon2::Block::default(); blocks]);
    let mut output = [0u8; OUTPUT_LEN];
    let computed =
        argon2.hash_password_into_with_memory(password.as_bytes(), salt, &mut output, &mut memory);
    if let Ok(mut pool) = inner.memory.lock()
        && pool.len() < inner.max_concurrent
    {
        pool.push(memory);
    }
    computed.map_err(|_| HashError::MalformedHash)?;
    let ok = bool::from(subtle::ConstantTimeEq::ct_eq(
        expected.as_bytes(),
        &output[..],
    ));
    Ok(Verification { ok, needs_rehash })
}

/// A place in the line of callers waiting for a permit; leaving the line
/// (also by being cancelled) gives the place back.
struct Waiting<'a> {
    counter: &'a AtomicUsize,
    /// Callers already waiting when this one joined.
    ahead: usize,
}

impl<'a> Waiting<'a> {
    fn join(counter: &'a AtomicUsize) -> Waiting<'a> {
        let ahead = counter.fetch_add(1, Ordering::SeqCst);
        Waiting { counter, ahead }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a running hash and keeps the high-water mark; the count drops when
/// the hash ends, also by panic.
struct InFlight<'a> {
    inner: &'a Inner,
}

impl<'a> InFlight<'a> {
    fn enter(inner: &'a Inner) -> InFlight<'a> {
        let now = inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        inner.max_in_flight_seen.fetch_max(now, Ordering::SeqCst);
        InFlight { inner }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.inner.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn owasp_hasher(max_concurrent: usize) -> PasswordHasher {
        PasswordHasher::new(HashParams::owasp(), max_concurrent)
    }

    /// A PHC string made directly with the argon2 crate, with other settings.
    fn phc_with(algorithm: Algorithm, m_cost_kib: u32, t_cost: u32, password: &str) -> String {
        let params = argon2::Params::new(m_cost_kib, t_cost, 1, None).expect("valid params");
        Argon2::new(algorithm, Version::V0x13, params)
            .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
            .expect("hashing works")
            .to_string()
    }

    async fn wait_until(what: &str, condition: impl Fn() -> bool) {
        for _ in 0..1000 {
            if condition() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("timed out waiting until {what}");
    }

    #[test]
    fn owasp_parameters_are_19_mib_two_iterations_one_lane() {
        let params = HashParams::owasp();
        assert_eq!(
            (params.m_cost_kib(), params.t_cost(), params.p_cost()),
            (19456, 2, 1)
        );
        assert_eq!(HashParams::default(), params);
    }

    #[test]
    fn parameters_argon2_refuses_are_refused() {
        assert!(matches!(
            HashParams::new(4, 1, 1),
            Err(HashError::InvalidParams(_))
        ));
        assert!(matches!(
            HashParams::new(4096, 0, 1),
            Err(HashError::InvalidParams(_))
        ));
        assert_eq!(
            HashParams::new(19456, 2, 1).expect("valid"),
            HashParams::owasp()
        );
    }

    #[tokio::test]
    async fn a_hash_verifies_with_its_password() {
        let hasher = owasp_hasher(2);
        let phc = hasher.hash("Sommer24").await.expect("hashed");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let verification = hasher.verify("Sommer24", &phc).await.expect("verified");
        assert_eq!(
            verification,
            Verification {
                ok: true,
                needs_rehash: false
            }
        );
    }

    #[tokio::test]
    async fn a_wrong_password_does_not_verify() {
        let hasher = owasp_hasher(2);
        let phc = hasher.hash("Sommer24").await.expect("hashed");
        let verification = hasher.verify("sommer24", &phc).await.expect("verified");
        assert!(!verification.ok);
        assert!(!verification.needs_rehash);
    }

    #[tokio::test]
    async fn the_same_password_hashes_differently_each_time() {
        let hasher = owasp_hasher(2);
        let first = hasher.hash("Sommer24").await.expect("hashed");
        let second = hasher.hash("Sommer24").await.expect("hashed");
        assert_ne!(first, second, "a fresh salt each time");
    }

    #[tokio::test]
    async fn a_hash_with_weaker_parameters_verifies_and_asks_for_a_rehash() {
        // given a hash made with m=4096 KiB, t=1
        let weaker = phc_with(Algorithm::Argon2id, 4096, 1, "Hemmelig42");
        assert!(
            weaker.starts_with("$argon2id$v=19$m=4096,t=1,p=1$"),
            "{weaker}"
        );
        let hasher = owasp_hasher(2);
        // when the right password is verified against it
        let verification = hasher
            .verify("Hemmelig42", &weaker)
            .await
            .expect("verified");
        // then it matches, and should be replaced by a hash with today's parameters
        assert_eq!(
            verification,
            Verification {
                ok: true,
                needs_rehash: true
            }
        );
        // and a wrong password still fails against it
        let wrong = hasher
            .verify("Hemmelig43", &weaker)
            .await
            .expect("verified");
        assert!(!wrong.ok);
    }

    #[tokio::test]
    async fn a_hash_of_another_argon2_variant_asks_for_a_rehash() {
        let argon2i = phc_with(Algorithm::Argon2i, 19456, 2, "Hemmelig42");
        let verification = owasp_hasher(2)
            .verify("Hemmelig42", &argon2i)
            .await
            .expect("verified");
        assert!(verification.ok && verification.needs_rehash);
    }

    #[tokio::test]
    async fn a_malformed_hash_is_an_error_not_a_mismatch() {
        let hasher = owasp_hasher(2);
        for phc in [
            "",
            "not a hash",
            "$argon2id$v=19$m=19456,t=2,p=1",
            "$2b$12$abcdefghijklmnopqrstuu",
        ] {
            assert_eq!(
                hasher.verify("Sommer24", phc).await,
                Err(HashError::MalformedHash),
                "{phc:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_over_long_password_is_refused_without_hashing() {
        let hasher = owasp_hasher(2);
        let too_long = "a".repeat(MAX_PASSWORD_BYTES + 1);
        let phc = hasher.hash("Sommer24").await.expect("hashed");
        let before = hasher.max_in_flight_seen();
        let fresh = owasp_hasher(2);
        assert_eq!(fresh.hash(&too_long).await, Err(HashError::TooLong));
        assert_eq!(fresh.verify(&too_long, &phc).await, Err(HashError::TooLong));
        assert_eq!(fresh.verify_dummy(&too_long).await, Err(HashError::TooLong));
        assert_eq!(fresh.max_in_flight_seen(), 0, "nothing was hashed");
        assert_eq!(hasher.max_in_flight_seen(), before);
        // and exactly the limit is still hashed
        let longest = "a".repeat(MAX_PASSWORD_BYTES);
        let phc = fresh.hash(&longest).await.expect("hashed");
        assert!(fresh.verify(&longest, &phc).await.expect("verified").ok);
    }

    #[tokio::test]
    async fn reused_working_memory_gives_the_same_answers_as_argon2_itself() {
        let hasher = owasp_hasher(1);
        let phc = phc_with(Algorithm::Argon2id, 19456, 2, "Hemmelig42");
        let stored = PasswordHash::new(&phc).expect("phc");
        for (password, expected) in [
            ("Hemmelig42", true),
            ("Hemmelig43", false),
            ("Hemmelig42", true),
        ] {
            let reference = Argon2::default()
                .verify_password(password.as_bytes(), &stored)
                .is_ok();
            assert_eq!(reference, expected);
            let verdict = hasher.verify(password, &phc).await.expect("verified");
            assert_eq!(verdict.ok, expected, "{password}");
            assert!(!verdict.needs_rehash);
        }
        // One permit: one buffer kept, never more.
        assert_eq!(hasher.inner.memory.lock().expect("pool").len(), 1);
    }

    #[tokio::test]
    async fn the_dummy_verification_hashes_with_the_current_parameters() {
        let hasher = owasp_hasher(2);
        // the dummy hash is well-formed and carries the current parameters,
        // so verifying against it costs what a real verification costs
        let dummy = verify_blocking(&hasher.inner, "anything", &hasher.inner.dummy_phc)
            .expect("well-formed");
        assert_eq!(
            dummy,
            Verification {
                ok: false,
                needs_rehash: false
            }
        );
        // and it goes through the same permits as a real verification
        hasher.verify_dummy("Sommer24").await.expect("ran");
        assert_eq!(hasher.max_in_flight_seen(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_permit_means_one_hash_at_a_time() {
        // given a hasher allowed one hash at a time
        let hasher = owasp_hasher(1);
        // when four hashes are asked for at once
        let tasks: Vec<_> = (0..4)
            .map(|n| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(&format!("Passord{n}x")).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("task ran").expect("hashed");
        }
        // then never more than one ran at once
        assert_eq!(hasher.max_in_flight_seen(), 1);
        assert_eq!((hasher.in_flight(), hasher.waiting()), (0, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_permits_bound_concurrency_at_two() {
        let hasher = owasp_hasher(2);
        let tasks: Vec<_> = (0..6)
            .map(|n| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(&format!("Passord{n}x")).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("task ran").expect("hashed");
        }
        assert!((1..=2).contains(&hasher.max_in_flight_seen()));
    }

    #[tokio::test]
    async fn callers_beyond_the_waiting_limit_are_refused_as_overloaded() {
        // given one permit, held, and room for two callers in line
        let hasher = PasswordHasher::with_limits(HashParams::owasp(), 1, 2);
        let held = Arc::clone(&hasher.inner.permits)
            .acquire_owned()
            .await
            .expect("permit");
        let queued: Vec<_> = (0..2)
            .map(|n| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(&format!("Passord{n}x")).await })
            })
            .collect();
        wait_until("two callers wait", || hasher.waiting() == 2).await;
        // when a third caller arrives
        // then it is refused at once, for hashing and verifying alike
        assert_eq!(hasher.hash("Sommer24").await, Err(HashError::Overloaded));
        assert_eq!(
            hasher.verify_dummy("Sommer24").await,
            Err(HashError::Overloaded)
        );
        assert_eq!(hasher.waiting(), 2, "the refused callers left the line");
        // and once the permit is free, the callers in line are served
        drop(held);
        for task in queued {
            task.await.expect("task ran").expect("hashed");
        }
        assert_eq!((hasher.waiting(), hasher.max_in_flight_seen()), (0, 1));
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_waiting_leaves_the_line() {
        let hasher = PasswordHasher::with_limits(HashParams::owasp(), 1, 1);
        let held = Arc::clone(&hasher.inner.permits)
            .acquire_owned()
            .await
            .expect("permit");
        let gave_up =
            tokio::time::timeout(Duration::from_millis(20), hasher.hash("Sommer24")).await;
        assert!(gave_up.is_err(), "still waiting when it gave up");
        assert_eq!(hasher.waiting(), 0);
        drop(held);
        hasher.hash("Sommer24").await.expect("hashed");
    }

    #[test]
    fn zero_permits_is_read_as_one() {
        let hasher = owasp_hasher(0);
        assert_eq!(hasher.inner.permits.available_permits(), 1);
        assert!(default_max_concurrent() >= 1);
    }
}

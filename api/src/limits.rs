//! Per-address rate limits on the flows that send mail, check passwords or
//! start an ID-porten login, and the cap on such operations per request.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Requests per minute per client address; 0 turns a limit off.
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    /// Flows that send mail (registration, recovery, resend).
    pub mail_per_minute: u32,
    /// Flows that check or set a password (login, completion), and
    /// ID-porten logins started (each keeps a pending login in memory).
    pub password_per_minute: u32,
    /// Operations that send mail or check a password in one request
    /// (aliases repeat a mutation within a request); 0: no cap.
    pub costly_per_request: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            mail_per_minute: 120,
            password_per_minute: 300,
            costly_per_request: 2,
        }
    }
}

/// The limiters, keyed by client address.
pub struct Limits {
    mail: Option<DefaultKeyedRateLimiter<IpAddr>>,
    password: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
    costly_per_request: u32,
}

fn limiter(per_minute: u32) -> Option<DefaultKeyedRateLimiter<IpAddr>> {
    NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

impl Limits {
    pub fn new(settings: LimitSettings) -> Limits {
        Limits {
            mail: limiter(settings.mail_per_minute),
            password: limiter(settings.password_per_minute),
            clock: DefaultClock::default(),
            costly_per_request: settings.costly_per_request,
        }
    }

    /// The cap on operations that send mail or check a password per request
    /// (0: none).
    pub fn costly_per_request(&self) -> u32 {
        self.costly_per_request
    }

    /// Count one request of `bucket` (`mail` or `password`) from `ip`;
    /// `Err(seconds)` says how long to wait.
    pub fn check(&self, bucket: &str, ip: IpAddr) -> Result<(), i64> {
        let limiter = match bucket {
            "mail" => &self.mail,
            _ => &self.password,
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs() as i64 + 1
        })
    }

    /// Forget addresses that are back under their limits (call now and then).
    pub fn shrink(&self) {
        for limiter in [&self.mail, &self.password].into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_over_its_limit_is_told_to_wait() {
        let limits = Limits::new(LimitSettings {
            mail_per_minute: 2,
            password_per_minute: 0,
            costly_per_request: 0,
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(limits.check("mail", ip).is_ok());
        assert!(limits.check("mail", ip).is_ok());
        assert!(limits.check("mail", ip).unwrap_err() >= 1);
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limits.check("mail", other).is_ok());
        for _ in 0..100 {
            assert!(limits.check("password", ip).is_ok());
        }
    }
}

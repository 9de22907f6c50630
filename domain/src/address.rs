//! One email address (`address-<hex>` streams, named by a keyed hash of the
//! normalised email, whether or not an account has it): the mails sent to it
//! (a limit per recipient, however many requests, client addresses or nodes
//! ask) and the failed logins with it (throttling per source).
//!
//! Every login with an address counts here, for a registered address and an
//! unknown one alike, so that the answers and their timing say nothing about
//! whether an account exists. Throttling follows OWASP's device cookies: a
//! browser that logged in with the address before shows its device id and
//! has a counter of its own, so an attacker who slows down every unknown
//! client cannot lock the owner's browser out. The slowest it gets is a
//! wait, never a lock-out.

use chrono::{DateTime, Duration, Utc};

/// Consecutive wrong passwords from one source allowed before it is slowed down.
pub const FREE_LOGIN_FAILURES: u32 = 5;
/// First delay once throttled; it doubles with every further failure.
pub const FIRST_LOGIN_DELAY: Duration = Duration::seconds(30);
/// The delay never grows beyond this: throttling, never a lock-out.
pub const MAX_LOGIN_DELAY: Duration = Duration::minutes(15);
/// Device counters kept per address; the least recently failed goes first.
pub const MAX_DEVICES: usize = 16;
/// Send instants kept per address: no limit may count more than this.
pub const MAX_MAIL_LIMIT: u32 = 1_000;

/// A browser that logged in with this address before (a random id it shows
/// in a cookie the server signed).
pub type DeviceId = [u8; 16];

/// Who is trying: a known device, or anyone else (one shared counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Untrusted,
    Device(DeviceId),
}

/// How many mails one address may be sent over a sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailLimit {
    pub max: u32,
    pub window: Duration,
}

/// Consecutive failures of one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Failures {
    pub count: u32,
    pub last_at: Option<DateTime<Utc>>,
}

impl Failures {
    /// How long the next login of this source must wait, if it must.
    pub fn delay(&self, at: DateTime<Utc>) -> Option<Duration> {
        let ready = self.last_at? + delay_after(self.count)?;
        (at < ready).then(|| ready - at)
    }
}

/// The wait imposed after `failures` consecutive wrong passwords.
pub fn delay_after(failures: u32) -> Option<Duration> {
    if failures < FREE_LOGIN_FAILURES {
        return None;
    }
    let doublings = (failures - FREE_LOGIN_FAILURES).min(16);
    let delay = FIRST_LOGIN_DELAY * 2i32.pow(doublings);
    Some(delay.min(MAX_LOGIN_DELAY))
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// When mails went out lately, oldest first (at most [`MAX_MAIL_LIMIT`]).
    pub mails: std::collections::VecDeque<DateTime<Utc>>,
    pub untrusted: Failures,
    /// Counters of known devices, most recently failed last.
    pub devices: Vec<(DeviceId, Failures)>,
}

impl State {
    /// The counter of `source` (a device not seen failing has none).
    pub fn failures(&self, source: Source) -> Failures {
        match source {
            Source::Untrusted => self.untrusted,
            Source::Device(id) => self
                .devices
                .iter()
                .find(|(d, _)| *d == id)
                .map(|(_, f)| *f)
                .unwrap_or_default(),
        }
    }

    /// How long the next login from `source` must wait, if it must.
    pub fn login_delay(&self, source: Source, at: DateTime<Utc>) -> Option<Duration> {
        self.failures(source).delay(at)
    }

    /// Mails sent within `window` before `at`.
    pub fn mails_within(&self, window: Duration, at: DateTime<Utc>) -> usize {
        self.mails.iter().filter(|t| at - **t < window).count()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A code or notice is about to be mailed to the address.
    SendMail { limit: MailLimit, at: DateTime<Utc> },
    /// A wrong password (or a login to an address without an account).
    RecordLoginFailure { source: Source, at: DateTime<Utc> },
    /// A right password: the source's counter starts again.
    RecordLoginSuccess { source: Source, at: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Mailed {
        at: DateTime<Utc>,
    },
    /// `device`: the known device that tried, `None` for anyone else.
    LoginFailed {
        device: Option<DeviceId>,
        at: DateTime<Utc>,
    },
    LoginSucceeded {
        device: Option<DeviceId>,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The address had its share of mails; the oldest counted leaves the
    /// window after this many seconds.
    MailLimitReached { retry_after_seconds: i64 },
    /// The source must wait before it tries again.
    Throttled { retry_after_seconds: i64 },
}

fn source_of(device: Option<DeviceId>) -> Source {
    device.map_or(Source::Untrusted, Source::Device)
}

fn device_of(source: Source) -> Option<DeviceId> {
    match source {
        Source::Untrusted => None,
        Source::Device(id) => Some(id),
    }
}

fn seconds_up(d: Duration) -> i64 {
    ((d.num_milliseconds() + 999) / 1000).max(1)
}

/// The email address aggregate as a [`Decider`](crate::Decider):
/// [`decide`] and [`evolve`] over [`State`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Address;

crate::decider::module_decider!(Address);

pub fn evolve(state: &mut State, event: &Event) {
    match event {
        Event::Mailed { at } => {
            if state.mails.len() >= MAX_MAIL_LIMIT as usize {
                state.mails.pop_front();
            }
            state.mails.push_back(*at);
        }
        Event::LoginFailed { device, at } => match source_of(*device) {
            Source::Untrusted => {
                state.untrusted.count += 1;
                state.untrusted.last_at = Some(*at);
            }
            Source::Device(id) => {
                let mut failures = state.failures(Source::Device(id));
                state.devices.retain(|(d, _)| *d != id);
                if state.devices.len() >= MAX_DEVICES {
                    state.devices.remove(0);
                }
                failures.count += 1;
                failures.last_at = Some(*at);
                state.devices.push((id, failures));
            }
        },
        Event::LoginSucceeded { device, .. } => match source_of(*device) {
            Source::Untrusted => state.untrusted = Failures::default(),
            Source::Device(id) => state.devices.retain(|(d, _)| *d != id),
        },
    }
}

pub fn decide(state: &State, command: &Command) -> Result<Vec<Event>, Error> {
    match command {
        Command::SendMail { limit, at } => {
            let max = limit.max.min(MAX_MAIL_LIMIT) as usize;
            let recent: Vec<&DateTime<Utc>> = state
                .mails
                .iter()
                .filter(|t| *at - **t < limit.window)
                .collect();
            if recent.len() >= max {
                // The oldest of the last `max` sends must leave the window
                // (with no mails allowed at all, a whole window).
                let wait = match recent.len().checked_sub(max.max(1)) {
                    Some(i) if max > 0 => *recent[i] + limit.window - *at,
                    _ => limit.window,
                };
                return Err(Error::MailLimitReached {
                    retry_after_seconds: seconds_up(wait),
                });
            }
            Ok(vec![Event::Mailed { at: *at }])
        }
        Command::RecordLoginFailure { source, at } => {
            if let Some(wait) = state.login_delay(*source, *at) {
                return Err(Error::Throttled {
                    retry_after_seconds: seconds_up(wait),
                });
            }
            Ok(vec![Event::LoginFailed {
                device: device_of(*source),
                at: *at,
            }])
        }
        Command::RecordLoginSuccess { source, at } => {
            if state.failures(*source).count == 0 {
                return Ok(vec![]);
            }
            Ok(vec![Event::LoginSucceeded {
                device: device_of(*source),
                at: *at,
            }])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, Given};

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("instant")
    }

    fn given(events: impl IntoIterator<Item = Event>) -> Given<Address> {
        testing::given(events)
    }

    const LIMIT: MailLimit = MailLimit {
        max: 3,
        window: Duration::hours(1),
    };

    fn mailed(at: DateTime<Utc>) -> Event {
        Event::Mailed { at }
    }

    fn failed(device: Option<DeviceId>, at: DateTime<Utc>) -> Event {
        Event::LoginFailed { device, at }
    }

    #[test]
    fn an_address_gets_mails_up_to_its_limit_within_the_window() {
        given([mailed(t(0)), mailed(t(10))])
            .when(Command::SendMail {
                limit: LIMIT,
                at: t(20),
            })
            .then(vec![mailed(t(20))]);
    }

    #[test]
    fn one_more_mail_than_the_limit_is_refused_until_the_oldest_leaves_the_window() {
        given([mailed(t(0)), mailed(t(10)), mailed(t(20))])
            .when(Command::SendMail {
                limit: LIMIT,
                at: t(30),
            })
            .then_error(Error::MailLimitReached {
                retry_after_seconds: 3600 - 30,
            });
        given([mailed(t(0)), mailed(t(10)), mailed(t(20))])
            .when(Command::SendMail {
                limit: LIMIT,
                at: t(3600),
            })
            .then(vec![mailed(t(3600))]);
    }

    #[test]
    fn a_limit_of_zero_sends_nothing() {
        let when = given([]).when(Command::SendMail {
            limit: MailLimit {
                max: 0,
                window: Duration::hours(1),
            },
            at: t(0),
        });
        assert!(matches!(
            when.outcome(),
            Err(Error::MailLimitReached { .. })
        ));
    }

    #[test]
    fn five_wrong_passwords_slow_the_untrusted_source_down() {
        let failures = (0..5).map(|i| failed(None, t(i)));
        let state = given(failures)
            .when(Command::RecordLoginFailure {
                source: Source::Untrusted,
                at: t(5),
            })
            .then_error(Error::Throttled {
                retry_after_seconds: 29,
            })
            .state();
        assert_eq!(state.login_delay(Source::Untrusted, t(34)), None);
    }

    #[test]
    fn a_known_device_is_not_slowed_down_by_an_attack_from_elsewhere() {
        let device = [7u8; 16];
        let attacked = given((0..50).map(|i| failed(None, t(i))));
        let state = attacked.clone().state();
        assert!(state.login_delay(Source::Untrusted, t(51)).is_some());
        assert_eq!(state.login_delay(Source::Device(device), t(51)), None);
        attacked
            .when(Command::RecordLoginFailure {
                source: Source::Device(device),
                at: t(51),
            })
            .then(vec![failed(Some(device), t(51))]);
    }

    #[test]
    fn the_delay_doubles_and_stops_at_fifteen_minutes() {
        assert_eq!(delay_after(4), None);
        assert_eq!(delay_after(5), Some(Duration::seconds(30)));
        assert_eq!(delay_after(6), Some(Duration::seconds(60)));
        assert_eq!(delay_after(100), Some(MAX_LOGIN_DELAY));
    }

    #[test]
    fn a_success_resets_only_its_own_source() {
        let device = [1u8; 16];
        let mut events: Vec<Event> = (0..6).map(|i| failed(None, t(i))).collect();
        events.extend((0..6).map(|i| failed(Some(device), t(i))));
        let after = given(events)
            .when(Command::RecordLoginSuccess {
                source: Source::Device(device),
                at: t(1000),
            })
            .accepted()
            .state();
        assert_eq!(after.failures(Source::Device(device)).count, 0);
        assert_eq!(after.failures(Source::Untrusted).count, 6);
    }

    #[test]
    fn a_success_without_failures_records_nothing() {
        given([])
            .when(Command::RecordLoginSuccess {
                source: Source::Untrusted,
                at: t(0),
            })
            .then(vec![]);
    }

    #[test]
    fn device_counters_are_bounded_and_the_oldest_goes_first() {
        let events = (0..(MAX_DEVICES as u8 + 4)).map(|i| failed(Some([i; 16]), t(i as i64)));
        let state = given(events).state();
        assert_eq!(state.devices.len(), MAX_DEVICES);
        assert_eq!(state.failures(Source::Device([0; 16])).count, 0);
        assert_eq!(
            state
                .failures(Source::Device([MAX_DEVICES as u8 + 3; 16]))
                .count,
            1
        );
    }
}

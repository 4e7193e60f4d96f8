//! Sign-in throttling rules: a progressive back-off and a hard lock per account, and a failure
//! budget per client address. Pure: the state comes from the database, the time is a parameter,
//! and the server's SQL mirrors `ThrottlePolicy::check_account` / `check_address` in its `WHERE`
//! clauses so that the decision is taken atomically on every node.
//!
//! The account is named by a keyed hash of the normalised email, not by a user id, so an email
//! without an account is throttled and locked exactly like one with an account: the answers
//! cannot tell them apart.
//!
//! Attempts are *reserved* before the password is verified (counted as pending), so concurrent
//! attempts on several nodes cannot get more guesses than the rules allow: while an account is
//! in its back-off zone only one attempt may be in flight, and failures plus attempts in flight
//! never exceed `lock_after`.

use std::net::IpAddr;

/// The numbers behind the throttle. `POLICY` is what the server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Consecutive failures allowed without any delay.
    pub free_failures: i64,
    /// The delay after the `free_failures`-th consecutive failure; it doubles with each further
    /// failure...
    pub base_delay_ms: i64,
    /// ...up to this.
    pub max_delay_ms: i64,
    /// After this many consecutive failures the account refuses password sign-in until it is
    /// unlocked (by a platform admin today; by a password reset once there is one).
    pub lock_after: i64,
    /// What `Retry-After` says for a locked account: there is no time at which it unlocks by
    /// itself, so this only spaces out clients that retry automatically.
    pub locked_retry_after_ms: i64,
    /// Failures allowed per client address (an IPv4 address, an IPv6 /64) per window.
    pub address_max_failures: i64,
    pub address_window_ms: i64,
    /// How long a reserved attempt counts as in flight if its node never reports the outcome
    /// (a crash): longer than the hashing pool's wait plus one verification.
    pub in_flight_lease_ms: i64,
}

const MINUTE_MS: i64 = 60 * 1000;

pub const POLICY: ThrottlePolicy = ThrottlePolicy {
    free_failures: 5,
    base_delay_ms: MINUTE_MS,
    max_delay_ms: 15 * MINUTE_MS,
    lock_after: 100,
    locked_retry_after_ms: 60 * MINUTE_MS,
    address_max_failures: 50,
    address_window_ms: 15 * MINUTE_MS,
    in_flight_lease_ms: 30 * 1000,
};

/// What the database holds for one account key. A key never seen is `AccountState::default()`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AccountState {
    /// Consecutive failures since the last success or unlock.
    pub failures: i64,
    /// Attempts reserved and not yet settled...
    pub pending: i64,
    /// ...which stop counting at this time (their lease).
    pub in_flight_until: i64,
    /// No password attempt before this time.
    pub blocked_until: i64,
    /// Refuses password sign-in until unlocked.
    pub locked: bool,
}

impl AccountState {
    /// Attempts in flight whose lease has not run out.
    pub fn effective_pending(&self, now_ms: i64) -> i64 {
        if self.in_flight_until <= now_ms {
            0
        } else {
            self.pending.max(0)
        }
    }
}

/// What the database holds for one client address: a fixed window and the failures in it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AddressState {
    pub window_start: i64,
    pub failures: i64,
}

/// Why an attempt is refused without verifying the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The account reached `lock_after` consecutive failures.
    Locked,
    /// The account is in its back-off window until the given time.
    AccountBackoff { until_ms: i64 },
    /// Another attempt on this account is being verified and the account allows no more at
    /// once (back-off zone, or the lock would be passed).
    AccountBusy,
    /// The client address used up its failure budget for the window ending at the given time.
    AddressBudget { until_ms: i64 },
}

impl Refusal {
    /// Whole seconds to put in `Retry-After`: at least 1, rounded up.
    pub fn retry_after_secs(&self, policy: &ThrottlePolicy, now_ms: i64) -> u64 {
        let wait_ms = match *self {
            Refusal::Locked => policy.locked_retry_after_ms,
            Refusal::AccountBackoff { until_ms } | Refusal::AddressBudget { until_ms } => {
                until_ms.saturating_sub(now_ms)
            }
            Refusal::AccountBusy => 1000,
        };
        let secs = wait_ms.saturating_add(999) / 1000;
        u64::try_from(secs.max(1)).unwrap_or(1)
    }

    /// The outcome recorded in the sign-in history.
    pub fn outcome(&self) -> SignInOutcome {
        match self {
            Refusal::Locked => SignInOutcome::Locked,
            _ => SignInOutcome::Throttled,
        }
    }

    /// A stable name for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Locked => "account_locked",
            Refusal::AccountBackoff { .. } => "account_backoff",
            Refusal::AccountBusy => "account_busy",
            Refusal::AddressBudget { .. } => "address_budget",
        }
    }
}

/// What the account key becomes after a failure is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterFailure {
    pub blocked_until: i64,
    pub locked: bool,
}

impl ThrottlePolicy {
    /// The back-off after `failures` consecutive failures (0 while still free).
    pub fn delay_after(&self, failures: i64) -> i64 {
        if failures < self.free_failures {
            return 0;
        }
        let doublings = u32::try_from((failures - self.free_failures).min(40)).unwrap_or(40);
        self.base_delay_ms
            .saturating_mul(1_i64.checked_shl(doublings).unwrap_or(i64::MAX))
            .min(self.max_delay_ms)
    }

    /// Whether a new attempt on this account may be verified now. The store's reservation
    /// (`UPDATE … WHERE`) applies the same conditions atomically.
    pub fn check_account(&self, s: &AccountState, now_ms: i64) -> Result<(), Refusal> {
        let pending = s.effective_pending(now_ms);
        if s.locked || s.failures >= self.lock_after {
            return Err(Refusal::Locked);
        }
        if s.failures + pending >= self.lock_after {
            return Err(Refusal::AccountBusy);
        }
        if s.blocked_until > now_ms {
            return Err(Refusal::AccountBackoff {
                until_ms: s.blocked_until,
            });
        }
        if s.failures + pending >= self.free_failures && pending > 0 {
            return Err(Refusal::AccountBusy);
        }
        Ok(())
    }

    /// The state after the `failures`-th consecutive failure, settled at `now_ms`.
    pub fn after_failure(&self, failures: i64, now_ms: i64) -> AfterFailure {
        AfterFailure {
            blocked_until: now_ms.saturating_add(self.delay_after(failures)),
            locked: failures >= self.lock_after,
        }
    }

    /// The window that is current at `now_ms` starts after this instant; an older window
    /// starts afresh.
    pub fn address_window_cutoff(&self, now_ms: i64) -> i64 {
        now_ms.saturating_sub(self.address_window_ms)
    }

    /// Whether one more failure may be risked from this address now (`s` as last stored).
    pub fn check_address(&self, s: &AddressState, now_ms: i64) -> Result<(), Refusal> {
        let in_window = s.window_start > self.address_window_cutoff(now_ms);
        if in_window && s.failures >= self.address_max_failures {
            return Err(Refusal::AddressBudget {
                until_ms: s.window_start.saturating_add(self.address_window_ms),
            });
        }
        Ok(())
    }

    /// Whether an attempt that took ticket number `after.failures` of its window may go on.
    pub fn check_address_ticket(&self, after: &AddressState, now_ms: i64) -> Result<(), Refusal> {
        self.check_address(
            &AddressState {
                window_start: after.window_start,
                failures: after.failures - 1,
            },
            now_ms,
        )
    }
}

/// The throttling key of a client address: IPv4 addresses as they are, IPv6 addresses by their
/// /64 (one subscriber usually gets a whole /64, so single IPv6 addresses cost an attacker
/// nothing), IPv4-mapped IPv6 as the IPv4 address.
pub fn address_bucket(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{net}/64")
        }
    }
}

/// The outcome of one sign-in attempt, as kept in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInOutcome {
    Success,
    WrongPassword,
    Throttled,
    Locked,
}

impl SignInOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            SignInOutcome::Success => "success",
            SignInOutcome::WrongPassword => "wrong_password",
            SignInOutcome::Throttled => "throttled",
            SignInOutcome::Locked => "locked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(SignInOutcome::Success),
            "wrong_password" => Some(SignInOutcome::WrongPassword),
            "throttled" => Some(SignInOutcome::Throttled),
            "locked" => Some(SignInOutcome::Locked),
            _ => None,
        }
    }

    /// Words for people.
    pub fn label(&self) -> &'static str {
        match self {
            SignInOutcome::Success => "Signed in",
            SignInOutcome::WrongPassword => "Wrong password",
            SignInOutcome::Throttled => "Refused: too many attempts",
            SignInOutcome::Locked => "Refused: account locked",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_564_800_000;
    const P: ThrottlePolicy = POLICY;

    /// Plays `n` failed attempts against one account the way the server does (check, reserve,
    /// settle), waiting out each back-off; returns the state and the time after them.
    fn fail(mut s: AccountState, mut now: i64, n: i64) -> (AccountState, i64) {
        for _ in 0..n {
            if let Err(Refusal::AccountBackoff { until_ms }) = P.check_account(&s, now) {
                now = until_ms;
            }
            assert_eq!(P.check_account(&s, now), Ok(()), "{s:?}");
            s.failures += 1;
            let after = P.after_failure(s.failures, now);
            s.blocked_until = after.blocked_until;
            s.locked = after.locked;
        }
        (s, now)
    }

    #[test]
    fn back_off_starts_after_five_failures_and_doubles_up_to_a_cap() {
        assert_eq!(P.delay_after(0), 0);
        assert_eq!(P.delay_after(4), 0);
        assert_eq!(P.delay_after(5), 60_000);
        assert_eq!(P.delay_after(6), 120_000);
        assert_eq!(P.delay_after(8), 480_000);
        assert_eq!(P.delay_after(9), 15 * 60_000, "960 s capped at 15 min");
        assert_eq!(P.delay_after(99), 15 * 60_000);
        assert_eq!(P.delay_after(i64::MAX), 15 * 60_000, "no overflow");
    }

    #[test]
    fn the_sixth_attempt_waits_and_may_go_once_the_window_passes() {
        let (s, now) = fail(AccountState::default(), T0, 4);
        assert_eq!(P.check_account(&s, now), Ok(()), "four failures are free");
        let (s, now) = fail(s, now, 1);
        let refusal = P.check_account(&s, now).expect_err("back-off");
        assert_eq!(
            refusal,
            Refusal::AccountBackoff {
                until_ms: now + 60_000
            }
        );
        assert_eq!(refusal.retry_after_secs(&P, now), 60);
        assert_eq!(refusal.retry_after_secs(&P, now + 59_001), 1, "rounded up");
        assert_eq!(refusal.outcome(), SignInOutcome::Throttled);
        assert!(P.check_account(&s, now + 59_999).is_err());
        assert_eq!(P.check_account(&s, now + 60_000), Ok(()));
    }

    #[test]
    fn the_hundredth_failure_locks_for_good() {
        let (s, now) = fail(AccountState::default(), T0, 99);
        assert!(!s.locked);
        let (s, now) = fail(s, now, 1);
        assert!(s.locked);
        let later = now + 365 * 24 * 60 * 60 * 1000;
        let refusal = P.check_account(&s, later).expect_err("locked");
        assert_eq!(refusal, Refusal::Locked);
        assert_eq!(refusal.outcome(), SignInOutcome::Locked);
        assert_eq!(refusal.retry_after_secs(&P, later), 3600);
        // Even without the flag, the count alone locks.
        let unflagged = AccountState { locked: false, ..s };
        assert_eq!(P.check_account(&unflagged, later), Err(Refusal::Locked));
        // Reaching 100 takes the attacker most of a day.
        assert!(now - T0 > 20 * 60 * 60 * 1000, "{}", now - T0);
    }

    #[test]
    fn attempts_in_flight_count_against_the_limits() {
        // Free zone: several at once are fine, up to the free count.
        let s = AccountState {
            failures: 2,
            pending: 2,
            in_flight_until: T0 + 30_000,
            ..AccountState::default()
        };
        assert_eq!(P.check_account(&s, T0), Ok(()));
        let s = AccountState { pending: 3, ..s };
        assert_eq!(P.check_account(&s, T0), Err(Refusal::AccountBusy));
        assert_eq!(
            Refusal::AccountBusy.retry_after_secs(&P, T0),
            1,
            "a busy account is worth retrying at once"
        );
        // The lease ends: a crashed node's reservation stops counting.
        assert_eq!(P.check_account(&s, T0 + 30_000), Ok(()));
        // Never more than 100 failures, even with attempts racing.
        let s = AccountState {
            failures: 99,
            pending: 1,
            in_flight_until: T0 + 30_000,
            ..AccountState::default()
        };
        assert_eq!(P.check_account(&s, T0), Err(Refusal::AccountBusy));
    }

    #[test]
    fn an_address_has_a_budget_per_window() {
        let mut s = AddressState::default();
        let mut now = T0;
        for i in 0..50 {
            // Each attempt takes a ticket as the store does, starting a new window when due.
            if s.window_start <= P.address_window_cutoff(now) {
                s = AddressState {
                    window_start: now,
                    failures: 0,
                };
            }
            s.failures += 1;
            assert_eq!(P.check_address_ticket(&s, now), Ok(()), "ticket {i}");
            now += 1000;
        }
        let refusal = P.check_address(&s, now).expect_err("budget used");
        assert_eq!(
            refusal,
            Refusal::AddressBudget {
                until_ms: T0 + 15 * 60_000
            }
        );
        assert_eq!(refusal.retry_after_secs(&P, now), 15 * 60 - 50);
        let over = AddressState { failures: 51, ..s };
        assert!(P.check_address_ticket(&over, now).is_err());
        assert_eq!(P.check_address(&s, T0 + 15 * 60_000), Ok(()));
        assert_eq!(P.check_address(&AddressState::default(), T0), Ok(()));
    }

    #[test]
    fn ipv6_addresses_are_throttled_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(address_bucket(a), "2001:db8:1:2::/64");
        assert_eq!(address_bucket(a), address_bucket(b));
        assert_ne!(address_bucket(a), address_bucket(c));
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().expect("ip");
        assert_eq!(address_bucket(mapped), "203.0.113.7");
    }

    #[test]
    fn outcomes_round_trip() {
        for o in [
            SignInOutcome::Success,
            SignInOutcome::WrongPassword,
            SignInOutcome::Throttled,
            SignInOutcome::Locked,
        ] {
            assert_eq!(SignInOutcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(SignInOutcome::parse("nope"), None);
    }
}

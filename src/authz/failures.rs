//! Rate limiting of failed authentication, per client address and per key id.
//!
//! Each failure is counted in a fixed window that starts at the first failure; once a
//! client address or a key id reaches the limit, every attempt from it (even with a valid
//! credential) is refused with 429 until the window ends. Successes do not reset the count,
//! so guesses cannot be interleaved with a known-good key to stay under the limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most tracked clients and keys; past it, expired entries are dropped, then the oldest.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Address(IpAddr),
    Key(String),
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Counts authentication failures; shared by every worker.
#[derive(Debug, Clone)]
pub struct FailureLimiter {
    windows: Arc<Mutex<HashMap<Subject, Window>>>,
    max_failures: u32,
    window: Duration,
}

impl FailureLimiter {
    /// Allows `max_failures` failures per `window` for each address and each key id.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            windows: Arc::default(),
            max_failures: max_failures.max(1),
            window,
        }
    }

    /// `Some(retry after)` while the address or the key id is locked out at `now`.
    pub fn locked(&self, address: IpAddr, key_id: Option<&str>, now: Instant) -> Option<Duration> {
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let subjects = [
            Some(Subject::Address(address)),
            key_id.map(|k| Subject::Key(k.to_owned())),
        ];
        subjects
            .iter()
            .flatten()
            .filter_map(|s| windows.get(s))
            .filter(|w| w.failures >= self.max_failures)
            .filter_map(|w| (w.started + self.window).checked_duration_since(now))
            .filter(|left| !left.is_zero())
            .max()
    }

    /// Counts one failure for the address and, when the credential named one, the key id;
    /// `true` when this failure reached the limit for either (a lock-out begins now, once
    /// per window).
    pub fn record_failure(&self, address: IpAddr, key_id: Option<&str>, now: Instant) -> bool {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() >= MAX_TRACKED {
            windows.retain(|_, w| now.duration_since(w.started) < self.window);
            if windows.len() >= MAX_TRACKED {
                let oldest = windows
                    .iter()
                    .min_by_key(|(_, w)| w.started)
                    .map(|(s, _)| s.clone());
                if let Some(s) = oldest {
                    windows.remove(&s);
                }
            }
        }
        let subjects = [
            Some(Subject::Address(address)),
            key_id.map(|k| Subject::Key(k.to_owned())),
        ];
        let mut reached = false;
        for subject in subjects.into_iter().flatten() {
            let window = windows.entry(subject).or_insert(Window {
                started: now,
                failures: 0,
            });
            if now.duration_since(window.started) >= self.window {
                *window = Window {
                    started: now,
                    failures: 0,
                };
            }
            window.failures = window.failures.saturating_add(1);
            reached |= window.failures == self.max_failures;
        }
        reached
    }
}

/// Remembers when each credential was last recorded as a successful authentication, so
/// that `auth.success` is audited once per credential per `every` (a session start), not
/// on every request.
#[derive(Debug, Clone)]
pub struct SuccessLog {
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    every: Duration,
}

impl SuccessLog {
    /// Records a credential at most once per `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            seen: Arc::default(),
            every,
        }
    }

    /// Whether `credential`'s success at `now` should be recorded (and notes it if so).
    pub fn first_in_window(&self, credential: &str, now: Instant) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= MAX_TRACKED {
            seen.retain(|_, at| now.duration_since(*at) < self.every);
        }
        match seen.get(credential) {
            Some(at) if now.duration_since(*at) < self.every => false,
            _ => {
                seen.insert(credential.to_owned(), now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_the_limit_and_releases_when_the_window_ends() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let t0 = Instant::now();
        for _ in 0..2 {
            limiter.record_failure(a, Some("k1"), t0);
        }
        assert_eq!(limiter.locked(a, None, t0), None, "under the limit");
        limiter.record_failure(a, Some("k1"), t0);
        assert_eq!(limiter.locked(a, None, t0), Some(Duration::from_secs(60)));
        assert!(
            limiter.locked(b, Some("k1"), t0).is_some(),
            "the key id is locked from any address"
        );
        assert_eq!(limiter.locked(b, Some("k2"), t0), None);
        let later = t0 + Duration::from_secs(61);
        assert_eq!(limiter.locked(a, Some("k1"), later), None, "released");
        limiter.record_failure(a, None, later);
        assert_eq!(
            limiter.locked(a, None, later),
            None,
            "a new window starts at 1"
        );
    }

    #[test]
    fn a_success_is_recorded_once_per_window() {
        let log = SuccessLog::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(log.first_in_window("key:a", t0));
        assert!(!log.first_in_window("key:a", t0 + Duration::from_secs(59)));
        assert!(log.first_in_window("key:b", t0));
        assert!(log.first_in_window("key:a", t0 + Duration::from_secs(60)));
    }
}

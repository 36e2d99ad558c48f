//! Failed-login back-off: after `limit` failed authentications (RFC 7143 §11.13.5 status
//! 0x0201) from one initiator name, or from one source address, within `window`, every login
//! from that name or address is refused for `window` from the last failure, whatever
//! credentials it brings. Guessing a CHAP secret online then costs an attacker a window per
//! `limit` guesses. LIO has no such limit (research/lio.md lists none); it is ours.
//!
//! The refusal is a Login Response with 0x0201 at once, not a delay: a delayed answer would
//! hold a pending-login place and a socket per attempt, which is what a flood wants. Each key's
//! block is logged once when it begins (the name or address and the count, never a secret).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::warn;

/// Keys remembered at most; past it the one idle longest is forgotten first. Bounds the
/// memory an attacker inventing names or addresses can make us use.
const MAX_KEYS: usize = 4096;

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Key {
    Name(String),
    Addr(IpAddr),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Name(n) => write!(f, "initiator {n}"),
            Key::Addr(a) => write!(f, "address {a}"),
        }
    }
}

#[derive(Default)]
struct Strikes {
    /// Failures within the window, oldest first.
    fails: VecDeque<Instant>,
    /// Logins are refused until then.
    blocked_until: Option<Instant>,
}

impl Strikes {
    fn last(&self) -> Option<Instant> {
        self.blocked_until.or(self.fails.back().copied())
    }
}

/// The failed-login record of the whole fabric.
pub(crate) struct AuthGuard {
    limit: usize,
    window: Duration,
    keys: Mutex<HashMap<Key, Strikes>>,
}

impl AuthGuard {
    /// `limit` 0 turns the back-off off.
    pub(crate) fn new(limit: u32, window: Duration) -> AuthGuard {
        AuthGuard {
            limit: limit as usize,
            window,
            keys: Mutex::new(HashMap::new()),
        }
    }

    fn both(name: &str, addr: IpAddr) -> [Key; 2] {
        [Key::Name(name.to_string()), Key::Addr(addr)]
    }

    /// Is a login from `name` at `addr` refused now?
    pub(crate) fn blocked(&self, name: &str, addr: IpAddr) -> bool {
        if self.limit == 0 {
            return false;
        }
        let now = Instant::now();
        let keys = self.keys.lock();
        Self::both(name, addr).iter().any(|k| {
            keys.get(k)
                .and_then(|s| s.blocked_until)
                .is_some_and(|until| now < until)
        })
    }

    /// Record a failed authentication of `name` from `addr`.
    pub(crate) fn failed(&self, name: &str, addr: IpAddr) {
        if self.limit == 0 {
            return;
        }
        let now = Instant::now();
        let mut keys = self.keys.lock();
        for k in Self::both(name, addr) {
            if !keys.contains_key(&k) && keys.len() >= MAX_KEYS {
                forget_one(&mut keys, now, self.window);
            }
            let s = keys.entry(k.clone()).or_default();
            if s.blocked_until.is_some_and(|until| now >= until) {
                s.blocked_until = None;
            }
            while s
                .fails
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.window)
            {
                s.fails.pop_front();
            }
            s.fails.push_back(now);
            if s.fails.len() >= self.limit && s.blocked_until.is_none() {
                s.blocked_until = Some(now + self.window);
                warn!(
                    "{k}: {} failed authentications within {} s; its logins are refused for {} s",
                    s.fails.len(),
                    self.window.as_secs_f64(),
                    self.window.as_secs_f64()
                );
                s.fails.clear();
            }
        }
    }
}

/// Make room for one key: drop every key whose last event is a window old, else the one idle
/// longest.
fn forget_one(keys: &mut HashMap<Key, Strikes>, now: Instant, window: Duration) {
    keys.retain(|_, s| {
        s.last()
            .is_some_and(|t| t > now || now.duration_since(t) < window)
    });
    if keys.len() < MAX_KEYS {
        return;
    }
    if let Some(k) = keys
        .iter()
        .min_by_key(|(_, s)| s.last())
        .map(|(k, _)| k.clone())
    {
        keys.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_th_failure_blocks_name_and_address_for_the_window() {
        let g = AuthGuard::new(3, Duration::from_millis(200));
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        g.failed("n1", a);
        g.failed("n1", a);
        assert!(!g.blocked("n1", a), "two of three");
        g.failed("n1", a);
        assert!(g.blocked("n1", a));
        assert!(g.blocked("n1", b), "the name, from anywhere");
        assert!(g.blocked("n2", a), "the address, under any name");
        assert!(!g.blocked("n2", b));
        std::thread::sleep(Duration::from_millis(250));
        assert!(!g.blocked("n1", a), "the window passed");
    }

    #[test]
    fn zero_turns_it_off_and_keys_stay_bounded() {
        let off = AuthGuard::new(0, Duration::from_secs(60));
        let a: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..10 {
            off.failed("n", a);
        }
        assert!(!off.blocked("n", a));
        let g = AuthGuard::new(5, Duration::from_secs(60));
        for i in 0..(MAX_KEYS * 2) {
            g.failed(&format!("n{i}"), a);
        }
        assert!(g.keys.lock().len() <= MAX_KEYS);
        assert!(g.blocked("anyone", a), "the address stayed in the record");
    }
}

//! The replicas behind the gateway: resolved from the configured names, each with its requests in
//! flight, its active health and its passive ejection; and the choice of one for a request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::config::Balance;

/// Longest ejection.
const MAX_EJECTION: Duration = Duration::from_secs(60);

/// One replica.
#[derive(Debug)]
pub(crate) struct Backend {
    pub(crate) addr: SocketAddr,
    /// The address as metrics and logs show it, made once.
    pub(crate) label: Arc<str>,
    /// The address as a URI authority, made once.
    authority: Option<axum::http::uri::Authority>,
    outstanding: AtomicUsize,
    /// The active checks' verdict.
    healthy: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    check_passes: u32,
    check_fails: u32,
    /// Connection errors or 502/503/504 in a row.
    request_failures: u32,
    /// Ejections in a row; each lasts twice as long as the one before.
    ejections: u32,
    ejected_until: Option<Instant>,
}

impl Backend {
    fn new(addr: SocketAddr) -> Backend {
        Backend {
            addr,
            label: addr.to_string().into(),
            authority: axum::http::uri::Authority::try_from(addr.to_string().as_str()).ok(),
            outstanding: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            state: Mutex::new(State::default()),
        }
    }

    /// The replica's URI for a request target.
    pub(crate) fn uri(&self, target: &axum::http::uri::PathAndQuery) -> axum::http::Uri {
        let mut parts = axum::http::uri::Parts::default();
        parts.scheme = Some(axum::http::uri::Scheme::HTTP);
        parts.authority = self.authority.clone();
        parts.path_and_query = Some(target.clone());
        axum::http::Uri::from_parts(parts).unwrap_or_default()
    }

    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Healthy and not ejected.
    pub(crate) fn is_available(&self, now: Instant) -> bool {
        self.is_healthy() && self.state().ejected_until.is_none_or(|until| until <= now)
    }

    /// Counts a request in flight until the returned guard is dropped (when its response body
    /// has ended).
    pub(crate) fn start_request(self: &Arc<Self>) -> InFlight {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight {
            backend: self.clone(),
        }
    }

    /// The replica answered (anything but 502/503/504).
    pub(crate) fn record_success(&self) {
        let mut state = self.state();
        state.request_failures = 0;
        if state
            .ejected_until
            .is_some_and(|until| until <= Instant::now())
        {
            state.ejected_until = None;
            state.ejections = 0;
        }
    }

    /// A connection error or a 502/503/504; returns true if it ejected the replica.
    pub(crate) fn record_failure(&self, eject_after: u32, base: Duration) -> bool {
        let mut state = self.state();
        state.request_failures += 1;
        let now = Instant::now();
        let already = state.ejected_until.is_some_and(|until| until > now);
        if state.request_failures < eject_after || already {
            return false;
        }
        state.request_failures = 0;
        state.ejections += 1;
        let factor = 1u32 << (state.ejections - 1).min(16);
        state.ejected_until = Some(now + base.saturating_mul(factor).min(MAX_EJECTION));
        true
    }

    /// One active check's result; returns the new health when it changed.
    pub(crate) fn record_check(&self, ok: bool, fails: u32, passes: u32) -> Option<bool> {
        let mut state = self.state();
        if ok {
            state.check_passes += 1;
            state.check_fails = 0;
        } else {
            state.check_fails += 1;
            state.check_passes = 0;
        }
        let was = self.is_healthy();
        let now = if was {
            state.check_fails < fails
        } else {
            state.check_passes >= passes
        };
        self.healthy.store(now, Ordering::Relaxed);
        if now && !was {
            // Back after an outage: forget the passive record too.
            state.ejected_until = None;
            state.ejections = 0;
            state.request_failures = 0;
        }
        (now != was).then_some(now)
    }
}

/// A request in flight on a replica.
#[derive(Debug)]
pub(crate) struct InFlight {
    backend: Arc<Backend>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.backend.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every replica, and how to choose one.
#[derive(Debug)]
pub(crate) struct Upstreams {
    targets: Vec<String>,
    backends: RwLock<Arc<Vec<Arc<Backend>>>>,
    balance: Balance,
    next: AtomicUsize,
}

impl Upstreams {
    pub(crate) fn new(targets: Vec<String>, balance: Balance) -> Upstreams {
        Upstreams {
            targets,
            backends: RwLock::new(Arc::new(Vec::new())),
            balance,
            next: AtomicUsize::new(0),
        }
    }

    pub(crate) fn backends(&self) -> Arc<Vec<Arc<Backend>>> {
        self.backends
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Resolves every name again. Replicas that stay keep their state; a name that does not
    /// resolve this time keeps its previous addresses rather than vanishing.
    pub(crate) async fn resolve(&self) {
        let mut resolved = Vec::with_capacity(self.targets.len());
        for target in &self.targets {
            let addrs = match tokio::net::lookup_host(target.as_str()).await {
                Ok(found) => found.collect(),
                Err(error) => {
                    tracing::warn!(upstream = %target, %error, "cannot resolve upstream; keeping what it had");
                    Vec::new()
                }
            };
            resolved.push((target.as_str(), addrs));
        }
        self.apply_resolution(&resolved);
    }

    /// Replaces the replicas with those of a resolution: each target with the addresses it
    /// resolved to (none when it failed to resolve).
    fn apply_resolution(&self, resolved: &[(&str, Vec<SocketAddr>)]) {
        let current = self.backends();
        let mut next: Vec<Arc<Backend>> = Vec::new();
        for (target, addrs) in resolved {
            let kept: Vec<SocketAddr>;
            let addrs = if addrs.is_empty() {
                kept = current
                    .iter()
                    .filter(|b| target_matches(target, b.addr))
                    .map(|b| b.addr)
                    .collect();
                &kept
            } else {
                addrs
            };
            for &addr in addrs {
                if next.iter().any(|b| b.addr == addr) {
                    continue;
                }
                let backend = current
                    .iter()
                    .find(|b| b.addr == addr)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Backend::new(addr)));
                next.push(backend);
            }
        }
        let changed = next.len() != current.len()
            || next
                .iter()
                .zip(current.iter())
                .any(|(a, b)| a.addr != b.addr);
        if changed {
            tracing::info!(upstreams = ?next.iter().map(|b| b.addr).collect::<Vec<_>>(), "upstreams resolved");
        }
        *self
            .backends
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(next);
    }

    /// A replica for a request, not one of `tried`. Only available replicas are chosen while
    /// there are any; when none is, every replica is a candidate again, so a wrong verdict never
    /// takes the whole service down.
    pub(crate) fn pick(&self, tried: &[SocketAddr]) -> Option<Arc<Backend>> {
        let backends = self.backends();
        let now = Instant::now();
        let untried: Vec<&Arc<Backend>> = backends
            .iter()
            .filter(|b| !tried.contains(&b.addr))
            .collect();
        let available: Vec<&Arc<Backend>> = untried
            .iter()
            .copied()
            .filter(|b| b.is_available(now))
            .collect();
        let candidates = if available.is_empty() {
            untried
        } else {
            available
        };
        if candidates.is_empty() {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let chosen = match self.balance {
            Balance::RoundRobin => candidates[turn % candidates.len()],
            Balance::LeastOutstanding if candidates.len() == 1 => candidates[0],
            Balance::LeastOutstanding => {
                let first = fastrand::usize(..candidates.len());
                let mut second = fastrand::usize(..candidates.len() - 1);
                if second >= first {
                    second += 1;
                }
                let (a, b) = (candidates[first], candidates[second]);
                if b.outstanding() < a.outstanding() {
                    b
                } else {
                    a
                }
            }
        };
        Some(chosen.clone())
    }
}

/// Whether `addr` may have come from `target` (`host:port`): same port, and the host is the
/// address itself or a name.
fn target_matches(target: &str, addr: SocketAddr) -> bool {
    match target.parse::<SocketAddr>() {
        Ok(literal) => literal == addr,
        Err(_) => target
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse::<u16>().ok())
            .is_some_and(|port| port == addr.port()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn upstreams(balance: Balance, n: u16) -> Upstreams {
        let up = Upstreams::new(Vec::new(), balance);
        let backends = (0..n)
            .map(|i| Arc::new(Backend::new(SocketAddr::from(([127, 0, 0, 1], 9000 + i)))))
            .collect();
        *up.backends.write().unwrap() = Arc::new(backends);
        up
    }

    #[test]
    fn a_name_stands_for_every_address_it_resolves_to_and_follows_changes() {
        let up = Upstreams::new(vec!["replicas:8081".into()], Balance::RoundRobin);
        let addr = |last: u8| SocketAddr::from(([10, 0, 0, last], 8081));
        let addrs = |up: &Upstreams| up.backends().iter().map(|b| b.addr).collect::<Vec<_>>();
        up.apply_resolution(&[("replicas:8081", vec![addr(1), addr(2), addr(3)])]);
        assert_eq!(addrs(&up), [addr(1), addr(2), addr(3)]);
        let picks: Vec<SocketAddr> = (0..3).map(|_| up.pick(&[]).unwrap().addr).collect();
        assert_eq!(
            picks,
            [addr(1), addr(2), addr(3)],
            "each address is a replica"
        );

        // A replica that stays keeps its state (here, an ejection); a new one joins, a gone one
        // leaves.
        let second = up.backends()[1].clone();
        for _ in 0..3 {
            second.record_failure(3, Duration::from_secs(60));
        }
        up.apply_resolution(&[("replicas:8081", vec![addr(2), addr(4)])]);
        assert_eq!(addrs(&up), [addr(2), addr(4)]);
        assert!(Arc::ptr_eq(&up.backends()[0], &second));
        assert!(
            !up.backends()[0].is_available(Instant::now()),
            "still ejected"
        );

        // A failed lookup keeps what the name had; a literal address stays itself.
        let both = Upstreams::new(
            vec!["replicas:8081".into(), "127.0.0.1:9000".into()],
            Balance::RoundRobin,
        );
        let literal = SocketAddr::from(([127, 0, 0, 1], 9000));
        both.apply_resolution(&[
            ("replicas:8081", vec![addr(1), addr(2)]),
            ("127.0.0.1:9000", vec![literal]),
        ]);
        both.apply_resolution(&[("replicas:8081", vec![]), ("127.0.0.1:9000", vec![literal])]);
        assert_eq!(addrs(&both), [addr(1), addr(2), literal]);
    }

    #[test]
    fn round_robin_takes_turns_and_skips_what_was_tried() {
        let up = upstreams(Balance::RoundRobin, 3);
        let picks: Vec<u16> = (0..6).map(|_| up.pick(&[]).unwrap().addr.port()).collect();
        assert_eq!(picks, [9000, 9001, 9002, 9000, 9001, 9002]);
        let tried = [SocketAddr::from(([127, 0, 0, 1], 9000))];
        for _ in 0..5 {
            assert_ne!(up.pick(&tried).unwrap().addr.port(), 9000);
        }
    }

    #[test]
    fn least_outstanding_prefers_the_idle_replica() {
        let up = upstreams(Balance::LeastOutstanding, 2);
        let busy = up.backends()[0].clone();
        let _held: Vec<InFlight> = (0..5).map(|_| busy.start_request()).collect();
        for _ in 0..20 {
            assert_eq!(up.pick(&[]).unwrap().addr.port(), 9001);
        }
    }

    #[test]
    fn ejection_grows_and_never_leaves_no_replica() {
        let up = upstreams(Balance::RoundRobin, 2);
        let bad = up.backends()[0].clone();
        let base = Duration::from_millis(50);
        assert!(!bad.record_failure(2, base));
        assert!(bad.record_failure(2, base), "ejected after two failures");
        for _ in 0..6 {
            assert_eq!(up.pick(&[]).unwrap().addr.port(), 9001);
        }
        // With the good one tried, the ejected one is still better than nothing.
        let tried = [SocketAddr::from(([127, 0, 0, 1], 9001))];
        assert_eq!(up.pick(&tried).unwrap().addr.port(), 9000);
        std::thread::sleep(Duration::from_millis(60));
        assert!(bad.is_available(Instant::now()), "back after its ejection");
        // A second ejection in a row lasts twice as long.
        bad.record_failure(2, base);
        assert!(bad.record_failure(2, base));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!bad.is_available(Instant::now()));
        std::thread::sleep(Duration::from_millis(50));
        assert!(bad.is_available(Instant::now()));
    }

    #[test]
    fn active_checks_need_several_results_in_a_row() {
        let backend = Backend::new(SocketAddr::from(([127, 0, 0, 1], 9000)));
        assert_eq!(backend.record_check(false, 2, 2), None);
        assert_eq!(backend.record_check(false, 2, 2), Some(false));
        assert_eq!(backend.record_check(true, 2, 2), None);
        assert_eq!(backend.record_check(true, 2, 2), Some(true));
    }
}

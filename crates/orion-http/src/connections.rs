//! Open connections, capped in total and per client address (or per any other key, such as a
//! hub's users). A connection over a cap is answered `503` with `Retry-After` (on plain HTTP)
//! and closed before any request is read.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::client_network;

/// The caps and what is open now, per client address.
pub type ConnectionLimits = Caps<IpAddr>;

/// Caps on what is open: in total and per key.
#[derive(Debug)]
pub struct Caps<K> {
    total: usize,
    per_client: usize,
    /// Refusals being written: bounded, so that a flood past the caps cannot hold sockets
    /// through its answers either.
    refusing: Arc<Semaphore>,
    /// The gauge of what is open, and the counter of refusals (by `reason`).
    gauge: &'static str,
    refusals: &'static str,
    open: Mutex<Open<K>>,
}

#[derive(Debug)]
struct Open<K> {
    total: usize,
    by_client: HashMap<K, usize>,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Total,
    PerClient,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Total => "total",
            Self::PerClient => "per_client",
        }
    }
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Admitted<K: Hash + Eq = IpAddr> {
    limits: Arc<Caps<K>>,
    client: K,
}

impl ConnectionLimits {
    /// Caps on a listener's connections.
    pub fn new(total: usize, per_client: usize) -> ConnectionLimits {
        Caps::named(
            total,
            per_client,
            "http_open_connections",
            "http_connections_refused_total",
        )
    }

    /// Admits a connection from `peer` (an IPv6 peer counts as its /64), or says which cap it
    /// would break.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admitted, Refused> {
        self.admit_key(client_network(peer))
    }
}

impl<K: Hash + Eq + Clone> Caps<K> {
    /// Caps reported under the gauge `gauge` and the counter `refusals`.
    pub fn named(
        total: usize,
        per_key: usize,
        gauge: &'static str,
        refusals: &'static str,
    ) -> Caps<K> {
        Caps {
            total,
            per_client: per_key,
            refusing: Arc::new(Semaphore::new(REFUSALS_AT_ONCE)),
            gauge,
            refusals,
            open: Mutex::new(Open {
                total: 0,
                by_client: HashMap::new(),
            }),
        }
    }

    /// Admits one more under `client`, or says which cap it would break.
    pub fn admit_key(self: &Arc<Self>, client: K) -> Result<Admitted<K>, Refused> {
        let mut open = self.lock();
        if open.total >= self.total {
            return Err(self.refused(Refused::Total));
        }
        let from_client = open.by_client.entry(client.clone()).or_insert(0);
        if *from_client >= self.per_client {
            return Err(self.refused(Refused::PerClient));
        }
        *from_client += 1;
        open.total += 1;
        metrics::gauge!(self.gauge).set(open.total as f64);
        Ok(Admitted {
            limits: self.clone(),
            client,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().total
    }

    fn refused(&self, why: Refused) -> Refused {
        metrics::counter!(self.refusals, "reason" => why.as_str()).increment(1);
        why
    }
}

impl<K: Hash + Eq> Drop for Admitted<K> {
    fn drop(&mut self) {
        let mut open = self.limits.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.by_client.remove(&self.client);
            }
        }
        metrics::gauge!(self.limits.gauge).set(open.total as f64);
    }
}

/// Refusals written at once at most; past them a refused connection is closed unanswered.
const REFUSALS_AT_ONCE: usize = 64;

impl<K> Caps<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Open<K>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers a plain-HTTP connection over a cap with a `503` problem and closes it, off the
    /// accept loop and within a second (a client that does not read its answer does not hold
    /// the task); a connection that comes while many refusals are being written is only closed.
    pub fn refuse(&self, mut stream: TcpStream, why: Refused) {
        let Ok(permit) = self.refusing.clone().try_acquire_owned() else {
            return;
        };
        let detail = match why {
            Refused::Total => "the server has too many open connections; retry shortly",
            Refused::PerClient => "too many open connections from your address; retry shortly",
        };
        let body = format!(
            "{{\"type\":\"urn:orion:problem:too-many-connections\",\"title\":\"Service Unavailable\",\"status\":503,\"detail\":\"{detail}\"}}"
        );
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                stream.write_all(answer.as_bytes()).await?;
                stream.shutdown().await
            })
            .await;
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn caps_hold_per_client_and_in_total_and_free_on_drop() {
        let limits = Arc::new(ConnectionLimits::new(3, 2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = limits.admit(a).unwrap();
        let _second = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), Refused::PerClient);
        let _third = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).unwrap_err(), Refused::Total);
        drop(first);
        assert_eq!(limits.open(), 2);
        let _again = limits.admit(a).unwrap();
        // Two addresses of one IPv6 /64 are one client.
        let wide = Arc::new(ConnectionLimits::new(10, 1));
        let _one = wide.admit("2001:db8::1".parse().unwrap()).unwrap();
        assert_eq!(
            wide.admit("2001:db8::2".parse().unwrap()).unwrap_err(),
            Refused::PerClient
        );
    }
}

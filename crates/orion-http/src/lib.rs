//! Orion's HTTP listeners under limits, shared by the gateway and the API's own listener: the
//! slow-client timeouts, the HTTP/2 keep-alive and stream caps, and caps on open connections in
//! total and per client, so that a few thousand stalled sockets cannot exhaust a process.

mod connections;
mod serve;

use std::net::IpAddr;
use std::time::Duration;

pub use connections::{Admitted, Caps, ConnectionLimits, Refused};
pub use serve::{next_connection, serve};

/// Open connections from one client address unless configured, where clients are end users.
pub const DEFAULT_PER_CLIENT: usize = 1_024;

/// The per-client cap a listener takes when none is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerClient {
    /// [`DEFAULT_PER_CLIENT`]: the listener faces end users (the gateway).
    Default,
    /// As many as in total: the listener's clients are proxies (an API replica).
    Total,
}

/// The limits every Orion listener applies to its clients.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpLimits {
    /// Milliseconds a client has to send a complete request head, counted from the moment the
    /// connection opens or goes idle after an answer: it is both the header-read timeout and
    /// the keep-alive idle timeout.
    #[arg(long, env = "ORION_HTTP_HEADER_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub http_header_timeout_ms: u64,

    /// Milliseconds a client has to send a whole request body (`408` after that).
    #[arg(long, env = "ORION_HTTP_BODY_TIMEOUT_MS", default_value_t = 15_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub http_body_timeout_ms: u64,

    /// Open client connections at most; one more is answered `503` and closed.
    #[arg(long, env = "ORION_HTTP_MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub http_max_connections: u32,

    /// Open connections at most from one client address (an IPv6 client's /64). Unset: 1024 at
    /// the gateway; on an API replica, the total (a gateway in front of it is one client, and
    /// its pools open as many connections as it has requests in flight).
    #[arg(long, env = "ORION_HTTP_MAX_CONNECTIONS_PER_CLIENT",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub http_max_connections_per_client: Option<u32>,

    /// Concurrent streams on one HTTP/2 connection.
    #[arg(long, env = "ORION_HTTP2_MAX_STREAMS", default_value_t = 128,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub http2_max_streams: u32,

    /// Seconds between HTTP/2 keep-alive pings; a client that does not answer one within as
    /// long is disconnected.
    #[arg(long, env = "ORION_HTTP2_KEEP_ALIVE_SECONDS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub http2_keep_alive_seconds: u64,
}

impl HttpLimits {
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.http_header_timeout_ms)
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.http_body_timeout_ms)
    }

    /// The connection caps these limits set; `per_client` unless configured.
    pub fn connections(&self, per_client: PerClient) -> ConnectionLimits {
        let total = self.http_max_connections as usize;
        let per_client = match (self.http_max_connections_per_client, per_client) {
            (Some(configured), _) => configured as usize,
            (None, PerClient::Default) => DEFAULT_PER_CLIENT,
            (None, PerClient::Total) => total,
        };
        ConnectionLimits::new(total, per_client)
    }

    /// A server-side connection builder (HTTP/1.1 and HTTP/2) with these limits.
    pub fn builder(&self) -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        // Without a timer hyper enforces no timeout at all.
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout());
        let keep_alive = Duration::from_secs(self.http2_keep_alive_seconds);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(keep_alive)
            .keep_alive_timeout(keep_alive)
            .max_concurrent_streams(self.http2_max_streams);
        builder
    }
}

pub use hyper_util::rt::{TokioExecutor, TokioTimer};

/// Waits until a plain connection has sent enough to tell HTTP/1.1 from HTTP/2: hyper's
/// header-read timer only starts once the protocol is known, and the sniffing before it has no
/// timeout of its own, so a client that connects and sends nothing (or a few bytes of the
/// HTTP/2 preface) would otherwise hold the connection for ever. False when the client sent
/// nothing conclusive within `within`, or closed.
pub async fn request_started(stream: &tokio::net::TcpStream, within: Duration) -> bool {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let sniff = async {
        let mut start = [0u8; PREFACE.len()];
        loop {
            let seen = stream.peek(&mut start).await.unwrap_or(0);
            if seen == 0 {
                return false;
            }
            if seen == PREFACE.len() || start[..seen] != PREFACE[..seen] {
                return true;
            }
            // Part of the HTTP/2 preface: `peek` would answer at once again; wait for more.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(within, sniff).await.unwrap_or(false)
}

/// Whether `error` or any error in its chain of sources passes `test`: what a failed body read
/// or a failed upstream exchange was caused by (a body timeout, a client that broke off).
pub fn any_cause(
    error: &(dyn std::error::Error + 'static),
    test: impl Fn(&(dyn std::error::Error + 'static)) -> bool,
) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if test(error) {
            return true;
        }
        cause = error.source();
    }
    false
}

/// The address a client is counted under: its IPv4 address, or the /64 network of its IPv6
/// address (one subscriber's allocation, which a client can cycle through at will). An IPv4
/// address mapped into IPv6 counts as the IPv4 address.
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ipv6_clients_are_counted_by_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_network(a), client_network(b));
        assert_ne!(client_network(a), client_network(other));
        assert_eq!(
            client_network(a),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(client_network(v4), v4);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_network(mapped), v4);
    }
}

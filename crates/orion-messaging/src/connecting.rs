//! Opening an AMQP connection that can be given up.
//!
//! lapin runs each connection's I/O, the TCP connect and the AMQP handshake included, on a thread
//! of its own that owns the socket; dropping the `connect` future does not end that thread.
//! Against a broker that takes TCP connections but never answers (frozen, overloaded, behind a
//! partition: the kernel completes the TCP handshake whatever the process does) every timed-out
//! attempt left a thread and a socket behind, one per retry — hundreds over one outage. Here the
//! connector lapin calls keeps a second descriptor of its socket while the attempt is under way,
//! so that giving up shuts the socket down: lapin's thread reads the end of its stream and ends.
//! A TCP connect still waiting for an answer is abandoned the same way.
//!
//! Once the handshake is done the second descriptor is let go without touching the socket: the
//! connection's channels may outlive the `Connection` that opened them, and lapin's heartbeats
//! watch an open connection.

use std::net::Shutdown;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lapin::tcp::{AsyncTcpStream, OwnedTLSConfig};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties};
use socket2::{SockRef, Socket};
use tokio_util::sync::CancellationToken;

use crate::{Error, Result};

/// Connects and completes the AMQP handshake within `timeout`. When it times out, or the
/// returned future is dropped first, the attempt's socket is shut down.
pub(crate) async fn open(url: &str, timeout: Duration) -> Result<Connection> {
    let uri: AMQPUri = url.parse().map_err(Error::Url)?;
    let attempt = Attempt::default();
    // Armed from the start: whatever ends this function before the handshake gives up.
    let guard = GiveUpOnDrop {
        attempt: attempt.clone(),
        armed: true,
    };
    let connect = Connection::connector(
        uri,
        lapin::runtime::default_runtime()?,
        async move |uri: AMQPUri, runtime| {
            // The same TCP and TLS connect as lapin's own connector, plus the second descriptor.
            // Called once per attempt: lapin retries a connect only when a backoff is
            // configured, which Orion does not do.
            let addresses =
                runtime.to_socket_addrs((uri.authority.host.clone(), uri.authority.port));
            let stream = attempt
                .unless_given_up(AsyncTcpStream::connect(&runtime, addresses))
                .await?;
            let AsyncTcpStream::Plain(plain) = &stream else {
                return Err(std::io::Error::other("a new stream is not plain TCP").into());
            };
            attempt.keep(SockRef::from(plain.get_ref()).try_clone()?)?;
            Ok(match uri.scheme {
                AMQPScheme::AMQPS => {
                    stream
                        .into_tls(&uri.authority.host, OwnedTLSConfig::default().as_ref())
                        .await?
                }
                AMQPScheme::AMQP => stream,
            })
        },
        ConnectionProperties::default(),
    );
    let connection = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| Error::Timeout(timeout))??;
    guard.disarm();
    Ok(connection)
}

fn given_up() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "the connection attempt was given up",
    )
}

/// One attempt's state, shared between the caller and the connector lapin calls on its thread.
#[derive(Clone, Default)]
struct Attempt(Arc<Shared>);

#[derive(Default)]
struct Shared {
    socket: Mutex<Option<Socket>>,
    given_up: CancellationToken,
}

impl Attempt {
    fn socket(&self) -> std::sync::MutexGuard<'_, Option<Socket>> {
        // An `Option` stays consistent whatever panicked while holding the lock.
        self.0.socket.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `work`'s result, or an error as soon as the attempt is given up.
    async fn unless_given_up<T>(
        &self,
        work: impl Future<Output = std::io::Result<T>>,
    ) -> std::io::Result<T> {
        self.0
            .given_up
            .run_until_cancelled(work)
            .await
            .unwrap_or_else(|| Err(given_up()))
    }

    /// Keeps `socket` for a later give-up; shuts it down at once when that came first. Checked
    /// under the lock `give_up` takes after cancelling, so one of the two always shuts it down.
    fn keep(&self, socket: Socket) -> std::io::Result<()> {
        let mut kept = self.socket();
        if self.0.given_up.is_cancelled() {
            // The connect finished just as the attempt was given up: end it here, as
            // `give_up` would have.
            let _ = socket.shutdown(Shutdown::Both);
            return Err(given_up());
        }
        *kept = Some(socket);
        Ok(())
    }

    /// Stops a connect under way and shuts the socket down (lapin's thread sees its stream end).
    fn give_up(&self) {
        self.0.given_up.cancel();
        if let Some(socket) = self.socket().take() {
            // Fails only when the peer already ended the connection, which is as good.
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

/// Gives the attempt up when dropped, unless disarmed by a completed handshake.
struct GiveUpOnDrop {
    attempt: Attempt,
    armed: bool,
}

impl GiveUpOnDrop {
    /// The handshake is done: let the second descriptor go, leaving the socket to the connection.
    fn disarm(mut self) {
        self.armed = false;
        *self.attempt.socket() = None;
    }
}

impl Drop for GiveUpOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.attempt.give_up();
        }
    }
}

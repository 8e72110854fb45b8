//! Serving threads. Each runs its own single-threaded runtime with its own pool of connections
//! to the replicas, and serves the client connections the accept loop hands it from their first
//! byte to their last: the task that reads a client's request, the one that writes it to the
//! replica and the one that reads the answer wake each other on one core, with no work stealing
//! and no wake-up sent across threads. nginx's worker processes and Envoy's worker threads are
//! built the same way. State every request needs (replica health, rate limits, verified tokens)
//! stays shared.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::is_own_endpoint;
use crate::proxy::{self, Gateway, Scheme, upstream_client};

/// Two years, subdomains included: what HSTS preload lists ask for.
const HSTS: HeaderValue = HeaderValue::from_static("max-age=63072000; includeSubDomains");

/// How long a client has to complete its TLS handshake.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// A client connection, taken off the listener, for a worker to serve.
pub(crate) struct Accepted {
    pub(crate) stream: std::net::TcpStream,
    pub(crate) peer: SocketAddr,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    /// Its place under the connection caps, held until it closes.
    pub(crate) admitted: orion_http::Admitted,
}

/// The serving threads.
pub(crate) struct Workers {
    workers: Vec<Worker>,
    /// Stop taking connections; let those open finish their requests and close.
    stop: CancellationToken,
    /// Connections and tunnels are done: the runtimes may end.
    finish: CancellationToken,
}

struct Worker {
    queue: mpsc::UnboundedSender<Accepted>,
    open: Arc<AtomicUsize>,
    drained: Option<oneshot::Receiver<()>>,
    exited: Option<oneshot::Receiver<()>>,
}

impl Workers {
    /// Starts `count` threads serving `app`, each with its own upstream client.
    pub(crate) fn start(
        count: usize,
        gateway: &Arc<Gateway>,
        app: &Router,
        limits: &orion_http::HttpLimits,
        connect_timeout: Duration,
    ) -> crate::Result<Workers> {
        let stop = CancellationToken::new();
        let finish = CancellationToken::new();
        let mut workers = Vec::with_capacity(count);
        for index in 0..count.max(1) {
            let (queue, accepted) = mpsc::unbounded_channel();
            let (drained_tx, drained) = oneshot::channel();
            let (exited_tx, exited) = oneshot::channel();
            let open = Arc::new(AtomicUsize::new(0));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let serving = Serving {
                gateway: gateway.clone(),
                app: app.clone(),
                builder: limits.builder(),
                header_timeout: limits.header_timeout(),
                connect_timeout,
                open: open.clone(),
                stop: stop.clone(),
                finish: finish.clone(),
            };
            std::thread::Builder::new()
                .name(format!("gateway-worker-{index}"))
                .spawn(move || {
                    runtime.block_on(serving.run(accepted, drained_tx));
                    drop(runtime);
                    let _ = exited_tx.send(());
                })?;
            workers.push(Worker {
                queue,
                open,
                drained: Some(drained),
                exited: Some(exited),
            });
        }
        Ok(Workers {
            workers,
            stop,
            finish,
        })
    }

    /// Hands a connection to the worker serving the fewest.
    pub(crate) fn hand(&self, mut accepted: Accepted) {
        let mut order: Vec<&Worker> = self.workers.iter().collect();
        order.sort_by_key(|w| w.open.load(Ordering::Relaxed));
        for worker in order {
            match worker.queue.send(accepted) {
                Ok(()) => return,
                Err(mpsc::error::SendError(back)) => accepted = back,
            }
        }
        tracing::error!(peer = %accepted.peer, "no serving thread is left; closing the connection");
    }

    /// Stops taking connections and waits until every worker's connections have ended (their
    /// requests answered; upgraded ones live on as tunnels).
    pub(crate) async fn drain(&mut self) {
        self.stop.cancel();
        for worker in &mut self.workers {
            if let Some(drained) = worker.drained.take() {
                let _ = drained.await;
            }
        }
    }

    /// Ends the runtimes (whatever still runs on them is dropped) and waits for the threads,
    /// at most `deadline`.
    pub(crate) async fn finish(&mut self, deadline: Duration) {
        self.stop.cancel();
        self.finish.cancel();
        let exits = self.workers.iter_mut().filter_map(|w| w.exited.take());
        if tokio::time::timeout(deadline, futures_util::future::join_all(exits))
            .await
            .is_err()
        {
            tracing::warn!("serving threads did not end in time");
        }
    }
}

/// What one serving thread runs.
struct Serving {
    gateway: Arc<Gateway>,
    app: Router,
    /// HTTP/1.1 and HTTP/2 with the slow-client timeouts and stream caps.
    builder: hyper_util::server::conn::auto::Builder<TokioExecutor>,
    header_timeout: Duration,
    connect_timeout: Duration,
    open: Arc<AtomicUsize>,
    stop: CancellationToken,
    finish: CancellationToken,
}

impl Serving {
    async fn run(
        self,
        mut accepted: mpsc::UnboundedReceiver<Accepted>,
        drained: oneshot::Sender<()>,
    ) {
        // Made here, so that its pooled connections are this runtime's.
        let client = upstream_client(self.connect_timeout);
        let builder = self.builder.clone();
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            let connection = tokio::select! {
                () = self.stop.cancelled() => break,
                next = accepted.recv() => match next {
                    Some(connection) => connection,
                    None => break,
                },
            };
            let Accepted {
                stream,
                peer,
                tls,
                admitted,
            } = connection;
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(%peer, %error, "cannot serve an accepted connection");
                    continue;
                }
            };
            let scheme = if tls.is_some() {
                Scheme::Https
            } else {
                Scheme::Http
            };
            let gateway = self.gateway.clone();
            let app = self.app.clone();
            let client = client.clone();
            // Shared with the requests: an upgraded connection leaves hyper, and its tunnel then
            // holds the connection's place under the caps until it closes.
            let admitted = Arc::new(admitted);
            let held = admitted.clone();
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let mut request = request.map(Body::new);
                    if request.headers().contains_key(header::UPGRADE) {
                        request.extensions_mut().insert(held.clone());
                    }
                    let gateway = gateway.clone();
                    let client = client.clone();
                    let mut app = app.clone();
                    async move {
                        let mut response = if is_own_endpoint(request.uri().path()) {
                            app.call(request).await?
                        } else {
                            proxy::serve(&gateway, peer, scheme, &client, request).await
                        };
                        if scheme == Scheme::Https {
                            // Browsers that once reached the gateway over HTTPS never fall back
                            // to plain HTTP for it.
                            response
                                .headers_mut()
                                .insert(header::STRICT_TRANSPORT_SECURITY, HSTS);
                        }
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
            let builder = builder.clone();
            let header_timeout = self.header_timeout;
            let watcher = graceful.watcher();
            let open = OpenConnection::new(&self.open);
            tokio::spawn(async move {
                let _open = open;
                let _admitted = admitted;
                let served = match tls {
                    None => {
                        if !orion_http::request_started(&stream, header_timeout).await {
                            return;
                        }
                        let connection =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        watcher.watch(connection.into_owned()).await
                    }
                    Some(acceptor) => {
                        let Ok(Ok(stream)) =
                            tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await
                        else {
                            return;
                        };
                        // The protocol was agreed in the handshake (ALPN): no sniffing, so
                        // hyper's own timers run from the first moment.
                        let builder = if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                            builder.http2_only()
                        } else {
                            builder.http1_only()
                        };
                        let connection =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        watcher.watch(connection.into_owned()).await
                    }
                };
                if let Err(error) = served {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            });
        }
        graceful.shutdown().await;
        let _ = drained.send(());
        // Tunnels spawned on this runtime live until the gateway has closed them.
        self.finish.cancelled().await;
    }
}

/// Counts a worker's open connections while alive.
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn new(open: &Arc<AtomicUsize>) -> OpenConnection {
        open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(open.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

//! One hub connection, from the handshake to its close: reads the client's messages, writes the
//! hub's, pings, and ends on a close, a silent client, an expired token, shutdown or when the hub
//! drops it for not reading.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

use super::notifications::Notification;
use super::protocol::{self, Incoming};
use super::{Broadcast, Caller, Hub};

/// A batch of queued messages goes out as one frame up to about this size.
const FRAME_TARGET: usize = 16 * 1024;

/// Why a connection ended, as counted in `hub_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    ClientClosed,
    HandshakeFailed,
    ProtocolError,
    ClientTimeout,
    TokenExpired,
    Resync,
    ShuttingDown,
    WriteFailed,
    SlowClient,
}

impl Ending {
    fn as_str(self) -> &'static str {
        match self {
            Self::ClientClosed => "client_closed",
            Self::HandshakeFailed => "handshake_failed",
            Self::ProtocolError => "protocol_error",
            Self::ClientTimeout => "client_timeout",
            Self::TokenExpired => "token_expired",
            Self::Resync => "resync",
            Self::ShuttingDown => "shutting_down",
            Self::WriteFailed => "write_failed",
            Self::SlowClient => "slow_client",
        }
    }
}

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

/// Serves one upgraded WebSocket until it ends.
pub(crate) async fn serve(hub: Hub, socket: WebSocket, caller: Caller) {
    let _open = hub.open_connection();
    let (mut sink, mut stream) = socket.split();
    let mut broadcast = hub.inner.broadcast.subscribe();
    let ending = match handshake(&hub, &mut sink, &mut stream).await {
        Err(ending) => ending,
        Ok(pending) => {
            // Registered before the client hears the handshake answer, so an event committed
            // after its `start()` resolves is never missed.
            let (_registration, messages, dropped) = hub.register(&caller);
            if send(&mut sink, &hub, protocol::HANDSHAKE_OK.to_owned())
                .await
                .is_err()
            {
                return;
            }
            tokio::select! {
                ending = converse(&hub, &caller, &mut sink, &mut stream, &mut broadcast, messages, pending) => ending,
                // Ends the conversation wherever it is waiting, even inside a blocked write.
                _ = dropped => Ending::SlowClient,
            }
        }
    };
    // The slow-client count is taken where the hub decides it.
    if ending != Ending::SlowClient {
        metrics::counter!("hub_connections_closed_total", "reason" => ending.as_str()).increment(1);
    }
    tracing::debug!(user = %caller.user, ending = ending.as_str(), "hub connection ended");
}

/// Reads and checks the client's handshake, answering a refusal. Returns the records that came
/// after it in the same frame.
async fn handshake(hub: &Hub, sink: &mut Sink, stream: &mut Stream) -> Result<Vec<String>, Ending> {
    let first = match timeout(hub.settings().handshake_timeout, next_text(stream)).await {
        Ok(Some(text)) => text,
        Ok(None) => return Err(Ending::ClientClosed),
        Err(_) => {
            let _ = send(
                sink,
                hub,
                protocol::handshake_error("no handshake within the timeout"),
            )
            .await;
            return Err(Ending::HandshakeFailed);
        }
    };
    let mut records = match protocol::records(&first) {
        Ok(records) => records.map(str::to_owned).collect::<Vec<_>>().into_iter(),
        Err(error) => {
            let _ = send(sink, hub, protocol::handshake_error(&error)).await;
            return Err(Ending::HandshakeFailed);
        }
    };
    let request = records.next().unwrap_or_default();
    let refusal = if hub.is_shutting_down() {
        // A handshake error, not a close message: that is what a client waits for here.
        Err("the server is shutting down; connect again".to_owned())
    } else {
        match protocol::check_handshake(&request) {
            Ok(()) if !hub.listening(hub.settings().handshake_timeout).await => Err(
                "live updates are not available on this server right now; connect again".to_owned(),
            ),
            checked => checked,
        }
    };
    if let Err(error) = refusal {
        let _ = send(sink, hub, protocol::handshake_error(&error)).await;
        let _ = timeout(Duration::from_secs(1), sink.close()).await;
        return Err(Ending::HandshakeFailed);
    }
    Ok(records.collect())
}

/// The text of the next data frame; `None` when the client closed or the socket failed.
async fn next_text(stream: &mut Stream) -> Option<String> {
    loop {
        match stream.next().await? {
            Ok(Message::Text(text)) => return Some(text.to_string()),
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(Message::Binary(_) | Message::Close(_)) | Err(_) => return None,
        }
    }
}

async fn converse(
    hub: &Hub,
    caller: &Caller,
    sink: &mut Sink,
    stream: &mut Stream,
    broadcast: &mut tokio::sync::watch::Receiver<Broadcast>,
    mut messages: mpsc::Receiver<Arc<Notification>>,
    pending: Vec<String>,
) -> Ending {
    let settings = hub.settings().clone();
    let mut sequence: u64 = 0;
    let mut last_heard = Instant::now();
    let expires_in = (caller.expires_at - time::OffsetDateTime::now_utc())
        .try_into()
        .unwrap_or(Duration::ZERO);
    let expiry = tokio::time::sleep(expires_in);
    tokio::pin!(expiry);
    let mut keep_alive = tokio::time::interval(settings.keep_alive);
    keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    keep_alive.reset();
    for record in &pending {
        if let Err(ending) = answer(hub, sink, record).await {
            return ending;
        }
    }
    loop {
        tokio::select! {
            // Closing reasons first, so an expired token is not served one more batch.
            biased;
            changed = broadcast.changed() => {
                let state = *broadcast.borrow_and_update();
                if changed.is_err() || state == Broadcast::ShuttingDown {
                    let _ = close(sink, hub, Some("the server is shutting down; reconnect"), true).await;
                    return Ending::ShuttingDown;
                }
                if let Broadcast::Resync(_) = state {
                    let _ = close(sink, hub, Some("live updates were interrupted; reconnect and re-read your orders"), true).await;
                    return Ending::Resync;
                }
            }
            () = &mut expiry => {
                let _ = close(sink, hub, Some("the access token expired; reconnect with a fresh one"), true).await;
                return Ending::TokenExpired;
            }
            () = tokio::time::sleep_until(last_heard + settings.client_timeout) => {
                let _ = close(sink, hub, Some("nothing heard from the client within the timeout"), true).await;
                return Ending::ClientTimeout;
            }
            _ = keep_alive.tick() => {
                if send(sink, hub, protocol::PING.to_owned()).await.is_err() {
                    return Ending::WriteFailed;
                }
            }
            next = messages.recv() => {
                let Some(first) = next else { return Ending::SlowClient };
                let mut frame = String::new();
                let mut sent: Vec<&'static str> = Vec::new();
                let mut queued = Some(first);
                while let Some(notification) = queued.take() {
                    sequence += 1;
                    protocol::push_invocation(&mut frame, notification.target, sequence, &notification.payload);
                    sent.push(notification.target);
                    if frame.len() < FRAME_TARGET {
                        queued = messages.try_recv().ok();
                    }
                }
                if send(sink, hub, frame).await.is_err() {
                    return Ending::WriteFailed;
                }
                for target in sent {
                    metrics::counter!("hub_messages_sent_total", "target" => target).increment(1);
                }
                keep_alive.reset();
            }
            incoming = stream.next() => {
                last_heard = Instant::now();
                match incoming {
                    Some(Ok(Message::Text(text))) => {
                        let records = match protocol::records(&text) {
                            Ok(records) => records.map(str::to_owned).collect::<Vec<_>>(),
                            Err(error) => {
                                let _ = close(sink, hub, Some(&error), false).await;
                                return Ending::ProtocolError;
                            }
                        };
                        for record in &records {
                            if let Err(ending) = answer(hub, sink, record).await {
                                return ending;
                            }
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let _ = close(sink, hub, Some("this hub speaks the JSON protocol in text frames"), false).await;
                        return Ending::ProtocolError;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return Ending::ClientClosed,
                }
            }
        }
    }
}

/// Acts on one record from the client.
async fn answer(hub: &Hub, sink: &mut Sink, record: &str) -> Result<(), Ending> {
    match protocol::parse(record) {
        Ok(Incoming::Ping | Incoming::Ignored) => Ok(()),
        Ok(Incoming::Close) => Err(Ending::ClientClosed),
        Ok(Incoming::Invocation {
            invocation_id,
            target,
        }) => {
            // Subscriptions follow from the token alone; there is nothing a client can call.
            match invocation_id {
                Some(id) => {
                    let error = format!(
                        "the hub has no method '{target}'; what a client receives follows from its access token"
                    );
                    send(sink, hub, protocol::completion_error(&id, &error))
                        .await
                        .map_err(|()| Ending::WriteFailed)
                }
                None => Ok(()),
            }
        }
        Err(error) => {
            let _ = close(sink, hub, Some(&error), false).await;
            Err(Ending::ProtocolError)
        }
    }
}

/// Writes one frame, giving up after the client timeout.
async fn send(sink: &mut Sink, hub: &Hub, frame: String) -> Result<(), ()> {
    match timeout(
        hub.settings().client_timeout,
        sink.send(Message::Text(Utf8Bytes::from(frame))),
    )
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) | Err(_) => Err(()),
    }
}

/// Sends SignalR's close message, then the WebSocket close frame.
async fn close(
    sink: &mut Sink,
    hub: &Hub,
    error: Option<&str>,
    allow_reconnect: bool,
) -> Result<(), ()> {
    send(sink, hub, protocol::close(error, allow_reconnect)).await?;
    let frame = CloseFrame {
        code: if allow_reconnect {
            close_code::AWAY
        } else {
            close_code::POLICY
        },
        reason: Utf8Bytes::from_static(""),
    };
    let _ = timeout(
        Duration::from_secs(1),
        sink.send(Message::Close(Some(frame))),
    )
    .await;
    Ok(())
}

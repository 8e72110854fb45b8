//! WebSocket upgrades: bytes copied both ways until either side closes, or the gateway shuts
//! down.

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use crate::upstream::InFlight;

/// The client's side of an upgrade, with its connection's place under the caps.
pub(super) struct ClientUpgrade {
    pub(super) upgrade: hyper::upgrade::OnUpgrade,
    pub(super) admitted: Option<Arc<orion_http::Admitted>>,
}

/// Copies bytes both ways until either side closes, or the gateway shuts down (then the client
/// gets a WebSocket close frame, 1001 "going away").
pub(super) async fn tunnel(
    client: ClientUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    closing: CancellationToken,
    in_flight: InFlight,
) {
    let ClientUpgrade { upgrade, admitted } = client;
    let _admitted = admitted;
    let (client, upstream) = match tokio::try_join!(upgrade, upstream) {
        Ok(both) => both,
        Err(error) => {
            tracing::warn!(%error, "WebSocket upgrade failed");
            return;
        }
    };
    metrics::gauge!("gateway_open_tunnels").increment(1.0);
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(error) = result {
                tracing::debug!(%error, "tunnel ended with an error");
            }
        }
        () = closing.cancelled() => {
            use tokio::io::AsyncWriteExt;
            // An unmasked server close frame: code 1001, going away.
            let _ = client.write_all(&[0x88, 0x02, 0x03, 0xE9]).await;
            let _ = client.shutdown().await;
            let _ = upstream.shutdown().await;
        }
    }
    metrics::gauge!("gateway_open_tunnels").decrement(1.0);
    drop(in_flight);
}

pub(super) fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

//! One attempt: the request sent to one replica, within a deadline, and how it went; and the
//! replica's answer on its way back to the client.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Version};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;

use super::headers::strip_hop_by_hop;
use super::tunnel::{ClientUpgrade, tunnel};
use super::{Gateway, UpstreamClient, body_timed_out};
use crate::edge_auth::KEY_ACCEPTED;
use crate::problem::problem;
use crate::upstream::{Backend, InFlight};

/// How one attempt went.
pub(super) enum Outcome {
    /// The replica answered (possibly with a 502, 503 or 504 of its own).
    Answered {
        response: Response<Incoming>,
        in_flight: InFlight,
    },
    /// No answer: the connection failed (`connect`: before the request left, so any request
    /// may be sent elsewhere), or the replica did not answer in time.
    NoAnswer {
        failure: Response<Body>,
        connect: bool,
    },
    /// The client's own body failed while it streamed to the replica: answered as it is, with
    /// no blame on the replica and no retry.
    ClientFailed(Response<Body>),
}

/// Whether sending failed because of the client's request body (it stalled past the body
/// timeout, or the client broke it off), not because of the replica.
fn client_body_failed(error: &(dyn std::error::Error + 'static)) -> bool {
    orion_http::any_cause(error, |cause| {
        cause.is::<tower_http::timeout::TimeoutError>()
            || cause
                .downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_user)
    })
}

/// A 502, 503 or 504 from a replica: it is failing, and another may do better.
pub(super) fn is_gateway_error(status: StatusCode) -> bool {
    matches!(status.as_u16(), 502..=504)
}

/// Sends the request to `backend` and waits at most `wait` for its answer's head.
pub(super) async fn send(
    client: &UpstreamClient,
    backend: &Arc<Backend>,
    method: &Method,
    target: &PathAndQuery,
    headers: &HeaderMap,
    body: Body,
    wait: Duration,
) -> Outcome {
    let mut outgoing = axum::http::Request::new(body);
    *outgoing.method_mut() = method.clone();
    *outgoing.uri_mut() = backend.uri(target);
    *outgoing.version_mut() = Version::HTTP_11;
    *outgoing.headers_mut() = headers.clone();
    let in_flight = backend.start_request();
    match tokio::time::timeout(wait, client.request(outgoing)).await {
        Ok(Ok(response)) => Outcome::Answered {
            response,
            in_flight,
        },
        Ok(Err(error)) if client_body_failed(&error) => {
            // The client's body stalled past the timeout or broke off: the replica is not to
            // blame, and the request cannot be sent again.
            Outcome::ClientFailed(body_timed_out("the request body stopped arriving"))
        }
        Ok(Err(error)) => {
            let connect = error.is_connect();
            tracing::warn!(upstream = %backend.addr, %error, connect, "upstream request failed");
            Outcome::NoAnswer {
                failure: problem(
                    StatusCode::BAD_GATEWAY,
                    "bad-gateway",
                    "the API replica did not answer",
                ),
                connect,
            }
        }
        Err(_) => Outcome::NoAnswer {
            failure: problem(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!(
                    "the API replica did not answer within {} ms",
                    wait.as_millis()
                ),
            ),
            connect: false,
        },
    }
}

/// The replica's answer, on its way back: hop-by-hop headers out, rate-limit headers in, the
/// replica's in-flight count held until the body ends, and a tunnel for a 101.
pub(super) fn respond(
    gateway: &Arc<Gateway>,
    mut response: Response<Incoming>,
    in_flight: InFlight,
    client_upgrade: Option<ClientUpgrade>,
    rate_headers: &[(&'static str, HeaderValue)],
) -> Response<Body> {
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            let closing = gateway.closing.clone();
            gateway
                .tunnels
                .spawn(tunnel(client_upgrade, upstream_upgrade, closing, in_flight));
        }
        let (parts, _) = response.into_parts();
        let mut response = Response::from_parts(parts, Body::empty());
        for (name, value) in rate_headers {
            response.headers_mut().insert(*name, value.clone());
        }
        return response;
    }
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(KEY_ACCEPTED);
    for (name, value) in rate_headers {
        parts.headers.insert(*name, value.clone());
    }
    Response::from_parts(
        parts,
        Body::new(Tracked {
            inner: body,
            _in_flight: in_flight,
        }),
    )
}

/// A response body that keeps its replica's in-flight count until it ends.
struct Tracked {
    inner: Incoming,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

//! Overload shedding: `/v1` requests being handled are counted, and past
//! `edge.max_in_flight` (or with the request-log queue nearly full) a new
//! request gets 503 with `Retry-After` at once, so latency stays bounded
//! instead of growing with a queue. The admin listener and `/status` are
//! not counted and keep answering.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::app::AppState;
use crate::error::EdgeError;

pub struct Load {
    in_flight: Arc<AtomicU32>,
    max: u32,
}

/// One request being handled; dropping it frees its place.
pub struct InFlight(Arc<AtomicU32>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Load {
    pub fn new(max: u32) -> Load {
        Load {
            in_flight: Arc::new(AtomicU32::new(0)),
            max,
        }
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    pub fn enter(&self) -> Result<InFlight, EdgeError> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .map(|_| InFlight(self.in_flight.clone()))
            .map_err(|_| EdgeError::Overloaded)
    }
}

/// The shedding layer on `/v1`.
pub async fn shed(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Shed requests are counted in metrics only: with the log queue full
    // they could not be logged without making matters worse.
    if state.logs.nearly_full() {
        state.telemetry.metrics.shed("log_queue");
        return crate::error::readable(EdgeError::Overloaded.into(), req.headers());
    }
    match state.edge.load.enter() {
        Ok(guard) => {
            let resp = next.run(req).await;
            // A stream is handled until it ends, not until its head is sent:
            // its place goes with its body (streams escaped the cap).
            if crate::proxy::forward::is_sse(resp.headers()) {
                resp.map(|body| {
                    axum::body::Body::new(Held {
                        body,
                        _guard: guard,
                    })
                })
            } else {
                resp
            }
        }
        Err(e) => {
            state.telemetry.metrics.shed("in_flight");
            crate::error::readable(e.into(), req.headers())
        }
    }
}

/// A response body that keeps its request's place while it is sent.
struct Held {
    body: axum::body::Body,
    _guard: InFlight,
}

impl http_body::Body for Held {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

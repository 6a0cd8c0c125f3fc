//! When a connection has nothing to do: no first request in time (any
//! protocol), or an HTTP/2 connection with no open stream for
//! `edge.h2_idle_timeout`. HTTP/1 needs no watch of ours after its first
//! request: hyper's header timeout closes a keep-alive connection that sends
//! no next request.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use tokio::sync::Notify;

/// What one connection's requests report to its watch.
#[derive(Default)]
pub struct Activity {
    /// HTTP/2 streams whose handler or response body is still alive.
    streams: AtomicUsize,
    /// Set on the first HTTP/2 request: only then is the stream count kept.
    h2: AtomicBool,
    /// One waiter (the connection's task); `notify_one` keeps a permit, so
    /// a change between a check and the wait is not missed.
    changed: Notify,
}

/// Why the watch ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Idle {
    /// Nothing reached the service in time: a socket that sent nothing, half
    /// an HTTP/2 preface, or a preface and no request. Until the protocol is
    /// known hyper has no timer of its own, so this held a slot for good.
    NoRequest,
    /// An HTTP/2 connection that carried no stream for the idle timeout:
    /// closed gracefully (GOAWAY), and dropped if it is still open (no
    /// stream, PING not acked) after as long again as a first request may
    /// take. Without it an idle client held its connection, and its place
    /// under `edge.max_connections`, for ever.
    NoStreams,
}

/// Held while an HTTP/2 stream is alive; moved into its response body, so it
/// lasts until the last byte is sent or the stream is reset.
pub struct StreamGuard(Arc<Activity>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_one();
    }
}

impl Activity {
    /// Called as each request reaches the service; an HTTP/2 request gets a
    /// guard that counts its stream open until dropped.
    pub fn request(self: &Arc<Self>, version: http::Version) -> Option<StreamGuard> {
        let guard = (version == http::Version::HTTP_2).then(|| {
            self.h2.store(true, Ordering::Release);
            self.streams.fetch_add(1, Ordering::AcqRel);
            StreamGuard(self.clone())
        });
        self.changed.notify_one();
        guard
    }

    /// HTTP/2 streams still open (handlers or bodies not yet done).
    pub fn open_streams(&self) -> usize {
        self.streams.load(Ordering::Acquire)
    }

    /// Resolves when the connection should be closed; never for an HTTP/1
    /// connection once it has had a request.
    pub async fn watch(&self, first_within: Duration, idle: Duration) -> Idle {
        if tokio::time::timeout(first_within, self.changed.notified())
            .await
            .is_err()
        {
            return Idle::NoRequest;
        }
        if !self.h2.load(Ordering::Acquire) {
            return std::future::pending().await;
        }
        loop {
            if self.open_streams() > 0 {
                self.changed.notified().await;
                continue;
            }
            let quiet = tokio::time::timeout(idle, self.changed.notified()).await;
            if quiet.is_err() && self.open_streams() == 0 {
                return Idle::NoStreams;
            }
        }
    }
}

/// A response whose body keeps `guard` alive (HTTP/2 only: the boxing is a
/// cost HTTP/1 responses do not pay).
pub fn hold_until_sent(
    resp: axum::response::Response,
    guard: Option<StreamGuard>,
) -> axum::response::Response {
    match guard {
        None => resp,
        Some(guard) => resp.map(|body| {
            Body::new(body.map_frame(move |frame| {
                let _held = &guard;
                frame
            }))
        }),
    }
}

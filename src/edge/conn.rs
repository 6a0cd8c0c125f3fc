//! Connections: caps on open connections (overall and per client address),
//! and the answer to a client that trickles its request head: hyper's header
//! timeout closes the connection, and if part of a request had arrived the
//! client first gets a 408 in OpenAI's shape.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::{ApiError, EdgeError};

/// Descriptors kept for what is not a client connection: the store, the
/// listeners, webhooks, the master key and log files.
const FD_RESERVE: u64 = 256;

/// Raises the soft open-file limit (up to the hard one) so `max_connections`
/// can be reached: each proxied connection holds a client socket and an
/// upstream one. At Linux's usual soft limit, 1024, accepts failed (EMFILE)
/// near 500 proxied connections while the cap said 4096. Returns the limit
/// in force, and warns when it is still short.
pub fn raise_fd_limit(max_connections: u32) -> Option<u64> {
    let want = u64::from(max_connections) * 2 + FD_RESERVE;
    match rlimit::increase_nofile_limit(want) {
        Ok(limit) => {
            if limit < want {
                tracing::warn!(
                    limit,
                    max_connections,
                    "the open-file limit (ulimit -n) is below what edge.max_connections needs; \
                     raise the hard limit (systemd: LimitNOFILE) or lower the cap"
                );
            }
            Some(limit)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit");
            None
        }
    }
}

pub struct ConnGate {
    total: AtomicU32,
    per_ip: Mutex<FxHashMap<IpAddr, u32>>,
    max_total: u32,
    max_per_ip: u32,
}

/// An admitted connection; dropping it frees its place.
pub struct ConnPermit {
    gate: Arc<ConnGate>,
    ip: IpAddr,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.gate.total.fetch_sub(1, Ordering::AcqRel);
        let mut m = self.gate.per_ip.lock();
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

impl ConnGate {
    pub fn new(max_total: u32, max_per_ip: u32) -> ConnGate {
        ConnGate {
            total: AtomicU32::new(0),
            per_ip: Mutex::new(FxHashMap::default()),
            max_total,
            max_per_ip,
        }
    }

    pub fn open(&self) -> u32 {
        self.total.load(Ordering::Acquire)
    }

    /// Admits a connection from `ip`, or says which cap it hit.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, EdgeError> {
        let mut m = self.per_ip.lock();
        let n = m.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            if *n == 0 {
                m.remove(&ip);
            }
            return Err(EdgeError::TooManyConnections { per_ip: true });
        }
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            if *n == 0 {
                m.remove(&ip);
            }
            return Err(EdgeError::TooManyConnections { per_ip: false });
        }
        *n += 1;
        Ok(ConnPermit {
            gate: self.clone(),
            ip,
        })
    }
}

/// A raw HTTP/1.1 answer for a connection hyper never sees (refused at
/// accept) or no longer holds (header timeout): the error in OpenAI's shape,
/// then the connection closes.
pub fn raw_response(e: ApiError) -> Vec<u8> {
    let status = e.status();
    let body = serde_json::to_vec(&e.body()).unwrap_or_default();
    let retry = e.retry_after_secs();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    if let Some(s) = retry {
        head.push_str(&format!("retry-after: {s}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Wraps a connection's stream to know whether a request is under way:
/// bytes read since the last bytes written mean a client is mid-request
/// (sending a head or body) rather than idle between keep-alive requests.
pub struct Tracked<S> {
    inner: S,
    mid_request: Arc<AtomicBool>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S) -> (Tracked<S>, Arc<AtomicBool>) {
        let flag = Arc::new(AtomicBool::new(false));
        (
            Tracked {
                inner,
                mid_request: flag.clone(),
            },
            flag,
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.mid_request.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.mid_request.store(false, Ordering::Relaxed);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.mid_request.store(false, Ordering::Relaxed);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Whether a connection error is hyper's header read timeout.
pub fn is_header_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_timeout() {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// The stream for hyper and a duplicate handle on the same socket.
pub fn split_spare(
    stream: tokio::net::TcpStream,
) -> Option<(tokio::net::TcpStream, std::net::TcpStream)> {
    let std = stream.into_std().ok()?;
    let spare = std.try_clone().ok()?;
    Some((tokio::net::TcpStream::from_std(std).ok()?, spare))
}

/// 408 for a client that sent part of a request head too slowly.
pub fn request_timeout(mut spare: std::net::TcpStream, after: Duration) {
    use std::io::Write;
    let e = EdgeError::RequestTimeout {
        part: "head",
        after,
    };
    // Small and into an empty send buffer: a non-blocking write completes.
    let _ = spare.write(&raw_response(e.into()));
    let _ = spare.shutdown(std::net::Shutdown::Both);
}

/// Refuses a connection over the caps with a short HTTP/1.1 answer.
pub async fn refuse(mut stream: tokio::net::TcpStream, e: EdgeError) {
    use tokio::io::AsyncWriteExt;
    let msg = raw_response(e.into());
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(&msg).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

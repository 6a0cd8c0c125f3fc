//! Receivers for the gateway's notifications: a real SMTP server (enough of
//! RFC 5321 for one client: EHLO, MAIL, RCPT, DATA, QUIT) and a webhook
//! endpoint that can refuse its first deliveries.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

pub struct SmtpSink {
    pub port: u16,
    pub mails: Arc<Mutex<Vec<Mail>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let m = mails.clone();
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(session(stream, m.clone()));
            }
        });
        SmtpSink { port, mails, task }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn session(stream: tokio::net::TcpStream, mails: Arc<Mutex<Vec<Mail>>>) {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    w.write_all(b"220 sink ESMTP ready\r\n").await.unwrap();
    let mut mail = Mail {
        from: String::new(),
        to: vec![],
        data: String::new(),
    };
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250-sink\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            mail.from = line[10..].trim().to_owned();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(line[8..].trim().to_owned());
            b"250 OK\r\n"
        } else if upper == "DATA" {
            w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await
                .unwrap();
            while let Ok(Some(l)) = lines.next_line().await {
                if l == "." {
                    break;
                }
                mail.data.push_str(&l);
                mail.data.push('\n');
            }
            mails.lock().push(std::mem::replace(
                &mut mail,
                Mail {
                    from: String::new(),
                    to: vec![],
                    data: String::new(),
                },
            ));
            b"250 OK queued\r\n"
        } else if upper == "QUIT" {
            let _ = w.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"250 OK\r\n"
        };
        w.write_all(reply).await.unwrap();
    }
}

#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub answered: u16,
}

#[derive(Default)]
struct HookState {
    deliveries: Mutex<Vec<Delivery>>,
    refuse: AtomicU32,
}

/// A webhook endpoint at `{url}`; the first `refuse` deliveries get a 503.
pub struct WebhookSink {
    pub url: String,
    state: Arc<HookState>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookSink {
    pub async fn start(refuse: u32) -> WebhookSink {
        let state = Arc::new(HookState::default());
        state.refuse.store(refuse, Ordering::SeqCst);
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        WebhookSink { url, state, task }
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.deliveries.lock().clone()
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn hook(State(s): State<Arc<HookState>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let refuse = s
        .refuse
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if refuse {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::NO_CONTENT
    };
    s.deliveries.lock().push(Delivery {
        headers,
        body,
        answered: status.as_u16(),
    });
    status
}

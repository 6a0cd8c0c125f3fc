//! The CLI's way to the running server: the admin address and token are read
//! from the data directory, so every change goes through the admin API and
//! applies live.

use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::server::{Bound, RUNTIME_FILE};

pub struct AdminClient {
    base: String,
    token: String,
    http: Client<HttpConnector, Full<Bytes>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the gateway does not seem to be running with data directory {0} (no {RUNTIME_FILE}); start it with `assisters serve`")]
    NotRunning(String),
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("cannot reach the admin API at {0}: {1}")]
    Unreachable(String, String),
    /// The server's own error message.
    #[error("{0}")]
    Api(String),
}

impl AdminClient {
    pub fn from_data_dir(dir: &Path) -> Result<AdminClient, ClientError> {
        let runtime = dir.join(RUNTIME_FILE);
        let text = std::fs::read_to_string(&runtime)
            .map_err(|_| ClientError::NotRunning(dir.display().to_string()))?;
        let bound: Bound = serde_json::from_str(&text)
            .map_err(|_| ClientError::NotRunning(dir.display().to_string()))?;
        let token_path = dir.join("admin-token");
        let token = std::fs::read_to_string(&token_path)
            .map_err(|e| ClientError::Read(token_path.display().to_string(), e))?;
        Ok(AdminClient {
            base: format!("http://{}", bound.admin_listen),
            token: token.trim().to_owned(),
            http: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let (_, body) = self.send(method, path, body).await?;
        Ok(if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or(Value::Null)
        })
    }

    /// A GET whose answer is a download (CSV, JSON Lines), returned as text.
    pub async fn text(&self, path: &str) -> Result<String, ClientError> {
        let (_, body) = self.send(Method::GET, path, None).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Sends one request; a non-2xx answer becomes the server's own message.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(hyper::StatusCode, Bytes), ClientError> {
        let url = format!("{}{path}", self.base);
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(&url)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(bytes))
            .map_err(|e| ClientError::Unreachable(url.clone(), e.to_string()))?;
        let resp = self
            .http
            .request(req)
            .await
            .map_err(|e| ClientError::Unreachable(self.base.clone(), e.to_string()))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Unreachable(self.base.clone(), e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let msg = value
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map_or_else(|| format!("the admin API answered {status}"), str::to_owned);
            return Err(ClientError::Api(msg));
        }
        Ok((status, body))
    }
}

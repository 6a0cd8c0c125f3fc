//! Every error a client or an admin can see, mapped to OpenAI's error shape.
//!
//! One `thiserror` enum per category; [`ApiError`] unites them and is the only
//! type handlers return. The mapping to status, `type`, `code` and `param`
//! lives here and nowhere else, so every listener answers the same way.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The JSON body OpenAI's SDKs parse: `{"error":{"message","type","param","code"}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

/// Authentication failures. The message is identical for every cause so the
/// body never reveals whether a key exists (and never echoes it).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing API key")]
    Missing,
    #[error("malformed API key")]
    Malformed,
    #[error("unknown API key")]
    Unknown,
    #[error("revoked API key")]
    Revoked,
    #[error("expired API key")]
    Expired,
    #[error("invalid admin credentials")]
    Admin,
    #[error("cross-site request refused")]
    CrossSite,
}

/// The request itself is wrong.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{message}")]
    Invalid {
        message: String,
        param: Option<String>,
    },
    #[error("We could not parse the JSON body of your request: {0}")]
    Json(String),
    #[error("Invalid Content-Type header ({0}); expected application/json.")]
    ContentType(String),
    #[error("Request body too large: the limit is {limit} bytes.")]
    TooLarge { limit: u64 },
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    #[error("{0}")]
    NotFound(String),
    #[error("Method not allowed.")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
}

/// The key's policy refuses the request: limits, addresses, origins.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{}", rate_limit_message(what, *limit, *retry_after))]
    RateLimited {
        /// `requests`, `tokens`, `daily tokens` or `concurrent streams`.
        what: &'static str,
        limit: u64,
        retry_after: std::time::Duration,
    },
    #[error("This request needs an estimated {tokens} tokens (prompt plus max_tokens), more than this key's whole limit of {limit} tokens {per}, so it can never be admitted. Lower max_tokens or shorten the prompt, or use a key with a higher tier.")]
    ExceedsQuota {
        tokens: u64,
        limit: u64,
        /// `per minute` or `per day`.
        per: &'static str,
    },
    #[error("Too many failed authentication attempts from your address. Please try again in {}.", crate::limits::openai_duration(*retry_after))]
    AuthThrottled { retry_after: std::time::Duration },
    #[error("Requests from your IP address are not allowed{}.", if *for_key { " for this API key" } else { "" })]
    IpNotAllowed { for_key: bool },
    #[error("{}", origin_message(origin.as_deref()))]
    OriginNotAllowed { origin: Option<String> },
}

/// The gateway protecting itself and other clients: slow or excess
/// clients, hostile headers, overload.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// `part` is `head` or `body`.
    #[error("The request {part} did not arrive in time (limit {}); the connection is closed.", humantime::format_duration(*after))]
    RequestTimeout {
        part: &'static str,
        after: std::time::Duration,
    },
    #[error("The gateway is overloaded; please retry in a moment.")]
    Overloaded,
    #[error("Too many concurrent requests for this API key: limit {0}. Please retry when one has finished.")]
    KeyConcurrency(u32),
    #[error("API keys belong in the `Authorization: Bearer` header, never in the URL (query parameter `{0}`). Treat a key that was sent this way as exposed and rotate it.")]
    KeyInQuery(String),
    #[error("{0}")]
    BadHeader(String),
    #[error("{}", if *per_ip { "Too many open connections from your address; close some and retry." } else { "The gateway has too many open connections; please retry in a moment." })]
    TooManyConnections { per_ip: bool },
}

impl EdgeError {
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            EdgeError::Overloaded
            | EdgeError::KeyConcurrency(_)
            | EdgeError::TooManyConnections { .. } => Some(1),
            _ => None,
        }
    }
}

fn rate_limit_message(what: &str, limit: u64, retry: std::time::Duration) -> String {
    let wait = crate::limits::openai_duration(retry);
    match what {
        "concurrent streams" => format!(
            "Rate limit reached for concurrent streams: limit {limit}. Please try again when a stream has finished."
        ),
        "daily tokens" => format!(
            "Daily token budget reached: limit {limit} tokens per day. Please try again in {wait}."
        ),
        _ => format!("Rate limit reached for {what} per minute: limit {limit}. Please try again in {wait}."),
    }
}

fn origin_message(origin: Option<&str>) -> String {
    match origin {
        Some(o) => format!("This API key may not be used from the origin {o:?}. Add its domain to the key's allowed domains."),
        None => "This API key is restricted to certain domains, and the request names no Origin or Referer.".to_owned(),
    }
}

impl PolicyError {
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            PolicyError::RateLimited { retry_after, .. }
            | PolicyError::AuthThrottled { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

/// A safety check refused the request (or withheld the answer).
#[derive(Debug, thiserror::Error)]
pub enum SafetyError {
    #[error("{}", content_message(categories, *output))]
    ContentPolicy {
        categories: Vec<&'static str>,
        param: Option<String>,
        /// The model's answer was flagged, not the request.
        output: bool,
    },
    #[error("This request was refused: it looks like a prompt injection (rule family `{family}`, score {score}).")]
    Injection {
        family: &'static str,
        score: f32,
        param: Option<String>,
    },
    #[error("The moderation service `{0}` is unavailable and this gateway is set to refuse requests without it.")]
    ModeratorUnavailable(String),
}

fn content_message(categories: &[&str], output: bool) -> String {
    let list = categories.join(", ");
    if output {
        format!("The model's answer was withheld by output moderation; flagged for: {list}.")
    } else {
        format!("This request was rejected by content moderation; flagged for: {list}.")
    }
}

/// The upstream model server failed us.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("The upstream `{0}` could not be reached.")]
    Unreachable(String),
    #[error("The upstream `{0}` did not answer in time.")]
    Timeout(String),
    #[error("The upstream `{upstream}` failed with status {status}.")]
    Failed { upstream: String, status: u16 },
    #[error("The upstream `{0}` sent a response the gateway could not read.")]
    BadResponse(String),
    /// Every upstream tried was at its own rate limit: a 429, so clients
    /// back off, with the upstream's `Retry-After` when it gave one.
    #[error("The upstream `{upstream}` is rate limiting the gateway; retry later.")]
    RateLimited {
        upstream: String,
        retry_after: Option<u64>,
    },
}

/// Something inside the gateway went wrong; details go to the log, not the client.
#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("crypto: {0}")]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error("{0}")]
    Other(String),
    /// Stored data failed its integrity check; the message is safe to show.
    #[error("{0}")]
    Integrity(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Safety(#[from] SafetyError),
    #[error(transparent)]
    Internal(#[from] InternalError),
    #[error(transparent)]
    Edge(#[from] EdgeError),
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::Internal(InternalError::Store(e))
    }
}

impl From<crate::crypto::CryptoError> for ApiError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        ApiError::Internal(InternalError::Crypto(e))
    }
}

impl ApiError {
    /// Whole seconds for `Retry-After` (at least 1), when waiting helps.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::Edge(e) => e.retry_after_secs(),
            ApiError::Policy(p) => p
                .retry_after()
                .map(|wait| (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)),
            ApiError::Upstream(UpstreamError::RateLimited { retry_after, .. }) => {
                Some(retry_after.unwrap_or(1).max(1))
            }
            _ => None,
        }
    }

    /// The connection cannot be reused after this answer: a refused upload
    /// may still be arriving, or the client was too slow to send one.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            ApiError::Request(RequestError::TooLarge { .. })
                | ApiError::Edge(EdgeError::RequestTimeout { .. })
        )
    }

    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        RequestError::Invalid {
            message: message.into(),
            param: param.map(str::to_owned),
        }
        .into()
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        RequestError::NotFound(message.into()).into()
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Auth(AuthError::CrossSite) => StatusCode::FORBIDDEN,
            ApiError::Auth(_) => StatusCode::UNAUTHORIZED,
            ApiError::Request(e) => match e {
                RequestError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                RequestError::ModelNotFound(_) | RequestError::NotFound(_) => StatusCode::NOT_FOUND,
                RequestError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
                RequestError::Conflict(_) => StatusCode::CONFLICT,
                _ => StatusCode::BAD_REQUEST,
            },
            ApiError::Policy(e) => match e {
                PolicyError::RateLimited { .. } | PolicyError::AuthThrottled { .. } => {
                    StatusCode::TOO_MANY_REQUESTS
                }
                PolicyError::ExceedsQuota { .. } => StatusCode::BAD_REQUEST,
                PolicyError::IpNotAllowed { .. } | PolicyError::OriginNotAllowed { .. } => {
                    StatusCode::FORBIDDEN
                }
            },
            ApiError::Safety(SafetyError::ModeratorUnavailable(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Safety(_) => StatusCode::BAD_REQUEST,
            ApiError::Upstream(UpstreamError::Timeout(_)) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Upstream(UpstreamError::RateLimited { .. }) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Edge(e) => match e {
                EdgeError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
                EdgeError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
                EdgeError::KeyConcurrency(_) => StatusCode::TOO_MANY_REQUESTS,
                EdgeError::KeyInQuery(_) | EdgeError::BadHeader(_) => StatusCode::BAD_REQUEST,
                EdgeError::TooManyConnections { per_ip: true } => StatusCode::TOO_MANY_REQUESTS,
                EdgeError::TooManyConnections { per_ip: false } => StatusCode::SERVICE_UNAVAILABLE,
            },
        }
    }

    pub fn body(&self) -> ErrorBody {
        let (kind, code, param, message) = match self {
            ApiError::Auth(AuthError::Admin) => (
                "invalid_request_error",
                Some("invalid_admin_token"),
                None,
                "Invalid or missing admin credentials.".to_owned(),
            ),
            ApiError::Auth(AuthError::CrossSite) => (
                "invalid_request_error",
                Some("cross_site_request"),
                None,
                "Cross-site requests to the admin API are refused.".to_owned(),
            ),
            ApiError::Auth(_) => (
                "invalid_request_error",
                Some("invalid_api_key"),
                None,
                "Incorrect or missing API key. Send `Authorization: Bearer ask_...` with a valid, active key.".to_owned(),
            ),
            ApiError::Request(e) => {
                let (code, param) = match e {
                    RequestError::Invalid { param, .. } => (None, param.clone()),
                    RequestError::Json(_) => (Some("invalid_json"), None),
                    RequestError::ContentType(_) => (Some("invalid_content_type"), None),
                    RequestError::TooLarge { .. } => (Some("request_too_large"), None),
                    RequestError::ModelNotFound(_) => {
                        (Some("model_not_found"), Some("model".to_owned()))
                    }
                    RequestError::NotFound(_) => (Some("not_found"), None),
                    RequestError::MethodNotAllowed => (Some("method_not_allowed"), None),
                    RequestError::Conflict(_) => (Some("conflict"), None),
                };
                ("invalid_request_error", code, param, e.to_string())
            }
            ApiError::Policy(e) => {
                let (kind, code) = match e {
                    PolicyError::RateLimited { what, .. } => (
                        if what.contains("token") { "tokens" } else { "requests" },
                        "rate_limit_exceeded",
                    ),
                    PolicyError::AuthThrottled { .. } => ("requests", "rate_limit_exceeded"),
                    PolicyError::ExceedsQuota { .. } => {
                        ("invalid_request_error", "tokens_exceed_rate_limit")
                    }
                    PolicyError::IpNotAllowed { .. } => ("invalid_request_error", "ip_not_allowed"),
                    PolicyError::OriginNotAllowed { .. } => {
                        ("invalid_request_error", "origin_not_allowed")
                    }
                };
                (kind, Some(code), None, e.to_string())
            }
            ApiError::Safety(e) => {
                let (kind, code, param) = match e {
                    SafetyError::ContentPolicy { param, .. } => (
                        "invalid_request_error",
                        "content_policy_violation",
                        param.clone(),
                    ),
                    SafetyError::Injection { param, .. } => (
                        "invalid_request_error",
                        "prompt_injection_detected",
                        param.clone(),
                    ),
                    SafetyError::ModeratorUnavailable(_) => {
                        ("api_error", "moderation_unavailable", None)
                    }
                };
                (kind, Some(code), param, e.to_string())
            }
            ApiError::Upstream(e) => {
                let (kind, code) = match e {
                    UpstreamError::Timeout(_) => ("api_error", "upstream_timeout"),
                    // Its own code: not the key's limits, which clients and
                    // the limiter metrics tell apart from the upstream's.
                    UpstreamError::RateLimited { .. } => ("requests", "upstream_rate_limited"),
                    _ => ("api_error", "upstream_error"),
                };
                (kind, Some(code), None, e.to_string())
            }
            ApiError::Internal(InternalError::Integrity(m)) => {
                ("api_error", Some("integrity_error"), None, m.clone())
            }
            ApiError::Edge(e) => {
                let (kind, code, param) = match e {
                    EdgeError::RequestTimeout { .. } => ("invalid_request_error", "request_timeout", None),
                    EdgeError::Overloaded => ("api_error", "server_overloaded", None),
                    EdgeError::KeyConcurrency(_) => ("requests", "rate_limit_exceeded", None),
                    EdgeError::KeyInQuery(p) => {
                        ("invalid_request_error", "api_key_in_query", Some(p.clone()))
                    }
                    EdgeError::BadHeader(_) => ("invalid_request_error", "invalid_header", None),
                    EdgeError::TooManyConnections { per_ip: true } => {
                        ("requests", "rate_limit_exceeded", None)
                    }
                    EdgeError::TooManyConnections { per_ip: false } => {
                        ("api_error", "server_overloaded", None)
                    }
                };
                (kind, Some(code), param, e.to_string())
            }
            ApiError::Internal(_) => (
                "api_error",
                Some("internal_error"),
                None,
                "The gateway had an internal error; the administrator can find details in its log.".to_owned(),
            ),
        };
        ErrorBody {
            error: ErrorDetail {
                message,
                kind,
                param,
                code,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = %e, "internal error");
        }
        let status = self.status();
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after_secs() {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.closes_connection() {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// Fallback for unknown routes, so even a typo gets OpenAI's shape.
pub async fn route_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("Unknown request URL: {}.", uri.path()))
}

pub async fn method_not_allowed() -> ApiError {
    RequestError::MethodNotAllowed.into()
}

/// [`route_not_found`] on the gateway listener, readable by a browser page.
pub async fn gateway_route_not_found(
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    readable(route_not_found(uri).await, &headers)
}

/// [`method_not_allowed`] on the gateway listener, readable by a browser page.
pub async fn gateway_method_not_allowed(headers: axum::http::HeaderMap) -> Response {
    readable(method_not_allowed().await, &headers)
}

/// A refusal made before any key is known, readable by the page that made
/// it (without CORS headers a browser page saw only a network error). No
/// log record exists to name, so `x-request-id` is the client's own id,
/// when it sent a valid one, for it to match the refusal to its request.
pub fn readable(e: ApiError, request_headers: &axum::http::HeaderMap) -> Response {
    let mut resp = e.into_response();
    crate::access::origin::cors(resp.headers_mut(), request_headers, true, false);
    let client_id = request_headers.get(&crate::logs::REQUEST_ID_HEADER);
    if let Some(id) = crate::logs::client_request_id(client_id) {
        if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
            resp.headers_mut().insert(crate::logs::REQUEST_ID_HEADER, v);
        }
    }
    resp
}

//! The floor of the gateway's HTTP stack, for BENCHMARKS.md: the same axum
//! server, hyper-util pooled client and single-threaded runtime as
//! `assisters serve` on one CPU, doing nothing but forwarding each
//! `POST /v1/chat/completions` to the bench harness's upstream. No key check,
//! no parsing, no token count, no log: whatever the gateway costs beyond this
//! is ours.
//!
//! ```sh
//! cargo build --release --example bare_proxy
//! ../shared/bench/bench.sh --url http://127.0.0.1:18787/v1 --key unused --name bare \
//!   --cmd target/release/examples/bare_proxy --peers direct,nginx
//! ```

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const UPSTREAM: &str = "http://127.0.0.1:18080/v1/chat/completions";
const LISTEN: &str = "127.0.0.1:18787";

type Upstream = Client<HttpConnector, Body>;

async fn forward(State(client): State<Upstream>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    // Read whole, as the gateway does before it can judge a request.
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut out = Request::post(UPSTREAM);
    if let Some(v) = parts.headers.get(header::CONTENT_TYPE) {
        out = out.header(header::CONTENT_TYPE, v);
    }
    let Ok(out) = out.body(Body::from(bytes)) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    match client.request(out).await {
        Ok(resp) => resp.map(Body::new),
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let client: Upstream = Client::builder(TokioExecutor::new()).build(http);
        let app = Router::new()
            .route("/v1/chat/completions", post(forward))
            .with_state(client);
        let listener = tokio::net::TcpListener::bind(LISTEN).await?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}

//! Failover across a model's upstreams, and the active health probes.
//!
//! A request tries its model's candidates in order, skipping those whose
//! circuit is open, and moves on only while nothing has reached the client:
//! connect errors, timeouts before the answer, 5xx and 429, a stream that
//! fails before its first event. Once an answer is delivered the upstream is
//! committed to; a stream that breaks later ends with an SSE error event.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Response;
use bytes::Bytes;
use tokio::time::Instant;

use super::forward::{self, Budget, Finish, Usage};
use super::health::Policy;
use super::upstream::{Candidates, HttpClient, Upstream};
use crate::app::AppState;
use crate::error::{ApiError, UpstreamError};

/// One request's way to an upstream.
pub struct Plan<'a> {
    pub client: &'a HttpClient,
    pub candidates: &'a Candidates,
    pub path: &'static str,
    pub body: Bytes,
    pub stream: bool,
    pub budget: Budget,
    pub policy: Policy,
    /// The request's log record: the relay takes it if a stream starts;
    /// otherwise it stays with the caller, which writes it.
    pub record: forward::Record<'a>,
}

/// Serves the request from the first candidate that answers. `served` names
/// the upstream that answered, or the last one tried.
pub async fn serve(
    mut plan: Plan<'_>,
    mut finish: Finish,
    served: &mut Option<Arc<Upstream>>,
) -> Result<Response<Body>, ApiError> {
    let deadline = Instant::now() + plan.budget.total;
    let mut last: Option<ApiError> = None;
    let (mut pos, mut tried) = (0, 0);
    while let Some(u) = next(plan.candidates, &mut pos, tried, plan.policy) {
        tried += 1;
        *served = Some(u.clone());
        let attempt = forward::attempt(
            plan.client,
            u,
            plan.path,
            plan.body.clone(),
            plan.stream,
            plan.budget,
            deadline,
        )
        .await;
        match attempt {
            Ok(answer) => {
                u.health.success();
                let how = forward::Delivery {
                    deadline,
                    budget: plan.budget,
                    policy: plan.policy,
                };
                return forward::deliver(answer, u, how, finish, &mut plan.record).await;
            }
            Err(f) => {
                if f.counts {
                    u.health.failure(plan.policy);
                }
                if !f.retry || Instant::now() >= deadline {
                    last = Some(f.error);
                    break;
                }
                tracing::info!(upstream = %u.name, "upstream failed before answering; failing over");
                last = Some(f.error);
            }
        }
    }
    finish.settle(Some(Usage::default()));
    Err(last.unwrap_or_else(|| {
        let name = plan
            .candidates
            .first()
            .map(|u| u.name.clone())
            .unwrap_or_default();
        UpstreamError::Unreachable(name).into()
    }))
}

/// The next candidate whose circuit lets a request through. With every
/// circuit open the primary is tried anyway: better a real answer (or a real
/// error) than a refusal without asking anyone.
fn next<'c>(
    c: &'c Candidates,
    pos: &mut usize,
    tried: usize,
    p: Policy,
) -> Option<&'c Arc<Upstream>> {
    while let Some(u) = c.get(*pos) {
        *pos += 1;
        if u.health.allows(p) {
            return Some(u);
        }
    }
    if tried == 0 && *pos == c.len() {
        *pos += 1;
        return c.first();
    }
    None
}

/// One round of active probes: `GET {base_url}/models` on every upstream.
pub async fn probe_all(state: &AppState) {
    let h = state.settings().health.clone();
    let policy = policy(&h);
    let probes = state.upstreams.list().into_iter().map(|u| {
        let client = state.client.clone();
        async move {
            let started = std::time::Instant::now();
            let res = u.probe(&client, h.timeout).await;
            let latency = started.elapsed();
            if let Err(e) = &res {
                tracing::debug!(upstream = %u.name, error = %e, "health probe failed");
            }
            u.health.probe(res.is_ok(), latency, policy);
        }
    });
    futures_util::future::join_all(probes).await;
}

pub fn policy(h: &crate::config::HealthConfig) -> Policy {
    Policy {
        failure_threshold: h.failure_threshold,
        open_for: h.open_for,
    }
}

/// How long the probe job sleeps between rounds.
pub fn probe_interval(state: &AppState) -> Duration {
    state.settings().health.interval
}

//! Exchange Online's per-mailbox limits, Graph's limit per app across the tenant
//! ([`admit_app`]), injected faults and simulated latency.
//!
//! Limits are per app and mailbox (Graph docs concepts/throttling-limits.md §Outlook service
//! limits): at most `max_in_flight` requests in progress — one more is answered 429
//! `ApplicationThrottled` "Application is over its MailboxConcurrency limit." — and
//! `budget` requests per sliding `window`. Every request counts against the budget, the
//! throttled ones too ("usage keeps accruing while you are throttled", concepts/throttling.md).
//! One mailbox's throttling never affects another's.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::server::State;

#[derive(Default)]
pub(crate) struct Mailboxes {
    inner: Mutex<HashMap<String, MailboxUse>>,
    /// Arrival times of the app's requests within [`crate::AppLimit::window`], oldest first.
    app: Mutex<VecDeque<Instant>>,
}

#[derive(Default)]
struct MailboxUse {
    /// Answers given under [`crate::Faults::long_throttle`].
    held_back: u32,
    in_flight: u32,
    /// Arrival times of the requests within the window, oldest first.
    sent: VecDeque<Instant>,
}

/// A mailbox's in-flight slot, released when dropped (after the response body was sent).
pub(crate) struct Slot {
    state: Arc<State>,
    mailbox: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut all) = self.state.mailboxes.inner.lock() {
            if let Some(m) = all.get_mut(&self.mailbox) {
                m.in_flight = m.in_flight.saturating_sub(1);
            }
        }
    }
}

/// Exchange's throttling answer: `{"error":{"code":"ApplicationThrottled","message":…}}`
/// (no innerError), with `Retry-After`.
pub(crate) fn throttled(message: &str, retry_after: &str) -> Response {
    let body = json!({"error": {"code": "ApplicationThrottled", "message": message}});
    let mut r = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(retry_after) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Marks a response 429 for the app's limit across the tenant (for the request log).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AppThrottled;

/// Counts a Graph request against the app's limit across the tenant ([`crate::AppLimit`]), or
/// answers 429 as Graph would. `Ok(Some(p))`: admitted, with `x-ms-throttle-limit-percentage:
/// p` to announce.
pub(crate) fn admit_app(state: &State) -> Result<Option<f64>, Box<Response>> {
    let Some(limit) = &state.config.app_limit else {
        return Ok(None);
    };
    let Ok(mut sent) = state.mailboxes.app.lock() else {
        return Ok(None);
    };
    let now = Instant::now();
    while sent
        .front()
        .is_some_and(|t| now.duration_since(*t) >= limit.window)
    {
        sent.pop_front();
    }
    let budget = limit.budget.max(1) as usize;
    let over = sent.len() >= budget;
    // Throttled requests accrue too; capped so a storm cannot grow the deque without bound.
    if sent.len() < budget.saturating_mul(2) {
        sent.push_back(now);
    }
    let used = sent.len() as f64 / budget as f64;
    if over {
        let frees_at = sent.get(sent.len() - budget).copied().unwrap_or(now);
        let wait = (frees_at + limit.window).saturating_duration_since(now);
        // throttling.md's sample 429: code TooManyRequests, Retry-After in seconds.
        let body =
            json!({"error": {"code": "TooManyRequests", "message": "Please retry again later."}});
        let mut r = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("{}", wait.as_secs_f64().ceil().max(1.0))) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r.extensions_mut().insert(AppThrottled);
        if limit.announce {
            let scope = format!(
                "Application/ReadWrite/{}/{}",
                state.client_id, state.tenant_id
            );
            if let Ok(v) = HeaderValue::from_str(&scope) {
                r.headers_mut().insert("x-ms-throttle-scope", v);
            }
        }
        return Err(Box::new(r));
    }
    Ok((limit.announce && used > 0.8).then_some(used.min(1.8)))
}

/// Adds `x-ms-throttle-limit-percentage` to an admitted response ([`admit_app`]).
pub(crate) fn announce(response: &mut Response, used: Option<f64>) {
    if let Some(v) = used.and_then(|u| HeaderValue::from_str(&format!("{u:.2}")).ok()) {
        response
            .headers_mut()
            .insert("x-ms-throttle-limit-percentage", v);
    }
}

/// Admits a request to `mailbox` (a user id), or answers 429 as Exchange Online would.
/// `Ok(None)`: throttling is off.
pub(crate) fn admit(state: &Arc<State>, mailbox: &str) -> Result<Option<Slot>, Box<Response>> {
    if let Some(long) = state
        .config
        .faults
        .long_throttle
        .as_ref()
        .filter(|l| l.mailbox == mailbox)
    {
        if let Ok(mut all) = state.mailboxes.inner.lock() {
            let m = all.entry(mailbox.to_string()).or_default();
            if m.held_back < long.answers {
                m.held_back += 1;
                return Err(Box::new(throttled(
                    "Application is over its MailboxConcurrency limit.",
                    &format!("{:.3}", long.retry_after.as_secs_f64()),
                )));
            }
        }
    }
    let Some(limits) = &state.config.limits else {
        return Ok(None);
    };
    let Ok(mut all) = state.mailboxes.inner.lock() else {
        return Ok(None);
    };
    let m = all.entry(mailbox.to_string()).or_default();
    let now = Instant::now();
    while m
        .sent
        .front()
        .is_some_and(|t| now.duration_since(*t) >= limits.window)
    {
        m.sent.pop_front();
    }
    let over_budget = m.sent.len() as u64 >= u64::from(limits.budget);
    // Every request accrues, throttled or not; the deque is capped so it cannot grow without
    // bound under a storm of rejected requests.
    if (m.sent.len() as u64) < u64::from(limits.budget).saturating_mul(2).max(1) {
        m.sent.push_back(now);
    }
    if m.in_flight >= limits.max_in_flight {
        return Err(Box::new(throttled(
            "Application is over its MailboxConcurrency limit.",
            "1",
        )));
    }
    if over_budget {
        // The budget frees when enough of the oldest requests have left the window.
        // The next request is admitted once fewer than `budget` remain in the window, i.e.
        // when the entry at index `len - budget` has left it.
        let excess = m.sent.len().saturating_sub(limits.budget as usize);
        let frees_at = m.sent.get(excess).copied().unwrap_or(now);
        let wait = (frees_at + limits.window).saturating_duration_since(now);
        let retry_after = if state.config.fractional_retry_after {
            format!("{:.3}", wait.as_secs_f64().max(0.001))
        } else {
            format!("{}", wait.as_secs_f64().ceil().max(1.0))
        };
        return Err(Box::new(throttled(
            "Application is over its MailboxRequestRate limit.",
            &retry_after,
        )));
    }
    m.in_flight += 1;
    Ok(Some(Slot {
        state: state.clone(),
        mailbox: mailbox.to_string(),
    }))
}

/// Waits the configured latency ± jitter (the simulated network and service time).
pub(crate) async fn latency(state: &State) {
    let cfg = &state.config;
    if cfg.latency.is_zero() && cfg.jitter.is_zero() {
        return;
    }
    let jitter = cfg.jitter.as_secs_f64();
    let offset = if jitter > 0.0 {
        (state.random::<f64>() * 2.0 - 1.0) * jitter
    } else {
        0.0
    };
    let delay = (cfg.latency.as_secs_f64() + offset).max(0.0);
    tokio::time::sleep(Duration::from_secs_f64(delay)).await;
}

/// An injected fault for this request, if the dice say so: 429, 503 (with `Retry-After`
/// about half the time; concepts/errors.md says it "may"), or 504.
pub(crate) fn injected(
    state: &State,
    error: impl Fn(StatusCode, &str, &str) -> Response,
) -> Option<Response> {
    let faults = &state.config.faults;
    if state.chance(faults.error_rate_429) {
        return Some(throttled(
            "Application is over its MailboxConcurrency limit.",
            "1",
        ));
    }
    if state.chance(faults.error_rate_503) {
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The service is temporarily unavailable. Please retry later.",
        );
        if state.chance(0.5) {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        return Some(r);
    }
    if state.chance(faults.error_rate_504) {
        return Some(error(StatusCode::GATEWAY_TIMEOUT, "UnknownError", ""));
    }
    None
}

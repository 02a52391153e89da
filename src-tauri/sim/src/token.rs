//! The Entra token endpoint, client-credentials grant only, and the check Graph makes on the
//! bearer token.
//!
//! Errors have Entra's shape (entra-docs reference-error-codes.md): `error`,
//! `error_description` "AADSTSnnnn: … Trace ID: … Correlation ID: … Timestamp: …",
//! `error_codes`, `timestamp`, `trace_id`, `correlation_id`. Checks run in Entra's order:
//! tenant, request parameters, client, secret, scope.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

use crate::server::State;
use crate::tenant::guid;

fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    now.format(&format).unwrap_or_default()
}

/// An Entra error response.
fn aad_error(state: &State, status: StatusCode, error: &str, code: u64, text: &str) -> Response {
    let (trace, correlation) = match state.rng.lock() {
        Ok(mut r) => (guid(&mut r), guid(&mut r)),
        Err(_) => (String::new(), String::new()),
    };
    let stamp = timestamp();
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {stamp}"
        ),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    (status, axum::Json(body)).into_response()
}

pub(crate) fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_dns_name(s: &str) -> bool {
    s.contains('.')
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// `POST /{tenant}/oauth2/v2.0/token` (Graph docs concepts/auth-v2-service.md §4). The
/// client may authenticate in the body or with HTTP Basic (RFC 6749 §2.3.1).
pub(crate) async fn token(
    AxState(state): AxState<Arc<State>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut form: HashMap<String, String> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if let Some((id, secret)) = basic_credentials(&headers) {
        form.entry("client_id".into()).or_insert(id);
        form.entry("client_secret".into()).or_insert(secret);
    }
    token_response(&state, &tenant, &form)
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

fn token_response(state: &State, tenant: &str, form: &HashMap<String, String>) -> Response {
    let bad = StatusCode::BAD_REQUEST;
    if !is_guid(tenant) && !is_dns_name(tenant) {
        return aad_error(
            state,
            bad,
            "invalid_request",
            900023,
            &format!("Specified tenant identifier '{tenant}' is neither a valid DNS name, nor a valid external domain."),
        );
    }
    let snapshot = state.snapshot();
    let known = tenant.eq_ignore_ascii_case(&state.tenant_id)
        || snapshot
            .domains
            .iter()
            .any(|d| d.id.eq_ignore_ascii_case(tenant));
    if !known {
        return aad_error(
            state,
            bad,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."),
        );
    }
    let field = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
    for name in ["grant_type", "client_id"] {
        if field(name).is_none() {
            return aad_error(
                state,
                bad,
                "invalid_request",
                900144,
                &format!("The request body must contain the following parameter: '{name}'."),
            );
        }
    }
    let grant = field("grant_type").unwrap_or_default();
    if grant != "client_credentials" {
        return aad_error(
            state,
            bad,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant}'."),
        );
    }
    let client_id = field("client_id").unwrap_or_default();
    if !client_id.eq_ignore_ascii_case(&state.client_id) {
        return aad_error(
            state,
            bad,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."),
        );
    }
    let Some(secret) = field("client_secret") else {
        return aad_error(
            state,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    };
    if secret != state.client_secret {
        return aad_error(
            state,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.", state.client_id),
        );
    }
    let Some(scope) = field("scope") else {
        return aad_error(
            state,
            bad,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        );
    };
    let Some(resource) = scope.trim().strip_suffix("/.default") else {
        return aad_error(
            state,
            bad,
            "invalid_scope",
            1002012,
            &format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
        );
    };
    if !is_graph_resource(state, resource) {
        return aad_error(
            state,
            bad,
            "invalid_resource",
            500011,
            &format!("The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."),
        );
    }
    issue(state)
}

/// Graph by its cloud's App ID URI or its app id. A client credentials scope names the
/// resource's App ID URI (concepts/auth-v2-service.md, "https://graph.microsoft.com/.default";
/// a national cloud's Graph host, concepts/deployments.md); any other URL, such as the proxy
/// or simulator the requests are sent through, is an unknown resource principal
/// (AADSTS500011).
fn is_graph_resource(state: &State, resource: &str) -> bool {
    let r = resource.trim_end_matches('/');
    r.eq_ignore_ascii_case(state.config.cloud.graph_resource())
        || r.eq_ignore_ascii_case("00000003-0000-0000-c000-000000000000")
}

fn issue(state: &State) -> Response {
    let lifetime = state.config.token_lifetime;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(br#"{"typ":"JWT","nonce":"sim","alg":"RS256","x5t":"sim","kid":"sim"}"#);
    let uti: [u8; 16] = state.random();
    let payload = json!({
        "aud": "https://graph.microsoft.com",
        "iss": format!("https://sts.windows.net/{}/", state.tenant_id),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime.as_secs() as i64,
        "app_displayname": "M365 Migrator",
        "appid": state.client_id,
        "appidacr": "1",
        "idp": format!("https://sts.windows.net/{}/", state.tenant_id),
        "idtyp": "app",
        "oid": state.client_secret_id,
        "roles": state.config.roles,
        "sub": state.client_secret_id,
        "tid": state.tenant_id,
        "uti": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uti),
        "ver": "1.0",
    });
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string());
    let signature: [u8; 32] = state.random();
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature);
    let access_token = format!("{header}.{payload}.{signature}");
    if let Ok(mut tokens) = state.tokens.lock() {
        let now = Instant::now();
        tokens.retain(|_, expires| *expires > now);
        tokens.insert(access_token.clone(), now + lifetime);
    }
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "ext_expires_in": lifetime.as_secs(),
        "access_token": access_token,
    }))
    .into_response()
}

/// Whether `Authorization` carries a token this simulator issued that has not expired.
/// `Err` carries Graph's message for the 401.
pub(crate) fn check_bearer(state: &State, headers: &HeaderMap) -> Result<(), &'static str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = bearer else {
        return Err("Access token is empty.");
    };
    let valid = state
        .tokens
        .lock()
        .map(|t| t.get(token).is_some_and(|exp| *exp > Instant::now()))
        .unwrap_or(false);
    if valid {
        Ok(())
    } else if token.split('.').count() != 3 {
        Err("IDX14100: JWT is not well formed, there are no dots (.).")
    } else {
        Err("Access token has expired or is not yet valid.")
    }
}

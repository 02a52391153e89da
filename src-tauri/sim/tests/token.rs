//! The token endpoint answers as Entra does (entra-docs reference-error-codes.md).

use base64::Engine as _;
use migrator_sim::{SimConfig, SimServer, ROLES};
use serde_json::Value;

async fn post(sim: &SimServer, tenant: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/{tenant}/oauth2/v2.0/token", sim.url()))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn good(sim: &SimServer) -> Vec<(&'static str, &str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", sim.client_id()),
        ("client_secret", sim.client_secret()),
        ("scope", "https://graph.microsoft.com/.default"),
    ]
}

/// Checks Entra's error shape and returns `error_description`.
fn aad_error(body: &Value, error: &str, code: u64) -> String {
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], serde_json::json!([code]), "{body}");
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(
            body[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field} in {body}"
        );
    }
    let text = body["error_description"].as_str().unwrap().to_string();
    assert!(text.starts_with(&format!("AADSTS{code}: ")), "{text}");
    for part in [" Trace ID: ", " Correlation ID: ", " Timestamp: "] {
        assert!(text.contains(part), "{part} in {text}");
    }
    text
}

#[tokio::test]
async fn a_token_is_a_jwt_with_roles_tenant_app_and_expiry() {
    let sim = SimServer::start(SimConfig::demo()).await.unwrap();
    let (status, body) = post(&sim, sim.tenant_id(), &good(&sim)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    let token = body["access_token"].as_str().unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let payload: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["tid"], sim.tenant_id());
    assert_eq!(payload["appid"], sim.client_id());
    assert_eq!(payload["roles"], serde_json::json!(ROLES));
    assert!(payload["exp"].as_i64().unwrap() > payload["iat"].as_i64().unwrap());
    assert!(sim.client_secret().len() >= 38 && sim.client_secret().contains('~'));
    sim.shutdown().await;
}

#[tokio::test]
async fn the_tenant_may_be_named_by_any_of_its_domains() {
    let sim = SimServer::start(SimConfig::demo()).await.unwrap();
    for tenant in ["contoso.com", "contoso.onmicrosoft.com", "CONTOSO.COM"] {
        let (status, body) = post(&sim, tenant, &good(&sim)).await;
        assert_eq!(status, 200, "{tenant}: {body}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn an_unknown_tenant_is_aadsts90002() {
    let sim = SimServer::start(SimConfig::demo()).await.unwrap();
    for tenant in ["11111111-2222-3333-4444-555555555555", "fabrikam.com"] {
        let (status, body) = post(&sim, tenant, &good(&sim)).await;
        assert_eq!(status, 400);
        let text = aad_error(&body, "invalid_request", 90002);
        assert!(
            text.contains(&format!("Tenant '{tenant}' not found")),
            "{text}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_malformed_tenant_is_aadsts900023() {
    let sim = SimServer::start(SimConfig::demo()).await.unwrap();
    let (status, body) = post(&sim, "not a tenant", &good(&sim)).await;
    assert_eq!(status, 400);
    let text = aad_error(&body, "invalid_request", 900023);
    assert!(text.contains("is neither a valid DNS name, nor a valid external domain"));
    sim.shutdown().await;
}

#[tokio::test]
async fn an_unknown_client_is_aadsts700016() {
    let sim = SimServer::start(SimConfig::demo()).await.unwrap();
    let mut form = good(&sim);
    form[1].1 = "99999999-9999-9999-9999-999999999999";
    let (status, body) = post(&sim, sim.tenant_id(), &form).await;
    assert_eq!(status, 400);
    let text = aad_error(&body, "unauthorized_client", 700016);
    assert!(text.contains("Application with identifier '99999999-9999-9999-9999-999999999999' was not found in the directory"));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_wrong_secret_or_the_secret_id_is_aadsts7000215() {
    let sim = SimServer::start(SimConfig::demo()).await.unwrap();
    for wrong in ["nope", sim.client_secret_id()] {
        let mut form = good(&sim);
        form[2].1 = wrong;
        let (status, body) = post(&sim, sim.tenant_id(), &form).await;
        assert_eq!(status, 401);
        let text = aad_error(&body, "invalid_client", 7000215);
        assert!(
            text.contains(&format!("AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.", sim.client_id())),
            "{text}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_scope_without_default_is_refused() {
    let sim = SimServer::start(SimConfig::demo()).await.unwrap();
    let mut form = good(&sim);
    form[3].1 = "https://graph.microsoft.com/Mail.Read";
    let (status, body) = post(&sim, sim.tenant_id(), &form).await;
    assert_eq!(status, 400);
    aad_error(&body, "invalid_scope", 1002012);
    form[3].1 = "https://example.com/.default";
    let (status, body) = post(&sim, sim.tenant_id(), &form).await;
    assert_eq!(status, 400);
    aad_error(&body, "invalid_resource", 500011);
    // The URL requests go through (a proxy, the simulator) is not Graph's resource.
    let scope = format!("{}/.default", sim.url());
    form[3].1 = &scope;
    let (status, body) = post(&sim, sim.tenant_id(), &form).await;
    assert_eq!(status, 400);
    aad_error(&body, "invalid_resource", 500011);
    form[3].1 = "https://microsoftgraph.chinacloudapi.cn/.default";
    let (status, body) = post(&sim, sim.tenant_id(), &form).await;
    assert_eq!(status, 400, "another cloud's Graph");
    aad_error(&body, "invalid_resource", 500011);
    sim.shutdown().await;
}

#[tokio::test]
async fn missing_parameters_are_aadsts900144() {
    let sim = SimServer::start(SimConfig::demo()).await.unwrap();
    let (status, body) = post(&sim, sim.tenant_id(), &[("client_id", sim.client_id())]).await;
    assert_eq!(status, 400);
    let text = aad_error(&body, "invalid_request", 900144);
    assert!(text.contains("'grant_type'"));
    sim.shutdown().await;
}

#[tokio::test]
async fn client_credentials_may_come_as_http_basic() {
    let sim = SimServer::start(SimConfig::demo()).await.unwrap();
    let r = reqwest::Client::new()
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            sim.url(),
            sim.tenant_id()
        ))
        .basic_auth(sim.client_id(), Some(sim.client_secret()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    sim.shutdown().await;
}

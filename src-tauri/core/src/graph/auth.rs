//! Sign-in with the OAuth2 client-credentials flow, token caching and renewal, and the
//! translation of Entra's AADSTS codes into advice a person can act on.
//!
//! Token endpoint: `{login}/{tenant}/oauth2/v2.0/token`, scope `{Graph resource}/.default`
//! (Graph docs, concepts/auth-v2-service.md). The resource is the cloud's Graph App ID URI
//! (`https://graph.microsoft.com`, or the national cloud's, Graph docs deployments.md),
//! whatever URL requests are sent through: Entra knows no proxy's URL as a resource
//! (AADSTS500011). Tokens live 60-90 minutes (entra-docs access-tokens.md), so a cached
//! token is renewed [`renew_margin`] before it expires (a share of a short lifetime, so a
//! short-lived token is not fetched again for every request), and
//! [`TokenSource::invalidate`] forces renewal when Graph answers 401 mid-run.

use std::time::{Duration, Instant};

use base64::Engine as _;
use oauth2::basic::{
    BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenResponse,
};
use oauth2::{
    AuthType, ClientId, ClientSecret, EndpointNotSet, EndpointSet, RequestTokenError, Scope,
    StandardRevocableToken, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::config::{tenant_id_shape_ok, SourceConfig};
use crate::error::{Classify, ErrorClass};
use crate::secrets::Secret;

/// A token with less than this left is renewed before use, when it lives long enough.
pub const RENEW_MARGIN: Duration = Duration::from_secs(5 * 60);

/// How long before its expiry a token of `lifetime` is renewed: [`RENEW_MARGIN`], or a
/// quarter of a shorter lifetime (a 20-second token serves 15 seconds of requests).
pub fn renew_margin(lifetime: Duration) -> Duration {
    RENEW_MARGIN.min(lifetime / 4)
}

/// Why sign-in failed, in words an administrator can act on. Never contains the secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("tenant ID '{0}' is neither a GUID nor a domain name: copy the Directory (tenant) ID from the app registration's Overview page")]
    MalformedTenant(String),
    #[error("tenant '{0}' was not found (AADSTS90002): check the tenant ID, and the cloud if the tenant is in a national cloud")]
    TenantNotFound(String),
    #[error("client ID '{0}' is not a GUID: copy the Application (client) ID from the app registration's Overview page")]
    MalformedClientId(String),
    #[error("the application '{0}' was not found in this tenant (AADSTS700016): check the client ID, and that the app is registered in this tenant and admin consent was granted")]
    AppNotInTenant(String),
    #[error("the client secret is wrong (AADSTS7000215){hint}")]
    WrongSecret { hint: &'static str },
    #[error("the client secret has expired (AADSTS7000222): create a new secret under Certificates & secrets and enter its value")]
    SecretExpired,
    #[error("the tenant belongs to another Microsoft cloud (AADSTS90038): choose its cloud (US Government or China)")]
    OtherCloud,
    #[error("sign-in was blocked by a Conditional Access policy (AADSTS53003): exclude this app from the policy or allow this machine's location")]
    ConditionalAccess,
    #[error("the client secret is empty")]
    MissingSecret,
    #[error("Microsoft sign-in refused the request ({code}): {description}")]
    Refused { code: String, description: String },
    #[error("cannot reach the Microsoft sign-in service at {url}")]
    Unreachable {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("unexpected answer from the sign-in service: {0}")]
    Protocol(String),
    /// `login_url` or `graph_url` would carry the secret or a token somewhere unsafe.
    #[error("{0}")]
    UnsafeEndpoint(#[from] crate::config::EndpointError),
}

impl AuthError {
    /// A stable machine-readable code for the IPC boundary and the CLI.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MalformedTenant(_) | AuthError::TenantNotFound(_) => "auth.tenant",
            AuthError::MalformedClientId(_) | AuthError::AppNotInTenant(_) => "auth.client",
            AuthError::WrongSecret { .. } | AuthError::SecretExpired | AuthError::MissingSecret => {
                "auth.secret"
            }
            AuthError::OtherCloud => "auth.cloud",
            AuthError::ConditionalAccess => "auth.policy",
            AuthError::Refused { .. } | AuthError::Protocol(_) => "auth.refused",
            AuthError::Unreachable { .. } => "auth.unreachable",
            AuthError::UnsafeEndpoint(_) => "auth.endpoint",
        }
    }
}

impl Classify for AuthError {
    fn class(&self) -> ErrorClass {
        match self {
            AuthError::Unreachable { .. } => ErrorClass::Retry,
            _ => ErrorClass::Fatal,
        }
    }
}

/// Entra's error body: `error`, `error_description` ("AADSTSnnnn: ..."), `error_codes`
/// (entra-docs reference-error-codes.md). Branch on the codes, never on the text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AadErrorResponse {
    pub error: String,
    #[serde(default)]
    pub error_description: Option<String>,
    #[serde(default)]
    pub error_codes: Vec<u64>,
}

impl std::fmt::Display for AadErrorResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error)
    }
}

impl oauth2::ErrorResponse for AadErrorResponse {}

/// Maps an Entra error to advice. `secret_looks_like_id` adds the most common cause of
/// AADSTS7000215: the secret's ID (a GUID) pasted instead of its value.
pub fn map_aad_error(
    err: &AadErrorResponse,
    tenant: &str,
    client_id: &str,
    secret_looks_like_id: bool,
) -> AuthError {
    let has = |code: u64| err.error_codes.contains(&code);
    if has(90002) {
        AuthError::TenantNotFound(tenant.to_string())
    } else if has(900023) {
        AuthError::MalformedTenant(tenant.to_string())
    } else if has(700016) || has(700011) {
        AuthError::AppNotInTenant(client_id.to_string())
    } else if has(7000215) {
        AuthError::WrongSecret {
            hint: if secret_looks_like_id {
                ": you entered the secret's ID; enter its Value instead (shown once, when the secret is created)"
            } else {
                ": enter the secret's Value from Certificates & secrets (not its ID)"
            },
        }
    } else if has(7000222) {
        AuthError::SecretExpired
    } else if has(90038) {
        AuthError::OtherCloud
    } else if has(53003) {
        AuthError::ConditionalAccess
    } else {
        let description = err
            .error_description
            .as_deref()
            .and_then(|d| d.lines().next())
            .unwrap_or("")
            .to_string();
        AuthError::Refused {
            code: err
                .error_codes
                .first()
                .map(|c| format!("AADSTS{c}"))
                .unwrap_or_else(|| err.error.clone()),
            description,
        }
    }
}

type AadClient = oauth2::Client<
    AadErrorResponse,
    BasicTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

struct CachedToken {
    value: Secret,
    /// When it is renewed: [`renew_margin`] before it expires.
    renew_at: Instant,
}

/// A signed-in app: hands out a valid access token, renewing it when needed. Cheap to share
/// behind an `Arc`; concurrent callers wait for one renewal instead of each signing in.
pub struct TokenSource {
    oauth: AadClient,
    http: reqwest::Client,
    scope: String,
    tenant: String,
    client_id: String,
    secret_looks_like_id: bool,
    cached: Mutex<Option<CachedToken>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// Checks the inputs' shape (no request is sent) and prepares the client.
    pub fn new(
        source: &SourceConfig,
        secret: &Secret,
        http: reqwest::Client,
    ) -> Result<Self, AuthError> {
        let tenant = source.tenant_id.trim().to_string();
        let client_id = source.client_id.trim().to_string();
        if !tenant_id_shape_ok(&tenant) {
            return Err(AuthError::MalformedTenant(tenant));
        }
        if !crate::config::is_guid(&client_id) {
            return Err(AuthError::MalformedClientId(client_id));
        }
        if secret.is_empty() {
            return Err(AuthError::MissingSecret);
        }
        // The same check as the configuration file's, for every front end (the app sends
        // its own SourceConfig): the secret never leaves for an unchecked host.
        source.check_endpoints()?;
        let token_url = format!("{}/{}/oauth2/v2.0/token", source.login_base(), tenant);
        let token_url =
            TokenUrl::new(token_url.clone()).map_err(|_| AuthError::Protocol(token_url))?;
        let oauth = oauth2::Client::new(ClientId::new(client_id.clone()))
            .set_client_secret(ClientSecret::new(secret.expose().trim().to_string()))
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(token_url);
        Ok(TokenSource {
            oauth,
            http,
            scope: format!("{}/.default", source.cloud.graph_url()),
            secret_looks_like_id: crate::config::is_guid(secret.expose().trim()),
            tenant,
            client_id,
            cached: Mutex::new(None),
        })
    }

    /// A token valid for at least [`renew_margin`] of its lifetime.
    pub async fn token(&self) -> Result<Secret, AuthError> {
        let mut cached = self.cached.lock().await;
        if let Some(t) = cached.as_ref() {
            if Instant::now() < t.renew_at {
                return Ok(t.value.clone());
            }
        }
        let fresh = self.request().await?;
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    /// Drops `stale` from the cache (after Graph answered 401 to it), so the next
    /// [`TokenSource::token`] signs in again. A newer token obtained meanwhile is kept.
    pub async fn invalidate(&self, stale: &Secret) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|t| &t.value == stale) {
            *cached = None;
        }
    }

    async fn request(&self) -> Result<CachedToken, AuthError> {
        let started = Instant::now();
        let response = self
            .oauth
            .exchange_client_credentials()
            .add_scope(Scope::new(self.scope.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(body) => map_aad_error(
                    &body,
                    &self.tenant,
                    &self.client_id,
                    self.secret_looks_like_id,
                ),
                RequestTokenError::Request(source) => AuthError::Unreachable {
                    url: self.oauth.token_uri().to_string(),
                    source: Box::new(source),
                },
                RequestTokenError::Parse(_, _) => {
                    AuthError::Protocol("the token response is not valid JSON".into())
                }
                RequestTokenError::Other(text) => AuthError::Protocol(text),
            })?;
        // A token whose lifetime is unknown is treated as short-lived: renewed on next use.
        let lifetime = response.expires_in().unwrap_or(Duration::ZERO);
        tracing::debug!(
            lifetime_s = lifetime.as_secs(),
            "signed in to Microsoft Graph"
        );
        Ok(CachedToken {
            value: Secret::new(response.access_token().secret().clone()),
            renew_at: started + lifetime - renew_margin(lifetime),
        })
    }
}

/// The application permissions in a token's `roles` claim. Graph tokens are meant to be
/// opaque (entra-docs access-tokens.md), so this is a diagnostic only: `None` when the token
/// is not a readable JWT.
pub fn token_roles(token: &Secret) -> Option<Vec<String>> {
    let payload = token.expose().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    #[derive(Deserialize)]
    struct Claims {
        #[serde(default)]
        roles: Vec<String>,
    }
    serde_json::from_slice::<Claims>(&bytes)
        .ok()
        .map(|c| c.roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aad(codes: &[u64]) -> AadErrorResponse {
        AadErrorResponse {
            error: "invalid_client".into(),
            error_description: Some("AADSTS0: something.\r\nTrace ID: x".into()),
            error_codes: codes.to_vec(),
        }
    }

    #[test]
    fn aadsts_codes_map_to_advice() {
        let t = "contoso.com";
        let c = "00000000-0000-0000-0000-000000000001";
        assert!(matches!(
            map_aad_error(&aad(&[90002]), t, c, false),
            AuthError::TenantNotFound(_)
        ));
        assert!(matches!(
            map_aad_error(&aad(&[900023]), t, c, false),
            AuthError::MalformedTenant(_)
        ));
        assert!(matches!(
            map_aad_error(&aad(&[700016]), t, c, false),
            AuthError::AppNotInTenant(_)
        ));
        assert!(matches!(
            map_aad_error(&aad(&[7000222]), t, c, false),
            AuthError::SecretExpired
        ));
        assert!(matches!(
            map_aad_error(&aad(&[90038]), t, c, false),
            AuthError::OtherCloud
        ));
        assert!(matches!(
            map_aad_error(&aad(&[53003]), t, c, false),
            AuthError::ConditionalAccess
        ));
        let wrong = map_aad_error(&aad(&[7000215]), t, c, true).to_string();
        assert!(wrong.contains("secret's ID"), "{wrong}");
        let other = map_aad_error(&aad(&[65001]), t, c, false).to_string();
        assert!(other.contains("AADSTS65001"), "{other}");
        assert!(!other.contains("Trace ID"), "{other}");
    }

    #[test]
    fn shape_errors_come_before_any_request() {
        let http = reqwest::Client::new();
        let mut source = SourceConfig {
            tenant_id: "not a tenant".into(),
            client_id: "00000000-0000-0000-0000-000000000001".into(),
            cloud: Default::default(),
            login_url: None,
            graph_url: None,
            allow_plaintext_loopback: None,
        };
        let secret = Secret::new("s3cret-value");
        assert!(matches!(
            TokenSource::new(&source, &secret, http.clone()),
            Err(AuthError::MalformedTenant(_))
        ));
        source.tenant_id = "contoso.com".into();
        source.client_id = "my-app".into();
        assert!(matches!(
            TokenSource::new(&source, &secret, http.clone()),
            Err(AuthError::MalformedClientId(_))
        ));
        source.client_id = "00000000-0000-0000-0000-000000000001".into();
        assert!(matches!(
            TokenSource::new(&source, &Secret::new("  "), http.clone()),
            Err(AuthError::MissingSecret)
        ));
    }

    #[test]
    fn short_lived_tokens_are_renewed_at_a_share_of_their_lifetime() {
        assert_eq!(renew_margin(Duration::from_secs(3599)), RENEW_MARGIN);
        assert_eq!(
            renew_margin(Duration::from_secs(20)),
            Duration::from_secs(5)
        );
        assert_eq!(renew_margin(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_token_endpoint_that_only_looks_like_loopback_gets_no_secret() {
        let http = reqwest::Client::new();
        let secret = Secret::new("s3cret-value");
        for (login, graph) in [
            (
                "http://localhost.evil.example",
                "https://graph.microsoft.com",
            ),
            (
                "http://127.0.0.1@evil.example",
                "https://graph.microsoft.com",
            ),
            (
                "https://login.microsoftonline.com",
                "http://127.0.0.1.evil.example",
            ),
            (
                "https://user:pw@login.example",
                "https://graph.microsoft.com",
            ),
        ] {
            let source = SourceConfig {
                tenant_id: "contoso.com".into(),
                client_id: "00000000-0000-0000-0000-000000000001".into(),
                cloud: Default::default(),
                login_url: Some(login.into()),
                graph_url: Some(graph.into()),
                allow_plaintext_loopback: Some(true),
            };
            let e = TokenSource::new(&source, &secret, http.clone()).unwrap_err();
            assert_eq!(e.code(), "auth.endpoint", "{login} {graph}: {e}");
        }
    }

    #[test]
    fn roles_are_read_from_a_jwt_payload() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"roles":["Mail.Read","User.Read.All"]}"#);
        let token = Secret::new(format!("eyJhbGciOiJub25lIn0.{payload}.sig"));
        assert_eq!(
            token_roles(&token),
            Some(vec!["Mail.Read".to_string(), "User.Read.All".to_string()])
        );
        assert_eq!(token_roles(&Secret::new("opaque")), None);
    }
}
